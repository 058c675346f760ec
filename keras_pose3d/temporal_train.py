"""Train TP-Net on SAP-Net predictions (Dabral et al. 2018, sections 4.2 and 4.3).

    python -m keras_pose3d.temporal_train --config configs/temporal.yaml [--set train.epochs=5]

Input: the npz files of `pipelines/predict_sequences.py` (`load_predictions`): per frame the
predicted and ground-truth root-relative poses in mm and a sequence id, rows sorted by sequence
then frame. Every frame becomes one training window (`models.tp_net.make_windows`, ends padded
by repetition) whose target is the ground-truth pose of its target frame; windows never cross
sequences. Adam on the L2 (mean squared) error, as in the paper. Writes RUN_DIR/tp_net.keras
(what `export` and `infer --online` read) and RUN_DIR/config.yaml (the resolved config), and
prints MPJPE of the raw predictions and of TP-Net on the validation file. A missing train or
val file stops before training with `error: config key 'data.val': prediction file ... not
found` (exit 2); `data.val: ""` trains without validation. Export the result with
`python -m keras_pose3d.export --run SAP_RUN --tp-net RUN_DIR/tp_net.keras`.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
from collections.abc import Sequence

import keras
import numpy as np
import yaml

from keras_pose3d import config as kp_config
from keras_pose3d.cli import exits_cleanly
from keras_pose3d.models import tp_net as tp_net_lib
from keras_pose3d.models.tp_net import TPNet


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

    def __post_init__(self):
        tp_net_lib.window_offsets(self.window, self.mode)  # raises on a bad window/mode


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
                f"Received: {self}")


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


def load_predictions(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """An npz of predict_sequences: pred, gt (M, J, 3) mm; sequence (M,) int; frame (M,) int."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prediction file {path} not found (pipelines/predict_sequences.py)")
    with np.load(path, allow_pickle=False) as z:
        missing = sorted({"pred", "gt", "sequence", "frame"} - set(z.files))
        if missing:
            raise KeyError(f"{path} lacks keys {missing}; it has {sorted(z.files)}")
        data = {k: z[k] for k in z.files}
    if data["pred"].shape != data["gt"].shape or data["pred"].ndim != 3:
        raise ValueError(f"{path}: pred {data['pred'].shape} and gt {data['gt'].shape} must both "
                         "be (M, J, 3)")
    return data


def sequence_windows(data: dict, window: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Windows of predictions and their ground-truth targets, per sequence: (M, N, J, 3), (M, J, 3).

    Rows are sorted by (sequence, frame) first, so each sequence's windows see its frames in time
    order and never reach into a neighbouring sequence.
    """
    order = np.lexsort((data["frame"], data["sequence"]))
    pred, gt, seq = data["pred"][order], data["gt"][order], data["sequence"][order]
    xs, ys = [], []
    for s in np.unique(seq):
        rows = seq == s
        xs.append(tp_net_lib.make_windows(pred[rows], window, mode))
        ys.append(gt[rows])
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.float32)


def mpjpe(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-joint position error (mm) between (M, J, 3) root-relative poses."""
    return float(np.mean(np.linalg.norm(a - b, axis=-1)))


def train(config: TemporalConfig) -> dict:
    """Train, save RUN_DIR/tp_net.keras and config.yaml; returns the validation errors (mm)."""
    # Both inputs checked before anything is built: a missing val file fails at once, by name.
    for key, path in (("data.train", config.data.train), ("data.val", config.data.val)):
        if path and not pathlib.Path(path).is_file():
            hint = "; set data.val: \"\" to train without validation" if key == "data.val" else ""
            raise FileNotFoundError(f"config key '{key}': prediction file {path} not found (write "
                                    f"it with pipelines/predict_sequences.py{hint})")
    keras.utils.set_random_seed(config.train.seed)
    m = config.model
    x, y = sequence_windows(load_predictions(config.data.train), m.window, m.mode)
    model = TPNet(window=m.window, mode=m.mode, num_joints=x.shape[2], hidden=m.hidden,
                  dropout=m.dropout)
    model.compile(optimizer=keras.optimizers.Adam(config.train.learning_rate), loss="mse")
    val = None
    if config.data.val:
        val = sequence_windows(load_predictions(config.data.val), m.window, m.mode)
    model.fit(x, y, epochs=config.train.epochs, batch_size=config.train.batch_size,
              shuffle=True, validation_data=val, verbose=2)
    run_dir = pathlib.Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "tp_net.keras")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(config)))
    result = {}
    if val is not None:
        target = tp_net_lib.target_index(m.window, m.mode)
        refined = np.asarray(model.predict(val[0], batch_size=config.train.batch_size, verbose=0))
        result = {"val_mpjpe_sap_net": mpjpe(val[0][:, target], val[1]),
                  "val_mpjpe_tp_net": mpjpe(refined, val[1])}
        print(f"val MPJPE: SAP-Net {result['val_mpjpe_sap_net']:.2f} mm, "
              f"TP-Net {result['val_mpjpe_tp_net']:.2f} mm")
    return result


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", action="append", default=[], help="dotted.key=value override")
    args = parser.parse_args(argv)
    # ConfigError, the model's window/mode checks and missing files: `error: ...`, exit 2.
    train(load_config(args.config, args.set))
    return 0


if __name__ == "__main__":
    sys.exit(main())
