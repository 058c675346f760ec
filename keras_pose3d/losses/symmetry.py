"""Dabral et al.'s left-right symmetry loss (Eq. 2)."""

from __future__ import annotations

import tensorflow as tf

from keras_pose3d import skeleton
from keras_pose3d.losses._common import (
    bone_lengths,
    bone_visibility,
    check_rank,
    to_float32,
)


def symmetry_terms(pose_3d, visibility=None, pairs=skeleton.SYMMETRY_BONE_PAIRS) -> tf.Tensor:
    """Per-pair |BL_right - BL_left|.

    Args:
        pose_3d: (B, J, 3).
        visibility: (B, J) 0/1 or None. A pair counts only when its four joints are visible
            (2D-only samples carry meaningless x, y for missing joints).
        pairs: ((right_bone, left_bone), ...), bones as (child, parent).

    Returns:
        (B, len(pairs)) float32, in the unit of the pose, ordered as `skeleton.SYMMETRY_BONE_NAMES`.
    """
    pose = to_float32(pose_3d)
    check_rank(pose, (3,), "pose_3d", "(B, J, 3)")
    right = [p[0] for p in pairs]
    left = [p[1] for p in pairs]
    diff = tf.abs(bone_lengths(pose, right) - bone_lengths(pose, left))  # (B, P)
    if visibility is not None:
        vis = to_float32(visibility)
        diff *= bone_visibility(vis, right) * bone_visibility(vis, left)
    return diff


def symmetry_loss(pose_3d, visibility=None, pairs=skeleton.SYMMETRY_BONE_PAIRS) -> tf.Tensor:
    """Eq. 2: L_s = sum_b |BL_b - BL_C(b)| over upper arm, forearm, thigh and shin.

    Args:
        pose_3d: (B, J, 3).
        visibility: (B, J) 0/1 or None (see `symmetry_terms`).
        pairs: the (right, left) bone pairs.

    Returns:
        (B,) float32 in the unit of the pose.
    """
    return tf.reduce_sum(symmetry_terms(pose_3d, visibility, pairs), axis=-1)
