"""Raw-file readers (keras_pose3d/data/readers) on faithful fixtures and on real samples."""

from __future__ import annotations

import collections

import cv2
import h5py
import numpy as np
import pytest
import scipy.io

from keras_pose3d import camera as camera_lib
from keras_pose3d.data.readers import h36m, mpii
from keras_pose3d.data.readers import mpi_inf_3dhp as m3
from tests import fixtures_raw as fr
from tests.conftest import require_realdata


# ==============================================================================================
# MPII
# ==============================================================================================
def _read_persons(path):
    """Every person of an annotation file, read as the MPII job reads it."""
    return list(mpii.iter_persons(mpii.load_mat(path), source=str(path)))


@pytest.fixture(scope="module")
def mpii_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("mpii")
    return root, fr.write_mpii_fixture(root)


def test_mpii_fixture_is_as_awkward_as_the_real_file(mpii_tree):
    root, _ = mpii_tree
    mat = scipy.io.loadmat(root / mpii.ANNOTATION_FILE, struct_as_record=False, squeeze_me=True)
    annolist = mat["RELEASE"].annolist
    # One-person image -> bare mat_struct; two persons -> array.
    assert isinstance(annolist[1].annorect, scipy.io.matlab.mat_struct)
    assert isinstance(annolist[0].annorect, np.ndarray) and annolist[0].annorect.size == 2
    raw = scipy.io.loadmat(root / mpii.ANNOTATION_FILE)
    point = raw["RELEASE"][0, 0]["annolist"][0, 0]["annorect"][0, 0]["annopoints"][0, 0]["point"]
    dtypes = {point[0, k]["x"].dtype for k in range(16)}
    assert {np.dtype(np.uint16), np.dtype(np.float64)} <= dtypes
    assert point[0, 0]["y"].dtype == np.uint8


def test_mpii_reader_recovers_every_person_exactly(mpii_tree):
    root, expected = mpii_tree
    persons = _read_persons(root / mpii.ANNOTATION_FILE)
    by_key = {(p.image_index, p.person_index): p for p in persons}
    # 6 persons of training images + 1 test person (image 2).
    assert len(persons) == len(expected["persons"]) + expected["test_persons"]
    for exp in expected["persons"]:
        got = by_key[(exp["image_index"], exp["person_index"])]
        assert got.image_name == exp["image_name"]
        np.testing.assert_array_equal(got.annotated, exp["annotated"])
        np.testing.assert_allclose(got.joints, exp["joints"], rtol=0, atol=1e-9)
        assert got.is_train is True
    # MATLAB x = 0 stored as uint8 must become -1, not 254 (cast before subtracting).
    assert by_key[(0, 1)].joints[0, 0] == -1.0
    test_person = by_key[(2, 0)]
    assert test_person.is_train is False and test_person.num_annotated == 0
    np.testing.assert_array_equal(test_person.center, [29.0, 29.0])
    assert test_person.scale == pytest.approx(0.1) and test_person.head_box is None
    # Head box and objpos are 0-based too.
    np.testing.assert_array_equal(by_key[(0, 0)].head_box, [261, 29, 277, 41])
    centre, side = by_key[(0, 0)].person_box()
    np.testing.assert_allclose(centre, [269.0, 57.0 + 15 * 0.12])
    assert side == pytest.approx(250 * 0.12)
    assert by_key[(1, 0)].person_box() is None  # no objpos on that person


def test_mpii_reader_counts_all_three_is_visible_encodings(mpii_tree):
    root, expected = mpii_tree
    counts = collections.Counter()
    for p in _read_persons(root / mpii.ANNOTATION_FILE):
        for enc, flag, ann in zip(p.visible_encoding, p.is_visible, p.annotated):
            if ann:
                counts[(enc, int(flag))] += 1
    assert dict(counts) == expected["encodings"]


@pytest.mark.parametrize(
    "value, expected",
    [
        (1, (1, "int")),
        (np.uint8(0), (0, "int")),
        ("1", (1, "str")),
        ("0", (0, "str")),
        (np.zeros((0, 0), np.uint8), (-1, "empty")),
        (np.array(["1"]), (1, "str")),
    ],
)
def test_parse_is_visible(value, expected):
    assert mpii.parse_is_visible(value) == expected


def test_parse_is_visible_rejects_other_values():
    with pytest.raises(ValueError, match="point\\[3\\].is_visible.*'x'"):
        mpii.parse_is_visible("x", "point[3].is_visible")
    with pytest.raises(ValueError, match="expected 0 or 1, received 2"):
        mpii.parse_is_visible(2)


def test_mpii_split_files(tmp_path, mpii_tree):
    root, _ = mpii_tree
    with h5py.File(tmp_path / "valid.h5", "w") as f:
        f["index"] = np.array([0.0, 6.0])
        f["person"] = np.array([1.0, 0.0])
    pairs = mpii.read_split_file(tmp_path / "valid.h5")
    assert pairs == {(0, 1), (6, 0)}
    (tmp_path / "pairs.txt").write_text("0 1\n6 0\n")
    assert mpii.read_split_file(tmp_path / "pairs.txt") == pairs
    (tmp_path / "names.txt").write_text("000000001.jpg\n000000001.jpg\n")
    names = mpii.read_split_file(tmp_path / "names.txt")
    persons = {
        (p.image_index, p.person_index): p for p in _read_persons(root / mpii.ANNOTATION_FILE)
    }
    assert mpii.split_of(persons[(0, 1)], pairs) == "validation"
    assert mpii.split_of(persons[(0, 0)], pairs) == "train"
    assert mpii.split_of(persons[(0, 0)], names) == "validation"  # every person of the image
    assert mpii.split_of(persons[(1, 0)], names) == "train"
    assert mpii.split_of(persons[(0, 1)], None) == "train"
    # Entries naming no person (a 1-based pair, an unknown image) are reported, sorted.
    every = list(persons.values())
    assert mpii.unmatched_split_entries(every, pairs | {(7, 1), (1, 1)}) == [(1, 1), (7, 1)]
    assert mpii.unmatched_split_entries(every, {"000000001.jpg", "x.jpg"}) == ["x.jpg"]
    (tmp_path / "bad.txt").write_text("a b c\n")
    with pytest.raises(ValueError, match="bad.txt"):
        mpii.read_split_file(tmp_path / "bad.txt")


def test_mpii_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.mat"
    bad.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ValueError, match="broken.mat"):
        _read_persons(bad)
    scipy.io.savemat(tmp_path / "other.mat", {"foo": np.ones(3)})
    with pytest.raises(KeyError, match=r"other.mat.*'RELEASE'.*\['foo'\]"):
        _read_persons(tmp_path / "other.mat")
    with pytest.raises(FileNotFoundError, match="nothere.mat"):
        _read_persons(tmp_path / "nothere.mat")


@pytest.mark.realdata
def test_mpii_reader_on_the_real_validation_release():
    """Faithfulness: the real file's encodings (datasets.md 2.3) and Newell's valid.h5 agree."""
    mat_path = require_realdata("mpii", "mpii_val_release_format.mat")
    h5_path = require_realdata("mpii", "valid.h5")
    persons = _read_persons(mat_path)
    assert len(persons) == 2958
    counts = collections.Counter()
    for p in persons:
        for enc, flag, ann in zip(p.visible_encoding, p.is_visible, p.annotated):
            if ann:
                counts[(enc, int(flag))] += 1
    assert dict(counts) == {
        ("int", 1): 26244,
        ("int", 0): 9513,
        ("empty", -1): 5862,
        ("str", 1): 1891,
        ("str", 0): 730,
    }
    assert min(p.num_annotated for p in persons) == 5
    assert max(p.num_annotated for p in persons) == 16
    with h5py.File(h5_path, "r") as f:
        index, person = f["index"][:].astype(int), f["person"][:].astype(int)
        part, center, scale = f["part"][:], f["center"][:], f["scale"][:]
    assert [p.image_index for p in persons] == index.tolist()
    assert [p.person_index for p in persons] == person.tolist()
    # valid.h5 stores 1-based joints truncated to int, missing = 0.
    ours = np.stack(
        [np.where(p.annotated[:, None], np.trunc(p.joints + 1.0), 0.0) for p in persons]
    )
    np.testing.assert_array_equal(ours, part)
    boxes = [p.person_box() for p in persons]
    np.testing.assert_allclose(np.stack([b[0] for b in boxes]) + 1.0, center, atol=1e-9)
    np.testing.assert_allclose(np.array([b[1] for b in boxes]) / 200.0, scale, atol=1e-12)
    assert mpii.read_split_file(h5_path) == {(p.image_index, p.person_index) for p in persons}


# ==============================================================================================
# Human3.6M
# ==============================================================================================
def test_read_pose_cdf_shapes_and_values(tmp_path):
    pose = np.random.default_rng(0).normal(size=(4, 32, 3)).astype(np.float32) * 1000
    fr.write_pose_cdf(tmp_path / "Eating 2.54138969.cdf", pose)
    got = h36m.read_pose_cdf(tmp_path / "Eating 2.54138969.cdf", 3)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, pose)
    with pytest.raises(ValueError, match=r"Eating 2.54138969.cdf.*\(1, 4, 96\).*\(1, N, 64\)"):
        h36m.read_pose_cdf(tmp_path / "Eating 2.54138969.cdf", 2)
    (tmp_path / "junk.cdf").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="junk.cdf"):
        h36m.read_pose_cdf(tmp_path / "junk.cdf", 3)
    with pytest.raises(FileNotFoundError, match="missing.cdf"):
        h36m.read_pose_cdf(tmp_path / "missing.cdf", 3)


def test_read_pose_cdf_accepts_n_by_d(tmp_path):
    import cdflib
    from cdflib.cdfwrite import CDF as CDFWriter

    pose = np.arange(3 * 64, dtype=np.float32).reshape(3, 64)
    writer = CDFWriter(str(tmp_path / "flat.cdf"), cdf_spec={"Majority": "Row_major"})
    writer.write_var(
        {
            "Variable": "Pose",
            "Data_Type": cdflib.cdfwrite.CDF.CDF_FLOAT,
            "Num_Elements": 1,
            "Rec_Vary": True,
            "Dim_Sizes": [64],
        },
        var_attrs={},
        var_data=pose,
    )
    writer.close()
    got = h36m.read_pose_cdf(tmp_path / "flat.cdf", 2)
    np.testing.assert_array_equal(got, pose.reshape(3, 32, 2))


def test_h36m_to_mpii_index_map():
    pose32 = np.arange(32, dtype=np.float64)[:, None] * np.ones((1, 3))
    # Hand-derived: r_ankle <- RightFoot(3), ..., thorax <- Neck(13), upper_neck <- Head(14),
    # head_top <- head Site(15), r_wrist <- RightHand(27), l_wrist <- LeftHand(19).
    expected = [3, 2, 1, 6, 7, 8, 0, 13, 14, 15, 27, 26, 25, 17, 18, 19]
    np.testing.assert_array_equal(h36m.to_mpii(pose32)[:, 0], expected)


def test_video_reader_stride_limit_and_frame_identity(tmp_path):
    path = tmp_path / "Photo.58860488.mp4"
    fr._write_video(path, 7, (64, 48), "mp4v")
    reader = h36m.VideoReader(path, stride=3, limit=5)
    frames = list(reader)
    assert [i for i, _ in frames] == [0, 3]
    assert [fr.level_to_frame(f[24, 32, 0]) for _, f in frames] == [0, 3]
    assert reader.frames_total == 7
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="bad.mp4"):
        list(h36m.VideoReader(tmp_path / "bad.mp4"))


@pytest.mark.realdata
def test_h36m_sequences_from_real_metadata_match_the_documented_table():
    meta = camera_lib.load_h36m_metadata(require_realdata("h36m", "metadata.xml"))
    table = fr.parse_mapping_table()
    subjects = list(table)
    items = h36m.enumerate_sequences(meta, subjects)
    assert len(items) == 7 * 30 * 4
    for subject, pairs in table.items():
        prefixes = [it.prefix for it in items if it.subject == subject and it.camera == "54138969"]
        assert prefixes == [p for pair in pairs for p in pair], subject
    first = [it for it in items if it.subject == "S1" and it.prefix == "Directions 1"]
    assert [it.expected_frames for it in first] == [1384, 1387, 1387, 1384]
    photo = next(it for it in items if it.subject == "S5" and it.prefix == "Photo")
    assert photo.action == "TakingPhoto"
    assert photo.video_path("/r") == "/r/S5/Videos/Photo.54138969.mp4"
    excluded = {it.key for it in items if h36m.known_defect(it.subject, it.prefix, it.camera)}
    assert excluded == {"S11/Directions.54138969"} | {
        f"S9/{p}.{c}"
        for p in ("SittingDown 1", "Waiting 1", "Greeting")
        for c in camera_lib.H36M_CAMERA_IDS
    }


def test_generated_metadata_parses_like_the_real_one(tmp_path):
    path = tmp_path / "metadata.xml"
    path.write_text(fr._generated_metadata_xml())
    meta = camera_lib.load_h36m_metadata(path)
    items = h36m.enumerate_sequences(meta, ["S1", "S11"])
    assert len(items) == 2 * 30 * 4
    assert {it.prefix for it in items if it.subject == "S11" and it.action == "Phoning"} == {
        "Phoning 3",
        "Phoning 2",
    }


# ==============================================================================================
# MPI-INF-3DHP
# ==============================================================================================
def test_3dhp_28_to_mpii_index_map():
    # Hand-derived: r_ankle 25, r_knee 24, r_hip 23, l_hip 18, l_knee 19, l_ankle 20, pelvis 4,
    # thorax <- neck 5, upper_neck <- head 6, head_top 7, r_wri 16, r_elb 15, r_sho 14,
    # l_sho 9, l_elb 10, l_wri 11.
    assert m3.MPII_FROM_28 == (25, 24, 23, 18, 19, 20, 4, 5, 6, 7, 16, 15, 14, 9, 10, 11)


def test_3dhp_train_annotations(tmp_path):
    exp = fr.write_3dhp_train_fixture(tmp_path)
    for cam in (0, 1, 5):
        got = m3.read_train_annotations(tmp_path / "S1" / "Seq1" / "annot.mat", cam)
        e = exp["cameras"][cam]
        idx = list(m3.MPII_FROM_28)
        np.testing.assert_array_equal(got["joints_2d"], e["annot2"][:, idx])
        np.testing.assert_array_equal(got["joints_3d"], e["annot3"][:, idx])
        np.testing.assert_array_equal(got["joints_3d_univ"], e["univ"][:, idx])
    with pytest.raises(ValueError, match="camera must be in"):
        m3.read_train_annotations(tmp_path / "S1" / "Seq1" / "annot.mat", 14)


def test_3dhp_train_annotation_errors(tmp_path):
    cells = np.empty((14, 1), object)
    for c in range(14):
        cells[c, 0] = np.zeros((3, 55))
    scipy.io.savemat(tmp_path / "annot.mat", {"annot2": cells, "annot3": cells})
    with pytest.raises(
        ValueError,
        match=r"annot.mat: 'annot2'\[2\] has shape \(3, 55\); "
        r"expected \(N, 56\)",
    ):
        m3.read_train_annotations(tmp_path / "annot.mat", 2)


def test_3dhp_lr_swap_only_on_documented_frames():
    frames = np.array([0, 3758, 3759, 5852, 5853])
    pose = np.arange(16, dtype=np.float64)[None, :, None] * np.ones((5, 1, 3))
    fixed = m3.fix_lr_swap("S4", "Seq2", frames, pose)
    swapped = [5, 4, 3, 2, 1, 0, 6, 7, 8, 9, 15, 14, 13, 12, 11, 10]
    for row, should_swap in enumerate([False, False, True, True, False]):
        want = swapped if should_swap else list(range(16))
        np.testing.assert_array_equal(fixed[row, :, 0], want)
    np.testing.assert_array_equal(m3.fix_lr_swap("S4", "Seq1", frames, pose), pose)
    assert m3.frame_count("S3", "Seq1", 12489) == 12488
    assert m3.frame_count("S9", "Seq1", 10) == 10


def test_3dhp_test_annotations_v73(tmp_path):
    exp = fr.write_3dhp_test_fixture(tmp_path)
    path = tmp_path / "TS1" / "annot_data.mat"
    with pytest.raises(NotImplementedError):  # like the real v7.3 file
        scipy.io.loadmat(path)
    got = m3.read_test_annotations(path)
    idx = [10, 9, 8, 11, 12, 13, 14, 1, 16, 0, 4, 3, 2, 5, 6, 7]  # skeleton.MPII_FROM_MPI3DHP17
    np.testing.assert_allclose(got["joints_2d"], exp["annot2"][:, idx], rtol=0, atol=0)
    np.testing.assert_allclose(got["joints_3d"], exp["annot3"][:, idx], rtol=0, atol=0)
    np.testing.assert_allclose(got["joints_3d_univ"], exp["univ"][:, idx], rtol=0, atol=0)
    np.testing.assert_array_equal(got["valid"], exp["valid"] == 1)
    np.testing.assert_array_equal(got["activity"], exp["activity"].astype(int))
    valid, total = m3.read_test_frame_validity(path)
    np.testing.assert_array_equal(valid, [0, 1, 3, 4])
    assert total == 6
    assert m3.test_image_path("/t", "TS1", 0) == "/t/TS1/imageSequence/img_000001.jpg"
    img = cv2.imread(m3.test_image_path(str(tmp_path), "TS1", 4))
    assert fr.level_to_frame(img[5, 5, 0]) == 4


def test_3dhp_test_annotation_errors(tmp_path):
    scipy.io.savemat(tmp_path / "v5.mat", {"annot3": np.zeros((3, 17))})
    with pytest.raises(ValueError, match="v5.mat: not an HDF5"):
        m3.read_test_annotations(tmp_path / "v5.mat")
    with h5py.File(tmp_path / "bad.mat", "w") as f:
        f["annot2"] = np.zeros((4, 1, 16, 2))
    with pytest.raises(ValueError, match=r"bad.mat: 'annot2' has shape \(4, 1, 16, 2\)"):
        m3.read_test_annotations(tmp_path / "bad.mat")
