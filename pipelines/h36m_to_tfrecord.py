r"""Human3.6M -> TFRecords (2D + camera-frame 3D), every `--stride`-th video frame.

    python -m pipelines.h36m_to_tfrecord --input_dir /data/h36m --output_dir /data/records/h36m \
        [--stride 5] [--subjects S1,S5,S6,S7,S8,S9,S11] [--crop_size 448] [Beam options]

Input layout (datasets.md 3.1): `<input_dir>/metadata.xml` (or `--metadata`) and per subject
`S*/MyPoseFeatures/D3_Positions_mono/<Seq>.<cam>.cdf`, `S*/Videos/<Seq>.<cam>.mp4` and,
optionally, `S*/MyPoseFeatures/D2_Positions/<Seq>.<cam>.cdf`. `<Seq>` names come from the
metadata `<mapping>` (irregular, with spaces), never from the action name.

* Splits: the paper's protocol, `train` = S1 S5 S6 S7 S8, `test` = S9 S11.
* Joints: H36M-32 -> 17 -> MPII-16 (`keras_pose3d.skeleton`). 3D = D3_Positions_mono (camera
  mm). 2D = D2_Positions when present, else D3 projected with the metadata camera (distortion
  included; the two agree to 0.00 px on real frames).
* Frames: sequential decode (`cv2.VideoCapture`), frames 0, stride, 2*stride, ... Pose and video
  counts differ by a few frames: records stop at the shorter and the rest is reported as a
  dead letter of stage "frame_count" (one line per sequence, with both counts).
* Crop: person box from the 2D joints (centre of their bounding box, side 1.2 * max(w, h)),
  stored crop PERSON_MARGIN times that; intrinsics adjusted to the crop, distortion stored.
* Known defects (S11 `Directions.54138969` corrupt video; S9 `SittingDown 1`, `Waiting 1`,
  `Greeting` shifted 3D) are skipped and listed as dead letters of stage "excluded".
* Other dead letters: missing or unreadable CDF / video ("read", "video"), non-finite joints
  ("validate"), one line per frame or file. A truncated video (the stream ends before the
  frame count its container announces, and before metadata.xml's count) is one "video" dead
  letter and none of its frames is written: the records of a sequence are held until its
  video has been read to the end. Sequence names from metadata.xml that are not plain names
  (`../`, an absolute path, a folder), and videos that are symlinks pointing outside the
  input root, are dead letters of stage "path".
* Inputs may live on any filesystem `tf.io.gfile` knows (local, gs://, s3://, hdfs://); CDFs
  and videos are read from a temporary local copy (cdflib and OpenCV open local files only).

Work items are (subject, sequence, camera) listed in the driver from metadata.xml; CDFs and
videos are read inside the DoFn.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
import cv2
import numpy as np

from keras_pose3d import camera as camera_lib
from keras_pose3d.data import crop_geometry
from keras_pose3d.data.jpeg import encode_jpeg
from keras_pose3d.data.readers import files, h36m
from pipelines import arguments, counters, dead_letters, person_crop, pose_checks, running

_LOG = logging.getLogger(__name__)
DATASET = "h36m"
SPLITS = ("train", "test")
DEFAULT_CROP_SIZE = 448  # 256 network input x PERSON_MARGIN 1.75


def _csv(text: str | None) -> list[str] | None:
    return None if not text else [t.strip() for t in text.split(",") if t.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input_dir", required=True, help="H36M root holding S1, S5, ...")
    parser.add_argument(
        "--metadata", default=None, help="metadata.xml (default <input_dir>/metadata.xml)."
    )
    parser.add_argument(
        "--subjects",
        default=",".join(h36m.TRAIN_SUBJECTS + h36m.TEST_SUBJECTS),
        help="Comma-separated subjects (default all seven).",
    )
    parser.add_argument("--cameras", default=None, help="Comma-separated camera ids (default all).")
    parser.add_argument(
        "--actions", default=None, help="Comma-separated canonical action names (default all 15)."
    )
    parser.add_argument(
        "--sequences",
        default=None,
        help="Comma-separated 'subject/file prefix' entries, e.g. "
        "'S1/Eating 2,S5/Photo' (default: every sequence of --subjects).",
    )
    parser.add_argument(
        "--stride",
        type=int,
        default=h36m.DEFAULT_STRIDE,
        help="Keep every stride-th frame (default 5: 50 -> 10 fps).",
    )
    parser.add_argument("--crop_size", type=int, default=DEFAULT_CROP_SIZE)
    parser.add_argument(
        "--shard_by",
        choices=("example", "sequence"),
        default="example",
        help="'sequence' keeps each sequence/camera in one shard, frame ordered.",
    )


def _metadata_path(args: argparse.Namespace) -> str:
    return args.metadata or files.join(args.input_dir, "metadata.xml")


def required_layout(args: argparse.Namespace) -> tuple[str, list[str]]:
    patterns = [files.absolute(_metadata_path(args))]
    for subject in _csv(args.subjects) or []:
        patterns.append(f"{subject}/{h36m.POSE_DIR}/{h36m.D3_MONO_DIR}/*.cdf")
        patterns.append(f"{subject}/{h36m.VIDEO_DIR}/*.mp4")
    return args.input_dir, patterns


def split_of(subject: str) -> str:
    if subject in h36m.TRAIN_SUBJECTS:
        return "train"
    if subject in h36m.TEST_SUBJECTS:
        return "test"
    raise ValueError(
        f"subject {subject!r} is in neither protocol split "
        f"(train {h36m.TRAIN_SUBJECTS}, test {h36m.TEST_SUBJECTS})"
    )


def list_items(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Work items (one per subject/sequence/camera) and the exclusion dead letters."""
    path = _metadata_path(args)
    meta = camera_lib.load_h36m_metadata(path, text=files.read_bytes(path, "H36M metadata.xml"))
    subjects = _csv(args.subjects) or []
    for subject in subjects:
        split_of(subject)
    actions = _csv(args.actions)
    if actions is not None:
        unknown = sorted(set(actions) - set(meta.action_names))
        if unknown:
            raise ValueError(f"--actions {unknown} not in <actionnames> {list(meta.action_names)}")
    cameras = _csv(args.cameras)
    if cameras is not None and set(cameras) - set(meta.camera_ids):
        raise ValueError(f"--cameras {cameras}: known ids are {list(meta.camera_ids)}")
    sequences = _csv(args.sequences)
    items, letters = [], []
    for seq in h36m.enumerate_sequences(meta, subjects, tuple(cameras) if cameras else None):
        if actions is not None and seq.action not in actions:
            continue
        if sequences is not None and f"{seq.subject}/{seq.prefix}" not in sequences:
            continue
        # The prefix is joined under <subject>/MyPoseFeatures/D3_Positions_mono/ and
        # <subject>/Videos/: it must be a plain name (no ../, no absolute path, no folder).
        unsafe = files.not_a_plain_name(seq.prefix)
        if unsafe is not None:
            letters.append(
                dead_letters.dead_letter_payload(
                    seq.key,
                    "path",
                    unsafe,
                    dead_letters.records_for(seq.expected_frames, args.stride),
                )
            )
            continue
        reason = h36m.known_defect(seq.subject, seq.prefix, seq.camera)
        if reason is not None:
            letters.append({"id": seq.key, "stage": "excluded", "reason": reason})
            continue
        items.append(
            {
                "seq": seq,
                "camera": meta.cameras[(seq.subject, seq.camera)],
                "split": split_of(seq.subject),
            }
        )
    return items, letters


class SequenceToRecords(beam.DoFn):
    """One (subject, sequence, camera) -> a record per kept frame, or dead letters."""

    def __init__(self, input_dir: str, stride: int, crop_size: int):
        self._input_dir = input_dir
        self._stride = stride
        self._crop_size = crop_size

    def process(self, item):
        seq: h36m.SequenceItem = item["seq"]
        cam: camera_lib.Camera = item["camera"]
        split = item["split"]
        # A sequence that cannot be read loses its frames (metadata.xml's count) at --stride.
        lost = dead_letters.records_for(seq.expected_frames, self._stride)
        try:
            d3 = h36m.read_pose_cdf(seq.d3_path(self._input_dir), 3)
            d2_path = seq.d2_path(self._input_dir)
            d2 = h36m.read_pose_cdf(d2_path, 2) if files.exists(d2_path) else None
        except (FileNotFoundError, ValueError) as err:
            yield dead_letters.dead_letter(seq.key, "read", str(err), lost, split=split)
            return
        if d2 is not None and d2.shape[0] != d3.shape[0]:
            yield dead_letters.dead_letter(
                seq.key,
                "read",
                (f"D2_Positions has {d2.shape[0]} frames but D3_Positions_mono {d3.shape[0]}"),
                lost,
                split=split,
            )
            return
        joints_3d = h36m.to_mpii(d3).astype(np.float64)  # (N, 16, 3) camera mm
        with np.errstate(invalid="ignore"):
            joints_2d = (
                h36m.to_mpii(d2).astype(np.float64) if d2 is not None else cam.project(joints_3d)
            )  # (N, 16, 2) px
        n_pose = d3.shape[0]
        outside = files.resolves_outside(self._input_dir, seq.video_path(self._input_dir))
        if outside is not None:
            yield dead_letters.dead_letter(seq.key, "path", outside, lost, split=split)
            return
        reader = h36m.VideoReader(
            seq.video_path(self._input_dir),
            self._stride,
            limit=n_pose,
            expected_frames=seq.expected_frames,
        )
        # Held until the video is read to the end: a truncated video writes nothing.
        outputs = []
        try:
            for frame_index, bgr in reader:
                record = self._record(
                    seq, cam, frame_index, bgr, joints_2d[frame_index], joints_3d[frame_index]
                )
                if isinstance(record, str):
                    outputs.append(
                        dead_letters.dead_letter(
                            f"{seq.key}/{frame_index:06d}", "validate", record, split=split
                        )
                    )
                    continue
                outputs.append((split, f"{seq.key}/{frame_index:06d}", record))
        except (FileNotFoundError, ValueError) as err:
            lost = dead_letters.records_for(n_pose, self._stride)  # every frame the poses cover
            yield dead_letters.dead_letter(seq.key, "video", str(err), lost, split=split)
            return
        counters.counter("h36m_frames").inc(sum(isinstance(o, tuple) for o in outputs))
        yield from outputs
        if reader.frames_total != n_pose:
            counters.counter("h36m_unmatched_frames").inc(abs(reader.frames_total - n_pose))
            yield dead_letters.dead_letter(
                seq.key,
                "frame_count",
                (
                    f"video has {reader.frames_total} frames, poses {n_pose}: the last "
                    f"{abs(reader.frames_total - n_pose)} "
                    f"{'video frame(s)' if reader.frames_total > n_pose else 'pose(s)'} "
                    "have no partner and are not written"
                ),
                split=split,
                video_frames=reader.frames_total,
                pose_frames=n_pose,
                expected_video_frames=seq.expected_frames,
            )

    def _record(self, seq, cam, frame_index, bgr, j2d, j3d) -> dict | str:
        if not np.all(np.isfinite(j2d)) or not np.all(np.isfinite(j3d)):
            bad = np.where(~(np.all(np.isfinite(j2d), 1) & np.all(np.isfinite(j3d), 1)))[0]
            return f"non-finite joints (MPII-16 indices {bad.tolist()})"
        reason = pose_checks.validate_joints(j2d, None, j3d, True)
        if reason is not None:
            return reason
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        h, w = image.shape[:2]
        center, side = crop_geometry.person_box(j2d)
        if not side > 0:
            return "degenerate person box (all 2D joints coincide)"
        crop, j2d_crop, intr_crop, box = person_crop.crop_person(
            image, center, side, self._crop_size, j2d, cam.intrinsics
        )
        inside = np.all((j2d_crop >= -0.5) & (j2d_crop <= self._crop_size - 0.5), axis=1)
        return {
            "image_jpeg": encode_jpeg(crop),
            "joints_2d": j2d_crop,
            "visibility": inside.astype(np.float32),
            "joints_3d": j3d,
            "has_3d": True,
            "intrinsics": intr_crop,
            "distortion": cam.distortion,
            "distortion_model": "h36m",
            "box": box,
            "dataset": DATASET,
            "subject": seq.subject,
            "sequence": seq.prefix,
            "action": seq.action,
            "camera": seq.camera,
            "frame": int(frame_index),
            "orig_size": np.array([h, w]),
        }


def build(pipeline: beam.Pipeline, args: argparse.Namespace):
    if args.stride < 1:
        raise ValueError(f"--stride must be >= 1. Received: {args.stride}")
    items, letters = list_items(args)
    _LOG.info("h36m: %d sequence/camera items, %d excluded", len(items), len(letters))
    outs = (
        pipeline
        | "Sequences" >> beam.Create(items, reshuffle=True)
        | "SequenceToRecords"
        >> beam.ParDo(SequenceToRecords(args.input_dir, args.stride, args.crop_size)).with_outputs(
            dead_letters.DEAD_LETTER_TAG, main="records"
        )
    )
    driver_letters = pipeline | "Exclusions" >> beam.Create(letters)
    dead = (outs[dead_letters.DEAD_LETTER_TAG], driver_letters) | "AllDeadLetters" >> beam.Flatten()
    return outs.records, dead


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the job; returns the manifest. Bad input raises (see `main`)."""
    args, _ = arguments.parse_args(argv, add_arguments)
    return running.run_job(
        argv,
        add_arguments,
        build,
        splits=SPLITS,
        dataset_name=DATASET,
        required_layout=required_layout,
        shard_by=args.shard_by,
        description=__doc__,
    )


main = running.job_main(run)


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    sys.exit(main())
