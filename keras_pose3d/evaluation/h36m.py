"""Human3.6M tables: Protocol 1 and 2 per action (paper Tables 1 and 2), both means labelled.

Predictions and ground truth come in as MPII-16 camera-frame mm (the project's output
skeleton). Four protocols are reported side by side (`keras_pose3d.metrics` names them):

* `PROTOCOL_1` over **17 H36M joints** (MPII-16 -> H36M-17 with `skeleton.mpii_to_h36m17`,
  spine := mean(pelvis, thorax) on both sides; pelvis-relative, root counted: VideoPose3D).
* `PROTOCOL_1` over the **16 MPII joints** (pelvis-relative, root counted).
* `PROTOCOL_BONE_SCALED` (16 joints): Zhou's / Dabral's code convention, the paper's numbers.
* `PROTOCOL_2` (PA-MPJPE, 17 joints).

Per-action means and two overall means: `ACTION_MEAN` (mean of the 15 per-action means, how the
paper's tables are built) and `FRAME_MEAN` (mean over all evaluated frames).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np

from keras_pose3d import metrics, skeleton
from keras_pose3d.evaluation import structural
from keras_pose3d.evaluation.records import labels
from keras_pose3d.evaluation.tables import Table

# The 15 actions in metadata.xml <actionnames> order (= the paper's column order).
H36M_ACTIONS: tuple[str, ...] = (
    "Directions",
    "Discussion",
    "Eating",
    "Greeting",
    "Phoning",
    "Posing",
    "Purchases",
    "Sitting",
    "SittingDown",
    "Smoking",
    "TakingPhoto",
    "Waiting",
    "Walking",
    "WalkingDog",
    "WalkingTogether",
)
# File-name spellings -> canonical action (datasets.md 3.4: only S1 spells TakingPhoto/WalkingDog).
_ALIASES = {
    "Photo": "TakingPhoto",
    "WalkDog": "WalkingDog",
    "WalkTogether": "WalkingTogether",
    "Direction": "Directions",
    "Discuss": "Discussion",
    "Eat": "Eating",
    "Greet": "Greeting",
    "Phone": "Phoning",
    "Pose": "Posing",
    "Purchase": "Purchases",
    "Sit": "Sitting",
    "SitDown": "SittingDown",
    "Smoke": "Smoking",
    "Wait": "Waiting",
    "Walk": "Walking",
    "WalkPair": "WalkingTogether",
}

# Paper numbers (evaluation.md section 5), mm: action -> (SAP-Net, TP-Net).
PAPER_TABLE1: dict[str, tuple[float, float]] = {
    "Directions": (46.9, 44.8),
    "Discussion": (53.8, 50.4),
    "Eating": (47.0, 44.7),
    "Greeting": (52.8, 49.0),
    "Phoning": (56.9, 52.9),
    "Posing": (45.2, 43.5),
    "Purchases": (48.2, 45.5),
    "Sitting": (68.0, 63.1),
    "SittingDown": (94.0, 87.3),
    "Smoking": (55.7, 51.7),
    "TakingPhoto": (63.6, 61.4),
    "Waiting": (51.6, 48.5),
    "Walking": (40.3, 37.6),
    "WalkingDog": (55.4, 52.2),
    "WalkingTogether": (44.3, 41.9),
}
PAPER_TABLE1_MEAN = (55.5, 52.1)
PAPER_TABLE2: dict[str, tuple[float, float]] = {
    "Directions": (32.8, 28.0),
    "Discussion": (36.8, 30.7),
    "Eating": (42.5, 39.1),
    "Greeting": (38.5, 34.4),
    "Phoning": (42.4, 37.1),
    "Posing": (35.4, 28.9),
    "Purchases": (34.3, 31.2),
    "Sitting": (53.6, 39.3),
    "SittingDown": (66.2, 60.6),
    "Smoking": (46.5, 39.3),
    "TakingPhoto": (49.0, 44.8),
    "Waiting": (34.1, 31.1),
    "Walking": (30.0, 25.3),
    "WalkingDog": (42.3, 37.8),
    "WalkingTogether": (39.7, 28.4),
}
PAPER_TABLE2_MEAN = (42.2, 36.3)

# Exclusions applied here: (subject, action, camera or None) -> reason. The H36M pipeline
# already skips the documented defects (keras_pose3d/data/readers/h36m.py KNOWN_DEFECTS);
# applying the rule again makes the tables correct for records written by other tools too.
DEFAULT_EXCLUSIONS: dict[tuple[str, str, str | None], str] = {
    ("S11", "Directions", "54138969"): "corrupt video (S11 Directions camera 54138969)",
}

P1_17 = f"{metrics.PROTOCOL_1}, 17 H36M joints"
P1_16 = f"{metrics.PROTOCOL_1}, 16 MPII joints"
P2_17 = f"{metrics.PROTOCOL_2}, 17 H36M joints"
BONE_16 = metrics.PROTOCOL_BONE_SCALED


def canonical_action(name: str) -> str:
    """'Directions 1', 'Photo', 'WalkDog_2', 'TakingPhoto' -> canonical action name.

    Raises:
        ValueError: the name is not one of the 15 H36M actions (naming what was received).
    """
    base = re.sub(r"[\s_]*\d+$", "", str(name).strip())
    base = _ALIASES.get(base, base)
    if base not in H36M_ACTIONS:
        raise ValueError(f"unknown H36M action {name!r}; expected one of {H36M_ACTIONS}")
    return base


def _excluded(subjects, actions, cameras, rules) -> tuple[np.ndarray, list[dict]]:
    mask = np.zeros(len(actions), dtype=bool)
    listed = []
    for (subject, action, camera), reason in rules.items():
        hit = (subjects == subject) & (actions == action)
        if camera is not None:
            hit &= cameras == camera
        listed.append(
            {
                "subject": subject,
                "action": action,
                "camera": camera or "all",
                "reason": reason,
                "frames_removed": int(hit.sum()),
            }
        )
        mask |= hit
    return mask, listed


def h36m_tables(
    pred_mm: np.ndarray,
    gt_mm: np.ndarray,
    actions: Sequence[str],
    subjects: Sequence[str],
    cameras: Sequence[str] | None = None,
    exclusions: dict | None = None,
) -> dict:
    """Protocol 1/2 per action with action-wise and frame-weighted means.

    Args:
        pred_mm: (N, 16, 3) MPII-16 predictions, camera mm (any root position).
        gt_mm: (N, 16, 3) MPII-16 ground truth, camera mm.
        actions: (N,) action names (any H36M spelling; `canonical_action`).
        subjects: (N,) "S9" / "S11".
        cameras: (N,) camera ids, for camera-specific exclusions (None: camera rules match
            nothing).
        exclusions: (subject, action, camera or None) -> reason; None = DEFAULT_EXCLUSIONS.

    Returns:
        {"protocols": {name: {"per_action", "counts", ACTION_MEAN, FRAME_MEAN}},
         "exclusions": [...], "n_frames": int, "subjects": [...]}
    """
    pred = np.asarray(pred_mm, dtype=np.float64)
    gt = np.asarray(gt_mm, dtype=np.float64)
    if pred.shape != gt.shape or pred.shape[1:] != (skeleton.NUM_JOINTS, 3):
        raise ValueError(
            f"h36m_tables: pred and gt must be (N, 16, 3) MPII-16 mm. Received: "
            f"{pred.shape}, {gt.shape}"
        )
    acts = np.array([canonical_action(a) for a in actions], dtype=object)
    subs = np.asarray(subjects, dtype=object)
    cams = (
        np.asarray(cameras, dtype=object)
        if cameras is not None
        else np.full(len(acts), None, dtype=object)
    )
    if not len(acts) == len(subs) == len(cams) == len(pred):
        raise ValueError(
            f"h36m_tables: {len(pred)} poses but {len(acts)} actions, {len(subs)} "
            f"subjects, {len(cams)} cameras"
        )
    rules = DEFAULT_EXCLUSIONS if exclusions is None else exclusions
    drop, listed = _excluded(subs, acts, cams, rules)
    keep = ~drop
    if not keep.any():
        raise ValueError("h36m_tables: every frame is excluded")
    pred, gt, acts = pred[keep], gt[keep], acts[keep]
    pred17, gt17 = skeleton.mpii_to_h36m17(pred), skeleton.mpii_to_h36m17(gt)
    per_sample = {
        P1_17: metrics.mpjpe(pred17, gt17, root=skeleton.H36M17_ROOT),
        P1_16: metrics.mpjpe(pred, gt, root=skeleton.ROOT),
        BONE_16: metrics.mpjpe_bone_scaled(pred, gt),
        P2_17: metrics.pa_mpjpe(pred17, gt17),
    }
    order = {a: i for i, a in enumerate(H36M_ACTIONS)}
    protocols = {}
    for name, values in per_sample.items():
        g = metrics.grouped_means(values, acts)
        protocols[name] = {
            "per_action": {a: g.per_group[a] for a in sorted(g.per_group, key=order.get)},
            "counts": {a: g.counts[a] for a in sorted(g.counts, key=order.get)},
            metrics.ACTION_MEAN: g.action_mean,
            metrics.FRAME_MEAN: g.frame_mean,
        }
    return {
        "protocols": protocols,
        "exclusions": listed,
        "n_frames": int(keep.sum()),
        "subjects": sorted(set(subs[keep])),
    }


TP_NET_LABEL = "ours + TP-Net"


def h36m_markdown_tables(result: dict, tp_net: dict | None = None) -> list[Table]:
    """Tables 1 and 2 of the paper with our rows and the published ones as reference rows.

    Args:
        result: `h36m_tables` of SAP-Net's predictions.
        tp_net: `h36m_tables` of TP-Net's refined predictions of the same frames, or None;
            with it every "ours" row gets an "ours + TP-Net" row below it.
    """
    protos = result["protocols"]
    actions = [a for a in H36M_ACTIONS if a in protos[P1_17]["per_action"]]
    cols = ["method / protocol"] + actions + [metrics.ACTION_MEAN, metrics.FRAME_MEAN]
    if tp_net is not None and tp_net["n_frames"] != result["n_frames"]:
        raise ValueError(
            f"h36m_markdown_tables: TP-Net scored {tp_net['n_frames']} frames, SAP-Net "
            f"{result['n_frames']}; the rows must be over the same frames"
        )

    def row(res, label, name):
        p = res["protocols"][name]
        return (
            [f"{label}: {name}"]
            + [p["per_action"].get(a) for a in actions]
            + [p[metrics.ACTION_MEAN], p[metrics.FRAME_MEAN]]
        )

    def ours(*names):
        rows = []
        for name in names:
            rows.append(row(result, "ours", name))
            if tp_net is not None:
                rows.append(row(tp_net, TP_NET_LABEL, name))
        return rows

    def paper(label, table, mean, col):
        return [label] + [table[a][col] for a in actions] + [mean[col], None]

    excl = "; ".join(
        f"{e['subject']} {e['action']} camera {e['camera']}: {e['reason']} "
        f"({e['frames_removed']} frames removed here)"
        for e in result["exclusions"]
    )
    notes = [
        (
            f"{result['n_frames']} frames of {', '.join(result['subjects'])}. "
            f"{metrics.ACTION_MEAN} = mean of the per-action means (the paper's convention); "
            f"{metrics.FRAME_MEAN} = mean over frames."
        ),
        (
            "17-joint rows: MPII-16 -> H36M-17 with spine := mean(pelvis, thorax), pelvis-relative, "
            "root counted. Paper rows: Dabral et al. 2018, measured with the bone-scaled convention."
        ),
        (
            f"Exclusions: {excl or 'none'}. Upstream (pipelines/h36m_to_tfrecord.py) also skips "
            "S9 SittingDown 1, Waiting 1, Greeting (3D shifted ~200 mm)."
        ),
    ]
    if tp_net is not None:
        notes.append(
            f"{TP_NET_LABEL} rows: TP-Net's refinement of the same SAP-Net predictions, at the "
            "same frames, scored by the same code."
        )
    t1 = Table(
        "Table 1: H36M MPJPE (Protocol 1), mm",
        cols,
        [
            *ours(P1_17, P1_16, BONE_16),
            paper("paper SAP-Net", PAPER_TABLE1, PAPER_TABLE1_MEAN, 0),
            paper("paper TP-Net", PAPER_TABLE1, PAPER_TABLE1_MEAN, 1),
        ],
        notes,
    )
    t2 = Table(
        "Table 2: H36M PA-MPJPE (Protocol 2), mm",
        cols,
        [
            *ours(P2_17),
            paper("paper SAP-Net", PAPER_TABLE2, PAPER_TABLE2_MEAN, 0),
            paper("paper TP-Net", PAPER_TABLE2, PAPER_TABLE2_MEAN, 1),
        ],
        notes[:1] + ["Procrustes with scale, reflection excluded."] + notes[3:],
    )
    return [t1, t2]


def tables_from_records(
    arrays: dict, meta: list[dict], tp_net_mm: np.ndarray | None = None
) -> tuple[dict, list[Table]]:
    """Tables 1, 2 and 6 from "pred_mm" / "gt_mm" (N, 16, 3) and `read_record_meta` entries.

    Args:
        arrays: SAP-Net's predictions and the ground truth, one row per entry of `meta`.
        meta: `read_record_meta` entries.
        tp_net_mm: (N, 16, 3) TP-Net's refined predictions of the same rows, or None. With it
            Tables 1 and 2 get "ours + TP-Net" rows and Table 6 a TP-Net copy; the results
            gain "h36m_tp_net" and "structural_tp_net".
    """

    def score(pred):
        res = h36m_tables(
            pred,
            arrays["gt_mm"],
            [m["action"] for m in meta],
            [m["subject"] for m in meta],
            [m["camera"] for m in meta],
        )
        struct = structural.structural_validity(pred, labels(meta, "subject", "sequence", "camera"))
        return res, struct

    res, struct = score(arrays["pred_mm"])
    if tp_net_mm is None:
        return (
            {"h36m": res, "structural": struct},
            h36m_markdown_tables(res) + structural.structural_markdown_tables(struct),
        )
    res_tp, struct_tp = score(tp_net_mm)
    return (
        {"h36m": res, "structural": struct, "h36m_tp_net": res_tp, "structural_tp_net": struct_tp},
        h36m_markdown_tables(res, res_tp)
        + structural.structural_markdown_tables(struct)
        + structural_tp_net_tables(struct_tp),
    )


def structural_tp_net_tables(struct: dict) -> list[Table]:
    """Table 6 of TP-Net's refined predictions ("ours" = SAP-Net + TP-Net)."""
    return [
        dataclasses.replace(t, title=f"{t.title} ({TP_NET_LABEL}, 'ours' column)")
        for t in structural.structural_markdown_tables(struct)
    ]
