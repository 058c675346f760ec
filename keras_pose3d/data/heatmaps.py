"""Gaussian heatmap targets and the network-input <-> heatmap pixel map.

Coordinates are pixel coordinates of the grid they live on, 0-based with pixel centres at
integers, x along the width. Network-input pixels (side S) and heatmap pixels (side h) are
related by the area-preserving map of the two grids (`input_to_heatmap_px`):

    q_heatmap = (q_input + 0.5) * h / S - 0.5

Encode: channel j is exp(-((x - x_j)^2 + (y - y_j)^2) / (2 sigma^2)) centred at the sub-pixel
joint position (peak 1 at the joint itself), zero for joints with visibility 0 or outside the
grid (their weight, `heatmap_weights`, is 0 too).

Decoding heatmaps back to joints is the model's (`layers/heatmap_decode.py`, same pixel map).

Shapes: J joints, h x w heatmap grid, `...` any batch shape.
"""

from __future__ import annotations

import tensorflow as tf


def input_to_heatmap_px(joints_px: tf.Tensor, input_size: int, heatmap_size: int) -> tf.Tensor:
    """Network-input pixels (..., 2) -> heatmap pixels (..., 2) (module docstring)."""
    ratio = float(heatmap_size) / float(input_size)
    return (tf.convert_to_tensor(joints_px, tf.float32) + 0.5) * ratio - 0.5


def heatmap_weights(joints_2d_px: tf.Tensor, visibility: tf.Tensor, size: int) -> tf.Tensor:
    """1 for visible joints whose position lies on the grid, else 0.

    Args:
        joints_2d_px: (..., J, 2) heatmap pixels.
        visibility: (..., J) 0/1.
        size: heatmap side h.

    Returns:
        (..., J) float32.
    """
    joints = tf.convert_to_tensor(joints_2d_px, tf.float32)
    # The grid covers [-0.5, h - 0.5] in pixel-centre coordinates.
    inside = tf.reduce_all((joints >= -0.5) & (joints <= float(size) - 0.5), axis=-1)
    return tf.cast(inside, tf.float32) * tf.cast(visibility > 0, tf.float32)


def encode_heatmaps(
    joints_2d_px: tf.Tensor,
    visibility: tf.Tensor,
    size: int,
    sigma: float = 1.0,
) -> tf.Tensor:
    """Gaussian targets for one sample or a batch.

    Args:
        joints_2d_px: (..., J, 2) joint positions in heatmap pixels.
        visibility: (..., J) 0/1; joints with 0 get an all-zero channel.
        size: heatmap side h (square grid).
        sigma: Gaussian standard deviation in heatmap pixels.

    Returns:
        (..., h, h, J) float32, peak 1 at each visible on-grid joint.
    """
    if int(size) <= 0 or sigma <= 0:
        raise ValueError(f"size and sigma must be positive. Received: size={size}, sigma={sigma}")
    joints = tf.convert_to_tensor(joints_2d_px, tf.float32)
    weights = heatmap_weights(joints, visibility, size)  # (..., J)
    grid = tf.range(size, dtype=tf.float32)  # (h,)
    x = joints[..., 0][..., None, None, :]  # (..., 1, 1, J)
    y = joints[..., 1][..., None, None, :]
    # The Gaussian is separable: 2h exps a joint and one product pass instead of h^2 exps
    # (the same values within float32 rounding; the training input's cost, docs/benchmarks.md).
    denom = -2.0 * sigma * sigma
    gx = tf.exp(tf.square(grid[None, :, None] - x) / denom)  # (..., 1, h, J): along the width
    gy = tf.exp(tf.square(grid[:, None, None] - y) / denom)  # (..., h, 1, J): along the height
    return gy * (gx * weights[..., None, None, :])  # (..., h, h, J)
