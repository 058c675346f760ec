"""The synthetic default: anatomy, legality, labels, rendering cues and the Beam job."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d import config, skeleton
from keras_pose3d.config import SyntheticConfig
from keras_pose3d.data import features
from keras_pose3d.data import synthetic as syn
from pipelines import running, synthetic_to_tfrecord


def _eq1_margins(pose: np.ndarray) -> np.ndarray:
    """Paper Eq. 1 products, unit-normalised: sign * ((a - n) x (b - a)) . (c - b) per limb."""
    out = []
    for _, n, a, b, c, sign in skeleton.ANGLE_LIMBS:
        normal = np.cross(pose[a] - pose[n], pose[b] - pose[a])
        lower = pose[c] - pose[b]
        out.append(sign * normal @ lower / np.linalg.norm(normal) / np.linalg.norm(lower))
    return np.array(out)


def _random_angles(rng):
    return {n: rng.uniform(*syn._param_range(n)) for n in syn.PARAM_NAMES}


# ----------------------------------------------------------------------------------------------
# Anatomy and legality.
# ----------------------------------------------------------------------------------------------
def test_subject_bones_symmetric_and_human_scale():
    for seed in range(5):
        bones = syn.subject_bone_lengths(np.random.default_rng(seed))
        index = {b: i for i, b in enumerate(skeleton.BONES)}
        for right, left in skeleton.SYMMETRY_BONE_PAIRS:
            assert bones[index[right]] == bones[index[left]]
        assert bones[index[(2, 6)]] == bones[index[(3, 6)]]
        ratio = bones / np.asarray(skeleton.STANDARD_BONE_LENGTHS_MM)
        assert np.all((ratio > 0.9 * 0.96 - 1e-3) & (ratio < 1.1 * 1.04 + 1e-3))


def test_pose_bone_lengths_exact_and_all_limbs_legal():
    rng = np.random.default_rng(0)
    bones = syn.subject_bone_lengths(rng)
    for _ in range(300):
        pose = syn.pose_from_angles(_random_angles(rng), bones)
        np.testing.assert_allclose(skeleton.bone_lengths(pose), bones, rtol=1e-12)
        np.testing.assert_array_equal(pose[skeleton.ROOT], [0.0, 0.0, 0.0])
        # Bound by construction: sin(min flex) * cos(max twist) = sin 5 deg * cos 60 deg (elbow).
        assert np.all(_eq1_margins(pose) > 0.04)


def test_mirrored_elbow_is_illegal():
    # The check above can fail: reflecting the forearm through the collar/upper-arm plane
    # (an elbow bent backwards) must make Eq. 1 negative for that limb only.
    rng = np.random.default_rng(1)
    pose = syn.pose_from_angles(_random_angles(rng), syn.subject_bone_lengths(rng))
    _, n, a, b, c, _ = skeleton.ANGLE_LIMBS[0]
    normal = np.cross(pose[a] - pose[n], pose[b] - pose[a])
    normal /= np.linalg.norm(normal)
    lower = pose[c] - pose[b]
    bad = pose.copy()
    bad[c] = pose[b] + lower - 2 * (lower @ normal) * normal
    margins = _eq1_margins(bad)
    assert margins[0] < 0 and np.all(margins[1:] > 0)


def test_standing_pose_directions():
    # Arms down and slightly bent: the forearm goes forward (+z), the shin backward (-z).
    angles = {n: 0.0 for n in syn.PARAM_NAMES}
    angles.update({"l_arm_elev": 5.0, "r_arm_elev": 5.0, "l_elbow": 30.0, "r_elbow": 30.0})
    angles.update({"l_knee": 30.0, "r_knee": 30.0})
    pose = syn.pose_from_angles(angles, syn.subject_bone_lengths(np.random.default_rng(0)))
    j = skeleton.J
    assert pose[j["l_hip"], 0] > 0 > pose[j["r_hip"], 0]  # x = the subject's left
    assert pose[j["head_top"], 1] > pose[j["thorax"], 1] > 0 > pose[j["r_knee"], 1]
    for wrist, elbow in ((10, 11), (15, 14)):
        assert pose[wrist, 2] - pose[elbow, 2] > 0.4 * np.linalg.norm(pose[wrist] - pose[elbow])
    for ankle, knee in ((0, 1), (5, 4)):
        assert pose[ankle, 2] - pose[knee, 2] < -0.4 * np.linalg.norm(pose[ankle] - pose[knee])


@pytest.mark.parametrize("style", syn.MOTION_STYLES)
def test_motion_inside_ranges_and_smooth(style):
    rng = np.random.default_rng(7)
    motion = syn.sample_motion(rng, style, 200)
    assert set(motion) == set(syn.PARAM_NAMES)
    for name, values in motion.items():
        lo, hi = syn._param_range(name)
        assert values.min() >= lo - 1e-9 and values.max() <= hi + 1e-9, name
        # <= 2 pi f A per second at f <= 0.6 Hz: a few degrees per 0.1 s frame at most.
        assert np.abs(np.diff(values)).max() <= 2 * math.pi * 0.6 * (hi - lo) / 2 / syn.FPS


def test_look_at_is_a_proper_rotation_towards_target():
    position, target = np.array([3000.0, 1500.0, -2000.0]), np.array([10.0, 20.0, 30.0])
    rot = syn.look_at(position, target)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot) == pytest.approx(1.0)
    cam = rot @ (target - position)
    np.testing.assert_allclose(cam[:2], [0, 0], atol=1e-9)
    assert cam[2] == pytest.approx(np.linalg.norm(target - position))
    # World up is image up (camera y points down).
    assert (rot @ np.array([0.0, 1.0, 0.0]))[1] < 0


def test_camera_elevation_follows_the_configured_range():
    """The elevation, measured back from the camera's rotation (its optical axis against world
    up, y), stays in the range asked for; the default range draws the same cameras as before
    the range existed (same random numbers consumed)."""

    def elevation_deg(camera):
        axis = camera["rotation"][2]  # optical axis in world coordinates
        return math.degrees(math.asin(-axis[1]))

    rng = np.random.default_rng(7)
    narrow = [elevation_deg(syn.random_camera(rng, (10.0, 16.0))) for _ in range(200)]
    # The camera aims at a target within 0.2 m of the person, 3-6 m away: <= 4 deg off.
    assert 6.0 < min(narrow) and max(narrow) < 20.0
    assert np.mean(narrow) == pytest.approx(13.0, abs=1.0)
    a = syn.random_camera(np.random.default_rng(3))
    b = syn.random_camera(np.random.default_rng(3), (-5.0, 30.0))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    with pytest.raises(
        ValueError, match=r"max_elevation_deg.*must be >= min_elevation_deg \(20.0\)"
    ):
        SyntheticConfig(min_elevation_deg=20.0, max_elevation_deg=10.0)
    with pytest.raises(ValueError, match=r"data.synthetic.max_elevation_deg.*\[-89, 89\].*95"):
        SyntheticConfig(max_elevation_deg=95.0)
    with pytest.raises(ValueError, match=r"data.synthetic.min_elevation_deg.*-90"):
        SyntheticConfig(min_elevation_deg=-90.0)


# ----------------------------------------------------------------------------------------------
# Records.
# ----------------------------------------------------------------------------------------------
def test_generate_sequence_labels_are_exact():
    params = SyntheticConfig(num_subjects=3, frames_per_sequence=6, crop_size=64, seed=3)
    assert params.subjects() == [
        ("train", "S1", True),
        ("train", "2d_S2", False),
        ("validation", "S3", True),
    ]
    for subject_index in range(3):
        items = list(syn.generate_sequence(params, subject_index, 0))
        assert [r["frame"] for _, _, r in items] == list(range(6))
        for split, item_id, r in items:
            assert item_id == f"{r['subject']}/{r['sequence']}/{r['frame']}"
            assert split == params.subjects()[subject_index][0]
            if not r["has_3d"]:
                assert r["joints_3d"] is None and r["intrinsics"] is None
                continue
            k = r["intrinsics"]
            j3 = r["joints_3d"]
            projected = j3[:, :2] / j3[:, 2:] * k[:2] + k[2:]
            np.testing.assert_allclose(projected, r["joints_2d"], atol=1e-9)
            assert 2500 < j3[skeleton.ROOT, 2] < 6500  # camera 3-6 m away
            assert np.all(_eq1_margins(j3) > 0)
            # The person box (joint box x 1.2) fills 1 / PERSON_MARGIN of the crop, and every
            # joint lies inside the un-augmented network input (the person box).
            extent = np.max(r["joints_2d"].max(0) - r["joints_2d"].min(0))
            assert extent * 1.2 * features.PERSON_MARGIN == pytest.approx(64, rel=1e-9)
            half = 64 / features.PERSON_MARGIN / 2
            assert np.all(np.abs(r["joints_2d"] - (64 - 1) / 2) < half)
            assert np.all(r["visibility"] == 1)


def test_generation_is_deterministic_and_seed_dependent():
    params = SyntheticConfig(num_subjects=3, frames_per_sequence=3, crop_size=32, seed=5)
    a = [r["image_jpeg"] for _, _, r in syn.generate_sequence(params, 0, 1)]
    b = [r["image_jpeg"] for _, _, r in syn.generate_sequence(params, 0, 1)]
    other = SyntheticConfig(num_subjects=3, frames_per_sequence=3, crop_size=32, seed=6)
    c = [r["image_jpeg"] for _, _, r in syn.generate_sequence(other, 0, 1)]
    assert a == b and a != c


def test_params_validation():
    with pytest.raises(ValueError, match="at least one 3D training subject"):
        SyntheticConfig(num_subjects=2, num_2d_subjects=1)
    with pytest.raises(ValueError, match="crop_size"):
        SyntheticConfig(crop_size=0)


def test_yaml_section_is_the_generator_parameters():
    stages = {"stages": [{"name": "s", "steps": 1, "learning_rate": 1e-3, "losses": ["heatmap"]}]}
    section = {"num_subjects": 4, "crop_size": 32, "num_shards": 2, "num_validation_subjects": 2}
    cfg = config.from_dict(
        {"train": stages, "data": {"generate_synthetic": True, "synthetic": section}}
    )
    assert cfg.data.synthetic == SyntheticConfig(**section)
    assert cfg.data.synthetic.subjects() == [
        ("train", "S1", True),
        ("train", "2d_S2", False),
        ("validation", "S3", True),
        ("validation", "S4", True),
    ]
    with pytest.raises(config.ConfigError, match="data.synthetic.num_subject'.*num_subjects"):
        config.from_dict(
            {"train": stages, "data": {"generate_synthetic": True, "synthetic": {"num_subject": 4}}}
        )
    with pytest.raises(config.ConfigError, match="data.synthetic.num_subjects.*3D training"):
        config.from_dict(
            {
                "train": stages,
                "data": {"generate_synthetic": True, "synthetic": {"num_subjects": 1}},
            }
        )


# ----------------------------------------------------------------------------------------------
# Rendering cues.
# ----------------------------------------------------------------------------------------------
def _crossing_forearms(z_right: float, z_left: float):
    # Right forearm horizontal, left forearm vertical, crossing at (32, 30); every other joint
    # far outside the 64 px canvas so nothing else covers the crossing.
    j2 = np.full((16, 2), -500.0)
    j2[11], j2[10] = (10, 30), (54, 30)
    j2[14], j2[15] = (32, 8), (32, 54)
    j2[12], j2[13] = (10, -500), (32, -500)
    j3 = np.full((16, 3), 4000.0)
    j3[[10, 11], 2] = z_right
    j3[[14, 15], 2] = z_left
    appearance = syn.random_appearance(np.random.default_rng(0))
    image = syn.render_person(
        np.zeros((64, 64, 3), np.uint8), j2, j3, np.array([60.0, 60.0, 32, 32]), appearance
    )
    return image.astype(float)


def test_nearer_limb_drawn_on_top_and_brighter():
    near_right = _crossing_forearms(3000.0, 5000.0)
    near_left = _crossing_forearms(5000.0, 3000.0)
    r, _, b = near_right[30, 32]
    assert r > b  # right limbs are red-ish: the right forearm covers the left one
    r, _, b = near_left[30, 32]
    assert b > r  # left limbs are blue-ish
    # The same limb is brighter when nearer than the pelvis (4000 mm) than when farther.
    assert near_right[30, 48].sum() > near_left[30, 48].sum()


# ----------------------------------------------------------------------------------------------
# The Beam job.
# ----------------------------------------------------------------------------------------------
def _job(out, *extra):
    return synthetic_to_tfrecord.run(
        [
            f"--output_dir={out}",
            "--num_subjects=3",
            "--sequences_per_subject=2",
            "--frames_per_sequence=3",
            "--crop_size=32",
            "--num_shards=2",
            "--seed=1",
            *extra,
        ]
    )


def _records(out, manifest, split):
    files = [str(out / name) for name in manifest["splits"][split]["files"]]
    return [features.decode_record(r.numpy()) for r in tf.data.TFRecordDataset(files)]


@pytest.mark.beam
def test_job_writes_exact_labels_and_reproduces_bytes(tmp_path):
    manifest = _job(tmp_path / "a")
    assert manifest["num_examples"] == 18 and manifest["dead_letter_count"] == 0
    train = manifest["splits"]["train"]
    assert train["subjects"] == {"2d_S2": 6, "S1": 6} and train["has_3d"] == 6
    assert manifest["splits"]["validation"]["subjects"] == {"S3": 6}
    assert json.loads((tmp_path / "a" / "manifest.json").read_text()) == manifest

    for split in ("train", "validation"):
        records = _records(tmp_path / "a", manifest, split)
        assert len(records) == manifest["splits"][split]["num_examples"]
        for r in records:
            assert r["dataset"] == "synthetic" and r["image_size"].tolist() == [32, 32]
            if not r["has_3d"]:
                assert r["subject"].startswith("2d_")
                assert not r["joints_3d"].any() and not r["intrinsics"].any()
                continue
            j3, k = r["joints_3d"].astype(np.float64), r["intrinsics"].astype(np.float64)
            projected = j3[:, :2] / j3[:, 2:] * k[:2] + k[2:]
            np.testing.assert_allclose(projected, r["joints_2d"], atol=1e-3)
            lengths = skeleton.bone_lengths(j3)
            index = {b: i for i, b in enumerate(skeleton.BONES)}
            for right, left in skeleton.SYMMETRY_BONE_PAIRS:
                assert lengths[index[right]] == pytest.approx(lengths[index[left]], abs=1e-2)
            assert np.all(_eq1_margins(j3) > 0)

    _job(tmp_path / "b")
    names = [n for e in manifest["splits"].values() for n in e["files"]]
    for name in names + [manifest["dead_letter_file"]]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.beam
def test_ensure_synthetic_dataset_generates_once(tmp_path):
    params = {"num_subjects": 3, "sequences_per_subject": 1, "frames_per_sequence": 2}
    params["crop_size"] = 32
    assert synthetic_to_tfrecord.ensure_synthetic_dataset(tmp_path, num_shards=1, **params) is True
    assert running.verify_output(str(tmp_path))["num_examples"] == 6
    stamp = (tmp_path / "manifest.json").stat().st_mtime_ns
    assert synthetic_to_tfrecord.ensure_synthetic_dataset(tmp_path, num_shards=1, **params) is False
    assert (tmp_path / "manifest.json").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="other parameters"):
        synthetic_to_tfrecord.ensure_synthetic_dataset(
            tmp_path, num_shards=1, **dict(params, crop_size=48)
        )
    with pytest.raises(ValueError, match="min_elevation_deg"):
        synthetic_to_tfrecord.ensure_synthetic_dataset(
            tmp_path, num_shards=1, **dict(params, min_elevation_deg=5.0)
        )
    # A manifest written before a parameter existed holds the data of its default.
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    del manifest["job_args"]["min_elevation_deg"], manifest["job_args"]["max_elevation_deg"]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert synthetic_to_tfrecord.ensure_synthetic_dataset(tmp_path, num_shards=1, **params) is False
