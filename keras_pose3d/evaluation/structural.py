"""Structural validity of predicted poses (paper Table 6 and Sect. 5.2).

* symmetry: mean |left - right| length per limb pair (upper arm, forearm, thigh, shin);
* bone-length std across the frames of each sequence, averaged over sequences (Table 6's
  lower half; left and right of a limb averaged);
* % illegal elbows and knees under Eq. 1's test (`metrics.illegal_angle_rate`), overall and per
  limb. (The paper counts "illegal non-torso joint angles" with Akhter and Black's prior, [1];
  this is Eq. 1's own test, so the comparison with its 0.8 % is indicative only.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keras_pose3d import metrics, skeleton
from keras_pose3d.evaluation.tables import Table

# Paper Table 6 (3DHP, model trained on H36M), mm: bone -> (Zhou, SAP-Net, TP-Net).
PAPER_SYMMETRY = {
    "upper_arm": (37.8, 25.8, 23.9),
    "forearm": (50.7, 32.1, 33.9),
    "thigh": (43.4, 27.8, 24.8),
    "shin": (47.8, 38.2, 29.2),
}
PAPER_BONE_STD = {
    "upper_arm": (49.6, 39.8),
    "forearm": (66.0, 48.3),
    "thigh": (61.3, 48.8),
    "shin": (68.8, 48.3),
}


def structural_validity(poses_mm: np.ndarray, sequences: Sequence[str]) -> dict:
    """Table 6 figures for predicted MPII-16 poses.

    Args:
        poses_mm: (N, 16, 3) predictions, mm.
        sequences: (N,) sequence label of each frame (frames of one label are one video, in
            time order; the std is taken within each label).

    Returns:
        {"symmetry_mm": {bone: mm}, "bone_std_mm": {bone: mm}, "illegal_pct": float,
         "illegal_pct_per_limb": {limb: pct}, "n_frames", "n_sequences"}.
    """
    poses = np.asarray(poses_mm, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (skeleton.NUM_JOINTS, 3):
        raise ValueError(f"structural_validity: poses must be (N, 16, 3). Got {poses.shape}")
    seqs = np.asarray(sequences, dtype=object)
    if len(seqs) != len(poses):
        raise ValueError(f"structural_validity: {len(poses)} poses, {len(seqs)} sequence labels")
    names = skeleton.SYMMETRY_BONE_NAMES
    sym = metrics.symmetry_error(poses)
    labels = list(dict.fromkeys(seqs))
    std = np.mean([metrics.limb_bone_length_std(poses[seqs == s]) for s in labels], axis=0)
    per_limb = metrics.illegal_angle_rate(poses, per_limb=True)
    return {
        "symmetry_mm": dict(zip(names, sym.tolist())),
        "bone_std_mm": dict(zip(names, std.tolist())),
        "illegal_pct": metrics.illegal_angle_rate(poses),
        "illegal_pct_per_limb": dict(
            zip([limb[0] for limb in skeleton.ANGLE_LIMBS], per_limb.tolist())
        ),
        "n_frames": len(poses),
        "n_sequences": len(labels),
    }


def structural_markdown_tables(result: dict) -> list[Table]:
    names = skeleton.SYMMETRY_BONE_NAMES
    rows = [[f"symmetry |L-R|: {n}", result["symmetry_mm"][n], *PAPER_SYMMETRY[n]] for n in names]
    rows += [
        [f"bone length std: {n}", result["bone_std_mm"][n], None, *PAPER_BONE_STD[n]] for n in names
    ]
    rows.append(["% illegal elbows/knees (Eq. 1 test)", result["illegal_pct"], 1.4, 0.8, None])
    return [
        Table(
            "Table 6: structural validity",
            ["measure", "ours", "paper Zhou et al.", "paper SAP-Net", "paper TP-Net"],
            rows,
            [
                (
                    f"{result['n_frames']} frames in {result['n_sequences']} sequences; mm except the "
                    "last row. Paper: 3DHP, model trained on H36M; its illegal-angle figure uses another "
                    "joint-angle prior ([1] in the paper)."
                ),
                "Per limb % illegal: "
                + ", ".join(f"{k} {v:.1f}" for k, v in result["illegal_pct_per_limb"].items()),
            ],
        )
    ]
