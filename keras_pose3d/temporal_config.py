"""TP-Net training config (`configs/temporal.yaml`): typed frozen dataclasses and their loader.

The tree is TP-Net's own (its trainer shares nothing with SAP-Net's `Config`), read with the
project's strict loader (`keras_pose3d.config.load_config` with this root): unknown keys, wrong
types and bad values fail with the dotted key and the file.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from collections.abc import Sequence

from keras_pose3d import config as kp_config
from keras_pose3d.data import windows


@dataclasses.dataclass(frozen=True)
class TemporalData:
    train: str = "predictions/train.npz"
    val: str = ""


@dataclasses.dataclass(frozen=True)
class TemporalModel:
    window: int = 20
    mode: str = "online"
    hidden: int = 4096
    dropout: float = 0.0
    # Frames per second of the training sequences (and so of what the model must be fed).
    frame_rate: float = 10.0

    def __post_init__(self):
        windows.window_offsets(self.window, self.mode)  # raises on a bad window/mode
        if not (math.isfinite(self.frame_rate) and self.frame_rate > 0):
            raise kp_config.ConfigError(
                f"config key 'model.frame_rate': expected frames per second > 0. "
                f"Received: {self.frame_rate}"
            )


@dataclasses.dataclass(frozen=True)
class TemporalTrain:
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 1e-4
    seed: int = 0

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise kp_config.ConfigError(
                f"config key 'train': epochs and batch_size must be >= 1 and learning_rate > 0. "
                f"Received: {self}"
            )


@dataclasses.dataclass(frozen=True)
class TemporalConfig:
    data: TemporalData = TemporalData()
    model: TemporalModel = TemporalModel()
    train: TemporalTrain = TemporalTrain()
    run_dir: str = "runs/temporal"


def load_config(path: str | pathlib.Path, overrides: Sequence[str] = ()) -> TemporalConfig:
    """YAML -> TemporalConfig with the project's strict loader (unknown keys, wrong types and
    bad values fail with the dotted key and the file); `overrides` are "dotted.key=value"."""
    return kp_config.load_config(path, overrides, root=TemporalConfig)
