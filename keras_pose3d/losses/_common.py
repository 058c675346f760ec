"""Helpers shared by the loss functions: float32 casting, visibility masks, safe norms.

Every loss computes in float32 whatever the compute dtype of the model (mixed_bfloat16 or
mixed_float16): squared errors and cross products of bf16 values lose too many bits, and
float16 overflows on squared millimetres.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf


def to_float32(x) -> tf.Tensor:
    """Casts a tensor (any float dtype, or array-like) to float32."""
    x = tf.convert_to_tensor(x)
    return x if x.dtype == tf.float32 else tf.cast(x, tf.float32)


def visibility_or_ones(visibility, pose: tf.Tensor) -> tf.Tensor:
    """(B, J) float32 visibility, or all ones shaped like pose[..., 0] when None."""
    if visibility is None:
        return tf.ones_like(pose[..., 0])
    return to_float32(visibility)


def safe_norm(v: tf.Tensor, axis: int = -1) -> tf.Tensor:
    """Euclidean norm whose gradient is 0 (not NaN) at the zero vector.

    The double `where` keeps the value exact (no epsilon added) while the sqrt never sees 0.
    """
    sq = tf.reduce_sum(tf.square(v), axis=axis)
    positive = sq > 0.0
    safe_sq = tf.where(positive, sq, tf.ones_like(sq))
    return tf.where(positive, tf.sqrt(safe_sq), tf.zeros_like(sq))


def safe_unit(v: tf.Tensor, axis: int = -1) -> tf.Tensor:
    """v / |v| along `axis`; the zero vector maps to the zero vector (finite gradient)."""
    norm = safe_norm(v, axis=axis)
    return tf.math.divide_no_nan(v, tf.expand_dims(norm, axis))


def bone_vectors(pose: tf.Tensor, bones: Sequence[tuple[int, int]]) -> tf.Tensor:
    """(B, J, D) -> (B, len(bones), D) child minus parent for each (child, parent) bone."""
    child = tf.gather(pose, [b[0] for b in bones], axis=-2)
    parent = tf.gather(pose, [b[1] for b in bones], axis=-2)
    return child - parent


def bone_lengths(pose: tf.Tensor, bones: Sequence[tuple[int, int]]) -> tf.Tensor:
    """(B, J, D) -> (B, len(bones)) bone lengths, float32."""
    return safe_norm(bone_vectors(to_float32(pose), bones))


def bone_visibility(visibility: tf.Tensor, bones: Sequence[tuple[int, int]]) -> tf.Tensor:
    """(B, J) -> (B, len(bones)): 1 where both joints of the bone are visible."""
    child = tf.gather(visibility, [b[0] for b in bones], axis=-1)
    parent = tf.gather(visibility, [b[1] for b in bones], axis=-1)
    return tf.cast((child > 0.5) & (parent > 0.5), tf.float32)


def check_rank(x: tf.Tensor, ranks: Sequence[int], name: str, expected: str) -> None:
    """Raises ValueError naming the argument when its static rank is not in `ranks`."""
    rank = x.shape.rank
    if rank is not None and rank not in ranks:
        raise ValueError(f"{name} must have shape {expected}. Received: shape={x.shape}")
