"""Beam helpers: args, layout check, crop geometry, dead letters, deterministic shards."""

import json
import math
import os

import apache_beam as beam
import cv2
import numpy as np
import pytest
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.testing.util import assert_that, equal_to

from keras_pose3d.data import features
from pipelines import common


# ----------------------------------------------------------------------------------------------
# Arguments and layout.
# ----------------------------------------------------------------------------------------------
def test_parse_args_passes_unknown_flags_to_beam():
    def add(parser):
        parser.add_argument("--input_dir", required=True)

    args, options = common.parse_args(
        [
            "--input_dir",
            "/raw",
            "--output_dir",
            "/out",
            "--num_shards",
            "3",
            "--runner",
            "DirectRunner",
            "--direct_num_workers",
            "2",
            "--direct_running_mode",
            "multi_processing",
        ],
        add,
    )
    assert (args.input_dir, args.output_dir, args.num_shards, args.overwrite) == (
        "/raw",
        "/out",
        3,
        False,
    )
    assert options.view_as(StandardOptions).runner == "DirectRunner"
    assert options.view_as(DirectOptions).direct_num_workers == 2
    assert options.view_as(DirectOptions).direct_running_mode == "multi_processing"


def test_parse_args_rejects_zero_shards():
    with pytest.raises(SystemExit):
        common.parse_args(["--output_dir", "/out", "--num_shards", "0"])


def test_check_layout_names_every_missing_pattern(tmp_path):
    (tmp_path / "S1" / "Poses").mkdir(parents=True)
    (tmp_path / "S1" / "Poses" / "Walking.cdf").write_bytes(b"x")
    found = common.check_layout(tmp_path, ["S1/Poses/*.cdf"], "h36m")
    assert found == {"S1/Poses/*.cdf": [str(tmp_path / "S1" / "Poses" / "Walking.cdf")]}
    with pytest.raises(FileNotFoundError) as info:
        common.check_layout(tmp_path, ["S1/Poses/*.cdf", "S5/*.cdf", "metadata.xml"], "h36m")
    message = str(info.value)
    assert "h36m" in message and "'S5/*.cdf'" in message and "'metadata.xml'" in message
    assert "S1/Poses" not in message
    with pytest.raises(FileNotFoundError, match="does not exist"):
        common.check_layout(tmp_path / "nope", ["a"], "mpii")


# ----------------------------------------------------------------------------------------------
# Crop geometry.
# ----------------------------------------------------------------------------------------------
def _blob_image(h, w, x, y, sigma):
    yy, xx = np.mgrid[0:h, 0:w]
    g = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return np.repeat((g * 255).round().astype(np.uint8)[..., None], 3, axis=2)


def _centroid(img):
    g = img[..., 0].astype(np.float64)
    yy, xx = np.mgrid[0 : g.shape[0], 0 : g.shape[1]]
    return np.array([(g * xx).sum() / g.sum(), (g * yy).sum() / g.sum()])


@pytest.mark.parametrize("person_side, sigma", [(40 / 1.75, 2.0), (350 / 1.75, 12.0)])
def test_crop_person_moves_pixels_and_joints_together(person_side, sigma):
    # A blob at a sub-pixel joint position must land on the predicted crop pixel, both when
    # upsampling (s = 2) and when area-downsampling first (s = 64 / 350 < 1/2).
    h, w = 300, 400
    joint = np.array([[187.3, 143.6]])
    image = _blob_image(h, w, *joint[0], sigma)
    out = 80 if person_side < 100 else 64
    crop, joints_crop, _, box = common.crop_person(image, (180.0, 150.0), person_side, out, joint)
    side = features.PERSON_MARGIN * person_side
    s = out / side
    expected = s * (joint - [180 - side / 2, 150 - side / 2]) - 0.5
    np.testing.assert_allclose(joints_crop, expected, atol=1e-12)
    np.testing.assert_allclose(
        box, [180 - side / 2, 150 - side / 2, 180 + side / 2, 150 + side / 2]
    )
    assert crop.shape == (out, out, 3) and crop.dtype == np.uint8
    np.testing.assert_allclose(_centroid(crop), joints_crop[0], atol=0.08)


def test_crop_person_intrinsics_project_3d_to_crop_joints():
    rng = np.random.default_rng(0)
    k = np.array([1145.0, 1143.8, 512.5, 515.5])
    points = rng.normal(0, 400, size=(16, 3)) + [100, -50, 4500]
    uv = points[:, :2] / points[:, 2:] * k[:2] + k[2:]
    image = np.zeros((1002, 1000, 3), np.uint8)
    _, joints_crop, k_crop, _ = common.crop_person(image, (530.2, 480.7), 310.0, 256, uv, k)
    projected = points[:, :2] / points[:, 2:] * k_crop[:2] + k_crop[2:]
    np.testing.assert_allclose(projected, joints_crop, atol=1e-9)
    s = 256 / (1.75 * 310.0)
    np.testing.assert_allclose(k_crop[:2], s * k[:2])


def test_crop_person_pads_outside_with_zeros():
    image = np.full((50, 60, 3), 200, np.uint8)
    # Centre on the top-left corner: the top-left quarter of the crop is outside the image.
    crop, _, _, _ = common.crop_person(image, (0.0, 0.0), 40 / 1.75, 40, np.zeros((16, 2)))
    assert np.all(crop[:19, :19] == 0)
    assert np.all(crop[21:, 21:] == 200)


def test_crop_person_rejects_bad_input():
    with pytest.raises(ValueError, match="person_side_px"):
        common.crop_person(np.zeros((4, 4, 3), np.uint8), (2, 2), 0.0, 8, np.zeros((16, 2)))
    with pytest.raises(ValueError, match="uint8"):
        common.crop_person(np.zeros((4, 4), np.uint8), (2, 2), 1.0, 8, np.zeros((16, 2)))


# ----------------------------------------------------------------------------------------------
# Validation.
# ----------------------------------------------------------------------------------------------
def test_validate_joints_reasons():
    j2 = np.zeros((16, 2))
    j3 = np.tile([0.0, 0.0, 4000.0], (16, 1))
    assert common.validate_joints(j2, np.ones(16), j3, True) is None
    bad = j2.copy()
    bad[3, 1] = np.nan
    assert common.validate_joints(bad) == "joints_2d non-finite at visible joints [3]"
    vis = np.ones(16)
    vis[3] = 0  # an invisible joint may be NaN (MPII leaves them unannotated)
    assert common.validate_joints(bad, vis) is None
    assert common.validate_joints(j2, np.zeros(16)) == "no visible joint"
    far = j3.copy()
    far[5, 0] = 2e5
    assert "out of range" in common.validate_joints(j2, None, far, True)
    behind = j3.copy()
    behind[7, 2] = -10
    assert common.validate_joints(j2, None, behind, True).endswith("joints [7]")
    assert "shape (15, 2)" in common.validate_joints(np.zeros((15, 2)))
    outside = j2.copy()
    outside[9] = [130.0, 10.0]
    assert "joints [9]" in common.validate_joints(outside, None, None, False, (100, 100), 20)
    assert common.validate_joints(outside, None, None, False, (100, 100), 40) is None


# ----------------------------------------------------------------------------------------------
# Beam: encode, dead letters, deterministic shards, manifest.
# ----------------------------------------------------------------------------------------------
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
    with beam.Pipeline(runner=common.local_runner(options), options=options) as p:
        records = p | beam.Create(items, reshuffle=False)
        letters = None
        if extra_letters is not None:
            letters = p | "Letters" >> beam.Create(extra_letters)
        common.write_outputs(
            records,
            letters,
            str(out),
            num_shards,
            ("train", "validation"),
            {"test": 1},
            max_dead_letter_fraction=max_fraction,
            **kwargs,
        )
    return common.verify_output(str(out), require_complete=False)


def _read(path):
    import tensorflow as tf

    return [r.numpy() for r in tf.data.TFRecordDataset(path)]


# A job's own dead letters: a failure and the documented exclusions of the real-data jobs.
JOB_LETTERS = [
    {"id": "x", "stage": "read", "reason": "r"},
    {"id": "S9/Greeting.54138969", "stage": "excluded", "reason": "shifted 3D"},
    {"id": "S9/Greeting.55011271", "stage": "excluded", "reason": "shifted 3D"},
    {"id": "S5/Photo.58860488", "stage": "frame_count", "reason": "7 vs 5"},
    {"id": "TS1", "stage": "invalid_frames", "reason": "2 of 6"},
    {"id": "test_set", "stage": "test_persons", "reason": "no joints"},
]


def test_dead_letter_stage_counts():
    letters = JOB_LETTERS + [{"id": "y", "stage": "read"}, {"id": "z", "reason": "no stage"}]
    counts = common.dead_letter_stage_counts(letters)
    assert counts == {
        "excluded": 2,
        "frame_count": 1,
        "invalid_frames": 1,
        "read": 2,
        "test_persons": 1,
        "unknown": 1,
    }
    assert list(counts) == sorted(counts)
    assert common.dead_letter_stage_counts([]) == {}


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
    assert common.dead_letter_stage_counts(letters) == manifest["dead_letter_by_stage"]
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
        common.verify_output(str(tmp_path))


@pytest.mark.parametrize(
    "stale",
    [
        ["train-00000-of-00001.tfrecord"],
        # Partial files of a killed run (a shard's temporary, the manifest's).
        ["train-00000-of-00002.tfrecord.tmp-0123abcd", "manifest.json.tmp"],
    ],
)
def test_prepare_output_dir_refuses_stale_files(tmp_path, stale):
    for name in stale:
        (tmp_path / name).write_bytes(b"half")
    (tmp_path / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match=f"{len(stale)} output file.*--overwrite"):
        common.prepare_output_dir(str(tmp_path), overwrite=False)
    common.prepare_output_dir(str(tmp_path), overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_failed_shard_write_leaves_no_partial_file(tmp_path):
    good = features.encode_example(_record(0, "S1"))
    items = [("S1\x00000000000000", good), ("S1\x00000000000001", b"not an Example")]
    with pytest.raises(Exception, match="Error parsing message|DecodeError"):
        common.write_shard_file(str(tmp_path), "train", 0, 1, items)
    assert os.listdir(tmp_path) == []  # neither the shard nor its temporary


def test_check_points_3d_names_the_field_and_the_joints():
    good = np.full((16, 3), 100.0)
    assert common.check_points_3d(good, "joints_3d_univ") is None
    bad = good.copy()
    bad[[3, 9], 1] = np.nan
    assert common.check_points_3d(bad, "joints_3d_univ") == (
        "joints_3d_univ non-finite at joints [3, 9]"
    )
    far = good.copy()
    far[0, 0] = 2 * common.MAX_ABS_MM
    assert common.check_points_3d(far, "x").startswith("x out of range")
    assert common.check_points_3d(np.zeros((17, 3)), "x") == "x has shape (17, 3), expected (16, 3)"


# ----------------------------------------------------------------------------------------------
# Trust: the dead-letter fraction, nothing written.
# ----------------------------------------------------------------------------------------------
def test_quality_problems_count_failures_not_exclusions():
    # 2 failures (read, validate) and 5 exclusions beside 9 records: 2 / 11 items failed.
    by_stage = common.dead_letter_stage_counts(JOB_LETTERS + [{"id": "b", "stage": "validate"}])
    assert common.dead_letter_failures(by_stage) == 2
    assert common.quality_problems(9, by_stage, 0.19) == []
    (problem,) = common.quality_problems(9, by_stage, 0.18)
    assert problem.startswith("2 of 11 items failed (18.2% > --max_dead_letter_fraction 18.0%")
    assert "{'read': 1, 'validate': 1}" in problem
    # Exclusions alone never fail a job, however many.
    assert common.quality_problems(1, {"excluded": 500, "frame_count": 40}, 0.0) == []
    assert common.quality_problems(0, {}, 1.0) == ["no record was written"]


def test_dead_letters_weigh_the_records_they_stand_for():
    assert common.records_for(10, 5) == 2  # frames 0, 5
    assert common.records_for(11, 5) == 3  # frames 0, 5, 10
    assert common.records_for(1, 5) == 1
    assert common.records_for(None, 5) == 1 and common.records_for(-1) == 1  # unknown: one
    # A letter's "records" is stored only when it is not 1 (frame and person letters).
    assert common.dead_letter_payload("S1/seq", "video", "truncated", 40) == {
        "id": "S1/seq",
        "stage": "video",
        "reason": "truncated",
        "records": 40,
    }
    assert "records" not in common.dead_letter_payload("S1/seq/000001", "validate", "NaN")
    letters = [
        common.dead_letter_payload("S1/a", "video", "truncated", 40),
        common.dead_letter_payload("S1/b/000003", "validate", "NaN"),
        common.dead_letter_payload("S9/c", "excluded", "known defect", 300),
    ]
    assert common.dead_letter_stage_counts(letters) == {"excluded": 1, "validate": 1, "video": 1}
    by_records = common.dead_letter_records(letters)
    assert by_records == {"excluded": 300, "validate": 1, "video": 40}
    # One lost 40-frame video beside 100 written records: 41 of 141 failed (29 %), although
    # it is only 2 failed letters of 102 (2 %).
    (problem,) = common.quality_problems(100, by_records, 0.05)
    assert problem.startswith("41 of 141 items failed (29.1% > --max_dead_letter_fraction 5.0%")
    assert "{'validate': 1, 'video': 40}" in problem


@pytest.mark.beam
def test_too_many_dead_letters_mark_the_manifest_incomplete(tmp_path):
    # 9 records, failures: the job's "read" letter and the encoder's "validate" one (2 / 11).
    manifest = _run(_items(), tmp_path / "a", extra_letters=JOB_LETTERS, max_fraction=0.1)
    assert manifest["complete"] is False and manifest["dead_letter_failures"] == 2
    stages = "{'read': 1, 'validate': 1}"
    assert manifest["problems"] == [
        f"2 of 11 items failed (18.2% > --max_dead_letter_fraction 10.0%; by stage {stages})"
    ]
    assert not common.manifest_is_complete(str(tmp_path / "a"))
    with pytest.raises(RuntimeError, match="no complete manifest"):
        common.verify_output(str(tmp_path / "a"))
    ok = _run(_items(), tmp_path / "b", extra_letters=JOB_LETTERS, max_fraction=0.2)
    assert ok["complete"] is True and ok["problems"] == []


# ----------------------------------------------------------------------------------------------
# Shard counts from the data.
# ----------------------------------------------------------------------------------------------
def test_shards_for_bytes_hand_values():
    plan = common.shards_for_bytes(
        {"train": 1000, "validation": 1}, ("train", "validation", "test"), 300
    )
    assert plan == {"train": 4, "validation": 1, "test": 1}  # ceil(1000 / 300) = 4; empty -> 1
    assert common.shards_for_bytes({"train": 900}, ("train",), 300) == {"train": 3}
    with pytest.raises(ValueError, match="target_shard_bytes"):
        common.shards_for_bytes({}, ("train",), 0)


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
    big = common.write_shard_file(str(tmp_path / "a"), "train", 0, 1, items, 1 << 30)
    small = common.write_shard_file(str(tmp_path / "b"), "train", 0, 1, items, 2000)
    assert big == small and big["num_examples"] == 40
    name = common.shard_name("train", 0, 1)
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    frames = [features.decode_record(b)["frame"] for b in _read(tmp_path / "a" / name)]
    assert frames == sorted(frames) and len(set(frames)) == 40
    assert sorted(os.listdir(tmp_path / "b")) == [name]  # no temporary file left behind


# ----------------------------------------------------------------------------------------------
# The local runner is pinned: Beam's DirectRunner would try to download Prism first.
# ----------------------------------------------------------------------------------------------
class _PrismStarted(Exception):
    pass


def _forbid_prism(monkeypatch):
    from apache_beam.runners.portability import prism_runner

    started = []

    def refuse(self, *args, **kwargs):
        started.append(True)
        raise _PrismStarted("the PrismRunner was created (it downloads its binary)")

    monkeypatch.setattr(prism_runner.PrismRunner, "__init__", refuse)
    return started


@pytest.mark.beam
@pytest.mark.parametrize("runner_flags", [[], ["--runner", "DirectRunner"]])
def test_jobs_never_start_prism(tmp_path, monkeypatch, runner_flags):
    from pipelines import synthetic_to_tfrecord

    started = _forbid_prism(monkeypatch)
    argv = [
        f"--output_dir={tmp_path / 'out'}",
        "--num_subjects=3",
        "--sequences_per_subject=1",
        "--frames_per_sequence=1",
        "--crop_size=16",
        "--num_shards=1",
        *runner_flags,
    ]
    assert synthetic_to_tfrecord.run(argv)["num_examples"] == 3
    assert started == []
    # Control: Beam's own DirectRunner does try to start Prism on the same kind of pipeline.
    with pytest.raises(_PrismStarted), beam.Pipeline() as p:
        _ = p | beam.Create([1, 2]) | beam.Map(lambda x: x)
    assert started == [True]


def test_local_runner_only_replaces_the_direct_runner():
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    # Every spelling Beam's create_runner resolves to the DirectRunner is pinned.
    direct = [
        [],
        ["--runner=DirectRunner"],
        ["--runner=direct"],
        ["--runner=directrunner"],
        ["--runner=apache_beam.runners.direct.direct_runner.DirectRunner"],
        ["--runner=SwitchingDirectRunner"],
    ]
    for flags in direct:
        assert isinstance(common.local_runner(PipelineOptions(flags)), fn_runner.FnApiRunner)
    for name in (
        "PortableRunner",
        "PrismRunner",
        "prism",
        "DataflowRunner",
        "FlinkRunner",
        "BundleBasedDirectRunner",  # never tries Prism: Beam builds it
    ):
        assert common.local_runner(PipelineOptions([f"--runner={name}"])) is None


@pytest.mark.beam
@pytest.mark.parametrize(
    "mode, environment",
    [
        ("multi_threading", "EmbeddedPythonGrpcEnvironment"),
        ("in_memory", "EmbeddedPythonEnvironment"),
    ],
)
def test_local_runner_honours_the_direct_runner_flags(mode, environment):
    # The pinned runner reads --direct_num_workers / --direct_running_mode as the
    # DirectRunner's FnApiRunner does (not just: it runs).
    options = PipelineOptions(["--direct_num_workers=3", f"--direct_running_mode={mode}"])
    runner = common.local_runner(options)
    with beam.Pipeline(runner=runner, options=options) as p:
        got = p | beam.Create([1, 2, 3]) | beam.Map(lambda x: 2 * x)
        assert_that(got, equal_to([2, 4, 6]))
    assert runner._num_workers == 3
    assert type(runner._default_environment).__name__ == environment
