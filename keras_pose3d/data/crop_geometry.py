"""Square person crops: the one place their geometry is written.

Every crop in the project is the same map, a square box of side L centred on c (pixels of a
source image) resized to an S x S output, optionally rotated about c and mirrored:

    q = F( s * R(theta) * (p - c) + c_out ),   s = S / L,   c_out = ((S - 1) / 2, (S - 1) / 2)

* Pixel centres are at integer coordinates (pixel i spans [i - 0.5, i + 0.5]) on both sides, so
  the box edges x0 = cx - L/2 .. x0 + L land on the output edges -0.5 .. S - 0.5; without
  rotation and flip this is u = s (x - x0) - 0.5.
* R(theta) = [[cos, sin], [-sin, cos]] in image axes (x right, y down): a positive
  `rotation_deg` turns the content counter-clockwise as seen on screen (cv2's sense).
* F mirrors x when `flip` is set: x' = S - 1 - x.

Where it is used:

* original image -> stored crop: the Beam jobs' records (`pipelines.common.crop_person`, the
  synthetic generator), the box is `PERSON_MARGIN` x the person box (`person_box`);
* stored crop -> network input: training's augmentation and the evaluation crop
  (`data.augment.crop_and_augment`, `stored_to_input_affine`), the box is the stored crop's
  central 1 / PERSON_MARGIN times `scale`;
* original image -> network input: serving (`serving.signatures`), the box the client sends;
* network input -> original image: serving's 2D output and the MPII protocol
  (`evaluation.crop`), `crop_to_source`.

Pinhole intrinsics go through the same map (`transform_intrinsics`): fx, fy times s and the
principal point through the matrix (exact for a square crop; with rotation see `augment.py`).

Every function exists for NumPy (plain name, float64) and TensorFlow (`_tf` suffix, float32);
both run the same formula code (`_Ops` below, as in `pose_codec`), so they cannot drift apart.
TensorFlow is imported only when a `_tf` function is first called, so NumPy users (the MPII
scorer, `evaluation.crop`) never load it.

Shapes: `...` is any batch shape; boxes are (..., 4) x0, y0, x1, y1 *edges* in source pixels,
centres (..., 2), sides (...), affine matrices (..., 3, 3) with q = M @ [p, 1].
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

# Person box side from the 2D joints: 1.2 x the larger extent of their bounding box (the
# H36M/mmpose convention), centred on that bounding box.
PERSON_BOX_FACTOR = 1.2


class _Ops:
    """The few array operations the formulas need, for one backend."""

    def __init__(self, xp: Any, asarray: Any, concat: Any):
        self.xp = xp
        self.asarray = asarray
        self.concat = concat


_NP = _Ops(np, lambda x: np.asarray(x, np.float64), np.concatenate)


@functools.cache
def _tf_ops() -> _Ops:
    import tensorflow as tf

    return _Ops(tf, lambda x: tf.cast(tf.convert_to_tensor(x), tf.float32), tf.concat)


# ----------------------------------------------------------------------------------------------
# Formulas (backend-generic).
# ----------------------------------------------------------------------------------------------
def _square_box(ops: _Ops, centre, side):
    centre, side = ops.asarray(centre), ops.asarray(side)
    half = side / 2.0  # (...)
    cx, cy = centre[..., 0], centre[..., 1]
    return ops.xp.stack([cx - half, cy - half, cx + half, cy + half], axis=-1)  # (..., 4)


def _box_centre_side(ops: _Ops, box):
    box = ops.asarray(box)
    centre = 0.5 * (box[..., :2] + box[..., 2:])  # (..., 2)
    side = ops.xp.maximum(box[..., 2] - box[..., 0], box[..., 3] - box[..., 1])  # (...)
    return centre, side


def _image_box(ops: _Ops, height, width):
    h, w = ops.asarray(height), ops.asarray(width)
    return ops.xp.stack([w * 0.0 - 0.5, h * 0.0 - 0.5, w - 0.5, h - 0.5], axis=-1)  # (..., 4)


def _crop_affine(ops: _Ops, centre, side, out_size: int, rotation_deg, flip):
    xp = ops.xp
    centre = ops.asarray(centre)
    s = float(out_size) / ops.asarray(side)  # (...)
    theta = ops.asarray(rotation_deg) * (math.pi / 180.0)
    cos, sin = xp.cos(theta), xp.sin(theta)
    cx, cy = centre[..., 0], centre[..., 1]
    c_out = (float(out_size) - 1.0) / 2.0
    # Rows of s*R and the translation that sends c to c_out.
    a00, a01 = s * cos, s * sin
    a10, a11 = -s * sin, s * cos
    t0 = c_out - (a00 * cx + a01 * cy)
    t1 = c_out - (a10 * cx + a11 * cy)
    # Mirror x after the similarity: x' = S - 1 - x.
    mirror = ops.asarray(flip)
    sign = 1.0 - 2.0 * mirror
    offset = mirror * (float(out_size) - 1.0)
    one, zero = xp.ones_like(t0), xp.zeros_like(t0)
    rows = (
        (sign * a00, sign * a01, sign * t0 + offset),
        (a10, a11, t1),
        (zero, zero, one),
    )
    return xp.stack([xp.stack(row, axis=-1) for row in rows], axis=-2)  # (..., 3, 3)


def _transform_points(ops: _Ops, points, matrix):
    p, m = ops.asarray(points), ops.asarray(matrix)
    x, y = p[..., 0], p[..., 1]
    u = m[..., 0, 0] * x + m[..., 0, 1] * y + m[..., 0, 2]
    v = m[..., 1, 0] * x + m[..., 1, 1] * y + m[..., 1, 2]
    return ops.xp.stack([u, v], axis=-1)  # (..., 2)


def _transform_intrinsics(ops: _Ops, intrinsics, matrix):
    xp = ops.xp
    k, m = ops.asarray(intrinsics), ops.asarray(matrix)
    # The similarity's scale (a flip only changes the determinant's sign).
    s = xp.sqrt(xp.abs(m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]))  # (...)
    pp = _transform_points(ops, k[..., 2:4], m)  # (..., 2)
    # All zeros (2D-only samples, MPII) stay all zeros.
    known = xp.where(k[..., 0:1] > 0, 1.0, 0.0)  # (..., 1)
    return ops.concat([k[..., 0:2] * s[..., None], pp], axis=-1) * known  # (..., 4)


def _crop_to_source(ops: _Ops, points, centre, side, out_size: int):
    # The inverse of an un-rotated, un-mirrored `_crop_affine`: p = (q - c_out) / s + c.
    q, centre = ops.asarray(points), ops.asarray(centre)
    s = float(out_size) / ops.asarray(side)
    c_out = (float(out_size) - 1.0) / 2.0
    return (q - c_out) / s[..., None] + centre  # (..., 2)


def _stored_to_input_affine(ops: _Ops, stored_size, input_size, scale, rotation_deg, flip, margin):
    hw = ops.asarray(stored_size)
    side = ops.xp.maximum(hw[..., 0], hw[..., 1]) / margin * ops.asarray(scale)
    centre = ops.xp.stack([(hw[..., 1] - 1.0) / 2.0, (hw[..., 0] - 1.0) / 2.0], axis=-1)
    return _crop_affine(ops, centre, side, input_size, rotation_deg, flip)


# ----------------------------------------------------------------------------------------------
# NumPy (float64).
# ----------------------------------------------------------------------------------------------
def person_box(joints_2d: np.ndarray) -> tuple[np.ndarray, float]:
    """Square person box from 2D joints: (centre (2,), side) = bounding-box centre and
    `PERSON_BOX_FACTOR` x its larger extent.

    Args:
        joints_2d: (J, 2) pixels.
    """
    joints_2d = np.asarray(joints_2d, np.float64)
    if joints_2d.ndim != 2 or joints_2d.shape[0] < 1 or joints_2d.shape[1] != 2:
        raise ValueError(f"joints_2d must be (J >= 1, 2) pixels. Received shape {joints_2d.shape}")
    lo, hi = joints_2d.min(axis=0), joints_2d.max(axis=0)
    return 0.5 * (lo + hi), PERSON_BOX_FACTOR * float(np.max(hi - lo))


def square_box(centre, side) -> np.ndarray:
    """(..., 2) centres, (...) sides -> (..., 4) box edges x0, y0, x1, y1."""
    return _square_box(_NP, centre, side)


def box_centre_side(box) -> tuple[np.ndarray, np.ndarray]:
    """(..., 4) boxes -> centres (..., 2), sides (...) of the square around each box (the larger
    of its width and height)."""
    return _box_centre_side(_NP, box)


def image_box(height, width) -> np.ndarray:
    """(..., 4) box of a whole H x W image: edges -0.5 .. W - 0.5, -0.5 .. H - 0.5."""
    return _image_box(_NP, height, width)


def crop_affine(centre, side, out_size: int, rotation_deg=0.0, flip=False) -> np.ndarray:
    """(..., 3, 3) affine from source pixels to the S x S crop of the square box (module
    docstring).

    Args:
        centre: (..., 2) box centre in source pixels.
        side: (...) box side L in source pixels.
        out_size: S.
        rotation_deg: counter-clockwise on screen about the centre, degrees.
        flip: mirror the output horizontally.
    """
    return _crop_affine(_NP, centre, side, out_size, rotation_deg, flip)


def transform_points(points, matrix) -> np.ndarray:
    """Applies (..., 3, 3) affines to points (..., 2) -> (..., 2) (batch shapes broadcast)."""
    return _transform_points(_NP, points, matrix)


def transform_intrinsics(intrinsics, matrix) -> np.ndarray:
    """(..., 4) fx, fy, cx, cy of the source -> of the crop `matrix` makes; zeros stay zeros."""
    return _transform_intrinsics(_NP, intrinsics, matrix)


def crop_to_source(points, centre, side, out_size: int) -> np.ndarray:
    """Crop pixels (..., 2) -> source pixels of an un-rotated, un-mirrored crop.

    `centre` (..., 2) and `side` (...) are those given to `crop_affine`, broadcast against the
    points' batch shape (e.g. (N, 1, 2) and (N, 1) for (N, J, 2) points).
    """
    return _crop_to_source(_NP, points, centre, side, out_size)


def stored_to_input_affine(
    stored_size, input_size: int, margin: float, scale=1.0, rotation_deg=0.0, flip=False
) -> np.ndarray:
    """The network-input crop of a stored crop: its central person box (side max(H, W) /
    `margin`, times `scale`) resized to S x S, rotated and mirrored (`data.augment`).

    Args:
        stored_size: (..., 2) stored crop height, width.
        input_size: S.
        margin: stored crop side / person box side (`features.PERSON_MARGIN`).
        scale: multiplies the person box side (1 = the person box, 1.25 = zoom out 25 %).
        rotation_deg, flip: as in `crop_affine`.
    """
    return _stored_to_input_affine(_NP, stored_size, input_size, scale, rotation_deg, flip, margin)


# ----------------------------------------------------------------------------------------------
# TensorFlow (float32): the same formulas, eager or in graphs.
# ----------------------------------------------------------------------------------------------
def square_box_tf(centre, side):
    """`square_box` in TensorFlow."""
    return _square_box(_tf_ops(), centre, side)


def box_centre_side_tf(box):
    """`box_centre_side` in TensorFlow."""
    return _box_centre_side(_tf_ops(), box)


def image_box_tf(height, width):
    """`image_box` in TensorFlow."""
    return _image_box(_tf_ops(), height, width)


def crop_affine_tf(centre, side, out_size: int, rotation_deg=0.0, flip=False):
    """`crop_affine` in TensorFlow."""
    return _crop_affine(_tf_ops(), centre, side, out_size, rotation_deg, flip)


def transform_points_tf(points, matrix):
    """`transform_points` in TensorFlow."""
    return _transform_points(_tf_ops(), points, matrix)


def transform_intrinsics_tf(intrinsics, matrix):
    """`transform_intrinsics` in TensorFlow."""
    return _transform_intrinsics(_tf_ops(), intrinsics, matrix)


def crop_to_source_tf(points, centre, side, out_size: int):
    """`crop_to_source` in TensorFlow."""
    return _crop_to_source(_tf_ops(), points, centre, side, out_size)


def stored_to_input_affine_tf(
    stored_size, input_size: int, margin: float, scale=1.0, rotation_deg=0.0, flip=False
):
    """`stored_to_input_affine` in TensorFlow."""
    return _stored_to_input_affine(
        _tf_ops(), stored_size, input_size, scale, rotation_deg, flip, margin
    )
