"""Gaussian heatmap targets (encode) and argmax + quarter-pixel refinement (decode).

Coordinates are pixel coordinates of the grid they live on, 0-based with pixel centres at
integers, x along the width. Network-input pixels (side S) and heatmap pixels (side h) are
related by the area-preserving map of the two grids (`input_to_heatmap_px`):

    q_heatmap = (q_input + 0.5) * h / S - 0.5

Encode: channel j is exp(-((x - x_j)^2 + (y - y_j)^2) / (2 sigma^2)) centred at the sub-pixel
joint position (peak 1 at the joint itself), zero for joints with visibility 0 or outside the
grid (their weight, `heatmap_weights`, is 0 too).

Decode (Newell et al.): integer argmax per channel, then a quarter-pixel step along x and y
toward the higher of the two neighbours (no step at the border or on a tie). For a Gaussian
target the error is at most 0.25 px. Confidence is the maximum value of the channel.

Shapes: J joints, h x w heatmap grid, `...` any batch shape.
"""

from __future__ import annotations

import tensorflow as tf


def input_to_heatmap_px(joints_px: tf.Tensor, input_size: int, heatmap_size: int) -> tf.Tensor:
    """Network-input pixels (..., 2) -> heatmap pixels (..., 2) (module docstring)."""
    ratio = float(heatmap_size) / float(input_size)
    return (tf.convert_to_tensor(joints_px, tf.float32) + 0.5) * ratio - 0.5


def heatmap_to_input_px(joints_px: tf.Tensor, input_size: int, heatmap_size: int) -> tf.Tensor:
    """Heatmap pixels (..., 2) -> network-input pixels (..., 2); inverse of the above."""
    ratio = float(input_size) / float(heatmap_size)
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
    dx2 = tf.square(grid[None, :, None] - x)  # (..., 1, h, J): varies along width
    dy2 = tf.square(grid[:, None, None] - y)  # (..., h, 1, J): varies along height
    heat = tf.exp(-(dx2 + dy2) / (2.0 * sigma * sigma))  # (..., h, h, J)
    return heat * weights[..., None, None, :]


def decode_heatmaps(heatmaps: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Argmax with Newell's quarter-pixel refinement toward the higher neighbour.

    Args:
        heatmaps: (..., h, w, J).

    Returns:
        coords (..., J, 2) x, y in heatmap pixels; confidence (..., J) the channel maximum.
    """
    heat = tf.convert_to_tensor(heatmaps)
    heat = tf.cast(heat, tf.float32)
    shape = tf.shape(heat)
    h, w, j = shape[-3], shape[-2], shape[-1]
    batch_shape = shape[:-3]
    flat = tf.reshape(heat, tf.concat([[-1], [h * w, j]], axis=0))  # (N, h*w, J)
    idx = tf.argmax(flat, axis=1, output_type=tf.int32)  # (N, J)
    conf = tf.reduce_max(flat, axis=1)  # (N, J)
    iy = idx // w
    ix = idx % w

    # Values at the four neighbours (clamped indices; masked at the border below).
    def value_at(yy, xx):
        lin = tf.clip_by_value(yy, 0, h - 1) * w + tf.clip_by_value(xx, 0, w - 1)  # (N, J)
        per_joint = tf.transpose(flat, [0, 2, 1])  # (N, J, h*w)
        return tf.gather(per_joint, lin, batch_dims=2)  # (N, J)

    right, left = value_at(iy, ix + 1), value_at(iy, ix - 1)
    down, up = value_at(iy + 1, ix), value_at(iy - 1, ix)
    interior_x = tf.cast((ix > 0) & (ix < w - 1), tf.float32)
    interior_y = tf.cast((iy > 0) & (iy < h - 1), tf.float32)
    step_x = 0.25 * tf.sign(right - left) * interior_x
    step_y = 0.25 * tf.sign(down - up) * interior_y
    coords = tf.stack(
        [tf.cast(ix, tf.float32) + step_x, tf.cast(iy, tf.float32) + step_y], axis=-1
    )  # (N, J, 2)
    coords = tf.reshape(coords, tf.concat([batch_shape, [j, 2]], axis=0))
    conf = tf.reshape(conf, tf.concat([batch_shape, [j]], axis=0))
    return coords, conf
