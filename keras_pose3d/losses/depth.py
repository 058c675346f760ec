"""Depth L2 loss on 3D-annotated samples (Zhou et al. 2017's L_e)."""

from __future__ import annotations

import tensorflow as tf

from keras_pose3d.losses._common import check_rank, to_float32, visibility_or_ones


def depth_loss(pred_depth, gt_depth, visibility=None) -> tf.Tensor:
    """Per-sample mean squared depth error over visible joints.

    The caller multiplies by `has_3d` so 2D-only samples (whose target depth is 0) contribute
    nothing.

    Args:
        pred_depth: (B, J) predicted root-relative depth (normalised crop units).
        gt_depth: (B, J) target depth in the same units.
        visibility: (B, J) 0/1 mask, or None for all joints.

    Returns:
        (B,) float32: sum_j vis_j (pred_j - gt_j)^2 / sum_j vis_j (0 when nothing is visible).
    """
    pred = to_float32(pred_depth)
    gt = to_float32(gt_depth)
    check_rank(pred, (2,), "pred_depth", "(B, J)")
    check_rank(gt, (2,), "gt_depth", "(B, J)")
    vis = visibility_or_ones(visibility, pred[..., None])
    sq = tf.square(pred - gt) * vis
    return tf.math.divide_no_nan(tf.reduce_sum(sq, axis=-1), tf.reduce_sum(vis, axis=-1))
