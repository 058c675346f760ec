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
from typing import Literal

from keras_pose3d import config as kp_config


@dataclasses.dataclass(frozen=True)
class TemporalData:
    train: str = "predictions/train.npz"
    val: str = ""


@dataclasses.dataclass(frozen=True)
class TemporalModel:
    window: int = 20
    mode: Literal["online", "semi_online"] = "online"
    hidden: int = 4096
    dropout: float = 0.0
    # Frames per second of the training sequences (and so of what the model must be fed).
    frame_rate: float = 10.0

    def __post_init__(self):
        # The same checks as the main job's `temporal:` section (config.TemporalStageConfig).
        kp_config._check_positive("model", self, ("window", "hidden"))
        kp_config._check(
            0.0 <= self.dropout < 1.0, "model.dropout", f"must be in [0, 1), got {self.dropout}"
        )
        kp_config._check(
            math.isfinite(self.frame_rate) and self.frame_rate > 0,
            "model.frame_rate",
            f"must be frames per second > 0, got {self.frame_rate}",
        )


@dataclasses.dataclass(frozen=True)
class TemporalTrain:
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 1e-4
    seed: int = 0

    def __post_init__(self):
        kp_config._check_positive("train", self, ("epochs", "batch_size", "learning_rate"))


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
