"""TP-Net training on SAP-Net predictions (Dabral et al. 2018, sections 4.2 and 4.3).

The library behind `python -m keras_pose3d.temporal_train` (config: `keras_pose3d.temporal_config`).

Input: the npz files of `keras_pose3d.predict_sequences` (`load_predictions`): per frame the
predicted and ground-truth root-relative poses in mm and a sequence id, rows sorted by sequence
then frame, at the frame rate the file records. Every frame becomes one training window
(`data.windows.make_windows`, ends padded by repetition) whose target is the ground-truth pose
of its target frame; windows never cross sequences. Adam on the L2 (mean squared) error, as in
the paper.

Frame rate: a window of N poses spans N / rate seconds, so TP-Net is only right on poses at the
rate it was trained at. `model.frame_rate` (`config.TP_NET_FRAME_RATE`, 25 fps) must equal
the prediction files' `frame_rate` (predict_sequences writes them at a given rate); a different
rate stops before training, a file without one (written before it was recorded) is used with a
warning. The rate is stored in the model (`TPNet.frame_rate`, and the SavedModel's metadata
on export); `infer` builds its windows at this rate from a video's frame times
(`keras_pose3d.refine`).

Resumable: every epoch ends with a checkpoint in RUN_DIR/resume (`resumable_fit`); after a kill
the same command continues from the last completed epoch (a different config for the same
run_dir is refused, naming the folder to delete to start over). At the end it writes
RUN_DIR/tp_net.keras atomically (temporary file + rename: what `export` and `infer --online`
read is never half written), RUN_DIR/history.json (the per-epoch losses of all epochs, resumed
or not) and RUN_DIR/config.yaml (the resolved config), then deletes RUN_DIR/resume, and prints
MPJPE (`metrics.mpjpe`) of the raw predictions and of TP-Net on the validation file. A missing
train or val file raises FileNotFoundError naming the config key before training;
`data.val: ""` trains without validation. Export the result with
`python -m keras_pose3d.export --run SAP_RUN --tp-net RUN_DIR/tp_net.keras`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import pathlib
import sys
from collections.abc import Sequence

import keras
import numpy as np
import yaml

from keras_pose3d import atomic_files, metrics
from keras_pose3d.data import windows
from keras_pose3d.models import loading
from keras_pose3d.models.tp_net import TPNet
from keras_pose3d.resumable_fit import ResumableFit
from keras_pose3d.temporal_config import TemporalConfig

_LOG = logging.getLogger(__name__)
MODEL_FILE = loading.TP_NET_FILE
HISTORY_FILE = "history.json"
CONFIG_FILE = "config.yaml"
RESUME_DIR = "resume"


def load_predictions(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """An npz of predict_sequences: pred, gt (M, J, 3) mm; sequence (M,) int; frame (M,) int or
    float (source-frame position, fractional where interpolated); optionally frame_rate () float
    (frames per second, NaN = unknown)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"prediction file {path} not found (keras_pose3d.predict_sequences)"
        )
    with np.load(path, allow_pickle=False) as z:
        missing = sorted({"pred", "gt", "sequence", "frame"} - set(z.files))
        if missing:
            raise KeyError(f"{path} lacks keys {missing}; it has {sorted(z.files)}")
        data = {k: z[k] for k in z.files}
    if data["pred"].shape != data["gt"].shape or data["pred"].ndim != 3:
        raise ValueError(
            f"{path}: pred {data['pred'].shape} and gt {data['gt'].shape} must both be (M, J, 3)"
        )
    return data


def check_frame_rate(data: dict, path: str | pathlib.Path, key: str, frame_rate: float) -> None:
    """Stop when the predictions' frame rate differs from the model's (module docstring).

    Raises:
        ValueError: naming the config key, the file and both rates.
    """
    if "frame_rate" not in data:
        _LOG.warning(
            "config key '%s': %s does not record its frame rate (written before "
            "predict_sequences recorded it); assuming model.frame_rate = %g fps",
            key,
            path,
            frame_rate,
        )
        return
    rate = float(data["frame_rate"])
    if math.isnan(rate):
        # predict_sequences --frame-rate native: sequences at different or unknown rates.
        _LOG.warning(
            "config key '%s': %s holds sequences at no single known frame rate "
            "(predict_sequences --frame-rate native); assuming model.frame_rate = %g "
            "fps. Write it with --frame-rate %g to be sure",
            key,
            path,
            frame_rate,
            frame_rate,
        )
    elif not math.isclose(rate, frame_rate, rel_tol=1e-6):
        raise ValueError(
            f"config key '{key}': {path} holds predictions at {rate:g} fps but "
            f"model.frame_rate is {frame_rate:g} fps; write them at that rate with "
            f"keras_pose3d.predict_sequences --frame-rate {frame_rate:g} or set "
            f"model.frame_rate: {rate:g}"
        )


def sequence_windows(
    data: dict, window: int, mode: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows of predictions, their ground-truth targets and the sequence of each, per
    sequence: (M, N, J, 3), (M, J, 3), (M,).

    Rows are sorted by (sequence, frame) first, so each sequence's windows see its frames in time
    order and never reach into a neighbouring sequence.
    """
    order = np.lexsort((data["frame"], data["sequence"]))
    pred, gt, seq = data["pred"][order], data["gt"][order], data["sequence"][order]
    xs, ys = [], []
    for s in np.unique(seq):
        rows = seq == s
        xs.append(windows.make_windows(pred[rows], window, mode))
        ys.append(gt[rows])
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.float32), seq


def train(
    config: TemporalConfig,
    *,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    data: dict[str, dict[str, np.ndarray] | None] | None = None,
) -> dict:
    """Train (resuming an interrupted run in the same run_dir), save the model atomically.

    Args:
        config: the resolved config.
        callbacks: extra Keras callbacks for `fit` (run before the epoch checkpoint).
        data: {"train": arrays, "val": arrays or None} already in memory (the main job's,
            `models.sequence_predictions.predict_records`), instead of reading
            `config.data.train` / `config.data.val`.

    Returns:
        {"epochs": total epochs trained, "initial_epoch": the epoch this call started from (> 0
        after a resume), "model": path of tp_net.keras} and, with validation data,
        "val_mpjpe_sap_net" and "val_mpjpe_tp_net" (mm).

    Raises:
        FileNotFoundError: a prediction file is missing.
        ValueError: a prediction file's frame rate differs from model.frame_rate; run_dir holds
            an interrupted run of a different config.
    """
    m = config.model
    if data is not None:
        train_data, val_data = data["train"], data.get("val")
        check_frame_rate(train_data, "the training predictions", "data.train", m.frame_rate)
        if val_data is not None:
            check_frame_rate(val_data, "the validation predictions", "data.val", m.frame_rate)
    else:
        train_data, val_data = _read_files(config)
    run_dir = pathlib.Path(config.run_dir)
    config_text = yaml.safe_dump(dataclasses.asdict(config))
    _check_resumable(run_dir, config_text)

    keras.utils.set_random_seed(config.seed)
    x, y, _ = sequence_windows(train_data, m.window, m.mode)
    model = TPNet(
        window=m.window,
        mode=m.mode,
        num_joints=x.shape[2],
        hidden=m.hidden,
        dropout=m.dropout,
        frame_rate=m.frame_rate,
    )
    model.build(x[:1].shape)
    model.compile(optimizer=keras.optimizers.Adam(config.train.learning_rate), loss="mse")
    val = None
    if val_data is not None:
        val = sequence_windows(val_data, m.window, m.mode)[:2]
    # config.yaml first: it is what a resumed run is compared with.
    atomic_files.write_text(run_dir / CONFIG_FILE, config_text)
    resume = ResumableFit(model, run_dir / RESUME_DIR)
    initial_epoch = resume.restore()
    if initial_epoch:
        print(
            f"resuming {run_dir} at epoch {initial_epoch + 1}/{config.train.epochs} "
            f"(checkpoint {resume.latest})",
            file=sys.stderr,
            flush=True,
        )
    model.fit(
        x,
        y,
        epochs=config.train.epochs,
        batch_size=config.train.batch_size,
        shuffle=True,
        validation_data=val,
        verbose=2,
        initial_epoch=initial_epoch,
        callbacks=[*callbacks, resume],
    )
    model_path = atomic_files.write_with(run_dir / MODEL_FILE, model.save, suffix=".keras")
    atomic_files.write_text(run_dir / HISTORY_FILE, json.dumps(resume.history, indent=1))
    resume.finish()  # only now: a kill before this point resumes and rewrites the same model
    result = {
        "epochs": len(resume.history),
        "initial_epoch": initial_epoch,
        "model": str(model_path),
    }
    if val is not None:
        target = windows.target_index(m.window, m.mode)
        refined = np.asarray(model.predict(val[0], batch_size=config.train.batch_size, verbose=0))
        # Root-relative poses already: no root alignment (root=None), one mean over frames.
        result.update(
            val_mpjpe_sap_net=float(metrics.mpjpe(val[0][:, target], val[1], root=None).mean()),
            val_mpjpe_tp_net=float(metrics.mpjpe(refined, val[1], root=None).mean()),
        )
        print(
            f"val MPJPE: SAP-Net {result['val_mpjpe_sap_net']:.2f} mm, "
            f"TP-Net {result['val_mpjpe_tp_net']:.2f} mm"
        )
    return result


def _read_files(config: TemporalConfig) -> tuple[dict, dict | None]:
    # Both inputs checked before anything is read: a missing val file fails at once, by name.
    for key, path in (("data.train", config.data.train), ("data.val", config.data.val)):
        if path and not pathlib.Path(path).is_file():
            hint = '; set data.val: "" to train without validation' if key == "data.val" else ""
            raise FileNotFoundError(
                f"config key '{key}': prediction file {path} not found (write "
                f"it with python -m keras_pose3d.predict_sequences{hint})"
            )
    rate = config.model.frame_rate
    train_data = load_predictions(config.data.train)
    check_frame_rate(train_data, config.data.train, "data.train", rate)
    val_data = None
    if config.data.val:
        val_data = load_predictions(config.data.val)
        check_frame_rate(val_data, config.data.val, "data.val", rate)
    return train_data, val_data


def _check_resumable(run_dir: pathlib.Path, config_text: str) -> None:
    """Refuse to resume an interrupted run under a different config (its weights, epoch count
    and optimizer state belong to that config)."""
    resume_dir = run_dir / RESUME_DIR
    if not (resume_dir / "checkpoint").is_file():
        return
    config_path = run_dir / CONFIG_FILE
    saved = config_path.read_text() if config_path.is_file() else None
    if saved != config_text:
        raise ValueError(
            f"{resume_dir} holds an interrupted TP-Net run whose config "
            f"({config_path}) differs from this one; rerun with that config to "
            f"resume it, or delete {resume_dir} to start over"
        )
