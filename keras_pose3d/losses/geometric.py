"""Zhou et al. 2017's bone-length-ratio (geometric) loss L_g."""

from __future__ import annotations

import tensorflow as tf

from keras_pose3d import skeleton
from keras_pose3d.losses._common import (
    bone_lengths,
    bone_visibility,
    check_rank,
    to_float32,
    visibility_or_ones,
)


def geometric_loss(pose_3d, visibility=None, groups=skeleton.GEOMETRIC_GROUPS) -> tf.Tensor:
    """Per-sample bone-length-ratio loss (evaluation.md section 4, Eq. 3's L_g).

    For each group of `skeleton.GEOMETRIC_GROUPS`, the weighted lengths `l_i = w_i * |bone_i|`
    of the bones whose two joints are visible, their mean `l_bar`, and
    `sum_i (l_i - l_bar)^2 / n_valid`; summed over groups. A group with no valid bone gives 0.
    (Zhou et al.'s code also halves each term; that factor is folded into lambda_g here.)

    The paper applies it to ground-truth x, y with predicted depth; the caller builds that
    pose: `tf.concat([gt_pose_2d, pred_depth[..., None]], -1)`.

    Args:
        pose_3d: (B, J, 3) pose in any unit (the loss has that unit squared).
        visibility: (B, J) 0/1, or None for all visible.
        groups: ((bones, weights), ...) with bones as (child, parent) pairs.

    Returns:
        (B,) float32.
    """
    pose = to_float32(pose_3d)
    check_rank(pose, (3,), "pose_3d", "(B, J, 3)")
    vis = visibility_or_ones(visibility, pose)
    total = tf.zeros_like(pose[:, 0, 0])
    for bones, weights in groups:
        lengths = bone_lengths(pose, bones) * tf.constant(weights, tf.float32)  # (B, G)
        valid = bone_visibility(vis, bones)  # (B, G)
        count = tf.reduce_sum(valid, axis=-1)  # (B,)
        mean = tf.math.divide_no_nan(tf.reduce_sum(lengths * valid, axis=-1), count)
        sq = tf.square(lengths - mean[:, None]) * valid
        total += tf.math.divide_no_nan(tf.reduce_sum(sq, axis=-1), count)
    return total
