"""Skeleton fitting: exact target lengths, preserved directions, fixed point, hand values."""

import numpy as np
import pytest

from keras_pose3d import skeleton
from keras_pose3d.inference import fitting


def _random_poses(n, seed=0):
    return np.random.default_rng(seed).normal(0, 300, (n, 16, 3))


def test_topological_order_puts_parents_first():
    order = fitting.topological_order()
    assert order[0] == skeleton.ROOT and sorted(order) == list(range(16))
    for j, p in enumerate(skeleton.MPII_PARENTS):
        if p >= 0:
            assert order.index(p) < order.index(j)
    with pytest.raises(ValueError, match="root"):
        fitting.topological_order((1, 0))


def test_lengths_exact_directions_preserved_root_kept():
    pose = _random_poses(5)
    fitted = fitting.fit_skeleton(pose)
    np.testing.assert_allclose(
        skeleton.bone_lengths(fitted),
        np.broadcast_to(skeleton.STANDARD_BONE_LENGTHS_MM, (5, 15)),
        atol=1e-9,
    )
    for child, parent in skeleton.BONES:
        a = pose[:, child] - pose[:, parent]
        b = fitted[:, child] - fitted[:, parent]
        cos = np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
        np.testing.assert_allclose(cos, 1.0, atol=1e-12)
    np.testing.assert_array_equal(fitted[:, skeleton.ROOT], pose[:, skeleton.ROOT])


def test_hand_computed_chain():
    # Three-joint chain 0 <- 1 <- 2 (root 0): bones along x then y, targets 2 and 3.
    pose = np.array([[0.0, 0, 0], [5.0, 0, 0], [5.0, 1.0, 0]])
    fitted = fitting.fit_skeleton(pose, [2.0, 3.0], parents=(-1, 0, 1))
    np.testing.assert_allclose(fitted, [[0, 0, 0], [2, 0, 0], [2, 3, 0]])


def test_pose_with_target_lengths_is_unchanged_and_subject_dict_works():
    pose = fitting.fit_skeleton(_random_poses(3, seed=2))  # standard lengths already
    np.testing.assert_allclose(fitting.fit_skeleton(pose), pose, atol=1e-9)
    subject = {bone: 100.0 + i for i, bone in enumerate(skeleton.BONES)}
    fitted = fitting.fit_skeleton(pose, subject)
    np.testing.assert_allclose(skeleton.bone_lengths(fitted)[0], 100.0 + np.arange(15), atol=1e-9)
    by_name = {skeleton.MPII_JOINTS[c]: 50.0 for c, _ in skeleton.BONES}
    np.testing.assert_allclose(skeleton.bone_lengths(fitting.fit_skeleton(pose, by_name)), 50.0)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"\(\.\.\., 16, 3\)"):
        fitting.fit_skeleton(np.zeros((4, 3)))
    with pytest.raises(KeyError, match="r_ankle"):
        fitting.fit_skeleton(np.ones((16, 3)), {(1, 2): 3.0})
    with pytest.raises(ValueError, match="15 values"):
        fitting.fit_skeleton(np.ones((16, 3)), [1.0, 2.0])


def test_degenerate_bone_still_gets_its_length():
    pose = _random_poses(1)[0]
    pose[0] = pose[1]  # zero-length shin
    fitted = fitting.fit_skeleton(pose)
    np.testing.assert_allclose(skeleton.bone_lengths(fitted), skeleton.STANDARD_BONE_LENGTHS_MM)


def test_sequence_bone_lengths_is_the_median():
    fitted = fitting.fit_skeleton(_random_poses(3, seed=4))
    scaled = np.stack([fitted[0], fitted[1] * 2.0, fitted[2] * 0.5])
    np.testing.assert_allclose(
        fitting.sequence_bone_lengths(scaled), skeleton.STANDARD_BONE_LENGTHS_MM, atol=1e-9
    )
