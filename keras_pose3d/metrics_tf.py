"""In-graph versions of `keras_pose3d.metrics` and Keras metrics that hold sums and counts.

The formulas are those of the NumPy module (protocol names `metrics.PROTOCOL_1`, ...); these
versions compute in float32 whatever the input dtype (a float16 metric path loses mm), and
reduce nothing across the batch so Keras metrics can weight samples (e.g. by `has_3d`).

Keras metrics keep `total` and `count` as state and divide once in `result()`, so a
MirroredStrategy run whose replicas see unequal batches gives the single-device mean.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_pose3d import metrics as np_metrics
from keras_pose3d import skeleton


def _f32(x) -> tf.Tensor:
    return tf.cast(tf.convert_to_tensor(x), tf.float32)


def root_align_tf(pose, root: int = skeleton.ROOT) -> tf.Tensor:
    """(..., J, D) -> (..., J, D) minus the root joint."""
    pose = _f32(pose)
    return pose - pose[..., root:root + 1, :]


def mpjpe_tf(pred, gt, root: int | None = None) -> tf.Tensor:
    """`metrics.PROTOCOL_1` per sample (with `root`): (B, J, 3) x 2 -> (B,) mm, float32.

    Args:
        pred, gt: (B, J, 3) mm.
        root: joint to align both at first, or None if already aligned.
    """
    pred, gt = _f32(pred), _f32(gt)
    if root is not None:
        pred, gt = root_align_tf(pred, root), root_align_tf(gt, root)
    return tf.reduce_mean(tf.norm(pred - gt, axis=-1), axis=-1)


def procrustes_align_tf(pred, gt, scale: bool = True) -> tf.Tensor:
    """Similarity Procrustes of each prediction onto its ground truth, reflection excluded.

    Same closed form as `metrics.procrustes_align`. (B, J, 3) x 2 -> (B, J, 3) float32.
    """
    pred, gt = _f32(pred), _f32(gt)
    mu_x = tf.reduce_mean(gt, axis=1, keepdims=True)
    mu_y = tf.reduce_mean(pred, axis=1, keepdims=True)
    x, y = gt - mu_x, pred - mu_y  # (B, J, 3)
    m = tf.matmul(y, x, transpose_a=True)  # (B, 3, 3) = Y^T X
    s, u, v = tf.linalg.svd(m)  # m = u diag(s) v^T
    d = tf.sign(tf.linalg.det(tf.matmul(u, v, transpose_b=True)))  # (B,)
    d = tf.where(tf.equal(d, 0.0), tf.ones_like(d), d)
    flip = tf.stack([tf.ones_like(d), tf.ones_like(d), d], axis=-1)  # (B, 3) = diag(D)
    rot = tf.matmul(u * flip[:, None, :], v, transpose_b=True)  # U D V^T, (B, 3, 3)
    if scale:
        trace = tf.reduce_sum(s * flip, axis=-1)  # (B,)
        norm_y = tf.reduce_sum(tf.square(y), axis=[1, 2])
        factor = tf.where(norm_y > 0, tf.math.divide_no_nan(trace, norm_y), tf.ones_like(trace))
    else:
        factor = tf.ones_like(d)
    return factor[:, None, None] * tf.matmul(y, rot) + mu_x


def pa_mpjpe_tf(pred, gt) -> tf.Tensor:
    """`metrics.PROTOCOL_2` per sample: (B, J, 3) x 2 -> (B,) mm, float32."""
    return mpjpe_tf(procrustes_align_tf(pred, gt, scale=True), gt)


def n_mpjpe_tf(pred, gt, root: int | None = None) -> tf.Tensor:
    """`metrics.PROTOCOL_3` per sample: least-squares scale, then MPJPE. (B,) mm, float32."""
    pred, gt = _f32(pred), _f32(gt)
    if root is not None:
        pred, gt = root_align_tf(pred, root), root_align_tf(gt, root)
    num = tf.reduce_sum(pred * gt, axis=[1, 2])
    den = tf.reduce_sum(pred * pred, axis=[1, 2])
    s = tf.where(den > 0, tf.math.divide_no_nan(num, den), tf.ones_like(den))
    return mpjpe_tf(s[:, None, None] * pred, gt)


class _PoseErrorMetric(keras.metrics.Metric):
    """Mean of a per-sample pose error, as weighted sum / weight count."""

    def __init__(self, name: str, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total",
                                       aggregation="sum")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count",
                                       aggregation="sum")

    def per_sample(self, y_true, y_pred):  # (B, J, 3) x 2 -> (B,)
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        errors = self.per_sample(y_true, y_pred)  # (B,) float32
        if sample_weight is None:
            weights = tf.ones_like(errors)
        else:
            weights = tf.reshape(_f32(sample_weight), [-1])
            weights = tf.broadcast_to(weights, tf.shape(errors))
        # Zero-weight samples (e.g. 2D-only, has_3d = 0) must not leak NaN from their zeros.
        weighted = tf.where(weights > 0, errors * weights, tf.zeros_like(errors))
        self.total.assign_add(tf.cast(tf.reduce_sum(weighted), self.total.dtype))
        self.count.assign_add(tf.cast(tf.reduce_sum(weights), self.count.dtype))

    def result(self):
        return tf.math.divide_no_nan(self.total, self.count)


@keras.saving.register_keras_serializable(package="keras_pose3d")
class MeanPerJointPositionError(_PoseErrorMetric):
    """`metrics.PROTOCOL_1` (with `root`) as a Keras metric, mm.

    Args:
        root: joint index to align prediction and truth at (MPII-16 pelvis = 6), or None to
            compare as given.
        name, dtype: Keras metric arguments.
    Update: y_true, y_pred (B, J, 3) mm; sample_weight (B,) optional (e.g. has_3d).
    """

    def __init__(self, root: int | None = skeleton.ROOT, name: str = "mpjpe", dtype=None,
                 **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.root = None if root is None else int(root)

    def per_sample(self, y_true, y_pred):
        return mpjpe_tf(y_pred, y_true, root=self.root)

    def get_config(self):
        return {**super().get_config(), "root": self.root}


@keras.saving.register_keras_serializable(package="keras_pose3d")
class ProcrustesMeanPerJointPositionError(_PoseErrorMetric):
    """`metrics.PROTOCOL_2` as a Keras metric, mm.

    Args:
        name, dtype: Keras metric arguments.
    Update: y_true, y_pred (B, J, 3) mm; sample_weight (B,) optional.
    """

    def __init__(self, name: str = "pa_mpjpe", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)

    def per_sample(self, y_true, y_pred):
        return pa_mpjpe_tf(y_pred, y_true)


PROTOCOL_NAMES = {
    MeanPerJointPositionError: np_metrics.PROTOCOL_1,
    ProcrustesMeanPerJointPositionError: np_metrics.PROTOCOL_2,
}
