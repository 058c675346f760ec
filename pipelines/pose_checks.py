"""Why a pose cannot become a record: shapes, non-finite values, range, joints behind the
camera or far outside the image. Each check returns a reason (for the dead letter) or None."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_pose3d.skeleton import NUM_JOINTS

# Largest |coordinate| accepted for camera-frame joints: 100 m is far outside any capture
# volume, so anything beyond is a unit or parsing error, not a person.
MAX_ABS_MM = 1.0e5


def check_points_3d(points: Any, field: str) -> str | None:
    """Reason why a (J, 3) array in mm is unusable (shape, non-finite, out of range), or None."""
    p3 = np.asarray(points, np.float64)
    if p3.shape != (NUM_JOINTS, 3):
        return f"{field} has shape {p3.shape}, expected ({NUM_JOINTS}, 3)"
    bad = np.where(~np.all(np.isfinite(p3), axis=1))[0]
    if bad.size:
        return f"{field} non-finite at joints {bad.tolist()}"
    largest = float(np.abs(p3).max())
    if largest > MAX_ABS_MM:
        return f"{field} out of range (|value| up to {largest:.0f} mm > {MAX_ABS_MM:.0f})"
    return None


def validate_joints(
    joints_2d: np.ndarray,
    visibility: np.ndarray | None = None,
    joints_3d: np.ndarray | None = None,
    has_3d: bool = False,
    image_size: Sequence[int] | None = None,
    max_outside_px: float | None = None,
) -> str | None:
    """Returns why a pose is unusable, or None when it is fine.

    Checks: shapes (16, 2) / (16,) / (16, 3); no NaN/inf in 2D joints that are visible and in
    any 3D joint when `has_3d`; 3D inside +-MAX_ABS_MM with the root in front of the camera;
    at least one visible joint; with `image_size` (h, w) and `max_outside_px`, visible 2D
    joints at most that many pixels outside the image.
    """
    j2 = np.asarray(joints_2d, np.float64)
    if j2.shape != (NUM_JOINTS, 2):
        return f"joints_2d has shape {j2.shape}, expected ({NUM_JOINTS}, 2)"
    vis = np.ones(NUM_JOINTS) if visibility is None else np.asarray(visibility, np.float64)
    if vis.shape != (NUM_JOINTS,):
        return f"visibility has shape {vis.shape}, expected ({NUM_JOINTS},)"
    if not np.all(np.isfinite(vis)):
        return "visibility has non-finite values"
    visible = vis > 0
    if not np.any(visible):
        return "no visible joint"
    bad = np.where(visible & ~np.all(np.isfinite(j2), axis=1))[0]
    if bad.size:
        return f"joints_2d non-finite at visible joints {bad.tolist()}"
    if image_size is not None and max_outside_px is not None:
        h, w = image_size
        v2 = j2[visible]
        out = (
            (v2[:, 0] < -max_outside_px)
            | (v2[:, 1] < -max_outside_px)
            | (v2[:, 0] > w - 1 + max_outside_px)
            | (v2[:, 1] > h - 1 + max_outside_px)
        )
        if np.any(out):
            idx = np.where(visible)[0][out]
            return (
                f"joints_2d more than {max_outside_px} px outside the image at joints "
                f"{idx.tolist()}"
            )
    if has_3d:
        if joints_3d is None:
            return "has_3d but joints_3d is None"
        reason = check_points_3d(joints_3d, "joints_3d")
        if reason:
            return reason
        j3 = np.asarray(joints_3d, np.float64)
        behind = np.where(j3[:, 2] <= 0)[0]
        if behind.size:
            return f"joints_3d behind the camera (z <= 0) at joints {behind.tolist()}"
    return None
