r"""MPI-INF-3DHP -> TFRecords: the training set (videos) and the test set (valid frames only).

    python -m pipelines.mpi_inf_3dhp_to_tfrecord --input_dir /data/mpi_inf_3dhp \
        --test_dir /data/mpi_inf_3dhp_test_set --output_dir /data/records/3dhp \
        [--cameras 0,1,2,4,5,6,7,8] [--stride 10 | --frame_rate 25] [--splits train,test] \
        [Beam options]

`--splits` defaults to the splits whose roots are given (train: `--input_dir`, test:
`--test_dir`).

Training (`train` split), layout `<input_dir>/S{1..8}/Seq{1,2}/{annot.mat, camera.calibration,
imageSequence/video_<cam>.avi}`: one work item per (subject, sequence, camera), default cameras
the "vnect" set [0,1,2,4,5,6,7,8], every `--stride`-th frame (default 10), or with `--frame_rate R`
every (native rate / R)-th frame of each sequence (25 fps: TP-Net's rate). `joints_3d` = annot3
(camera mm, reprojects onto annot2), `joints_3d_univ` = univ_annot3 (`has_3d_univ` = 1),
intrinsics from `camera.calibration` adjusted to the crop.
Quirks handled: only the first F annotation rows are used (F = the known frame count; S3/Seq1
has one extra row), S4/Seq2 left/right swapped on frames [3759, 5853) is swapped back;
video/annotation count mismatches stop at the shorter and are reported (stage "frame_count").

Test (`test` split), layout `<test_dir>/TS{1..6}/{annot_data.mat, imageSequence/img_%06d.jpg}`
(1-based names) and `<test_calib_dir>/ts1-4cameras.calib`, `ts5-6cameras.calib` (default
`<test_dir>/test_util/camera_calibration`): only frames with `valid_frame` == 1 are written
(evaluation uses only those); the others are counted in one dead letter per sequence (stage
"invalid_frames"). `meta/action` = activity name, `joints_3d` = annot3 (camera mm),
`joints_3d_univ` = univ_annot3 (the 3DHP evaluation ground truth, `has_3d_univ` = 1).

`meta/distortion_model`: "opencv" for TS5-6 (GoPro, OpenCV distortion) and for any camera with
non-zero coefficients (the .calib files are OpenCV); "none" otherwise (the training cameras and
TS1-4 have none).

Joints: 28 -> 17 "relevant" -> MPII-16 (MPII thorax <- 3DHP neck, upper neck <- 3DHP head:
approximations, see `keras_pose3d.skeleton`). Crop: person box from the 2D joints (bounding-box
centre, side 1.2 * max(w, h)) times PERSON_MARGIN.

Dead letters: missing / corrupt / truncated video or image ("video", "image"; a truncated
video writes none of its frames, a truncated JPEG or one libjpeg calls corrupt is refused by
the strict decoder of `keras_pose3d.data.readers.images`), a video or test image that is a
symlink pointing outside the input root ("path"), unreadable annotation ("read"), non-finite
or implausible joints, annot3 or univ_annot3 ("validate").

Inputs may live on any filesystem `tf.io.gfile` knows (local, gs://, s3://, hdfs://); videos are
read from a temporary local copy (OpenCV opens local files only), annotations, calibration
files and images from memory.
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
from keras_pose3d.data import crop_geometry, frame_rates
from keras_pose3d.data.jpeg import encode_jpeg
from keras_pose3d.data.readers import files, images
from keras_pose3d.data.readers import h36m as h36m_reader
from keras_pose3d.data.readers import mpi_inf_3dhp as m3
from pipelines import counters, dead_letters, person_crop, pose_checks, running

_LOG = logging.getLogger(__name__)
DATASET = "mpi_inf_3dhp"
SPLITS = ("train", "test")
DEFAULT_CROP_SIZE = 448  # 256 network input x PERSON_MARGIN 1.75
DEFAULT_STRIDE = 10  # 3DHP training videos are 25/50 fps and highly redundant (as mmpose)
TEST_CHUNK = 256  # valid test frames per work item


def _csv(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input_dir", default=None, help="Training root holding S1..S8.")
    parser.add_argument("--test_dir", default=None, help="Test root holding TS1..TS6.")
    parser.add_argument(
        "--test_calib_dir",
        default=None,
        help="Folder of ts1-4cameras.calib / ts5-6cameras.calib (default "
        "<test_dir>/test_util/camera_calibration).",
    )
    parser.add_argument(
        "--splits",
        default=None,
        help="Subset of train,test (default: the splits whose roots are given: train with "
        "--input_dir, test with --test_dir).",
    )
    parser.add_argument("--subjects", default=",".join(m3.TRAIN_SUBJECTS))
    parser.add_argument("--sequences", default=",".join(m3.TRAIN_SEQUENCES))
    parser.add_argument("--cameras", default=",".join(str(c) for c in m3.DEFAULT_CAMERAS))
    parser.add_argument("--test_sequences", default=",".join(m3.TEST_SEQUENCES))
    parser.add_argument(
        "--stride",
        type=int,
        default=DEFAULT_STRIDE,
        help="Keep every stride-th training frame (test: all valid frames).",
    )
    parser.add_argument(
        "--frame_rate",
        type=float,
        default=None,
        help="Instead of --stride: training frames per second to keep, per sequence (25 or 50 "
        "fps natively, docs/datasets.md 4.1): every (native / frame_rate)-th frame, a whole "
        "number. 25 gives TP-Net's rate on every sequence.",
    )
    parser.add_argument("--crop_size", type=int, default=DEFAULT_CROP_SIZE)


def _splits(args: argparse.Namespace) -> list[str]:
    if args.splits is None:
        # Default: whatever was given a root, so a train-only (or test-only) run needs no flag.
        splits = [s for s, root in zip(SPLITS, (args.input_dir, args.test_dir)) if root]
        if not splits:
            raise ValueError("give --input_dir (training root) and/or --test_dir (test root)")
        return splits
    splits = _csv(args.splits)
    if not splits or set(splits) - set(SPLITS):
        raise ValueError(f"--splits must be a subset of {SPLITS}. Received: {args.splits!r}")
    if "train" in splits and not args.input_dir:
        raise ValueError("--input_dir (the training root) is required for the train split")
    if "test" in splits and not args.test_dir:
        raise ValueError("--test_dir (the test root) is required for the test split")
    return splits


def _calib_dir(args: argparse.Namespace) -> str:
    return args.test_calib_dir or files.join(args.test_dir, "test_util", "camera_calibration")


def required_layout(args: argparse.Namespace) -> tuple[str, list[str]]:
    splits = _splits(args)
    patterns = []
    root = args.input_dir if "train" in splits else args.test_dir
    if "train" in splits:
        for subject in _csv(args.subjects):
            for seq in _csv(args.sequences):
                for name in (m3.ANNOT_FILE, m3.CALIBRATION_FILE, m3.IMAGE_DIR):
                    patterns.append(f"{subject}/{seq}/{name}")
    if "test" in splits:
        test_dir = files.absolute(args.test_dir)
        for ts in _csv(args.test_sequences):
            patterns.append(files.join(test_dir, ts, m3.TEST_ANNOT_FILE))
            patterns.append(files.join(test_dir, ts, m3.IMAGE_DIR))
            patterns.append(files.join(files.absolute(_calib_dir(args)), m3.TEST_CALIB_FILES[ts]))
    return root, patterns


def list_items(args: argparse.Namespace) -> tuple[list[dict], list[dict], list[dict]]:
    """(training items, test items, driver dead letters); reads only `valid_frame` files."""
    splits = _splits(args)
    train, test, letters = [], [], []
    if "train" in splits:
        cameras = [int(c) for c in _csv(args.cameras)]
        bad = [c for c in cameras if not 0 <= c < m3.NUM_CAMERAS]
        if bad:
            raise ValueError(f"--cameras {bad} outside [0, {m3.NUM_CAMERAS})")
        for subject in _csv(args.subjects):
            for seq in _csv(args.sequences):
                for cam in cameras:
                    train.append({"subject": subject, "seq": seq, "camera": cam})
    if "test" in splits:
        for ts in _csv(args.test_sequences):
            if ts not in m3.TEST_CALIB_FILES:
                raise ValueError(f"--test_sequences: unknown {ts!r}; expected {m3.TEST_SEQUENCES}")
            annot = files.join(args.test_dir, ts, m3.TEST_ANNOT_FILE)
            try:
                valid, total = m3.read_test_frame_validity(annot)
            except (KeyError, ValueError) as err:
                lost = m3.TEST_VALID_FRAME_COUNTS.get(ts)
                letters.append(
                    dead_letters.dead_letter_payload(
                        ts, "read", str(err), dead_letters.records_for(lost)
                    )
                )
                continue
            if total > valid.size:
                letters.append(
                    {
                        "id": ts,
                        "stage": "invalid_frames",
                        "reason": (
                            f"{total - valid.size} of {total} frames have valid_frame != 1 "
                            "and are not written (evaluation uses valid frames only)"
                        ),
                        "invalid_frames": int(total - valid.size),
                        "total_frames": total,
                    }
                )
            calib = files.join(_calib_dir(args), m3.TEST_CALIB_FILES[ts])
            for start in range(0, valid.size, TEST_CHUNK):
                test.append(
                    {
                        "seq": ts,
                        "frames": valid[start : start + TEST_CHUNK].tolist(),
                        "calib": calib,
                    }
                )
    return train, test, letters


def _inside(joints_crop: np.ndarray, size: int) -> np.ndarray:
    return np.all((joints_crop >= -0.5) & (joints_crop <= size - 0.5), axis=1)


# Test sequences filmed with the GoPro (ts5-6cameras.calib, "distortionModel OpenCV").
OPENCV_TEST_SEQUENCES = frozenset({"TS5", "TS6"})


def distortion_model(cam: camera_lib.Camera, sequence: str) -> str:
    """`meta/distortion_model` of a 3DHP record: "opencv" or "none".

    "opencv" for TS5-6 and for any camera with non-zero coefficients (the only 3DHP
    calibration with distortion is the OpenCV-model .calib); "none" otherwise.

    Raises:
        ValueError: non-zero coefficients on a camera whose model is not OpenCV.
    """
    nonzero = bool(np.any(cam.distortion != 0))
    if nonzero and cam.distortion_model != "opencv":
        raise ValueError(
            f"camera {cam.id!r} of {sequence}: non-zero distortion {cam.distortion.tolist()} "
            f"under model {cam.distortion_model!r}; 3DHP distortion is OpenCV"
        )
    if nonzero or sequence in OPENCV_TEST_SEQUENCES:
        return "opencv"
    return "none"


def _validate_univ(j3d_univ: np.ndarray | None) -> str | None:
    # univ_annot3 is scaled about the root, not a reprojection: check finiteness and range
    # only (validate_joints' other checks concern the annot3 that goes with the image).
    if j3d_univ is None:
        return None
    return pose_checks.check_points_3d(j3d_univ, "joints_3d_univ")


def make_record(
    image_rgb: np.ndarray,
    j2d: np.ndarray,
    j3d: np.ndarray,
    cam: camera_lib.Camera,
    crop_size: int,
    meta: dict[str, Any],
    j3d_univ: np.ndarray | None = None,
) -> dict | str:
    """One person record, or the reason it cannot be made.

    Args:
        image_rgb: (H, W, 3) uint8 frame.
        j2d: (16, 2) px (annot2); j3d: (16, 3) camera mm (annot3).
        cam: the frame's camera (intrinsics, distortion).
        crop_size: stored crop side (px).
        meta: provenance fields (subject, sequence, action, camera, frame).
        j3d_univ: (16, 3) mm univ_annot3, or None when unavailable (then has_3d_univ = 0).
    """
    reason = pose_checks.validate_joints(j2d, None, j3d, True) or _validate_univ(j3d_univ)
    if reason is not None:
        return reason
    center, side = crop_geometry.person_box(j2d)
    if not side > 0:
        return "degenerate person box (all 2D joints coincide)"
    crop, j2d_crop, intr_crop, box = person_crop.crop_person(
        image_rgb, center, side, crop_size, j2d, cam.intrinsics
    )
    h, w = image_rgb.shape[:2]
    return {
        "image_jpeg": encode_jpeg(crop),
        "joints_2d": j2d_crop,
        "visibility": _inside(j2d_crop, crop_size).astype(np.float32),
        "joints_3d": j3d,
        "has_3d": True,
        "intrinsics": intr_crop,
        "distortion": cam.distortion,
        "distortion_model": distortion_model(cam, meta["sequence"]),
        "joints_3d_univ": j3d_univ,
        "has_3d_univ": j3d_univ is not None,
        "box": box,
        "dataset": DATASET,
        "orig_size": np.array([h, w]),
        **meta,
    }


def train_stride(subject: str, seq: str, stride: int, frame_rate: float | None) -> int:
    """The frame step of a training sequence: `stride`, or native rate / `frame_rate`.

    Raises:
        ValueError: the sequence's native rate is not a whole multiple of `frame_rate`.
    """
    if frame_rate is None:
        return stride
    native = frame_rates.source_frame_rate(DATASET, subject, seq)
    step = native / frame_rate
    if step < 1 - 1e-6 or abs(step - round(step)) > 1e-6:
        raise ValueError(
            f"--frame_rate {frame_rate:g}: {subject}/{seq} is {native:g} fps, which is not a "
            f"whole multiple of it (use 25, 12.5, ... or --stride)"
        )
    return round(step)


class TrainSequenceToRecords(beam.DoFn):
    """(subject, sequence, camera) -> a record per kept video frame, or dead letters."""

    def __init__(
        self, input_dir: str, stride: int, crop_size: int, frame_rate: float | None = None
    ):
        self._input_dir = input_dir
        self._stride = stride
        self._crop_size = crop_size
        self._frame_rate = frame_rate

    def process(self, item):
        subject, seq, cam_index = item["subject"], item["seq"], item["camera"]
        stride = train_stride(subject, seq, self._stride, self._frame_rate)
        key = f"{subject}/{seq}/video_{cam_index}"
        seq_dir = files.join(self._input_dir, subject, seq)
        # A video that cannot be read loses its frames (the known count) at --stride.
        lost = dead_letters.records_for(m3.TRAIN_FRAME_COUNTS.get((subject, seq)), stride)
        try:
            annot = m3.read_train_annotations(files.join(seq_dir, m3.ANNOT_FILE), cam_index)
            calibration = files.join(seq_dir, m3.CALIBRATION_FILE)
            cams = camera_lib.load_3dhp_calibration(
                calibration, text=files.read_bytes(calibration, "3DHP camera.calibration")
            )
        except (FileNotFoundError, KeyError, ValueError) as err:
            yield dead_letters.dead_letter(key, "read", str(err), lost, split="train")
            return
        if str(cam_index) not in cams:
            yield dead_letters.dead_letter(
                key, "read", f"camera {cam_index} not in camera.calibration", lost, split="train"
            )
            return
        cam = cams[str(cam_index)]
        rows = annot["joints_2d"].shape[0]
        n_use = m3.frame_count(subject, seq, rows)
        frames = np.arange(rows)
        j2d_all = m3.fix_lr_swap(subject, seq, frames, annot["joints_2d"])
        j3d_all = m3.fix_lr_swap(subject, seq, frames, annot["joints_3d"])
        univ = annot.get("joints_3d_univ")
        univ_all = None if univ is None else m3.fix_lr_swap(subject, seq, frames, univ)
        video = m3.video_path(self._input_dir, subject, seq, cam_index)
        outside = files.resolves_outside(self._input_dir, video)
        if outside is not None:
            yield dead_letters.dead_letter(key, "path", outside, lost, split="train")
            return
        reader = h36m_reader.VideoReader(video, stride, limit=n_use)
        # Held until the video is read to the end: a truncated video writes nothing.
        outputs = []
        try:
            for frame, bgr in reader:
                item_id = f"{key}/{frame:06d}"
                record = make_record(
                    cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                    j2d_all[frame],
                    j3d_all[frame],
                    cam,
                    self._crop_size,
                    {
                        "subject": subject,
                        "sequence": seq,
                        "action": "",
                        "camera": str(cam_index),
                        "frame": int(frame),
                    },
                    None if univ_all is None else univ_all[frame],
                )
                if isinstance(record, str):
                    outputs.append(
                        dead_letters.dead_letter(item_id, "validate", record, split="train")
                    )
                    continue
                outputs.append(("train", item_id, record))
        except (FileNotFoundError, ValueError) as err:
            lost = dead_letters.records_for(n_use, stride)  # every annotated frame
            yield dead_letters.dead_letter(key, "video", str(err), lost, split="train")
            return
        counters.counter("mpi_inf_3dhp_train_frames").inc(
            sum(isinstance(o, tuple) for o in outputs)
        )
        yield from outputs
        if reader.frames_total != n_use:
            yield dead_letters.dead_letter(
                key,
                "frame_count",
                (
                    f"video has {reader.frames_total} frames, annotations {n_use} usable rows "
                    f"(of {rows}): the last {abs(reader.frames_total - n_use)} have no partner and "
                    "are not written"
                ),
                split="train",
                video_frames=reader.frames_total,
                annotation_rows=rows,
            )


class TestFramesToRecords(beam.DoFn):
    """(test sequence, valid frame indices) -> a record per frame, or dead letters."""

    def __init__(self, test_dir: str, crop_size: int):
        self._test_dir = test_dir
        self._crop_size = crop_size

    def process(self, item):
        ts = item["seq"]
        try:
            annot = m3.read_test_annotations(files.join(self._test_dir, ts, m3.TEST_ANNOT_FILE))
        except (FileNotFoundError, KeyError, ValueError) as err:
            lost = len(item["frames"])  # the chunk's valid frames
            yield dead_letters.dead_letter(ts, "read", str(err), lost, split="test")
            return
        cameras: dict[tuple[int, int], camera_lib.Camera] = {}
        for frame in item["frames"]:
            item_id = f"{ts}/{frame:06d}"
            path = m3.test_image_path(self._test_dir, ts, frame)
            outside = files.resolves_outside(self._test_dir, path)
            if outside is not None:
                yield dead_letters.dead_letter(item_id, "path", outside, split="test")
                continue
            try:
                bgr = images.decode_bgr(files.read_bytes(path, "image"))
            except FileNotFoundError:
                yield dead_letters.dead_letter(
                    item_id, "image", f"missing image: {path}", split="test"
                )
                continue
            except ValueError as err:
                yield dead_letters.dead_letter(item_id, "image", f"{err}: {path}", split="test")
                continue
            h, w = bgr.shape[:2]
            if (w, h) not in cameras:
                # The .calib holds millimetres; pixels follow from the real image size.
                try:
                    text = files.read_bytes(item["calib"], "3DHP test .calib")
                    cameras[(w, h)] = camera_lib.load_3dhp_test_calib(
                        item["calib"], (w, h), text=text
                    )[0]
                except (FileNotFoundError, ValueError) as err:
                    yield dead_letters.dead_letter(item_id, "read", str(err), split="test")
                    continue
            cam = cameras[(w, h)]
            activity = int(annot["activity"][frame])
            record = make_record(
                cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                annot["joints_2d"][frame],
                annot["joints_3d"][frame],
                cam,
                self._crop_size,
                {
                    "subject": ts,
                    "sequence": ts,
                    "action": m3.TEST_ACTIVITIES.get(activity, ""),
                    "camera": cam.id,
                    "frame": int(frame),
                },
                annot["joints_3d_univ"][frame],
            )
            if isinstance(record, str):
                yield dead_letters.dead_letter(item_id, "validate", record, split="test")
                continue
            counters.counter("mpi_inf_3dhp_test_frames").inc()
            yield "test", item_id, record


def build(pipeline: beam.Pipeline, args: argparse.Namespace):
    if args.stride < 1:
        raise ValueError(f"--stride must be >= 1. Received: {args.stride}")
    if args.frame_rate is not None and not args.frame_rate > 0:
        raise ValueError(f"--frame_rate must be > 0. Received: {args.frame_rate}")
    train, test, letters = list_items(args)
    for item in train:  # a rate no sequence can give fails before any work
        train_stride(item["subject"], item["seq"], args.stride, args.frame_rate)
    _LOG.info("mpi_inf_3dhp: %d training videos, %d test chunks", len(train), len(test))
    records, dead = [], [pipeline | "DriverDeadLetters" >> beam.Create(letters)]
    if train:
        outs = (
            pipeline
            | "TrainItems" >> beam.Create(train, reshuffle=True)
            | "TrainToRecords"
            >> beam.ParDo(
                TrainSequenceToRecords(args.input_dir, args.stride, args.crop_size, args.frame_rate)
            ).with_outputs(dead_letters.DEAD_LETTER_TAG, main="records")
        )
        records.append(outs.records)
        dead.append(outs[dead_letters.DEAD_LETTER_TAG])
    if test:
        outs = (
            pipeline
            | "TestItems" >> beam.Create(test, reshuffle=True)
            | "TestToRecords"
            >> beam.ParDo(TestFramesToRecords(args.test_dir, args.crop_size)).with_outputs(
                dead_letters.DEAD_LETTER_TAG, main="records"
            )
        )
        records.append(outs.records)
        dead.append(outs[dead_letters.DEAD_LETTER_TAG])
    if not records:
        records.append(pipeline | "NoRecords" >> beam.Create([]))
    all_records = tuple(records) | "AllRecords" >> beam.Flatten()
    all_dead = tuple(dead) | "AllDeadLetters" >> beam.Flatten()
    return all_records, all_dead


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the job; returns the manifest. Bad input raises (see `main`)."""
    return running.run_job(
        argv,
        add_arguments,
        build,
        splits=SPLITS,
        dataset_name=DATASET,
        required_layout=required_layout,
        description=__doc__,
    )


main = running.job_main(run)


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    sys.exit(main())
