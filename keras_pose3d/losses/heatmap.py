"""Heatmap L2 loss with intermediate supervision (Newell et al. 2016; Zhou et al. 2017)."""

from __future__ import annotations

import tensorflow as tf

from keras_pose3d.losses._common import check_rank, to_float32


def heatmap_loss(pred_heatmaps, gt_heatmaps, visibility) -> tf.Tensor:
    """Per-sample L2 heatmap loss summed over stacks.

    Normalisation: for each stack, the squared error is summed over the pixels and the visible
    joints and divided by `h * w * (number of visible joints)`, i.e. the mean squared error per
    pixel of a visible joint's heatmap. The per-stack values are summed (intermediate
    supervision gives every stack the full weight, as Newell et al. do). A sample without
    visible joints contributes 0 (divide_no_nan).

    Args:
        pred_heatmaps: (B, S, h, w, J) per-stack predictions, or (B, h, w, J) for one stack.
        gt_heatmaps: (B, h, w, J) targets.
        visibility: (B, J), 1 for annotated joints, 0 for missing ones (no gradient to them).

    Returns:
        (B,) float32.
    """
    pred = to_float32(pred_heatmaps)
    gt = to_float32(gt_heatmaps)
    vis = to_float32(visibility)
    check_rank(pred, (4, 5), "pred_heatmaps", "(B, S, h, w, J) or (B, h, w, J)")
    check_rank(gt, (4,), "gt_heatmaps", "(B, h, w, J)")
    check_rank(vis, (2,), "visibility", "(B, J)")
    if pred.shape.rank == 4:
        pred = pred[:, None]  # (B, 1, h, w, J)
    sq = tf.square(pred - gt[:, None])  # (B, S, h, w, J)
    per_joint = tf.reduce_sum(sq, axis=[2, 3])  # (B, S, J)
    per_stack = tf.reduce_sum(per_joint * vis[:, None, :], axis=-1)  # (B, S)
    pixels = tf.cast(tf.shape(gt)[1] * tf.shape(gt)[2], tf.float32)
    denom = pixels * tf.reduce_sum(vis, axis=-1)  # (B,)
    return tf.math.divide_no_nan(tf.reduce_sum(per_stack, axis=1), denom)
