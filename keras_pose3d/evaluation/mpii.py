"""MPII PCKh@0.5 table (the 2D half of SAP-Net), both mean conventions labelled.

`mpii_tables` wraps `metrics.pckh_table` (strict `<`, head size 0.6 x head-box diagonal,
pelvis and thorax excluded). Predictions and ground truth must be in original-image pixels in
the same index base (MPII's are 1-based). `load_tompson_gt` reads Tompson's validation file
(`mpii_val_gt_tompson_format.mat`: `pos_gt_src`, `headboxes_src`, `jnt_missing`).
"""

from __future__ import annotations

import pathlib

import numpy as np

from keras_pose3d import metrics
from keras_pose3d.evaluation.tables import Table

# Known answer (evaluation.md 3): Newell's 8-stack hourglass, released validation predictions.
REFERENCE_HOURGLASS = {"Head": 96.79, "Shoulder": 95.19, "Elbow": 90.08, "Wrist": 85.32,
                       "Hip": 87.48, "Knee": 84.26, "Ankle": 80.73,
                       metrics.MEAN_UNWEIGHTED: 88.64, metrics.MEAN_WEIGHTED: 89.09}


def mpii_tables(pred_px: np.ndarray, gt_px: np.ndarray, headboxes: np.ndarray,
                visible: np.ndarray) -> dict:
    """PCKh@0.5 per part and both means.

    Args:
        pred_px, gt_px: (N, 16, 2) original-image pixels.
        headboxes: (N, 2, 2) [[x1, y1], [x2, y2]].
        visible: (N, 16) 1 where the joint is annotated.
    Returns:
        {"pckh": {part / mean name: %}, "n_persons": N}.
    """
    return {"pckh": metrics.pckh_table(pred_px, gt_px, headboxes, visible),
            "n_persons": len(pred_px)}


def load_tompson_gt(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """Tompson's MPII validation ground truth -> gt (N,16,2), headboxes (N,2,2), visible (N,16),
    and `pred` (N,16,2): Tompson et al.'s own predictions stored in the same file."""
    import scipy.io

    mat = scipy.io.loadmat(str(path))
    for key in ("pos_gt_src", "headboxes_src", "jnt_missing"):
        if key not in mat:
            raise ValueError(f"{path}: key {key!r} missing; expected Tompson's MPII format")
    out = {
        "gt": np.transpose(mat["pos_gt_src"], (2, 0, 1)).astype(np.float64),
        "headboxes": np.transpose(mat["headboxes_src"], (2, 0, 1)).astype(np.float64),
        "visible": (1 - np.asarray(mat["jnt_missing"]).T).astype(np.float64),
    }
    if "pos_pred_src" in mat:
        out["pred"] = np.transpose(mat["pos_pred_src"], (2, 0, 1)).astype(np.float64)
    return out


def mpii_markdown_tables(result: dict, reference: dict | None = None) -> list[Table]:
    names = list(result["pckh"])
    rows = [["ours"] + [result["pckh"][k] for k in names]]
    ref = REFERENCE_HOURGLASS if reference is None else reference
    rows.append(["reference: stacked hourglass (8 stacks, released predictions)"]
                + [ref.get(k) for k in names])
    return [Table(f"MPII {metrics.PCKH_NAME} (Tompson validation split)", ["method"] + names,
                  rows, [f"{result['n_persons']} persons. Pelvis and thorax excluded; strict <. "
                         "The paper reports no PCKh; the reference row is the known answer the "
                         "implementation is checked against."])]
