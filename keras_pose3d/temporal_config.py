"""TP-Net training config (`configs/temporal.yaml`): where the predictions are, and TP-Net's
settings, which `keras_pose3d.config` owns (`TemporalModel`, `TemporalTrain`: the main job's
`temporal:` section uses the same two, with the same checks).

Read with the project's strict loader (`keras_pose3d.config.load_config` with this root):
unknown keys, wrong types and bad values fail with the dotted key and the file.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence

from keras_pose3d import config as kp_config
from keras_pose3d.config import TemporalModel, TemporalTrain


@dataclasses.dataclass(frozen=True)
class TemporalData:
    """Prediction npz files (`python -m keras_pose3d.predict_sequences`); `val` "" trains
    without validation."""

    train: str = "predictions/train.npz"
    val: str = ""


@dataclasses.dataclass(frozen=True)
class TemporalConfig:
    data: TemporalData = TemporalData()
    model: TemporalModel = dataclasses.field(default_factory=TemporalModel)
    train: TemporalTrain = dataclasses.field(default_factory=TemporalTrain)
    run_dir: str = "runs/temporal"

    @property
    def seed(self) -> int:
        """The training seed (`train.seed`; 0 when unset)."""
        return 0 if self.train.seed is None else self.train.seed


def load_config(path: str | pathlib.Path, overrides: Sequence[str] = ()) -> TemporalConfig:
    """YAML -> TemporalConfig with the project's strict loader (unknown keys, wrong types and
    bad values fail with the dotted key and the file); `overrides` are "dotted.key=value"."""
    return kp_config.load_config(path, overrides, root=TemporalConfig)
