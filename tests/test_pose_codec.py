"""pose_codec: hand-computed targets, NumPy == TF, exact round trip to mm on pinhole data."""

import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d import skeleton
from keras_pose3d.data import pose_codec

S = 256


def _random_scene(rng, batch=5):
    """Poses in front of a camera and the crop intrinsics of a 256 px input."""
    pose = rng.normal(0.0, 300.0, size=(batch, 16, 3))
    pose[..., 2] += rng.uniform(3000.0, 6000.0, size=(batch, 1))
    fx = rng.uniform(400.0, 900.0, size=batch)
    intr = np.stack(
        [fx, fx * 1.001, rng.uniform(100, 150, batch), rng.uniform(100, 150, batch)], axis=-1
    )
    return pose, intr


def test_hand_computed_targets():
    pose = np.zeros((16, 3))
    pose[:, 2] = 5000.0
    pose[3] = [0.0, 0.0, 5100.0]
    intr = np.array([500.0, 500.0, 128.0, 128.0])
    joints_2d = np.full((16, 2), 128.0)
    joints_2d[3] = [192.0, 64.0]
    enc = pose_codec.encode_pose_3d(pose, intr, S, joints_2d_px=joints_2d)
    # x = (192 - 128) / 128, y = (64 - 128) / 128, z = 100 * 500 / 5000 / 128.
    np.testing.assert_allclose(enc[3], [0.5, -0.5, 100 * 500 / 5000 / 128], rtol=1e-12)
    np.testing.assert_allclose(enc[skeleton.ROOT], [0.0, 0.0, 0.0], atol=1e-12)


def test_project_pinhole_hand_values():
    # X/Z = 0.1, Y/Z = 0.2 -> u = 500 * 0.1 + 128, v = 400 * 0.2 + 120; batched (B, J, 3).
    pose = np.array([[[100.0, 200.0, 1000.0], [-300.0, 0.0, 3000.0]]])
    uv = pose_codec.project_pinhole(pose, np.array([[500.0, 400.0, 128.0, 120.0]]))
    np.testing.assert_allclose(uv, [[[178.0, 200.0], [78.0, 120.0]]])


def test_pinhole_round_trip_recovers_mm_exactly():
    rng = np.random.default_rng(0)
    pose, intr = _random_scene(rng)
    enc = pose_codec.encode_pose_3d(pose, intr, S)
    dec = pose_codec.decode_pose_3d(enc, intr, pose[:, skeleton.ROOT, 2], S)
    np.testing.assert_allclose(dec, pose, rtol=0, atol=1e-8)
    dec_tf = pose_codec.decode_pose_3d_tf(
        tf.constant(enc),
        tf.constant(intr),
        tf.constant(pose[:, skeleton.ROOT, 2]),
        S,
    )
    np.testing.assert_allclose(dec_tf.numpy(), pose, rtol=0, atol=1e-8)


def test_numpy_and_tf_agree():
    rng = np.random.default_rng(1)
    pose, intr = _random_scene(rng)
    j2d = rng.uniform(0, S, size=(5, 16, 2))
    pairs = [
        (pose_codec.normalise_2d(j2d, S), pose_codec.normalise_2d_tf(j2d, S)),
        (pose_codec.denormalise_2d(j2d, S), pose_codec.denormalise_2d_tf(j2d, S)),
        (pose_codec.depth_target(pose, intr, S), pose_codec.depth_target_tf(pose, intr, S)),
        (pose_codec.to_root_relative_mm(pose), pose_codec.to_root_relative_mm_tf(pose)),
    ]
    for ref, got in pairs:
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12, atol=1e-9)
    # float32 in, float32 out, same values to float32 precision.
    got32 = pose_codec.depth_target_tf(pose.astype(np.float32), intr.astype(np.float32), S)
    assert got32.dtype == tf.float32
    np.testing.assert_allclose(
        got32.numpy(), pose_codec.depth_target(pose, intr, S), rtol=1e-4, atol=1e-5
    )


def test_units_are_isotropic():
    """A 100 mm bone along X and one along Z have (nearly) the same normalised length."""
    intr = np.array([600.0, 600.0, 128.0, 128.0])
    pose = np.zeros((16, 3))
    pose[:, 2] = 4000.0
    pose[0] = [100.0, 0.0, 4000.0]  # along X from the root
    pose[1] = [0.0, 0.0, 4100.0]  # along Z from the root
    enc = pose_codec.encode_pose_3d(pose, intr, S)
    len_x = np.linalg.norm(enc[0] - enc[skeleton.ROOT])
    len_z = np.linalg.norm(enc[1] - enc[skeleton.ROOT])
    assert len_x == pytest.approx(100 * 600 / 4000 / 128, rel=1e-9)
    assert len_z == pytest.approx(len_x, rel=1e-9)


def test_two_d_only_samples_give_zero_depth_not_nan():
    depth = pose_codec.depth_target(np.zeros((2, 16, 3)), np.zeros((2, 4)), S)
    np.testing.assert_array_equal(depth, np.zeros((2, 16)))
    depth_tf = pose_codec.depth_target_tf(tf.zeros((2, 16, 3)), tf.zeros((2, 4)), S)
    np.testing.assert_array_equal(depth_tf.numpy(), np.zeros((2, 16)))


def test_root_relative():
    pose = np.arange(48, dtype=float).reshape(16, 3)
    rel = pose_codec.to_root_relative_mm(pose)
    np.testing.assert_array_equal(rel, pose - pose[skeleton.ROOT])


def test_bad_input_size_raises():
    with pytest.raises(ValueError, match="input_size"):
        pose_codec.normalise_2d(np.zeros((16, 2)), 0)
