"""Newell et al.'s pre-activation bottleneck residual module."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="keras_pose3d")
class Residual(keras.layers.Layer):
    """Bottleneck residual module with BN + ReLU pre-activation (Newell et al. 2016).

    `BN-ReLU-conv1x1(F/2) - BN-ReLU-conv3x3(F/2) - BN-ReLU-conv1x1(F)` plus a skip path that is
    the identity when the input already has F channels and a 1x1 convolution otherwise.

    Args:
        filters: int. Output channels F (even, >= 2).
        **kwargs: passed to `keras.layers.Layer` (name, dtype, trainable).

    Call: x (B, H, W, C) -> (B, H, W, F).
    """

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        if int(filters) < 2 or int(filters) % 2:
            raise ValueError(f"filters must be an even int >= 2. Received: filters={filters}")
        self.filters = int(filters)
        half = self.filters // 2
        self.bn1 = keras.layers.BatchNormalization(dtype=self.dtype_policy, name="bn1")
        self.conv1 = keras.layers.Conv2D(half, 1, dtype=self.dtype_policy, name="conv1")
        self.bn2 = keras.layers.BatchNormalization(dtype=self.dtype_policy, name="bn2")
        self.conv2 = keras.layers.Conv2D(
            half, 3, padding="same", dtype=self.dtype_policy, name="conv2"
        )
        self.bn3 = keras.layers.BatchNormalization(dtype=self.dtype_policy, name="bn3")
        self.conv3 = keras.layers.Conv2D(self.filters, 1, dtype=self.dtype_policy, name="conv3")
        self.skip = None

    def build(self, input_shape):
        channels = input_shape[-1]
        self.bn1.build(input_shape)
        self.conv1.build(input_shape)
        mid = (*input_shape[:-1], self.filters // 2)
        self.bn2.build(mid)
        self.conv2.build(mid)
        self.bn3.build(mid)
        self.conv3.build(mid)
        if channels != self.filters:
            self.skip = keras.layers.Conv2D(self.filters, 1, dtype=self.dtype_policy, name="skip")
            self.skip.build(input_shape)

    def call(self, x, training=None):
        y = self.conv1(keras.ops.relu(self.bn1(x, training=training)))
        y = self.conv2(keras.ops.relu(self.bn2(y, training=training)))
        y = self.conv3(keras.ops.relu(self.bn3(y, training=training)))
        shortcut = x if self.skip is None else self.skip(x)
        return y + shortcut

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters})
        return config
