"""pipelines.sharded_write: encode, dead letters, deterministic shards, the manifest; the
output read back and verified (`running.verify_output`)."""

import json
import math
import os

import apache_beam as beam
import cv2
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from keras_pose3d.data import features
from keras_pose3d.data.manifest import manifest_is_complete
from pipelines import dead_letters, running, sharded_write
from tests.test_dead_letters import JOB_LETTERS


def _record(i: int, subject: str, has_3d: bool = True) -> dict:
    rng = np.random.default_rng(i)
    ok, jpeg = cv2.imencode(".jpg", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    assert ok
    return {
        "image_jpeg": jpeg.tobytes(),
        "joints_2d": rng.uniform(0, 8, (16, 2)),
        "visibility": np.ones(16),
        "joints_3d": rng.normal(0, 300, (16, 3)) + [0, 0, 4000] if has_3d else None,
        "has_3d": has_3d,
        "intrinsics": [10.0, 10.0, 3.5, 3.5],
        "distortion": None,
        "box": [0.0, 0.0, 8.0, 8.0],
        "dataset": "unit",
        "subject": subject,
        "sequence": f"{subject}_seq",
        "action": "walk" if i % 2 else "sit",
        "camera": "c0",
        "frame": i,
        "orig_size": (8, 8),
    }


def _items(reverse=False):
    items = [("train", f"S1/{i}", _record(i, "S1")) for i in range(6)]
    items += [("validation", f"S2/{i}", _record(10 + i, "S2", has_3d=i != 0)) for i in range(3)]
    # One record carries universal 3D (the optional joints_3d_univ key).
    items[-1][2]["joints_3d_univ"] = items[-1][2]["joints_3d"] * 0.9
    items[-1][2]["has_3d_univ"] = True
    bad = _record(99, "S1")
    bad["joints_2d"][4, 0] = np.nan
    items.append(("train", "S1/bad", bad))
    return items[::-1] if reverse else items


def _run(items, out, num_shards=2, extra_letters=None, max_fraction=1.0, **kwargs):
    os.makedirs(out, exist_ok=True)
    options = PipelineOptions([])
    with beam.Pipeline(runner=running.local_runner(options), options=options) as p:
        records = p | beam.Create(items, reshuffle=False)
        letters = None
        if extra_letters is not None:
            letters = p | "Letters" >> beam.Create(extra_letters)
        sharded_write.write_outputs(
            records,
            letters,
            str(out),
            num_shards,
            ("train", "validation"),
            {"test": 1},
            max_dead_letter_fraction=max_fraction,
            **kwargs,
        )
    return running.verify_output(str(out), require_complete=False)


def _read(path):
    import tensorflow as tf

    return [r.numpy() for r in tf.data.TFRecordDataset(path)]


@pytest.mark.beam
def test_write_outputs_dead_letter_manifest_and_determinism(tmp_path):
    manifest = _run(_items(), tmp_path / "a", extra_letters=JOB_LETTERS)
    train = manifest["splits"]["train"]
    assert manifest["complete"] and manifest["schema_version"] == features.SCHEMA_VERSION
    assert manifest["num_examples"] == 9 and train["num_examples"] == 6
    assert train["files"] == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    assert train["subjects"] == {"S1": 6} and train["actions"] == {"sit": 3, "walk": 3}
    assert manifest["splits"]["validation"]["has_3d"] == 2
    assert manifest["splits"]["validation"]["has_3d_univ"] == 1
    assert manifest["splits"]["train"]["has_3d_univ"] == 0
    assert manifest["dead_letter_count"] == 7 and manifest["job_args"] == {"test": 1}
    # Per stage: the encoder's "validate" letter beside the job's own stages.
    assert manifest["dead_letter_by_stage"] == {
        "excluded": 2,
        "frame_count": 1,
        "invalid_frames": 1,
        "read": 1,
        "test_persons": 1,
        "validate": 1,
    }

    # The NaN record is in the dead letter with its reason; the job's own letters too.
    with open(tmp_path / "a" / manifest["dead_letter_file"]) as f:
        letters = [json.loads(line) for line in f]
    assert sorted((d["id"], d["stage"]) for d in letters) == sorted(
        [("S1/bad", "validate")] + [(d["id"], d["stage"]) for d in JOB_LETTERS]
    )
    assert dead_letters.dead_letter_stage_counts(letters) == manifest["dead_letter_by_stage"]
    bad = next(d for d in letters if d["id"] == "S1/bad")
    assert bad["reason"] == "joints_2d non-finite at visible joints [4]"
    assert bad["split"] == "train"

    # Every good record is in its split's shards, unchanged, and shards are sorted by frame.
    by_frame = {}
    for split, entry in manifest["splits"].items():
        for name, size in zip(entry["files"], entry["shard_sizes"]):
            records = [features.decode_record(b) for b in _read(tmp_path / "a" / name)]
            assert len(records) == size
            assert [r["frame"] for r in records] == sorted(r["frame"] for r in records)
            for r in records:
                by_frame[(split, r["subject"], r["frame"])] = r
    assert len(by_frame) == 9
    for split, item_id, record in _items():
        if item_id == "S1/bad":
            continue
        got = by_frame[(split, record["subject"], record["frame"])]
        np.testing.assert_array_equal(got["joints_2d"], np.float32(record["joints_2d"]))
        assert got["image_jpeg"] == record["image_jpeg"]
        assert got["has_3d_univ"] == bool(record.get("has_3d_univ", False))
        if got["has_3d_univ"]:
            np.testing.assert_array_equal(
                got["joints_3d_univ"], np.float32(record["joints_3d_univ"])
            )

    # Rerun with the input reversed: byte-identical shards.
    _run(_items(reverse=True), tmp_path / "b", extra_letters=JOB_LETTERS[::-1])
    for split, entry in manifest["splits"].items():
        for name in entry["files"] + [manifest["dead_letter_file"]]:
            a = (tmp_path / "a" / name).read_bytes()
            assert a == (tmp_path / "b" / name).read_bytes(), name


@pytest.mark.beam
def test_empty_shards_are_written_and_verify_catches_loss(tmp_path):
    items = [("train", "S1/0", _record(0, "S1"))]
    manifest = _run(items, tmp_path, num_shards=3)
    sizes = manifest["splits"]["train"]["shard_sizes"]
    assert sorted(sizes) == [0, 0, 1]
    assert manifest["splits"]["validation"]["shard_sizes"] == [0, 0, 0]
    for name in manifest["splits"]["validation"]["files"]:
        assert (tmp_path / name).exists()
    # No dead letter: the file is there, empty, and the manifest says 0.
    assert (tmp_path / manifest["dead_letter_file"]).read_text() == ""
    assert manifest["dead_letter_count"] == 0 and manifest["dead_letter_by_stage"] == {}
    # A shard that lost its record no longer verifies.
    full = manifest["splits"]["train"]["files"][sizes.index(1)]
    (tmp_path / full).write_bytes(b"")
    with pytest.raises(RuntimeError, match="0 records on disk, manifest says 1"):
        running.verify_output(str(tmp_path))


def test_failed_shard_write_leaves_no_partial_file(tmp_path):
    good = features.encode_example(_record(0, "S1"))
    items = [("S1\x00000000000000", good), ("S1\x00000000000001", b"not an Example")]
    with pytest.raises(Exception, match="Error parsing message|DecodeError"):
        sharded_write.write_shard_file(str(tmp_path), "train", 0, 1, items)
    assert os.listdir(tmp_path) == []  # neither the shard nor its temporary


@pytest.mark.beam
def test_too_many_dead_letters_mark_the_manifest_incomplete(tmp_path):
    # 9 records, failures: the job's "read" letter and the encoder's "validate" one (2 / 11).
    manifest = _run(_items(), tmp_path / "a", extra_letters=JOB_LETTERS, max_fraction=0.1)
    assert manifest["complete"] is False and manifest["dead_letter_failures"] == 2
    stages = "{'read': 1, 'validate': 1}"
    assert manifest["problems"] == [
        f"2 of 11 items failed (18.2% > --max_dead_letter_fraction 10.0%; by stage {stages})"
    ]
    assert not manifest_is_complete(str(tmp_path / "a"))
    with pytest.raises(RuntimeError, match="no complete manifest"):
        running.verify_output(str(tmp_path / "a"))
    ok = _run(_items(), tmp_path / "b", extra_letters=JOB_LETTERS, max_fraction=0.2)
    assert ok["complete"] is True and ok["problems"] == []


def test_shards_for_bytes_hand_values():
    plan = sharded_write.shards_for_bytes(
        {"train": 1000, "validation": 1}, ("train", "validation", "test"), 300
    )
    assert plan == {"train": 4, "validation": 1, "test": 1}  # ceil(1000 / 300) = 4; empty -> 1
    assert sharded_write.shards_for_bytes({"train": 900}, ("train",), 300) == {"train": 3}
    with pytest.raises(ValueError, match="target_shard_bytes"):
        sharded_write.shards_for_bytes({}, ("train",), 0)


@pytest.mark.beam
def test_shard_count_follows_the_data_when_not_given(tmp_path):
    good = [(s, i, r) for s, i, r in _items() if i != "S1/bad"]
    train_bytes = sum(len(features.encode_example(r)) for s, _, r in good if s == "train")
    val_bytes = sum(len(features.encode_example(r)) for s, _, r in good if s == "validation")
    # Aim at a third of the train split: 3 train shards (validation records carry 3D: 2).
    target = train_bytes / 3 + 1
    manifest = _run(_items(), tmp_path / "a", num_shards=None, target_shard_bytes=target)
    assert manifest["splits"]["train"]["num_shards"] == 3
    assert manifest["splits"]["validation"]["num_shards"] == math.ceil(val_bytes / target) == 2
    assert manifest["splits"]["train"]["files"][-1] == "train-00002-of-00003.tfrecord"
    assert manifest["num_examples"] == 9
    # The same data gives the same plan and the same bytes.
    again = _run(_items(reverse=True), tmp_path / "b", num_shards=None, target_shard_bytes=target)
    assert again["splits"] == manifest["splits"]
    for name in manifest["splits"]["train"]["files"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_write_shard_file_bytes_do_not_depend_on_the_sort_buffer(tmp_path):
    rng = np.random.default_rng(0)
    items = []
    for i in rng.permutation(40):
        record = _record(int(i), "S1")
        serialized = features.encode_example(record)
        items.append((f"S1\x00{int(i):012d}", serialized))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    big = sharded_write.write_shard_file(str(tmp_path / "a"), "train", 0, 1, items, 1 << 30)
    small = sharded_write.write_shard_file(str(tmp_path / "b"), "train", 0, 1, items, 2000)
    assert big == small and big["num_examples"] == 40
    name = sharded_write.shard_name("train", 0, 1)
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    frames = [features.decode_record(b)["frame"] for b in _read(tmp_path / "a" / name)]
    assert frames == sorted(frames) and len(set(frames)) == 40
    assert sorted(os.listdir(tmp_path / "b")) == [name]  # no temporary file left behind
