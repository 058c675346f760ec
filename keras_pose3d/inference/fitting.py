"""Skeleton fitting (Dabral et al. 2018, section 5, "optional"): known bone lengths, predicted
bone directions.

Each predicted bone keeps its direction; its length is replaced by the subject's (or a standard)
length, walking the kinematic tree from the pelvis so every child hangs off its already-fitted
parent. The root stays where it was predicted. A bone whose predicted length is below
`MIN_BONE_MM` has no usable direction; it gets the direction `DEGENERATE_DIRECTION` (camera +z)
so that its length is still exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from keras_pose3d import skeleton

MIN_BONE_MM = 1e-6
DEGENERATE_DIRECTION = (0.0, 0.0, 1.0)


def topological_order(parents: Sequence[int] = skeleton.MPII_PARENTS) -> tuple[int, ...]:
    """Joint indices ordered so every parent comes before its children (root first).

    Raises:
        ValueError: when the tree has no single root or contains a cycle.
    """
    parents = list(parents)
    roots = [j for j, p in enumerate(parents) if p < 0]
    if len(roots) != 1:
        raise ValueError(f"parents must have exactly one root (-1). Received: {parents}")
    order, frontier = [], roots
    while frontier:
        order.extend(frontier)
        frontier = [j for j, p in enumerate(parents) if p in frontier]
    if len(order) != len(parents):
        raise ValueError(f"parents do not form a tree reachable from the root: {parents}")
    return tuple(order)


def bone_length_table(
    lengths: Mapping | Sequence[float] | np.ndarray | None = None,
    parents: Sequence[int] = skeleton.MPII_PARENTS,
) -> np.ndarray:
    """Target length per joint (length of the bone to its parent), (J,) mm; 0 for the root.

    Args:
        lengths: None for `skeleton.STANDARD_BONE_LENGTHS_MM`; a mapping keyed by
            (child, parent) (as `skeleton.mean_bone_lengths_h36m()` returns) or by child joint
            name; or a sequence in `skeleton.BONES` order.
        parents: the tree; bones are (j, parents[j]).
    """
    bones = [(j, p) for j, p in enumerate(parents) if p >= 0]
    if lengths is None:
        lengths = skeleton.STANDARD_BONE_LENGTHS_MM
    table = np.zeros(len(parents), np.float64)
    if isinstance(lengths, Mapping):
        for child, parent in bones:
            name = skeleton.MPII_JOINTS[child] if len(parents) == skeleton.NUM_JOINTS else None
            if (child, parent) in lengths:
                table[child] = lengths[(child, parent)]
            elif name is not None and name in lengths:
                table[child] = lengths[name]
            else:
                raise KeyError(
                    f"bone lengths have no entry for bone (child={child}, parent={parent}) "
                    f"({name}); expected keys (child, parent) or child joint names"
                )
    else:
        values = np.asarray(lengths, np.float64)
        if values.shape != (len(bones),):
            raise ValueError(
                f"bone lengths must list {len(bones)} values in skeleton.BONES order. "
                f"Received: shape={values.shape}"
            )
        for (child, _), value in zip(bones, values):
            table[child] = value
    if np.any(table[[c for c, _ in bones]] <= 0):
        raise ValueError(f"bone lengths must be > 0. Received: {table}")
    return table


def fit_skeleton(
    pose: np.ndarray,
    lengths: Mapping | Sequence[float] | np.ndarray | None = None,
    parents: Sequence[int] = skeleton.MPII_PARENTS,
) -> np.ndarray:
    """Re-lengthen every bone of `pose`, keeping its direction (NumPy).

    Args:
        pose: (..., J, 3) joint positions (any unit matching `lengths`, normally mm).
        lengths: target bone lengths (see `bone_length_table`).
        parents: the kinematic tree (MPII-16 by default).

    Returns:
        (..., J, 3) float64 pose with the same root and bone directions and the target lengths.
    """
    pose = np.asarray(pose, np.float64)
    if pose.ndim < 2 or pose.shape[-2:] != (len(parents), 3):
        raise ValueError(f"pose must be (..., {len(parents)}, 3). Received: shape={pose.shape}")
    table = bone_length_table(lengths, parents)
    out = np.array(pose)
    for j in topological_order(parents)[1:]:
        p = parents[j]
        bone = pose[..., j, :] - pose[..., p, :]  # predicted direction, (..., 3)
        norm = np.linalg.norm(bone, axis=-1, keepdims=True)
        unit = np.where(
            norm > MIN_BONE_MM, bone / np.maximum(norm, MIN_BONE_MM), DEGENERATE_DIRECTION
        )
        out[..., j, :] = out[..., p, :] + unit * table[j]
    return out


def sequence_bone_lengths(
    poses: np.ndarray, parents: Sequence[int] = skeleton.MPII_PARENTS
) -> np.ndarray:
    """Median length of each bone over a sequence, in `skeleton.BONES` order: (T, J, 3) -> (J-1,).

    A per-subject skeleton estimated from the predictions themselves, for when no subject
    skeleton is known; the median ignores the occasional badly predicted frame.
    """
    bones = tuple((j, p) for j, p in enumerate(parents) if p >= 0)
    return np.median(skeleton.bone_lengths(np.asarray(poses), bones).reshape(-1, len(bones)), 0)
