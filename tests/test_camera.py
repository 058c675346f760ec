"""Tests for keras_pose3d.camera: hand-computed projections, parsers on faithful fixtures, and
the real H36M / 3DHP camera files."""

import pickle
import re

import numpy as np
import pytest

from keras_pose3d import camera as C
from tests.conftest import require_realdata


# ----------------------------------------------------------------------------------------------
# Hand-computed cases.
# ----------------------------------------------------------------------------------------------
def test_pinhole_projection_hand_values():
    # X/Z = 0.1, Y/Z = 0.2 -> u = 1000*0.1 + 500, v = 1100*0.2 + 400.
    uv = C.project_points([[100.0, 200.0, 1000.0]], [1000.0, 1100.0, 500.0, 400.0])
    np.testing.assert_allclose(uv, [[600.0, 620.0]])


def test_radial_and_tangential_hand_values_both_models():
    x, y = 0.1, 0.2
    r2 = x * x + y * y  # 0.05
    k1, k2, k3, p1, p2 = 0.1, 0.01, 0.001, 0.02, 0.03
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    dist = [k1, k2, k3, p1, p2]
    intr = [1.0, 1.0, 0.0, 0.0]  # identity intrinsics: output is the distorted normalised point
    pt = [[x * 5.0, y * 5.0, 5.0]]
    h36m = C.project_points(pt, intr, dist, model="h36m")[0]
    tan = p1 * y + p2 * x
    np.testing.assert_allclose(h36m, [x * (radial + tan) + p2 * r2, y * (radial + tan) + p1 * r2])
    cv = C.project_points(pt, intr, dist, model="opencv")[0]
    np.testing.assert_allclose(
        cv,
        [
            x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
            y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y,
        ],
    )
    assert abs(h36m[0] - cv[0]) > 1e-4  # the two tangential models really differ


def test_projection_batched_intrinsics_broadcast():
    pts = np.array([[[1.0, 2.0, 10.0], [3.0, -1.0, 5.0]], [[0.0, 0.0, 4.0], [2.0, 2.0, 2.0]]])
    intr = np.array([[100.0, 100.0, 10.0, 20.0], [50.0, 60.0, 0.0, 0.0]])
    uv = C.project_points(pts, intr)  # (2, 2, 2)
    for b in range(2):
        np.testing.assert_allclose(uv[b], C.project_points(pts[b], intr[b]))
    np.testing.assert_allclose(uv[1, 1], [50.0, 60.0])


@pytest.mark.parametrize(
    "model, distorted",
    [("h36m", [600.2825125, 219.3114775]), ("opencv", [600.2125125, 219.4374775])],
)
def test_projection_batched_distortion_hand_values(model, distorted):
    # One point seen by two cameras (B = 2): x = X/Z = 0.1, y = Y/Z = -0.2, r2 = 0.05,
    # radial = 1.005025125. Camera 0 distorts (h36m: x (radial + p1 y + p2 x) + p2 r2, ...;
    # opencv: x radial + 2 p1 x y + p2 (r2 + 2 x^2), ...), camera 1 is a pinhole.
    pts = np.array([[[200.0, -400.0, 2000.0]], [[200.0, -400.0, 2000.0]]])  # (B, 1, 3)
    intr = np.array([[1000.0, 900.0, 500.0, 400.0]] * 2)
    dist = np.array([[0.1, 0.01, 0.001, 0.002, -0.003], [0.0] * 5])
    uv = C.project_points(pts, intr, dist, model)  # (B, 1, 2)
    np.testing.assert_allclose(uv[:, 0], [distorted, [600.0, 220.0]], atol=1e-9)


def test_rotation_xyz_hand_values():
    # Rx(90 deg) maps +y to +z; Rz(90 deg) maps +x to +y.
    np.testing.assert_allclose(C.rotation_xyz(np.pi / 2, 0, 0) @ [0, 1, 0], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(C.rotation_xyz(0, 0, np.pi / 2) @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    r = C.rotation_xyz(0.3, -1.1, 2.0)
    np.testing.assert_allclose(
        r, C.rotation_xyz(0.3, 0, 0) @ C.rotation_xyz(0, -1.1, 0) @ C.rotation_xyz(0, 0, 2.0)
    )


def _camera(**kw):
    base = {
        "id": "c",
        "R_w2c": C.rotation_xyz(0.2, -0.4, 1.0),
        "t_centre_world": [100.0, -50.0, 30.0],
        "fx": 1000.0,
        "fy": 990.0,
        "cx": 500.0,
        "cy": 510.0,
        "k": [-0.2, 0.2, -0.003],
        "p": [-0.001, -0.0009],
        "width": 1000,
        "height": 1002,
    }
    base.update(kw)
    return C.Camera(**base)


def test_world_camera_round_trip_and_centre():
    cam = _camera()
    pts = np.random.default_rng(0).normal(size=(4, 17, 3)) * 1000
    np.testing.assert_allclose(cam.camera_to_world(cam.world_to_camera(pts)), pts, atol=1e-9)
    # The camera centre maps to the camera origin; t is -R c.
    np.testing.assert_allclose(cam.world_to_camera(cam.t_centre_world), 0, atol=1e-12)
    np.testing.assert_allclose(cam.world_to_camera([0.0, 0.0, 0.0]), cam.translation)


def test_camera_is_frozen_and_validated():
    cam = _camera()
    with pytest.raises(ValueError):
        cam.R_w2c[0, 0] = 3.0
    with pytest.raises(ValueError, match="R_w2c"):
        _camera(R_w2c=np.eye(2))
    with pytest.raises(ValueError, match="distortion_model"):
        _camera(distortion_model="fisheye")
    np.testing.assert_allclose(cam.distortion, [-0.2, 0.2, -0.003, -0.001, -0.0009])


# ----------------------------------------------------------------------------------------------
# metadata.xml on a generated file with the real tags.
# ----------------------------------------------------------------------------------------------
def _metadata_xml(w0, mapping_sizes=True, frames_cells=None):
    subjects = [f"S{i}" for i in range(1, 12)]
    rows = ["<tr>" + "".join(f"<td>{h}</td>" for h in ["Action", "subaction"] + subjects) + "</tr>"]
    names = {(1, 1): "_ALL 1", (1, 2): "_ALL", (2, 1): "Directions 1", (2, 2): "Directions"}
    for (a, s), name in names.items():
        cells = [name] * 11
        if (a, s) == (2, 2):
            cells[4] = "Directions 2"  # S5 irregular name
        rows.append("<tr>" + "".join(f"<td>{v}</td>" for v in [a, s] + cells) + "</tr>")
    if mapping_sizes:
        rows.append(
            "<tr>" + "".join(f"<td>{v}</td>" for v in ["Action", "subaction"] + subjects) + "</tr>"
        )
        size = "[1002 1000;1000 1000;1000 1000;1002 1000]"
        rows.append("<tr><td/><td/>" + f"<td>{size}</td>" * 11 + "</tr>")
    cells = frames_cells or [
        "[10 11 11 10 40]",
        "[20 21 21 20 80]",
        "[30 31 31 30 120]",
        "[40 42 42 40 160]",
    ]
    frames = "".join(
        "<tr><td/>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" for _ in subjects
    )
    w0_text = "[" + " ".join(repr(float(v)) for v in w0) + "]"
    ids = "".join(f"<item>{c}</item>" for c in C.H36M_CAMERA_IDS)
    actions = "".join(f"<item>{a}</item>" for a in ["Miscellaneous", "Directions"])
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<a>\n<mapping>{"".join(rows)}</mapping>\n'
        f"<frames>{frames}</frames>\n<train_subjects>[1 7 8 9 11]</train_subjects>\n"
        f"<val_subjects>[5 6]</val_subjects>\n<test_subjects>[2 3 4 10]</test_subjects>\n"
        f"<w0>{w0_text}</w0>\n<dbcameras><index2id>{ids}</index2id></dbcameras>\n"
        f"<actionnames>{actions}</actionnames>\n</a>\n"
    )


def _w0_fixture():
    w0 = np.zeros(300)
    # Camera 2 (58860488), subject S5 (index 4): rotation about x by 90 deg, centre (1, 2, 3) m.
    w0[6 * (2 * 11 + 4) :][:6] = [np.pi / 2, 0, 0, 1000.0, 2000.0, 3000.0]
    w0[264 + 9 * 2 :][:9] = [1100, 1090, 505, 495, 0.1, 0.01, 0.001, 0.002, 0.003]
    return w0


def test_metadata_fixture_values(tmp_path):
    path = tmp_path / "metadata.xml"
    path.write_text(_metadata_xml(_w0_fixture()))
    md = C.load_h36m_metadata(path)
    assert md.camera_ids == C.H36M_CAMERA_IDS
    assert md.train_subjects == ("S1", "S7", "S8", "S9", "S11")
    assert md.mapping["S5"][1] == ("Directions", ["Directions 1", "Directions 2"])
    assert md.action_sequences("S5") == [
        ("Directions", "Directions 1"),
        ("Directions", "Directions 2"),
    ]
    assert md.frames[("S1", "Directions 1")] == (30, 31, 31, 30)
    assert md.frames[("S5", "Directions 2")] == (40, 42, 42, 40)
    cam = md.cameras[("S5", "58860488")]
    np.testing.assert_allclose(cam.R_w2c, [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-12)
    np.testing.assert_allclose(cam.t_centre_world, [1000, 2000, 3000])
    np.testing.assert_allclose(cam.intrinsics, [1100, 1090, 505, 495])
    np.testing.assert_allclose(cam.k, [0.1, 0.01, 0.001])
    np.testing.assert_allclose(cam.p, [0.002, 0.003])
    assert (cam.width, cam.height) == (1000, 1000)
    assert (md.cameras[("S5", "54138969")].width, md.cameras[("S5", "54138969")].height) == (
        1000,
        1002,
    )
    # A world point 1 m in front along world +y... through Rx(90): y_world -> z_cam.
    np.testing.assert_allclose(
        cam.world_to_camera([1000.0, 3000.0, 3000.0]), [0, 0, 1000], atol=1e-9
    )


def test_metadata_errors_name_file_and_tag(tmp_path):
    bad = tmp_path / "short.xml"
    bad.write_text(_metadata_xml(np.zeros(299)))
    with pytest.raises(ValueError, match=r"short\.xml.*<w0>.*300"):
        C.load_h36m_metadata(bad)
    bad2 = tmp_path / "frames.xml"
    bad2.write_text(_metadata_xml(_w0_fixture(), frames_cells=["[1 2]"] * 4))
    with pytest.raises(ValueError, match=r"frames\.xml.*<frames>"):
        C.load_h36m_metadata(bad2)
    bad3 = tmp_path / "nofr.xml"
    bad3.write_text(
        _metadata_xml(_w0_fixture()).replace("<frames>", "<fr>").replace("</frames>", "</fr>")
    )
    with pytest.raises(ValueError, match=r"nofr\.xml.*<frames> is missing"):
        C.load_h36m_metadata(bad3)
    garbage = tmp_path / "garbage.xml"
    garbage.write_text("<a><mapping>")
    with pytest.raises(ValueError, match="garbage.xml"):
        C.load_h36m_metadata(garbage)


# ----------------------------------------------------------------------------------------------
# 3DHP calibration text formats (fixtures in the exact layouts, trailing spaces included).
# ----------------------------------------------------------------------------------------------
def test_3dhp_camera_calibration_fixture(tmp_path):
    rot = C.rotation_xyz(0.1, 0.2, -0.3)
    t = np.array([-562.8666, 120.5, 4000.25])
    ext = np.eye(4)
    ext[:3, :3], ext[:3, 3] = rot, t
    k = [1497.693, 0, 1024.704, 0, 0, 1497.103, 1051.394, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    lines = ["Skeletool Camera Calibration File V1.0 "]
    for name in ("0", "1"):
        lines += [
            f"name          {name} ",
            "  sensor      10 10 ",
            "  size        2048 2048 ",
            "  animated    0 ",
            "  intrinsic   " + " ".join(map(str, k)) + " ",
            "  extrinsic   " + " ".join(repr(float(v)) for v in ext.ravel()) + " ",
            "  radial      0 ",
        ]
    path = tmp_path / "camera.calibration"
    path.write_text("\n".join(lines) + "\n")
    cams = C.load_3dhp_calibration(path)
    assert sorted(cams) == ["0", "1"]
    cam = cams["1"]
    np.testing.assert_allclose(cam.intrinsics, [1497.693, 1497.103, 1024.704, 1051.394])
    assert (cam.width, cam.height) == (2048, 2048)
    world = np.array([[100.0, -200.0, 300.0]])
    np.testing.assert_allclose(cam.world_to_camera(world), world @ rot.T + t, atol=1e-9)
    # Missing field -> error names file and field.
    path.write_text("\n".join(lines[:6] + lines[7:]) + "\n")  # drop extrinsic
    with pytest.raises(ValueError, match="camera.calibration.*extrinsic"):
        C.load_3dhp_calibration(path)


def _tc_calib_text():
    return (
        "tc camera calibration v0.3\ncamera\t0\tcam_x\n\tframe\t0\n"
        "\t\tsensorSize\t\t 10.0\t  5.625\t# in mm\n\t\tfocalLength\t5.0\t# in mm\n"
        "\t\tpixelAspect\t1.01\t# y / x\n"
        "\t\tcenterOffset\t0.1\t-0.2\t# in mm (positive values move right and down)\n"
        "\t\tdistortionModel\tOpenCV\n\t\tdistortion\t\t 0.1\t0.2\t0.003\t0.004\t0.5\t\n"
        "\t\t\torigin\t100\t200\t300\n\t\t\tup\t0\t0\t1\n\t\t\tright\t1\t0\t0\n"
    )


def test_3dhp_test_calib_fixture(tmp_path):
    path = tmp_path / "ts.calib"
    path.write_text(_tc_calib_text())
    (cam,) = C.load_3dhp_test_calib(path, (1920, 1080))
    # fx = 5/10*1920 = 960; fy = 960*1.01; cx = 960 + 0.1/10*1920; cy = 540 - 0.2/5.625*1080.
    np.testing.assert_allclose(cam.intrinsics, [960.0, 969.6, 979.2, 501.6])
    np.testing.assert_allclose(cam.k, [0.1, 0.2, 0.5])  # OpenCV [k1 k2 p1 p2 k3] reordered
    np.testing.assert_allclose(cam.p, [0.003, 0.004])
    assert cam.distortion_model == "opencv"
    # x = right = world x, y = -up = -world z, z = forward = world y.
    np.testing.assert_allclose(cam.R_w2c, [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-12)
    np.testing.assert_allclose(cam.world_to_camera([100.0, 1200.0, 300.0]), [0, 0, 1000])
    path.write_text(_tc_calib_text().replace("\t\tfocalLength\t5.0\t# in mm\n", ""))
    with pytest.raises(ValueError, match="ts.calib.*focalLength"):
        C.load_3dhp_test_calib(path, (1920, 1080))


# ----------------------------------------------------------------------------------------------
# Real files.
# ----------------------------------------------------------------------------------------------
def _subject_camera(imgname: str) -> tuple[str, str]:
    """("S1", "54138969") from a sample name like "S1/S1_Directions_1.54138969/..._000001.jpg"."""
    match = re.search(r"(S\d+)_[^/]*\.(\d{8})_\d+\.jpg$", imgname)
    assert match is not None, imgname
    return match.group(1), match.group(2)


@pytest.fixture(scope="module")
def h36m_metadata():
    return C.load_h36m_metadata(require_realdata("h36m", "metadata.xml"))


@pytest.mark.realdata
def test_real_metadata_tables(h36m_metadata):
    md = h36m_metadata
    assert md.camera_ids == C.H36M_CAMERA_IDS
    assert len(md.cameras) == 44
    # Irregular names from datasets.md 3.4.
    actions = {s: dict(md.mapping[s]) for s in md.mapping}
    assert actions["S1"]["Eating"] == ["Eating 2", "Eating"]
    assert actions["S1"]["TakingPhoto"] == ["TakingPhoto 1", "TakingPhoto"]
    assert actions["S5"]["TakingPhoto"] == ["Photo", "Photo 2"]
    assert actions["S11"]["Phoning"] == ["Phoning 3", "Phoning 2"]
    assert actions["S8"]["WalkingTogether"] == ["WalkTogether 1", "WalkTogether 2"]
    for s in ("S1", "S5", "S6", "S7", "S8", "S9", "S11"):
        seqs = md.action_sequences(s)
        assert len(seqs) == 30 and len({p for _, p in seqs}) == 30
        assert all((s, p) in md.frames for _, p in seqs)
    assert md.frames[("S1", "Directions 1")] == (1384, 1387, 1387, 1384)
    assert md.test_subjects == ("S2", "S3", "S4", "S10")


@pytest.mark.realdata
def test_real_metadata_cameras_project_h36m_ground_truth(h36m_metadata):
    data = np.load(require_realdata("mmpose_samples", "h36m", "test_h36m_body3d.npz"))
    for name, s3d, part in zip(data["imgname"], data["S"], data["part"]):
        cam = h36m_metadata.cameras[_subject_camera(str(name))]
        uv = cam.project(s3d[:, :3] * 1000.0)  # metres -> mm (only ratios matter)
        np.testing.assert_array_less(np.abs(uv - part[:, :2]), 0.01, err_msg=str(name))
        pinhole = C.project_points(s3d[:, :3], cam.intrinsics)
        assert np.abs(pinhole - part[:, :2]).max() > 0.5  # distortion matters on real frames


@pytest.mark.realdata
def test_real_metadata_cameras_agree_with_mmpose_pickle(h36m_metadata):
    with open(require_realdata("mmpose_samples", "h36m", "cameras.pkl"), "rb") as f:
        pkl = pickle.load(f)
    assert set(pkl) == set(h36m_metadata.cameras)
    for key, entry in pkl.items():
        cam = h36m_metadata.cameras[key]
        np.testing.assert_allclose(cam.R_w2c, np.asarray(entry["R"]).T, atol=1e-9)
        np.testing.assert_allclose(cam.t_centre_world / 1000.0, np.ravel(entry["T"]), atol=1e-9)
        np.testing.assert_allclose(cam.intrinsics[:2], np.ravel(entry["f"]), rtol=1e-12)
        np.testing.assert_allclose(cam.intrinsics[2:], np.ravel(entry["c"]), rtol=1e-12)
        np.testing.assert_allclose(cam.k, np.ravel(entry["k"]), rtol=1e-12)
        np.testing.assert_allclose(cam.p, np.ravel(entry["p"]), rtol=1e-12)


@pytest.mark.realdata
def test_real_metadata_resolution_matches_frames(h36m_metadata):
    cv2 = pytest.importorskip("cv2")
    data = np.load(require_realdata("mmpose_samples", "h36m", "test_h36m_body3d.npz"))
    root = require_realdata("mmpose_samples", "h36m")
    for name in data["imgname"]:
        height, width = cv2.imread(str(root / str(name))).shape[:2]
        cam = h36m_metadata.cameras[_subject_camera(str(name))]
        assert (cam.width, cam.height) == (width, height), name


@pytest.mark.realdata
def test_real_3dhp_test_calib_intrinsics():
    expected = {  # datasets.md 4.3
        "ts1-4cameras.calib": ((2048, 2048), [1500.17, 1500.83, 1017.39, 1043.03], [0] * 5),
        "ts5-6cameras.calib": (
            (1920, 1080),
            [1683.98, 1672.59, 939.86, 560.14],
            [-0.27686, 0.13113, -0.00036, -0.00115, -0.04932],
        ),
    }
    for name, (size, intr, cv_dist) in expected.items():
        (cam,) = C.load_3dhp_test_calib(require_realdata("mpi_inf_3dhp", name), size)
        np.testing.assert_allclose(cam.intrinsics, intr, atol=0.006)
        k1, k2, p1, p2, k3 = cv_dist
        np.testing.assert_allclose(cam.distortion, [k1, k2, k3, p1, p2], atol=6e-6)
        np.testing.assert_allclose(cam.R_w2c @ cam.R_w2c.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(cam.R_w2c) == pytest.approx(1.0)


@pytest.mark.realdata
def test_real_3dhp_ts1_ground_truth_projects_with_calib():
    (cam,) = C.load_3dhp_test_calib(
        require_realdata("mpi_inf_3dhp", "ts1-4cameras.calib"), C.MPI3DHP_TEST_IMAGE_SIZE["TS1"]
    )
    data = np.load(require_realdata("mmpose_samples", "mpi_inf_3dhp", "test_3dhp_test.npz"))
    assert str(data["imgname"][0]).startswith("TS1")
    err = np.linalg.norm(cam.project(data["S"][0, :, :3]) - data["part"][0, :, :2], axis=-1)
    assert np.median(err) < 0.01  # most joints to 0.01 px; a few annotated ones to ~1.3 px
    assert err.max() < 2.0


# ----------------------------------------------------------------------------------------------
# Content instead of a local path (the Beam jobs read through tf.io.gfile: no local copy).
# ----------------------------------------------------------------------------------------------
def _same_camera(a, b):
    assert (a.id, a.width, a.height, a.distortion_model) == (
        b.id,
        b.width,
        b.height,
        b.distortion_model,
    )
    for field in ("R_w2c", "t_centre_world", "intrinsics", "k", "p"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


@pytest.mark.parametrize("as_bytes", [False, True])
def test_loaders_take_the_content_and_name_the_given_path(tmp_path, as_bytes):
    url = "gs://bucket/raw/h36m/metadata.xml"  # never opened: only named
    xml = _metadata_xml(_w0_fixture())
    (tmp_path / "metadata.xml").write_text(xml)
    from_file = C.load_h36m_metadata(tmp_path / "metadata.xml")
    given = C.load_h36m_metadata(url, text=xml.encode() if as_bytes else xml)
    assert given.path == url and from_file.path == str(tmp_path / "metadata.xml")
    assert (given.mapping, given.frames, given.resolutions) == (
        from_file.mapping,
        from_file.frames,
        from_file.resolutions,
    )
    assert sorted(given.cameras) == sorted(from_file.cameras)
    for key, cam in from_file.cameras.items():
        _same_camera(given.cameras[key], cam)
    with pytest.raises(ValueError, match=r"^gs://bucket/raw/h36m/metadata\.xml: <w0> must hold"):
        C.load_h36m_metadata(url, text=_metadata_xml(np.zeros(299)))
    with pytest.raises(ValueError, match=r"^gs://bucket/raw/h36m/metadata\.xml: cannot parse"):
        C.load_h36m_metadata(url, text="<a><mapping>")

    calib = _tc_calib_text()
    (tmp_path / "ts.calib").write_text(calib)
    (from_file_cam,) = C.load_3dhp_test_calib(tmp_path / "ts.calib", (1920, 1080))
    (given_cam,) = C.load_3dhp_test_calib(
        "ram://x/ts.calib", (1920, 1080), text=calib.encode() if as_bytes else calib
    )
    _same_camera(given_cam, from_file_cam)
    with pytest.raises(ValueError, match=r"^ram://x/ts\.calib:2 \(camera 0 cam_x\): missing"):
        C.load_3dhp_test_calib(
            "ram://x/ts.calib",
            (1920, 1080),
            text=calib.replace("\t\tfocalLength\t5.0\t# in mm\n", ""),
        )

    skeletool = (
        "Skeletool Camera Calibration File V1.0 \nname 3 \n  size 2048 2048 \n"
        "  intrinsic " + " ".join(["1"] * 16) + " \n"
        "  extrinsic " + " ".join(str(v) for v in np.eye(4).ravel()) + " \n"
    )
    (tmp_path / "camera.calibration").write_text(skeletool)
    from_file_cams = C.load_3dhp_calibration(tmp_path / "camera.calibration")
    given_cams = C.load_3dhp_calibration(
        "ram://x/camera.calibration", text=skeletool.encode() if as_bytes else skeletool
    )
    assert sorted(given_cams) == sorted(from_file_cams) == ["3"]
    _same_camera(given_cams["3"], from_file_cams["3"])
    with pytest.raises(ValueError, match=r"^ram://x/camera\.calibration: first line"):
        C.load_3dhp_calibration("ram://x/camera.calibration", text="nonsense\n")
    with pytest.raises(ValueError, match=r"^ram://x/camera\.calibration: not UTF-8"):
        C.load_3dhp_calibration("ram://x/camera.calibration", text=b"\xff\xfe\x00")


@pytest.mark.realdata
def test_real_camera_files_given_as_content_parse_identically():
    path = require_realdata("h36m", "metadata.xml")
    from_file = C.load_h36m_metadata(path)
    given = C.load_h36m_metadata("ram://h36m/metadata.xml", text=path.read_bytes())
    assert given.frames == from_file.frames and given.mapping == from_file.mapping
    for key, cam in from_file.cameras.items():
        _same_camera(given.cameras[key], cam)
    for name in ("ts1-4cameras.calib", "ts5-6cameras.calib"):
        calib = require_realdata("mpi_inf_3dhp", name)
        for a, b in zip(
            C.load_3dhp_test_calib(calib, (2048, 2048)),
            C.load_3dhp_test_calib(name, (2048, 2048), text=calib.read_text()),
            strict=True,
        ):
            _same_camera(a, b)
