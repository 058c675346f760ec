"""Evaluation metrics in NumPy: the protocol definitions every reported number points to.

Each protocol has ONE name constant below; docstrings, logs and tables use the constant so the
name and the computation cannot drift apart (`docs/evaluation.md` defines each protocol).

Conventions: batch first, float64 math, mm for 3D and pixels for 2D. 3D metrics return one value
per sample, shape (N,), so callers can build frame-weighted or action-wise means
(`grouped_means`); PCKh returns per-joint figures because its visibility weighting differs per
joint. Validation runs these on the host too (there are no TensorFlow copies to drift apart).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence

import numpy as np

from keras_pose3d import skeleton

# ----------------------------------------------------------------------------------------------
# Protocol names (defined once).
# ----------------------------------------------------------------------------------------------
PROTOCOL_1 = "MPJPE (Protocol 1)"
PROTOCOL_2 = "PA-MPJPE (Protocol 2)"
PROTOCOL_3 = "N-MPJPE (Protocol 3)"
PROTOCOL_BONE_SCALED = "MPJPE bone-sum scaled (Zhou/Dabral, 16 joints)"
PCK3D_NAME = "3D-PCK@150mm"
AUC3D_NAME = "AUC 3D-PCK 0:5:150mm"
PCKH_NAME = "PCKh@0.5"
MEAN_UNWEIGHTED = "Mean (unweighted over 14 joints)"
MEAN_WEIGHTED = "Mean (weighted by visible joints)"
ACTION_MEAN = "action-wise mean"
FRAME_MEAN = "frame-weighted mean"

PCK3D_THRESHOLD_MM = 150.0
AUC3D_THRESHOLDS_MM: np.ndarray = np.linspace(0.0, 150.0, 31)  # 0, 5, ..., 150
# 3D-PCK joint conventions over the 3DHP-17 order (docs/datasets.md 1.4, docs/evaluation.md 2).
PCK3D_JOINT_SETS: dict[str, tuple[int, ...]] = {
    "14": skeleton.MPI3DHP17_PCK14,  # head_top .. ankles; pelvis, spine, head excluded
    "17": tuple(range(17)),
}
PCKH_HEAD_FACTOR = 0.6  # head size = 0.6 x head-box diagonal (MPII's SC_BIAS)
PCKH_EXCLUDED: tuple[int, ...] = (skeleton.J["pelvis"], skeleton.J["thorax"])


def _as_poses(pred, gt, name: str) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(
            f"{name}: pred and gt must both be (N, J, D). Received: {pred.shape}, {gt.shape}"
        )
    return pred, gt


def root_align(pose: np.ndarray, root: int = skeleton.ROOT) -> np.ndarray:
    """Subtracts the root joint: (..., J, D) -> (..., J, D) with the root at the origin."""
    pose = np.asarray(pose, dtype=np.float64)
    return pose - pose[..., root : root + 1, :]


def mpjpe(pred: np.ndarray, gt: np.ndarray, root: int | None = None) -> np.ndarray:
    """Mean per-joint position error, per sample: `PROTOCOL_1` when `root` is given.

    Args:
        pred, gt: (N, J, 3), mm.
        root: joint index to align both poses at first (Protocol 1: `skeleton.ROOT` for
            MPII-16, `skeleton.H36M17_ROOT` for H36M-17), or None when they are already
            root-relative / aligned. The root joint (error 0 after alignment) still counts in
            the mean over J joints (VideoPose3D convention).

    Returns:
        (N,) mean Euclidean error over the J joints, mm.
    """
    pred, gt = _as_poses(pred, gt, "mpjpe")
    if root is not None:
        pred, gt = root_align(pred, root), root_align(gt, root)
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=-1)


def procrustes_align(pred: np.ndarray, gt: np.ndarray, scale: bool = True) -> np.ndarray:
    """Aligns each prediction to its ground truth with the best similarity transform.

    Minimises `||s * Y R + t - X||^2` over rotation R (det +1: reflections are excluded),
    scale s (if `scale`) and translation t, Y = pred, X = gt (rows are joints). Closed form:
    centre both, `U S V^T = svd(Y^T X)`, `D = diag(1, 1, sign(det(U V^T)))`, `R = U D V^T`,
    `s = trace(S D) / ||Y||^2`.

    Args:
        pred, gt: (N, J, 3).
        scale: fit the scale (Protocol 2) or keep s = 1 (rigid).

    Returns:
        (N, J, 3) aligned predictions.
    """
    pred, gt = _as_poses(pred, gt, "procrustes_align")
    mu_x = gt.mean(axis=1, keepdims=True)
    mu_y = pred.mean(axis=1, keepdims=True)
    x, y = gt - mu_x, pred - mu_y  # (N, J, 3)
    m = np.einsum("nji,njk->nik", y, x)  # (N, 3, 3) = Y^T X
    u, s, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))  # (N,)
    d = np.where(d == 0, 1.0, d)
    u = u.copy()
    u[:, :, -1] *= d[:, None]  # U D
    rot = u @ vt  # (N, 3, 3)
    if scale:
        trace = s[:, 0] + s[:, 1] + d * s[:, 2]
        norm_y = np.sum(y * y, axis=(1, 2))
        factor = np.where(norm_y > 0, trace / np.where(norm_y > 0, norm_y, 1.0), 1.0)
    else:
        factor = np.ones(len(pred))
    return factor[:, None, None] * (y @ rot) + mu_x


def pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """`PROTOCOL_2`: MPJPE after similarity Procrustes (rotation without reflection, scale,
    translation) of each prediction onto its ground truth. (N, J, 3) mm -> (N,) mm."""
    return mpjpe(procrustes_align(pred, gt, scale=True), gt)


def n_mpjpe(pred: np.ndarray, gt: np.ndarray, root: int | None = None) -> np.ndarray:
    """`PROTOCOL_3`: MPJPE after the least-squares scale `s = <Y, X> / <Y, Y>` per sample.

    Args:
        pred, gt: (N, J, 3) mm.
        root: align both at this joint first, or None if already root-relative.

    Returns:
        (N,) mm.
    """
    pred, gt = _as_poses(pred, gt, "n_mpjpe")
    if root is not None:
        pred, gt = root_align(pred, root), root_align(gt, root)
    num = np.sum(pred * gt, axis=(1, 2))
    den = np.sum(pred * pred, axis=(1, 2))
    s = np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)
    return mpjpe(s[:, None, None] * pred, gt)


def _with_mid_thorax(pose: np.ndarray) -> np.ndarray:
    out = pose.copy()
    neck = pose[:, skeleton.J["upper_neck"]]
    out[:, skeleton.J["thorax"]] = 0.5 * (pose[:, skeleton.ROOT] + neck)
    return out


def mpjpe_bone_scaled(
    pred: np.ndarray, gt: np.ndarray, bone_sum_mm: float = skeleton.H36M_ZHOU_BONE_SUM_MM
) -> np.ndarray:
    """`PROTOCOL_BONE_SCALED`: the scale convention of Zhou et al.'s and Dabral et al.'s code.

    Both poses are made pelvis-relative and get thorax := mean(pelvis, upper neck) (the
    16-joint H36M ground truth of that code is built this way). Each prediction is then scaled
    about the pelvis so that its 14 `skeleton.ZHOU_BONES` lengths sum to `bone_sum_mm`, and the
    MPJPE over all 16 joints is taken. Not Protocol 1: the scale is fixed by convention.

    Args:
        pred, gt: (N, 16, 3) MPII-16; pred in any unit (only its shape is used), gt in mm.
        bone_sum_mm: target bone-length sum (H36M training mean 4296.99 mm).

    Returns:
        (N,) mm.
    """
    pred, gt = _as_poses(pred, gt, "mpjpe_bone_scaled")
    if pred.shape[1] != skeleton.NUM_JOINTS:
        raise ValueError(f"mpjpe_bone_scaled: expects MPII-16 poses. Received J={pred.shape[1]}")
    pred = _with_mid_thorax(root_align(pred))
    gt = _with_mid_thorax(root_align(gt))
    total = skeleton.bone_lengths(pred, skeleton.ZHOU_BONES).sum(axis=-1)  # (N,)
    s = np.where(total > 0, bone_sum_mm / np.where(total > 0, total, 1.0), 1.0)
    return mpjpe(s[:, None, None] * pred, gt)


# ----------------------------------------------------------------------------------------------
# 3D-PCK and AUC (MPI-INF-3DHP).
# ----------------------------------------------------------------------------------------------
def _joint_selection(joints, num_joints: int, name: str) -> list[int]:
    if joints is None:
        return list(range(num_joints))
    if isinstance(joints, str):
        if joints not in PCK3D_JOINT_SETS:
            raise ValueError(
                f"{name}: joints must be one of {list(PCK3D_JOINT_SETS)}, a "
                f"sequence of indices or None. Received: {joints!r}"
            )
        if num_joints != 17:
            raise ValueError(
                f"{name}: joints={joints!r} selects from the 3DHP-17 order; "
                f"received poses with J={num_joints}"
            )
        return list(PCK3D_JOINT_SETS[joints])
    selected = [int(j) for j in joints]
    if not selected or min(selected) < 0 or max(selected) >= num_joints:
        raise ValueError(
            f"{name}: joint indices must lie in [0, {num_joints}). Received: {selected}"
        )
    return selected


def joint_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, J, D) x 2 -> (N, J) Euclidean distances."""
    pred, gt = _as_poses(pred, gt, "joint_errors")
    return np.linalg.norm(pred - gt, axis=-1)


def pck3d(
    pred: np.ndarray,
    gt: np.ndarray,
    threshold: float = PCK3D_THRESHOLD_MM,
    joints: str | Sequence[int] | None = "14",
) -> np.ndarray:
    """`PCK3D_NAME`: percentage of joints with error strictly `< threshold` mm, per sample.

    Poses are compared as given (pass root-relative poses; 3DHP uses `univ_annot3`).

    Args:
        pred, gt: (N, J, 3) mm.
        threshold: mm.
        joints: "14" (3DHP-17 order: head_top, neck, shoulders, elbows, wrists, hips, knees,
            ankles; recent papers), "17" (all 3DHP-17 joints), explicit indices, or None for
            every joint of the input.

    Returns:
        (N,) percentages; their mean over samples is the dataset figure.
    """
    err = joint_errors(pred, gt)
    sel = _joint_selection(joints, err.shape[1], "pck3d")
    return 100.0 * np.mean(err[:, sel] < threshold, axis=-1)


def auc3d(
    pred: np.ndarray,
    gt: np.ndarray,
    joints: str | Sequence[int] | None = "14",
    thresholds: np.ndarray = AUC3D_THRESHOLDS_MM,
) -> np.ndarray:
    """`AUC3D_NAME`: mean of `pck3d` over thresholds 0, 5, ..., 150 mm (31 values), x100.

    Args and joint conventions as `pck3d`. Returns (N,) per-sample AUC in [0, 100].
    """
    err = joint_errors(pred, gt)
    sel = _joint_selection(joints, err.shape[1], "auc3d")
    err = err[:, sel]  # (N, K)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    hits = err[:, :, None] < thresholds[None, None, :]  # (N, K, T)
    return 100.0 * hits.mean(axis=(1, 2))


# ----------------------------------------------------------------------------------------------
# PCKh (MPII).
# ----------------------------------------------------------------------------------------------
def pckh_hits(
    pred: np.ndarray, gt: np.ndarray, headboxes: np.ndarray, threshold: float = 0.5
) -> np.ndarray:
    """(N, J) booleans: ||pred - gt|| / (0.6 * head-box diagonal) < threshold (strict)."""
    pred, gt = _as_poses(pred, gt, "pckh")
    headboxes = np.asarray(headboxes, dtype=np.float64)
    if headboxes.shape != (len(pred), 2, 2):
        raise ValueError(
            f"pckh: headboxes must be (N, 2, 2) [[x1, y1], [x2, y2]]. Received: {headboxes.shape}"
        )
    head_size = PCKH_HEAD_FACTOR * np.linalg.norm(headboxes[:, 1] - headboxes[:, 0], axis=-1)
    if np.any(head_size <= 0):
        bad = np.flatnonzero(head_size <= 0)[:5]
        raise ValueError(f"pckh: head boxes of zero size at rows {bad.tolist()}")
    return np.linalg.norm(pred - gt, axis=-1) / head_size[:, None] < threshold


def pckh_counts(
    pred: np.ndarray,
    gt: np.ndarray,
    headboxes: np.ndarray,
    visible: np.ndarray,
    threshold: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Per joint: how many annotated joints are correct, and how many are annotated.

    Every annotated joint counts, wherever it lies (MPII: `jnt_missing == 0`; a joint outside
    a network crop is still scored, and a prediction there is usually wrong).

    Args:
        pred, gt: (N, 16, 2) pixels in the same convention (MPII: original image, 1-based).
        headboxes: (N, 2, 2) [[x1, y1], [x2, y2]].
        visible: (N, 16) 1 for annotated joints (MPII: 1 - jnt_missing).
        threshold: fraction of the head size (0.5).

    Returns:
        ((16,) correct counts, (16,) annotated counts), int64.
    """
    hits = pckh_hits(pred, gt, headboxes, threshold)
    visible = np.asarray(visible).astype(bool)
    if visible.shape != hits.shape:
        raise ValueError(f"pckh: visible must be {hits.shape}. Received: {visible.shape}")
    return (hits & visible).sum(axis=0), visible.sum(axis=0)


def pckh(
    pred: np.ndarray,
    gt: np.ndarray,
    headboxes: np.ndarray,
    visible: np.ndarray,
    threshold: float = 0.5,
) -> np.ndarray:
    """`PCKH_NAME` per joint: percentage of annotated joints that are correct.

    Args as `pckh_counts`.

    Returns:
        (16,) percentages in MPII order; NaN for a joint that is never annotated.
    """
    correct, count = pckh_counts(pred, gt, headboxes, visible, threshold)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * correct / count


def pckh_table_from_counts(correct: np.ndarray, count: np.ndarray) -> dict[str, float]:
    """PCKh report from per-joint (16,) correct and annotated counts (`pckh_table`)."""
    correct = np.asarray(correct, dtype=np.float64)
    count = np.asarray(count, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = 100.0 * correct / count
        table = {
            part: float(100.0 * correct[list(idx)].sum() / count[list(idx)].sum())
            for part, idx in skeleton.PCKH_PARTS
        }
    keep = [j for j in range(skeleton.NUM_JOINTS) if j not in PCKH_EXCLUDED]
    table[MEAN_UNWEIGHTED] = float(np.mean(per_joint[keep]))
    table[MEAN_WEIGHTED] = float(100.0 * correct[keep].sum() / count[keep].sum())
    return table


def pckh_table(
    pred: np.ndarray,
    gt: np.ndarray,
    headboxes: np.ndarray,
    visible: np.ndarray,
    threshold: float = 0.5,
) -> dict[str, float]:
    """PCKh report: the 7 parts of `skeleton.PCKH_PARTS` and both mean conventions.

    A two-joint part pools its two joints, i.e. weights each side by its annotated joints (the
    convention of published tables; with equal counts it is the mean of the two). Pelvis and
    thorax are excluded. `MEAN_UNWEIGHTED` is the MATLAB script's mean of the 14 per-joint
    figures (upper neck included, though no part shows it); `MEAN_WEIGHTED` the Python ports'
    mean weighted by each joint's annotated count (= correct / annotated over the 14 joints).

    Returns:
        {"Head": .., "Shoulder": .., ..., "Ankle": .., MEAN_UNWEIGHTED: .., MEAN_WEIGHTED: ..}.
    """
    return pckh_table_from_counts(*pckh_counts(pred, gt, headboxes, visible, threshold))


# ----------------------------------------------------------------------------------------------
# Structural validity (paper Table 6).
# ----------------------------------------------------------------------------------------------
def symmetry_error(poses: np.ndarray, pairs=skeleton.SYMMETRY_BONE_PAIRS) -> np.ndarray:
    """Mean |left - right| bone length per limb pair (`skeleton.SYMMETRY_BONE_NAMES` order).

    Args:
        poses: (N, 16, 3) mm.

    Returns:
        (len(pairs),) mm: upper arm, forearm, thigh, shin.
    """
    poses = np.asarray(poses, dtype=np.float64)
    right = skeleton.bone_lengths(poses, [p[0] for p in pairs])  # (N, P)
    left = skeleton.bone_lengths(poses, [p[1] for p in pairs])
    return np.abs(left - right).reshape(-1, len(pairs)).mean(axis=0)


def bone_length_std(poses_sequence: np.ndarray, bones=skeleton.BONES) -> np.ndarray:
    """Standard deviation over time of each bone length (population std, ddof 0).

    Args:
        poses_sequence: (T, J, 3) or (S, T, J, 3) sequences, mm.
        bones: (child, parent) pairs; default the 15 `skeleton.BONES`.

    Returns:
        (len(bones),) or (S, len(bones)) mm.
    """
    lengths = skeleton.bone_lengths(poses_sequence, bones)  # (..., T, B)
    return lengths.std(axis=-2)


def limb_bone_length_std(
    poses_sequence: np.ndarray, pairs=skeleton.SYMMETRY_BONE_PAIRS
) -> np.ndarray:
    """Table 6's grouping: std over time of each limb bone, averaged over left and right.

    (T, 16, 3) -> (4,) mm in `skeleton.SYMMETRY_BONE_NAMES` order.
    """
    right = bone_length_std(poses_sequence, [p[0] for p in pairs])
    left = bone_length_std(poses_sequence, [p[1] for p in pairs])
    return 0.5 * (right + left)


def illegal_angle_values(poses: np.ndarray, normalised: bool = False) -> np.ndarray:
    """(N, 16, 3) -> (N, 4) the signed value Eq. 1 (Dabral et al.) tests, per limb of
    `skeleton.ANGLE_LIMBS` (r_elbow, l_elbow, r_knee, l_knee):
    `sign * n . (P_c - P_b)` with `n = (P_a - P_n) x (P_b - P_a)`; below zero is illegal.

    `normalised`: divided by |n| |P_c - P_b| (0 where either is 0), the cosine between the
    normal and the lower limb, in [-1, 1], comparable across people and limbs.
    """
    poses = np.asarray(poses, dtype=np.float64)
    cols = []
    for _, n, a, b, c, sign in skeleton.ANGLE_LIMBS:
        normal = np.cross(poses[..., a, :] - poses[..., n, :], poses[..., b, :] - poses[..., a, :])
        lower = poses[..., c, :] - poses[..., b, :]
        value = sign * np.sum(normal * lower, axis=-1)
        if normalised:
            norms = np.linalg.norm(normal, axis=-1) * np.linalg.norm(lower, axis=-1)
            value = np.divide(value, norms, out=np.zeros_like(value), where=norms > 0)
        cols.append(value)
    return np.stack(cols, axis=-1)


def illegal_angle_mask(poses: np.ndarray) -> np.ndarray:
    """(N, 16, 3) -> (N, 4) True where a limb of `skeleton.ANGLE_LIMBS` is illegal: the value
    of Eq. 1 (`illegal_angle_values`) below zero (zero is legal, like the loss, which is
    exactly zero there). Columns: r_elbow, l_elbow, r_knee, l_knee.
    """
    return illegal_angle_values(poses) < 0


def illegal_angle_rate(poses: np.ndarray, per_limb: bool = False) -> float | np.ndarray:
    """Percentage of illegal elbows and knees (paper Table 6: 0.8 % SAP-Net, 1.4 % Zhou).

    Args:
        poses: (N, 16, 3).
        per_limb: return (4,) percentages (r_elbow, l_elbow, r_knee, l_knee) instead of the
            overall percentage over all N x 4 limbs.
    """
    mask = illegal_angle_mask(poses).reshape(-1, len(skeleton.ANGLE_LIMBS))
    rates = 100.0 * mask.mean(axis=0)
    return rates if per_limb else float(rates.mean())


# ----------------------------------------------------------------------------------------------
# Table helpers.
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class GroupedMean:
    """Per-group means plus both overall conventions (labelled by ACTION_MEAN, FRAME_MEAN)."""

    per_group: dict
    counts: dict
    action_mean: float  # mean of the per-group means (how the paper's tables are built)
    frame_mean: float  # mean over all samples

    def as_dict(self) -> dict:
        out = {str(k): v for k, v in self.per_group.items()}
        out[ACTION_MEAN] = self.action_mean
        out[FRAME_MEAN] = self.frame_mean
        return out


def grouped_means(values: np.ndarray, groups: Sequence[Hashable]) -> GroupedMean:
    """Action-wise vs frame-weighted means of per-sample values.

    Args:
        values: (N,) per-sample metric (e.g. `mpjpe(...)`).
        groups: (N,) labels (e.g. action names).
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    groups = list(groups)
    if len(groups) != len(values):
        raise ValueError(f"grouped_means: {len(values)} values but {len(groups)} group labels")
    if not len(values):
        raise ValueError("grouped_means: no values")
    index: dict = {}
    for i, label in enumerate(groups):  # first-seen order
        index.setdefault(label, []).append(i)
    per_group = {label: float(values[idx].mean()) for label, idx in index.items()}
    counts = {label: len(idx) for label, idx in index.items()}
    return GroupedMean(
        per_group=per_group,
        counts=counts,
        action_mean=float(np.mean(list(per_group.values()))),
        frame_mean=float(values.mean()),
    )
