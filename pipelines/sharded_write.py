"""A job's output, written deterministically: records validated and encoded, sharded TFRecords,
the dead-letter file and, last, `manifest.json` (its keys: `keras_pose3d.data.manifest`).

Shard = hash of a stable sort key, records sorted by that key within a shard (a bounded-memory
external sort, `pipelines.shard_sort`), shard count from `--num_shards` or from the split's
bytes (`--target_shard_mb`), so a rerun (any runner, any worker count) writes byte-identical
files: `<output_dir>/<split>-00000-of-0000N.tfrecord`.
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import apache_beam as beam
import tensorflow as tf

from keras_pose3d.data import features
from keras_pose3d.data.manifest import MANIFEST_NAME
from pipelines import shard_sort
from pipelines.counters import counter
from pipelines.dead_letters import (
    DEAD_LETTER_FILE,
    DEAD_LETTER_TAG,
    DEFAULT_MAX_DEAD_LETTER_FRACTION,
    dead_letter,
    dead_letter_failures,
    quality_problems,
    write_dead_letters,
)
from pipelines.pose_checks import validate_joints

# A shard is written as `<shard>.tmp-<uuid>` and renamed into place.
TMP_INFIX = ".tmp-"
# Without --num_shards a split gets ceil(bytes / this) shards: big enough for efficient reads,
# small enough for one worker to write (and for tf.data to spread over readers).
DEFAULT_TARGET_SHARD_MB = 256


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
        "dead_letter_file": DEAD_LETTER_FILE,
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

    Its keys are `keras_pose3d.data.manifest`'s. Counts come from the shard writers
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
