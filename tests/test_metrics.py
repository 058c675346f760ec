"""Tests for keras_pose3d.metrics (NumPy)."""

import glob

import numpy as np
import pytest
import scipy.io
import scipy.optimize
from scipy.spatial.transform import Rotation

from keras_pose3d import metrics as M
from keras_pose3d import skeleton
from tests.conftest import REALDATA, require_realdata


def _real_h36m_poses(n=8, key="Walking_1"):
    """(n, 17, 3) real H36M poses in mm (S9), every 50th frame."""
    z = np.load(require_realdata("h36m_motion", "S9.npz"))
    return z[key][::50][:n].astype(np.float64)


def _rng_poses(n=4, j=16, seed=0):
    return np.random.default_rng(seed).normal(size=(n, j, 3)) * 200.0


# ----------------------------------------------------------------------------------------------
# Protocol names.
# ----------------------------------------------------------------------------------------------
def test_protocol_names_are_distinct_and_docstrings_point_to_them():
    names = [M.PROTOCOL_1, M.PROTOCOL_2, M.PROTOCOL_3, M.PROTOCOL_BONE_SCALED]
    assert len(set(names)) == 4
    assert "PROTOCOL_1" in M.mpjpe.__doc__ and "PROTOCOL_2" in M.pa_mpjpe.__doc__
    assert "PROTOCOL_3" in M.n_mpjpe.__doc__


# ----------------------------------------------------------------------------------------------
# MPJPE family: hand-computed values.
# ----------------------------------------------------------------------------------------------
def test_mpjpe_hand_values():
    gt = _rng_poses(3)
    shifted = gt + [10.0, 0.0, 0.0]
    np.testing.assert_allclose(M.mpjpe(shifted, gt), 10.0)
    np.testing.assert_allclose(M.mpjpe(shifted, gt, root=skeleton.ROOT), 0.0, atol=1e-12)
    # One of 4 joints off by (3, 4, 0): mean error 5 / 4.
    gt4 = np.zeros((1, 4, 3))
    pred4 = gt4.copy()
    pred4[0, 2] = [3.0, 4.0, 0.0]
    np.testing.assert_allclose(M.mpjpe(pred4, gt4), [1.25])
    # Root alignment: root joint 0 off by (3, 4, 0) moves every other joint by the same.
    pred_r = gt4.copy()
    pred_r[0, 0] = [3.0, 4.0, 0.0]
    np.testing.assert_allclose(M.mpjpe(pred_r, gt4, root=0), [5.0 * 3 / 4])
    np.testing.assert_allclose(M.root_align(pred_r, 0)[0, 1], [-3.0, -4.0, 0.0])
    with pytest.raises(ValueError, match="mpjpe"):
        M.mpjpe(np.zeros((2, 16, 3)), np.zeros((2, 17, 3)))


def test_n_mpjpe_scale_only():
    gt = M.root_align(_rng_poses(3))
    np.testing.assert_allclose(M.n_mpjpe(2.5 * gt, gt), 0.0, atol=1e-9)
    # A rotation is not undone by a scale.
    rot = Rotation.from_euler("z", 40, degrees=True).as_matrix()
    assert np.all(M.n_mpjpe(gt @ rot.T, gt) > 1.0)
    # Hand case: pred = [1, 0, 0], gt = [2, 1, 0] (one joint): s = 2, error |(2,0,0)-(2,1,0)| = 1.
    np.testing.assert_allclose(M.n_mpjpe([[[1.0, 0, 0]]], [[[2.0, 1.0, 0]]]), [1.0])


@pytest.mark.realdata
def test_pa_mpjpe_on_real_pose_similarity_copies():
    gt = _real_h36m_poses(4)
    rng = np.random.default_rng(3)
    rot = Rotation.random(4, random_state=4).as_matrix()  # (4, 3, 3), det +1
    scale = rng.uniform(0.5, 2.0, size=(4, 1, 1))
    trans = rng.normal(size=(4, 1, 3)) * 1000.0
    moved = scale * np.einsum("nij,nkj->nki", rot, gt) + trans
    size = np.linalg.norm(M.root_align(gt, 0), axis=-1).mean()
    assert np.all(M.pa_mpjpe(moved, gt) < 1e-6 * size)
    assert np.all(M.mpjpe(moved, gt, root=0) > 50.0)
    # A mirror image is not a similarity transform: reflections are excluded.
    mirrored = gt * [-1.0, 1.0, 1.0]
    assert np.all(M.pa_mpjpe(mirrored, gt) > 10.0)


def test_pa_mpjpe_matches_brute_force_optimisation():
    rng = np.random.default_rng(5)
    gt = _rng_poses(1, 16, 6)[0]
    pred = gt * 0.8 + rng.normal(size=gt.shape) * 40.0

    def cost(params):
        rot = Rotation.from_rotvec(params[:3]).as_matrix()
        aligned = params[3] * pred @ rot.T + params[4:]
        return np.mean(np.sum((aligned - gt) ** 2, axis=-1))

    best = min(
        (
            scipy.optimize.minimize(cost, np.r_[rv, 1.0, 0, 0, 0], method="BFGS")
            for rv in Rotation.random(6, random_state=7).as_rotvec()
        ),
        key=lambda r: r.fun,
    )
    rot = Rotation.from_rotvec(best.x[:3]).as_matrix()
    aligned = best.x[3] * pred @ rot.T + best.x[4:]
    np.testing.assert_allclose(M.procrustes_align(pred[None], gt[None])[0], aligned, atol=1e-3)
    # Optimising squared error is what Procrustes does; its MPJPE can only be compared loosely.
    assert M.pa_mpjpe(pred[None], gt[None])[0] == pytest.approx(
        np.linalg.norm(aligned - gt, axis=-1).mean(), rel=1e-5
    )
    rigid = M.procrustes_align(pred[None], gt[None], scale=False)[0]
    assert np.sum((rigid - gt) ** 2) >= best.fun * len(gt) - 1e-6


@pytest.mark.realdata
def test_mpjpe_bone_scaled_hand_formula():
    gt = M.root_align(skeleton.h36m17_to_mpii(_real_h36m_poses(3)))
    pelvis, neck, thorax = skeleton.ROOT, skeleton.J["upper_neck"], skeleton.J["thorax"]
    gt_mid = gt.copy()
    gt_mid[:, thorax] = 0.5 * (gt[:, pelvis] + gt[:, neck])
    bone_sum = skeleton.bone_lengths(gt_mid, skeleton.ZHOU_BONES).sum(-1)  # (N,)
    # Prediction = ground truth in metres, offset: only its shape counts. Scaled copy of gt_mid
    # by 4296.99 / bone_sum, so the error is |factor - 1| times the mean joint radius.
    pred = gt / 1000.0 + [5.0, -3.0, 1.0]
    factor = skeleton.H36M_ZHOU_BONE_SUM_MM / bone_sum
    expected = np.abs(factor - 1.0) * np.linalg.norm(gt_mid, axis=-1).mean(-1)
    np.testing.assert_allclose(M.mpjpe_bone_scaled(pred, gt), expected, rtol=1e-9)
    # The thorax of the inputs is ignored (replaced by the midpoint on both sides).
    pred2 = pred.copy()
    pred2[:, thorax] += 123.0
    np.testing.assert_allclose(M.mpjpe_bone_scaled(pred2, gt), expected, rtol=1e-9)
    with pytest.raises(ValueError, match="MPII-16"):
        M.mpjpe_bone_scaled(np.ones((1, 17, 3)), np.ones((1, 17, 3)))


# ----------------------------------------------------------------------------------------------
# 3D-PCK and AUC.
# ----------------------------------------------------------------------------------------------
def _with_errors(errors):
    errors = np.asarray(errors, dtype=np.float64)
    gt = np.zeros((1, len(errors), 3))
    pred = gt.copy()
    pred[0, :, 0] = errors
    return pred, gt


def test_pck3d_straddling_threshold():
    errs = np.full(17, 10.0)
    errs[[0, 1, 2, 14, 15, 16]] = [149.9, 150.0, 150.1, 500.0, 500.0, 500.0]
    pred, gt = _with_errors(errs)
    # 14-joint set (indices 0..13): 149.9 counts, 150.0 and 150.1 do not (strict <).
    np.testing.assert_allclose(M.pck3d(pred, gt, joints="14"), [100.0 * 12 / 14])
    np.testing.assert_allclose(M.pck3d(pred, gt, joints="17"), [100.0 * 12 / 17])
    np.testing.assert_allclose(M.pck3d(pred, gt, joints=[0, 1]), [50.0])
    np.testing.assert_allclose(
        M.pck3d(pred, gt, threshold=150.05, joints=[0, 1, 2]), [100.0 * 2 / 3]
    )
    with pytest.raises(ValueError, match="3DHP-17"):
        M.pck3d(np.zeros((1, 16, 3)), np.zeros((1, 16, 3)), joints="14")


@pytest.mark.parametrize(
    "error, n_above",
    [(12.0, 28), (10.0, 28), (9.99, 29), (0.0, 30), (150.0, 0), (149.0, 1), (200.0, 0)],
)
def test_auc_constant_error_is_fraction_of_thresholds_above(error, n_above):
    pred, gt = _with_errors(np.full(17, error))
    np.testing.assert_allclose(M.auc3d(pred, gt, joints="17"), [100.0 * n_above / 31])
    assert len(M.AUC3D_THRESHOLDS_MM) == 31 and M.AUC3D_THRESHOLDS_MM[-1] == 150.0


def test_auc_is_mean_of_pck_over_thresholds():
    gt = _rng_poses(3, 17, 8)
    pred = gt + np.random.default_rng(9).normal(size=gt.shape) * 60
    mean_pck = np.mean([M.pck3d(pred, gt, t, "14") for t in M.AUC3D_THRESHOLDS_MM], axis=0)
    np.testing.assert_allclose(M.auc3d(pred, gt, "14"), mean_pck)


# ----------------------------------------------------------------------------------------------
# PCKh.
# ----------------------------------------------------------------------------------------------
def test_pckh_boundary_is_strict_and_ignores_invisible():
    # Head box 6 x 8 -> diagonal 10 -> head size 6 px; threshold 0.5 -> 3 px.
    boxes = np.array([[[0.0, 0.0], [6.0, 8.0]]] * 2)
    gt = np.zeros((2, 16, 2))
    pred = gt.copy()
    pred[0, :, 0] = 3.0  # exactly at the threshold: wrong
    pred[1, :, 0] = 2.999  # just inside: right
    visible = np.ones((2, 16))
    np.testing.assert_allclose(M.pckh(pred, gt, boxes, visible), np.full(16, 50.0))
    visible[0, 0] = 0  # the failing person's right ankle is not annotated
    visible[:, 5] = 0  # nobody's left ankle is
    per_joint = M.pckh(pred, gt, boxes, visible)
    assert per_joint[0] == 100.0 and np.isnan(per_joint[5]) and per_joint[1] == 50.0
    with pytest.raises(ValueError, match="headboxes"):
        M.pckh(pred, gt, boxes[:1], visible)


def test_pckh_table_parts_and_both_means():
    n = 4
    boxes = np.array([[[0.0, 0.0], [6.0, 8.0]]] * n)
    gt = np.zeros((n, 16, 2))
    pred = gt.copy()
    visible = np.ones((n, 16))
    # Joint j is right for the first (j % 4) + 1 persons' ... build per-joint correct counts.
    correct = np.array([1, 2, 3, 4, 0, 1, 0, 0, 2, 4, 3, 2, 1, 4, 3, 2])
    for j, c in enumerate(correct):
        pred[c:, j, 0] = 10.0
    visible[:2, 0] = 0  # right ankle annotated on 2 persons (both wrong... rows 2,3)
    table = M.pckh_table(pred, gt, boxes, visible)
    # Right ankle: correct only on person 0, invisible there -> 0 of 2.
    per = 100.0 * correct / 4.0
    per[0] = 0.0
    assert table["Head"] == per[9]
    assert table["Shoulder"] == pytest.approx((per[12] + per[13]) / 2)
    # A pair pools its joints: right ankle 0 of 2 annotated, left ankle 1 of 4 -> 1 of 6 (the
    # mean of the two percentages, 12.5, would weight the 2 right ankles like the 4 left ones).
    assert table["Ankle"] == pytest.approx(100.0 / 6)
    keep = [0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15]
    counts = visible.sum(0)
    assert table[M.MEAN_UNWEIGHTED] == pytest.approx(per[keep].mean())
    assert table[M.MEAN_WEIGHTED] == pytest.approx(
        np.sum(per[keep] * counts[keep]) / counts[keep].sum()
    )
    assert table[M.MEAN_WEIGHTED] != pytest.approx(table[M.MEAN_UNWEIGHTED])


def _mpii_val():
    mat = scipy.io.loadmat(require_realdata("mpii", "mpii_val_gt_tompson_format.mat"))
    gt = np.transpose(mat["pos_gt_src"], (2, 0, 1))  # (N, 16, 2)
    pred = np.transpose(mat["pos_pred_src"], (2, 0, 1))
    boxes = np.transpose(mat["headboxes_src"], (2, 0, 1))  # (N, 2, 2)
    visible = 1 - mat["jnt_missing"].T  # (N, 16)
    return pred, gt, boxes, visible


@pytest.mark.realdata
def test_real_mpii_pckh_against_loop_recomputation():
    pred, gt, boxes, visible = _mpii_val()
    assert pred.shape == (2958, 16, 2)
    per_joint = M.pckh(pred, gt, boxes, visible)
    # Independent, deliberately plain recomputation: a loop over people and joints.
    hits, counts = np.zeros(16), np.zeros(16)
    for i in range(len(gt)):
        (x1, y1), (x2, y2) = boxes[i]
        head = 0.6 * ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5
        for j in range(16):
            if visible[i, j]:
                counts[j] += 1
                dx, dy = pred[i, j] - gt[i, j]
                hits[j] += ((dx * dx + dy * dy) ** 0.5) / head < 0.5
    np.testing.assert_allclose(per_joint, 100.0 * hits / counts, atol=1e-12)
    table = M.pckh_table(pred, gt, boxes, visible)
    # Sanity ranges for a 2015 ConvNet (Tompson et al.) on the validation split.
    for part, (lo, hi) in {
        "Head": (90, 99),
        "Shoulder": (85, 97),
        "Elbow": (75, 92),
        "Wrist": (65, 88),
        "Hip": (70, 92),
        "Knee": (60, 88),
        "Ankle": (50, 85),
    }.items():
        assert lo < table[part] < hi, (part, table[part])
    assert table["Head"] > table["Elbow"] > table["Wrist"] > table["Ankle"]
    assert 75 < table[M.MEAN_UNWEIGHTED] < table[M.MEAN_WEIGHTED] < 90


# ----------------------------------------------------------------------------------------------
# Structural validity.
# ----------------------------------------------------------------------------------------------
def _tpose():
    """A hand-built MPII-16 pose (mm): x = subject's left, y = up, z = forward."""
    p = np.zeros((16, 3))
    J = skeleton.J
    p[J["pelvis"]] = [0, 0, 0]
    p[J["thorax"]] = [0, 500, 0]
    p[J["upper_neck"]] = [0, 600, 0]
    p[J["head_top"]] = [0, 750, 0]
    p[J["r_hip"]], p[J["l_hip"]] = [-130, 0, 0], [130, 0, 0]
    p[J["r_knee"]], p[J["l_knee"]] = [-130, -440, 0], [130, -440, 0]
    p[J["r_ankle"]], p[J["l_ankle"]] = [-130, -890, 0], [130, -890, 0]
    p[J["r_shoulder"]], p[J["l_shoulder"]] = [-150, 500, 0], [150, 500, 0]
    p[J["r_elbow"]], p[J["l_elbow"]] = [-150, 220, 0], [150, 200, 0]
    p[J["r_wrist"]], p[J["l_wrist"]] = [-150, -30, 0], [150, -50, 0]
    return p


def test_symmetry_error_and_bone_std_hand_values():
    pose = _tpose()  # right upper arm 280, left 300; forearms 250 / 250; legs equal
    np.testing.assert_allclose(M.symmetry_error(pose[None]), [20.0, 0.0, 0.0, 0.0])
    seq = np.stack([pose, pose])
    seq[1, skeleton.J["r_wrist"], 1] -= 100.0  # r forearm 250 -> 350
    np.testing.assert_allclose(M.symmetry_error(seq), [20.0, 50.0, 0.0, 0.0])
    std = M.bone_length_std(seq)
    forearm = skeleton.BONES.index((skeleton.J["r_wrist"], skeleton.J["r_elbow"]))
    expected = np.zeros(len(skeleton.BONES))
    expected[forearm] = 50.0  # lengths 250, 350 -> population std 50
    np.testing.assert_allclose(std, expected, atol=1e-12)
    np.testing.assert_allclose(M.limb_bone_length_std(seq), [0.0, 25.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(M.bone_length_std(np.stack([seq, seq]))[1], expected, atol=1e-12)


def test_illegal_angle_hand_case_matches_eq1_sign_convention():
    pose = _tpose()
    J = skeleton.J
    # Bend both elbows and knees by moving the distal joint forward (+z) or backward.
    bent = pose.copy()
    for joint in ("r_wrist", "l_wrist"):
        bent[J[joint], 2] += 150.0  # forearms forward: natural elbow flexion
    for joint in ("r_ankle", "l_ankle"):
        bent[J[joint], 2] -= 150.0  # shins backward: natural knee flexion
    hyper = pose.copy()
    hyper[J["r_wrist"], 2] -= 150.0  # right elbow bent backwards
    hyper[J["l_ankle"], 2] += 150.0  # left knee bent forwards
    mask = M.illegal_angle_mask(np.stack([bent, hyper]))
    # Independent restatement of the Eq. 1 test for one limb: n = (P_s - P_thorax) x
    # (P_e - P_s); the right elbow is legal when n . (P_w - P_e) > 0.
    n = np.cross(
        hyper[J["r_shoulder"]] - hyper[J["thorax"]], hyper[J["r_elbow"]] - hyper[J["r_shoulder"]]
    )
    assert np.dot(n, hyper[J["r_wrist"]] - hyper[J["r_elbow"]]) < 0
    np.testing.assert_array_equal(mask, [[False] * 4, [True, False, False, True]])
    assert M.illegal_angle_rate(np.stack([bent, hyper])) == pytest.approx(100.0 * 2 / 8)
    np.testing.assert_allclose(
        M.illegal_angle_rate(np.stack([bent, hyper]), per_limb=True), [50.0, 0.0, 0.0, 50.0]
    )


@pytest.mark.realdata
@pytest.mark.realdata
def test_illegal_angle_rate_on_all_real_h36m_motion():
    # evaluation.md 4: knees legal 99.35 / 99.17 %, elbows 91.2 / 88.1 % on all 215,011 frames.
    files = sorted(glob.glob(str(REALDATA / "h36m_motion" / "S*.npz")))
    if len(files) != 7:
        pytest.skip(f"real H36M motion not found under {REALDATA / 'h36m_motion'}")
    poses = []
    for f in files:
        z = np.load(f)
        poses += [z[k] for k in z.files if "/" not in k]
    poses = skeleton.h36m17_to_mpii(np.concatenate(poses))
    assert len(poses) == 215011
    legal = 100.0 - M.illegal_angle_rate(poses, per_limb=True)
    np.testing.assert_allclose(legal, [91.2, 88.1, 99.35, 99.17], atol=0.06)


# ----------------------------------------------------------------------------------------------
# Table helper.
# ----------------------------------------------------------------------------------------------
def test_grouped_means_action_vs_frame():
    result = M.grouped_means([10.0, 20.0, 30.0, 100.0], ["Walk", "Walk", "Walk", "Sit"])
    assert result.per_group == {"Walk": 20.0, "Sit": 100.0}
    assert result.counts == {"Walk": 3, "Sit": 1}
    assert result.action_mean == 60.0 and result.frame_mean == 40.0
    assert result.as_dict()[M.ACTION_MEAN] == 60.0
    with pytest.raises(ValueError, match="labels"):
        M.grouped_means([1.0], ["a", "b"])
