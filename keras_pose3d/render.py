"""Drawing with OpenCV: the 2D skeleton over the frame beside a 3D skeleton view.

Colours: right side red, left side blue, torso/head green (BGR). The 3D view is an orthographic
projection of the root-relative pose, camera frame (x right, y down, z forward), turned by
`yaw_deg` about the vertical axis so depth is visible, and scaled so `extent_mm` fills the panel.
"""

from __future__ import annotations

import cv2
import numpy as np

from keras_pose3d import skeleton

RIGHT_BGR, LEFT_BGR, CENTRE_BGR = (60, 60, 230), (230, 120, 40), (60, 200, 60)


def bone_colour(child: int) -> tuple[int, int, int]:
    if child in skeleton.RIGHT_JOINTS:
        return RIGHT_BGR
    if child in skeleton.LEFT_JOINTS:
        return LEFT_BGR
    return CENTRE_BGR


def draw_2d(image: np.ndarray, joints_2d: np.ndarray, confidence: np.ndarray | None = None,
            min_confidence: float = 0.0) -> np.ndarray:
    """A copy of `image` (H, W, 3) uint8 BGR with the (J, 2) pixel skeleton drawn on it.

    Bones whose joints have confidence below `min_confidence` are skipped.
    """
    out = image.copy()
    thick = max(1, round(max(image.shape[:2]) / 200))
    pts = np.round(np.asarray(joints_2d, np.float64)).astype(int)
    conf = np.ones(len(pts)) if confidence is None else np.asarray(confidence)
    for child, parent in skeleton.BONES:
        if conf[child] >= min_confidence and conf[parent] >= min_confidence:
            cv2.line(out, tuple(pts[child]), tuple(pts[parent]), bone_colour(child), thick,
                     cv2.LINE_AA)
    for j, p in enumerate(pts):
        if conf[j] >= min_confidence:
            cv2.circle(out, tuple(p), thick + 1, (255, 255, 255), -1, cv2.LINE_AA)
    return out


def project_3d(pose_mm: np.ndarray, size: int, yaw_deg: float, extent_mm: float) -> np.ndarray:
    """(J, 3) root-relative mm -> (J, 2) panel pixels (orthographic, turned about y)."""
    a = np.deg2rad(yaw_deg)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    p = np.asarray(pose_mm, np.float64) @ rot.T
    return p[:, :2] * (size / extent_mm) + size / 2.0


def draw_3d(pose_mm: np.ndarray, size: int = 256, yaw_deg: float = 30.0,
            extent_mm: float = 2200.0) -> np.ndarray:
    """A (size, size, 3) uint8 panel showing the root-relative 3D pose."""
    panel = np.full((size, size, 3), 32, np.uint8)
    ground = int(size / 2 + 1000.0 * size / extent_mm)  # ~ foot level below the pelvis
    cv2.line(panel, (0, ground), (size - 1, ground), (80, 80, 80), 1)
    pts = np.round(project_3d(pose_mm, size, yaw_deg, extent_mm)).astype(int)
    for child, parent in skeleton.BONES:
        cv2.line(panel, tuple(pts[child]), tuple(pts[parent]), bone_colour(child), 2, cv2.LINE_AA)
    return panel


def side_by_side(frame: np.ndarray, joints_2d: np.ndarray, pose_mm: np.ndarray,
                 confidence: np.ndarray | None = None) -> np.ndarray:
    """Frame with its 2D overlay (left) and a 3D view of the same height (right)."""
    left = draw_2d(frame, joints_2d, confidence)
    right = draw_3d(pose_mm, size=frame.shape[0])
    return np.concatenate([left, right], axis=1)
