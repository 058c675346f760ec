"""Keras layers around the pure loss functions of `keras_pose3d.losses`.

The formulas live once, in `keras_pose3d.losses`; these layers only weight them, return the
per-sample values (B,) and optionally `add_loss` their batch mean. The trainer's objective
(`keras_pose3d.training.objective`) builds one layer per term with the config's weight (Eq. 3's
λ_g, λ_a, λ_s included), so these layers are what trains. All compute in float32.

Under a distribution strategy the trainer should use the returned per-sample values and
divide by the *global* batch size itself; `add_as_loss` uses the local batch mean and is meant
for single-device `fit` or analysis graphs.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_pose3d import losses


class _PerSampleLoss(keras.layers.Layer):
    """Shared plumbing: float32 compute, a weight, optional add_loss of the batch mean."""

    def __init__(self, weight: float = 1.0, add_as_loss: bool = False, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.weight = float(weight)
        self.add_as_loss = bool(add_as_loss)

    def _finish(self, per_sample):
        per_sample = self.weight * per_sample
        if self.add_as_loss:
            self.add_loss(tf.reduce_mean(per_sample))
        return per_sample

    def compute_output_shape(self, input_shape, *args, **kwargs):
        return (input_shape[0],)

    def get_config(self):
        config = super().get_config()
        config.update({"weight": self.weight, "add_as_loss": self.add_as_loss})
        return config


@keras.saving.register_keras_serializable(package="keras_pose3d")
class HeatmapLoss(_PerSampleLoss):
    """Weighted `losses.heatmap_loss`.

    Args:
        weight: float multiplier.
        add_as_loss: bool, also `add_loss` the batch mean.

    Call: pred_heatmaps (B, S, h, w, J) or (B, h, w, J), gt_heatmaps (B, h, w, J),
        visibility (B, J) -> (B,) float32.
    """

    def call(self, pred_heatmaps, gt_heatmaps, visibility):
        return self._finish(losses.heatmap_loss(pred_heatmaps, gt_heatmaps, visibility))


@keras.saving.register_keras_serializable(package="keras_pose3d")
class DepthLoss(_PerSampleLoss):
    """Weighted `losses.depth_loss`.

    Call: pred_depth (B, J), gt_depth (B, J), visibility (B, J) or None -> (B,) float32.
    """

    def call(self, pred_depth, gt_depth, visibility=None):
        return self._finish(losses.depth_loss(pred_depth, gt_depth, visibility))


@keras.saving.register_keras_serializable(package="keras_pose3d")
class GeometricLoss(_PerSampleLoss):
    """Weighted `losses.geometric_loss` (Zhou et al.'s bone-length ratios).

    Call: pose_3d (B, J, 3), visibility (B, J) or None -> (B,) float32.
    """

    def call(self, pose_3d, visibility=None):
        return self._finish(losses.geometric_loss(pose_3d, visibility))


@keras.saving.register_keras_serializable(package="keras_pose3d")
class IllegalAngleLoss(_PerSampleLoss):
    """Weighted `losses.illegal_angle_loss` (Dabral et al. Eq. 1, unit-free form).

    Args:
        weight: float multiplier.
        add_as_loss: bool, also `add_loss` the batch mean.
        elbow_plane: "collar" (the paper's, default) or "torso".

    Call: pose_3d (B, J, 3), visibility (B, J) or None -> (B,) float32.
    """

    def __init__(self, weight=1.0, add_as_loss=False, elbow_plane="collar", **kwargs):
        super().__init__(weight=weight, add_as_loss=add_as_loss, **kwargs)
        losses.angle_limbs(elbow_plane)  # validates
        self.elbow_plane = elbow_plane

    def call(self, pose_3d, visibility=None):
        return self._finish(
            losses.illegal_angle_loss(pose_3d, visibility, elbow_plane=self.elbow_plane)
        )

    def get_config(self):
        config = super().get_config()
        config["elbow_plane"] = self.elbow_plane
        return config


@keras.saving.register_keras_serializable(package="keras_pose3d")
class SymmetryLoss(_PerSampleLoss):
    """Weighted `losses.symmetry_loss` (Dabral et al. Eq. 2).

    Call: pose_3d (B, J, 3), visibility (B, J) or None -> (B,) float32.
    """

    def call(self, pose_3d, visibility=None):
        return self._finish(losses.symmetry_loss(pose_3d, visibility))
