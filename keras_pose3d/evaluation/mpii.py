"""MPII PCKh@0.5 (the 2D half of SAP-Net): Tompson's ground truth, records and the tables.

Protocol (evaluation.md 3): on Tompson's validation split, every annotated joint
(`jnt_missing == 0`) counts, wherever it lies; a joint is correct when its distance to the
ground truth is strictly below 0.5 x head size (0.6 x head-box diagonal); pelvis and thorax are
excluded. Predictions and ground truth are compared in original-image pixels, 1-based like
Tompson's file (`mpii_val_gt_tompson_format.mat`: `pos_gt_src`, `headboxes_src`,
`jnt_missing`, rows in the order of Newell's `valid.h5`).

`tables_from_records` maps a model's predictions from network-input pixels back to original
pixels (`evaluation.crop`), matches records to Tompson rows through `valid.h5` (meta/frame =
image index, person index at the end of meta/sequence) and scores against Tompson's ground
truth, not against the records' crop-clipped joints. `score` scores arrays already in Tompson
row order (a stored predictions file, `evaluation.predictions_file`).

Tables: the published layout (Head, Sho, Elb, Wri, Hip, Knee, Ank, Mean; two decimals; a
left/right pair pools its two joints, i.e. weights each by its annotated count; Mean weighted by
annotated joints, plus the MATLAB script's unweighted 14-joint mean), and every joint's PCKh
with its annotated count.
"""

from __future__ import annotations

import pathlib

import numpy as np

from keras_pose3d import metrics, skeleton
from keras_pose3d.evaluation.crop import input_to_original
from keras_pose3d.evaluation.tables import Table

# Known answer (evaluation.md 3): Newell's 8-stack hourglass, released validation predictions.
REFERENCE_HOURGLASS = {
    "Head": 96.79,
    "Shoulder": 95.19,
    "Elbow": 90.08,
    "Wrist": 85.32,
    "Hip": 87.48,
    "Knee": 84.26,
    "Ankle": 80.73,
    metrics.MEAN_UNWEIGHTED: 88.64,
    metrics.MEAN_WEIGHTED: 89.09,
}
# Published column names -> keys of `metrics.pckh_table`.
PUBLISHED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Head", "Head"),
    ("Sho", "Shoulder"),
    ("Elb", "Elbow"),
    ("Wri", "Wrist"),
    ("Hip", "Hip"),
    ("Knee", "Knee"),
    ("Ank", "Ankle"),
    ("Mean", metrics.MEAN_WEIGHTED),
    ("Mean (unweighted)", metrics.MEAN_UNWEIGHTED),
)


def load_tompson_gt(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """Tompson's MPII validation ground truth -> gt (N,16,2) 1-based px, headboxes (N,2,2),
    visible (N,16) = 1 - jnt_missing, and `pred` (N,16,2): Tompson et al.'s own predictions
    stored in the same file (when present)."""
    from keras_pose3d.evaluation.predictions_file import load_mat

    try:
        mat = load_mat(path)
    except NotImplementedError as err:
        raise ValueError(
            f"{path}: a MATLAB v7.3 file; expected Tompson's "
            "mpii_val_gt_tompson_format.mat (MATLAB v5)"
        ) from err
    for key in ("pos_gt_src", "headboxes_src", "jnt_missing"):
        if key not in mat:
            raise ValueError(
                f"{path}: key {key!r} missing; expected Tompson's MPII format "
                f"(pos_gt_src, headboxes_src, jnt_missing)"
            )
    n = mat["pos_gt_src"].shape[-1]
    want = {
        "pos_gt_src": (16, 2, n),
        "headboxes_src": (2, 2, n),
        "jnt_missing": (16, n),
        "pos_pred_src": (16, 2, n),
    }
    for key, shape in want.items():
        if key in mat and mat[key].shape != shape:
            raise ValueError(f"{path}: key {key!r} has shape {mat[key].shape}; expected {shape}")
    out = {
        "gt": np.transpose(mat["pos_gt_src"], (2, 0, 1)).astype(np.float64),
        "headboxes": np.transpose(mat["headboxes_src"], (2, 0, 1)).astype(np.float64),
        "visible": (1 - np.asarray(mat["jnt_missing"], np.float64)).T,
    }
    if "pos_pred_src" in mat:
        out["pred"] = np.transpose(mat["pos_pred_src"], (2, 0, 1)).astype(np.float64)
    return out


def mpii_tables(
    pred_px: np.ndarray, gt_px: np.ndarray, headboxes: np.ndarray, visible: np.ndarray
) -> dict:
    """PCKh@0.5 per part, per joint and both means.

    Args:
        pred_px, gt_px: (N, 16, 2) original-image pixels, same index base (MPII: 1-based).
        headboxes: (N, 2, 2) [[x1, y1], [x2, y2]], same pixels.
        visible: (N, 16) 1 where the joint is annotated (1 - jnt_missing), inside any crop or
            not.

    Returns:
        {"pckh": {part / mean name: %}, "per_joint": {joint: %}, "annotated": {joint: count},
         "n_persons": N}.
    """
    correct, count = metrics.pckh_counts(pred_px, gt_px, headboxes, visible)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = 100.0 * correct / count
    return {
        "pckh": metrics.pckh_table_from_counts(correct, count),
        "per_joint": {name: float(v) for name, v in zip(skeleton.MPII_JOINTS, per_joint)},
        "annotated": {name: int(c) for name, c in zip(skeleton.MPII_JOINTS, count)},
        "n_persons": len(pred_px),
    }


def score(pred_px: np.ndarray, gt: dict[str, np.ndarray]) -> dict:
    """`mpii_tables` of predictions in Tompson row order against `load_tompson_gt`'s dict."""
    pred = np.asarray(pred_px, dtype=np.float64)
    if pred.shape != gt["gt"].shape:
        raise ValueError(
            f"predictions {pred.shape} do not match the ground truth's "
            f"{gt['gt'].shape} (one row per validation person, valid.h5 order)"
        )
    return mpii_tables(pred, gt["gt"], gt["headboxes"], gt["visible"])


def tables_from_records(
    arrays: dict, meta: list[dict], gt_mat: str | None, valid_h5: str | None
) -> tuple[dict, list[Table]]:
    """PCKh of a model's predictions over MPII validation records, on Tompson's ground truth.

    Args:
        arrays: "pred_px" (N, 16, 2) network-input pixels, "input_size" S.
        meta: `records.read_record_meta` entries (frame, sequence "<image>/<person>", box).
        gt_mat: Tompson's `mpii_val_gt_tompson_format.mat`.
        valid_h5: Newell's `valid.h5` (its `index`, `person` give each Tompson row's record).

    Returns:
        ({"mpii": result}, tables); result adds "unmatched_records" (records of no validation
        person) and "rows_without_record" (validation persons that were not scored).
    """
    if not gt_mat or not valid_h5:
        raise ValueError(
            "--dataset mpii needs --mpii-gt (mpii_val_gt_tompson_format.mat: head "
            "boxes are not in the records) and --mpii-valid-h5 (row order)"
        )
    from keras_pose3d.evaluation.predictions_file import read_h5_array

    gt = load_tompson_gt(gt_mat)
    index, person = (
        read_h5_array(valid_h5, key, "HDF5 (Newell's valid.h5)") for key in ("index", "person")
    )
    rows = {(int(i), int(p)): r for r, (i, p) in enumerate(zip(index, person))}
    if len(rows) != len(gt["gt"]):
        raise ValueError(
            f"{valid_h5} lists {len(rows)} persons but {gt_mat} has {len(gt['gt'])} rows"
        )
    keep, row_idx, matched = [], [], {}
    for k, m in enumerate(meta):
        person = int(m["sequence"].rsplit("/", 1)[-1])
        row = rows.get((int(m["frame"]), person))
        if row is None:
            continue
        if row in matched:
            raise ValueError(
                f"records {matched[row]} and {k} are both validation person "
                f"(image {m['frame']}, person {person})"
            )
        matched[row] = k
        keep.append(k)
        row_idx.append(row)
    if not keep:
        raise ValueError(f"no record matched a row of {valid_h5} by (meta/frame, person index)")
    size = int(arrays["input_size"])
    boxes = np.stack([meta[k]["box"] for k in keep])
    # Input px -> original 0-based px -> MPII's 1-based pixels.
    pred = input_to_original(np.asarray(arrays["pred_px"])[keep], boxes, size) + 1.0
    row_idx = np.array(row_idx)
    res = mpii_tables(pred, gt["gt"][row_idx], gt["headboxes"][row_idx], gt["visible"][row_idx])
    res["unmatched_records"] = int(len(meta) - len(keep))
    res["rows_without_record"] = int(len(gt["gt"]) - len(keep))
    return {"mpii": res}, mpii_markdown_tables(res)


def published_row(result: dict) -> list[float]:
    """The published columns (`PUBLISHED_COLUMNS`) of one result, in %."""
    return [result["pckh"][key] for _, key in PUBLISHED_COLUMNS]


def mpii_markdown_tables(
    result: dict, reference: dict | None = None, label: str = "ours"
) -> list[Table]:
    """The published table (two decimals, reference row) and the per-joint table."""
    ref = REFERENCE_HOURGLASS if reference is None else reference
    rows = [
        [label] + published_row(result),
        ["reference: stacked hourglass (8 stacks, released predictions)"]
        + [ref.get(key) for _, key in PUBLISHED_COLUMNS],
    ]
    notes = [
        (
            f"{result['n_persons']} persons; every annotated joint (jnt_missing = 0) counts. "
            "Strict < 0.5 x head size (0.6 x head-box diagonal), original 1-based pixels. "
            "A left/right pair pools its two joints (weights each side by its annotated "
            f"joints). Mean = {metrics.MEAN_WEIGHTED}; Mean (unweighted) = "
            f"{metrics.MEAN_UNWEIGHTED}, upper neck included; pelvis and thorax excluded."
        ),
        (
            "The paper reports no PCKh; the reference row is the known answer the "
            "implementation is checked against."
        ),
    ]
    skipped = {
        "rows_without_record": "validation persons had no record and were not scored",
        "unmatched_records": "records are not validation persons and were not scored",
    }
    for key, what in skipped.items():
        if result.get(key):
            notes.append(f"WARNING: {result[key]} {what}.")
    published = Table(
        f"MPII {metrics.PCKH_NAME} (Tompson validation split)",
        ["method"] + [name for name, _ in PUBLISHED_COLUMNS],
        rows,
        notes,
        digits=2,
    )
    per_joint = Table(
        f"MPII {metrics.PCKH_NAME} per joint",
        ["joint", metrics.PCKH_NAME, "annotated", "in the means"],
        [
            [
                name,
                result["per_joint"][name],
                result["annotated"][name],
                "no" if j in metrics.PCKH_EXCLUDED else "yes",
            ]
            for j, name in enumerate(skeleton.MPII_JOINTS)
        ],
        [],
        digits=2,
    )
    return [published, per_joint]
