"""Dabral et al.'s illegal-angle loss (Eq. 1) for elbows and knees.

Construction (paper Sect. 4.1, Fig. 3), for each limb of `skeleton.ANGLE_LIMBS`
`(name, n, a, b, c, sign)` (neck/pelvis, shoulder/hip, elbow/knee, wrist/ankle):

    normal  N = (P_a - P_n) x (P_b - P_a)      collar bone (hip bone) x upper arm (thigh)
    d       = sign * N . (P_c - P_b)           forearm (shin) against the normal
    legal   <=> d >= 0

**Right-hand rule in this project's frames.** Take a person standing with arms and legs down,
described in a right-handed frame with x = the subject's right, y = forward, z = up (the
real-motion frame; the camera frame x right, y down, z forward is also right-handed and the
two differ by a proper rotation). Right arm: collar bone (+1, 0, 0), upper arm (0, 0, -1),
N = (+1,0,0) x (0,0,-1) = (0, +1, 0) = forward; a bending elbow swings the forearm forward, so
N . forearm > 0 is legal: sign = +1. Left arm: collar bone (-1, 0, 0), N = (0, -1, 0) =
backward, the forearm still swings forward: legal when N . forearm < 0, sign = -1. Right leg:
hip bone (+1, 0, 0), thigh down, N = forward, a bending knee swings the shin backward: legal
when negative, sign = -1. Left leg: N backward, shin backward: sign = +1. This is the paper's
"opposite for the right knee and left elbow". The triple product is invariant under rotations
(so the camera frame, the pelvis frame and any augmentation rotation give the same d) and flips
under a reflection; a horizontal flip that mirrors x *and* swaps left/right joints flips it
twice, so flipped samples keep their legality. Signs were checked on real H36M motion
(tests/test_losses_realdata.py): knees legal on > 99 % of frames with the collar bone from the
thorax (`skeleton.COLLAR_JOINT`).

**Unit-free form.** The paper's raw product has units of length^3 and its exp overflows on
poses in mm. Here each of the three bone vectors is replaced by its unit vector, so
`d = sign * (u_1 x u_2) . u_3` lies in [-1, 1]; scaling bones by positive numbers does not
change the sign of d, so the zero set (which frames are legal) is exactly the paper's, in mm,
metres or crop units alike. The normal N itself is *not* renormalised: `|u_1 x u_2|` is the sine
of the collar-bone/upper-arm angle, so the penalty fades smoothly where that plane is undefined
(arm abducted along the collar bone) instead of flipping at random.

**Mapping of the four terms of Eq. 1.** With `E = min(d, 0)` every term is `-E * exp(-E)`:
right elbow (sign +1): E = min(N.v, 0) = the paper's E_e^r, term -E e^{-E} as printed.
Left elbow (sign -1): the paper's E_e^l = max(N.v, 0) = -E, so E_e^l e^{E_e^l} = -E e^{-E}.
Right knee: same as the left elbow. Left knee: same as the right elbow. Each term is >= 0,
0 exactly when legal, increasing with the violation, and at most e (d = -1).

**Optional torso plane for the elbows** (`elbow_plane="torso"`, not the default). The
collar-bone plane ignores humeral rotation: on real H36M motion it flags 8.8 % / 11.9 % of
right / left elbows (mostly flexed ~80 deg, median ~11 deg out of the plane: hands on hips, arms
folded). Replacing the collar bone by the trunk line pelvis -> shoulder (the plane of the upper
arm and the torso) keeps the same construction and signs and flags 2.7 % / 4.6 % of the same
frames (measured in tests/test_losses_realdata.py). Knees are unchanged.
"""

from __future__ import annotations

import tensorflow as tf

from keras_pose3d import skeleton
from keras_pose3d.losses._common import check_rank, safe_unit, to_float32

ANGLE_LIMB_NAMES: tuple[str, ...] = tuple(limb[0] for limb in skeleton.ANGLE_LIMBS)
ELBOW_PLANES = ("collar", "torso")


def angle_limbs(elbow_plane: str = "collar") -> tuple:
    """`skeleton.ANGLE_LIMBS`, or with the elbows' reference bone from the pelvis ("torso")."""
    if elbow_plane == "collar":
        return skeleton.ANGLE_LIMBS
    if elbow_plane == "torso":
        return tuple(
            (name, skeleton.ROOT if name.endswith("elbow") else n, a, b, c, sign)
            for name, n, a, b, c, sign in skeleton.ANGLE_LIMBS
        )
    raise ValueError(f"elbow_plane must be one of {ELBOW_PLANES}. Received: {elbow_plane!r}")


def _gather_joint(pose: tf.Tensor, index: int) -> tf.Tensor:
    return pose[:, index, :]  # (B, 3)


def illegal_angle_margin(pose_3d, elbow_plane: str = "collar", limbs=None) -> tf.Tensor:
    """Signed, unit-free legality margin `d` per limb (>= 0 legal, < 0 illegal).

    Args:
        pose_3d: (B, J, 3) in any unit, right-handed frame.
        elbow_plane: "collar" (the paper's) or "torso" (see the module docstring).
        limbs: explicit `skeleton.ANGLE_LIMBS`-style tuples (name, n, a, b, c, sign); overrides
            elbow_plane.

    Returns:
        (B, len(limbs)) float32 in [-1, 1].
    """
    pose = to_float32(pose_3d)
    check_rank(pose, (3,), "pose_3d", "(B, J, 3)")
    limbs = angle_limbs(elbow_plane) if limbs is None else limbs
    margins = []
    for _, n, a, b, c, sign in limbs:
        u1 = safe_unit(
            _gather_joint(pose, a) - _gather_joint(pose, n)
        )  # collar (or trunk) / hip bone
        u2 = safe_unit(_gather_joint(pose, b) - _gather_joint(pose, a))  # upper arm / thigh
        u3 = safe_unit(_gather_joint(pose, c) - _gather_joint(pose, b))  # forearm / shin
        normal = tf.linalg.cross(u1, u2)  # (B, 3)
        margins.append(sign * tf.reduce_sum(normal * u3, axis=-1))
    return tf.stack(margins, axis=-1)


def _limb_visibility(visibility, limbs) -> tf.Tensor:
    vis = to_float32(visibility) > 0.5
    cols = []
    for _, n, a, b, c, _ in limbs:
        cols.append(vis[:, n] & vis[:, a] & vis[:, b] & vis[:, c])
    return tf.cast(tf.stack(cols, axis=-1), tf.float32)  # (B, L)


def illegal_angle_terms(
    pose_3d, visibility=None, elbow_plane: str = "collar", limbs=None
) -> tf.Tensor:
    """Per-limb terms of Eq. 1: `-E * exp(-E)` with `E = min(d, 0)`.

    Args:
        pose_3d: (B, J, 3).
        visibility: (B, J) 0/1 or None; a limb counts only when its four joints are visible.
        elbow_plane: "collar" (default, the paper's) or "torso".
        limbs: explicit limb tuples, overriding elbow_plane (default: r_elbow, l_elbow,
            r_knee, l_knee).

    Returns:
        (B, len(limbs)) float32, >= 0, in `ANGLE_LIMB_NAMES` order.
    """
    limbs = angle_limbs(elbow_plane) if limbs is None else limbs
    e = tf.minimum(illegal_angle_margin(pose_3d, limbs=limbs), 0.0)
    terms = -e * tf.exp(-e)
    if visibility is not None:
        terms *= _limb_visibility(visibility, limbs)
    return terms


def illegal_angle_loss(
    pose_3d, visibility=None, elbow_plane: str = "collar", limbs=None
) -> tf.Tensor:
    """Eq. 1: L_a, the sum of the four limb terms.

    Args:
        pose_3d: (B, J, 3) in any unit.
        visibility: (B, J) 0/1 or None.
        elbow_plane: "collar" (default, the paper's) or "torso".
        limbs: explicit limb tuples with their signs, overriding elbow_plane.

    Returns:
        (B,) float32, unit-free, in [0, 4e].
    """
    terms = illegal_angle_terms(pose_3d, visibility, elbow_plane=elbow_plane, limbs=limbs)
    return tf.reduce_sum(terms, axis=-1)
