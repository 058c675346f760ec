"""Frames for `infer`: a video file or a folder of images, read one frame at a time.

Bad input gets a message, not a traceback: a video OpenCV cannot open or that yields no frame,
an image that does not decode (named), an empty folder. Images are read as 8-bit BGR whatever
they are on disk (grayscale, 16-bit, with alpha: `cv2.IMREAD_COLOR` converts them).

Timing: a video's frames carry their container timestamps (`CAP_PROP_POS_MSEC`), so a variable
frame rate is seen (a warning) and TP-Net resampling (`refine`) uses the true times; outputs
that need one frame time (BVH, render.mp4) use the median frame interval. Image folders are
frames at `fps`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import pathlib
from collections.abc import Iterator

import cv2
import numpy as np

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# Frame intervals further than this from the median make a video "variable frame rate".
VFR_TOLERANCE = 0.1


@dataclasses.dataclass(frozen=True)
class Frame:
    index: int
    name: str  # the frame index (video) or the file name (images): the key of boxes.json
    image: np.ndarray  # (H, W, 3) uint8 BGR
    time_s: float


class VideoSource:
    """Frames of a video file. Iterating twice decodes the file twice (nothing is kept)."""

    is_video = True

    def __init__(self, path: str | pathlib.Path, fallback_fps: float = 25.0):
        self.path = pathlib.Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video {self.path} not found")
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise ValueError(
                f"cannot open video {self.path}: not a video format OpenCV's "
                "FFmpeg backend reads (convert it, e.g. to H.264 MP4)"
            )
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.declared_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        ok, _ = capture.read()
        capture.release()
        if not ok:
            raise ValueError(f"video {self.path} has no readable frame (empty or corrupt)")
        if not (isinstance(fps, float) and math.isfinite(fps) and 0 < fps < 1000):
            logger.warning(
                "%s declares no frame rate (%r); using %.3g fps", self.path, fps, fallback_fps
            )
            fps = fallback_fps
        self.fps = float(fps)

    def __iter__(self) -> Iterator[Frame]:
        capture = cv2.VideoCapture(str(self.path))
        index, last_t = 0, -math.inf
        try:
            while True:
                ok, image = capture.read()
                if not ok:
                    break
                t = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                # Containers without timestamps report 0 or repeat them: use index / fps.
                if not math.isfinite(t) or (index > 0 and t <= last_t):
                    t = last_t + 1.0 / self.fps if index > 0 else 0.0
                last_t = t
                yield Frame(index, str(index), image, t)
                index += 1
        finally:
            capture.release()
        if self.declared_frames and index != self.declared_frames:
            logger.warning(
                "%s: read %d frames of the %d it declares (truncated or corrupt tail?)",
                self.path,
                index,
                self.declared_frames,
            )


class ImageSource:
    """The images of a folder in name order, as frames at `fps`."""

    is_video = False

    def __init__(self, folder: str | pathlib.Path, fps: float = 25.0):
        self.path = pathlib.Path(folder)
        if not self.path.is_dir():
            raise NotADirectoryError(f"image folder {self.path} not found")
        self.files = sorted(
            p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not self.files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {self.path}")
        if fps <= 0:
            raise ValueError(f"--fps must be > 0. Received: {fps}")
        self.fps = float(fps)

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.files):
            yield Frame(index, path.name, read_image(path), index / self.fps)


def read_image(path: pathlib.Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 BGR (grayscale, 16-bit and alpha converted).

    Raises:
        ValueError: the file cannot be read or does not decode.
    """
    # np.fromfile + imdecode: also reads paths cv2.imread cannot (non-ASCII names).
    try:
        data = np.fromfile(str(path), np.uint8)
    except OSError as e:  # unreadable (permissions, I/O): a message, not a traceback
        raise ValueError(f"cannot read image {path}: {e.strerror or e}") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None or image.size == 0:
        raise ValueError(
            f"cannot decode image {path} (corrupt, or not an image format OpenCV reads)"
        )
    return image


def frame_interval(times_s: np.ndarray, fps: float, source: str) -> float:
    """The median frame interval (s) of (T,) timestamps; warns on a variable frame rate."""
    times = np.asarray(times_s, np.float64)
    if len(times) < 2:
        return 1.0 / fps
    dt = np.diff(times)
    median = float(np.median(dt))
    if median <= 0:
        return 1.0 / fps
    if np.any(np.abs(dt - median) > VFR_TOLERANCE * median):
        logger.warning(
            "%s has a variable frame rate (intervals %.4g-%.4g s, median %.4g s): TP-Net sees "
            "the true frame times; motion.bvh and render.mp4 use the median interval",
            source,
            float(dt.min()),
            float(dt.max()),
            median,
        )
    return median
