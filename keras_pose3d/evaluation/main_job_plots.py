"""The main job's plots (RUN_DIR/plots/*.png), linked from its table's Markdown.

* `validation_curves.png`: validation MPJPE over the global step, per stage, for the paper's
  schedule and the control arm (the trainers' RUN_DIR/metrics.json and control/metrics.json);
* `per_joint_error.png`: test MPJPE per joint, per arm;
* `eq1_distribution.png`: the distribution of Eq. 1's value (normalised: the cosine between
  the limb plane's normal and the lower limb; below 0 is illegal) per elbow / knee, per arm;
* `test_frames.png`: a few test frames, predicted (final SAP-Net, TP-Net) and true skeletons.

Matplotlib with the Agg backend (no display); each figure is written atomically.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from keras_pose3d import atomic_files, metrics, skeleton

PLOT_DIR = "plots"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: pathlib.Path) -> None:
    atomic_files.write_with(path, lambda tmp: fig.savefig(tmp, dpi=110), suffix=".png")
    _pyplot().close(fig)


def validation_curves(run_dir: pathlib.Path, path: pathlib.Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, metrics_path, style in (
        ("paper schedule", run_dir / "metrics.json", "-o"),
        ("control (no structure losses)", run_dir / "control" / "metrics.json", "--s"),
    ):
        if not metrics_path.is_file():
            continue
        entries = json.loads(metrics_path.read_text()).get("validation", [])
        for stage in dict.fromkeys(e["stage"] for e in entries):
            points = [(e["global_step"], e["mpjpe_mm"]) for e in entries if e["stage"] == stage]
            steps, values = zip(*points)
            ax.plot(steps, values, style, markersize=3, label=f"{label}: {stage}")
    ax.set_xlabel("global step")
    ax.set_ylabel("validation MPJPE (mm)")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def per_joint_error(arms: dict[str, dict], path: pathlib.Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(len(arms), 1)
    x = np.arange(skeleton.NUM_JOINTS)
    for i, (name, a) in enumerate(arms.items()):
        err = np.linalg.norm(
            metrics.root_align(np.asarray(a["pred"], np.float64))
            - metrics.root_align(np.asarray(a["gt"], np.float64)),
            axis=-1,
        ).mean(axis=0)
        ax.bar(x + i * width, err, width, label=name)
    ax.set_xticks(x + 0.4 - width / 2, skeleton.MPII_JOINTS, rotation=60, fontsize=7)
    ax.set_ylabel("test MPJPE (mm)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    _save(fig, path)


def eq1_distribution(arms: dict[str, dict], path: pathlib.Path) -> None:
    plt = _pyplot()
    limbs = [limb[0] for limb in skeleton.ANGLE_LIMBS]
    fig, axes = plt.subplots(1, len(limbs), figsize=(12, 3.2), sharey=True)
    bins = np.linspace(-1.0, 1.0, 41)
    for name, a in arms.items():
        values = metrics.illegal_angle_values(a["pred"], normalised=True)
        for j, ax in enumerate(axes):
            ax.hist(values[:, j], bins=bins, histtype="step", density=True, label=name)
    gt = next(iter(arms.values()))["gt"]
    truth = metrics.illegal_angle_values(gt, normalised=True)
    for j, ax in enumerate(axes):
        ax.hist(
            truth[:, j],
            bins=bins,
            histtype="stepfilled",
            alpha=0.2,
            density=True,
            color="k",
            label="ground truth",
        )
        ax.axvline(0.0, color="k", linewidth=0.8)
        ax.set_title(f"{limbs[j]} (< 0: illegal)", fontsize=8)
        ax.set_xlabel("Eq. 1, normalised")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    _save(fig, path)


def test_frames(arms: dict[str, dict], path: pathlib.Path, count: int = 3) -> None:
    plt = _pyplot()
    shown = {k: v for k, v in arms.items() if k.startswith("after ") or k.endswith("TP-Net")}
    final = list(shown)[-2:] if len(shown) > 1 else list(shown)  # final SAP-Net and TP-Net
    first = arms[final[0]]
    frames = np.linspace(0, len(first["gt"]) - 1, count).astype(int)
    fig = plt.figure(figsize=(4 * count, 4))
    for i, f in enumerate(frames):
        ax = fig.add_subplot(1, count, i + 1, projection="3d")
        gt = metrics.root_align(np.asarray(first["gt"][f], np.float64))
        _skeleton(ax, gt, "k", "ground truth")
        for name, colour in zip(final, ("tab:red", "tab:blue")):
            _skeleton(
                ax, metrics.root_align(np.asarray(arms[name]["pred"][f], np.float64)), colour, name
            )
        ax.set_title(f"test row {f}", fontsize=8)
        ax.view_init(elev=10, azim=-80)
        if i == 0:
            ax.legend(fontsize=6)
    fig.tight_layout()
    _save(fig, path)


def _skeleton(ax, pose: np.ndarray, colour: str, label: str) -> None:
    # Camera axes: x right, y down, z forward; drawn with z as depth and -y up.
    for n, (child, parent) in enumerate(skeleton.BONES):
        a, b = pose[child], pose[parent]
        ax.plot(
            [a[0], b[0]],
            [a[2], b[2]],
            [-a[1], -b[1]],
            color=colour,
            label=label if n == 0 else None,
            linewidth=1.5,
        )


def write_all(run_dir, arms: dict[str, dict], stages, progress=print) -> dict[str, str]:
    """Every plot of the module docstring into RUN_DIR/plots; name -> path relative to RUN_DIR.

    `arms`: row name -> {"pred", "gt"} (M, J, 3) mm of the reported split, in table order.
    """
    run_dir = pathlib.Path(run_dir)
    out = run_dir / PLOT_DIR
    out.mkdir(parents=True, exist_ok=True)
    last = f"after {stages[-1].name}"
    compared = {
        k: v for k, v in arms.items() if k == last or not k.startswith(("after", "untrained"))
    }
    made = {}
    for name, file, draw in (
        ("validation curves", "validation_curves", lambda p: validation_curves(run_dir, p)),
        ("per-joint error per arm", "per_joint_error", lambda p: per_joint_error(compared, p)),
        ("Eq. 1 per limb per arm", "eq1_distribution", lambda p: eq1_distribution(compared, p)),
        ("test frames", "test_frames", lambda p: test_frames(arms, p)),
    ):
        path = out / f"{file}.png"
        draw(path)
        made[name] = str(path.relative_to(run_dir))
    progress(f"plots in {out}: {', '.join(p.name for p in sorted(out.glob('*.png')))}")
    return made
