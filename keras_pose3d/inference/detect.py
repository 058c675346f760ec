"""Person detection for `infer`: faces (MTCNN) and bodies (OpenCV's HOG), weights in their wheels.

Two detectors whose weights ship inside pip packages, so nothing is downloaded and `infer` runs
offline (README "The detector, and why"):

* **Faces: MTCNN** (Zhang et al. 2016; the `mtcnn` package, MIT, Keras/TensorFlow: the stack
  this project already runs). A face is the most reliable sign of a person in a photo, and it is
  there whatever the body does: seated, cut by the frame, near the camera. Each face becomes a
  person box by body proportions (`face_to_person_box`): an upright adult is ~7.5 head heights
  tall and MTCNN's box (brow to chin) ~0.8 of a head, so the person spans ~9 face boxes below
  the head's top. Faces must be at least 20 px at `face_max_side` (MTCNN's smallest).
* **Bodies: HOG** (Dalal & Triggs' HOG + linear SVM, INRIA pedestrians), the SVM compiled into
  OpenCV (`HOGDescriptor_getDefaultPeopleDetector`; in OpenCV 5 in the contrib build). It finds
  upright, whole people (standing, walking) at least ~100 px tall, including small ones and
  people seen from behind that have no visible face, and misses many unusual poses (lying,
  tumbling, seated); it also fires on background (trucks, fences). When its first pass finds
  nobody, a second on a shrunk frame with a border looks for people filling or cut by the frame
  (`DetectorConfig.near_*`).

Ranking (`rank_people`): a body window holding a face in its upper half is one person seen by
both (most trusted), then faces alone (MTCNN fires far less on background than HOG), then
bodies alone; within each, the largest first. In one-person mode `infer` and `tracking` take
the first; `tracking` keeps a person between detections.

Boxes here follow the serving convention (`serving.signatures`): the *person box* a network
input covers, a square of side `PERSON_BOX_SCALE` (1.2) times the person's extent, as the MPII
pipeline builds it from the joints (`data.crop_geometry.person_box`).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from keras_pose3d.data import crop_geometry

# Person box side / person extent: the pipelines' convention (1.2 x the joints' extent).
PERSON_BOX_SCALE = crop_geometry.PERSON_BOX_FACTOR
# The HOG window is 64 x 128 px with the training pedestrians ~96 px tall inside it.
_PERSON_HEIGHT_IN_WINDOW = 96.0 / 128.0


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """Face and HOG detection settings.

    Attributes:
        faces: run the face detector (MTCNN); False leaves HOG alone.
        face_max_side: frames are shrunk so their longer side is at most this many px for
            MTCNN (its cost grows with the pixel count; its smallest face is 20 px there: 1/18
            of the height of a 640 x 360 frame, so people about half the frame tall or more;
            smaller, whole people are HOG's, whose first pass works at the same size).
        face_person_heights: the person's height, head top to feet, in face-box heights (an
            adult is ~7.5 head heights, MTCNN's box ~0.8 of the head: 9).
        face_head_top: how far the head's top lies above the face box's top, in face-box
            heights (the ~0.2 of the head above the brow).
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
            sample images, with HOG alone (README).
        near_min_score: the near pass's SVM margin threshold, lower than the first's: the
            border is not body, so a cut person scores lower (-0.3 to 0.3 give the same MPII
            boxes; the cut-off walker of `tests/test_tracking.py` needs it below 0.2).
    """

    faces: bool = True
    face_max_side: int = 640
    face_person_heights: float = 9.0
    face_head_top: float = 0.2
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
    """One person: `box` the square person box, `window` the detector's own window (the HOG
    window, or the face box for a face alone; both [x0, y0, x1, y1] px edges of the original
    frame), `score` the SVM margin (a body alone) or MTCNN's confidence (with a face), `kind`
    what saw the person: "face+body", "face" or "body"."""

    box: tuple[float, float, float, float]
    window: tuple[float, float, float, float]
    score: float
    kind: str = "body"


def window_to_person_box(window: np.ndarray) -> np.ndarray:
    """HOG window [x0, y0, x1, y1] -> square person box (the person is ~3/4 of its height)."""
    x0, y0, x1, y1 = np.asarray(window, np.float64)
    side = PERSON_BOX_SCALE * _PERSON_HEIGHT_IN_WINDOW * (y1 - y0)
    return crop_geometry.square_box((0.5 * (x0 + x1), 0.5 * (y0 + y1)), side)


def face_to_person_box(face: np.ndarray, heights: float, head_top: float) -> np.ndarray:
    """Face box [x0, y0, x1, y1] -> square person box of an upright person below it: the
    person spans `heights` face heights from `head_top` face heights above the face box, and
    the box is `PERSON_BOX_SCALE` x that, centred on it (the pipelines' convention)."""
    x0, y0, x1, y1 = np.asarray(face, np.float64)
    f = y1 - y0
    top = y0 - head_top * f
    side = PERSON_BOX_SCALE * heights * f
    return crop_geometry.square_box((0.5 * (x0 + x1), top + 0.5 * heights * f), side)


def square_around(a, b) -> np.ndarray:
    """The square box around boxes a and b (centred on their union)."""
    lo = np.minimum(np.asarray(a[:2], np.float64), b[:2])
    hi = np.maximum(np.asarray(a[2:], np.float64), b[2:])
    return crop_geometry.square_box(*crop_geometry.box_centre_side(np.concatenate([lo, hi])))


def rank_people(
    windows: np.ndarray,
    window_scores: np.ndarray,
    faces: np.ndarray,
    face_scores: np.ndarray,
    config: DetectorConfig,
) -> list[Detection]:
    """HOG windows (K, 4) + scores (K,) and faces (F, 4) + confidences (F,), all [x0, y0, x1,
    y1] px -> people, best first: face+body, then face, then body; the largest first in each.

    A face is the same person as a window when its centre lies in the window's upper half (a
    pedestrian's head is at the top; a window on a big person's legs does not count); a face
    takes the largest such window still free. The pair's box is the square around both person
    boxes (each detector may see only part of the person: HOG's window a seated person's top,
    the proportions a too short body) and ranks by the window, the body actually measured."""
    windows = np.asarray(windows, np.float64).reshape(-1, 4)
    faces = np.asarray(faces, np.float64).reshape(-1, 4)
    heights = windows[:, 3] - windows[:, 1]  # (K,)
    free = np.ones(len(windows), bool)
    both, alone = [], []  # (rank size, Detection)
    for i in np.argsort(-(faces[:, 3] - faces[:, 1]), kind="stable"):
        face = faces[i]
        person = face_to_person_box(face, config.face_person_heights, config.face_head_top)
        cx, cy = 0.5 * (face[0] + face[2]), 0.5 * (face[1] + face[3])
        holds = (
            free
            & (windows[:, 0] <= cx)
            & (cx <= windows[:, 2])
            & (windows[:, 1] <= cy)
            & (cy <= 0.5 * (windows[:, 1] + windows[:, 3]))
        )  # (K,)
        if holds.any():
            k = int(np.argmax(np.where(holds, heights, -np.inf)))
            free[k] = False
            box = square_around(window_to_person_box(windows[k]), person)
            det = Detection(
                tuple(box.tolist()), tuple(windows[k].tolist()), float(face_scores[i]), "face+body"
            )
            both.append((heights[k], det))
        else:
            det = Detection(
                tuple(person.tolist()), tuple(face.tolist()), float(face_scores[i]), "face"
            )
            alone.append((face[3] - face[1], det))
    bodies = [
        (
            heights[k],
            Detection(
                tuple(window_to_person_box(windows[k]).tolist()),
                tuple(windows[k].tolist()),
                float(window_scores[k]),
            ),
        )
        for k in np.flatnonzero(free)
    ]
    return [
        det for group in (both, alone, bodies) for _, det in sorted(group, key=lambda sd: -sd[0])
    ]


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
    """The installed OpenCV has no HOG detector (OpenCV >= 5 without the contrib build), or
    the face detector's package (mtcnn) is not installed."""


class PersonDetector:
    """`detector(image_bgr) -> list[Detection]`, best first (`rank_people`).

    Raises:
        DetectorUnavailableError: the installed OpenCV has no HOG detector, or `mtcnn` is not
            installed while `config.faces` is on.
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
        self._mtcnn = None
        if config.faces:
            try:
                import mtcnn  # the weights ship in its wheel (mtcnn/assets/weights)
            except ImportError as e:
                raise DetectorUnavailableError(
                    f"the face detector needs the mtcnn package ({e}): pip install mtcnn==1.0.0 "
                    "(setup.py installs it), or DetectorConfig(faces=False) for HOG alone, or "
                    "pass --boxes"
                ) from e
            self._mtcnn = mtcnn.MTCNN()

    def _faces(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """MTCNN on `image` shrunk to longer side `face_max_side`: (F, 4) [x0, y0, x1, y1]
        face boxes in original-frame px, (F,) confidences."""
        h, w = image.shape[:2]
        factor = min(1.0, self.config.face_max_side / max(h, w))
        small = (
            image
            if factor == 1.0
            else cv2.resize(
                image, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA
            )
        )
        rgb = np.ascontiguousarray(small[:, :, ::-1])  # MTCNN takes RGB
        found = self._mtcnn.detect_faces(rgb, box_format="xyxy")
        boxes = np.array([f["box"] for f in found], np.float64).reshape(-1, 4) / factor
        return boxes, np.array([f["confidence"] for f in found], np.float64)

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
        """(H, W, 3) uint8 BGR -> detections in original-frame pixels, best first."""
        c = self.config
        faces, face_scores = (
            self._faces(image) if self._mtcnn is not None else (np.zeros((0, 4)), np.zeros(0))
        )
        longer = max(image.shape[:2])
        side = min(max(longer, c.min_side), c.max_side)
        passes = [self._windows(image, side, 0.0, c.min_score)]
        # Only when the first pass finds nobody: its frame-tall windows also fire on
        # background (the 60-frame walker video: 48 of 118 windows missed the person with it
        # on every frame at a margin of -0.3, 0 of 64 without). With faces found it still
        # runs: a window holding a face measures that person's body, and a window without one
        # ranks below every face (`rank_people`).
        if c.near_side > 0 and len(passes[0][0]) == 0:
            passes.append(
                self._windows(image, min(c.near_side, side), c.near_pad, c.near_min_score)
            )
        windows = np.concatenate([p[0] for p in passes])  # (K, 4)
        scores = np.concatenate([p[1] for p in passes])  # (K,)
        if len(windows):
            # NMS over both passes (cv2 keeps scores > its threshold >= 0: shifted above 0).
            xywh = np.concatenate([windows[:, :2], windows[:, 2:] - windows[:, :2]], axis=1)
            keep = cv2.dnn.NMSBoxes(
                xywh.tolist(), (scores - scores.min() + 1.0).tolist(), 0.0, c.nms_iou
            )
            keep = np.asarray(keep, int).reshape(-1)
            windows, scores = windows[keep], scores[keep]
        return rank_people(windows, scores, faces, face_scores, c)
