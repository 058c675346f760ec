"""Zhou et al. 2017's depth regression sub-network."""

from __future__ import annotations

import keras

from keras_pose3d.layers.checkpoint_tracking import track_listed_layers
from keras_pose3d.layers.residual import Residual

COMBINE_MODES = ("sum", "concat")


@keras.saving.register_keras_serializable(package="keras_pose3d")
class DepthRegressor(keras.layers.Layer):
    """Regresses one root-relative depth per joint from hourglass features (Zhou et al. 2017).

    Input combination (the last stack's "skip" of Zhou's network):
      * "sum": stack_input + conv1x1(features) + conv1x1(heatmaps), all F channels. This is
        Zhou et al.'s (pose-hg-3d, hg-reg.lua): every stack, the last one too, adds the 1x1
        re-projections `ll_` of its features and `tmpOut_` of its heatmaps to its input, and
        the regressor reads that sum. The last stack's two convs live here.
      * "concat": conv1x1(concat(stack_input, features, heatmaps)) to F channels.
    Then `num_blocks` times (`residuals_per_block` Residual(F) + 2x2 max-pool), flatten and a
    float32 dense layer to J depths (Zhou et al.: 4 blocks of nRegModules = 2, a 4x4xF -> 16
    linear layer). The spatial side must be divisible by 2**num_blocks.

    Args:
        num_joints: int. Depths to regress (16 for MPII order).
        num_features: int. Channels F.
        num_blocks: int >= 1. Residual + max-pool blocks (4 in the paper: 64 -> 4 px).
        residuals_per_block: int >= 1 (2 in Zhou et al.'s code).
        combine: "sum" or "concat".
        **kwargs: passed to `keras.layers.Layer`.

    Call: stack_input (B, h, h, F), features (B, h, h, F), heatmaps (B, h, h, J)
        -> depth (B, J) float32.
    """

    def __init__(
        self,
        num_joints: int,
        num_features: int,
        num_blocks: int = 4,
        residuals_per_block: int = 2,
        combine: str = "sum",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if combine not in COMBINE_MODES:
            raise ValueError(f"combine must be one of {COMBINE_MODES}. Received: combine={combine}")
        if int(num_blocks) < 1 or int(residuals_per_block) < 1:
            raise ValueError(
                "num_blocks and residuals_per_block must be >= 1. Received: "
                f"num_blocks={num_blocks}, residuals_per_block={residuals_per_block}"
            )
        self.num_joints = int(num_joints)
        self.num_features = int(num_features)
        self.num_blocks = int(num_blocks)
        self.residuals_per_block = int(residuals_per_block)
        self.combine = combine
        policy = self.dtype_policy
        f = self.num_features
        if combine == "sum":
            self.remap_features = keras.layers.Conv2D(f, 1, dtype=policy, name="remap_features")
            self.remap_heatmaps = keras.layers.Conv2D(f, 1, dtype=policy, name="remap_heatmaps")
        else:
            self.fuse = keras.layers.Conv2D(f, 1, dtype=policy, name="fuse")
        self.blocks = [
            [Residual(f, dtype=policy, name=f"block{b}_res{r}") for r in range(residuals_per_block)]
            for b in range(num_blocks)
        ]
        track_listed_layers(self, "blocks", [r for block in self.blocks for r in block])
        self.pool = keras.layers.MaxPooling2D(2, dtype=policy, name="pool")
        self.flatten = keras.layers.Flatten(dtype=policy)
        # The regression output stays float32 under mixed precision.
        self.dense = keras.layers.Dense(self.num_joints, dtype="float32", name="dense")

    def build(self, stack_input_shape, features_shape, heatmaps_shape):
        # Explicit shapes: without a build, Keras would trace the whole call once more.
        f = self.num_features
        if self.combine == "sum":
            self.remap_features.build(features_shape)
            self.remap_heatmaps.build(heatmaps_shape)
        else:
            channels = stack_input_shape[-1] + features_shape[-1] + heatmaps_shape[-1]
            self.fuse.build((*stack_input_shape[:-1], channels))
        shape = (*stack_input_shape[:-1], f)
        for block in self.blocks:
            for residual in block:
                residual.build(shape)
            shape = (shape[0], shape[1] // 2, shape[2] // 2, f)
        self.dense.build((shape[0], shape[1] * shape[2] * f))

    def call(self, stack_input, features, heatmaps, training=None):
        if self.combine == "sum":
            x = stack_input + self.remap_features(features) + self.remap_heatmaps(heatmaps)
        else:
            heatmaps = keras.ops.cast(heatmaps, features.dtype)
            x = self.fuse(keras.ops.concatenate([stack_input, features, heatmaps], axis=-1))
        for block in self.blocks:
            for residual in block:
                x = residual(x, training=training)
            x = self.pool(x)
        return self.dense(self.flatten(x))  # (B, J)

    def compute_output_spec(self, stack_input, features, heatmaps, training=None):
        return keras.KerasTensor((stack_input.shape[0], self.num_joints), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_joints": self.num_joints,
                "num_features": self.num_features,
                "num_blocks": self.num_blocks,
                "residuals_per_block": self.residuals_per_block,
                "combine": self.combine,
            }
        )
        return config
