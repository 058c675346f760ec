"""SAP-Net: stacked hourglass + depth regressor (Zhou et al. 2017; Dabral et al. 2018, Sect. 4.1)."""

from __future__ import annotations

import keras

from keras_pose3d.config import PART_NAMES
from keras_pose3d.layers.depth_regressor import DepthRegressor
from keras_pose3d.layers.heatmap_decode import HeatmapDecoder
from keras_pose3d.layers.hourglass import SUPPORTED_DOWNSAMPLE, StackedHourglass

# Parts the trainer can freeze per stage: config name (`config.PART_NAMES`, the names
# `train.stages[].trainable` accepts; the config stays TensorFlow-free, so it owns them) ->
# attribute of the model (attribute names are checkpoint keys, so they stay as they are).
PARTS = dict(zip(PART_NAMES, ("hourglass", "depth_regressor"), strict=True))
# Arguments added after models were first saved, with the value those models were built with: a
# saved config without one describes that network, whatever the default is now.
LEGACY_ARGUMENTS = {"num_modules": 1, "decode_threshold": 0.0}


@keras.saving.register_keras_serializable(package="keras_pose3d")
class SAPNet(keras.Model):
    """Structure-Aware PoseNet: image -> heatmaps, 2D pose, depth and 3D pose.

    A functional model built in `__init__` (so `.keras` files and SavedModels reload from
    `get_config`). The stacked hourglass (`self.hourglass`) gives per-stack heatmaps at
    `heatmap_size`; the last stack's heatmaps are decoded to normalised crop units with a
    `HeatmapDecoder` (argmax refined by a local centroid, see that layer); the depth regressor
    (`self.depth_regressor`) combines the last stack's input, features and heatmaps and
    regresses one root-relative depth per joint. Heads, decoder and outputs are float32 under
    any mixed-precision policy.

    Args:
        num_joints: int. J (16, MPII order).
        num_stacks: int. Hourglass stacks (2 in the paper).
        num_features: int. Channels (256 in the paper; multiple of 4).
        hourglass_depth: int. Pooling levels per hourglass (4 in the paper).
        depth_blocks: int. Residual + pool blocks of the depth regressor (4 in the paper).
        input_size: int. Input side S (256 in the paper).
        heatmap_size: int. Heatmap side h; S / h must be 4 (paper), 2 or 1 (tiny tests).
        depth_combine: "sum" (Zhou et al.) or "concat", see `DepthRegressor`.
        decode: "local_soft_argmax" or "soft_argmax", see `HeatmapDecoder`.
        decode_threshold: float in [0, 1), `HeatmapDecoder`'s `threshold` (0.5, as
            `config.ModelConfig`; models saved before it existed reload with 0).
        num_modules: int. Residuals at each place of an hourglass and after each hourglass
            (2 in Zhou et al.'s code, `nModules`; 1, as `config.ModelConfig`, is the lighter
            variant; models saved before the argument existed reload with 1).
        **kwargs: passed to `keras.Model` (name, trainable).

    Call: image (B, S, S, 3) float in [0, 1] (or {"image": ...}) -> dict
        "heatmaps": (B, num_stacks, h, h, J), "pose_2d": (B, J, 2) normalised (x, y),
        "depth": (B, J) normalised root-relative depth, "pose_3d": (B, J, 3) = [pose_2d, depth].
    """

    def __init__(
        self,
        num_joints: int = 16,
        num_stacks: int = 2,
        num_features: int = 256,
        hourglass_depth: int = 4,
        depth_blocks: int = 4,
        input_size: int = 256,
        heatmap_size: int = 64,
        depth_combine: str = "sum",
        decode: str = "local_soft_argmax",
        decode_threshold: float = 0.5,
        num_modules: int = 1,
        **kwargs,
    ):
        _validate(input_size, heatmap_size, hourglass_depth, depth_blocks)
        hourglass = StackedHourglass(
            num_joints,
            num_stacks,
            num_features,
            hourglass_depth,
            downsample=input_size // heatmap_size,
            num_modules=num_modules,
            name="hourglass",
        )
        depth_regressor = DepthRegressor(
            num_joints,
            num_features,
            num_blocks=depth_blocks,
            combine=depth_combine,
            name="depth",
        )
        decoder = HeatmapDecoder(
            input_size, heatmap_size, method=decode, threshold=decode_threshold, name="decode"
        )

        image = keras.Input((input_size, input_size, 3), name="image")
        stacked = hourglass(image)
        heatmaps = stacked["heatmaps"]  # (B, stacks, h, h, J) float32
        last = heatmaps[:, -1]  # (B, h, h, J)
        pose_2d = decoder(last)  # (B, J, 2)
        depth = depth_regressor(stacked["stack_input"], stacked["features"], last)  # (B, J)
        depth_column = keras.layers.Reshape((num_joints, 1), dtype="float32")(depth)
        pose_3d = keras.layers.Concatenate(axis=-1, dtype="float32", name="pose_3d")(
            [pose_2d, depth_column]
        )  # (B, J, 3)
        outputs = {"heatmaps": heatmaps, "pose_2d": pose_2d, "depth": depth, "pose_3d": pose_3d}
        super().__init__(inputs=image, outputs=outputs, **kwargs)

        self.num_joints = int(num_joints)
        self.num_stacks = int(num_stacks)
        self.num_features = int(num_features)
        self.hourglass_depth = int(hourglass_depth)
        self.depth_blocks = int(depth_blocks)
        self.input_size = int(input_size)
        self.heatmap_size = int(heatmap_size)
        self.depth_combine = depth_combine
        self.decode = decode
        self.decode_threshold = float(decode_threshold)
        self.num_modules = int(num_modules)
        self.hourglass = hourglass
        self.depth_regressor = depth_regressor
        self.decoder = decoder

    def call(self, inputs, training=None, mask=None):
        if isinstance(inputs, dict):
            if "image" not in inputs:
                raise ValueError(f"SAPNet expects an 'image' key. Received keys: {sorted(inputs)}")
            inputs = inputs["image"]
        return super().call(inputs, training=training, mask=mask)

    def part(self, name: str) -> keras.layers.Layer:
        """The sub-network called `name` ("hourglass" or "depth"), for per-stage freezing."""
        if name not in PARTS:
            raise ValueError(f"Unknown part {name!r}; expected one of {sorted(PARTS)}")
        return getattr(self, PARTS[name])

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_joints": self.num_joints,
            "num_stacks": self.num_stacks,
            "num_features": self.num_features,
            "hourglass_depth": self.hourglass_depth,
            "depth_blocks": self.depth_blocks,
            "input_size": self.input_size,
            "heatmap_size": self.heatmap_size,
            "depth_combine": self.depth_combine,
            "decode": self.decode,
            "decode_threshold": self.decode_threshold,
            "num_modules": self.num_modules,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**{**LEGACY_ARGUMENTS, **config})


def _validate(input_size, heatmap_size, hourglass_depth, depth_blocks):
    if heatmap_size <= 0 or input_size % heatmap_size:
        raise ValueError(
            "input_size must be a multiple of heatmap_size. Received: "
            f"input_size={input_size}, heatmap_size={heatmap_size}"
        )
    if input_size // heatmap_size not in SUPPORTED_DOWNSAMPLE:
        raise ValueError(
            f"input_size / heatmap_size must be one of {SUPPORTED_DOWNSAMPLE}. Received: "
            f"input_size={input_size}, heatmap_size={heatmap_size}"
        )
    for name, levels in (("hourglass_depth", hourglass_depth), ("depth_blocks", depth_blocks)):
        if heatmap_size % (2**levels):
            raise ValueError(
                f"heatmap_size must be divisible by 2**{name}. Received: "
                f"heatmap_size={heatmap_size}, {name}={levels}"
            )
