"""Claim 1: do the structure losses help weakly supervised 3D lifting on real human motion?

    python -m experiments.weak_supervision --out experiments/results_weak_supervision.md
    python -m experiments.weak_supervision --render experiments/results_weak_supervision.json

The raw results go to `results_weak_supervision.json` beside the Markdown, which is a pure
function of that file (`to_markdown`): `--render` rewrites it without a run.

Setting (an analogue of the paper's Tables 3 and 6 that fits a CPU budget):

* Real 3D motion (`realdata/h36m_motion`, `/global_rot` arrays, 25 fps, subsampled by
  `--every`) placed in the H36M world and seen by each subject's four real cameras from
  `metadata.xml` (`experiments/common.py`), projected **with lens distortion**, mapped to MPII-16.
* A small MLP (two hidden ReLU layers) stands in for SAP-Net's depth regressor: it maps the
  root-centred, normalised 2D pose (Zhou et al.'s crop units) to the 16 normalised
  root-relative depths. 2D is ground truth, so only the depth is learned; MPJPE therefore
  measures the lifting alone (joints are put on their true rays, GT root depth).
* Training subjects S1, S5, S6, S7, S8 (duplicated S5 sequences dropped). A fraction
  `--fraction` of training *sequences x cameras* carries 3D labels (depth L2 loss, Zhou's L_e);
  all the other samples are 2D-only and receive only the weak losses of the variant:
  baseline (none), +L_g (Zhou's geometric loss), +L_g+L_a (illegal angle), +L_g+L_a+L_s
  (symmetry): the paper's successive addition (Table 3), with its weights 0.03 / 0.03 / 0.05
  times `--lambda-scale`. As in the paper (Sect. 4.3) the weak losses start after a warm start
  on the labelled samples (`--warm-frac` of the steps). Same steps, data and seed per variant.
* Test: S9, S11, all four cameras. MPJPE (Protocol 1, MPII-16, root counted), PA-MPJPE, and
  structural validity (Table 6 analogue): mean |L-R| limb bone length, per-sequence std of limb
  bone lengths, % illegal elbows/knees (Eq. 1's test, `keras_pose3d.metrics`).

The losses are the project's own (`keras_pose3d.losses`), the metrics `keras_pose3d.metrics`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np

from experiments import common
from keras_pose3d import metrics, skeleton

VARIANTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("baseline (3D labels only)", ()),
    ("+ L_g", ("geometric",)),
    ("+ L_g + L_a", ("geometric", "illegal_angle")),
    ("+ L_g + L_a + L_s", ("geometric", "illegal_angle", "symmetry")),
)
PAPER_LAMBDA = {"geometric": 0.03, "illegal_angle": 0.03, "symmetry": 0.05}
# Paper Table 3 (Protocol 1 mm, full SAP-Net on images), for the reference column.
PAPER_TABLE3 = {
    "baseline (3D labels only)": 58.50,
    "+ L_g": 58.30,
    "+ L_g + L_a": 56.20,
    "+ L_g + L_a + L_s": 55.51,
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Experiment settings (defaults: the ~20-minute run on 2 CPU cores)."""

    fraction: float = 0.05  # labelled share of training sequence x camera streams
    every: int = 10  # keep every n-th 25 fps frame (2.5 fps)
    steps: int = 2000
    warm_frac: float = 0.4  # share of steps trained on labelled samples only (warm start)
    batch: int = 128  # labelled batch; the unlabelled batch has the same size
    hidden: int = 256
    learning_rate: float = 1e-3
    lambda_scale: float = 1.0
    seeds: tuple[int, ...] = (0, 1, 2)
    max_sequences: int | None = None  # per subject (quick mode)


QUICK = Config(every=50, steps=80, batch=64, hidden=32, seeds=(0,), max_sequences=2, fraction=0.2)


# ----------------------------------------------------------------------------------------------
# Data.
# ----------------------------------------------------------------------------------------------
def build_samples(
    sequences: list[common.Sequence], cameras: dict, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Places each sequence once in the world and views it with the subject's 4 cameras.

    Returns:
        dict of arrays over N samples: xy (N,16,2), z (N,16) normalised; scale, root_depth, fx
        (N,); rays (N,16,3); gt_mm (N,16,3) root-relative camera mm; stream (N,) int id of the
        (sequence, camera) stream; action (N,) str; outside (N,) bool (a joint leaves the image).
    """
    parts: dict[str, list] = {
        k: []
        for k in (
            "xy",
            "z",
            "scale",
            "root_depth",
            "fx",
            "rays",
            "gt_mm",
            "stream",
            "action",
            "outside",
        )
    }
    stream = 0
    for seq in sequences:
        world = common.place_in_world(seq.poses, rng)
        for (subject, _), camera in sorted(cameras.items()):
            if subject != seq.subject:
                continue
            cam, uv = common.to_camera_mpii(world, camera)
            n = len(cam)
            fx = np.full(n, camera.fx)
            norm = common.zhou_normalise(cam, uv, fx)
            for key in ("xy", "z", "scale", "root_depth"):
                parts[key].append(norm[key])
            parts["fx"].append(fx.astype(np.float32))
            parts["rays"].append(cam / cam[..., 2:3])
            parts["gt_mm"].append(cam - cam[:, skeleton.ROOT : skeleton.ROOT + 1])
            parts["stream"].append(np.full(n, stream))
            parts["action"].append(np.full(n, seq.action, dtype=object))
            out = (
                (uv[..., 0] < 0)
                | (uv[..., 0] > camera.width - 1)
                | (uv[..., 1] < 0)
                | (uv[..., 1] > camera.height - 1)
            ).any(axis=-1)
            parts["outside"].append(out)
            stream += 1
    return {k: np.concatenate(v) for k, v in parts.items()}


# ----------------------------------------------------------------------------------------------
# Model and training.
# ----------------------------------------------------------------------------------------------
def train_variant(
    train: dict, labelled: np.ndarray, losses: tuple[str, ...], cfg: Config, seed: int
):
    """Trains one depth MLP; returns a function xy (N,16,2) -> z (N,16)."""
    import keras
    import tensorflow as tf

    from keras_pose3d.losses import depth_loss, geometric_loss, illegal_angle_loss, symmetry_loss

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((skeleton.NUM_JOINTS * 2,)),
            keras.layers.Dense(cfg.hidden, activation="relu"),
            keras.layers.Dense(cfg.hidden, activation="relu"),
            keras.layers.Dense(skeleton.NUM_JOINTS),
        ]
    )
    opt = keras.optimizers.Adam(cfg.learning_rate)
    lam = {k: PAPER_LAMBDA[k] * cfg.lambda_scale for k in losses}
    weak_fns = {
        "geometric": geometric_loss,
        "illegal_angle": illegal_angle_loss,
        "symmetry": symmetry_loss,
    }

    xy = tf.constant(train["xy"].reshape(len(train["xy"]), -1))  # (N, 32)
    z = tf.constant(train["z"])
    lab_idx = tf.constant(np.flatnonzero(labelled))
    unl_idx = tf.constant(np.flatnonzero(~labelled))

    @tf.function
    def step(weak_on):
        il = tf.gather(lab_idx, tf.random.uniform([cfg.batch], 0, tf.size(lab_idx), tf.int32))
        iu = tf.gather(unl_idx, tf.random.uniform([cfg.batch], 0, tf.size(unl_idx), tf.int32))
        with tf.GradientTape() as tape:
            pred_l = model(tf.gather(xy, il), training=True)
            loss = tf.reduce_mean(depth_loss(pred_l, tf.gather(z, il)))
            if lam:
                xy_u = tf.gather(xy, iu)
                pred_u = model(xy_u, training=True)
                # Eq. 3: ground-truth x, y with the predicted depth.
                pose_u = tf.concat(
                    [tf.reshape(xy_u, [-1, skeleton.NUM_JOINTS, 2]), pred_u[..., None]], axis=-1
                )  # (B, 16, 3)
                weak = tf.add_n([w * tf.reduce_mean(weak_fns[k](pose_u)) for k, w in lam.items()])
                loss += weak_on * weak
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    warm = int(cfg.warm_frac * cfg.steps)
    for i in range(cfg.steps):
        step(tf.constant(0.0 if i < warm else 1.0))

    def predict(xy_test: np.ndarray) -> np.ndarray:
        return model.predict(xy_test.reshape(len(xy_test), -1), batch_size=4096, verbose=0)

    return predict


def evaluate(test: dict, z_pred: np.ndarray) -> dict:
    """Protocol 1/2 and structural validity of predicted depths on the test samples."""
    pred = common.depth_to_camera_mm(
        z_pred, test["scale"], test["root_depth"], test["fx"], test["rays"]
    )
    gt = test["gt_mm"]
    p1 = metrics.grouped_means(metrics.mpjpe(pred, gt, root=skeleton.ROOT), test["action"])
    p2 = metrics.grouped_means(metrics.pa_mpjpe(pred, gt), test["action"])
    streams = np.unique(test["stream"])
    std = np.mean(
        [metrics.limb_bone_length_std(pred[test["stream"] == s]) for s in streams], axis=0
    )
    return {
        "mpjpe_action_mean": p1.action_mean,
        "mpjpe_frame_mean": p1.frame_mean,
        "pa_mpjpe_action_mean": p2.action_mean,
        "symmetry_mm": metrics.symmetry_error(pred).tolist(),
        "bone_std_mm": std.tolist(),
        "illegal_pct": metrics.illegal_angle_rate(pred),
        "per_action_mpjpe": p1.per_group,
    }


# ----------------------------------------------------------------------------------------------
# Driver.
# ----------------------------------------------------------------------------------------------
def split_labelled(train: dict, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask: whole (sequence, camera) streams are labelled, `fraction` of them (>= 1)."""
    streams = np.unique(train["stream"])
    k = max(1, round(fraction * len(streams)))
    chosen = rng.choice(streams, size=k, replace=False)
    return np.isin(train["stream"], chosen)


def run(cfg: Config, train_seqs, test_seqs, cameras, log=print) -> dict:
    """Builds data, trains every variant for every seed, evaluates. Returns a results dict."""
    rng = np.random.default_rng(1234)
    train = build_samples(train_seqs, cameras, rng)
    test = build_samples(test_seqs, cameras, rng)
    log(
        f"train samples {len(train['z'])} ({train['outside'].mean():.1%} with a joint outside "
        f"the image), test samples {len(test['z'])}"
    )
    gt_eval = evaluate(test, test["z"])  # oracle depth: the floor of this setting
    results: dict = {
        "config": dataclasses.asdict(cfg),
        "n_train": len(train["z"]),
        "n_test": len(test["z"]),
        "oracle": gt_eval,
        "variants": {},  # name -> one result per seed, in the order of config["seeds"]
    }
    results["n_labelled"] = []  # per seed, in the order of config["seeds"]
    for seed in cfg.seeds:
        labelled = split_labelled(train, cfg.fraction, np.random.default_rng(seed))
        results["n_labelled"].append(int(labelled.sum()))
        for name, losses in VARIANTS:
            t0 = time.time()
            predict = train_variant(train, labelled, losses, cfg, seed)
            res = evaluate(test, predict(test["xy"]))
            results["variants"].setdefault(name, []).append(res)
            log(
                f"seed {seed} {name:26s} MPJPE {res['mpjpe_action_mean']:6.1f} mm  "
                f"PA {res['pa_mpjpe_action_mean']:5.1f}  illegal {res['illegal_pct']:4.1f}%  "
                f"sym {np.mean(res['symmetry_mm']):5.1f}  ({time.time() - t0:.0f} s)"
            )
    return results


def _ms(values: list[float], signed: bool = False) -> str:
    """Mean ± sample std (the mean alone for one value), one decimal; `signed`: with + / -."""
    values = np.asarray(values, dtype=np.float64)
    mean = f"{values.mean():+.1f}" if signed else f"{values.mean():.1f}"
    if len(values) == 1:
        return mean
    return f"{mean} ± {values.std(ddof=1):.1f}"


# Figures whose paired difference to the baseline is reported: key -> (label, per-run value).
PAIRED_FIGURES = {
    "mpjpe_action_mean": ("MPJPE action mean (mm)", lambda r: r["mpjpe_action_mean"]),
    "pa_mpjpe_action_mean": ("PA-MPJPE (mm)", lambda r: r["pa_mpjpe_action_mean"]),
    "symmetry_mean": ("L/R limb difference, mean of 4 (mm)", lambda r: np.mean(r["symmetry_mm"])),
    "bone_std_mean": ("bone std, mean of 4 limbs (mm)", lambda r: np.mean(r["bone_std_mm"])),
    "illegal_pct": ("% illegal elbows+knees", lambda r: r["illegal_pct"]),
}


def paired_differences(results: dict) -> dict[str, dict[str, list[float]]]:
    """variant -> figure -> per-seed (variant - baseline) values, same seed = same labelled
    streams, initialisation and batches. The baseline itself is left out."""
    base_name = VARIANTS[0][0]
    base = results["variants"][base_name]
    out = {}
    for name, runs in results["variants"].items():
        if name == base_name:
            continue
        out[name] = {
            key: [float(fn(r) - fn(b)) for r, b in zip(runs, base, strict=True)]
            for key, (_, fn) in PAIRED_FIGURES.items()
        }
    return out


def to_markdown(stored: dict) -> str:
    """The results Markdown: a pure function of the stored JSON (`common.write_results`)."""
    results = stored["results"]
    cfg = results["config"]
    seeds = ", ".join(str(s) for s in cfg["seeds"])
    labelled = ", ".join(str(n) for n in results["n_labelled"])
    lines = [
        "# Claim 1: structure losses for weakly supervised lifting on real H36M motion",
        "",
        f"Command: `{stored['command']}`",
        "",
        (
            f"Train samples {results['n_train']} (S1 S5 S6 S7 S8, every {cfg['every']}th 25 fps "
            f"frame, 4 real cameras), labelled {labelled} for seeds {seeds} "
            f"({cfg['fraction']:.0%} of the sequence x camera streams); test samples "
            f"{results['n_test']} (S9 S11). Seeds {seeds}: mean ± sample std. "
            f"MLP hidden {cfg['hidden']}, {cfg['steps']} steps (warm start {cfg['warm_frac']:.0%}), "
            f"batch {cfg['batch']}+{cfg['batch']}, λ = paper × {cfg['lambda_scale']}."
        ),
        "",
        (
            f"Protocol: {metrics.PROTOCOL_1} and {metrics.PROTOCOL_2} on MPII-16 with the root "
            "counted, ground-truth 2D and root depth, so the error is the depth lifting alone. "
            "Paper column: Table 3 (full SAP-Net on images; not the same setting)."
        ),
        "",
        (
            "| variant | MPJPE action mean (mm) | Δ vs baseline, paired per seed | MPJPE frame mean "
            "| PA-MPJPE | paper Table 3 |"
        ),
        "|---|---|---|---|---|---|",
    ]
    base = np.array([r["mpjpe_action_mean"] for r in results["variants"][VARIANTS[0][0]]])
    for name, runs in results["variants"].items():
        mp = np.array([r["mpjpe_action_mean"] for r in runs])
        lines.append(
            f"| {name} | {_ms(mp)} | {_ms(mp - base, signed=True)} | "
            f"{_ms([r['mpjpe_frame_mean'] for r in runs])} | "
            f"{_ms([r['pa_mpjpe_action_mean'] for r in runs])} | {PAPER_TABLE3[name]:.2f} |"
        )
    lines += [
        "",
        (
            "Structural validity (Table 6 analogue; ground truth row = real motion through the same "
            "reconstruction):"
        ),
        "",
        (
            "| variant | sym upper arm | sym forearm | sym thigh | sym shin | bone std (mean of 4 "
            "limbs) | % illegal elbows+knees |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    rows = [("ground truth depth", [results["oracle"]])] + list(results["variants"].items())
    for name, runs in rows:
        sym = np.array([r["symmetry_mm"] for r in runs])
        std = np.array([np.mean(r["bone_std_mm"]) for r in runs])
        lines.append(
            f"| {name} | "
            + " | ".join(_ms(sym[:, i]) for i in range(4))
            + f" | {_ms(std)} | {_ms([r['illegal_pct'] for r in runs])} |"
        )
    n = len(cfg["seeds"])
    lines += [
        "",
        (
            f"Paired differences to the baseline (variant - baseline in the same seed: same "
            f"labelled streams, initialisation and batches), per seed ({seeds}), mean ± sample "
            f"std over the {n} seeds, and in how many seeds the variant is lower:"
        ),
        "",
        "| variant | figure | per seed | Δ mean ± std | seeds lower |",
        "|---|---|---|---|---|",
    ]
    for name, figures in paired_differences(results).items():
        for key, values in figures.items():
            per_seed = ", ".join(f"{v:+.1f}" for v in values)
            lower = sum(v < 0 for v in values)
            lines.append(
                f"| {name} | {PAIRED_FIGURES[key][0]} | {per_seed} | {_ms(values, signed=True)} | {lower}/{n} |"
            )
    lines += ["", common.run_footer(stored)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_results_arguments(parser, "experiments/results_weak_supervision.md")
    parser.add_argument("--fraction", type=float, default=Config.fraction)
    parser.add_argument("--every", type=int, default=Config.every)
    parser.add_argument("--steps", type=int, default=Config.steps)
    parser.add_argument("--hidden", type=int, default=Config.hidden)
    parser.add_argument("--lambda-scale", type=float, default=Config.lambda_scale)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(Config.seeds))
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (seconds)")
    parser.add_argument("--motion-dir", default=str(common.MOTION_DIR))
    args = parser.parse_args(argv)
    if args.render:
        print(common.render(args.render, to_markdown))
        return {}
    if args.quick:
        cfg = QUICK
    else:
        cfg = Config(
            fraction=args.fraction,
            every=args.every,
            steps=args.steps,
            hidden=args.hidden,
            lambda_scale=args.lambda_scale,
            seeds=tuple(args.seeds),
        )
    motion_dir = common.pathlib.Path(args.motion_dir)
    if not common.motion_available(motion_dir):
        print(f"real motion not found under {motion_dir}; nothing to do", file=sys.stderr)
        return {}

    def compute():
        cameras = common.load_cameras()
        train = common.load_motion(
            common.TRAIN_SUBJECTS, motion_dir, cfg.every, max_sequences=cfg.max_sequences
        )
        test = common.load_motion(
            common.TEST_SUBJECTS, motion_dir, cfg.every, max_sequences=cfg.max_sequences
        )
        return run(cfg, train, test, cameras)

    return common.run_and_write(
        "experiments.weak_supervision", argv, compute, to_markdown, args.out
    )


if __name__ == "__main__":
    main()
