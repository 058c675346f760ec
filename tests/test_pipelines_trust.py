"""Issue 14: data you can trust. Truncated images and videos are dead letters, never records;
a job with too many failures or nothing written exits non-zero with an incomplete manifest;
dataset-derived names that leave the input root are refused."""

from __future__ import annotations

import json
import os
import shutil

import cv2
import pytest

from keras_pose3d.data import features
from keras_pose3d.data.manifest import manifest_is_complete, read_manifest
from pipelines import (
    arguments,
    dead_letters,
    h36m_to_tfrecord,
    mpi_inf_3dhp_to_tfrecord,
    mpii_to_tfrecord,
)
from tests import fixtures_raw as fr

pytestmark = pytest.mark.beam


def _letters(out_dir):
    with open(os.path.join(out_dir, "dead_letter-00000-of-00001.jsonl")) as f:
        return {(d["id"], d["stage"]): d for d in map(json.loads, f)}


def _sequences(out_dir, manifest):
    import tensorflow as tf

    names = [n for e in manifest["splits"].values() for n in e["files"]]
    paths = [os.path.join(out_dir, n) for n in names]
    return [features.decode_record(r.numpy())["sequence"] for r in tf.data.TFRecordDataset(paths)]


def _truncate(path, fraction=0.4, drop_bytes=0):
    """Keeps the first `fraction` of the file, or all but its last `drop_bytes`."""
    data = path.read_bytes()
    path.write_bytes(
        data[: len(data) - drop_bytes] if drop_bytes else data[: int(len(data) * fraction)]
    )


def _mpii_argv(root, out, *extra):
    return [
        "--input_dir",
        str(root),
        *fr.job_flags(out),
        *extra,
    ]


def _mpii(root, out, *extra):
    return mpii_to_tfrecord.run(_mpii_argv(root, out, *extra))


# ----------------------------------------------------------------------------------------------
# Truncated images and videos.
# ----------------------------------------------------------------------------------------------
def test_mpii_truncated_jpeg_is_dead_lettered_not_written(tmp_path):
    fr.write_mpii_fixture(tmp_path / "mpii")
    image = tmp_path / "mpii" / "images" / "000000002.jpg"
    _truncate(image, 0.4)
    # The former reader (cv2.imread) accepts it: the missing rows come back grey.
    assert cv2.imread(str(image), cv2.IMREAD_COLOR) is not None
    manifest = _mpii(tmp_path / "mpii", tmp_path / "out")
    letter = _letters(tmp_path / "out")[("000000002.jpg/0", "image")]
    assert letter["reason"] == f"truncated JPEG (no end-of-image marker 0xFFD9 at the end): {image}"
    sequences = _sequences(tmp_path / "out", manifest)
    assert sorted(sequences) == ["000000001.jpg/0", "000000001.jpg/1"]  # image 2 is gone
    assert manifest["dead_letter_by_stage"]["image"] == 2  # with the corrupt 000000004.jpg


def test_3dhp_truncated_test_jpeg_is_dead_lettered_not_written(tmp_path):
    exp = fr.write_3dhp_test_fixture(tmp_path, size=48)
    image = tmp_path / "TS1" / "imageSequence" / "img_000002.jpg"  # frame 1 (1-based names)
    # The fixture's flat 48 px JPEG is mostly header: cut into its scan data.
    _truncate(image, drop_bytes=20)
    assert cv2.imread(str(image), cv2.IMREAD_COLOR) is not None
    calib = str(tmp_path / "test_util" / "camera_calibration" / "ts1-4cameras.calib")
    dofn = mpi_inf_3dhp_to_tfrecord.TestFramesToRecords(str(tmp_path), 32)
    out = list(dofn.process({"seq": "TS1", "frames": [0, 1, 4], "calib": calib}))
    records = [o for o in out if isinstance(o, tuple)]
    letters = [o.value for o in out if not isinstance(o, tuple)]
    assert [r[1] for r in records] == ["TS1/000000", "TS1/000004"]
    assert [(d["id"], d["stage"], d["split"]) for d in letters] == [("TS1/000001", "image", "test")]
    assert letters[0]["reason"].startswith("truncated JPEG") and str(image) in letters[0]["reason"]
    assert exp["size"] == 48


def test_3dhp_truncated_training_video_writes_none_of_its_frames(tmp_path):
    fr.write_3dhp_train_fixture(tmp_path, size=48)
    video = tmp_path / "S1" / "Seq1" / "imageSequence" / "video_0.avi"
    # Cut late enough that the file still opens and plays its first frames.
    _truncate(video, 0.9)
    dofn = mpi_inf_3dhp_to_tfrecord.TrainSequenceToRecords(str(tmp_path), 1, 32)
    (out,) = list(dofn.process({"subject": "S1", "seq": "Seq1", "camera": 0}))
    assert out.tag == dead_letters.DEAD_LETTER_TAG
    assert (out.value["id"], out.value["stage"]) == ("S1/Seq1/video_0", "video")
    assert "truncated video: the stream ends after" in out.value["reason"]
    assert "announces 5" in out.value["reason"]
    # The letter stands for every annotated frame it lost (the fixture's 6 annotation rows
    # at stride 1), not for one.
    assert out.value["records"] == 6
    # The intact camera 1 video still gives its records (frame 2 has a NaN joint).
    dofn = mpi_inf_3dhp_to_tfrecord.TrainSequenceToRecords(str(tmp_path), 2, 32)
    ids = [
        o[1]
        for o in dofn.process({"subject": "S1", "seq": "Seq1", "camera": 1})
        if isinstance(o, tuple)
    ]
    assert ids == ["S1/Seq1/video_1/000000", "S1/Seq1/video_1/000004"]


def test_h36m_truncated_video_is_a_video_dead_letter(tmp_path):
    fr.write_h36m_fixture(tmp_path / "raw")
    video = tmp_path / "raw" / "S1" / "Videos" / "TakingPhoto 1.54138969.mp4"
    _truncate(video, 0.9)
    manifest = h36m_to_tfrecord.run(
        [
            "--input_dir",
            str(tmp_path / "raw"),
            "--subjects",
            "S1",
            "--sequences",
            "S1/TakingPhoto 1",
            "--cameras",
            "54138969,55011271",
            "--stride",
            "2",
            *fr.job_flags(tmp_path / "out"),
        ]
    )
    letters = _letters(tmp_path / "out")
    assert set(letters) == {("S1/TakingPhoto 1.54138969", "video")}
    assert manifest["splits"]["train"]["num_examples"] == 3  # camera 55011271: frames 0 2 4
    assert manifest["splits"]["train"]["subjects"] == {"S1": 3}
    # The lost video weighs its 3 records (frames 0 2 4 at stride 2), not one letter: 3 of 6
    # records failed. Counted as letters (1 of 4, 25 %) a 30 % limit would have passed it.
    assert letters[("S1/TakingPhoto 1.54138969", "video")]["records"] == 3
    assert manifest["dead_letter_by_stage"] == {"video": 1}
    assert manifest["dead_letter_records_by_stage"] == {"video": 3}
    assert manifest["failed_records"] == 3 and manifest["complete"] is True
    assert dead_letters.quality_problems(3, manifest["dead_letter_records_by_stage"], 0.3) == [
        "3 of 6 items failed (50.0% > --max_dead_letter_fraction 30.0%; by stage {'video': 3})"
    ]


# ----------------------------------------------------------------------------------------------
# Failing jobs.
# ----------------------------------------------------------------------------------------------
def test_job_with_every_image_missing_exits_non_zero(tmp_path, capsys):
    fr.write_mpii_fixture(tmp_path / "mpii")
    for image in (tmp_path / "mpii" / "images").iterdir():
        image.unlink()
    out = tmp_path / "out"
    code = mpii_to_tfrecord.main(_mpii_argv(tmp_path / "mpii", out))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: mpii: no record was written.")
    assert "marked incomplete" in err and "dead_letter-00000-of-00001.jsonl" in err
    manifest = read_manifest(str(out))
    assert manifest["complete"] is False and manifest["problems"] == ["no record was written"]
    assert manifest["num_examples"] == 0 and not manifest_is_complete(str(out))
    stages = {stage for _, stage in _letters(out)}
    assert stages == {"image", "min_joints", "test_persons"}  # every image: missing


def test_default_dead_letter_fraction_fails_a_mostly_broken_job(tmp_path, capsys):
    # The MPII fixture: 3 records; failures: the corrupt image and the far-off joint (2 / 5).
    fr.write_mpii_fixture(tmp_path / "mpii")
    argv = ["--input_dir", str(tmp_path / "mpii"), "--crop_size", "32", "--num_shards", "1"]
    assert mpii_to_tfrecord.main([*argv, "--output_dir", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "2 of 5 items failed (40.0% > --max_dead_letter_fraction 5.0%" in err
    assert "{'image': 1, 'validate': 1}" in err  # min_joints and test_persons do not count
    assert read_manifest(str(tmp_path / "a"))["complete"] is False
    # Allowing 40 % passes.
    flags = ["--max_dead_letter_fraction", "0.4", "--output_dir", str(tmp_path / "b")]
    assert mpii_to_tfrecord.main([*argv, *flags]) == 0
    assert manifest_is_complete(str(tmp_path / "b"))


# ----------------------------------------------------------------------------------------------
# Names that leave the input root.
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["parent", "absolute"])
def test_mpii_image_name_leaving_the_root_is_refused(tmp_path, kind):
    root = tmp_path / "mpii"
    outside = root / "000000002.jpg"  # a readable image above images/
    name = "../000000002.jpg" if kind == "parent" else str(outside)
    fr.write_mpii_fixture(root, names_in_mat={"000000002.jpg": name})
    shutil.copyfile(root / "images" / "000000002.jpg", outside)
    manifest = _mpii(root, tmp_path / "out")
    letter = _letters(tmp_path / "out")[(f"{name}/0", "path")]
    reason = "leaves the input root" if kind == "parent" else "is absolute"
    assert reason in letter["reason"] and letter["split"] == "train"
    assert all(not s.startswith(name) for s in _sequences(tmp_path / "out", manifest))
    assert manifest["num_examples"] == 2 and manifest["dead_letter_by_stage"]["path"] == 1


@pytest.mark.parametrize(
    "name, reason",
    [
        ("../../TakingPhoto 1", "leaves the input root"),
        # os.path.join would drop the root for an absolute name: /etc/TakingPhoto 1.<cam>.cdf.
        ("/etc/TakingPhoto 1", "is absolute"),
        # Another folder of the release.
        ("Videos/TakingPhoto 1", "holds a path separator"),
        ("sub\\TakingPhoto 1", "holds a path separator"),
    ],
)
def test_h36m_sequence_name_leaving_the_root_is_refused(tmp_path, name, reason):
    fr.write_h36m_fixture(tmp_path, use_real_metadata=False)
    meta = tmp_path / "metadata.xml"
    # S1's column of the TakingPhoto row (the first cell after action and sub-action).
    row = "<td>12</td><td>1</td><td>TakingPhoto 1</td>"
    text = meta.read_text()
    assert text.count(row) == 1
    meta.write_text(text.replace(row, f"<td>12</td><td>1</td><td>{name}</td>"))
    args, _ = arguments.parse_args(
        [
            "--input_dir",
            str(tmp_path),
            "--output_dir",
            str(tmp_path / "o"),
            "--subjects",
            "S1",
            "--cameras",
            "54138969",
        ],
        h36m_to_tfrecord.add_arguments,
    )
    items, letters = h36m_to_tfrecord.list_items(args)
    refused = [d for d in letters if d["stage"] == "path"]
    assert [d["id"] for d in refused] == [f"S1/{name}.54138969"]
    assert reason in refused[0]["reason"] and repr(name) in refused[0]["reason"]
    prefixes = {i["seq"].prefix for i in items}
    assert name not in prefixes and "TakingPhoto" in prefixes  # sub-action 2
