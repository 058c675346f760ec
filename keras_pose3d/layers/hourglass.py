"""Hourglass and stacked hourglass (Newell et al. 2016), the 2D part of SAP-Net."""

from __future__ import annotations

import keras

from keras_pose3d.layers.checkpoint_tracking import track_listed_layers
from keras_pose3d.layers.residual import Residual

# Ratios of input side to heatmap side the stem supports: 4 is the paper's (256 -> 64);
# 2 and 1 keep tiny CPU test configs cheap.
SUPPORTED_DOWNSAMPLE = (1, 2, 4)


@keras.saving.register_keras_serializable(package="keras_pose3d")
class Hourglass(keras.layers.Layer):
    """One hourglass: recursive max-pool / residual / nearest-upsample with skip branches.

    At each of `depth` levels: an upper branch of `num_modules` Residuals on x, and a lower
    branch of `num_modules` Residuals on pool(x), then the next level (or `num_modules` bottom
    Residuals), then `num_modules` Residuals and a nearest-neighbour 2x upsample; the output is
    upper + lower. The spatial size must be divisible by 2**depth. Newell et al.'s and Zhou et
    al.'s code (`nModules`) use 2 modules at every place; 1 is the lighter variant.

    Args:
        depth: int >= 1. Number of pooling levels (4 in the paper: 64 -> 4 px).
        filters: int. Channels everywhere inside (256 in the paper).
        num_modules: int >= 1. Residuals in a row at each place (2 in Zhou et al.'s code).
        **kwargs: passed to `keras.layers.Layer`.

    Call: x (B, H, W, filters) -> (B, H, W, filters).
    """

    def __init__(self, depth: int, filters: int, num_modules: int = 1, **kwargs):
        super().__init__(**kwargs)
        if int(depth) < 1:
            raise ValueError(f"depth must be >= 1. Received: depth={depth}")
        if int(num_modules) < 1:
            raise ValueError(f"num_modules must be >= 1. Received: num_modules={num_modules}")
        self.depth = int(depth)
        self.filters = int(filters)
        self.num_modules = int(num_modules)
        # Flat lists, module j of level k at k * num_modules + j; with one module the attributes
        # and names are those of the one-module layer, so its checkpoints keep loading.
        self.upper = self._residuals("up", self.depth)
        self.down = self._residuals("down", self.depth)
        self.after = self._residuals("after", self.depth)
        self.bottom = Residual(self.filters, dtype=self.dtype_policy, name="bottom")
        self.bottom_more = [
            Residual(self.filters, dtype=self.dtype_policy, name=f"bottom_{j}")
            for j in range(1, self.num_modules)
        ]
        self.pool = keras.layers.MaxPooling2D(2, dtype=self.dtype_policy, name="pool")
        self.upsample = keras.layers.UpSampling2D(
            2, interpolation="nearest", dtype=self.dtype_policy
        )
        for name in ("upper", "down", "after", "bottom_more"):
            track_listed_layers(self, name, getattr(self, name))

    def _residuals(self, prefix: str, levels: int) -> list[Residual]:
        return [
            Residual(self.filters, dtype=self.dtype_policy, name=_module_name(prefix, k, j))
            for k in range(levels)
            for j in range(self.num_modules)
        ]

    def _place(self, residuals: list[Residual], level: int) -> list[Residual]:
        return residuals[level * self.num_modules : (level + 1) * self.num_modules]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for level in range(self.depth):
            low = (shape[0], _half(shape[1]), _half(shape[2]), self.filters)
            for residual in self._place(self.upper, level):
                residual.build(shape)
            for residual in self._place(self.down, level) + self._place(self.after, level):
                residual.build(low)
            shape = low
        for residual in [self.bottom, *self.bottom_more]:
            residual.build(shape)

    def _level(self, x, level, training):
        upper = _chain(self._place(self.upper, level), x, training)
        low = _chain(self._place(self.down, level), self.pool(x), training)
        if level + 1 < self.depth:
            low = self._level(low, level + 1, training)
        else:
            low = _chain([self.bottom, *self.bottom_more], low, training)
        low = _chain(self._place(self.after, level), low, training)
        return upper + self.upsample(low)

    def call(self, x, training=None):
        return self._level(x, 0, training)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"depth": self.depth, "filters": self.filters, "num_modules": self.num_modules}
        )
        return config


def _module_name(prefix: str, index, module: int) -> str:
    # Module 0 keeps the one-module name ("up2"); further ones are "up2_1", "up2_2", ...
    return f"{prefix}{index}" if module == 0 else f"{prefix}{index}_{module}"


def _chain(residuals, x, training):
    for residual in residuals:
        x = residual(x, training=training)
    return x


def _half(n):
    return None if n is None else n // 2


def _div(n, k):
    return None if n is None else n // k


@keras.saving.register_keras_serializable(package="keras_pose3d")
class StackedHourglass(keras.layers.Layer):
    """Stem + `num_stacks` hourglasses with intermediate heatmap supervision.

    Stem (for downsample 4, Newell's and Zhou et al.'s): 7x7 conv stride 2 to F/4 channels, BN,
    ReLU, Residual(F/2), 2x2 max-pool, Residual(F/2), Residual(F). Downsample 2 drops the
    max-pool, downsample 1 also the conv stride. Each stack: Hourglass, `num_modules`
    Residuals, 1x1 conv + BN + ReLU (the stack's features), and a 1x1 heatmap head computed in
    float32. Between stacks the features and heatmaps are re-projected with 1x1 convs and added
    to the stack's input. Zhou et al. apply that re-projection after the last stack too and
    feed the sum to the depth regressor; here the last one lives in `DepthRegressor` ("sum").

    Args:
        num_joints: int. Heatmap channels J.
        num_stacks: int >= 1.
        num_features: int. Channels F (multiple of 4).
        hourglass_depth: int >= 1. Pooling levels per hourglass.
        downsample: int in (1, 2, 4). Input side / heatmap side.
        num_modules: int >= 1. Residuals at each place of an hourglass and after each hourglass
            (Zhou et al.'s `nModules`, 2 in their code).
        **kwargs: passed to `keras.layers.Layer`.

    Call: image (B, S, S, 3) -> dict
        "heatmaps": (B, num_stacks, h, h, J) float32, h = S / downsample;
        "features": (B, h, h, F) the last stack's features;
        "stack_input": (B, h, h, F) the last stack's input (for the depth regressor's skip).
    """

    def __init__(
        self,
        num_joints: int,
        num_stacks: int,
        num_features: int,
        hourglass_depth: int,
        downsample: int = 4,
        num_modules: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(num_stacks) < 1:
            raise ValueError(f"num_stacks must be >= 1. Received: num_stacks={num_stacks}")
        if int(num_features) < 8 or int(num_features) % 4:
            raise ValueError(
                f"num_features must be a multiple of 4 and >= 8. Received: "
                f"num_features={num_features}"
            )
        if int(downsample) not in SUPPORTED_DOWNSAMPLE:
            raise ValueError(
                f"downsample must be one of {SUPPORTED_DOWNSAMPLE}. Received: "
                f"downsample={downsample}"
            )
        self.num_joints = int(num_joints)
        self.num_stacks = int(num_stacks)
        self.num_features = int(num_features)
        self.hourglass_depth = int(hourglass_depth)
        self.downsample = int(downsample)
        self.num_modules = int(num_modules)
        policy = self.dtype_policy
        f = self.num_features
        self.stem_conv = keras.layers.Conv2D(
            f // 4,
            7,
            strides=1 if self.downsample == 1 else 2,
            padding="same",
            dtype=policy,
            name="stem_conv",
        )
        self.stem_bn = keras.layers.BatchNormalization(dtype=policy, name="stem_bn")
        self.stem_res1 = Residual(f // 2, dtype=policy, name="stem_res1")
        self.stem_pool = keras.layers.MaxPooling2D(2, dtype=policy, name="stem_pool")
        self.stem_res2 = Residual(f // 2, dtype=policy, name="stem_res2")
        self.stem_res3 = Residual(f, dtype=policy, name="stem_res3")
        self.hourglasses, self.stack_res, self.stack_lin, self.stack_bn = [], [], [], []
        self.heads, self.remap_features, self.remap_heatmaps = [], [], []
        for i in range(self.num_stacks):
            self.hourglasses.append(
                Hourglass(
                    self.hourglass_depth, f, self.num_modules, dtype=policy, name=f"hourglass{i}"
                )
            )
            # Flat, module j of stack i at i * num_modules + j (one module: the old names).
            self.stack_res.extend(
                Residual(f, dtype=policy, name=_module_name(f"stack{i}_res", "", j))
                for j in range(self.num_modules)
            )
            self.stack_lin.append(keras.layers.Conv2D(f, 1, dtype=policy, name=f"stack{i}_lin"))
            self.stack_bn.append(keras.layers.BatchNormalization(dtype=policy, name=f"stack{i}_bn"))
            # Heads compute in float32 so heatmaps (and the L2 loss on them) keep full precision.
            self.heads.append(
                keras.layers.Conv2D(self.num_joints, 1, dtype="float32", name=f"stack{i}_head")
            )
            if i + 1 < self.num_stacks:
                self.remap_features.append(
                    keras.layers.Conv2D(f, 1, dtype=policy, name=f"stack{i}_remap_features")
                )
                self.remap_heatmaps.append(
                    keras.layers.Conv2D(f, 1, dtype=policy, name=f"stack{i}_remap_heatmaps")
                )
        for name in (
            "hourglasses",
            "stack_res",
            "stack_lin",
            "stack_bn",
            "heads",
            "remap_features",
            "remap_heatmaps",
        ):
            track_listed_layers(self, name, getattr(self, name))

    def build(self, input_shape):
        # Explicit shapes: without a build, Keras would trace the whole call once more.
        batch, height, width = input_shape[0], input_shape[1], input_shape[2]
        f, stride = self.num_features, 1 if self.downsample == 1 else 2
        self.stem_conv.build(input_shape)
        shape = (batch, _div(height, stride), _div(width, stride), f // 4)
        self.stem_bn.build(shape)
        self.stem_res1.build(shape)
        if self.downsample == 4:
            shape = (batch, _div(shape[1], 2), _div(shape[2], 2), f // 4)
        shape = (*shape[:3], f // 2)
        self.stem_res2.build(shape)
        self.stem_res3.build(shape)
        shape = (*shape[:3], f)
        for i in range(self.num_stacks):
            self.hourglasses[i].build(shape)
            for residual in self._stack_residuals(i):
                residual.build(shape)
            self.stack_lin[i].build(shape)
            self.stack_bn[i].build(shape)
            self.heads[i].build(shape)
            if i + 1 < self.num_stacks:
                self.remap_features[i].build(shape)
                self.remap_heatmaps[i].build((*shape[:3], self.num_joints))

    def call(self, image, training=None):
        x = keras.ops.relu(self.stem_bn(self.stem_conv(image), training=training))
        x = self.stem_res1(x, training=training)
        if self.downsample == 4:
            x = self.stem_pool(x)
        x = self.stem_res2(x, training=training)
        x = self.stem_res3(x, training=training)  # (B, h, h, F)
        heatmaps = []
        features = stack_input = x
        for i in range(self.num_stacks):
            stack_input = x
            y = self.hourglasses[i](x, training=training)
            y = _chain(self._stack_residuals(i), y, training)
            features = keras.ops.relu(self.stack_bn[i](self.stack_lin[i](y), training=training))
            heatmap = self.heads[i](features)  # (B, h, h, J) float32
            heatmaps.append(heatmap)
            if i + 1 < self.num_stacks:
                x = x + self.remap_features[i](features) + self.remap_heatmaps[i](heatmap)
        return {
            "heatmaps": keras.ops.stack(heatmaps, axis=1),  # (B, stacks, h, h, J)
            "features": features,
            "stack_input": stack_input,
        }

    def _stack_residuals(self, stack: int) -> list[Residual]:
        return self.stack_res[stack * self.num_modules : (stack + 1) * self.num_modules]

    def compute_output_spec(self, image, training=None):
        # Shapes and dtypes without tracing the whole network (functional construction).
        batch, height, width = image.shape[0], image.shape[1], image.shape[2]
        h, w = _div(height, self.downsample), _div(width, self.downsample)
        features = keras.KerasTensor((batch, h, w, self.num_features), dtype=self.compute_dtype)
        return {
            "heatmaps": keras.KerasTensor(
                (batch, self.num_stacks, h, w, self.num_joints), dtype="float32"
            ),
            "features": features,
            "stack_input": keras.KerasTensor(features.shape, dtype=self.compute_dtype),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_joints": self.num_joints,
                "num_stacks": self.num_stacks,
                "num_features": self.num_features,
                "hourglass_depth": self.hourglass_depth,
                "downsample": self.downsample,
                "num_modules": self.num_modules,
            }
        )
        return config
