"""Frame-to-frame person tracking for `infer`, as BlazePose does it.

The detector runs only when needed: at the start, when a track's pose confidence drops, and
(with several people) every `redetect_every` frames to find people who walk in. Between
detections a track's next box is the square person box around its previous frame's confident 2D
joints (`box_from_joints`, the pipelines' 1.2 x extent convention), so the crop follows the
person however the detector fares on that frame. While some joints are missing the next box
grows, most towards the crop borders the joints reach (`grow_at_edges`): a detection that
caught only part of the person (HOG often boxes the legs of a large person) widens to the whole
person within a few frames.

One person (the default) follows the detector's first (best-ranked, `detect.rank_people`)
detection; `all_people` follows every detection, each as its own track with a stable id.
Detections are matched to tracks by box IoU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from keras_pose3d.data import crop_geometry
from keras_pose3d.inference.detect import PERSON_BOX_SCALE, Detection, box_area, iou


@dataclasses.dataclass(frozen=True)
class TrackerConfig:
    """Attributes:
    min_confidence: mean joint confidence below which a track asks for the detector.
    joint_confidence: joints at or above this confidence shape the next box.
    min_joints: fewer confident joints than this also asks for the detector.
    match_iou: a detection continues a track when their boxes overlap at least this much.
    max_lost: frames a track survives without a confident pose or a matching detection
        (several people only; one person keeps its last box until it is found again).
    redetect_every: with several people, frames between detector runs (0: only when lost).
    edge, grow: when some joints are not confident, part of the person may lie outside the
        crop (the model cannot place a joint there): the next box grows by `grow` x its side,
        evenly, and by as much again towards each border that a confident joint lies within
        `edge` x the crop's side of (`grow_at_edges`).
    """

    min_confidence: float = 0.3
    joint_confidence: float = 0.2
    min_joints: int = 6
    match_iou: float = 0.3
    max_lost: int = 15
    redetect_every: int = 15
    edge: float = 0.05
    grow: float = 0.25


def box_from_joints(
    joints_2d: np.ndarray, confidence: np.ndarray | None = None, min_confidence: float = 0.0
) -> np.ndarray | None:
    """(J, 2) px (+ (J,) confidence) -> square person box [x0, y0, x1, y1], None if no joint."""
    pts = np.asarray(joints_2d, np.float64)
    if confidence is not None:
        pts = pts[np.asarray(confidence) >= min_confidence]
    if len(pts) == 0:
        return None
    centre, side = crop_geometry.person_box(pts)  # the pipelines' person box
    side = max(side, PERSON_BOX_SCALE)  # one joint: a 1.2 px box, not an empty one
    return crop_geometry.square_box(centre, side)


def grow_at_edges(
    box: np.ndarray, joints_2d: np.ndarray, crop: np.ndarray, edge: float, grow: float
) -> np.ndarray:
    """`box` grown by `grow` x its side (evenly), and by as much again towards each border of
    `crop` that a joint lies within `edge` x the crop's side of; kept square."""
    box = np.asarray(box, np.float64).copy()
    crop = np.asarray(crop, np.float64)
    pts = np.asarray(joints_2d, np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return box
    margin = edge * float(crop[2] - crop[0])
    step = grow * float(box[2] - box[0])
    low = pts.min(axis=0) <= crop[:2] + margin  # (2,) touches left / top
    high = pts.max(axis=0) >= crop[2:] - margin  # (2,) touches right / bottom
    box[:2] -= step * (0.5 + low)
    box[2:] += step * (0.5 + high)
    side = float(np.max(box[2:] - box[:2]))
    centre = 0.5 * (box[:2] + box[2:])
    return np.concatenate([centre - side / 2, centre + side / 2])


def _covered(a, b) -> float:
    """Fraction of box a inside box b."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(0.0, float(w)) * max(0.0, float(h)) / max(box_area(a), 1e-9)


@dataclasses.dataclass
class Track:
    """A followed person: `box` for the next frame, `source` where it came from ("detector",
    "tracked": the previous frame's joints, "held": the last box, kept while lost)."""

    id: int
    box: np.ndarray
    source: str
    lost: int = 0
    needs_detection: bool = False
    first_frame: int = 0


class Tracker:
    """`tracks = tracker.step(frame_index, image)` before the pose model, then
    `tracker.update(track_id, joints_2d, confidence)` with each track's pose."""

    def __init__(
        self,
        detector: Callable[[np.ndarray], list[Detection]],
        config: TrackerConfig = TrackerConfig(),
        all_people: bool = False,
    ):
        self.detector = detector
        self.config = config
        self.all_people = all_people
        self.tracks: list[Track] = []
        self._next_id = 0
        self._last_detection = -(10**9)
        self.detector_runs = 0

    def _new_track(self, det: Detection, frame: int) -> Track:
        track = Track(self._next_id, np.asarray(det.box, np.float64), "detector", first_frame=frame)
        self._next_id += 1
        self.tracks.append(track)
        return track

    def step(self, frame: int, image: np.ndarray) -> list[Track]:
        """The tracks to run the pose model on in this frame (their boxes set)."""
        c = self.config
        due = (
            self.all_people
            and c.redetect_every > 0
            and (frame - self._last_detection >= c.redetect_every)
        )
        if not self.tracks or due or any(t.needs_detection for t in self.tracks):
            self._detect(frame, image)
        return list(self.tracks)

    def _detect(self, frame: int, image: np.ndarray) -> None:
        c = self.config
        dets = self.detector(image)
        self.detector_runs += 1
        self._last_detection = frame
        free = list(dets)
        # Greedy IoU matching, best pairs first.
        pairs = sorted(
            (
                (iou(t.box, d.box), i, j)
                for i, t in enumerate(self.tracks)
                for j, d in enumerate(dets)
            ),
            reverse=True,
        )
        used_t, used_d = set(), set()
        for overlap, i, j in pairs:
            if overlap < c.match_iou or i in used_t or j in used_d:
                continue
            used_t.add(i)
            used_d.add(j)
            track = self.tracks[i]
            if track.needs_detection:  # a confident track keeps its tighter joint box
                track.box, track.source = np.asarray(dets[j].box, np.float64), "detector"
                track.needs_detection, track.lost = False, 0
        free = [d for j, d in enumerate(dets) if j not in used_d]
        for i, track in enumerate(self.tracks):
            if i not in used_t and track.needs_detection:
                if not self.all_people and free:
                    # One person, lost, moved too far for IoU: the best-ranked detection.
                    best = free.pop(0)
                    track.box, track.source = np.asarray(best.box, np.float64), "detector"
                    track.needs_detection, track.lost = False, 0
                else:
                    track.lost += 1
                    track.source = "held"
        if self.all_people:
            self.tracks = [t for t in self.tracks if t.lost <= c.max_lost]
            for det in free:  # people who walked in (not a second box on someone tracked)
                if all(
                    iou(det.box, t.box) < c.match_iou and _covered(det.box, t.box) < 0.5
                    for t in self.tracks
                ):
                    self._new_track(det, frame)
        elif not self.tracks and free:
            self._new_track(free[0], frame)

    def seed(self, frame: int, joints_2d: np.ndarray, confidence: np.ndarray) -> bool:
        """One person, nobody detected: a confident pose on the whole image starts the track
        (BlazePose's fallback when its detector misses). Returns whether it did."""
        c = self.config
        confidence = np.asarray(confidence, np.float64)
        if (
            self.tracks
            or float(np.mean(confidence)) < c.min_confidence
            or int((confidence >= c.joint_confidence).sum()) < c.min_joints
        ):
            return False
        box = box_from_joints(joints_2d, confidence, c.joint_confidence)
        self.tracks.append(Track(self._next_id, box, "tracked", first_frame=frame))
        self._next_id += 1
        return True

    def update(self, track_id: int, joints_2d: np.ndarray, confidence: np.ndarray) -> None:
        """Sets the track's next box from this frame's pose, or flags it for the detector."""
        c = self.config
        track = next(t for t in self.tracks if t.id == track_id)
        confidence = np.asarray(confidence, np.float64)
        confident = confidence >= c.joint_confidence
        if float(np.mean(confidence)) < c.min_confidence or int(confident.sum()) < c.min_joints:
            track.needs_detection = True
            return
        box = box_from_joints(joints_2d, confidence, c.joint_confidence)
        if not confident.all():  # part of the person may be outside the crop
            track.box = grow_at_edges(box, joints_2d[confident], track.box, c.edge, c.grow)
        else:
            track.box = box
        track.source, track.lost, track.needs_detection = "tracked", 0, False
