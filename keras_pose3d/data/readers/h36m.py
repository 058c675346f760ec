"""Readers of the raw Human3.6M release: pose CDFs, videos, the sequence table (datasets.md 3).

Layout read (one subject):

    S1/MyPoseFeatures/D3_Positions_mono/<Seq>.<cam>.cdf   camera coords, mm, (1, N, 96)
    S1/MyPoseFeatures/D2_Positions/<Seq>.<cam>.cdf        pixels, (1, N, 64) (optional)
    S1/Videos/<Seq>.<cam>.mp4                             50 fps

`<Seq>` is the file prefix from metadata.xml `<mapping>` (irregular, with spaces: S1 `Eating 2`,
S5 `Photo`, ...), never derived from the action name. Metadata and cameras are parsed by
`keras_pose3d.camera.load_h36m_metadata`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

import numpy as np

from keras_pose3d import skeleton
from keras_pose3d.data.readers import files

# Protocol split of the paper (datasets.md 3.4); metadata.xml's own split is the server one.
TRAIN_SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS: tuple[str, ...] = ("S9", "S11")
DEFAULT_STRIDE = 5  # every 5th frame: 50 -> 10 fps, as the paper and Zhou et al.

POSE_DIR = "MyPoseFeatures"
D3_MONO_DIR = "D3_Positions_mono"
D2_DIR = "D2_Positions"
VIDEO_DIR = "Videos"

# Documented exclusions: (subject, file prefix, camera id or None for all cameras) -> reason.
# The S11 `Directions.54138969.mp4` video is corrupt (VideoPose3D drops it); S9 `SittingDown 1`,
# `Waiting 1` and `Greeting` have world coordinates shifted by ~200 mm in x (mmpose skips them).
KNOWN_DEFECTS: dict[tuple[str, str, str | None], str] = {
    ("S11", "Directions", "54138969"): "known defect: corrupt video (S11 Directions.54138969)",
    ("S9", "SittingDown 1", None): "known defect: 3D shifted ~200 mm in x (S9 SittingDown 1)",
    ("S9", "Waiting 1", None): "known defect: 3D shifted ~200 mm in x (S9 Waiting 1)",
    ("S9", "Greeting", None): "known defect: 3D shifted ~200 mm in x (S9 Greeting)",
}


@dataclasses.dataclass(frozen=True)
class SequenceItem:
    """One (subject, sequence, camera): the unit of work of the H36M job.

    Attributes:
        subject: "S1".
        action: canonical action name from <actionnames>, e.g. "TakingPhoto".
        prefix: file prefix from <mapping>, e.g. "Photo 1" (the `meta/sequence`).
        camera: camera id, e.g. "54138969".
        expected_frames: video frame count from <frames>, or -1 when unknown.
    """

    subject: str
    action: str
    prefix: str
    camera: str
    expected_frames: int = -1

    def d3_path(self, root: str) -> str:
        return files.join(
            root, self.subject, POSE_DIR, D3_MONO_DIR, f"{self.prefix}.{self.camera}.cdf"
        )

    def d2_path(self, root: str) -> str:
        return files.join(root, self.subject, POSE_DIR, D2_DIR, f"{self.prefix}.{self.camera}.cdf")

    def video_path(self, root: str) -> str:
        return files.join(root, self.subject, VIDEO_DIR, f"{self.prefix}.{self.camera}.mp4")

    @property
    def key(self) -> str:
        return f"{self.subject}/{self.prefix}.{self.camera}"


def known_defect(subject: str, prefix: str, camera: str) -> str | None:
    """The documented reason for skipping a sequence, or None when it is usable."""
    return KNOWN_DEFECTS.get((subject, prefix, camera)) or KNOWN_DEFECTS.get(
        (subject, prefix, None)
    )


def enumerate_sequences(
    metadata, subjects: tuple[str, ...] | list[str], cameras: tuple[str, ...] | None = None
) -> list[SequenceItem]:
    """Every (subject, sequence, camera) of the given subjects, from metadata.xml.

    Args:
        metadata: `keras_pose3d.camera.H36MMetadata`.
        subjects: e.g. ("S1", "S5").
        cameras: camera ids to keep; None keeps all four.

    Returns:
        SequenceItems in a deterministic order (subject, mapping order, sub-action, camera).
    """
    items = []
    for subject in subjects:
        for action, prefix in metadata.action_sequences(subject):
            counts = metadata.frames.get((subject, prefix))
            for c, cam in enumerate(metadata.camera_ids):
                if cameras is not None and cam not in cameras:
                    continue
                expected = int(counts[c]) if counts is not None else -1
                items.append(SequenceItem(subject, action, prefix, cam, expected))
    return items


# ----------------------------------------------------------------------------------------------
# CDF poses.
# ----------------------------------------------------------------------------------------------
def read_pose_cdf(path: str | os.PathLike, dims: int) -> np.ndarray:
    """The `Pose` variable of an H36M CDF as (N, 32, dims) float32.

    Args:
        path: a D3_* (dims=3) or D2_Positions (dims=2) .cdf file.
        dims: 3 or 2.

    Raises:
        FileNotFoundError, or ValueError naming the path when the file is not a readable CDF,
        has no `Pose` variable, or `Pose` is not (1, N, 32*dims) / (N, 32*dims).
    """
    import cdflib

    path = os.fspath(path)
    width = 32 * dims
    # cdflib opens local paths only: a remote file is read from a temporary local copy.
    with files.local_copy(path, "H36M pose file") as local:
        try:
            cdf = cdflib.CDF(local)
            variables = cdf.cdf_info().zVariables + cdf.cdf_info().rVariables
        except Exception as err:  # cdflib raises bare OSError / ValueError / struct.error
            raise ValueError(f"{path}: not a readable CDF file ({err})") from err
        if "Pose" not in variables:
            raise ValueError(f"{path}: no 'Pose' variable (found {variables})")
        pose = np.asarray(cdf.varget("Pose"))
    if pose.ndim == 3 and pose.shape[0] == 1 and pose.shape[2] == width:
        pose = pose[0]
    if pose.ndim != 2 or pose.shape[1] != width:
        raise ValueError(
            f"{path}: 'Pose' has shape {pose.shape}; expected (1, N, {width}) or (N, {width})"
        )
    return pose.reshape(pose.shape[0], 32, dims).astype(np.float32)


def to_mpii(pose32: np.ndarray) -> np.ndarray:
    """(..., 32, D) H36M-32 -> (..., 16, D) MPII-16 through the 17-joint subset."""
    pose17 = np.asarray(pose32)[..., skeleton.H36M17_FROM_H36M32, :]
    return skeleton.h36m17_to_mpii(pose17)


# ----------------------------------------------------------------------------------------------
# Videos.
# ----------------------------------------------------------------------------------------------
class VideoReader:
    """Sequential decode of a video with `cv2.VideoCapture` (seeking in H36M mp4s is unreliable).

    Frames that are not kept are only `grab`bed (not converted to BGR), so striding is cheaper
    than reading every frame. Iterating yields (frame index, (H, W, 3) uint8 BGR) for indices
    0, stride, 2*stride, ... below `limit`; the stream is then drained so that afterwards
    `frames_total` is the number of frames the video really holds (pose and video counts differ
    by a few frames; the caller counts the difference).

    Truncation: a cut file still opens, its header still announces every frame, and FFmpeg
    conceals the damaged last frame instead of failing. So when the stream ends before the
    count the container announces (`frames_announced`, when it states one), the video is
    truncated and iteration raises ValueError after the last frame, unless the stream delivered
    `expected_frames` (a count known from elsewhere, e.g. H36M metadata.xml), which settles it.
    Callers that must not write frames of a truncated video hold them until iteration ends.

    The path may be any `tf.io.gfile` path: OpenCV opens local files only, so a remote video is
    copied to a temporary local file for the duration of the iteration.

    Args:
        path: the video file.
        stride: keep every stride-th frame.
        limit: yield no frame at or after this index (e.g. the pose count); None: no limit.
        expected_frames: frames the complete video holds, when known (<= 0: unknown).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        stride: int = 1,
        limit: int | None = None,
        expected_frames: int | None = None,
    ):
        if stride < 1:
            raise ValueError(f"stride must be >= 1. Received: {stride}")
        self.path = os.fspath(path)
        self.stride = stride
        self.limit = limit
        self.expected_frames = expected_frames if expected_frames and expected_frames > 0 else None
        self.frames_total = 0
        self.frames_announced = 0

    def _open(self, local: str):
        import cv2

        cap = cv2.VideoCapture(local)
        if not cap.isOpened():
            cap.release()
            raise ValueError(f"{self.path}: cannot open video (corrupt or unsupported codec)")
        self.frames_announced = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        return cap

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        with files.local_copy(self.path, "video") as local:
            cap = self._open(local)
            try:
                index = 0
                while cap.grab():
                    self.frames_total = index + 1
                    if (self.limit is None or index < self.limit) and index % self.stride == 0:
                        ok, frame = cap.retrieve()
                        if not ok or frame is None:
                            raise ValueError(f"{self.path}: frame {index} cannot be decoded")
                        yield index, frame
                    index += 1
            finally:
                cap.release()
        if self.frames_total == 0:
            raise ValueError(f"{self.path}: video holds no decodable frame")
        if self.truncated:
            raise ValueError(
                f"{self.path}: truncated video: the stream ends after {self.frames_total} "
                f"frames but the file announces {self.frames_announced}"
            )

    @property
    def truncated(self) -> bool:
        """True once iterated when the stream delivered fewer frames than announced (and not
        the `expected_frames`)."""
        if self.expected_frames is not None and self.frames_total >= self.expected_frames:
            return False
        return 0 < self.frames_total < self.frames_announced
