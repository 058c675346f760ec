"""BVH: Euler round trip, written files parse and FK replays the joint positions."""

import numpy as np
import pytest

from keras_pose3d import skeleton
from keras_pose3d.inference import bvh, fitting
from tests.conftest import require_realdata


def _rotations(n, seed=0):
    q = np.random.default_rng(seed).normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def test_euler_zxy_round_trip_including_gimbal_lock():
    rots = _rotations(200)
    locked = (
        bvh.axis_rotation("Z", 30.0) @ bvh.axis_rotation("X", 90.0) @ bvh.axis_rotation("Y", 40.0)
    )
    rots = np.concatenate([rots, locked[None]])
    zxy = bvh.euler_zxy_from_matrix(rots)
    back = (
        bvh.axis_rotation("Z", zxy[:, 0])
        @ bvh.axis_rotation("X", zxy[:, 1])
        @ bvh.axis_rotation("Y", zxy[:, 2])
    )
    np.testing.assert_allclose(back, rots, atol=1e-9)


def test_axis_rotation_hand_value():
    np.testing.assert_allclose(bvh.axis_rotation("Z", 90.0) @ [1.0, 0, 0], [0, 1, 0], atol=1e-12)


def _motion(frames=12, seed=0):
    rng = np.random.default_rng(seed)
    base = fitting.fit_skeleton(rng.normal(0, 300, (16, 3)))
    drift = np.cumsum(rng.normal(0, 40, (frames, 16, 3)), axis=0)
    return base + drift


def test_written_file_parses_and_fk_replays_positions(tmp_path):
    poses = _motion()
    path = tmp_path / "motion.bvh"
    fitted = bvh.write_bvh(path, poses, frame_time=0.04)
    # Lengths follow the first frame; the first frame is reproduced as given.
    np.testing.assert_allclose(fitted[0], poses[0], atol=1e-9)
    np.testing.assert_allclose(
        skeleton.bone_lengths(fitted),
        np.broadcast_to(skeleton.bone_lengths(poses[0]), (12, 15)),
        atol=1e-9,
    )
    parsed = bvh.read_bvh(path)
    assert parsed.motion.shape[0] == 12 and parsed.frame_time == pytest.approx(0.04)
    assert parsed.channels[0] == bvh.ROOT_CHANNELS
    assert "pelvis_to_thorax" in parsed.names and "thorax_to_r_shoulder" in parsed.names
    np.testing.assert_allclose(bvh.joint_positions(parsed), fitted, atol=1e-3)


def test_given_skeleton_lengths_are_used(tmp_path):
    poses = _motion(seed=1)
    fitted = bvh.write_bvh(tmp_path / "m.bvh", poses, lengths=skeleton.STANDARD_BONE_LENGTHS_MM)
    np.testing.assert_allclose(
        skeleton.bone_lengths(fitted)[3], skeleton.STANDARD_BONE_LENGTHS_MM, atol=1e-9
    )
    np.testing.assert_allclose(
        bvh.joint_positions(bvh.read_bvh(tmp_path / "m.bvh")), fitted, atol=1e-3
    )


def test_truncated_file_raises_naming_it(tmp_path):
    path = tmp_path / "bad.bvh"
    bvh.write_bvh(path, _motion(frames=3))
    path.write_text(path.read_text().rsplit("\n", 2)[0])
    with pytest.raises(ValueError, match="bad.bvh.*MOTION"):
        bvh.read_bvh(path)


@pytest.mark.realdata
def test_real_h36m_motion_round_trips(tmp_path):
    path = require_realdata("h36m_motion", "S9.npz")
    with np.load(path) as data:
        poses = skeleton.h36m17_to_mpii(data["Walking_1/global_rot"][:200:4])
    fitted = bvh.write_bvh(tmp_path / "walk.bvh", poses)
    np.testing.assert_allclose(
        bvh.joint_positions(bvh.read_bvh(tmp_path / "walk.bvh")), fitted, atol=1e-3
    )
    # Real motion keeps its bone lengths, so fitting moves the joints only slightly.
    assert np.max(np.linalg.norm(fitted - poses, axis=-1)) < 5.0
