r"""Fig. 4 of the paper: how the structure losses reshape the loss surface of one joint.

    python -m keras_pose3d.evaluation.loss_surface --out fig4.png [--pose realdata|synthetic]
        [--grid 81] [--lambda-s 1.0] [--lambda-a 1.0]

A pose is held fixed except the **left elbow**, which moves over a grid in the camera x-z plane
(x = image horizontal, z = depth; y stays at its true value). Four surfaces, all computed with
the project's loss functions (`keras_pose3d.losses`) on the pose in normalised units (metres
here; every loss is evaluated on the same pose tensor):

(a) 2D location loss  sum_j |xy_j - xy_j^gt|^2 : flat along z (the depth ambiguity);
(b) (a) + lambda_s * symmetry_loss (Eq. 2): two valleys, the true depth and its mirror;
(c) (b) + lambda_a * illegal_angle_loss (Eq. 1): the mirror valley is raised where the elbow
    bends backwards;
(d) the 3D loss  sum_j |P_j - P_j^gt|^2 : one minimum.

Markers: (3) the ground truth, (1) the other elbow position with symmetric arm lengths: the
minimum of the symmetry term alone at least 10 cm from the truth (upper arm and forearm both as
long as the right ones: the second intersection of the two length spheres with the grid plane).
`summary` reports every surface at both points and whether (1) is a legal elbow; `run` picks
the pose, computes, plots and prints the summary (what `main` calls).
The weights default to 1 (the paper's 0.05 / 0.03 balance its own units; the figure is
qualitative). Pose source: a real H36M frame (`realdata/h36m_motion`, chosen automatically so
that the mirror solution is an illegal elbow), else a synthetic pose built from the standard
bone lengths.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from keras_pose3d import skeleton
from keras_pose3d.cli import exits_cleanly

L_ELBOW = skeleton.J["l_elbow"]
POSE_SOURCES = ("realdata", "synthetic")
REALDATA_MOTION = (
    pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "realdata" / "h36m_motion"
)
# Body frame (x right, y forward, z up) -> camera frame (x right, y down, z forward) for a
# person facing the camera: body right -> image left, forward -> towards the camera, up -> -y.
BODY_TO_CAMERA = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, -1.0, 0.0]])


def synthetic_pose() -> np.ndarray:
    """(16, 3) MPII-16 pose in metres, camera frame, left elbow bent forward by ~70 deg."""
    p = np.zeros((16, 3))
    j = skeleton.J
    p[j["r_hip"]] = [-0.13, 0, 0]
    p[j["l_hip"]] = [0.13, 0, 0]
    p[j["r_knee"]] = [-0.14, 0.44, 0]
    p[j["l_knee"]] = [0.14, 0.44, 0]
    p[j["r_ankle"]] = [-0.14, 0.89, 0]
    p[j["l_ankle"]] = [0.14, 0.89, 0]
    p[j["thorax"]] = [0, -0.48, 0]
    p[j["upper_neck"]] = [0, -0.60, 0]
    p[j["head_top"]] = [0, -0.72, 0]
    p[j["r_shoulder"]] = [-0.15, -0.46, 0]
    p[j["l_shoulder"]] = [0.15, -0.46, 0]
    p[j["r_elbow"]] = [-0.20, -0.19, 0.0]
    p[j["r_wrist"]] = [-0.22, 0.06, 0.0]
    # Left arm: upper arm hanging down and slightly out, forearm raised towards the camera.
    p[j["l_elbow"]] = [0.25, -0.20, 0.05]
    p[j["l_wrist"]] = [0.30, -0.28, -0.18]
    # Right arm mirrors the left one, so the pose is exactly symmetric.
    p[j["r_elbow"]] = p[j["l_elbow"]] * [-1, 1, 1]
    p[j["r_wrist"]] = p[j["l_wrist"]] * [-1, 1, 1]
    return p


def _grid_poses(pose: np.ndarray, xs: np.ndarray, zs: np.ndarray) -> np.ndarray:
    zz, xx = np.meshgrid(zs, xs, indexing="ij")  # (Z, X)
    poses = np.repeat(pose[None], xx.size, axis=0)
    poses[:, L_ELBOW, 0] = xx.reshape(-1)
    poses[:, L_ELBOW, 2] = zz.reshape(-1)
    return poses  # (Z*X, 16, 3)


def loss_surfaces(
    pose: np.ndarray,
    half_range: float = 0.35,
    n: int = 81,
    lambda_s: float = 1.0,
    lambda_a: float = 1.0,
) -> dict[str, np.ndarray]:
    """The four surfaces of Fig. 4 over an n x n grid around the true left elbow.

    Args:
        pose: (16, 3) camera-frame pose (metres).
        half_range: grid half width in the pose unit.
        n: grid points per axis.
        lambda_s, lambda_a: weights of the symmetry and illegal-angle terms.
    Returns:
        {"x": (n,), "z": (n,), "2d", "2d+sym", "2d+sym+angle", "3d": (n, n) indexed [z, x]}.
    """
    import tensorflow as tf

    from keras_pose3d.losses import illegal_angle_loss, symmetry_loss

    xs = pose[L_ELBOW, 0] + np.linspace(-half_range, half_range, n)
    zs = pose[L_ELBOW, 2] + np.linspace(-half_range, half_range, n)
    grid = _grid_poses(pose, xs, zs)
    gt = tf.constant(pose[None], tf.float32)
    g = tf.constant(grid, tf.float32)
    l2d = tf.reduce_sum(tf.square(g[..., :2] - gt[..., :2]), axis=[1, 2])
    lsym = symmetry_loss(g)
    lang = illegal_angle_loss(g)
    l3d = tf.reduce_sum(tf.square(g - gt), axis=[1, 2])
    shape = (n, n)
    return {
        "x": xs,
        "z": zs,
        "sym": lsym.numpy().reshape(shape),
        "2d": l2d.numpy().reshape(shape),
        "2d+sym": (l2d + lambda_s * lsym).numpy().reshape(shape),
        "2d+sym+angle": (l2d + lambda_s * lsym + lambda_a * lang).numpy().reshape(shape),
        "3d": l3d.numpy().reshape(shape),
    }


def real_pose(
    motion_dir: pathlib.Path = REALDATA_MOTION, half_range: float = 0.35
) -> np.ndarray | None:
    """A real H36M frame (metres, camera frame, facing the camera), or None when absent.

    Among every 10th frame of S9 Directions_1 with a legal left elbow, the one where the largest
    share of the elbow grid is an illegal elbow under Eq. 1 (so panel (c) has something to show).
    """
    path = motion_dir / "S9.npz"
    if not path.exists():
        return None
    from keras_pose3d import metrics

    with np.load(path) as z:
        poses17 = np.asarray(z["Directions_1"], dtype=np.float64)[::10]
    poses = skeleton.h36m17_to_mpii(poses17) @ BODY_TO_CAMERA.T / 1000.0  # (T, 16, 3) m
    col = [limb[0] for limb in skeleton.ANGLE_LIMBS].index("l_elbow")
    legal = ~metrics.illegal_angle_mask(poses)[:, col]
    offsets = np.linspace(-half_range, half_range, 21)
    best, best_share = None, -1.0
    for p in poses[legal]:
        grid = _grid_poses(p, p[L_ELBOW, 0] + offsets, p[L_ELBOW, 2] + offsets)
        share = float(metrics.illegal_angle_mask(grid)[:, col].mean())
        if share > best_share:
            best, best_share = p, share
    return best


def second_valley(surfaces: dict, pose: np.ndarray, min_dist: float = 0.1) -> np.ndarray:
    """(3,) left elbow where the symmetry term alone is lowest, >= min_dist from the truth."""
    zz, xx = np.meshgrid(surfaces["z"], surfaces["x"], indexing="ij")
    far = np.hypot(xx - pose[L_ELBOW, 0], zz - pose[L_ELBOW, 2]) >= min_dist
    iz, ix = np.unravel_index(np.argmin(np.where(far, surfaces["sym"], np.inf)), far.shape)
    return np.array([surfaces["x"][ix], pose[L_ELBOW, 1], surfaces["z"][iz]])


def summary(surfaces: dict, pose: np.ndarray) -> dict:
    """Loss of every surface at the truth (3) and at the second valley (1), and its legality."""
    from keras_pose3d import metrics

    point = second_valley(surfaces, pose)
    ix = int(np.argmin(np.abs(surfaces["x"] - point[0])))
    iz = int(np.argmin(np.abs(surfaces["z"] - point[2])))
    gx = int(np.argmin(np.abs(surfaces["x"] - pose[L_ELBOW, 0])))
    gz = int(np.argmin(np.abs(surfaces["z"] - pose[L_ELBOW, 2])))
    moved = pose.copy()
    moved[L_ELBOW] = point
    col = [limb[0] for limb in skeleton.ANGLE_LIMBS].index("l_elbow")
    out = {
        "valley_elbow": point.tolist(),
        "valley_illegal": bool(metrics.illegal_angle_mask(moved[None])[0, col]),
    }
    for key in ("sym", "2d", "2d+sym", "2d+sym+angle", "3d"):
        out[key] = {"truth": float(surfaces[key][gz, gx]), "valley": float(surfaces[key][iz, ix])}
    return out


def plot(surfaces: dict, pose: np.ndarray, out: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mirror = second_valley(surfaces, pose)
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.6))
    names = [
        ("2d", "(a) 2D location"),
        ("2d+sym", "(b) 2D + symmetry"),
        ("2d+sym+angle", "(c) 2D + symmetry + illegal angle"),
        ("3d", "(d) 3D loss"),
    ]
    for ax, (key, label) in zip(axes, names):
        cs = ax.contourf(surfaces["x"], surfaces["z"], surfaces[key], levels=30, cmap="viridis")
        fig.colorbar(cs, ax=ax, shrink=0.85)
        ax.plot(pose[L_ELBOW, 0], pose[L_ELBOW, 2], "w*", ms=12, label="(3) ground truth")
        ax.plot(mirror[0], mirror[2], "rx", ms=10, mew=2, label="(1) other symmetric elbow")
        ax.set_title(label)
        ax.set_xlabel("left elbow x (m)")
        ax.set_ylabel("left elbow z / depth (m)")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def run(
    out: str | pathlib.Path = "fig4.png",
    pose: str = "realdata",
    grid: int = 81,
    lambda_s: float = 1.0,
    lambda_a: float = 1.0,
    motion_dir: pathlib.Path = REALDATA_MOTION,
) -> dict:
    """Fig. 4 for one pose, plotted to `out`; the summary is printed and returned.

    Args:
        out: the figure's path (parent folders are created).
        pose: "realdata" (the H36M frame of `real_pose`, a synthetic pose when `motion_dir`
            lacks it) or "synthetic".
        grid: grid points per axis (>= 2).
        lambda_s, lambda_a: weights of the symmetry and illegal-angle terms.
        motion_dir: where `real_pose` looks for S9.npz.
    Returns:
        {"surfaces": loss_surfaces(...), "summary": summary(...), "source": str}.
    """
    if pose not in POSE_SOURCES:
        raise ValueError(f"pose must be one of {POSE_SOURCES}. Received: {pose!r}")
    if grid < 2:
        raise ValueError(f"grid must be >= 2 points per axis. Received: {grid}")
    joints, source = None, "synthetic pose"
    if pose == "realdata":
        joints = real_pose(motion_dir)
        if joints is None:
            print(f"real motion absent under {motion_dir}: using a synthetic pose")
        else:
            source = "real H36M pose (S9 Directions_1)"
    if joints is None:
        joints = synthetic_pose()
    surfaces = loss_surfaces(joints, n=grid, lambda_s=lambda_s, lambda_a=lambda_a)
    pathlib.Path(out).parent.mkdir(parents=True, exist_ok=True)
    plot(surfaces, joints, str(out), f"Fig. 4 analogue: {source}, λ_s={lambda_s}, λ_a={lambda_a}")
    info = summary(surfaces, joints)
    print(f"wrote {out} ({source}); second valley illegal: {info['valley_illegal']}")
    for key in ("sym", "2d", "2d+sym", "2d+sym+angle", "3d"):
        print(f"  {key:14s} truth {info[key]['truth']:.4f}  valley {info[key]['valley']:.4f}")
    return {"surfaces": surfaces, "summary": info, "source": source}


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fig. 4: loss surfaces of the left elbow.")
    parser.add_argument("--out", default="fig4.png")
    parser.add_argument("--pose", choices=POSE_SOURCES, default="realdata")
    parser.add_argument("--lambda-s", type=float, default=1.0)
    parser.add_argument("--lambda-a", type=float, default=1.0)
    parser.add_argument("--grid", type=int, default=81)
    args = parser.parse_args(argv)
    run(args.out, args.pose, args.grid, args.lambda_s, args.lambda_a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
