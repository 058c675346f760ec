"""Beam helpers shared by every `pipelines/*_to_tfrecord.py` job.

A job is three functions (see `pipelines/synthetic_to_tfrecord.py` for a complete one):

    def add_arguments(parser):          # job flags; --output_dir, --num_shards, --overwrite,
        parser.add_argument("--input_dir", required=True)   # ... are added by parse_args

    def build(pipeline, args):          # -> (records, dead_letters)
        items = pipeline | beam.Create(list_items(args.input_dir))
        outs = items | beam.ParDo(MyDoFn(args.crop_size)).with_outputs(
            DEAD_LETTER_TAG, main="records")
        return outs.records, outs[DEAD_LETTER_TAG]

    def main(argv=None):
        return run_job(argv, add_arguments, build, splits=("train", "validation"),
                       dataset_name="h36m", required_layout=lambda a: (a.input_dir, [...]))

`records` is a PCollection of `(split, item_id, record)` where `record` is a
`keras_pose3d.data.features.PoseRecord` dict. `run_job` validates and encodes them
(`EncodeRecords`: bad joints go to the dead letter, never silently away), writes deterministic
sharded TFRecords, the dead-letter JSON lines and `manifest.json`, runs the pipeline and then
checks that every file holds exactly the records the manifest counts. A job that wrote nothing,
or whose failed items exceed `--max_dead_letter_fraction`, gets `"complete": false` and its
`problems` in the manifest and raises `DataQualityError` (the command exits 2).

Conventions:
  * Inputs: list and read them through `keras_pose3d.data.readers.files` (tf.io.gfile), so
    any filesystem TensorFlow knows works (gs://, s3://, hdfs://, ram:// in tests); decode
    images with `keras_pose3d.data.readers.images.decode_bgr` (refuses truncated files);
    refuse dataset-derived names that leave the input root (`files.escapes_root`).
  * Runner: without `--runner` (or with DirectRunner) `local_runner` pins Beam's FnApiRunner,
    so Beam never tries to download Prism.
  * Output files: `<output_dir>/<split>-00000-of-0000N.tfrecord`,
    `dead_letter-00000-of-00001.jsonl`,
    `manifest.json` (written last; `"complete": true` marks a finished job).
  * Dead letters: a DoFn that cannot make a record from an item yields
    `dead_letter(item_id, stage, reason)` (a `TaggedOutput` on `DEAD_LETTER_TAG`) and goes on.
    Catch only the errors you expect (bad values, missing keys); let bugs crash the job.
    Stages in `EXCLUSION_STAGES` are documented exclusions, not failures. A letter for a whole
    sequence passes `records=` (the records it would have given, `records_for`), so the
    dead-letter fraction weighs a lost video by its frames.
  * Counters: `counter(name).inc()` in namespace `keras_pose3d`; `dead_letter` counts per stage
    as `dead_letter/<stage>`.
  * Determinism: shard = hash of a stable sort key, records sorted by that key within a shard
    (a bounded-memory external sort, `pipelines.shard_sort`), shard count from `--num_shards`
    or from the split's bytes (`--target_shard_mb`), so a rerun (any runner, any worker
    count) writes byte-identical files.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import logging
import math
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import apache_beam as beam
import cv2
import numpy as np
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions

from keras_pose3d.data import crop_geometry, features
from keras_pose3d.data.readers import files
from keras_pose3d.skeleton import NUM_JOINTS
from pipelines import shard_sort

METRICS_NAMESPACE = "keras_pose3d"
DEAD_LETTER_TAG = "dead_letter"
MANIFEST_NAME = "manifest.json"
DEAD_LETTER_PREFIX = "dead_letter"
# A shard is written as `<shard>.tmp-<uuid>` and renamed into place.
TMP_INFIX = ".tmp-"
# Largest |coordinate| accepted for camera-frame joints: 100 m is far outside any capture
# volume, so anything beyond is a unit or parsing error, not a person.
MAX_ABS_MM = 1.0e5
# Without --num_shards a split gets ceil(bytes / this) shards: big enough for efficient reads,
# small enough for one worker to write (and for tf.data to spread over readers).
DEFAULT_TARGET_SHARD_MB = 256
# A job whose failed records (dead letters weighted by the records they stand for) exceed this
# fraction of failed plus written records fails (manifest incomplete).
DEFAULT_MAX_DEAD_LETTER_FRACTION = 0.05
# Dead-letter stages that are documented exclusions or notes, not failures: they never count
# against --max_dead_letter_fraction.
EXCLUSION_STAGES = frozenset(
    {
        "excluded",  # known-defective sequences (H36M)
        "frame_count",  # pose / video frames without a partner (H36M, 3DHP)
        "invalid_frames",  # 3DHP test frames with valid_frame != 1
        "test_persons",  # MPII test persons (no joints)
        "min_joints",  # MPII persons with fewer than --min_joints points
        "split_file",  # --split_file entries that match no person (a note)
    }
)


class DataQualityError(ValueError):
    """A job ran but its output cannot be trusted (too many dead letters, nothing written)."""


logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# Arguments.
# ----------------------------------------------------------------------------------------------
def parse_args(
    argv: Sequence[str] | None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    description: str | None = None,
) -> tuple[argparse.Namespace, PipelineOptions]:
    """Parses job flags and hands every other flag to Beam.

    Adds the flags every job has: `--output_dir` (required), `--num_shards` (per split;
    default: from the data, `--target_shard_mb` per shard), `--max_dead_letter_fraction`
    and `--overwrite`. `add_arguments(parser)` adds the job's own (e.g. `--input_dir`). Flags
    the parser does not know (`--runner`, `--direct_num_workers`,
    `--direct_running_mode=multi_processing`, Flink/Dataflow flags) become `PipelineOptions`.

    Returns:
        (job args, Beam pipeline options).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--output_dir", required=True, help="Directory for the TFRecords.")
    parser.add_argument(
        "--num_shards",
        type=int,
        default=None,
        help="TFRecord shards per split (default: ceil(split bytes / --target_shard_mb)).",
    )
    parser.add_argument(
        "--target_shard_mb",
        type=float,
        default=DEFAULT_TARGET_SHARD_MB,
        help=f"Shard size aimed at when --num_shards is not given (default "
        f"{DEFAULT_TARGET_SHARD_MB} MB).",
    )
    parser.add_argument(
        "--max_dead_letter_fraction",
        type=float,
        default=DEFAULT_MAX_DEAD_LETTER_FRACTION,
        help="Fail the job (exit non-zero, manifest incomplete) when failed records exceed this "
        "fraction of failed plus written records (a lost sequence counts its frames); "
        "documented exclusions do not count (default "
        f"{DEFAULT_MAX_DEAD_LETTER_FRACTION}).",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace existing shards/manifest in --output_dir instead of refusing.",
    )
    if add_arguments is not None:
        add_arguments(parser)
    args, beam_args = parser.parse_known_args(None if argv is None else list(argv))
    if args.num_shards is not None and args.num_shards < 1:
        parser.error(f"--num_shards must be >= 1. Received: num_shards={args.num_shards}")
    if not args.target_shard_mb > 0:
        parser.error(f"--target_shard_mb must be > 0. Received: {args.target_shard_mb}")
    if not 0.0 <= args.max_dead_letter_fraction <= 1.0:
        parser.error(
            "--max_dead_letter_fraction must be in [0, 1]. "
            f"Received: {args.max_dead_letter_fraction}"
        )
    return args, PipelineOptions(beam_args)


def check_layout(
    input_dir: str | os.PathLike, required: Iterable[str], dataset_name: str
) -> dict[str, list[str]]:
    """Checks the raw-data layout before any work starts.

    Args:
        input_dir: root of the raw dataset, any `tf.io.gfile` path (local, gs://, s3://, ...).
        required: paths or glob patterns relative to `input_dir` (e.g.
            `"S1/MyPoseFeatures/D3_Positions/*.cdf"`), or absolute / URL patterns; each must
            match at least one path.
        dataset_name: named in the error.

    Returns:
        pattern -> sorted matching paths.

    Raises:
        FileNotFoundError: listing every missing pattern (not just the first), the input
            directory and the dataset.
    """
    root = os.fspath(input_dir)
    files.check_filesystem(root)
    if not files.isdir(root):
        raise FileNotFoundError(f"{dataset_name}: input directory {root!r} does not exist")
    found: dict[str, list[str]] = {}
    missing: list[str] = []
    for pattern in required:
        full = pattern if files.has_scheme(pattern) else files.join(root, pattern)
        matches = files.glob(full)
        if matches:
            found[pattern] = matches
        else:
            missing.append(pattern)
    if missing:
        raise FileNotFoundError(
            f"{dataset_name}: the raw data in {root!r} is incomplete; nothing matches "
            + ", ".join(repr(m) for m in missing)
            + " (see ../shared/reference/datasets.md for the expected layout)"
        )
    return found


# ----------------------------------------------------------------------------------------------
# Person crop.
# ----------------------------------------------------------------------------------------------
def crop_person(
    image: np.ndarray,
    center_xy: Sequence[float],
    person_side_px: float,
    out_size: int,
    joints_2d: np.ndarray,
    intrinsics: np.ndarray | None = None,
    antialias: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Square crop of side `PERSON_MARGIN * person_side_px` around a person, resized.

    Outside the image the crop is zero (black). The geometry is exact: joints and intrinsics
    go through the same affine map as the pixels (`crop_geometry.crop_affine`), so a 3D joint
    projected with `intrinsics_crop` lands on its `joints_2d_crop`.

    Args:
        image: (H, W, 3) uint8.
        center_xy: (2,) person centre in image pixels.
        person_side_px: person box side (px), e.g. max(height, width) of the joint box.
        out_size: crop side S in px.
        joints_2d: (J, 2) image pixels.
        intrinsics: (4,) fx, fy, cx, cy of the image, or None when unknown.
        antialias: area-downsample by a power of two first when the scale is below 1/2, so
            large people are not aliased by bilinear sampling.

    Returns:
        crop (S, S, 3) uint8; joints_2d_crop (J, 2) float64; intrinsics_crop (4,) float64 or
        None; box (4,) float64 x0, y0, x1, y1 in image pixels (box edges, may leave the image).

    Raises:
        ValueError: on a non-positive size or a malformed image.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8. Received: {image.shape} {image.dtype}")
    if not (person_side_px > 0 and np.isfinite(person_side_px)):
        raise ValueError(f"person_side_px must be > 0. Received: {person_side_px}")
    if out_size < 1:
        raise ValueError(f"out_size must be >= 1. Received: {out_size}")
    side = features.PERSON_MARGIN * float(person_side_px)
    centre = (float(center_xy[0]), float(center_xy[1]))
    matrix = crop_geometry.crop_affine(centre, side, out_size)[:2]  # (2, 3)
    s = out_size / side

    src = image
    warp = matrix
    factor = 1
    if antialias:
        while s * factor * 2 <= 1.0 and min(image.shape[:2]) // (factor * 2) >= 1:
            factor *= 2
    if factor > 1:
        # Area-average f x f blocks: small pixel i covers original [f i - 0.5, f (i + 1) - 0.5],
        # so x = f x_small + (f - 1) / 2. Compose that into the warp (the last < f rows and
        # columns are dropped; they read as zero padding, a sub-pixel effect at this scale).
        h, w = image.shape[0] // factor, image.shape[1] // factor
        src = cv2.resize(image[: h * factor, : w * factor], (w, h), interpolation=cv2.INTER_AREA)
        small_to_orig = np.array(
            [[factor, 0.0, (factor - 1) / 2.0], [0.0, factor, (factor - 1) / 2.0], [0, 0, 1]]
        )
        warp = matrix @ small_to_orig
    crop = cv2.warpAffine(
        src,
        warp,
        (out_size, out_size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    joints_crop = crop_geometry.transform_points(joints_2d, matrix)
    intrinsics_crop = None
    if intrinsics is not None:
        intrinsics_crop = crop_geometry.transform_intrinsics(intrinsics, matrix)
    return crop, joints_crop, intrinsics_crop, crop_geometry.square_box(centre, side)


# ----------------------------------------------------------------------------------------------
# Validation, dead letters, counters.
# ----------------------------------------------------------------------------------------------
def check_points_3d(points: Any, field: str) -> str | None:
    """Reason why a (J, 3) array in mm is unusable (shape, non-finite, out of range), or None."""
    p3 = np.asarray(points, np.float64)
    if p3.shape != (NUM_JOINTS, 3):
        return f"{field} has shape {p3.shape}, expected ({NUM_JOINTS}, 3)"
    bad = np.where(~np.all(np.isfinite(p3), axis=1))[0]
    if bad.size:
        return f"{field} non-finite at joints {bad.tolist()}"
    largest = float(np.abs(p3).max())
    if largest > MAX_ABS_MM:
        return f"{field} out of range (|value| up to {largest:.0f} mm > {MAX_ABS_MM:.0f})"
    return None


def validate_joints(
    joints_2d: np.ndarray,
    visibility: np.ndarray | None = None,
    joints_3d: np.ndarray | None = None,
    has_3d: bool = False,
    image_size: Sequence[int] | None = None,
    max_outside_px: float | None = None,
) -> str | None:
    """Returns why a pose is unusable, or None when it is fine.

    Checks: shapes (16, 2) / (16,) / (16, 3); no NaN/inf in 2D joints that are visible and in
    any 3D joint when `has_3d`; 3D inside +-MAX_ABS_MM with the root in front of the camera;
    at least one visible joint; with `image_size` (h, w) and `max_outside_px`, visible 2D
    joints at most that many pixels outside the image.
    """
    j2 = np.asarray(joints_2d, np.float64)
    if j2.shape != (NUM_JOINTS, 2):
        return f"joints_2d has shape {j2.shape}, expected ({NUM_JOINTS}, 2)"
    vis = np.ones(NUM_JOINTS) if visibility is None else np.asarray(visibility, np.float64)
    if vis.shape != (NUM_JOINTS,):
        return f"visibility has shape {vis.shape}, expected ({NUM_JOINTS},)"
    if not np.all(np.isfinite(vis)):
        return "visibility has non-finite values"
    visible = vis > 0
    if not np.any(visible):
        return "no visible joint"
    bad = np.where(visible & ~np.all(np.isfinite(j2), axis=1))[0]
    if bad.size:
        return f"joints_2d non-finite at visible joints {bad.tolist()}"
    if image_size is not None and max_outside_px is not None:
        h, w = image_size
        v2 = j2[visible]
        out = (
            (v2[:, 0] < -max_outside_px)
            | (v2[:, 1] < -max_outside_px)
            | (v2[:, 0] > w - 1 + max_outside_px)
            | (v2[:, 1] > h - 1 + max_outside_px)
        )
        if np.any(out):
            idx = np.where(visible)[0][out]
            return (
                f"joints_2d more than {max_outside_px} px outside the image at joints "
                f"{idx.tolist()}"
            )
    if has_3d:
        if joints_3d is None:
            return "has_3d but joints_3d is None"
        reason = check_points_3d(joints_3d, "joints_3d")
        if reason:
            return reason
        j3 = np.asarray(joints_3d, np.float64)
        behind = np.where(j3[:, 2] <= 0)[0]
        if behind.size:
            return f"joints_3d behind the camera (z <= 0) at joints {behind.tolist()}"
    return None


def counter(name: str) -> beam.metrics.metricbase.Counter:
    """A Beam counter in the project's namespace (call inside DoFns)."""
    return beam.metrics.Metrics.counter(METRICS_NAMESPACE, name)


def dead_letter(
    item_id: str, stage: str, reason: str, records: int = 1, **extra: Any
) -> beam.pvalue.TaggedOutput:
    """The standard dead-letter output; `yield` it from a DoFn instead of a record.

    Args:
        item_id: stable id of the input item (file path, `subject/sequence/frame`, ...).
        stage: the step that failed (`"read"`, `"crop"`, `"validate"`, `"encode"`, ...).
        reason: human-readable cause, naming the field/file.
        records: how many records the letter stands for: 1 for a frame or a person; for a
            whole sequence that could not be read, the records it would have given (its
            frames / stride, when known). Stored as `"records"` when not 1; it is what
            `--max_dead_letter_fraction` counts (`dead_letter_records`).
        **extra: more JSON-serialisable context.
    """
    counter(f"{DEAD_LETTER_TAG}/{stage}").inc()
    payload = dead_letter_payload(item_id, stage, reason, records)
    payload.update(extra)
    return beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, payload)


def dead_letter_payload(item_id: str, stage: str, reason: str, records: int = 1) -> dict:
    """The dict of a dead letter (for letters made in the driver, outside a DoFn)."""
    payload = {"id": str(item_id), "stage": str(stage), "reason": str(reason)}
    if int(records) != 1:
        payload["records"] = max(1, int(records))
    return payload


def records_for(frames: int | None, stride: int = 1) -> int:
    """Records a sequence of `frames` frames gives at `stride` (frames 0, s, 2s, ...); 1 when
    the count is unknown (None or <= 0), so an unreadable sequence still counts."""
    if frames is None or frames <= 0:
        return 1
    return len(range(0, int(frames), max(1, int(stride))))


class EncodeRecords(beam.DoFn):
    """(split, item_id, record) -> (split, example_bytes), or a dead letter.

    Runs `validate_joints` and `features.encode_example`; a record that fails either goes to
    `DEAD_LETTER_TAG` with stage `"validate"` / `"encode"` and the reason.
    """

    def process(self, element):
        split, item_id, record = element
        reason = validate_joints(
            record.get("joints_2d"),
            record.get("visibility"),
            record.get("joints_3d"),
            bool(record.get("has_3d", False)),
        )
        if reason is not None:
            yield dead_letter(item_id, "validate", reason, split=split)
            return
        try:
            serialized = features.encode_example(record)
        except ValueError as error:
            yield dead_letter(item_id, "encode", str(error), split=split)
            return
        counter("examples_encoded").inc()
        yield split, serialized


# ----------------------------------------------------------------------------------------------
# Deterministic sharded write, dead-letter file, manifest.
# ----------------------------------------------------------------------------------------------
def shard_name(split: str, shard: int, num_shards: int) -> str:
    """`<split>-00003-of-00008.tfrecord`."""
    return f"{split}-{shard:05d}-of-{num_shards:05d}.tfrecord"


def _meta(serialized: bytes) -> dict[str, Any]:
    """Provenance and 3D flags of an encoded record, parsed by the schema's owner."""
    record = features.decode_record(serialized)
    meta: dict[str, Any] = {field: record[field] for field in features.META_STRING_FIELDS}
    meta["frame"] = record["frame"]
    # Counted into the manifest: ints (an absent optional has_3d_univ reads as 0).
    meta["has_3d"] = int(record["has_3d"])
    meta["has_3d_univ"] = int(record["has_3d_univ"])
    return meta


def _stable_hash(text: str) -> int:
    # Python's hash() is salted per process; sha1 is the same on every worker and every run.
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big")


class _KeyForShard(beam.DoFn):
    """(split, bytes) -> ((split, shard), (sort_key, bytes)). The sort key orders a shard by
    dataset / subject / sequence / camera / frame, ties broken by the content hash; the shard
    count comes from the plan side input ({split: shards})."""

    def __init__(self, splits: Sequence[str], shard_by: str):
        self._splits = tuple(splits)
        self._shard_by = shard_by

    def process(self, element, plan):
        split, serialized = element
        if split not in self._splits:
            raise ValueError(f"record for unknown split {split!r}; expected one of {self._splits}")
        meta = _meta(serialized)
        digest = hashlib.sha1(serialized).hexdigest()
        sequence_key = "\x00".join(
            [meta["dataset"], meta["subject"], meta["sequence"], meta["camera"]]
        )
        sort_key = f"{sequence_key}\x00{meta['frame']:012d}\x00{digest}"
        shard_text = sequence_key if self._shard_by == "sequence" else sort_key
        shard = _stable_hash(shard_text) % plan[split]
        counter("examples_to_write").inc()
        yield (split, shard), (sort_key, serialized)


class _WriteShard(beam.DoFn):
    """((split, shard), [(sort_key, bytes)]) -> shard summary dict, after writing the file.

    Records are written in sort-key order through `shard_sort.sorted_items`, which spills to
    local disk beyond `sort_buffer_bytes`, so a shard of any size is written in bounded memory.
    """

    def __init__(self, output_dir: str, sort_buffer_bytes: int = shard_sort.DEFAULT_BUFFER_BYTES):
        self._output_dir = output_dir
        self._sort_buffer_bytes = sort_buffer_bytes

    def process(self, element, plan):
        (split, shard), items = element
        yield write_shard_file(
            self._output_dir, split, shard, plan[split], items, self._sort_buffer_bytes
        )


def write_shard_file(
    output_dir: str,
    split: str,
    shard: int,
    num_shards: int,
    items: Iterable[tuple[str, bytes]],
    sort_buffer_bytes: int = shard_sort.DEFAULT_BUFFER_BYTES,
) -> dict[str, Any]:
    """Writes one shard from (sort_key, serialized Example) pairs in key order; returns its
    summary (counts per subject / action / dataset, has_3d, has_3d_univ) for the manifest."""
    name = shard_name(split, shard, num_shards)
    path = os.path.join(output_dir, name)
    summary = {
        "split": split,
        "file": name,
        "num_examples": 0,
        "subjects": collections.Counter(),
        "actions": collections.Counter(),
        "datasets": collections.Counter(),
        "has_3d": 0,
        "has_3d_univ": 0,
    }
    # Write under a unique temporary name and rename, so a crashed or retried worker leaves
    # no half shard and two attempts never write the same file.
    tmp = f"{path}{TMP_INFIX}{uuid.uuid4().hex}"
    try:
        with (
            shard_sort.sorted_items(items, sort_buffer_bytes) as ordered,
            tf.io.TFRecordWriter(tmp) as writer,
        ):
            for _, serialized in ordered:
                writer.write(serialized)
                meta = _meta(serialized)
                summary["num_examples"] += 1
                summary["subjects"][meta["subject"]] += 1
                summary["actions"][meta["action"]] += 1
                summary["datasets"][meta["dataset"]] += 1
                summary["has_3d"] += meta["has_3d"]
                summary["has_3d_univ"] += meta["has_3d_univ"]
        tf.io.gfile.rename(tmp, path, overwrite=True)
    except BaseException:
        # A failed attempt (disk full, a bad record, a worker being stopped) removes its
        # partial file; only a killed process leaves one, and the next run's
        # prepare_output_dir removes it.
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)
        raise
    counter("examples_written").inc(summary["num_examples"])
    return {k: dict(v) if isinstance(v, collections.Counter) else v for k, v in summary.items()}


def normalise_num_shards(num_shards: int | Mapping[str, int], splits: Sequence[str]) -> dict:
    """int or {split: int} -> {split: int} with every split present and >= 1."""
    if isinstance(num_shards, Mapping):
        shards = {s: int(num_shards[s]) for s in splits}
    else:
        shards = {s: int(num_shards) for s in splits}
    for split, n in shards.items():
        if n < 1:
            raise ValueError(f"num_shards for split {split!r} must be >= 1. Received: {n}")
    return shards


def shards_for_bytes(
    bytes_per_split: Mapping[str, int], splits: Sequence[str], target_shard_bytes: float
) -> dict[str, int]:
    """{split: ceil(bytes / target)}, at least 1 (an empty split gets one empty shard)."""
    if not target_shard_bytes > 0:
        raise ValueError(f"target_shard_bytes must be > 0. Received: {target_shard_bytes}")
    return {
        s: max(1, math.ceil(int(bytes_per_split.get(s, 0)) / float(target_shard_bytes)))
        for s in splits
    }


def shard_plan(
    examples: beam.PCollection,
    num_shards: int | Mapping[str, int] | None,
    splits: Sequence[str],
    target_shard_bytes: float = DEFAULT_TARGET_SHARD_MB * 2**20,
) -> beam.PCollection:
    """Singleton PCollection {split: shards}: `num_shards` when given, else from the data
    (`shards_for_bytes` of the serialized sizes; deterministic, so reruns shard alike)."""
    if num_shards is not None:
        plan = normalise_num_shards(num_shards, splits)
        return examples.pipeline | "ShardPlan" >> beam.Create([plan])
    return (
        examples
        | "ExampleBytes" >> beam.Map(lambda kv: (kv[0], len(kv[1])))
        | "BytesPerSplit" >> beam.CombinePerKey(sum)
        | "BytesToDict" >> beam.combiners.ToDict()
        | "ShardPlan" >> beam.Map(shards_for_bytes, tuple(splits), float(target_shard_bytes))
    )


def write_split(
    examples: beam.PCollection,
    output_dir: str,
    num_shards: int | Mapping[str, int] | None,
    splits: Sequence[str],
    shard_by: str = "example",
    target_shard_bytes: float = DEFAULT_TARGET_SHARD_MB * 2**20,
    sort_buffer_bytes: int = shard_sort.DEFAULT_BUFFER_BYTES,
) -> tuple[beam.PCollection, beam.PCollection]:
    """Writes `(split, example_bytes)` as deterministic sharded TFRecords.

    Each record goes to shard `sha1(key) % num_shards` and is sorted by its key inside the
    shard (key = dataset/subject/sequence/camera/frame/content hash), so reruns write
    byte-identical files whatever the runner or worker count. Shards that receive no record
    are written empty by `write_manifest`, so every `-of-N` set is complete. The shard writer
    sorts with a bounded buffer (spilling to local disk), so a shard's size does not bound a
    worker's memory.

    Args:
        examples: PCollection of (split, serialized tf.train.Example).
        output_dir: destination (any tf.io.gfile path).
        num_shards: shards per split, {split: shards}, or None to choose them from the data
            (`target_shard_bytes` per shard).
        splits: every split the job may emit (an unknown split fails the job).
        shard_by: `"example"` spreads frames over shards (best shuffling); `"sequence"` keeps
            each dataset/subject/sequence/camera in one shard in frame order (for windows).
        target_shard_bytes: the shard size aimed at when `num_shards` is None.
        sort_buffer_bytes: the shard writer's in-memory sort budget.

    Returns:
        (PCollection of shard summaries, singleton {split: shards}) for `write_manifest`.
    """
    if shard_by not in ("example", "sequence"):
        raise ValueError(f"shard_by must be 'example' or 'sequence'. Received: {shard_by!r}")
    plan = shard_plan(examples, num_shards, splits, target_shard_bytes)
    summaries = (
        examples
        | "KeyForShard" >> beam.ParDo(_KeyForShard(splits, shard_by), beam.pvalue.AsSingleton(plan))
        | "GroupShard" >> beam.GroupByKey()
        | "WriteShard"
        >> beam.ParDo(_WriteShard(output_dir, sort_buffer_bytes), beam.pvalue.AsSingleton(plan))
    )
    return summaries, plan


def dead_letter_stage_counts(letters: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """{stage: number of dead letters}, sorted by stage; a letter without a stage counts
    under "unknown". One letter is one line of the dead-letter file (a whole excluded
    sequence is one letter, whatever its frame count)."""
    counts = collections.Counter(str(letter.get("stage", "unknown")) for letter in letters)
    return dict(sorted(counts.items()))


def dead_letter_records(letters: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """{stage: records the dead letters stand for}, sorted by stage: a letter's `"records"`
    (a whole sequence that could not be read), else 1."""
    counts: collections.Counter = collections.Counter()
    for letter in letters:
        counts[str(letter.get("stage", "unknown"))] += max(1, int(letter.get("records", 1)))
    return dict(sorted(counts.items()))


def _write_dead_letter_file(letters: list[dict], output_dir: str) -> dict[str, dict[str, int]]:
    lines = sorted(json.dumps(letter, sort_keys=True, default=str) for letter in letters)
    path = os.path.join(output_dir, f"{DEAD_LETTER_PREFIX}-00000-of-00001.jsonl")
    with tf.io.gfile.GFile(path, "w") as f:
        # One write even when empty: GFile only creates the file on its first write.
        f.write("".join(line + "\n" for line in lines))
    by_stage = dead_letter_stage_counts(letters)
    if lines:
        logger.warning("%d dead-letter item(s) %s; see %s", len(lines), by_stage, path)
    return {"letters": by_stage, "records": dead_letter_records(letters)}


def write_dead_letters(dead_letters: beam.PCollection, output_dir: str) -> beam.PCollection:
    """Writes dead-letter dicts as sorted JSON lines.

    Returns a singleton PCollection holding `{"letters": {stage: letters}, "records": {stage:
    records they stand for}}` (`dead_letter_stage_counts`, `dead_letter_records`).

    Always writes `dead_letter-00000-of-00001.jsonl` (empty when nothing failed), so a listing
    of the output directory tells at a glance that the job checked.
    """
    return (
        dead_letters
        | "DeadLettersToList" >> beam.combiners.ToList()
        | "WriteDeadLetters" >> beam.Map(_write_dead_letter_file, output_dir)
    )


def dead_letter_failures(counts_by_stage: Mapping[str, int]) -> int:
    """The failures among per-stage counts (letters or records): every stage except the
    `EXCLUSION_STAGES`."""
    return int(sum(n for stage, n in counts_by_stage.items() if stage not in EXCLUSION_STAGES))


def quality_problems(
    num_examples: int, failed_records_by_stage: Mapping[str, int], max_dead_letter_fraction: float
) -> list[str]:
    """Why a finished job's output cannot be trusted (empty list: it can).

    The fraction is failed records / (failed records + written records), where a dead letter
    counts the records it stands for (`dead_letter_records`): a person, a frame, or every
    frame of a sequence whose files could not be read, so one truncated video weighs as
    much as the frames it lost, not as one frame.

    Args:
        failed_records_by_stage: {stage: records} (`dead_letter_records`); the
            `EXCLUSION_STAGES` are left out.
    """
    problems = []
    failures = dead_letter_failures(failed_records_by_stage)
    if num_examples == 0:
        problems.append("no record was written")
    total = failures + num_examples
    fraction = failures / total if total else 0.0
    if fraction > max_dead_letter_fraction:
        stages = {
            s: n for s, n in sorted(failed_records_by_stage.items()) if s not in EXCLUSION_STAGES
        }
        problems.append(
            f"{failures} of {total} items failed ({fraction:.1%} > --max_dead_letter_fraction "
            f"{max_dead_letter_fraction:.1%}; by stage {stages})"
        )
    return problems


def _write_manifest(
    summaries: list[dict],
    dead_letter_counts: Mapping[str, Mapping[str, int]],
    num_shards: Mapping[str, int],
    output_dir: str,
    job_args: Mapping[str, Any],
    max_dead_letter_fraction: float,
) -> str:
    splits: dict[str, dict[str, Any]] = {}
    for split, n in num_shards.items():
        splits[split] = {
            "num_examples": 0,
            "num_shards": n,
            "files": [shard_name(split, i, n) for i in range(n)],
            "shard_sizes": [0] * n,
            "subjects": collections.Counter(),
            "actions": collections.Counter(),
            "datasets": collections.Counter(),
            "has_3d": 0,
            "has_3d_univ": 0,
        }
    for summary in summaries:
        entry = splits[summary["split"]]
        entry["num_examples"] += summary["num_examples"]
        entry["shard_sizes"][entry["files"].index(summary["file"])] = summary["num_examples"]
        entry["has_3d"] += summary["has_3d"]
        entry["has_3d_univ"] += summary["has_3d_univ"]
        for field in ("subjects", "actions", "datasets"):
            entry[field].update(summary[field])
    written = {s["file"] for s in summaries}
    for split, entry in splits.items():
        for name in entry["files"]:
            if name not in written:  # a shard no record hashed to: write it empty
                with tf.io.TFRecordWriter(os.path.join(output_dir, name)):
                    pass
        for field in ("subjects", "actions", "datasets"):
            entry[field] = dict(sorted(entry[field].items()))
    num_examples = sum(e["num_examples"] for e in splits.values())
    dead_letter_by_stage = dead_letter_counts["letters"]
    records_by_stage = dead_letter_counts["records"]
    problems = quality_problems(num_examples, records_by_stage, max_dead_letter_fraction)
    manifest = {
        # False when the job's output cannot be trusted; `problems` says why.
        "complete": not problems,
        "problems": problems,
        "schema_version": features.SCHEMA_VERSION,
        "person_margin": features.PERSON_MARGIN,
        "num_examples": num_examples,
        "splits": splits,
        "dead_letter_count": int(sum(dead_letter_by_stage.values())),
        "dead_letter_failures": dead_letter_failures(dead_letter_by_stage),
        "dead_letter_by_stage": dict(sorted(dead_letter_by_stage.items())),
        # Records the letters stand for (a whole unreadable sequence: its frames / stride);
        # the failures among them are what --max_dead_letter_fraction is checked against.
        "dead_letter_records_by_stage": dict(sorted(records_by_stage.items())),
        "failed_records": dead_letter_failures(records_by_stage),
        "dead_letter_file": f"{DEAD_LETTER_PREFIX}-00000-of-00001.jsonl",
        "job_args": dict(job_args),
    }
    path = os.path.join(output_dir, MANIFEST_NAME)
    with tf.io.gfile.GFile(path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True, default=str)
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
    return path


def write_manifest(
    summaries: beam.PCollection,
    dead_letter_counts: beam.PCollection,
    shard_plan: beam.PCollection,
    output_dir: str,
    job_args: Mapping[str, Any],
    max_dead_letter_fraction: float = DEFAULT_MAX_DEAD_LETTER_FRACTION,
) -> beam.PCollection:
    """Writes `manifest.json` once every shard and the dead letters are written.

    Manifest: `complete`, `problems`, `schema_version`, `person_margin`, `num_examples`,
    `splits` -> {split: {num_examples, num_shards, files, shard_sizes, subjects, actions,
    datasets, has_3d, has_3d_univ}}, `dead_letter_count`, `dead_letter_failures` (letters),
    `dead_letter_by_stage` ({stage: letters}, so documented exclusions such as "excluded",
    "frame_count", "invalid_frames" and "test_persons" are told apart from failures at a
    glance), `dead_letter_records_by_stage` ({stage: records the letters stand for}),
    `failed_records`, `dead_letter_file`, `job_args`. Counts come from the shard writers
    themselves, so they are the records in the files. `complete` is false (and `problems`
    says why) when nothing was written or failed records exceed `max_dead_letter_fraction`
    of failed plus written records.

    Args:
        dead_letter_counts: singleton PCollection of {"letters": ..., "records": ...}
            (`write_dead_letters`).
        shard_plan: singleton PCollection of {split: shards} (`write_split`).
    """
    return (
        summaries
        | "SummariesToList" >> beam.combiners.ToList()
        | "WriteManifest"
        >> beam.Map(
            _write_manifest,
            beam.pvalue.AsSingleton(dead_letter_counts),
            beam.pvalue.AsSingleton(shard_plan),
            output_dir,
            dict(job_args),
            float(max_dead_letter_fraction),
        )
    )


def write_outputs(
    records: beam.PCollection,
    dead_letters: beam.PCollection | None,
    output_dir: str,
    num_shards: int | Mapping[str, int] | None,
    splits: Sequence[str],
    job_args: Mapping[str, Any],
    shard_by: str = "example",
    max_dead_letter_fraction: float = DEFAULT_MAX_DEAD_LETTER_FRACTION,
    target_shard_bytes: float = DEFAULT_TARGET_SHARD_MB * 2**20,
) -> beam.PCollection:
    """Encodes `(split, item_id, record)`, writes shards, dead letters and the manifest.

    Dead letters of the job (`dead_letters`, may be None) and of the encoder are written
    together. `num_shards` None chooses the shard counts from the data (`write_split`).
    Returns the PCollection holding the manifest path.
    """
    encoded = records | "EncodeRecords" >> beam.ParDo(EncodeRecords()).with_outputs(
        DEAD_LETTER_TAG, main="examples"
    )
    summaries, plan = write_split(
        encoded.examples, output_dir, num_shards, splits, shard_by, target_shard_bytes
    )
    letters = [encoded[DEAD_LETTER_TAG]]
    if dead_letters is not None:
        letters.append(dead_letters)
    all_letters = tuple(letters) | "FlattenDeadLetters" >> beam.Flatten()
    letter_counts = write_dead_letters(all_letters, output_dir)
    return write_manifest(
        summaries, letter_counts, plan, output_dir, job_args, max_dead_letter_fraction
    )


# ----------------------------------------------------------------------------------------------
# Reading back and running.
# ----------------------------------------------------------------------------------------------
def read_manifest(output_dir: str) -> dict[str, Any] | None:
    """The manifest of `output_dir`, or None when there is none."""
    path = os.path.join(output_dir, MANIFEST_NAME)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def manifest_is_complete(output_dir: str) -> bool:
    """True when a manifest says `complete` and all its shard files exist."""
    manifest = read_manifest(output_dir)
    if not manifest or not manifest.get("complete"):
        return False
    if manifest.get("schema_version") != features.SCHEMA_VERSION:
        return False
    return all(
        tf.io.gfile.exists(os.path.join(output_dir, name))
        for entry in manifest["splits"].values()
        for name in entry["files"]
    )


def count_records(path: str) -> int:
    """Number of records in one TFRecord file."""
    return sum(1 for _ in tf.data.TFRecordDataset(path))


def verify_output(output_dir: str, require_complete: bool = True) -> dict[str, Any]:
    """Checks every shard holds exactly the records the manifest counts.

    Args:
        require_complete: also refuse a manifest marked incomplete (`complete` false).

    Raises:
        RuntimeError: no (complete) manifest, or a shard missing or whose record count differs.
    """
    manifest = read_manifest(output_dir)
    if require_complete and not manifest_is_complete(output_dir):
        raise RuntimeError(f"{output_dir}: no complete manifest.json or a shard is missing")
    if manifest is None:
        raise RuntimeError(f"{output_dir}: no manifest.json")
    for entry in manifest["splits"].values():
        for name, expected in zip(entry["files"], entry["shard_sizes"]):
            got = count_records(os.path.join(output_dir, name))
            if got != expected:
                raise RuntimeError(
                    f"{output_dir}/{name}: {got} records on disk, manifest says {expected}"
                )
    return manifest


def _output_files(output_dir: str) -> list[str]:
    patterns = [
        "*-?????-of-?????.tfrecord",
        f"{DEAD_LETTER_PREFIX}-*.jsonl",
        MANIFEST_NAME,
        # Partial files of killed writers (shards, manifest).
        f"*-?????-of-?????.tfrecord{TMP_INFIX}*",
        f"{MANIFEST_NAME}.tmp",
    ]
    return sorted(p for pat in patterns for p in tf.io.gfile.glob(os.path.join(output_dir, pat)))


def prepare_output_dir(output_dir: str, overwrite: bool) -> None:
    """Creates `output_dir`; refuses (or, with `overwrite`, deletes our files) when a previous
    job's shards or manifest are there, so stale shards never mix with new ones."""
    tf.io.gfile.makedirs(output_dir)
    existing = _output_files(output_dir)
    if existing and not overwrite:
        raise FileExistsError(
            f"{output_dir} already holds {len(existing)} output file(s) (e.g. "
            f"{os.path.basename(existing[0])}); pass --overwrite to replace them"
        )
    for path in existing:
        tf.io.gfile.remove(path)


def is_direct_runner(name: str | None) -> bool:
    """True when `--runner` names Beam's DirectRunner (or is absent), spelled any way Beam's
    `create_runner` accepts: `DirectRunner`, `direct`, `directrunner`, the class path
    `apache_beam.runners.direct.direct_runner.DirectRunner`, `SwitchingDirectRunner`."""
    if name is None:
        return True
    short = name.rsplit(".", 1)[-1].lower()
    if not short.endswith("runner"):
        short += "runner"  # Beam's own rule: "direct" -> "directrunner"
    return short in ("directrunner", "switchingdirectrunner")


def local_runner(options: PipelineOptions) -> beam.runners.PipelineRunner | None:
    """The runner for `beam.Pipeline`: the FnApiRunner when the local DirectRunner is meant.

    Beam 2.77's DirectRunner first tries Prism, which it downloads from github.com at start
    (on an offline machine it fails, logs the exception and falls back to the FnApiRunner).
    When `--runner` is absent or names the DirectRunner (`is_direct_runner`: `direct`,
    `DirectRunner`, its class path), this builds the FnApiRunner exactly as the DirectRunner
    does (pipeline options made available to workers; `--direct_num_workers` and
    `--direct_running_mode` are read by the FnApiRunner itself), so no download is ever
    attempted. (The DirectRunner would pick its BundleBasedDirectRunner for streaming
    pipelines and TestStream; the jobs are batch pipelines, which it runs on the FnApiRunner.) Any other `--runner` (PrismRunner, PortableRunner, DataflowRunner,
    FlinkRunner, ...) returns None: Beam creates it from the options.
    """
    from apache_beam.options.pipeline_options import StandardOptions

    if not is_direct_runner(options.view_as(StandardOptions).runner):
        return None
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import (
        JobServiceHandle,
    )

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    return fn_runner.FnApiRunner(
        provision_info=fn_runner.ExtendedProvisionInfo(
            beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
        )
    )


def run_job(
    argv: Sequence[str] | None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None,
    build: Callable[[beam.Pipeline, argparse.Namespace], tuple[beam.PCollection, Any]],
    splits: Sequence[str],
    dataset_name: str,
    required_layout: Callable[[argparse.Namespace], tuple[str, list[str]]] | None = None,
    shard_by: str = "example",
    description: str | None = None,
) -> dict[str, Any]:
    """Parses args, checks inputs, builds, runs and verifies a job. Returns the manifest.

    Args:
        argv: command line (None: sys.argv[1:]).
        add_arguments: adds the job's flags to the parser.
        build: (pipeline, args) -> (records, dead_letters or None); records are
            `(split, item_id, PoseRecord)`.
        splits: every split the job emits.
        dataset_name: for errors and logs.
        required_layout: args -> (input_dir, patterns) checked by `check_layout` first.
        shard_by: see `write_split`.
        description: argparse description.

    Raises:
        DataQualityError: the job ran but wrote nothing, or more than
            `--max_dead_letter_fraction` of its items failed; the manifest is written with
            `complete` false and its `problems`.
    """
    args, options = parse_args(argv, add_arguments, description)
    if required_layout is not None:
        input_dir, patterns = required_layout(args)
        check_layout(input_dir, patterns, dataset_name)
    prepare_output_dir(args.output_dir, args.overwrite)
    job_args = {k: v for k, v in sorted(vars(args).items())}
    with beam.Pipeline(runner=local_runner(options), options=options) as pipeline:
        records, dead_letters = build(pipeline, args)
        write_outputs(
            records,
            dead_letters,
            args.output_dir,
            args.num_shards,
            splits,
            job_args,
            shard_by,
            args.max_dead_letter_fraction,
            args.target_shard_mb * 2**20,
        )
    manifest = verify_output(args.output_dir, require_complete=False)
    if not manifest.get("complete"):
        raise DataQualityError(
            f"{dataset_name}: {'; '.join(manifest.get('problems', [])) or 'incomplete'}. "
            f"The output in {args.output_dir} is marked incomplete; see "
            f"{os.path.join(args.output_dir, manifest['dead_letter_file'])} for every failed "
            "item and its reason"
        )
    logger.info(
        "%s: wrote %d examples (%s), %d dead letters %s to %s",
        dataset_name,
        manifest["num_examples"],
        {s: e["num_examples"] for s, e in manifest["splits"].items()},
        manifest["dead_letter_count"],
        manifest["dead_letter_by_stage"],
        args.output_dir,
    )
    return manifest


def job_main(run: Callable[[Sequence[str] | None], Any]) -> Callable[..., int]:
    """A job's command-line `main` around its `run(argv) -> manifest`: bad input (layout,
    flags, values) prints `error: ...` naming what is wrong and returns 2."""
    from keras_pose3d.cli import exits_cleanly

    @exits_cleanly
    def main(argv: Sequence[str] | None = None) -> int:
        run(argv)
        return 0

    main.__doc__ = "Command-line entry: runs the job; bad input exits 2 with the message."
    return main
