"""Value tests of the five losses on hand-built poses and NumPy references."""

import itertools
import math

import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d import losses, skeleton
from keras_pose3d.layers import loss_layers

J = skeleton.J

# Body frame of the hand-built poses: x = subject's right, y = forward, z = up (right-handed).
RIGHT, FORWARD, UP = np.eye(3)


def standing_pose(forearm_r=None, forearm_l=None, shin_r=None, shin_l=None) -> np.ndarray:
    """A (16, 3) pose in mm, arms and legs hanging straight down unless directions are given.

    The forearm / shin arguments are unit directions (body frame) from elbow / knee.
    """
    down = -UP
    p = np.zeros((16, 3))
    p[J["pelvis"]] = 0.0
    p[J["r_hip"]] = 130.0 * RIGHT
    p[J["l_hip"]] = -130.0 * RIGHT
    p[J["r_knee"]] = p[J["r_hip"]] + 440.0 * down
    p[J["l_knee"]] = p[J["l_hip"]] + 440.0 * down
    p[J["r_ankle"]] = p[J["r_knee"]] + 450.0 * (down if shin_r is None else shin_r)
    p[J["l_ankle"]] = p[J["l_knee"]] + 450.0 * (down if shin_l is None else shin_l)
    p[J["thorax"]] = 480.0 * UP
    p[J["upper_neck"]] = p[J["thorax"]] + 120.0 * UP
    p[J["head_top"]] = p[J["upper_neck"]] + 115.0 * UP
    p[J["r_shoulder"]] = p[J["thorax"]] + 150.0 * RIGHT
    p[J["l_shoulder"]] = p[J["thorax"]] - 150.0 * RIGHT
    p[J["r_elbow"]] = p[J["r_shoulder"]] + 280.0 * down
    p[J["l_elbow"]] = p[J["l_shoulder"]] + 280.0 * down
    p[J["r_wrist"]] = p[J["r_elbow"]] + 250.0 * (down if forearm_r is None else forearm_r)
    p[J["l_wrist"]] = p[J["l_elbow"]] + 250.0 * (down if forearm_l is None else forearm_l)
    return p


def bent(angle_deg: float, towards: np.ndarray) -> np.ndarray:
    """Unit direction rotated from straight down by `angle_deg` towards `towards`."""
    a = math.radians(angle_deg)
    return math.cos(a) * -UP + math.sin(a) * towards


def natural_pose(angle=60.0) -> np.ndarray:
    """Elbows flexed forward, knees flexed backward: every Eq. 1 term is legal."""
    return standing_pose(
        forearm_r=bent(angle, FORWARD),
        forearm_l=bent(angle, FORWARD),
        shin_r=bent(angle, -FORWARD),
        shin_l=bent(angle, -FORWARD),
    )


def to_camera(pose_body: np.ndarray, scale: float, depth: float = 5000.0) -> np.ndarray:
    """Body frame -> camera frame (x right, y down, z forward), subject facing the camera.

    Subject's right = camera -x, forward = camera -z, up = camera -y: a proper rotation.
    """
    rot = np.stack([-RIGHT, -UP, -FORWARD], axis=1)  # columns: images of right, forward, up
    assert np.isclose(np.linalg.det(rot), 1.0)
    return scale * (pose_body @ rot.T) + np.array([0.0, 0.0, depth])


def random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def terms(pose) -> np.ndarray:
    return losses.illegal_angle_terms(np.asarray(pose, np.float32)[None]).numpy()[0]


# ----------------------------------------------------------------------------------------------
# Illegal angle (Eq. 1)
# ----------------------------------------------------------------------------------------------
def test_limb_names_follow_skeleton():
    assert losses.ANGLE_LIMB_NAMES == ("r_elbow", "l_elbow", "r_knee", "l_knee")


@pytest.mark.parametrize("angle", [10.0, 60.0, 120.0])
def test_natural_bends_are_legal(angle):
    np.testing.assert_array_equal(terms(natural_pose(angle)), np.zeros(4))
    margins = losses.illegal_angle_margin(natural_pose(angle)[None].astype(np.float32)).numpy()
    # Collar bone and upper arm are perpendicular: the margin is sin(flexion) for every limb.
    np.testing.assert_allclose(margins[0], np.full(4, math.sin(math.radians(angle))), atol=1e-6)


@pytest.mark.parametrize("limb", range(4))
@pytest.mark.parametrize("angle", [20.0, 45.0, 90.0])
def test_reverse_bend_gives_exact_penalty(limb, angle):
    # Bend one limb the wrong way: elbows backward, knees forward.
    kwargs = {
        0: {"forearm_r": bent(angle, -FORWARD)},
        1: {"forearm_l": bent(angle, -FORWARD)},
        2: {"shin_r": bent(angle, FORWARD)},
        3: {"shin_l": bent(angle, FORWARD)},
    }[limb]
    t = terms(standing_pose(**kwargs))
    # Unit vectors: collar x upper arm is a unit normal, the margin is -sin(angle), E = that,
    # and -E exp(-E) = sin(angle) exp(sin(angle)).
    s = math.sin(math.radians(angle))
    expected = np.zeros(4)
    expected[limb] = s * math.exp(s)
    np.testing.assert_allclose(t, expected, rtol=1e-5, atol=1e-7)


def test_penalty_grows_with_violation():
    values = [terms(standing_pose(forearm_r=bent(a, -FORWARD)))[0] for a in (5, 20, 45, 70, 90)]
    assert all(b > a > 0 for a, b in itertools.pairwise(values))


def test_straight_limbs_are_on_the_boundary():
    np.testing.assert_array_equal(terms(standing_pose()), np.zeros(4))


def test_same_values_in_mm_metres_and_crop_units():
    rng = np.random.default_rng(0)
    poses = [
        natural_pose(50.0),
        standing_pose(forearm_l=bent(35, -FORWARD), shin_r=bent(70, FORWARD)),
    ]
    for body in poses:
        ref = terms(body)
        metres = terms(body / 1000.0)
        # Camera frame then a weak-perspective crop: x, y in crop px about the root, z alike.
        cam = to_camera(body, scale=1.0)
        crop = (cam - cam[J["pelvis"]]) * 1000.0 / 5000.0 / 128.0
        rotated = body @ random_rotation(rng).T
        for other in (metres, terms(cam), terms(crop), terms(rotated), terms(crop * 300.0)):
            np.testing.assert_allclose(other, ref, rtol=1e-4, atol=1e-6)
    assert terms(poses[1])[1] > 0 and terms(poses[1])[2] > 0


def test_torso_elbow_plane_option():
    # Trunk line pelvis -> shoulder instead of the collar bone; knees unchanged.
    limbs = losses.angle_limbs("torso")
    assert [limb[1] for limb in limbs] == [J["pelvis"]] * 4
    assert [limb[2:] for limb in limbs] == [limb[2:] for limb in skeleton.ANGLE_LIMBS]
    pose = natural_pose(60.0)[None].astype(np.float32)
    np.testing.assert_array_equal(losses.illegal_angle_loss(pose, elbow_plane="torso"), [0.0])
    bad = standing_pose(forearm_r=bent(90, -FORWARD), forearm_l=bent(45, -FORWARD))
    t = losses.illegal_angle_terms(bad[None].astype(np.float32), elbow_plane="torso").numpy()[0]
    # |trunk x upper arm| = sin of their angle: 150 mm out over 480 mm up.
    s = math.sin(math.atan2(150.0, 480.0))
    expected = [s * math.exp(s), s * math.sin(math.pi / 4) * math.exp(s * math.sin(math.pi / 4))]
    np.testing.assert_allclose(t, expected + [0.0, 0.0], rtol=1e-5)


def test_reflection_flips_and_flip_with_swap_keeps_legality():
    body = natural_pose(60.0)
    mirrored = body * np.array([-1.0, 1.0, 1.0])  # x mirrored, joints not swapped
    assert np.all(terms(mirrored) > 0)
    # A horizontal-flip augmentation mirrors x and swaps left/right: a real (legal) body.
    np.testing.assert_array_equal(terms(skeleton.flip_joints(mirrored)), np.zeros(4))


def test_huge_violation_in_mm_is_finite():
    pose = standing_pose(forearm_r=bent(90, -FORWARD), shin_l=bent(80, FORWARD)) * 1e4  # 1e4x
    value = losses.illegal_angle_loss(pose[None].astype(np.float32)).numpy()
    expected = math.exp(1.0) + math.sin(math.radians(80)) * math.exp(math.sin(math.radians(80)))
    np.testing.assert_allclose(value, [expected], rtol=1e-5)
    # The paper's raw product would be ~(1e6 mm)^3 here: exp of that overflows.


def test_visibility_masks_limbs():
    pose = standing_pose(forearm_r=bent(90, -FORWARD), shin_r=bent(90, FORWARD))[None]
    vis = np.ones((1, 16), np.float32)
    vis[0, J["r_wrist"]] = 0.0
    t = losses.illegal_angle_terms(pose.astype(np.float32), vis).numpy()[0]
    np.testing.assert_allclose(t, [0.0, 0.0, math.e, 0.0], rtol=1e-6)


def test_degenerate_pose_is_zero_with_finite_gradient():
    pose = tf.Variable(np.zeros((2, 16, 3), np.float32))
    with tf.GradientTape() as tape:
        value = losses.illegal_angle_loss(pose) + losses.symmetry_loss(pose)
        value += losses.geometric_loss(pose)
    grad = tape.gradient(value, pose)
    np.testing.assert_array_equal(value.numpy(), [0.0, 0.0])
    assert np.all(np.isfinite(grad.numpy()))


# ----------------------------------------------------------------------------------------------
# Symmetry (Eq. 2)
# ----------------------------------------------------------------------------------------------
def test_symmetric_pose_has_zero_symmetry_loss():
    np.testing.assert_allclose(
        losses.symmetry_loss(natural_pose(40.0)[None].astype(np.float32)).numpy(),
        [0.0],
        atol=1e-4,
    )


def test_asymmetric_pose_gives_exact_difference():
    pose = natural_pose(40.0)
    # Right forearm 30 mm longer, left shin 12 mm shorter.
    pose[J["r_wrist"]] += 30.0 * bent(40.0, FORWARD)
    pose[J["l_ankle"]] -= 12.0 * bent(40.0, -FORWARD)
    batch = pose[None].astype(np.float32)
    np.testing.assert_allclose(
        losses.symmetry_terms(batch).numpy()[0], [0.0, 30.0, 0.0, 12.0], atol=1e-3
    )
    np.testing.assert_allclose(losses.symmetry_loss(batch).numpy(), [42.0], atol=1e-3)
    vis = np.ones((1, 16), np.float32)
    vis[0, J["l_wrist"]] = 0.0  # drops the forearm pair only
    np.testing.assert_allclose(losses.symmetry_loss(batch, vis).numpy(), [12.0], atol=1e-3)


# ----------------------------------------------------------------------------------------------
# Geometric loss (Zhou et al.)
# ----------------------------------------------------------------------------------------------
def geometric_reference(pose: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """Loop-by-loop NumPy version of evaluation.md 4's L_g."""
    out = np.zeros(len(pose))
    for b in range(len(pose)):
        for bones, weights in skeleton.GEOMETRIC_GROUPS:
            lengths = [
                w * np.linalg.norm(pose[b, c] - pose[b, p])
                for (c, p), w in zip(bones, weights)
                if vis[b, c] > 0.5 and vis[b, p] > 0.5
            ]
            if lengths:
                mean = np.mean(lengths)
                out[b] += sum((v - mean) ** 2 for v in lengths) / len(lengths)
    return out


def test_geometric_loss_matches_numpy_reference():
    rng = np.random.default_rng(1)
    pose = rng.normal(size=(6, 16, 3)).astype(np.float32)
    vis = (rng.random((6, 16)) > 0.25).astype(np.float32)
    vis[0] = 1.0
    vis[1] = 0.0  # nothing visible: 0
    got = losses.geometric_loss(pose, vis).numpy()
    np.testing.assert_allclose(got, geometric_reference(pose, vis), rtol=1e-5, atol=1e-6)
    assert got[1] == 0.0
    np.testing.assert_allclose(
        losses.geometric_loss(pose).numpy(),
        geometric_reference(pose, np.ones((6, 16))),
        rtol=1e-5,
    )


def test_geometric_loss_zero_when_ratios_hold():
    pose = natural_pose(30.0)
    # Make every group's weighted lengths equal: shin = thigh / 1.0085885, forearm likewise.
    for knee, ankle in ((J["r_knee"], J["r_ankle"]), (J["l_knee"], J["l_ankle"])):
        pose[ankle] = pose[knee] + (440.0 / 1.0085885) * bent(30.0, -FORWARD)
    for shoulder, elbow, wrist in ((12, 11, 10), (13, 14, 15)):
        pose[elbow] = pose[shoulder] + 280.0 * -UP
        pose[wrist] = pose[elbow] + (280.0 / 1.1375361) * bent(30.0, FORWARD)
    np.testing.assert_allclose(
        losses.geometric_loss(pose[None].astype(np.float32)).numpy(), [0.0], atol=1e-6
    )


# ----------------------------------------------------------------------------------------------
# Heatmap and depth losses
# ----------------------------------------------------------------------------------------------
def test_heatmap_loss_matches_numpy():
    rng = np.random.default_rng(2)
    pred = rng.random((3, 2, 8, 6, 5)).astype(np.float32)
    gt = rng.random((3, 8, 6, 5)).astype(np.float32)
    vis = np.array([[1, 1, 0, 1, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], np.float32)
    expected = np.zeros(3)
    for b in range(3):
        for s in range(2):
            sq = ((pred[b, s] - gt[b]) ** 2).sum(axis=(0, 1))  # (J,)
            if vis[b].sum():
                expected[b] += (sq * vis[b]).sum() / (8 * 6 * vis[b].sum())
    np.testing.assert_allclose(losses.heatmap_loss(pred, gt, vis).numpy(), expected, rtol=1e-5)
    # A single stack given as (B, h, w, J) equals its own stack of the 5-D call.
    np.testing.assert_allclose(
        losses.heatmap_loss(pred[:, 1], gt, vis).numpy(),
        losses.heatmap_loss(pred[:, 1:], gt, vis).numpy(),
        rtol=1e-6,
    )


def test_heatmap_loss_rejects_bad_rank():
    with pytest.raises(ValueError, match="pred_heatmaps"):
        losses.heatmap_loss(np.zeros((2, 3, 4)), np.zeros((2, 3, 4, 1)), np.ones((2, 1)))


def test_depth_loss_matches_numpy():
    rng = np.random.default_rng(3)
    pred = rng.normal(size=(4, 16)).astype(np.float32)
    gt = rng.normal(size=(4, 16)).astype(np.float32)
    vis = (rng.random((4, 16)) > 0.3).astype(np.float32)
    vis[3] = 0.0
    expected = np.array(
        [
            ((pred[b] - gt[b]) ** 2 * vis[b]).sum() / vis[b].sum() if vis[b].sum() else 0.0
            for b in range(4)
        ]
    )
    np.testing.assert_allclose(losses.depth_loss(pred, gt, vis).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(
        losses.depth_loss(pred, gt).numpy(), ((pred - gt) ** 2).mean(axis=1), rtol=1e-5
    )


# ----------------------------------------------------------------------------------------------
# Low-precision inputs: float32 math, finite gradients.
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_finite_gradients_in_low_precision(dtype):
    body = standing_pose(forearm_r=bent(60, -FORWARD), shin_l=bent(50, FORWARD))
    crop = np.stack([body / 1000.0, natural_pose(30.0) / 1000.0]).astype(np.float32)
    pose = tf.Variable(tf.cast(crop, dtype))
    depth_gt = tf.cast(crop[..., 2], dtype)
    hm = tf.Variable(tf.cast(np.random.default_rng(4).random((2, 2, 4, 4, 16)), dtype))
    vis = np.ones((2, 16), np.float32)
    with tf.GradientTape() as tape:
        values = {
            "angle": losses.illegal_angle_loss(pose),
            "symmetry": losses.symmetry_loss(pose),
            "geometric": losses.geometric_loss(pose, vis),
            "depth": losses.depth_loss(pose[..., 2] * 1.1, depth_gt, vis),
            "heatmap": losses.heatmap_loss(hm, tf.zeros((2, 4, 4, 16), dtype), vis),
        }
        total = tf.add_n([tf.reduce_sum(v) for v in values.values()])
    for name, v in values.items():
        assert v.dtype == tf.float32, name
        assert np.all(np.isfinite(v.numpy())), name
    grads = tape.gradient(total, [pose, hm])
    for g in grads:
        assert g.dtype == dtype
        assert np.all(np.isfinite(tf.cast(g, tf.float32).numpy()))
    # The float32 value of the illegal-angle loss survives the cast of the input.
    np.testing.assert_allclose(
        values["angle"].numpy(), losses.illegal_angle_loss(crop).numpy(), rtol=2e-2
    )
    assert values["angle"].numpy()[0] > 0 and values["angle"].numpy()[1] == 0


# ----------------------------------------------------------------------------------------------
# Loss layers: same formulas, weighted.
# ----------------------------------------------------------------------------------------------
def test_loss_layers_match_functions():
    rng = np.random.default_rng(5)
    pose = rng.normal(size=(3, 16, 3)).astype(np.float32)
    vis = (rng.random((3, 16)) > 0.2).astype(np.float32)
    pairs = [
        (loss_layers.IllegalAngleLoss, losses.illegal_angle_loss),
        (loss_layers.SymmetryLoss, losses.symmetry_loss),
        (loss_layers.GeometricLoss, losses.geometric_loss),
    ]
    for layer_cls, fn in pairs:
        layer = layer_cls(weight=0.5)
        np.testing.assert_allclose(layer(pose, vis).numpy(), 0.5 * fn(pose, vis).numpy(), rtol=1e-6)
    depth = loss_layers.DepthLoss(weight=2.0)
    np.testing.assert_allclose(
        depth(pose[..., 0], pose[..., 1], vis).numpy(),
        2.0 * losses.depth_loss(pose[..., 0], pose[..., 1], vis).numpy(),
        rtol=1e-6,
    )
    hm = rng.random((3, 2, 4, 4, 16)).astype(np.float32)
    heat = loss_layers.HeatmapLoss(weight=3.0)
    np.testing.assert_allclose(
        heat(hm, hm[:, 0] * 0.5, vis).numpy(),
        3.0 * losses.heatmap_loss(hm, hm[:, 0] * 0.5, vis).numpy(),
        rtol=1e-6,
    )


def test_loss_layer_add_loss_and_config():
    pose = natural_pose(30.0)[None].astype(np.float32)
    pose = np.concatenate([pose, standing_pose(forearm_r=bent(90, -FORWARD))[None]], 0)
    layer = loss_layers.IllegalAngleLoss(weight=0.25, add_as_loss=True)
    per_sample = layer(pose.astype(np.float32))
    np.testing.assert_allclose(per_sample.numpy(), [0.0, 0.25 * math.e], rtol=1e-6)
    np.testing.assert_allclose(float(layer.losses[0]), 0.125 * math.e, rtol=1e-6)
    layer = loss_layers.IllegalAngleLoss(
        weight=0.25, add_as_loss=True, elbow_plane="torso", name="angle"
    )
    config = layer.get_config()
    assert config["weight"] == 0.25 and config["add_as_loss"] is True
    assert config["elbow_plane"] == "torso"
    clone = loss_layers.IllegalAngleLoss.from_config(config)
    assert clone.weight == 0.25 and clone.add_as_loss is True and clone.name == "angle"
    assert clone.elbow_plane == "torso"
    with pytest.raises(ValueError, match="elbow_plane"):
        loss_layers.IllegalAngleLoss(elbow_plane="neck")
