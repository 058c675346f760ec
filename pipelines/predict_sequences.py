"""Run a trained SAP-Net over the frames of 3D sequences and save predictions for TP-Net.

    python -m pipelines.predict_sequences --records 'data/h36m/train-*' --run RUN_DIR \
        --out predictions/train.npz [--batch 64]

TP-Net is trained on SAP-Net's own predictions (Dabral et al. 2018, section 4.3), so this job
reads the 3D records (schema of `keras_pose3d/data/features.py`; 2D-only records are skipped,
counted and the count printed),
runs RUN_DIR/sap_net.keras under float32 in batches and writes one npz:

    pred      (M, J, 3) float32  predicted root-relative pose, camera mm
    gt        (M, J, 3) float32  ground-truth root-relative pose, camera mm
    sequence  (M,) int32         index into `sequence_names`
    frame     (M,) int64         meta/frame
    sequence_names (S,) str      "dataset/subject/sequence/action/camera"

rows sorted by (sequence, frame), as `keras_pose3d.temporal_train.load_predictions` reads them.
Sequences are grouped by dataset + subject + sequence + action + camera (one camera's view of
one trial is one motion); a duplicated frame raises, and a sequence whose frame step is not
constant (frames missing, e.g. dead-lettered by the converter) logs a warning naming it and the
gaps: TP-Net windows over it would span the missing frames.

The network input is built exactly as training and validation build it: the evaluation crop of
`data.augment.crop_and_augment` (scale 1, no rotation or flip), i.e. the central person box of
side max(H, W) / PERSON_MARGIN of the stored crop, warped to S x S. Resizing the whole stored
crop instead would show SAP-Net the person 1.75x smaller than it was trained on. Decoding to mm
(`pose_codec.decode_pose_3d`) uses the record's intrinsics carried through that same affine
(`augment.transform_intrinsics`) and the ground-truth root depth, the paper's evaluation
protocol.

This is a plain tf.data batch job, not Beam: the work is one forward pass per frame and fits a
single accelerator (H36M's training frames at 5 fps: ~300k forward passes, well under an hour
on one GPU). Scaling out would shard `--records` across processes and concatenate the npz files
(`sequence` ids then need re-numbering by name).
"""

from __future__ import annotations

import argparse
import collections
import logging
import pathlib
import sys
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from keras_pose3d import skeleton
from keras_pose3d.cli import exits_cleanly
from keras_pose3d.data import augment, features, pose_codec

_LOG = logging.getLogger(__name__)
META = ("dataset", "subject", "sequence", "action", "camera")


def _prepare_or_skip(record: dict, input_size: int) -> dict:
    """`_prepare` for a 3D record; zeros with `has_3d` 0 for a 2D-only one (counted, not run).

    The JPEG is decoded only in the 3D branch, so a skipped record costs its parse alone.
    """
    def prepare():
        image = tf.io.decode_jpeg(record["image_jpeg"], channels=3)
        size = tf.cast(record["image_size"], tf.int32)
        return _prepare(dict(record, image=tf.reshape(image, tf.concat([size, [3]], 0))),
                        input_size)

    def skip():
        return {"image": tf.zeros((input_size, input_size, 3), tf.float32),
                "intrinsics": tf.zeros((4,), tf.float32),
                "joints_3d": tf.zeros_like(record["joints_3d"]),
                "key": tf.constant(""), "frame": tf.zeros_like(record["frame"])}

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
    step = collections.Counter(steps.tolist()).most_common(1)[0][0]
    gaps = [(int(frames[i]), int(frames[i + 1])) for i in np.flatnonzero(steps != step)]
    if gaps:
        shown = ", ".join(f"{a}->{b}" for a, b in gaps[:10])
        _LOG.warning("sequence %s: frame step is not constant (mostly %d); %d gap(s): %s%s. "
                        "TP-Net windows there span the missing frames", name, step, len(gaps),
                        shown, " ..." if len(gaps) > 10 else "")
    return gaps


def _prepare(record: dict, input_size: int) -> dict:
    """Parsed record -> network input and what decoding needs (graph code for tf.data).

    Returns image (S, S, 3) float32 in [0, 1] and intrinsics (4,) in input pixels, identical to
    the validation dataset's (`data.dataset.make_dataset(training=False)`), plus joints_3d
    (J, 3) mm, the sequence key and the frame.
    """
    # The evaluation crop of training/validation: same person scale, same intrinsics.
    out = augment.crop_and_augment(record["image"], record["joints_2d"], record["visibility"],
                                   record["joints_3d"], record["intrinsics"],
                                   input_size=input_size)
    image, intrinsics = out["image"], out["intrinsics"]
    key = tf.strings.join([record[m] for m in META], separator="/")
    return {"image": image, "intrinsics": intrinsics, "joints_3d": record["joints_3d"],
            "key": key, "frame": record["frame"]}


def predict_records(file_patterns: str | Sequence[str], model, batch_size: int = 64
                    ) -> dict[str, np.ndarray]:
    """Predictions for every 3D record (see module docstring for the returned arrays)."""
    files = tf.io.gfile.glob(file_patterns) if isinstance(file_patterns, str) else [
        f for p in file_patterns for f in tf.io.gfile.glob(p)]
    if not files:
        raise FileNotFoundError(f"no record files match {file_patterns}")
    s = int(model.input_size)
    ds = (tf.data.TFRecordDataset(sorted(files))
          .map(lambda x: features.parse_example(x, decode_image=False),
               num_parallel_calls=tf.data.AUTOTUNE)
          # Not a .filter: the 2D-only records are counted here, then left out of the model call.
          .map(lambda r: _prepare_or_skip(r, s), num_parallel_calls=tf.data.AUTOTUNE)
          .batch(batch_size).prefetch(tf.data.AUTOTUNE))
    rows: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    done = skipped = 0
    for batch in ds:
        keep = batch["has_3d"].numpy() == 1
        skipped += int(np.sum(~keep))
        if not keep.any():
            continue
        out = model(tf.boolean_mask(batch["image"], keep), training=False)
        gt = batch["joints_3d"].numpy()[keep].astype(np.float64)  # (B, J, 3) camera mm
        root_depth = gt[:, skeleton.ROOT, 2]
        pred = pose_codec.decode_pose_3d(np.asarray(out["pose_3d"]),
                                         batch["intrinsics"].numpy()[keep], root_depth, s)
        pred = pose_codec.to_root_relative_mm(pred)
        gt = pose_codec.to_root_relative_mm(gt)
        for key, frame, p, g in zip(batch["key"].numpy()[keep], batch["frame"].numpy()[keep],
                                    pred, gt):
            frames = rows.setdefault(key.decode("utf-8"), {})
            if int(frame) in frames:
                raise ValueError(f"sequence {key.decode()} has frame {frame} twice in {files}")
            frames[int(frame)] = (p, g)
        done += len(gt)
        print(f"predicted {done} frames", file=sys.stderr, flush=True)
    print(f"skipped {skipped} 2D-only records (has_3d = 0)", file=sys.stderr, flush=True)
    if not rows:
        raise ValueError(f"no 3D records (has_3d = 1) in {files}")
    names = sorted(rows)
    for name in names:
        check_frame_steps(name, list(rows[name]))
    pred, gt, seq, frame = [], [], [], []
    for i, name in enumerate(names):
        for f in sorted(rows[name]):
            pred.append(rows[name][f][0])
            gt.append(rows[name][f][1])
            seq.append(i)
            frame.append(f)
    return {"pred": np.asarray(pred, np.float32), "gt": np.asarray(gt, np.float32),
            "sequence": np.asarray(seq, np.int32), "frame": np.asarray(frame, np.int64),
            "sequence_names": np.asarray(names)}


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", required=True, nargs="+", help="TFRecord file patterns")
    parser.add_argument("--run", required=True, help="run directory with sap_net.keras")
    parser.add_argument("--out", required=True, help="output .npz")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)
    from keras_pose3d import export  # float32 loading of the trained model

    model = export.load_float32(pathlib.Path(args.run) / export.SAP_NET_FILE)
    arrays = predict_records(args.records, model, args.batch)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    print(f"wrote {len(arrays['pred'])} frames of {len(arrays['sequence_names'])} sequences "
          f"to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
