"""SAP-Net's predictions over the frames of 3D sequences, the input TP-Net trains on.

The library behind `python -m keras_pose3d.predict_sequences` and the main job
(`training/main_job.py`, which keeps the arrays in memory and writes the npz as an artefact):
`predict_records` returns the arrays, `write_predictions` writes them, `run_predictions` does
both from a model or run directory.

TP-Net is trained on SAP-Net's own predictions (Dabral et al. 2018, section 4.3), so this job
reads the 3D records (schema of `keras_pose3d/data/features.py`; 2D-only records are skipped,
counted and the count printed), runs RUN_DIR/sap_net.keras under float32 in batches and writes
one npz (atomically: temporary file + rename):

    pred      (M, J, 3) float32  predicted root-relative pose, camera mm
    gt        (M, J, 3) float32  ground-truth root-relative pose, camera mm
    sequence  (M,) int32         index into `sequence_names`
    frame     (M,) float64       position in the source sequence, in its frames (meta/frame;
                                 fractional where interpolated)
    sequence_names (S,) str      "dataset/subject/sequence/action/camera"
    frame_rate () float64        frames per second of the rows of every sequence (NaN: unknown)

rows sorted by (sequence, frame), as `keras_pose3d.training.temporal.load_predictions` reads
them.
Sequences are grouped by dataset + subject + sequence + action + camera (one camera's view of
one trial is one motion); a duplicated frame raises.

Frame rate (`--frame-rate`, `run_predictions(frame_rate=...)`): TP-Net learns motion over a
window of N rows, N / rate seconds, so the rows must come at the rate it is trained at
(`temporal.yaml` model.frame_rate; `temporal_train` checks the file's `frame_rate`). With a
rate, each sequence is resampled from its records (`data.frame_rates`: its native rate from the
dataset, H36M 50 fps, 3DHP 25 or 50 fps per sequence, synthetic 25 fps; a record on a sample time
is taken as is, between two records the poses are interpolated linearly) and it refuses,
naming the sequence, when its records are sparser than the rate (H36M records at the default
stride 5 give 10 fps and no more: convert with a smaller --stride for more). Frames missing in
the records (gaps longer than one output period) split a sequence: the parts are named
"<name>@<first frame>" and TP-Net windows never span a gap. The default on the command line is
TP-Net's rate (`config.TP_NET_FRAME_RATE`, 25 fps); `--frame-rate native` (library: frame_rate=None) keeps
the records as they are, records the rate when all sequences share one (else NaN, with a
warning) and warns per sequence about gaps.

The network input is built exactly as training and validation build it: the evaluation crop of
`data.augment.crop_and_augment` (scale 1, no rotation or flip), i.e. the central person box of
side max(H, W) / PERSON_MARGIN of the stored crop, warped to S x S. Resizing the whole stored
crop instead would show SAP-Net the person 1.75x smaller than it was trained on. The forward
pass and the decode to mm are the trainer's and evaluation's (`models.prediction`): the
record's intrinsics carried through that same affine (`crop_geometry.transform_intrinsics`) and
the ground-truth root depth, the paper's evaluation protocol.

This is a plain tf.data batch job, not Beam: the work is one forward pass per frame and fits a
single accelerator (H36M's training frames at 5 fps: ~300k forward passes, well under an hour
on one GPU). Scaling out would shard `--records` across processes and concatenate the npz files
(`sequence` ids then need re-numbering by name).
"""

from __future__ import annotations

import logging
import math
import pathlib
import sys
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from keras_pose3d import atomic_files, skeleton
from keras_pose3d.data import dataset, features, frame_rates, pose_codec

_LOG = logging.getLogger(__name__)
META = ("dataset", "subject", "sequence", "action", "camera")


def _prepare_or_skip(record: dict, input_size: int) -> dict:
    """`_prepare` for a 3D record; zeros with `has_3d` 0 for a 2D-only one (counted, not run).

    The JPEG is decoded only in the 3D branch, so a skipped record costs its parse alone.
    """

    def prepare():
        image = tf.io.decode_jpeg(record["image_jpeg"], channels=3)
        size = tf.cast(record["image_size"], tf.int32)
        return _prepare(
            dict(record, image=tf.reshape(image, tf.concat([size, [3]], 0))), input_size
        )

    def skip():
        return {
            "image": tf.zeros((input_size, input_size, 3), tf.float32),
            "intrinsics": tf.zeros((4,), tf.float32),
            "joints_3d": tf.zeros_like(record["joints_3d"]),
            "key": tf.constant(""),
            "frame": tf.zeros_like(record["frame"]),
            **{m: tf.constant("") for m in META[:3]},
        }

    out = tf.cond(tf.equal(record["has_3d"], 1), prepare, skip)
    out["image"] = tf.ensure_shape(out["image"], (input_size, input_size, 3))
    return dict(out, has_3d=record["has_3d"])


def check_frame_steps(name: str, frames: Sequence[int]) -> list[tuple[int, int]]:
    """Warn (logging) when a sequence's sorted frames do not advance by one constant step.

    The expected step is the most common difference (H36M records every 5th frame: 5).

    Returns:
        the gaps as (frame before, frame after) pairs whose difference is not that step.
    """
    frames = np.sort(np.asarray(frames, np.int64))
    if len(frames) < 3:
        return []
    steps = np.diff(frames)
    step = frame_rates.usual_step(frames)
    gaps = [(int(frames[i]), int(frames[i + 1])) for i in np.flatnonzero(steps != step)]
    if gaps:
        shown = ", ".join(f"{a}->{b}" for a, b in gaps[:10])
        _LOG.warning(
            "sequence %s: frame step is not constant (mostly %d); %d gap(s): %s%s. "
            "TP-Net windows there span the missing frames",
            name,
            step,
            len(gaps),
            shown,
            " ..." if len(gaps) > 10 else "",
        )
    return gaps


def _prepare(record: dict, input_size: int) -> dict:
    """Parsed record -> network input and what decoding needs (graph code for tf.data).

    Returns image (S, S, 3) float32 in [0, 1] and intrinsics (4,) in input pixels, identical to
    the validation dataset's (both are `data.dataset.crop_record`'s evaluation crop, which
    `make_validation_dataset` builds its examples with), plus joints_3d (J, 3) mm, the
    sequence key, dataset, subject, sequence (for the native frame rate) and the frame.
    """
    # The evaluation crop of training/validation: same person scale, same intrinsics.
    out = dataset.crop_record(record, input_size)
    image, intrinsics = out["image"], out["intrinsics"]
    key = tf.strings.join([record[m] for m in META], separator="/")
    return {
        "image": image,
        "intrinsics": intrinsics,
        "joints_3d": record["joints_3d"],
        "key": key,
        "frame": record["frame"],
        **{m: record[m] for m in META[:3]},
    }


def _match(file_patterns: str | Sequence[str]) -> list[str]:
    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    files = sorted({f for p in patterns for f in tf.io.gfile.glob(p)})
    if not files:
        raise FileNotFoundError(f"no record files match {file_patterns}")
    return files


def _predict_rows(files: list[str], model, batch_size: int):
    """Per sequence key: {frame: (pred, gt)}, key -> (dataset, subject, sequence), skipped count."""
    from keras_pose3d.models import prediction  # the forward pass and decode to mm (Keras)

    s = int(model.input_size)
    ds = (
        tf.data.TFRecordDataset(files)
        .map(
            lambda x: features.parse_example(x, decode_image=False),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        # Not a .filter: the 2D-only records are counted here, then left out of the model call.
        .map(lambda r: _prepare_or_skip(r, s), num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    rows: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    origin: dict[str, tuple[str, str, str]] = {}
    done = skipped = 0

    def batches():
        nonlocal skipped
        for batch in ds.as_numpy_iterator():
            keep = batch["has_3d"] == 1  # 2D-only records: counted, not predicted
            skipped += int(np.sum(~keep))
            # The ground-truth root depth decodes the prediction (the paper's protocol).
            yield dict(batch, keep=keep, root_depth=batch["joints_3d"][:, skeleton.ROOT, 2])

    predict = prediction.keras_predictor(model)
    for batch, out in prediction.predict_batches(predict, batches(), s):
        pred = pose_codec.to_root_relative_mm(out["pose_mm"])  # (K, J, 3) camera mm
        gt = pose_codec.to_root_relative_mm(batch["joints_3d"].astype(np.float64))
        meta = zip(*(batch[m] for m in META[:3]))
        for key, frame, p, g, m in zip(batch["key"], batch["frame"], pred, gt, meta):
            key = key.decode("utf-8")
            frames = rows.setdefault(key, {})
            if int(frame) in frames:
                raise ValueError(f"sequence {key} has frame {frame} twice in {files}")
            frames[int(frame)] = (p, g)
            origin.setdefault(key, tuple(v.decode("utf-8") for v in m))
        done += len(gt)
        print(f"predicted {done} frames", file=sys.stderr, flush=True)
    print(f"skipped {skipped} 2D-only records (has_3d = 0)", file=sys.stderr, flush=True)
    if not rows:
        raise ValueError(f"no 3D records (has_3d = 1) in {files}")
    return rows, origin, skipped


def _native_rate(key: str, origin: dict) -> float | None:
    try:
        return frame_rates.source_frame_rate(*origin[key])
    except ValueError:
        return None


def _as_recorded(rows: dict, origin: dict) -> tuple[list, float]:
    """Every record as it is: [(name, frames, pred, gt)], and the rate they share (NaN if not)."""
    parts, rates = [], {}
    for name in sorted(rows):
        frames = sorted(rows[name])
        check_frame_steps(name, frames)
        native = _native_rate(name, origin)
        rate = None if native is None else frame_rates.recorded_rate(frames, native)
        if len(frames) > 1:
            rates[name] = rate
        parts.append(
            (
                name,
                np.asarray(frames, np.float64),
                np.stack([rows[name][f][0] for f in frames]),
                np.stack([rows[name][f][1] for f in frames]),
            )
        )
    known = {round(r, 6) for r in rates.values() if r is not None}
    if len(known) == 1 and None not in rates.values():
        return parts, known.pop()
    shown = ", ".join(
        f"{n}: {'unknown' if r is None else f'{r:g} fps'}" for n, r in list(rates.items())[:10]
    )
    if rates:
        _LOG.warning(
            "the sequences do not share one known frame rate (%s); the file records "
            "frame_rate NaN. Give a frame rate to resample them to it",
            shown,
        )
    return parts, math.nan


def _resampled(rows: dict, origin: dict, frame_rate: float) -> list:
    """Every sequence resampled to `frame_rate` (module docstring): [(name, frames, pred, gt)].

    Raises:
        ValueError: a sequence's native rate is unknown or its records are sparser than the rate
            (every such sequence named).
    """
    parts, errors = [], []
    for name in sorted(rows):
        frames = np.asarray(sorted(rows[name]), np.int64)
        try:
            native = frame_rates.source_frame_rate(*origin[name])
            runs = frame_rates.resample_positions(frames, native, frame_rate, name)
        except ValueError as err:
            errors.append(str(err))
            continue
        pred = np.stack([rows[name][f][0] for f in frames])
        gt = np.stack([rows[name][f][1] for f in frames])
        if len(runs) > 1:
            _LOG.warning(
                "sequence %s: %d gap(s) longer than 1/%g s in its records; split into %d "
                "parts (TP-Net windows never span a gap)",
                name,
                len(runs) - 1,
                frame_rate,
                len(runs),
            )
        for positions in runs:
            # A run starts on a recorded (integer) frame; no exponent notation for big ones.
            part = name if len(runs) == 1 else f"{name}@{int(positions[0])}"
            parts.append(
                (
                    part,
                    positions,
                    frame_rates.resample(frames, pred, positions),
                    frame_rates.resample(frames, gt, positions),
                )
            )
    if errors:
        shown = "; ".join(errors[:5]) + (
            f"; ... ({len(errors)} sequences)" if len(errors) > 5 else ""
        )
        raise ValueError(f"cannot write predictions at {frame_rate:g} fps: {shown}")
    return parts


def _arrays(parts: list, frame_rate: float) -> dict[str, np.ndarray]:
    parts = sorted(parts, key=lambda p: p[0])
    return {
        "pred": np.concatenate([p[2] for p in parts]).astype(np.float32),
        "gt": np.concatenate([p[3] for p in parts]).astype(np.float32),
        "sequence": np.concatenate([np.full(len(p[1]), i, np.int32) for i, p in enumerate(parts)]),
        "frame": np.concatenate([p[1] for p in parts]).astype(np.float64),
        "sequence_names": np.asarray([p[0] for p in parts]),
        "frame_rate": np.float64(frame_rate),
    }


def predict_records(
    file_patterns: str | Sequence[str], model, batch_size: int = 64, frame_rate: float | None = None
) -> dict[str, np.ndarray]:
    """Predictions for every 3D record (the arrays of the module docstring).

    Args:
        file_patterns: TFRecord file pattern(s).
        model: a float32 SAP-Net (`input_size`, called on images -> {"pose_3d": ...}).
        batch_size: images per forward pass.
        frame_rate: frames per second to resample every sequence to; None keeps the records.

    Raises:
        FileNotFoundError: no file matches.
        ValueError: no 3D record, a duplicated frame, or (with a frame rate) a sequence whose
            records cannot give it.
    """
    return _run(_match(file_patterns), model, batch_size, frame_rate)[0]


def _run(files, model, batch_size, frame_rate):
    rows, origin, skipped = _predict_rows(files, model, batch_size)
    if frame_rate is None:
        parts, rate = _as_recorded(rows, origin)
    else:
        parts, rate = _resampled(rows, origin, float(frame_rate)), float(frame_rate)
    return _arrays(parts, rate), skipped


def write_predictions(arrays: dict[str, np.ndarray], out_path: str | pathlib.Path) -> pathlib.Path:
    """Write `arrays` (module docstring) to the npz `out_path`, atomically (parents created)."""
    out = pathlib.Path(out_path)
    atomic_files.write_with(out, lambda tmp: np.savez(tmp, **arrays), suffix=".npz")
    return out


def run_predictions(
    model_or_path,
    record_patterns: str | Sequence[str],
    out_path: str | pathlib.Path,
    *,
    frame_rate: float | None = None,
    batch_size: int = 64,
) -> dict:
    """Predict SAP-Net poses for the 3D records and write the npz temporal_train reads.

    Args:
        model_or_path: a float32 SAP-Net model, a .keras file, or a run directory holding
            sap_net.keras (loaded under float32, `models.loading.load_float32`).
        record_patterns: TFRecord file pattern(s).
        out_path: the .npz to write (atomically; parent folders are created).
        frame_rate: frames per second of the written rows (module docstring); None keeps the
            records' own frames.
        batch_size: images per forward pass.

    Returns:
        {"out": str path, "frames": rows written, "sequences": sequences (parts) written,
         "records_2d_skipped": 2D-only records, "frame_rate": float or None when unknown}.

    Raises:
        FileNotFoundError: the model or the records are missing.
        ValueError: as `predict_records`.
    """
    if frame_rate is not None and not (math.isfinite(frame_rate) and frame_rate > 0):
        raise ValueError(
            f"frame_rate must be frames per second > 0 (or None: as recorded). "
            f"Received: {frame_rate}"
        )
    files = _match(record_patterns)  # before loading the model: a bad pattern fails at once
    model = model_or_path
    if isinstance(model_or_path, (str, pathlib.Path)):
        from keras_pose3d.models import loading  # float32 loading of the trained model

        path = pathlib.Path(model_or_path)
        model = loading.load_float32(path / loading.SAP_NET_FILE if path.is_dir() else path)
    arrays, skipped = _run(files, model, batch_size, frame_rate)
    out = write_predictions(arrays, out_path)
    rate = float(arrays["frame_rate"])
    summary = {
        "out": str(out),
        "frames": len(arrays["pred"]),
        "sequences": len(arrays["sequence_names"]),
        "records_2d_skipped": skipped,
        "frame_rate": None if math.isnan(rate) else rate,
    }
    print(
        f"wrote {summary['frames']} frames of {summary['sequences']} sequences at "
        f"{'unknown' if summary['frame_rate'] is None else f'{rate:g}'} fps to {out}"
    )
    return summary
