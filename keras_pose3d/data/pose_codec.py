"""The 3D target representation (normalised crop units) and its inverse to camera millimetres.

Zhou et al.'s weak-perspective representation, in units of half the network input side S:

    x_j = (u_j - S/2) / (S/2)
    y_j = (v_j - S/2) / (S/2)
    z_j = (Z_j - Z_root) * fx / Z_root / (S/2)

where (u_j, v_j) are joint j's pixel coordinates in the network input (0-based, pixel centres at
integers), Z_j its camera-frame depth in mm, Z_root the pelvis depth (`skeleton.ROOT`), and
fx, fy, cx, cy the intrinsics *of the network input* (the stored crop's intrinsics carried through
the augmentation affine, see `augment.py`). x, y and z share one unit, so bone lengths in this
space are isotropic (a bone of length L mm at depth Z_root is about L*fx/Z_root/(S/2) long on
every axis), which is what the structure losses need.

In training, (x, y) come from the record's 2D joints (`normalise_2d`), which include the lens
distortion the dataset's 2D labels were made with; `encode_pose_3d` without `joints_2d_px`
projects the 3D joints through a plain pinhole instead (the exact inverse of the decoder).

Inverse (`decode_pose_3d`): pinhole back-projection with a known root depth Z_root (ground truth
at evaluation, as the paper's protocol assumes):

    u = x*S/2 + S/2,  v = y*S/2 + S/2
    Z_j = Z_root + z_j * (S/2) * Z_root / fx
    X_j = (u_j - cx) * Z_j / fx,  Y_j = (v_j - cy) * Z_j / fy

For undistorted pinhole data `decode_pose_3d(encode_pose_3d(P))` recovers P (mm) up to float
round-off. Every function exists for NumPy (plain name); those the tf.data pipeline and the
serving graphs run also for TensorFlow (`_tf` suffix). Both run the same formula code (`_Ops`
below), so they cannot drift apart.

Shapes: `...` is any batch shape (B, or B x T), J joints, intrinsics (..., 4) = fx, fy, cx, cy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from keras_pose3d import skeleton


class _Ops:
    """The few array operations the formulas need, for one backend."""

    def __init__(self, xp: Any, divide_no_nan: Any, concat: Any):
        self.xp = xp
        self.div = divide_no_nan
        self.concat = concat


def _np_divide_no_nan(a, b):
    b = np.asarray(b)
    safe = np.where(b == 0, 1.0, b)
    return np.where(b == 0, 0.0, np.asarray(a) / safe)


_NP = _Ops(np, _np_divide_no_nan, np.concatenate)
_TF = _Ops(tf, tf.math.divide_no_nan, tf.concat)


def _half(input_size: int) -> float:
    if int(input_size) <= 0:
        raise ValueError(f"input_size must be a positive int. Received: input_size={input_size}")
    return float(input_size) / 2.0


# ----------------------------------------------------------------------------------------------
# Formulas (backend-generic).
# ----------------------------------------------------------------------------------------------
def _normalise_2d(ops: _Ops, joints_2d_px, input_size: int):
    half = _half(input_size)
    return (joints_2d_px - half) / half  # (..., J, 2)


def _denormalise_2d(ops: _Ops, pose_2d, input_size: int):
    half = _half(input_size)
    return pose_2d * half + half  # (..., J, 2)


def _depth_target(ops: _Ops, joints_3d_mm, intrinsics, input_size: int, root: int):
    half = _half(input_size)
    z = joints_3d_mm[..., 2]  # (..., J)
    z_root = joints_3d_mm[..., root : root + 1, 2]  # (..., 1)
    fx = intrinsics[..., 0:1]  # (..., 1)
    # divide_no_nan: 2D-only samples carry zero 3D and zero intrinsics; their target is 0.
    return ops.div((z - z_root) * fx, z_root * half)  # (..., J)


def _project_pinhole(ops: _Ops, joints_3d_mm, intrinsics):
    xp = ops.xp
    fx, fy = intrinsics[..., 0:1], intrinsics[..., 1:2]  # (..., 1)
    cx, cy = intrinsics[..., 2:3], intrinsics[..., 3:4]
    z = joints_3d_mm[..., 2]
    u = ops.div(joints_3d_mm[..., 0], z) * fx + cx  # (..., J)
    v = ops.div(joints_3d_mm[..., 1], z) * fy + cy
    return xp.stack([u, v], axis=-1)  # (..., J, 2)


def _encode_pose_3d(ops: _Ops, joints_3d_mm, intrinsics, input_size, joints_2d_px, root):
    if joints_2d_px is None:
        joints_2d_px = _project_pinhole(ops, joints_3d_mm, intrinsics)
    xy = _normalise_2d(ops, joints_2d_px, input_size)  # (..., J, 2)
    z = _depth_target(ops, joints_3d_mm, intrinsics, input_size, root)  # (..., J)
    return ops.concat([xy, z[..., None]], axis=-1)  # (..., J, 3)


def _decode_pose_3d(ops: _Ops, pose_norm, intrinsics, root_depth_mm, input_size):
    xp = ops.xp
    half = _half(input_size)
    fx, fy = intrinsics[..., 0:1], intrinsics[..., 1:2]  # (..., 1)
    cx, cy = intrinsics[..., 2:3], intrinsics[..., 3:4]
    z_root = root_depth_mm[..., None]  # (..., 1)
    u = pose_norm[..., 0] * half + half  # (..., J)
    v = pose_norm[..., 1] * half + half
    z = z_root + ops.div(pose_norm[..., 2] * half * z_root, fx)
    x = ops.div((u - cx) * z, fx)
    y = ops.div((v - cy) * z, fy)
    return xp.stack([x, y, z], axis=-1)  # (..., J, 3)


def _to_root_relative(ops: _Ops, pose, root):
    return pose - pose[..., root : root + 1, :]


# ----------------------------------------------------------------------------------------------
# NumPy API.
# ----------------------------------------------------------------------------------------------
def _np(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def normalise_2d(joints_2d_px: np.ndarray, input_size: int) -> np.ndarray:
    """Input pixels (..., J, 2) -> normalised crop units (..., J, 2): (u - S/2) / (S/2)."""
    return _normalise_2d(_NP, _np(joints_2d_px), input_size)


def denormalise_2d(pose_2d: np.ndarray, input_size: int) -> np.ndarray:
    """Normalised crop units (..., J, 2) -> input pixels (..., J, 2): x*S/2 + S/2."""
    return _denormalise_2d(_NP, _np(pose_2d), input_size)


def depth_target(
    joints_3d_mm: np.ndarray,
    intrinsics: np.ndarray,
    input_size: int,
    root: int = skeleton.ROOT,
) -> np.ndarray:
    """Normalised root-relative depth (..., J): (Z - Z_root) * fx / Z_root / (S/2).

    Args:
        joints_3d_mm: (..., J, 3) camera-frame mm.
        intrinsics: (..., 4) fx, fy, cx, cy of the network input (px).
        input_size: S, the network input side (px).
        root: index of the root joint.

    Returns:
        (..., J); zeros where Z_root or fx is 0 (2D-only samples).
    """
    return _depth_target(_NP, _np(joints_3d_mm), _np(intrinsics), input_size, root)


def project_pinhole(joints_3d_mm: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Pinhole projection without distortion: (..., J, 3) mm -> (..., J, 2) px."""
    return _project_pinhole(_NP, _np(joints_3d_mm), _np(intrinsics))


def encode_pose_3d(
    joints_3d_mm: np.ndarray,
    intrinsics: np.ndarray,
    input_size: int,
    joints_2d_px: np.ndarray | None = None,
    root: int = skeleton.ROOT,
) -> np.ndarray:
    """Camera mm (..., J, 3) -> normalised crop units (..., J, 3) (module docstring).

    Args:
        joints_3d_mm: (..., J, 3) camera-frame mm.
        intrinsics: (..., 4) fx, fy, cx, cy of the network input (px).
        input_size: S (px).
        joints_2d_px: optional (..., J, 2) input pixels for x, y (the record's labels, with
            distortion). When None, x, y come from a pinhole projection of `joints_3d_mm`.
        root: index of the root joint.
    """
    j2d = None if joints_2d_px is None else _np(joints_2d_px)
    return _encode_pose_3d(_NP, _np(joints_3d_mm), _np(intrinsics), input_size, j2d, root)


def decode_pose_3d(
    pose_norm: np.ndarray,
    intrinsics: np.ndarray,
    root_depth_mm: np.ndarray,
    input_size: int,
) -> np.ndarray:
    """Normalised crop units (..., J, 3) -> camera mm (..., J, 3) by pinhole back-projection.

    Args:
        pose_norm: (..., J, 3) x, y, z in normalised crop units.
        intrinsics: (..., 4) fx, fy, cx, cy of the network input (px).
        root_depth_mm: (...) Z of the root joint in mm.
        input_size: S (px).
    """
    return _decode_pose_3d(_NP, _np(pose_norm), _np(intrinsics), _np(root_depth_mm), input_size)


def to_root_relative_mm(pose_mm: np.ndarray, root: int = skeleton.ROOT) -> np.ndarray:
    """Subtracts the root joint: (..., J, 3) -> (..., J, 3) with pose[..., root, :] == 0."""
    return _to_root_relative(_NP, _np(pose_mm), root)


# ----------------------------------------------------------------------------------------------
# TensorFlow API (graph-safe; float32 unless the inputs are float64).
# ----------------------------------------------------------------------------------------------
def _tf(x, dtype=None) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    if dtype is not None:
        return tf.cast(x, dtype)
    return x if x.dtype.is_floating else tf.cast(x, tf.float32)


def normalise_2d_tf(joints_2d_px: tf.Tensor, input_size: int) -> tf.Tensor:
    """TF version of `normalise_2d`."""
    return _normalise_2d(_TF, _tf(joints_2d_px), input_size)


def denormalise_2d_tf(pose_2d: tf.Tensor, input_size: int) -> tf.Tensor:
    """TF version of `denormalise_2d`."""
    return _denormalise_2d(_TF, _tf(pose_2d), input_size)


def depth_target_tf(
    joints_3d_mm: tf.Tensor,
    intrinsics: tf.Tensor,
    input_size: int,
    root: int = skeleton.ROOT,
) -> tf.Tensor:
    """TF version of `depth_target`."""
    j3d = _tf(joints_3d_mm)
    return _depth_target(_TF, j3d, _tf(intrinsics, j3d.dtype), input_size, root)


def decode_pose_3d_tf(
    pose_norm: tf.Tensor,
    intrinsics: tf.Tensor,
    root_depth_mm: tf.Tensor,
    input_size: int,
) -> tf.Tensor:
    """TF version of `decode_pose_3d`."""
    pose = _tf(pose_norm)
    return _decode_pose_3d(
        _TF, pose, _tf(intrinsics, pose.dtype), _tf(root_depth_mm, pose.dtype), input_size
    )


def to_root_relative_mm_tf(pose_mm: tf.Tensor, root: int = skeleton.ROOT) -> tf.Tensor:
    """TF version of `to_root_relative_mm`."""
    return _to_root_relative(_TF, _tf(pose_mm), root)
