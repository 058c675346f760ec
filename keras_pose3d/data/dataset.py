"""tf.data input pipelines: read shards, parse, augment, build targets, mix 2D/3D.

Training batches follow the paper (Sect. 5: "both 2D samples ... and 3D samples ... were
consumed in equal proportion in each iteration"): the record stream is split by `has_3d` into
two streams, each shuffled, augmented and batched with B/2, and the two half-batches are
concatenated, so **every** batch holds exactly B/2 2D-only samples (first) and B/2 3D samples
(second). Both streams read every shard and keep their kind by a one-key parse (64 records at a
time, `records_of_kind`) before JPEG decoding, so the split costs a second pass of record
reading, not of decoding. Under
`tf.distribute` each replica builds its own pipeline with its per-replica batch (pass the
`input_context` of `strategy.distribute_datasets_from_function`, as the trainer does), so each
replica's batch is half/half too; the per-replica batch must be even. When one kind is absent from the files (probed on the first `probe_records` records,
interleaved over all files) the pipeline falls back to the other kind with a logged warning
(`on_missing_kind="warn"`) or raises (`"error"`).

Batch layout (docs/architecture.md): `(inputs, targets)`, inputs = {"image": (B, S, S, 3)
float32 in [0, 1]}, targets = heatmaps (B, h, h, J), visibility (B, J), pose_2d (B, J, 2),
depth (B, J) (0 for 2D-only samples), has_3d (B,), joints_3d (B, J, 3) mm, intrinsics (B, 4)
network-input px, root_depth (B,) mm. With `finish_in_step=True` (the trainer) the elements are
the batches before their per-batch half (`batch_augment.prepare_example`'s dicts, uint8
crops), and `finish_batch` makes this layout from them.

Augmentation randomness is stateless, seeded by (seed, stream, element index), so a pipeline
built with the same seed and `deterministic=True` yields the same batches.

What to read and how (files, sizes, heatmap sigma, mixing, augmentation, shuffle buffer) comes
from `config.DataConfig`; `make_dataset` takes only the per-call choices (split, batch, seed,
samples, replica context) besides it. TP-Net's pose windows are built in NumPy
(`data.windows`).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence

import tensorflow as tf

from keras_pose3d.config import AugmentConfig, DataConfig
from keras_pose3d.data import augment as aug
from keras_pose3d.data import batch_augment, features, heatmaps

logger = logging.getLogger(__name__)

AUTOTUNE = tf.data.AUTOTUNE


# ----------------------------------------------------------------------------------------------
# Reading shards.
# ----------------------------------------------------------------------------------------------
def list_files(file_patterns: str | Sequence[str]) -> list[str]:
    """Sorted files matching the glob patterns; raises naming a pattern that matches nothing."""
    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    if not patterns:
        raise ValueError("file_patterns is empty; expected TFRecord glob patterns")
    files: list[str] = []
    for pattern in patterns:
        matched = sorted(tf.io.gfile.glob(pattern))
        if not matched:
            raise ValueError(f"no TFRecord files match '{pattern}'")
        files.extend(matched)
    return sorted(set(files))


def _read_records(
    files: list[str],
    *,
    shuffle_files: bool,
    seed: int,
    input_context: tf.distribute.InputContext | None,
    deterministic: bool,
) -> tf.data.Dataset:
    shard_records = False
    if input_context is not None and input_context.num_input_pipelines > 1:
        n, i = input_context.num_input_pipelines, input_context.input_pipeline_id
        if len(files) >= n:
            files = files[i::n]
        else:  # fewer files than hosts: every host reads all files and keeps its own records
            shard_records = True
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle_files:
        ds = ds.shuffle(len(files), seed=seed)
    ds = ds.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 16),
        block_length=1,
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )
    if shard_records:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return ds


_HAS_3D_SPEC = {features.KEY_HAS_3D: tf.io.FixedLenFeature([], tf.int64)}


def _has_3d(serialized: tf.Tensor) -> tf.Tensor:
    return tf.io.parse_single_example(serialized, _HAS_3D_SPEC)[features.KEY_HAS_3D]


def records_of_kind(records: tf.data.Dataset, kind: int) -> tf.data.Dataset:
    """The serialised records whose `has_3d` equals `kind` (0 or 1), in their order.

    Each stream of the 2D/3D split reads every record, so this runs on every record twice. The
    kinds are parsed 64 records at a time (one vectorised one-key parse) and the filter's
    predicate returns one of its inputs, which tf.data passes on without calling a function.
    A per-record predicate that parses is one function call a record in each stream (two
    per record over both), and a call costs more than the parse (docs/benchmarks.md).
    """
    if kind not in (0, 1):  # another value would keep nothing, and a repeat would spin forever
        raise ValueError(f"records_of_kind: kind must be 0 (2D-only) or 1 (3D), got {kind!r}")

    @tf.autograph.experimental.do_not_convert
    def flag(serialized):  # (n,) string -> (n,) bool, (n,) string
        kinds = tf.io.parse_example(serialized, _HAS_3D_SPEC)[features.KEY_HAS_3D]
        return tf.equal(kinds, kind), serialized

    flagged = records.batch(64).map(flag).unbatch()
    return flagged.filter(lambda keep, _: keep).map(lambda _, serialized: serialized)


def count_kinds(files: list[str], probe_records: int) -> tuple[int, int]:
    """(number of 2D-only, number of 3D) records seen by the probe.

    Reads one record from each file in turn (every file is seen early) with a one-key parse
    (no JPEG decoding). The first `probe_records` records are always counted; when they hold
    only one kind, reading goes on until the other kind appears or the files end. Shards are
    often sorted by subject (the synthetic job writes its `2d_*` subjects first), so a fixed
    prefix can miss a kind that is there; reading on costs a full pass only when a kind is
    really absent.
    """
    ds = tf.data.Dataset.from_tensor_slices(files).interleave(
        tf.data.TFRecordDataset, cycle_length=max(1, len(files)), block_length=1
    )
    n2d = n3d = 0
    for flags in ds.map(_has_3d).batch(max(1, min(probe_records, 4096))).as_numpy_iterator():
        for flag in flags:
            if n2d + n3d >= probe_records and n2d and n3d:
                return n2d, n3d
            n3d += int(flag == 1)
            n2d += int(flag == 0)
    return n2d, n3d


# ----------------------------------------------------------------------------------------------
# The error path: which shard is corrupt (TensorFlow's DataLossError gives an offset, no file).
# ----------------------------------------------------------------------------------------------
_OFFSET = re.compile(r"corrupted record at (\d+)")


def find_corrupt_shard(files: Sequence[str], offset: int | None = None) -> tuple[str, str] | None:
    """(file, TensorFlow's message) of a shard whose records fail TFRecord's length / CRC
    checks, or None. Reads the files one at a time, whole (the error path only); with `offset`
    (the "corrupted record at N" of the error) only files longer than N, and a file whose
    error is at that offset is returned at once."""
    found = None
    for path in files:
        if offset is not None:
            try:
                if tf.io.gfile.stat(path).length <= offset:
                    continue
            except tf.errors.OpError:
                pass
        try:
            for _ in tf.data.TFRecordDataset(path):
                pass
        except tf.errors.DataLossError as err:
            message = err.message.split(" [Op:", 1)[0].split("}}", 1)[-1].strip()
            match = _OFFSET.search(message)
            if offset is None or (match and int(match.group(1)) == offset):
                return path, message
            found = found or (path, message)
    return found


def name_corrupt_shard(
    error: tf.errors.DataLossError, file_patterns: str | Sequence[str]
) -> tf.errors.DataLossError:
    """`error` again, its message naming the corrupt shard among the files matching
    `file_patterns` and saying what to do; `error` itself when no file is found corrupt."""
    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    files = sorted({f for p in patterns for f in tf.io.gfile.glob(p)})
    match = _OFFSET.search(error.message)
    found = find_corrupt_shard(files, int(match.group(1)) if match else None)
    if found is None:
        return error
    path, message = found
    return tf.errors.DataLossError(
        error.node_def,
        error.op,
        f"{path}: {message} (a corrupt TFRecord shard: regenerate it with its data job, or "
        "leave it out of the record patterns)",
    )


@contextlib.contextmanager
def corrupt_shards_named(file_patterns: str | Sequence[str]) -> Iterator[None]:
    """Re-raises a DataLossError from the block (TensorFlow names no file) with the shard
    named: the files matching `file_patterns` (globs or paths) are scanned, in the error path
    only (`name_corrupt_shard`)."""
    try:
        yield
    except tf.errors.DataLossError as err:
        raise name_corrupt_shard(err, file_patterns) from err


# ----------------------------------------------------------------------------------------------
# One record -> (inputs, targets).
# ----------------------------------------------------------------------------------------------
def crop_record(
    record: dict[str, tf.Tensor],
    input_size: int,
    *,
    scale: tf.Tensor | float = 1.0,
    rotation_deg: tf.Tensor | float = 0.0,
    flip: tf.Tensor | bool = False,
) -> dict[str, tf.Tensor]:
    """The network-input crop of a parsed record (`augment.crop_and_augment` on its fields).

    The defaults (scale 1, no rotation or flip) are the evaluation crop: the validation
    dataset's and `pipelines/predict_sequences.py`'s, which must see the same input and
    intrinsics. Returns crop_and_augment's dict (image, joints_2d, visibility, joints_3d,
    intrinsics at network-input size).
    """
    return aug.crop_and_augment(
        record["image"],
        record["joints_2d"],
        record["visibility"],
        record["joints_3d"],
        record["intrinsics"],
        input_size=input_size,
        scale=scale,
        rotation_deg=rotation_deg,
        flip=flip,
    )


def build_example(
    record: dict[str, tf.Tensor],
    *,
    input_size: int,
    heatmap_size: int,
    heatmap_sigma: float = 1.0,
    augment: AugmentConfig | None = None,
    seed: tf.Tensor | None = None,
) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    """Crops (and with `augment`, augments) a parsed record and computes its targets.

    Args:
        record: output of `features.parse_example` (decoded image).
        input_size: S; heatmap_size: h; heatmap_sigma: Gaussian sigma in heatmap px.
        augment: None for the evaluation crop (scale 1, no rotation, flip or colour).
        seed: (2,) int stateless seed, required with `augment`.

    Returns:
        (inputs, targets) of one sample (module docstring, without the batch axis).
    """
    if augment is None:
        geo = {"scale": 1.0, "rotation_deg": 0.0, "flip": False}
    else:
        if seed is None:
            raise ValueError("build_example: augment needs a seed")
        if augment.warp == "opencv":
            # One example is a batch of one of the batched pipeline (the same values).
            prepared = batch_augment.prepare_example(
                record, input_size=input_size, heatmap_size=heatmap_size, augment=augment, seed=seed
            )
            batch = tf.nest.map_structure(lambda t: t[None], prepared)
            inputs, targets = batch_augment.augment_batch(
                batch,
                input_size=input_size,
                heatmap_size=heatmap_size,
                heatmap_sigma=heatmap_sigma,
                augment=augment,
            )
            return tf.nest.map_structure(lambda t: t[0], (inputs, targets))
        geo = batch_augment.draw_params(seed, augment)
    out = crop_record(
        record,
        input_size,
        scale=geo["scale"],
        rotation_deg=geo["rotation_deg"],
        flip=geo["flip"],
    )
    image = out["image"]
    if augment is not None and augment.color:
        image = aug.colour_jitter(
            image,
            geo["colour_seed"],
            channel_scale=augment.channel_scale,
            brightness=augment.brightness,
            contrast=augment.contrast,
            saturation=augment.saturation,
        )
    targets = batch_augment.label_targets(out, record["has_3d"], input_size, heatmap_size)
    j2d_hm = targets.pop("heatmap_joints")
    heat = heatmaps.encode_heatmaps(j2d_hm, targets["visibility"], heatmap_size, heatmap_sigma)
    return {"image": image}, {"heatmaps": heat, **targets}


def _concat_halves(first, second):
    return tf.nest.map_structure(lambda a, b: tf.concat([a, b], axis=0), first, second)


def _concat_prepared(first, second):
    """`_concat_halves` of two `padded_batch`es of `batch_augment.prepare_example`: their
    images zero-padded to the larger height and width first."""
    h1, w1 = tf.shape(first["image"])[1], tf.shape(first["image"])[2]
    h2, w2 = tf.shape(second["image"])[1], tf.shape(second["image"])[2]
    h, w = tf.maximum(h1, h2), tf.maximum(w1, w2)

    def pad(images, height, width):  # (B, height, width, 3) -> (B, h, w, 3)
        return tf.pad(images, [[0, 0], [0, h - height], [0, w - width], [0, 0]])

    first = {**first, "image": pad(first["image"], h1, w1)}
    second = {**second, "image": pad(second["image"], h2, w2)}
    return _concat_halves(first, second)


def _per_replica_batch(batch_size: int, input_context: tf.distribute.InputContext | None) -> int:
    """This replica's share of the GLOBAL `batch_size`; raises unless it is positive."""
    batch = batch_size
    if input_context is not None:
        batch = input_context.get_per_replica_batch_size(batch_size)
    if batch <= 0:
        raise ValueError(f"batch_size must be positive. Received: batch_size={batch_size}")
    return batch


def _options(deterministic: bool) -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = deterministic
    return options


# ----------------------------------------------------------------------------------------------
# Training and validation datasets.
# ----------------------------------------------------------------------------------------------
SPLITS = ("train", "validation")


def make_dataset(
    data: DataConfig,
    *,
    split: str,
    batch_size: int,
    samples: str = "mixed",
    seed: int = 0,
    input_context: tf.distribute.InputContext | None = None,
    deterministic: bool = True,
    cache: bool = False,
    on_missing_kind: str = "warn",
    probe_records: int = 1000,
    batched: bool | None = None,
    finish_in_step: bool = False,
) -> tf.data.Dataset:
    """The batched (inputs, targets) dataset of one split (module docstring).

    Files, input_size S, heatmap_size h, heatmap_sigma, mix_2d_3d (exactly half 2D-only and
    half 3D samples in every batch), augment and shuffle_buffer (records per stream, 0 disables
    shuffling) come from `data`.

    Args:
        data: the run's `config.DataConfig`.
        split: "train": `data.train_patterns()`, shuffled, augmented, repeated forever,
            drop_remainder. "validation": `data.val_patterns()` through
            `make_validation_dataset` (the arguments below other than batch_size and
            input_context do not apply).
        batch_size: GLOBAL batch; with `input_context` each replica gets its share.
        samples: "mixed" (every record), "3d_only" or "2d_only" (a stage that reads one kind,
            e.g. the paper's depth warm start on 3D samples only); a single kind turns off
            mixing.
        seed: seeds file order, shuffling and augmentation.
        input_context: from `strategy.distribute_datasets_from_function` (module docstring).
        deterministic: fixed element order, so a rerun with the same seed trains on the same
            batches (the default); False lets parallel stages hand out elements as they
            finish (a little faster, order varies from run to run).
        cache: cache the serialised records in memory after the first pass (small datasets).
        on_missing_kind: "warn" (fall back to the present kind) or "error", when mixing finds
            only one kind of record.
        probe_records: records always read to detect the kinds present (`count_kinds`).
        batched: split the augmentation into per-record and per-batch halves
            (`data.batch_augment`: the warp, colour and heatmaps run once per batch). The
            batches are the same bit for bit either way (tests/test_batched_augment.py).
            None (the default): batched with `data.augment.warp` "opencv" (the per-batch
            half is then the conversion to [0, 1] and the heatmaps, vectorised over the
            batch), per example with "tensorflow" (one warp op call per batch costs what the
            per-image calls cost; docs/benchmarks.md).
        finish_in_step: (train split) leave the per-batch half to the consumer: the elements
            are batches of `batch_augment.prepare_example`'s dicts, which `finish_batch`
            turns into the (inputs, targets) this function yields otherwise, the same values
            bit for bit on the CPU (another device's kernels may round differently). The
            trainer does so in its step, on the accelerator, with the OpenCV warp: uint8
            crops and 2D joints cross to the device instead of float32 images and heatmaps
            (5x fewer bytes at 256 px, 16 joints, 64 px heatmaps), and the input threads
            neither convert images nor draw heatmaps. Implies the batched form (`batched=False`
            is refused; with the TensorFlow warp the batches carry padded stored crops).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}. Received: split={split!r}")
    if finish_in_step and batched is False:
        raise ValueError("finish_in_step needs the batched form; got batched=False")
    if batched is None:
        batched = finish_in_step or data.augment.warp == "opencv"
    if split == "validation":
        return make_validation_dataset(
            list(data.val_patterns()),
            input_size=data.input_size,
            heatmap_size=data.heatmap_size,
            batch_size=batch_size,
            heatmap_sigma=data.heatmap_sigma,
            input_context=input_context,
        )
    file_patterns = list(data.train_patterns())
    input_size, heatmap_size, heatmap_sigma = data.input_size, data.heatmap_size, data.heatmap_sigma
    shuffle_buffer = data.shuffle_buffer
    if on_missing_kind not in ("warn", "error"):
        raise ValueError(f"on_missing_kind must be 'warn' or 'error'. Received: {on_missing_kind}")
    batch = _per_replica_batch(batch_size, input_context)
    files = list_files(file_patterns)

    if samples not in ("mixed", "3d_only", "2d_only"):
        raise ValueError(
            f"samples must be 'mixed', '3d_only' or '2d_only'. Received: samples={samples!r}"
        )
    kinds = [None]  # None: one stream with every record
    if samples != "mixed":
        kinds = [1 if samples == "3d_only" else 0]
        n2d, n3d = count_kinds(files, probe_records)
        if not (n3d if kinds[0] else n2d):
            # A filtered, repeated stream with nothing to pass would spin forever.
            raise ValueError(
                f"samples={samples!r}: the first {n2d + n3d} records of {file_patterns} hold "
                f"no {'3D' if kinds[0] else '2D-only'} samples"
            )
    elif data.mix_2d_3d:
        if batch % 2:
            raise ValueError(
                f"mix_2d_3d needs an even per-replica batch (half 2D, half 3D). Received: "
                f"batch_size={batch_size}, per-replica {batch}"
            )
        n2d, n3d = count_kinds(files, probe_records)
        if n2d and n3d:
            kinds = [0, 1]
        else:
            present = "3D" if n3d else "2D-only"
            message = (
                f"mix_2d_3d: the first {n2d + n3d} records of {len(files)} file(s) "
                f"({file_patterns}) hold only {present} samples; batches will be {present} only"
            )
            if on_missing_kind == "error" or not (n2d or n3d):
                raise ValueError(message if (n2d or n3d) else f"no records in {file_patterns}")
            logger.warning(message)

    records = _read_records(
        files,
        shuffle_files=True,
        seed=seed,
        input_context=input_context,
        deterministic=deterministic,
    )
    if cache:
        records = records.cache()

    def stream(kind: int | None, per_batch: int) -> tf.data.Dataset:
        ds = records
        if kind is not None:
            ds = records_of_kind(ds, kind)
        ds = ds.repeat()
        if shuffle_buffer > 0:
            ds = ds.shuffle(shuffle_buffer, seed=seed + 7919 * (0 if kind is None else kind + 1))
        salt = 0 if kind is None else kind + 1

        # No Python control flow on tensors in here; skipping autograph halves tracing time.
        @tf.autograph.experimental.do_not_convert
        def to_example(index, serialized):
            record = features.parse_example(serialized)
            elem_seed = tf.stack([tf.cast(seed * 3 + salt, tf.int64), index])
            if not batched:
                return build_example(
                    record,
                    input_size=input_size,
                    heatmap_size=heatmap_size,
                    heatmap_sigma=heatmap_sigma,
                    augment=data.augment,
                    seed=elem_seed,
                )
            return batch_augment.prepare_example(
                record,
                input_size=input_size,
                heatmap_size=heatmap_size,
                augment=data.augment,
                seed=elem_seed,
            )

        ds = ds.enumerate().map(
            to_example, num_parallel_calls=AUTOTUNE, deterministic=deterministic
        )
        if not batched or data.augment.warp == "opencv":  # every image S x S
            return ds.batch(per_batch, drop_remainder=True)
        # Zero padding only where stored crops differ in size (augment.warp_images).
        return ds.padded_batch(per_batch, drop_remainder=True)

    if len(kinds) == 1 and kinds[0] is not None:
        ds = stream(kinds[0], batch)
    elif kinds == [0, 1]:
        half = batch // 2
        # Stored crops of two sizes need padding before they meet; warped (OpenCV) ones not.
        padded = batched and data.augment.warp == "tensorflow"
        concat = _concat_prepared if padded else _concat_halves
        ds = tf.data.Dataset.zip((stream(0, half), stream(1, half))).map(
            concat, num_parallel_calls=AUTOTUNE, deterministic=deterministic
        )
    else:
        ds = stream(None, batch)
    if batched and not finish_in_step:
        finish = tf.autograph.experimental.do_not_convert(lambda batch: finish_batch(batch, data))
        ds = ds.map(finish, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    return ds.prefetch(AUTOTUNE).with_options(_options(deterministic))


def finish_batch(
    prepared: dict[str, tf.Tensor], data: DataConfig
) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    """(inputs, targets) of a batch of `make_dataset(..., finish_in_step=True)`: the per-batch
    half of the augmentation (`batch_augment.augment_batch`) with `data`'s sizes and
    augmentation. Runs on whatever device the caller places it (the trainer: each replica's)."""
    return batch_augment.augment_batch(
        prepared,
        input_size=data.input_size,
        heatmap_size=data.heatmap_size,
        heatmap_sigma=data.heatmap_sigma,
        augment=data.augment,
    )


def make_validation_dataset(
    file_patterns: str | Sequence[str],
    *,
    input_size: int,
    heatmap_size: int,
    batch_size: int,
    heatmap_sigma: float = 1.0,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Evaluation crops in file order: no augmentation, no mixing, one pass, last batch kept.

    Files are read in sorted order, each file front to back.
    """
    batch = _per_replica_batch(batch_size, input_context)
    files = list_files(file_patterns)
    ds = tf.data.TFRecordDataset(files)  # sequential: file order, record order
    if input_context is not None and input_context.num_input_pipelines > 1:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)

    @tf.autograph.experimental.do_not_convert
    def to_example(serialized):
        return build_example(
            features.parse_example(serialized),
            input_size=input_size,
            heatmap_size=heatmap_size,
            heatmap_sigma=heatmap_sigma,
        )

    ds = ds.map(to_example, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.batch(batch, drop_remainder=False).prefetch(AUTOTUNE)
    return ds.with_options(_options(True))
