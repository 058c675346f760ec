"""MPI-INF-3DHP test tables (paper Table 5): 3D-PCK@150, AUC and MPJPE per activity and scene.

Conventions (evaluation.md section 2):

* only frames with `valid_frame == 1` (`mpi3dhp_tables` drops the others; records hold only
  those, the 3DHP job writes no other test frame);
* ground truth = **`univ_annot3`** (height-normalised), never `annot3`;
* both poses in the 3DHP-17 order, pelvis-relative (index 14);
* PCK and AUC over the 14-joint group (`metrics.PCK3D_JOINT_SETS["14"]`; the 17-joint PCK is
  listed too), MPJPE over all 17 joints;
* the "All" row is over all valid frames; scene subtotals: green screen TS1-2, studio without
  green screen TS3-4, outdoor TS5-6.

Scale: predictions are decoded to mm with the ground-truth root depth of `annot3`, the subject's
real size, while `univ_annot3` is the same pose rescaled to the universal skeleton. Scoring the
first against the second adds about |1 - s| x 432 mm for a size ratio s (21 mm at 5 %), so
`scale_to_univ` rescales each root-relative prediction by s = (bone-length sum of univ_annot3) /
(bone-length sum of annot3) of its frame: a scale-free prediction is then decoded at the size of
the ground truth it is scored against (exact when univ_annot3 = s x annot3).

The network predicts MPII-16; `mpii_to_mpi3dhp17` maps it to 3DHP-17 (skeleton's index map,
spine re-estimated as mean(pelvis, thorax) because MPII has none). When the ground truth comes as
MPII-16 too (records), the same map is applied to it, so its spine is the same estimate; PCK-14
does not use the spine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from keras_pose3d import metrics, skeleton
from keras_pose3d.data.readers.mpi_inf_3dhp import TEST_ACTIVITIES
from keras_pose3d.evaluation import structural
from keras_pose3d.evaluation.tables import Table

# The `read_record_meta` field holding univ_annot3 (present only in records that carry it).
UNIV_FIELD = "joints_3d_univ"
SCENES: dict[str, tuple[str, ...]] = {
    "green screen (TS1-2)": ("TS1", "TS2"),
    "studio, no green screen (TS3-4)": ("TS3", "TS4"),
    "outdoor (TS5-6)": ("TS5", "TS6"),
}
PAPER_TABLE5 = {metrics.PCK3D_NAME: 76.7, metrics.AUC3D_NAME: 39.1, "MPJPE": 103.8}
SPINE_3DHP17 = skeleton.MPI3DHP17_JOINTS.index("spine")


def mpii_to_mpi3dhp17(pose: np.ndarray) -> np.ndarray:
    """(..., 16, 3) MPII-16 -> (..., 17, 3) 3DHP-17; spine := mean(pelvis, thorax)."""
    pose = np.asarray(pose, dtype=np.float64)
    out = pose[..., list(skeleton.MPI3DHP17_FROM_MPII), :].copy()
    out[..., SPINE_3DHP17, :] = 0.5 * (
        pose[..., skeleton.ROOT, :] + pose[..., skeleton.J["thorax"], :]
    )
    return out


def _as_3dhp17(pose: np.ndarray, name: str) -> np.ndarray:
    pose = np.asarray(pose, dtype=np.float64)
    if pose.ndim == 3 and pose.shape[1:] == (17, 3):
        return pose
    if pose.ndim == 3 and pose.shape[1:] == (16, 3):
        return mpii_to_mpi3dhp17(pose)
    raise ValueError(
        f"mpi3dhp_tables: {name} must be (N, 17, 3) 3DHP-17 or (N, 16, 3) MPII-16 "
        f"mm. Received: {pose.shape}"
    )


def _activity_name(a) -> str:
    if isinstance(a, (int, np.integer)):
        return TEST_ACTIVITIES.get(int(a), f"activity {int(a)}")
    return str(a)


def mpi3dhp_tables(
    pred_mm: np.ndarray,
    gt_univ_mm: np.ndarray,
    valid: Sequence[bool] | np.ndarray,
    activities: Sequence,
    sequences: Sequence[str],
) -> dict:
    """Table 5 figures over the valid frames.

    Args:
        pred_mm: (N, 17, 3) 3DHP-17 or (N, 16, 3) MPII-16 predictions, mm.
        gt_univ_mm: same layout, the `univ_annot3` ground truth, mm.
        valid: (N,) `valid_frame` flags; frames with 0 are dropped before anything else.
        activities: (N,) activity ids 1..7 or names.
        sequences: (N,) "TS1".."TS6".

    Returns:
        {"rows": {label: {PCK3D_NAME, "PCK (17 joints)", AUC3D_NAME, "MPJPE", "frames"}},
         "n_valid": int, "n_invalid_dropped": int}; labels are activities, sequences, scenes
        and "All".
    """
    pred = _as_3dhp17(pred_mm, "pred_mm")
    gt = _as_3dhp17(gt_univ_mm, "gt_univ_mm")
    if pred.shape != gt.shape:
        raise ValueError(f"mpi3dhp_tables: pred {pred.shape} and gt {gt.shape} differ")
    valid = np.asarray(valid).astype(bool).reshape(-1)
    acts = np.array([_activity_name(a) for a in activities], dtype=object)
    seqs = np.asarray(sequences, dtype=object)
    if not len(valid) == len(acts) == len(seqs) == len(pred):
        raise ValueError(
            f"mpi3dhp_tables: {len(pred)} poses, {len(valid)} valid flags, "
            f"{len(acts)} activities, {len(seqs)} sequences"
        )
    if not valid.any():
        raise ValueError("mpi3dhp_tables: no valid frames")
    pred = metrics.root_align(pred[valid], skeleton.MPI3DHP17_ROOT)
    gt = metrics.root_align(gt[valid], skeleton.MPI3DHP17_ROOT)
    acts, seqs = acts[valid], seqs[valid]
    pck14 = metrics.pck3d(pred, gt, joints="14")
    pck17 = metrics.pck3d(pred, gt, joints="17")
    auc = metrics.auc3d(pred, gt, joints="14")
    err = metrics.mpjpe(pred, gt)

    def row(mask):
        return {
            metrics.PCK3D_NAME: float(pck14[mask].mean()),
            "PCK (17 joints)": float(pck17[mask].mean()),
            metrics.AUC3D_NAME: float(auc[mask].mean()),
            "MPJPE": float(err[mask].mean()),
            "frames": int(mask.sum()),
        }

    rows = {}
    for name in [TEST_ACTIVITIES[k] for k in sorted(TEST_ACTIVITIES)] + sorted(
        set(acts) - set(TEST_ACTIVITIES.values())
    ):
        if (acts == name).any():
            rows[name] = row(acts == name)
    for ts in sorted(set(seqs)):
        rows[ts] = row(seqs == ts)
    for scene, members in SCENES.items():
        mask = np.isin(seqs, members)
        if mask.any():
            rows[scene] = row(mask)
    rows["All"] = row(np.ones(len(err), dtype=bool))
    return {"rows": rows, "n_valid": int(valid.sum()), "n_invalid_dropped": int((~valid).sum())}


TP_NET_LABEL = "ours + TP-Net"
# The subsets that get a TP-Net row beside SAP-Net's (the scenes and "All").
TP_NET_ROWS = (*SCENES, "All")


def mpi3dhp_markdown_tables(result: dict, tp_net: dict | None = None) -> list[Table]:
    """Table 5 with our rows per subset and the paper's.

    Args:
        result: `mpi3dhp_tables` of SAP-Net's predictions.
        tp_net: `mpi3dhp_tables` of TP-Net's refined predictions of the same frames, or None;
            with it the scenes and "All" get an "ours + TP-Net" row each.
    """
    if tp_net is not None and tp_net["n_valid"] != result["n_valid"]:
        raise ValueError(
            f"mpi3dhp_markdown_tables: TP-Net scored {tp_net['n_valid']} frames, SAP-Net "
            f"{result['n_valid']}; the rows must be over the same frames"
        )
    cols = [
        "subset",
        f"{metrics.PCK3D_NAME} (14 joints)",
        "PCK (17 joints)",
        f"{metrics.AUC3D_NAME} (14 joints)",
        "MPJPE (17 joints, mm)",
        "frames",
    ]
    rows = [
        [
            k,
            v[metrics.PCK3D_NAME],
            v["PCK (17 joints)"],
            v[metrics.AUC3D_NAME],
            v["MPJPE"],
            v["frames"],
        ]
        for k, v in result["rows"].items()
    ]
    if tp_net is not None:
        rows += [
            [
                f"{TP_NET_LABEL}: {k}",
                v[metrics.PCK3D_NAME],
                v["PCK (17 joints)"],
                v[metrics.AUC3D_NAME],
                v["MPJPE"],
                v["frames"],
            ]
            for k, v in tp_net["rows"].items()
            if k in TP_NET_ROWS
        ]
    rows.append(
        [
            "paper (Table 5)",
            PAPER_TABLE5[metrics.PCK3D_NAME],
            None,
            PAPER_TABLE5[metrics.AUC3D_NAME],
            PAPER_TABLE5["MPJPE"],
            2929,
        ]
    )
    return [
        Table(
            "Table 5: MPI-INF-3DHP (valid frames, univ_annot3 ground truth)",
            cols,
            rows,
            [
                (
                    f"{result['n_valid']} valid frames; {result['n_invalid_dropped']} frames with "
                    "valid_frame = 0 dropped. Pelvis-relative; global scale known (paper Sect. 5)."
                ),
            ],
        )
    ]


def _as_mpii16(pose: np.ndarray) -> np.ndarray:
    pose = np.asarray(pose, dtype=np.float64)
    return skeleton.mpi3dhp17_to_mpii(pose) if pose.shape[-2] == 17 else pose


def univ_scale(annot3_mm: np.ndarray, univ_mm: np.ndarray) -> np.ndarray:
    """Per-frame size ratio s = bone-length sum(univ_annot3) / bone-length sum(annot3).

    Args:
        annot3_mm, univ_mm: (N, 16, 3) MPII-16 or (N, 17, 3) 3DHP-17 (either, independently).

    Returns:
        (N,) s; exactly s when univ = s x annot3 (about any point).
    """
    a = skeleton.bone_lengths(_as_mpii16(annot3_mm), skeleton.BONES).sum(axis=-1)
    u = skeleton.bone_lengths(_as_mpii16(univ_mm), skeleton.BONES).sum(axis=-1)
    if np.any(a <= 0):
        raise ValueError(
            f"univ_scale: annot3 poses of zero size at rows {np.flatnonzero(a <= 0)[:5].tolist()}"
        )
    return u / a


def scale_to_univ(
    pred_mm: np.ndarray, annot3_mm: np.ndarray, univ_mm: np.ndarray, root: int = skeleton.ROOT
) -> tuple[np.ndarray, np.ndarray]:
    """Root-relative predictions decoded at the annot3 size, rescaled to the univ_annot3 size.

    Args:
        pred_mm: (N, J, 3) predictions in camera mm at the annot3 size (`run_predictions`).
        annot3_mm, univ_mm: (N, 16|17, 3) the frame's two ground truths, mm.
        root: root joint of `pred_mm`'s order.

    Returns:
        ((N, J, 3) root-relative predictions at the univ size, (N,) the scales s).
    """
    s = univ_scale(annot3_mm, univ_mm)
    return s[:, None, None] * metrics.root_align(pred_mm, root), s


def tables_from_records(
    arrays: dict, meta: list[dict], pose_scale: str = "annot3", tp_net_mm: np.ndarray | None = None
) -> tuple[dict, list[Table]]:
    """Table 5 (and Table 6) from predictions over validation records.

    Args:
        arrays: "pred_mm" (N, 16, 3) predictions in camera mm, "gt_mm" (N, 16, 3) the records'
            joints_3d (annot3).
        meta: `records.read_record_meta` entries (action = activity, sequence = TS1..TS6,
            optional `joints_3d_univ`), valid test frames only (what the 3DHP job writes).
        pose_scale: "annot3" (predictions decoded with the annot3 root depth: rescaled with
            `scale_to_univ`) or "univ" (already at the univ_annot3 size: used as they are).
        tp_net_mm: (N, 16, 3) TP-Net's refined predictions of the same rows at the same scale
            as "pred_mm", or None. With it Table 5 gets "ours + TP-Net" rows (rescaled the same
            way) and Table 6 a TP-Net copy; the results gain "mpi_inf_3dhp_tp_net" and
            "structural_tp_net".

    Returns:
        ({"mpi_inf_3dhp": ..., "structural": ...}, tables).
    """
    if pose_scale not in ("annot3", "univ"):
        raise ValueError(f"pose_scale must be 'annot3' or 'univ'. Received: {pose_scale!r}")
    # Records hold valid test frames only (the 3DHP job writes no other: "invalid_frames" dead
    # letters), so every record is scored.
    has_univ = [UNIV_FIELD in m for m in meta]
    pred = np.asarray(arrays["pred_mm"], dtype=np.float64)
    tp_pred = None if tp_net_mm is None else np.asarray(tp_net_mm, dtype=np.float64)
    scale_note = ""
    if all(has_univ):
        gt = np.stack([m[UNIV_FIELD] for m in meta])
        gt_note = "ground truth: univ_annot3 (records' joints_3d_univ)"
        if pose_scale == "annot3" and meta:
            annot3 = np.asarray(arrays["gt_mm"])
            pred, s = scale_to_univ(pred, annot3, gt)
            if tp_pred is not None:
                tp_pred = scale_to_univ(tp_pred, annot3, gt)[0]
            scale_note = (
                f"predictions rescaled from the annot3 to the univ_annot3 size per frame "
                f"(bone-sum ratio s: {s.min():.3f}..{s.max():.3f}, mean {s.mean():.3f})"
            )
    elif not any(has_univ):
        gt = arrays["gt_mm"]
        gt_note = (
            "WARNING: the records carry no joints_3d_univ; annot3 (joints_3d) was used. "
            "These numbers are NOT comparable with published 3DHP results."
        )
    else:
        raise ValueError(
            f"{sum(has_univ)} of {len(meta)} records carry {UNIV_FIELD!r}; "
            "mixed ground truths cannot be evaluated together"
        )
    sequences = [m["sequence"] for m in meta]
    activities = [m["action"] for m in meta]
    valid = np.ones(len(meta), bool)
    res = mpi3dhp_tables(pred, gt, valid, activities, sequences)
    res["ground_truth"] = gt_note
    if scale_note:
        res["scale"] = scale_note
    struct = structural.structural_validity(np.asarray(arrays["pred_mm"]), sequences)
    results = {"mpi_inf_3dhp": res, "structural": struct}
    res_tp = struct_tp = None
    if tp_pred is not None:
        res_tp = mpi3dhp_tables(tp_pred, gt, valid, activities, sequences)
        struct_tp = structural.structural_validity(np.asarray(tp_net_mm), sequences)
        results.update(mpi_inf_3dhp_tp_net=res_tp, structural_tp_net=struct_tp)
    tables = mpi3dhp_markdown_tables(res, res_tp)
    tables[0].notes.append(gt_note)
    if scale_note:
        tables[0].notes.append(scale_note)
    if res_tp is not None:
        tables[0].notes.append(
            f"{TP_NET_LABEL} rows: TP-Net's refinement of the same SAP-Net predictions, at the "
            "same frames, scored by the same code."
        )
    tables += structural.structural_markdown_tables(struct)
    if struct_tp is not None:
        tables += [
            dataclasses.replace(t, title=f"{t.title} ({TP_NET_LABEL}, 'ours' column)")
            for t in structural.structural_markdown_tables(struct_tp)
        ]
    return results, tables
