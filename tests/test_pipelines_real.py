"""The MPII, H36M and MPI-INF-3DHP Beam jobs end to end on the DirectRunner, on raw fixtures.

Every test runs a job on a tree written by tests/fixtures_raw.py, reads the TFRecords back and
compares values with what the raw annotation implies through the crop geometry (computed here
independently: crop side = PERSON_MARGIN * person side, u = s (x - x0) - 0.5), plus frame
identity (each fixture frame is filled with a grey level that encodes its index).
"""

from __future__ import annotations

import glob
import json
import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d import camera as camera_lib
from keras_pose3d.data import features
from keras_pose3d.data.readers import h36m
from keras_pose3d.data.readers import mpi_inf_3dhp as m3
from pipelines import (
    arguments,
    dead_letters,
    h36m_to_tfrecord,
    mpi_inf_3dhp_to_tfrecord,
    mpii_to_tfrecord,
)
from tests import fixtures_raw as fr
from tests.conftest import require_realdata

pytestmark = pytest.mark.beam


def _records(out_dir, split):
    recs = []
    for path in sorted(glob.glob(os.path.join(out_dir, f"{split}-*.tfrecord"))):
        recs += [features.decode_record(r.numpy()) for r in tf.data.TFRecordDataset(path)]
    return recs


def _dead_letters(out_dir):
    with open(os.path.join(out_dir, "dead_letter-00000-of-00001.jsonl")) as f:
        return [json.loads(line) for line in f]


def _crop_geometry(center, side, size):
    """(scale, x0, y0) of the stored crop: side PERSON_MARGIN * side around center."""
    crop_side = features.PERSON_MARGIN * side
    return size / crop_side, center[0] - crop_side / 2, center[1] - crop_side / 2


def _to_crop(points, center, side, size):
    s, x0, y0 = _crop_geometry(center, side, size)
    return np.stack([s * (points[:, 0] - x0) - 0.5, s * (points[:, 1] - y0) - 0.5], axis=1)


def _centre_pixel(record):
    img = cv2.imdecode(np.frombuffer(record["image_jpeg"], np.uint8), cv2.IMREAD_GRAYSCALE)
    h, w = img.shape
    return float(img[h // 2 - 1 : h // 2 + 1, w // 2 - 1 : w // 2 + 1].mean())


# ==============================================================================================
# MPII
# ==============================================================================================
def test_mpii_job_end_to_end(tmp_path):
    root = tmp_path / "mpii"
    exp = fr.write_mpii_fixture(root)
    (tmp_path / "split.txt").write_text("0 1\n")
    out = str(tmp_path / "out")
    size = 32
    manifest = mpii_to_tfrecord.run(
        [
            "--input_dir",
            str(root),
            "--output_dir",
            out,
            "--split_file",
            str(tmp_path / "split.txt"),
            "--crop_size",
            str(size),
            "--num_shards",
            "2",
            # The fixture is mostly broken on purpose (2 failures beside 3 records).
            "--max_dead_letter_fraction",
            "1",
        ]
    )

    usable = [p for p in exp["persons"] if p["usable"]]
    assert manifest["splits"]["train"]["num_examples"] == 2
    assert manifest["splits"]["validation"]["num_examples"] == 1
    records = {
        r["sequence"]: (split, r) for split in ("train", "validation") for r in _records(out, split)
    }
    assert set(records) == {f"{p['image_name']}/{p['person_index']}" for p in usable}
    for p in usable:
        split, rec = records[f"{p['image_name']}/{p['person_index']}"]
        assert split == (
            "validation" if (p["image_index"], p["person_index"]) == (0, 1) else "train"
        )
        want = _to_crop(p["joints"], p["box_center"], p["box_side"], size)
        inside = np.all((want >= -0.5) & (want <= size - 0.5), axis=1)
        want = np.where(p["annotated"][:, None], want, 0.0)
        np.testing.assert_allclose(rec["joints_2d"], want.astype(np.float32), atol=1e-4)
        np.testing.assert_array_equal(rec["visibility"], (p["annotated"] & inside).astype(float))
        half = features.PERSON_MARGIN * p["box_side"] / 2
        c = p["box_center"]
        np.testing.assert_allclose(
            rec["box"], [c[0] - half, c[1] - half, c[0] + half, c[1] + half], rtol=1e-6
        )
        assert not rec["has_3d"] and not rec["joints_3d"].any() and not rec["intrinsics"].any()
        assert rec["dataset"] == "mpii" and rec["frame"] == p["image_index"]
        assert rec["action"] == p["action"]
        assert list(rec["orig_size"]) == list(exp["images"][p["image_name"]])
        assert list(rec["image_size"]) == [size, size]
    # Person 1 of image 0 has MATLAB x = 0 (uint8): 0-based -1, not 254.
    np.testing.assert_allclose(
        records["000000001.jpg/1"][1]["joints_2d"][0],
        _to_crop(np.array([[-1.0, 85.0]]), usable[1]["box_center"], usable[1]["box_side"], size)[0],
        atol=1e-4,
    )
    letters = {(d["id"], d["stage"]) for d in _dead_letters(out)}
    assert letters == {
        ("000000004.jpg/0", "image"),
        ("000000005.jpg/0", "min_joints"),
        ("000000007.jpg/0", "validate"),
        ("test_set", "test_persons"),
    }
    assert manifest["dead_letter_count"] == 4
    assert manifest["dead_letter_by_stage"] == {
        "image": 1,
        "min_joints": 1,
        "test_persons": 1,
        "validate": 1,
    }
    # MPII has no camera: no distortion model stated, no universal 3D.
    for _, rec in records.values():
        assert rec["distortion_model"] == "" and not rec["distortion"].any()
        assert not rec["has_3d_univ"] and not rec["joints_3d_univ"].any()


def test_mpii_job_names_missing_layout(tmp_path):
    root = tmp_path / "mpii"
    root.mkdir()
    (root / "images").mkdir()
    with pytest.raises(FileNotFoundError, match="mpii_human_pose_v1_u12_1.mat"):
        mpii_to_tfrecord.run(["--input_dir", str(root), "--output_dir", str(tmp_path / "o")])


def test_mpii_split_file_entries_that_match_no_person(tmp_path):
    exp = fr.write_mpii_fixture(tmp_path / "mpii")
    annotation = str(tmp_path / "mpii" / "mpii_human_pose_v1_u12_1.mat")
    # (0, 1) is a person; (1, 1) and (9, 0) are not (image 1 has one person, there are 7 images).
    split = tmp_path / "split.txt"
    split.write_text("0 1\n1 1\n9 0\n")
    items, letters = mpii_to_tfrecord.list_items(annotation, str(split), 4)
    (letter,) = [d for d in letters if d["stage"] == "split_file"]
    assert letter["unmatched"] == 2 and letter["first_unmatched"] == [[1, 1], [9, 0]]
    assert str(split) in letter["reason"]
    splits = {
        (i["image_index"], p["person_index"]): p["split"] for i in items for p in i["persons"]
    }
    assert splits[(0, 1)] == "validation" and list(splits.values()).count("validation") == 1
    # A 1-based file matches nobody here: refused instead of putting every person in train.
    usable = [(p["image_index"] + 1, p["person_index"] + 1) for p in exp["persons"] if p["usable"]]
    split.write_text("".join(f"{i} {j}\n" for i, j in usable))
    match = rf"split.txt: none of its {len(usable)} entries matches a person"
    with pytest.raises(ValueError, match=match):
        mpii_to_tfrecord.list_items(annotation, str(split), 4)


@pytest.mark.parametrize("job", [mpii_to_tfrecord, h36m_to_tfrecord, mpi_inf_3dhp_to_tfrecord])
def test_jobs_report_a_missing_input_dir_without_traceback(tmp_path, capsys, job):
    missing = tmp_path / "no_such_dir"
    assert job.main(["--input_dir", str(missing), "--output_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(missing) in err and "Traceback" not in err


# ==============================================================================================
# Human3.6M
# ==============================================================================================
@pytest.fixture(scope="module")
def h36m_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("h36m")
    exp = fr.write_h36m_fixture(tmp / "raw")
    out = str(tmp / "out")
    manifest = h36m_to_tfrecord.run(
        [
            "--input_dir",
            str(tmp / "raw"),
            "--output_dir",
            out,
            "--subjects",
            "S1,S5,S9",
            "--sequences",
            "S1/TakingPhoto 1,S5/Photo,S9/Walking 1,S9/Greeting,S1/Walking 1",
            "--cameras",
            "54138969,55011271,58860488,60457274",
            "--stride",
            "2",
            "--crop_size",
            "64",
            "--num_shards",
            "2",
            "--max_dead_letter_fraction",
            "1",
        ]
    )
    return exp, out, manifest


def test_h36m_job_records_match_the_raw_files(h36m_run):
    exp, out, manifest = h36m_run
    size = 64
    train, test = _records(out, "train"), _records(out, "test")
    # S1 TakingPhoto 1: 2 cameras x frames {0, 2, 4}; S5 Photo: 5 poses -> {0, 2, 4};
    # S9 Walking 1: video of 4 frames -> {0, 2}, frame 2 has a NaN joint -> only 0.
    assert len(train) == 9 and len(test) == 1
    assert manifest["splits"]["train"]["subjects"] == {"S1": 6, "S5": 3}
    assert manifest["splits"]["test"]["num_examples"] == 1
    prefix_of = {
        ("S1", "TakingPhoto 1"): "TakingPhoto",
        ("S5", "Photo"): "TakingPhoto",
        ("S9", "Walking 1"): "Walking",
    }
    seen = set()
    for rec in train + test:
        key = (rec["subject"], rec["sequence"], rec["camera"])
        seq = exp["sequences"][key]
        cam, f = seq["camera"], rec["frame"]
        seen.add(key + (f,))
        assert rec["action"] == prefix_of[key[:2]] and rec["dataset"] == "h36m"
        # Frame identity: the crop centre shows video frame f's grey level.
        assert fr.level_to_frame(_centre_pixel(rec)) == f
        j3d = h36m.to_mpii(seq["d3"][f]).astype(np.float64)
        np.testing.assert_array_equal(rec["joints_3d"], j3d.astype(np.float32))
        j2d = h36m.to_mpii(seq["d2"][f]).astype(np.float64)
        lo, hi = j2d.min(0), j2d.max(0)
        center, side = (lo + hi) / 2, 1.2 * (hi - lo).max()
        # S5 has no D2 file: the job projects D3 itself (float32 input -> small differences).
        atol = 1e-3 if seq["has_d2_file"] else 2e-2
        np.testing.assert_allclose(rec["joints_2d"], _to_crop(j2d, center, side, size), atol=atol)
        s, x0, y0 = _crop_geometry(center, side, size)
        want_k = [s * cam.fx, s * cam.fy, s * (cam.cx - x0) - 0.5, s * (cam.cy - y0) - 0.5]
        np.testing.assert_allclose(rec["intrinsics"], want_k, rtol=2e-5, atol=2e-3)
        np.testing.assert_array_equal(rec["distortion"], cam.distortion.astype(np.float32))
        assert rec["distortion_model"] == "h36m" and cam.distortion.any()
        assert not rec["has_3d_univ"] and not rec["joints_3d_univ"].any()
        assert list(rec["orig_size"]) == [cam.height, cam.width]
        # Intrinsics and joints agree: projecting the 3D with the crop camera gives the 2D.
        proj = cam.replace(
            fx=rec["intrinsics"][0],
            fy=rec["intrinsics"][1],
            cx=rec["intrinsics"][2],
            cy=rec["intrinsics"][3],
        ).project(j3d)
        np.testing.assert_allclose(proj, rec["joints_2d"], atol=2e-2)
    assert ("S1", "TakingPhoto 1", "55011271", 4) in seen and (
        "S9",
        "Walking 1",
        "60457274",
        0,
    ) in seen


def test_h36m_job_dead_letters(h36m_run):
    _, out, manifest = h36m_run
    letters = {(d["id"], d["stage"]): d for d in _dead_letters(out)}
    missing = (
        {(f"S1/TakingPhoto 1.{c}", "read") for c in ("58860488", "60457274")}
        | {(f"S5/Photo.{c}", "read") for c in ("54138969", "55011271", "60457274")}
        | {(f"S9/Walking 1.{c}", "read") for c in ("54138969", "55011271", "58860488")}
        | {(f"S1/Walking 1.{c}", "read") for c in ("55011271", "58860488", "60457274")}
    )
    excluded = {
        (f"S9/Greeting.{c}", "excluded") for c in ("54138969", "55011271", "58860488", "60457274")
    }
    problems = {
        ("S1/Walking 1.54138969", "video"),
        ("S9/Walking 1.60457274/000002", "validate"),
        ("S5/Photo.58860488", "frame_count"),
        ("S9/Walking 1.60457274", "frame_count"),
    }
    assert set(letters) == missing | excluded | problems
    assert manifest["dead_letter_count"] == len(letters)
    assert manifest["dead_letter_by_stage"] == {
        "excluded": len(excluded),
        "frame_count": 2,
        "read": len(missing),
        "validate": 1,
        "video": 1,
    }
    assert "corrupt" in letters[("S1/Walking 1.54138969", "video")]["reason"]
    assert "non-finite" in letters[("S9/Walking 1.60457274/000002", "validate")]["reason"]
    short = letters[("S5/Photo.58860488", "frame_count")]
    assert (short["video_frames"], short["pose_frames"]) == (7, 5)
    assert "shifted" in letters[("S9/Greeting.54138969", "excluded")]["reason"]


def test_h36m_job_names_missing_layout(tmp_path):
    fr.write_h36m_fixture(tmp_path / "raw")
    with pytest.raises(FileNotFoundError, match=r"S6/MyPoseFeatures/D3_Positions_mono/\*\.cdf"):
        h36m_to_tfrecord.run(
            [
                "--input_dir",
                str(tmp_path / "raw"),
                "--subjects",
                "S1,S6",
                "--output_dir",
                str(tmp_path / "o"),
            ]
        )


# ==============================================================================================
# MPI-INF-3DHP
# ==============================================================================================
@pytest.fixture(scope="module")
def mpi3dhp_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("3dhp")
    train = fr.write_3dhp_train_fixture(tmp / "train")
    test = fr.write_3dhp_test_fixture(tmp / "test")
    out = str(tmp / "out")
    manifest = mpi_inf_3dhp_to_tfrecord.run(
        [
            "--input_dir",
            str(tmp / "train"),
            "--test_dir",
            str(tmp / "test"),
            "--subjects",
            "S1",
            "--sequences",
            "Seq1",
            "--cameras",
            "0,1,2",
            "--test_sequences",
            "TS1",
            "--stride",
            "2",
            "--crop_size",
            "48",
            "--num_shards",
            "2",
            "--max_dead_letter_fraction",
            "1",
            "--output_dir",
            out,
        ]
    )
    return train, test, out, manifest


def _check_3dhp_record(rec, j2d, j3d, cam, size):
    lo, hi = j2d.min(0), j2d.max(0)
    center, side = (lo + hi) / 2, 1.2 * (hi - lo).max()
    np.testing.assert_allclose(rec["joints_2d"], _to_crop(j2d, center, side, size), atol=1e-3)
    np.testing.assert_array_equal(rec["joints_3d"], j3d.astype(np.float32))
    s, x0, y0 = _crop_geometry(center, side, size)
    want_k = [s * cam.fx, s * cam.fy, s * (cam.cx - x0) - 0.5, s * (cam.cy - y0) - 0.5]
    np.testing.assert_allclose(rec["intrinsics"], want_k, rtol=2e-5, atol=2e-3)
    assert fr.level_to_frame(_centre_pixel(rec)) == rec["frame"]


def test_3dhp_job_training_records(mpi3dhp_run):
    train, _, out, manifest = mpi3dhp_run
    recs = _records(out, "train")
    # Cameras 0 and 1: 5 video frames -> {0, 2, 4}; camera 1 frame 2 has a NaN; camera 2 corrupt.
    got = sorted((r["camera"], r["frame"]) for r in recs)
    assert got == [("0", 0), ("0", 2), ("0", 4), ("1", 0), ("1", 4)]
    idx = list(m3.MPII_FROM_28)
    for rec in recs:
        cam_data = train["cameras"][int(rec["camera"])]
        f = rec["frame"]
        assert (rec["subject"], rec["sequence"], rec["dataset"]) == ("S1", "Seq1", "mpi_inf_3dhp")
        _check_3dhp_record(
            rec, cam_data["annot2"][f][idx], cam_data["annot3"][f][idx], cam_data["camera"], 48
        )
        # univ_annot3 comes through exactly (float32 of the fixture's values) and is not annot3.
        assert rec["has_3d_univ"]
        univ = cam_data["univ"][f][idx]
        np.testing.assert_array_equal(rec["joints_3d_univ"], univ.astype(np.float32))
        assert np.linalg.norm(rec["joints_3d_univ"] - rec["joints_3d"], axis=1).min() > 1.0
        # The training cameras have no lens distortion.
        assert rec["distortion_model"] == "none" and not rec["distortion"].any()
    assert manifest["splits"]["train"]["num_examples"] == 5
    assert manifest["splits"]["train"]["has_3d_univ"] == 5


def test_3dhp_job_test_records_only_valid_frames(mpi3dhp_run):
    _, test, out, manifest = mpi3dhp_run
    recs = {r["frame"]: r for r in _records(out, "test")}
    # valid_frame = [1, 1, 0, 1, 1, 0]; the image of frame 3 is corrupt.
    assert sorted(recs) == [0, 1, 4]
    idx = [10, 9, 8, 11, 12, 13, 14, 1, 16, 0, 4, 3, 2, 5, 6, 7]
    for f, rec in recs.items():
        assert (
            rec["subject"] == "TS1"
            and rec["action"] == m3.TEST_ACTIVITIES[int(test["activity"][f])]
        )
        _check_3dhp_record(rec, test["annot2"][f][idx], test["annot3"][f][idx], test["camera"], 48)
        assert list(rec["orig_size"]) == [test["size"], test["size"]]
        # The evaluation ground truth: univ_annot3 of the fixture, exactly, unlike annot3.
        assert rec["has_3d_univ"]
        np.testing.assert_array_equal(
            rec["joints_3d_univ"], test["univ"][f][idx].astype(np.float32)
        )
        assert np.linalg.norm(rec["joints_3d_univ"] - rec["joints_3d"], axis=1).min() > 1.0
        assert rec["distortion_model"] == "none"  # TS1-4: no distortion
    assert manifest["splits"]["test"]["has_3d_univ"] == 3
    assert manifest["splits"]["test"]["actions"] == {
        "Standing/Walking": 1,
        "Exercising": 1,
        "Miscellaneous": 1,
    }


def test_3dhp_job_dead_letters(mpi3dhp_run):
    _, _, out, manifest = mpi3dhp_run
    letters = {(d["id"], d["stage"]): d for d in _dead_letters(out)}
    assert set(letters) == {
        ("S1/Seq1/video_0", "frame_count"),
        ("S1/Seq1/video_1", "frame_count"),
        ("S1/Seq1/video_1/000002", "validate"),
        ("S1/Seq1/video_2", "video"),
        ("TS1", "invalid_frames"),
        ("TS1/000003", "image"),
    }
    assert letters[("TS1", "invalid_frames")]["invalid_frames"] == 2
    assert letters[("S1/Seq1/video_0", "frame_count")]["video_frames"] == 5
    assert manifest["dead_letter_count"] == 6
    assert manifest["dead_letter_by_stage"] == {
        "frame_count": 2,
        "image": 1,
        "invalid_frames": 1,
        "validate": 1,
        "video": 1,
    }


# The TS5-6 GoPro .calib layout with made-up OpenCV coefficients [k1, k2, p1, p2, k3].
_TS56_DISTORTION = "-0.2 0.1 -0.0004 -0.001 -0.05"
_ZERO_DISTORTION = "0.0 0.0 0.0 0.0 0.0"
# MPII-16 from the 3DHP-17 test order (as in test_3dhp_job_test_records_only_valid_frames).
_IDX17 = [10, 9, 8, 11, 12, 13, 14, 1, 16, 0, 4, 3, 2, 5, 6, 7]


def _ts5_tree(root, distortion: str) -> dict:
    """The TS1 fixture moved to TS5, with a ts5-6cameras.calib of the given coefficients."""
    exp = fr.write_3dhp_test_fixture(root)
    os.rename(root / "TS1", root / "TS5")
    calib_dir = root / "test_util" / "camera_calibration"
    assert fr.TS14_CALIB.count(_ZERO_DISTORTION) == 1
    text = fr.TS14_CALIB.replace(_ZERO_DISTORTION, distortion)
    (calib_dir / m3.TEST_CALIB_FILES["TS5"]).write_text(text)
    exp["calib"] = str(calib_dir / m3.TEST_CALIB_FILES["TS5"])
    return exp


@pytest.mark.parametrize("distortion", [_TS56_DISTORTION, _ZERO_DISTORTION])
def test_3dhp_ts5_records_say_opencv(tmp_path, distortion):
    exp = _ts5_tree(tmp_path, distortion)
    dofn = mpi_inf_3dhp_to_tfrecord.TestFramesToRecords(str(tmp_path), 48)
    out = list(dofn.process({"seq": "TS5", "frames": [0, 1], "calib": exp["calib"]}))
    assert [o[:2] for o in out] == [("test", "TS5/000000"), ("test", "TS5/000001")]
    k1, k2, p1, p2, k3 = (float(v) for v in distortion.split())
    for _, _, record in out:
        rec = features.decode_record(features.encode_example(record))
        # TS5-6 are OpenCV whatever the coefficients; stored in the record order k1 k2 k3 p1 p2.
        assert rec["distortion_model"] == "opencv"
        np.testing.assert_array_equal(rec["distortion"], np.float32([k1, k2, k3, p1, p2]))
        univ = exp["univ"][rec["frame"]][_IDX17]
        np.testing.assert_array_equal(rec["joints_3d_univ"], univ.astype(np.float32))


def test_3dhp_distortion_model_rule():
    def cam(k, p, model):
        return camera_lib.Camera(
            id="c",
            R_w2c=np.eye(3),
            t_centre_world=np.zeros(3),
            fx=1,
            fy=1,
            cx=0,
            cy=0,
            k=k,
            p=p,
            width=2,
            height=2,
            distortion_model=model,
        )

    rule = mpi_inf_3dhp_to_tfrecord.distortion_model
    assert rule(cam(np.zeros(3), np.zeros(2), "opencv"), "TS1") == "none"
    assert rule(cam(np.zeros(3), np.zeros(2), "h36m"), "Seq1") == "none"  # training cameras
    assert rule(cam(np.zeros(3), np.zeros(2), "opencv"), "TS6") == "opencv"
    assert rule(cam([0.1, 0, 0], np.zeros(2), "opencv"), "TS2") == "opencv"
    with pytest.raises(ValueError, match="non-zero distortion .* under model 'h36m'"):
        rule(cam([0.1, 0, 0], np.zeros(2), "h36m"), "Seq1")


def test_3dhp_distortion_model_of_the_real_calibrations():
    ts14 = require_realdata("mpi_inf_3dhp", "ts1-4cameras.calib")
    ts56 = require_realdata("mpi_inf_3dhp", "ts5-6cameras.calib")
    rule = mpi_inf_3dhp_to_tfrecord.distortion_model
    for ts in ("TS1", "TS2", "TS3", "TS4"):
        size = camera_lib.MPI3DHP_TEST_IMAGE_SIZE[ts]
        assert {rule(c, ts) for c in camera_lib.load_3dhp_test_calib(ts14, size)} == {"none"}
    for ts in ("TS5", "TS6"):
        cams = camera_lib.load_3dhp_test_calib(ts56, camera_lib.MPI3DHP_TEST_IMAGE_SIZE[ts])
        assert all(c.distortion.any() for c in cams)  # the GoPro really is distorted
        assert {rule(c, ts) for c in cams} == {"opencv"}


def test_3dhp_job_names_missing_layout(tmp_path):
    fr.write_3dhp_train_fixture(tmp_path / "train")
    with pytest.raises(FileNotFoundError, match=r"S2/Seq1/annot.mat.*TS1/annot_data.mat"):
        mpi_inf_3dhp_to_tfrecord.run(
            [
                "--input_dir",
                str(tmp_path / "train"),
                "--test_dir",
                str(tmp_path / "none"),
                "--subjects",
                "S1,S2",
                "--sequences",
                "Seq1",
                "--test_sequences",
                "TS1",
                "--output_dir",
                str(tmp_path / "o"),
            ]
        )


def test_3dhp_splits_default_to_the_roots_given(tmp_path, capsys):
    def splits(*argv):
        args, _ = arguments.parse_args(
            [*argv, "--output_dir", "o"], mpi_inf_3dhp_to_tfrecord.add_arguments
        )
        return mpi_inf_3dhp_to_tfrecord._splits(args)

    assert splits("--input_dir", "tr") == ["train"]
    assert splits("--test_dir", "te") == ["test"]
    assert splits("--input_dir", "tr", "--test_dir", "te") == ["train", "test"]
    assert splits("--input_dir", "tr", "--splits", "train") == ["train"]
    with pytest.raises(ValueError, match="--test_dir .* required for the test split"):
        splits("--input_dir", "tr", "--splits", "train,test")
    assert mpi_inf_3dhp_to_tfrecord.main(["--output_dir", str(tmp_path / "o")]) == 2
    assert "--input_dir" in capsys.readouterr().err
    # A training root alone (no --test_dir, no --splits) is a complete job.
    fr.write_3dhp_train_fixture(tmp_path / "train", size=48)
    manifest = mpi_inf_3dhp_to_tfrecord.run(
        [
            "--input_dir",
            str(tmp_path / "train"),
            "--subjects",
            "S1",
            "--sequences",
            "Seq1",
            "--cameras",
            "0",
            "--stride",
            "2",
            "--crop_size",
            "32",
            "--num_shards",
            "1",
            "--output_dir",
            str(tmp_path / "out"),
        ]
    )
    assert manifest["splits"]["train"]["num_examples"] == 3  # frames 0, 2, 4 of 5
    assert manifest["splits"]["test"]["num_examples"] == 0


def test_3dhp_camera_missing_from_calibration_is_a_train_dead_letter(tmp_path):
    fr.write_3dhp_train_fixture(tmp_path, size=48)
    calib = tmp_path / "S1" / "Seq1" / "camera.calibration"
    calib.write_text(fr._calibration_text(3, 48, 80.0, 24.0))
    dofn = mpi_inf_3dhp_to_tfrecord.TrainSequenceToRecords(str(tmp_path), 2, 32)
    (out,) = list(dofn.process({"subject": "S1", "seq": "Seq1", "camera": 5}))
    assert out.tag == dead_letters.DEAD_LETTER_TAG
    assert out.value["split"] == "train" and out.value["stage"] == "read"
    assert "camera 5 not in camera.calibration" in out.value["reason"]
