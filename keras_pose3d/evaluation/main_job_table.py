"""The main job's closing table: what each part of the method does to the held-out poses.

One row per model state, all on the same 3D sequences of the reported split (the test split;
root-relative camera mm, ground-truth root depth, the paper's protocol): the untrained SAP-Net,
SAP-Net after each training stage, the control arm (the structure stages without the structure
losses), the final SAP-Net smoothed by a causal filter, and TP-Net over the final SAP-Net's
predictions (`training/main_job.py` makes them). Columns, all from `keras_pose3d.metrics`:

* MPJPE (Protocol 1, root-aligned) and PA-MPJPE (Protocol 2, Procrustes-aligned), mm;
* % illegal elbows and knees (Eq. 1, `illegal_angle_rate`);
* left/right bone-length difference per limb pair (`symmetry_error`: upper arm, forearm,
  thigh, shin), mm, and its mean;
* bone-length std over time per limb pair (`limb_bone_length_std`, per sequence, then the mean
  over sequences), mm, and its mean: what TP-Net's temporal context should lower.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_pose3d import metrics, skeleton


@dataclasses.dataclass(frozen=True)
class Row:
    """One model state's figures (see the module docstring)."""

    name: str
    mpjpe: float
    pa_mpjpe: float
    illegal_pct: float
    lr_diff: tuple[float, ...]  # per limb pair, skeleton.SYMMETRY_BONE_NAMES order
    bone_std: tuple[float, ...]

    @property
    def lr_diff_mean(self) -> float:
        return float(np.mean(self.lr_diff))

    @property
    def bone_std_mean(self) -> float:
        return float(np.mean(self.bone_std))

    def to_dict(self) -> dict:
        return dict(
            dataclasses.asdict(self),
            lr_diff_mean=self.lr_diff_mean,
            bone_std_mean=self.bone_std_mean,
        )


def pose_row(name: str, pred: np.ndarray, gt: np.ndarray, sequence: np.ndarray) -> Row:
    """Figures of predictions against ground truth.

    Args:
        name: the row's label.
        pred, gt: (M, 16, 3) mm, rows sorted by sequence then frame.
        sequence: (M,) sequence id of each row.
    """
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    sequence = np.asarray(sequence)
    if pred.shape != gt.shape or pred.ndim != 3 or len(sequence) != len(pred):
        raise ValueError(
            f"pose_row({name!r}): pred {pred.shape}, gt {gt.shape} and sequence "
            f"{sequence.shape} must be (M, J, 3), (M, J, 3) and (M,)"
        )
    stds = [metrics.limb_bone_length_std(pred[sequence == s]) for s in np.unique(sequence)]
    return Row(
        name=name,
        mpjpe=float(np.mean(metrics.mpjpe(pred, gt, root=skeleton.ROOT))),
        pa_mpjpe=float(np.mean(metrics.pa_mpjpe(pred, gt))),
        illegal_pct=float(metrics.illegal_angle_rate(pred)),
        lr_diff=tuple(float(v) for v in metrics.symmetry_error(pred)),
        bone_std=tuple(float(v) for v in np.mean(stds, axis=0)),
    )


def format_table(rows: list[Row]) -> str:
    """A Markdown table of `rows` (mm, except % illegal)."""
    pairs = "/".join(skeleton.SYMMETRY_BONE_NAMES)
    head = (
        f"| model | MPJPE | PA-MPJPE | % illegal | L/R diff ({pairs}) | mean | "
        f"bone-length std ({pairs}) | mean |"
    )
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.mpjpe:.1f} | {r.pa_mpjpe:.1f} | {r.illegal_pct:.1f} | "
            f"{' / '.join(f'{v:.0f}' for v in r.lr_diff)} | {r.lr_diff_mean:.1f} | "
            f"{' / '.join(f'{v:.1f}' for v in r.bone_std)} | {r.bone_std_mean:.1f} |"
        )
    return "\n".join(lines)


FIGURES = ("mpjpe", "pa_mpjpe", "illegal_pct", "lr_diff_mean", "bone_std_mean")
FIGURE_LABELS = {
    "mpjpe": "MPJPE",
    "pa_mpjpe": "PA-MPJPE",
    "illegal_pct": "% illegal",
    "lr_diff_mean": "L/R diff",
    "bone_std_mean": "bone-length std",
}
TP_NET_ROW = "SAP-Net + TP-Net"


def control_row_name(stage_name: str) -> str:
    return f"control: after {stage_name} (no structure losses)"


def effects(rows: list[dict], last_stage: str) -> dict[str, dict[str, float]]:
    """Differences between arms (row dicts of `Row.to_dict`), FIGURES each, negative = lower:

    * "structure_vs_control": the paper's stages minus the control arm, both after the last
      stage (equal training: the structure losses' effect);
    * "tp_net_vs_sap_net": TP-Net minus the final SAP-Net;
    * "tp_net_vs_filter": TP-Net minus the filter arm.
    An arm absent from `rows` leaves its entries out.
    """
    by_name = {r["name"]: r for r in rows}
    final = by_name.get(f"after {last_stage}")
    control = by_name.get(control_row_name(last_stage))
    tp_net = by_name.get(TP_NET_ROW)
    filtered = next(
        (r for r in rows if r["name"].startswith("SAP-Net + ") and r["name"] != TP_NET_ROW), None
    )
    pairs = {
        "structure_vs_control": (final, control),
        "tp_net_vs_sap_net": (tp_net, final),
        "tp_net_vs_filter": (tp_net, filtered),
    }
    return {
        key: {f: a[f] - b[f] for f in FIGURES}
        for key, (a, b) in pairs.items()
        if a is not None and b is not None
    }


EFFECT_LABELS = {
    "structure_vs_control": "structure losses: paper stages minus control arm (equal training)",
    "tp_net_vs_sap_net": "TP-Net minus the final SAP-Net",
    "tp_net_vs_filter": "TP-Net minus the filter arm",
}


def format_report(
    rows: list[Row], *, split: str, last_stage: str, plots: dict[str, str] | None = None
) -> str:
    """The table (`format_table`), the differences between arms (`effects`) and links to the
    plots (name -> path relative to the Markdown)."""
    held_out = (
        "3D sequences never used to choose anything"
        if split == "test"
        else "no test split: the figures are on the split used for choices"
    )
    lines = [
        f"{split} split ({held_out}), mm; L/R diff and bone-length std per limb pair",
        "",
        format_table(rows),
        "",
        "| difference | " + " | ".join(FIGURE_LABELS[f] for f in FIGURES) + " |",
        "|---|" + "---|" * len(FIGURES),
    ]
    for key, diff in effects([r.to_dict() for r in rows], last_stage).items():
        lines.append(
            f"| {EFFECT_LABELS[key]} | " + " | ".join(f"{diff[f]:+.1f}" for f in FIGURES) + " |"
        )
    if plots:
        lines += ["", "Plots: " + ", ".join(f"[{name}]({path})" for name, path in plots.items())]
    return "\n".join(lines)
