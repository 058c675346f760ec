"""The structure losses on real Human3.6M motion (all 215,011 frames of realdata/h36m_motion).

Skips when ../shared/realdata is absent. Nothing read here is written anywhere.
"""

import numpy as np
import pytest

from keras_pose3d import losses, skeleton
from tests.conftest import require_realdata

pytestmark = pytest.mark.realdata

SUBJECTS = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")


@pytest.fixture(scope="module")
def motion() -> np.ndarray:
    """(N, 16, 3) MPII-16 poses in mm from every plain (pelvis-frame) sequence."""
    arrays = []
    for subject in SUBJECTS:
        path = require_realdata("h36m_motion", f"{subject}.npz")
        with np.load(path) as z:
            arrays += [z[key] for key in z.files if "/" not in key]
    return skeleton.h36m17_to_mpii(np.concatenate(arrays)).astype(np.float32)


def _legal_rates(pose, **kwargs) -> np.ndarray:
    return (losses.illegal_angle_terms(pose, **kwargs).numpy() == 0.0).mean(axis=0)


def test_all_frames_loaded(motion):
    assert motion.shape == (215_011, 16, 3)
    # The map kept the joints' identity: pelvis at the origin, thighs and shins of the FK
    # skeleton (h36m_motion README: 442.9 and 454.2 mm on both sides).
    np.testing.assert_array_equal(motion[:, skeleton.ROOT], 0.0)
    lengths = skeleton.bone_lengths(motion[::97])
    bone = {b: i for i, b in enumerate(skeleton.BONES)}
    for child, parent, mm in ((1, 2, 442.9), (4, 3, 442.9), (0, 1, 454.2), (5, 4, 454.2)):
        np.testing.assert_allclose(lengths[:, bone[(child, parent)]], mm, atol=0.1)


def test_knees_legal_and_elbow_rates(motion):
    rates = _legal_rates(motion)
    print("legal rates (r_elbow, l_elbow, r_knee, l_knee):", np.round(100 * rates, 2))
    assert rates[2] >= 0.99 and rates[3] >= 0.99
    # evaluation.md 4: 91.2 % / 88.1 % with the collar bone from the thorax.
    np.testing.assert_allclose(rates[:2], [0.912, 0.881], atol=0.003)


def test_rotation_invariance_on_global_rot(motion):
    path = require_realdata("h36m_motion", "S9.npz")
    with np.load(path) as z:
        keys = [k for k in z.files if "/" not in k][:4]
        plain = np.concatenate([z[k] for k in keys])
        rotated = np.concatenate([z[k + "/global_rot"] for k in keys])
    plain = skeleton.h36m17_to_mpii(plain)
    rotated = skeleton.h36m17_to_mpii(rotated)
    a = losses.illegal_angle_margin(plain).numpy()
    b = losses.illegal_angle_margin(rotated).numpy()
    np.testing.assert_allclose(a, b, atol=2e-4)
    assert np.abs(rotated - plain).max() > 100.0  # the rotation is real


def test_torso_elbow_plane_rates(motion):
    rates = _legal_rates(motion, elbow_plane="torso")
    print("torso-plane legal rates (r_elbow, l_elbow, r_knee, l_knee):", np.round(100 * rates, 2))
    collar = _legal_rates(motion)
    np.testing.assert_array_equal(rates[2:], collar[2:])
    assert rates[0] > collar[0] + 0.04 and rates[1] > collar[1] + 0.04
    assert rates[0] >= 0.95 and rates[1] >= 0.95


def test_mirrored_forearm_becomes_illegal(motion):
    """Reflect each forearm across its collar-bone/upper-arm plane: the same flexion angle,
    bent to the other side. Every strictly legal elbow becomes strictly illegal."""
    pose = motion[::5].astype(np.float64)  # every 5th frame keeps this test fast
    margins = losses.illegal_angle_margin(pose.astype(np.float32)).numpy()
    for limb, (_, n, a, b, c, _) in enumerate(skeleton.ANGLE_LIMBS[:2]):
        normal = np.cross(pose[:, a] - pose[:, n], pose[:, b] - pose[:, a])
        normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
        forearm = pose[:, c] - pose[:, b]
        reflected = forearm - 2.0 * np.sum(forearm * normal, -1, keepdims=True) * normal
        mirrored = pose.copy()
        mirrored[:, c] = pose[:, b] + reflected
        terms = losses.illegal_angle_terms(mirrored.astype(np.float32)).numpy()
        legal = margins[:, limb] > 1e-3
        assert legal.mean() > 0.85
        assert np.all(terms[legal, limb] > 0.0)
        # The other limbs are untouched; bone lengths are preserved by a reflection.
        others = [k for k in range(4) if k != limb]
        np.testing.assert_array_equal(
            terms[:, others], losses.illegal_angle_terms(pose.astype(np.float32)).numpy()[:, others]
        )
        np.testing.assert_allclose(
            np.linalg.norm(reflected, axis=-1), np.linalg.norm(forearm, axis=-1), rtol=1e-9
        )


def test_symmetry_loss_equals_independent_bone_differences(motion):
    pose = motion.astype(np.float64)
    expected = np.zeros(len(pose))
    for right, left in skeleton.SYMMETRY_BONE_PAIRS:
        r = np.linalg.norm(pose[:, right[0]] - pose[:, right[1]], axis=-1)
        l_len = np.linalg.norm(pose[:, left[0]] - pose[:, left[1]], axis=-1)
        expected += np.abs(r - l_len)
    got = losses.symmetry_loss(motion).numpy()
    np.testing.assert_allclose(got, expected, atol=2e-3)
    # README: the FK skeleton is symmetric to 0.01 mm per bone.
    print(f"symmetry loss (mm): mean {got.mean():.4f}, max {got.max():.4f}")
    assert got.max() < 0.05
    # A real asymmetry is measured exactly: stretch the left shin by 20 mm.
    stretched = pose.copy()
    shin = stretched[:, 5] - stretched[:, 4]
    stretched[:, 5] += 20.0 * shin / np.linalg.norm(shin, axis=-1, keepdims=True)
    np.testing.assert_allclose(
        losses.symmetry_loss(stretched[:1000].astype(np.float32)).numpy(),
        expected[:1000]
        - np.abs(
            np.linalg.norm(pose[:1000, 0] - pose[:1000, 1], axis=-1)
            - np.linalg.norm(pose[:1000, 5] - pose[:1000, 4], axis=-1)
        )
        + np.abs(
            np.linalg.norm(pose[:1000, 0] - pose[:1000, 1], axis=-1)
            - np.linalg.norm(stretched[:1000, 5] - stretched[:1000, 4], axis=-1)
        ),
        atol=2e-3,
    )
