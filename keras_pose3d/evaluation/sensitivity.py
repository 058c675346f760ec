r"""Fig. 5 of the paper: what a trained TP-Net looks at (input-output sensitivity maps).

    python -m keras_pose3d.evaluation.sensitivity --tp-net PATH.keras --out fig5.png
    python -m keras_pose3d.evaluation.sensitivity --run RUN_DIR --out fig5.png   # RUN_DIR/tp_net.keras

Sensitivity = the Jacobian of the refined pose with respect to every input pose, averaged over
windows: `S[o, k, i] = E ||d P_out[o] / d P_in[k, i]||_F` (3 x 3 blocks; o output joint, k
window frame, i input joint). The paper perturbs inputs randomly; the gradient is the
infinitesimal version of the same measurement. Panels: (a) `sum_i S[o, k, i]` per output joint
and frame offset, (b) `S[:, t=0, :]` (16 x 16, within the current frame), (c) `S[:, t=-1, :]`;
as in the paper the colour range of (b) and (c) is capped at the 95th percentile of the
off-diagonal entries because the self terms dominate.

Windows: real H36M test motion (S9, S11; `realdata/h36m_motion`, MPII-16 mm, root-relative)
when present, else smooth synthetic trajectories.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from keras_pose3d import skeleton
from keras_pose3d.cli import exits_cleanly
from keras_pose3d.data.windows import make_windows, window_offsets

REALDATA_MOTION = (
    pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "realdata" / "h36m_motion"
)


def sample_windows(window: int, mode: str, count: int = 256, seed: int = 0) -> np.ndarray:
    """(count, N, 16, 3) windows of root-relative mm poses (real test motion or synthetic)."""
    rng = np.random.default_rng(seed)
    seqs = []
    for subject in ("S9", "S11"):
        path = REALDATA_MOTION / f"{subject}.npz"
        if path.exists():
            with np.load(path) as z:
                for key in sorted(k for k in z.files if k.endswith("/global_rot"))[::4]:
                    seqs.append(skeleton.h36m17_to_mpii(np.asarray(z[key], np.float64)))
    if not seqs:  # synthetic: a standard-ish pose with smooth per-joint oscillations
        t = np.arange(400)[:, None, None] / 25.0
        base = rng.normal(scale=300.0, size=(1, 16, 3))
        phase = rng.uniform(0, 2 * np.pi, size=(1, 16, 3))
        seqs.append(base + 60.0 * np.sin(2 * np.pi * 0.8 * t + phase))
    out = []
    for _ in range(count):
        seq = seqs[rng.integers(len(seqs))]
        windows = make_windows(seq, window, mode)
        w = windows[rng.integers(len(windows))]
        out.append(w - w[:, skeleton.ROOT : skeleton.ROOT + 1])
    return np.stack(out).astype(np.float32)


def sensitivity(model, windows: np.ndarray, batch: int = 64) -> np.ndarray:
    """(J_out, N, J_in) mean Frobenius norm of the 3 x 3 Jacobian blocks over the windows."""
    import tensorflow as tf

    total = None
    for i in range(0, len(windows), batch):
        x = tf.constant(windows[i : i + batch])
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reshape(model(x, training=False), [tf.shape(x)[0], -1])  # (B, J*3)
        jac = tape.batch_jacobian(y, x).numpy()  # (B, J*3, N, J, 3)
        b, _, n, j, _ = jac.shape
        blocks = jac.reshape(b, j, 3, n, j, 3)
        norms = np.sqrt(np.sum(blocks**2, axis=(2, 5)))  # (B, J_out, N, J_in)
        total = norms.sum(axis=0) if total is None else total + norms.sum(axis=0)
    return total / len(windows)


def plot(sens: np.ndarray, offsets: np.ndarray, out: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = skeleton.MPII_SHORT_NAMES
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.2))
    per_frame = sens.sum(axis=2)  # (J_out, N)
    im = axes[0].imshow(per_frame, aspect="auto", cmap="magma")
    axes[0].set_xticks(range(len(offsets)), [str(o) for o in offsets], fontsize=7)
    axes[0].set_yticks(range(16), names, fontsize=7)
    axes[0].set_xlabel("input frame offset t")
    axes[0].set_title("(a) output joint vs input frame")
    fig.colorbar(im, ax=axes[0])
    for ax, offset, label in ((axes[1], 0, "(b) t = 0"), (axes[2], -1, "(c) t = -1")):
        k = int(np.flatnonzero(offsets == offset)[0])
        mat = sens[:, k, :]
        off_diag = mat[~np.eye(16, dtype=bool)]
        im = ax.imshow(mat, cmap="magma", vmax=np.percentile(off_diag, 95))
        ax.set_xticks(range(16), names, rotation=90, fontsize=7)
        ax.set_yticks(range(16), names, fontsize=7)
        ax.set_xlabel("input joint")
        ax.set_ylabel("output joint")
        ax.set_title(f"{label} (colours capped)")
        fig.colorbar(im, ax=ax)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def run(
    tp_net_path: str | pathlib.Path, out: str | pathlib.Path = "fig5.png", samples: int = 256
) -> dict:
    """Sensitivity maps of a saved TPNet, plotted to `out`; returns sensitivity and offsets."""
    import keras

    from keras_pose3d.models.tp_net import TPNet  # noqa: F401 (registration)

    path = pathlib.Path(tp_net_path)
    if not path.exists():
        raise FileNotFoundError(f"TP-Net model {path} not found")
    model = keras.saving.load_model(path, compile=False)
    windows = sample_windows(model.window, model.mode, samples)
    sens = sensitivity(model, windows)
    offsets = window_offsets(model.window, model.mode)
    pathlib.Path(out).parent.mkdir(parents=True, exist_ok=True)
    plot(
        sens,
        offsets,
        out,
        f"Fig. 5 analogue: TP-Net {model.mode} N={model.window}, {len(windows)} windows",
    )
    per_offset = sens.sum(axis=(0, 2))
    print(f"wrote {out}; total sensitivity per frame offset:")
    print("  " + "  ".join(f"{o}:{v:.2f}" for o, v in zip(offsets, per_offset)))
    return {"sensitivity": sens, "offsets": offsets}


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fig. 5: TP-Net sensitivity maps.")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--tp-net", help="a saved TPNet (.keras)")
    src.add_argument("--run", help="run directory holding tp_net.keras")
    parser.add_argument("--out", default="fig5.png")
    parser.add_argument("--samples", type=int, default=256)
    args = parser.parse_args(argv)
    from keras_pose3d.models.loading import TP_NET_FILE

    path = pathlib.Path(args.tp_net) if args.tp_net else pathlib.Path(args.run) / TP_NET_FILE
    run(path, args.out, args.samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
