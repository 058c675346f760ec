"""Drawing with OpenCV: the 2D skeletons over the frame beside a 3D view of the same people.

Colours: right side red, left side blue, torso/head green (BGR). The 3D panel is an orthographic
view of the root-relative poses (camera frame: x right, y down, z forward) from one fixed
viewpoint per video (`View`: turned `yaw_deg` about the vertical, tilted `elevation_deg` down so
the ground grid shows). Its scale is fixed per video too (`Scene.fit`): every joint lies within
the skeleton's reach of the pelvis (the longest bone chain from the root), so a panel spanning
that reach around the pelvis holds any pose of those bone lengths; the lengths come from the
first frames, so the panel neither zooms nor crops from frame to frame.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from keras_pose3d import skeleton

RIGHT_BGR, LEFT_BGR, CENTRE_BGR = (60, 60, 230), (230, 120, 40), (60, 200, 60)
BACKGROUND, GRID_BGR = 32, (85, 85, 85)
# Bone-length rows used to size the scene: enough to be steady, few enough to be "the start".
SCENE_FRAMES = 30


def bone_colour(child: int) -> tuple[int, int, int]:
    if child in skeleton.RIGHT_JOINTS:
        return RIGHT_BGR
    if child in skeleton.LEFT_JOINTS:
        return LEFT_BGR
    return CENTRE_BGR


def draw_2d(
    image: np.ndarray,
    joints_2d: np.ndarray,
    confidence: np.ndarray | None = None,
    min_confidence: float = 0.0,
    box=None,
) -> np.ndarray:
    """`image` (H, W, 3) uint8 BGR with the (J, 2) pixel skeleton drawn on it (in place).

    Bones whose joints have confidence below `min_confidence` are skipped; `box` [x0, y0, x1,
    y1], when given, is outlined.
    """
    out = image
    thick = max(1, round(max(image.shape[:2]) / 200))
    if box is not None:
        corners = np.round(np.asarray(box, np.float64)).astype(int).tolist()
        cv2.rectangle(out, tuple(corners[:2]), tuple(corners[2:]), (200, 200, 200), 1)
    pts = np.round(np.asarray(joints_2d, np.float64)).astype(int)
    conf = np.ones(len(pts)) if confidence is None else np.asarray(confidence)
    for child, parent in skeleton.BONES:
        if conf[child] >= min_confidence and conf[parent] >= min_confidence:
            cv2.line(
                out, tuple(pts[child]), tuple(pts[parent]), bone_colour(child), thick, cv2.LINE_AA
            )
    for j, p in enumerate(pts):
        if conf[j] >= min_confidence:
            cv2.circle(out, tuple(p), thick + 1, (255, 255, 255), -1, cv2.LINE_AA)
    return out


def reach_mm(lengths: np.ndarray, parents=skeleton.MPII_PARENTS) -> float:
    """Longest path from the root along the tree, for (15,) bone lengths in `skeleton.BONES`
    order: no joint of a pose with these lengths is farther than this from the pelvis."""
    by_child = {child: float(v) for (child, _), v in zip(skeleton.BONES, lengths)}
    best = 0.0
    for j in range(len(parents)):
        total, k = 0.0, j
        while parents[k] >= 0:
            total += by_child[k]
            k = parents[k]
        best = max(best, total)
    return best


@dataclasses.dataclass(frozen=True)
class View:
    """The fixed viewpoint: `yaw_deg` about the vertical, then `elevation_deg` looking down."""

    yaw_deg: float = 30.0
    elevation_deg: float = 15.0

    def rotation(self) -> np.ndarray:
        a, e = np.deg2rad(self.yaw_deg), np.deg2rad(self.elevation_deg)
        yaw = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        # Camera y is down; looking down from above, farther points (z > 0) show higher up.
        tilt = np.array([[1, 0, 0], [0, np.cos(e), -np.sin(e)], [0, np.sin(e), np.cos(e)]])
        return tilt @ yaw


@dataclasses.dataclass(frozen=True)
class Scene:
    """One video's 3D panel: `half_extent_mm` from the panel centre (the pelvis) to its edge,
    `ground_mm` the floor's height below the pelvis (camera y), `view` the viewpoint."""

    half_extent_mm: float
    ground_mm: float
    view: View = View()

    @classmethod
    def fit(
        cls, poses: np.ndarray, spread_mm: float = 0.0, margin: float = 1.1, view: View = View()
    ) -> Scene:
        """From root-relative (T, J, 3) poses: their first `SCENE_FRAMES` frames' median bone
        lengths set the reach (times `margin`, since predicted lengths vary a little); the
        ground is at the median lower ankle. `spread_mm`: the largest sideways offset of a
        person from the panel centre (several people)."""
        first = np.asarray(poses, np.float64)[:SCENE_FRAMES]
        lengths = np.median(skeleton.bone_lengths(first), axis=0)  # (15,)
        reach = max(reach_mm(lengths), 1.0)
        ankles = first[:, [skeleton.J["r_ankle"], skeleton.J["l_ankle"]], 1]  # (T, 2) y down
        ground = float(np.median(np.max(ankles, axis=1)))
        ground = min(max(ground, 0.0), reach)
        return cls(margin * reach + abs(spread_mm), ground, view)

    def project(self, points_mm: np.ndarray, size: int) -> np.ndarray:
        """(..., 3) root-relative mm -> (..., 2) panel px (orthographic, pelvis at the centre)."""
        p = np.asarray(points_mm, np.float64) @ self.view.rotation().T
        return p[..., :2] * (0.5 * size / self.half_extent_mm) + 0.5 * (size - 1)

    def grid(self, step_mm: float | None = None) -> np.ndarray:
        """(L, 2, 3) floor segments (y = ground) spanning the panel, ~8 cells across (a
        round step: 100, 250, 500 mm, 1 m, 2 m) unless `step_mm` is given."""
        if step_mm is None:
            steps = np.array([100.0, 250.0, 500.0, 1000.0, 2000.0])
            step_mm = float(steps[np.argmin(np.abs(np.log(steps / (self.half_extent_mm / 4))))])
        n = int(np.floor(self.half_extent_mm / step_mm))
        ticks = np.arange(-n, n + 1) * step_mm
        lo, hi = -n * step_mm, n * step_mm
        y = self.ground_mm
        along_x = [[[lo, y, t], [hi, y, t]] for t in ticks]
        along_z = [[[t, y, lo], [t, y, hi]] for t in ticks]
        return np.array(along_x + along_z, np.float64)


def draw_3d(
    poses_mm: list[np.ndarray], scene: Scene, size: int = 256, offsets_mm: list[float] | None = None
) -> np.ndarray:
    """A (size, size, 3) uint8 panel: the floor grid and each root-relative (J, 3) pose,
    shifted sideways by its `offsets_mm` (x, camera frame)."""
    panel = np.full((size, size, 3), BACKGROUND, np.uint8)
    shift = 4  # cv2 fixed-point bits: sub-pixel lines
    for a, b in np.round(scene.project(scene.grid(), size) * (1 << shift)).astype(int):
        cv2.line(panel, tuple(a), tuple(b), GRID_BGR, 1, cv2.LINE_AA, shift)
    thick = max(1, round(size / 128))
    offsets = offsets_mm or [0.0] * len(poses_mm)
    for pose, dx in zip(poses_mm, offsets):
        pts = np.round(scene.project(np.asarray(pose) + [dx, 0.0, 0.0], size)).astype(int)
        for child, parent in skeleton.BONES:
            cv2.line(
                panel, tuple(pts[child]), tuple(pts[parent]), bone_colour(child), thick, cv2.LINE_AA
            )
    return panel


@dataclasses.dataclass(frozen=True)
class Person:
    """What one rendered person needs: 2D joints (J, 2) px, confidence (J,), root-relative
    pose (J, 3) mm, sideways offset in the 3D panel, the person box used (or None)."""

    joints_2d: np.ndarray
    confidence: np.ndarray
    pose_mm: np.ndarray
    offset_mm: float = 0.0
    box: object = None


def side_by_side(frame: np.ndarray, people: list[Person], scene: Scene) -> np.ndarray:
    """Frame with its 2D overlays (left) and the 3D view of the same height (right)."""
    left = frame.copy()
    for p in people:
        draw_2d(left, p.joints_2d, p.confidence, box=p.box)
    right = draw_3d(
        [p.pose_mm for p in people],
        scene,
        size=frame.shape[0],
        offsets_mm=[p.offset_mm for p in people],
    )
    return np.concatenate([left, right], axis=1)
