"""Person detection for `infer`: OpenCV's HOG people detector, weights shipped with OpenCV.

The detector is Dalal & Triggs' HOG + linear SVM (INRIA pedestrians), whose SVM coefficients are
compiled into OpenCV (`HOGDescriptor_getDefaultPeopleDetector`): nothing is downloaded, so it
runs offline. In OpenCV 5 it lives in the contrib build (`opencv-contrib-python-headless`, a
superset of `opencv-python-headless`); see the README's inference section for why this one and
not MediaPipe. It finds upright people (standing, walking) at least ~100 px tall and misses many
unusual poses (lying, tumbling, seated); when it finds nobody, a second pass on a shrunk frame
with a border looks for people filling or cut by the frame (`DetectorConfig.near_*`).
`tracking` keeps a person between detections.

Boxes here follow the serving convention (`serving.signatures`): the *person box* a network
input covers, a square of side `PERSON_BOX_SCALE` (1.2) times the person's extent, as the MPII
pipeline builds it from the joints (`data.readers.h36m.person_box`).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from keras_pose3d.data.readers import h36m

# Person box side / person extent: the pipelines' convention (1.2 x the joints' extent).
PERSON_BOX_SCALE = h36m.BOX_SIDE_FACTOR
# The HOG window is 64 x 128 px with the training pedestrians ~96 px tall inside it.
_PERSON_HEIGHT_IN_WINDOW = 96.0 / 128.0


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """HOG detection settings.

    Attributes:
        max_side: frames are resized so their longer side is this many px (HOG's cost grows
            with the pixel count; 640 finds people down to ~1/5 of a 720p frame's height).
        min_side: smaller frames are enlarged to this longer side (the window is 128 px tall,
            so a person filling a small image would otherwise be missed).
        win_stride: window step in px (of the resized frame).
        scale: image pyramid factor.
        min_score: SVM margin below which a window is dropped.
        nms_iou: overlap above which the weaker of two windows is dropped.
        near_side, near_pad: a second pass for people too large for the first (near the
            camera, filling the frame's height or cut by its edge, as in most photos): HOG
            only fires where the whole 64 x 128 window, the figure plus a margin, lies inside
            the image, so the frame is shrunk to `near_side` px and given a replicated border
            of `near_pad` x its height on every side. It runs only when the first pass finds
            nobody; 0 for `near_side` turns it off. Both values were chosen on the five MPII
            sample images (README).
        near_min_score: the near pass's SVM margin threshold, lower than the first's: the
            border is not body, so a cut person scores lower (-0.3 to 0.3 give the same MPII
            boxes; the cut-off walker of `tests/test_tracking.py` needs it below 0.2).
    """

    max_side: int = 640
    min_side: int = 480
    win_stride: int = 8
    scale: float = 1.05
    min_score: float = 0.2
    nms_iou: float = 0.4
    near_side: int = 400
    near_pad: float = 0.5
    near_min_score: float = -0.3


@dataclasses.dataclass(frozen=True)
class Detection:
    """One person: `box` the square person box, `window` the detector's own window (both
    [x0, y0, x1, y1] px edges of the original frame), `score` the SVM margin."""

    box: tuple[float, float, float, float]
    window: tuple[float, float, float, float]
    score: float


def window_to_person_box(window: np.ndarray) -> np.ndarray:
    """HOG window [x0, y0, x1, y1] -> square person box (the person is ~3/4 of its height)."""
    x0, y0, x1, y1 = np.asarray(window, np.float64)
    side = PERSON_BOX_SCALE * _PERSON_HEIGHT_IN_WINDOW * (y1 - y0)
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])


def box_area(box) -> float:
    return max(0.0, float(box[2] - box[0])) * max(0.0, float(box[3] - box[1]))


def iou(a, b) -> float:
    """Intersection over union of two [x0, y0, x1, y1] boxes (0 when either is empty)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, float(w)) * max(0.0, float(h))
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


class DetectorUnavailableError(ValueError):
    """The installed OpenCV has no HOG detector (OpenCV >= 5 without the contrib build)."""


class PersonDetector:
    """`detector(image_bgr) -> list[Detection]`, strongest first.

    Raises:
        DetectorUnavailableError: the installed OpenCV has no HOG detector.
    """

    def __init__(self, config: DetectorConfig = DetectorConfig()):
        if not hasattr(cv2, "HOGDescriptor"):
            raise DetectorUnavailableError(
                f"OpenCV {cv2.__version__} has no HOGDescriptor (OpenCV 5 moved it to the contrib "
                "build): pip uninstall opencv-python-headless && pip install "
                "opencv-contrib-python-headless, or pass --boxes"
            )
        self.config = config
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def _windows(
        self, image: np.ndarray, side: int, pad: float, min_score: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """HOG on `image` resized to longer side `side` with a replicated border of `pad` x
        the resized height: (K, 4) [x0, y0, x1, y1] windows in original-frame px, (K,) scores."""
        c = self.config
        h, w = image.shape[:2]
        factor = side / max(h, w)
        small = (
            image
            if factor == 1.0
            else cv2.resize(
                image,
                (round(w * factor), round(h * factor)),
                interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR,
            )
        )
        border = round(pad * small.shape[0])
        if border:
            small = cv2.copyMakeBorder(small, border, border, border, border, cv2.BORDER_REPLICATE)
        # HOG's own threshold at most 0 (its default): windows it groups are then the same
        # whatever min_score is, which only filters the grouped ones.
        rects, weights = self._hog.detectMultiScale(
            small,
            hitThreshold=min(min_score, 0.0),
            winStride=(c.win_stride, c.win_stride),
            padding=(8, 8),
            scale=c.scale,
        )
        rects = np.asarray(rects, np.float64).reshape(-1, 4)  # (K, 4) x, y, w, h
        scores = np.asarray(weights, np.float64).reshape(-1)  # (K,)
        rects[:, :2] -= border
        windows = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1) / factor
        good = scores >= min_score
        return windows[good], scores[good]

    def __call__(self, image: np.ndarray) -> list[Detection]:
        """(H, W, 3) uint8 BGR -> detections in original-frame pixels, strongest first."""
        c = self.config
        longer = max(image.shape[:2])
        side = min(max(longer, c.min_side), c.max_side)
        passes = [self._windows(image, side, 0.0, c.min_score)]
        # Only when the first pass finds nobody: its frame-tall windows also fire on
        # background (the 60-frame walker video: 48 of 118 windows missed the person with it
        # on every frame at a margin of -0.3, 0 of 64 without), and the largest box wins in
        # one-person mode.
        if c.near_side > 0 and len(passes[0][0]) == 0:
            passes.append(
                self._windows(image, min(c.near_side, side), c.near_pad, c.near_min_score)
            )
        windows = np.concatenate([p[0] for p in passes])  # (K, 4)
        scores = np.concatenate([p[1] for p in passes])  # (K,)
        if len(windows) == 0:
            return []
        # NMS over both passes (cv2 keeps scores > its threshold >= 0: shifted above 0).
        xywh = np.concatenate([windows[:, :2], windows[:, 2:] - windows[:, :2]], axis=1)
        keep = cv2.dnn.NMSBoxes(
            xywh.tolist(), (scores - scores.min() + 1.0).tolist(), 0.0, c.nms_iou
        )
        out = [
            Detection(
                tuple(window_to_person_box(windows[k]).tolist()),
                tuple(windows[k].tolist()),
                float(scores[k]),
            )
            for k in np.asarray(keep, int).reshape(-1)
        ]
        return sorted(out, key=lambda d: -d.score)
