"""Synthetic validation tables: Protocol 1 and 2 per sequence, and Table 6.

Procedural actions have no published numbers; the table is the offline check that a trained
model beats an untrained one, with the same protocol names as the real datasets.
"""

from __future__ import annotations

import numpy as np

from keras_pose3d import metrics, skeleton
from keras_pose3d.evaluation import structural
from keras_pose3d.evaluation.records import labels
from keras_pose3d.evaluation.tables import Table


def tables_from_records(arrays: dict, meta: list[dict]) -> tuple[dict, list[Table]]:
    """From "pred_mm" / "gt_mm" (N, 16, 3) camera mm and `read_record_meta` entries."""
    seqs = labels(meta, "subject", "sequence")
    pred, gt = np.asarray(arrays["pred_mm"]), np.asarray(arrays["gt_mm"])
    p1 = metrics.grouped_means(metrics.mpjpe(pred, gt, root=skeleton.ROOT), seqs)
    p2 = metrics.grouped_means(metrics.pa_mpjpe(pred, gt), seqs)
    struct = structural.structural_validity(pred, labels(meta, "subject", "sequence", "camera"))
    rows = [[s, p1.per_group[s], p2.per_group[s], p1.counts[s]] for s in p1.per_group]
    rows.append(
        [metrics.ACTION_MEAN + " (over sequences)", p1.action_mean, p2.action_mean, len(pred)]
    )
    rows.append([metrics.FRAME_MEAN, p1.frame_mean, p2.frame_mean, len(pred)])
    table = Table(
        "Synthetic validation: MPJPE and PA-MPJPE per sequence, mm",
        ["sequence", f"{metrics.PROTOCOL_1} (16 MPII joints)", metrics.PROTOCOL_2, "frames"],
        rows,
        ["Procedural data: no published reference numbers."],
    )
    return (
        {
            "synthetic": {
                "protocol_1": p1.as_dict(),
                "protocol_2": p2.as_dict(),
                "n_frames": len(pred),
                "frames": dict(p1.counts),
            },
            "structural": struct,
        },
        [table] + structural.structural_markdown_tables(struct),
    )
