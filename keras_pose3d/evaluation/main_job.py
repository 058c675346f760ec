"""The main job's closing table: what each part of the method does to the validation poses.

One row per model state, all on the same 3D validation sequences (root-relative camera mm,
ground-truth root depth, the paper's protocol): the untrained SAP-Net, SAP-Net after each
training stage (the trainer's per-stage checkpoints), and TP-Net over the final SAP-Net's
predictions. Columns, all from `keras_pose3d.metrics`:

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
