"""Anatomy as data: joint sets, bones, flip pairs and the index maps between them.

Everything that depends on which joint is which reads it from here, so a left/right mistake can
only be made once. The joint sets and index maps are tabulated in `docs/datasets.md` section 1.

The project's output skeleton is MPII-16 (the paper's and Zhou et al.'s):

    0 r_ankle  1 r_knee  2 r_hip  3 l_hip  4 l_knee  5 l_ankle  6 pelvis (root)  7 thorax
    8 upper_neck  9 head_top  10 r_wrist  11 r_elbow  12 r_shoulder  13 l_shoulder
    14 l_elbow  15 l_wrist

Shoulders hang from the **thorax** (7). This choice matters for the illegal-angle loss (Eq. 1 of
Dabral et al.): its collar bone is shoulder minus "neck", and on real H36M motion the elbow test
only behaves as the paper describes when that neck point is the thorax (elbows legal on ~91% /
88% of frames) rather than the upper neck (58% / 46%). `COLLAR_JOINT` names it once.

H36M-17 -> MPII-16 follows the first map of docs/datasets.md 1.3 (MPII thorax <- H36M thorax,
MPII upper neck <- H36M neck/nose); Zhou's variant that overwrites the thorax is not used.
"""

from __future__ import annotations

import numpy as np

# ----------------------------------------------------------------------------------------------
# MPII-16: the output skeleton.
# ----------------------------------------------------------------------------------------------
MPII_JOINTS: tuple[str, ...] = (
    "r_ankle",
    "r_knee",
    "r_hip",
    "l_hip",
    "l_knee",
    "l_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "r_wrist",
    "r_elbow",
    "r_shoulder",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
)
NUM_JOINTS = len(MPII_JOINTS)  # 16
J = {name: i for i, name in enumerate(MPII_JOINTS)}  # name -> index

# Short names used by MPII evaluation files.
MPII_SHORT_NAMES: tuple[str, ...] = (
    "rank",
    "rkne",
    "rhip",
    "lhip",
    "lkne",
    "lank",
    "pelv",
    "thrx",
    "neck",
    "head",
    "rwri",
    "relb",
    "rsho",
    "lsho",
    "lelb",
    "lwri",
)

ROOT = J["pelvis"]  # 6
COLLAR_JOINT = J["thorax"]  # where the collar bone of Eq. 1 starts (see module docstring)

# Parent of each joint; the root's parent is -1. Shoulders hang from the thorax.
MPII_PARENTS: tuple[int, ...] = (1, 2, 6, 6, 3, 4, -1, 6, 7, 8, 11, 12, 7, 7, 13, 14)

# (child, parent) for every non-root joint: the 15 bones of the kinematic tree.
BONES: tuple[tuple[int, int], ...] = tuple((j, p) for j, p in enumerate(MPII_PARENTS) if p >= 0)

# Horizontal flip: joint j of the mirrored image is joint FLIP_PERMUTATION[j] of the original.
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))


def _flip_permutation(pairs, n):
    perm = list(range(n))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return tuple(perm)


FLIP_PERMUTATION: tuple[int, ...] = _flip_permutation(FLIP_PAIRS, NUM_JOINTS)

LEFT_JOINTS: tuple[int, ...] = (3, 4, 5, 13, 14, 15)
RIGHT_JOINTS: tuple[int, ...] = (2, 1, 0, 12, 11, 10)

# Limb bones as (right, left) pairs, (child, parent) each: Eq. 2's symmetry terms. The paper
# excludes torso and head bones, so these are upper arm, forearm, thigh, shin.
SYMMETRY_BONE_PAIRS: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((11, 12), (14, 13)),  # upper arm: elbow-shoulder
    ((10, 11), (15, 14)),  # forearm: wrist-elbow
    ((1, 2), (4, 3)),  # thigh: knee-hip
    ((0, 1), (5, 4)),  # shin: ankle-knee
)
SYMMETRY_BONE_NAMES: tuple[str, ...] = ("upper_arm", "forearm", "thigh", "shin")

# Zhou et al.'s 14 bones (skip the thorax); their sum sets the evaluation scale.
ZHOU_BONES: tuple[tuple[int, int], ...] = (
    (0, 1),
    (1, 2),
    (2, 6),
    (6, 3),
    (3, 4),
    (4, 5),
    (10, 11),
    (11, 12),
    (12, 8),
    (8, 13),
    (13, 14),
    (14, 15),
    (6, 8),
    (8, 9),
)
H36M_ZHOU_BONE_SUM_MM = 4296.99  # mean sum of ZHOU_BONES over the H36M training set

# Zhou et al.'s bone-length-ratio groups for the geometric loss: (bones, ratio weights).
# Weights make the lengths inside a group comparable (shin x 1.0085885 vs thigh, forearm x
# 1.1375361 vs upper arm: their code's constants from H36M statistics).
GEOMETRIC_GROUPS: tuple[tuple[tuple[tuple[int, int], ...], tuple[float, ...]], ...] = (
    (((0, 1), (1, 2), (3, 4), (4, 5)), (1.0085885, 1.0, 1.0, 1.0085885)),  # legs
    (((10, 11), (11, 12), (13, 14), (14, 15)), (1.1375361, 1.0, 1.0, 1.1375361)),  # arms
    (((2, 6), (3, 6)), (1.0, 1.0)),  # hips
    (((12, 8), (13, 8)), (1.0, 1.0)),  # shoulders
)

# Joint triples for Eq. 1: (neck/pelvis, shoulder/hip, elbow/knee, wrist/ankle, sign).
# sign = +1: legal when n . v_lower > 0 (right elbow, left knee); -1: legal when < 0 (left
# elbow, right knee), as the right-hand rule gives for mirrored limbs. Signs are checked on real
# H36M motion in tests/test_losses_realdata.py; see keras_pose3d/losses/illegal_angle.py.
ANGLE_LIMBS: tuple[tuple[str, int, int, int, int, float], ...] = (
    ("r_elbow", COLLAR_JOINT, 12, 11, 10, +1.0),
    ("l_elbow", COLLAR_JOINT, 13, 14, 15, -1.0),
    ("r_knee", ROOT, 2, 1, 0, -1.0),
    ("l_knee", ROOT, 3, 4, 5, +1.0),
)

# MPII PCKh reporting groups (pelvis and thorax excluded).
PCKH_PARTS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("Head", (9,)),
    ("Shoulder", (12, 13)),
    ("Elbow", (11, 14)),
    ("Wrist", (10, 15)),
    ("Hip", (2, 3)),
    ("Knee", (1, 4)),
    ("Ankle", (0, 5)),
)

# ----------------------------------------------------------------------------------------------
# Human3.6M: the 32-joint metadata.xml skeleton and the common 17-joint subset.
# ----------------------------------------------------------------------------------------------
H36M32_JOINTS: tuple[str, ...] = (
    "Hips",
    "RightUpLeg",
    "RightLeg",
    "RightFoot",
    "RightToeBase",
    "Site",
    "LeftUpLeg",
    "LeftLeg",
    "LeftFoot",
    "LeftToeBase",
    "Site",
    "Spine",
    "Spine1",
    "Neck",
    "Head",
    "Site",
    "LeftShoulder",
    "LeftArm",
    "LeftForeArm",
    "LeftHand",
    "LeftHandThumb",
    "Site",
    "L_Wrist_End",
    "Site",
    "RightShoulder",
    "RightArm",
    "RightForeArm",
    "RightHand",
    "RightHandThumb",
    "Site",
    "R_Wrist_End",
    "Site",
)
H36M32_PARENTS: tuple[int, ...] = (
    -1,
    0,
    1,
    2,
    3,
    4,
    0,
    6,
    7,
    8,
    9,
    0,
    11,
    12,
    13,
    14,
    12,
    16,
    17,
    18,
    19,
    20,
    19,
    22,
    12,
    24,
    25,
    26,
    27,
    28,
    27,
    30,
)
H36M17_FROM_H36M32: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
H36M17_JOINTS: tuple[str, ...] = (
    "pelvis",
    "r_hip",
    "r_knee",
    "r_ankle",
    "l_hip",
    "l_knee",
    "l_ankle",
    "spine",
    "thorax",
    "neck_nose",
    "head",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "r_shoulder",
    "r_elbow",
    "r_wrist",
)
H36M17_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
H36M17_FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 4),
    (2, 5),
    (3, 6),
    (11, 14),
    (12, 15),
    (13, 16),
)
H36M17_ROOT = 0

# MPII-16 joint j is H36M-17 joint MPII_FROM_H36M17[j] (Zhou's map, docs/datasets.md 1.3).
MPII_FROM_H36M17: tuple[int, ...] = (3, 2, 1, 4, 5, 6, 0, 8, 9, 10, 16, 15, 14, 11, 12, 13)
# H36M-17 joint k is MPII-16 joint H36M17_FROM_MPII[k], the exact inverse of the map above for
# the 16 shared joints; the spine (index 7) has no MPII counterpart and is re-estimated by
# `mpii_to_h36m17`. (datasets.md 1.3 lists the inverse of Zhou's *other* variant; with the map
# chosen here this one round-trips.)
H36M17_FROM_MPII: tuple[int, ...] = (6, 2, 1, 0, 3, 4, 5, 7, 7, 8, 9, 13, 14, 15, 12, 11, 10)

# ----------------------------------------------------------------------------------------------
# MPI-INF-3DHP: 28 joints and the 17 "relevant" test joints.
# ----------------------------------------------------------------------------------------------
MPI3DHP28_JOINTS: tuple[str, ...] = (
    "spine3",
    "spine4",
    "spine2",
    "spine",
    "pelvis",
    "neck",
    "head",
    "head_top",
    "l_clavicle",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "l_hand",
    "r_clavicle",
    "r_shoulder",
    "r_elbow",
    "r_wrist",
    "r_hand",
    "l_hip",
    "l_knee",
    "l_ankle",
    "l_foot",
    "l_toe",
    "r_hip",
    "r_knee",
    "r_ankle",
    "r_foot",
    "r_toe",
)
MPI3DHP17_FROM_28: tuple[int, ...] = (7, 5, 14, 15, 16, 9, 10, 11, 23, 24, 25, 18, 19, 20, 4, 3, 6)
MPI3DHP17_JOINTS: tuple[str, ...] = (
    "head_top",
    "neck",
    "r_shoulder",
    "r_elbow",
    "r_wrist",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "r_hip",
    "r_knee",
    "r_ankle",
    "l_hip",
    "l_knee",
    "l_ankle",
    "pelvis",
    "spine",
    "head",
)
# 0-based parents (the official .m file lists them 1-based).
MPI3DHP17_PARENTS: tuple[int, ...] = (1, 15, 1, 2, 3, 1, 5, 6, 14, 8, 9, 14, 11, 12, -1, 14, 1)
MPI3DHP17_ROOT = 14
# The 14-joint PCK/AUC group: head_top, neck, shoulders, elbows, wrists, hips, knees, ankles.
MPI3DHP17_PCK14: tuple[int, ...] = tuple(range(14))

# MPII-16 from 3DHP-17. Approximations (documented, the paper retargets skeletons):
# MPII thorax <- 3DHP neck (its neck sits between thorax and upper neck), MPII upper neck <-
# 3DHP head (the head centre, above the neck).
MPII_FROM_MPI3DHP17: tuple[int, ...] = (10, 9, 8, 11, 12, 13, 14, 1, 16, 0, 4, 3, 2, 5, 6, 7)
MPII_FROM_MPI3DHP17_APPROXIMATE: tuple[str, ...] = ("thorax", "upper_neck")
# 3DHP-17 joint k is MPII-16 joint MPI3DHP17_FROM_MPII[k] (spine re-estimated).
MPI3DHP17_FROM_MPII: tuple[int, ...] = (9, 7, 12, 11, 10, 13, 14, 15, 2, 1, 0, 3, 4, 5, 6, 6, 8)


# ----------------------------------------------------------------------------------------------
# Small functions over the data above (NumPy; batch dimensions are leading and arbitrary).
# ----------------------------------------------------------------------------------------------
def h36m17_to_mpii(pose: np.ndarray) -> np.ndarray:
    """(..., 17, D) H36M-17 -> (..., 16, D) MPII-16 (Zhou's map)."""
    return np.asarray(pose)[..., MPII_FROM_H36M17, :]


def mpii_to_h36m17(pose: np.ndarray) -> np.ndarray:
    """(..., 16, D) MPII-16 -> (..., 17, D) H36M-17 for evaluation.

    Spine := mean(pelvis, thorax): MPII has none. The other 16 joints invert `h36m17_to_mpii`.
    """
    pose = np.asarray(pose)
    out = pose[..., H36M17_FROM_MPII, :].copy()
    out[..., 7, :] = 0.5 * (pose[..., ROOT, :] + pose[..., J["thorax"], :])
    return out


def mpi3dhp17_to_mpii(pose: np.ndarray) -> np.ndarray:
    """(..., 17, D) 3DHP-17 -> (..., 16, D) MPII-16 (thorax, upper neck approximate)."""
    return np.asarray(pose)[..., MPII_FROM_MPI3DHP17, :]


def flip_joints(pose: np.ndarray, permutation=FLIP_PERMUTATION) -> np.ndarray:
    """Swap left/right joint indices (the coordinate mirror is the caller's job)."""
    return np.asarray(pose)[..., list(permutation), :]


def bone_lengths(pose: np.ndarray, bones=BONES) -> np.ndarray:
    """(..., J, D) -> (..., len(bones)) Euclidean bone lengths."""
    pose = np.asarray(pose, dtype=np.float64)
    child = pose[..., [b[0] for b in bones], :]
    parent = pose[..., [b[1] for b in bones], :]
    return np.linalg.norm(child - parent, axis=-1)


def mean_bone_lengths_h36m() -> dict[tuple[int, int], float]:
    """Standard MPII-16 bone lengths in mm (H36M S1 skeleton, the real motion's FK offsets)."""
    return dict(zip(BONES, STANDARD_BONE_LENGTHS_MM))


# Standard bone lengths (mm) in BONES order, from the H36M S1 skeleton (h36m_motion README
# table); thorax-pelvis is spine+thorax bones, head_top-upper_neck the head bone. Used by
# skeleton fitting when no subject skeleton is given.
STANDARD_BONE_LENGTHS_MM: tuple[float, ...] = (
    454.206,  # r_ankle-r_knee
    442.895,  # r_knee-r_hip
    132.949,  # r_hip-pelvis
    132.949,  # l_hip-pelvis
    442.894,  # l_knee-l_hip
    454.207,  # l_ankle-l_knee
    480.0,  # thorax-pelvis (straight line, approx. spine 233.5 + thorax 257.1 folded)
    121.135,  # upper_neck-thorax
    115.002,  # head_top-upper_neck
    251.729,  # r_wrist-r_elbow
    278.893,  # r_elbow-r_shoulder
    151.031,  # r_shoulder-thorax
    151.034,  # l_shoulder-thorax
    278.883,  # l_elbow-l_shoulder
    251.733,  # l_wrist-l_elbow
)
