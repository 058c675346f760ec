"""Readers of the raw MPI-INF-3DHP training and test sets (datasets.md 4).

Training set (`S{1..8}/Seq{1,2}/`): `annot.mat` (MATLAB v5, scipy) whose `annot2`, `annot3`,
`univ_annot3` are (14, 1) cells of (N, 56) / (N, 84) arrays for the 28 joints;
`camera.calibration` (parsed by `keras_pose3d.camera.load_3dhp_calibration`);
`imageSequence/video_<cam>.avi`.

Test set (`TS{1..6}/`): `annot_data.mat` (MATLAB v7.3, h5py; axes reversed so `annot3` is
(N, 1, 17, 3)), `imageSequence/img_000001.jpg ...` (1-based names), and the official `.calib`
files (`keras_pose3d.camera.load_3dhp_test_calib`).

Everything is returned in MPII-16 order through the 3DHP-17 "relevant" joints; MPII thorax and
upper neck are approximations (3DHP neck and head), see `keras_pose3d.skeleton`.
"""

from __future__ import annotations

import io
import os

import numpy as np

from keras_pose3d import skeleton


def _files():
    """The gfile helpers (`readers.files`), imported on first use: they pull in TensorFlow,
    while the tables below (TEST_ACTIVITIES, ...) are read by TF-free code such as
    `evaluation.mpi_inf_3dhp`."""
    from keras_pose3d.data.readers import files

    return files


TRAIN_SUBJECTS: tuple[str, ...] = tuple(f"S{i}" for i in range(1, 9))
TRAIN_SEQUENCES: tuple[str, ...] = ("Seq1", "Seq2")
TEST_SEQUENCES: tuple[str, ...] = tuple(f"TS{i}" for i in range(1, 7))
# The "vnect" training cameras used by HMR and mmpose.
DEFAULT_CAMERAS: tuple[int, ...] = (0, 1, 2, 4, 5, 6, 7, 8)
NUM_CAMERAS = 14

# Frames per training sequence (datasets.md 4.1): only the first F annotation rows are real
# (S3/Seq1 has one row more than frames).
TRAIN_FRAME_COUNTS: dict[tuple[str, str], int] = {
    ("S1", "Seq1"): 6416,
    ("S1", "Seq2"): 12430,
    ("S2", "Seq1"): 6502,
    ("S2", "Seq2"): 6081,
    ("S3", "Seq1"): 12488,
    ("S3", "Seq2"): 12283,
    ("S4", "Seq1"): 6171,
    ("S4", "Seq2"): 6675,
    ("S5", "Seq1"): 12820,
    ("S5", "Seq2"): 12312,
    ("S6", "Seq1"): 6188,
    ("S6", "Seq2"): 6145,
    ("S7", "Seq1"): 6239,
    ("S7", "Seq2"): 6320,
    ("S8", "Seq1"): 6468,
    ("S8", "Seq2"): 6054,
}
# S4/Seq2 has left and right swapped for frames [3759, 5853) (0-based, end exclusive).
LR_SWAPPED_FRAMES: dict[tuple[str, str], tuple[int, int]] = {("S4", "Seq2"): (3759, 5853)}

# Frames with valid_frame == 1 per test sequence (datasets.md 4.3; 2,929 in all).
TEST_VALID_FRAME_COUNTS: dict[str, int] = {
    "TS1": 603,
    "TS2": 540,
    "TS3": 505,
    "TS4": 553,
    "TS5": 276,
    "TS6": 452,
}
TEST_ACTIVITIES: dict[int, str] = {
    1: "Standing/Walking",
    2: "Exercising",
    3: "Sitting",
    4: "Reaching/Crouching",
    5: "On the floor",
    6: "Sports",
    7: "Miscellaneous",
}
TEST_CALIB_FILES: dict[str, str] = {
    "TS1": "ts1-4cameras.calib",
    "TS2": "ts1-4cameras.calib",
    "TS3": "ts1-4cameras.calib",
    "TS4": "ts1-4cameras.calib",
    "TS5": "ts5-6cameras.calib",
    "TS6": "ts5-6cameras.calib",
}

ANNOT_FILE = "annot.mat"
CALIBRATION_FILE = "camera.calibration"
TEST_ANNOT_FILE = "annot_data.mat"
IMAGE_DIR = "imageSequence"

# MPII-16 from the 28 training joints in one step.
MPII_FROM_28: tuple[int, ...] = tuple(
    skeleton.MPI3DHP17_FROM_28[k] for k in skeleton.MPII_FROM_MPI3DHP17
)


def video_path(root: str, subject: str, seq: str, camera: int) -> str:
    return _files().join(root, subject, seq, IMAGE_DIR, f"video_{camera}.avi")


def test_image_path(root: str, seq: str, frame: int) -> str:
    """Image of 0-based `frame`: the files are 1-based (`img_000001.jpg` is frame 0)."""
    return _files().join(root, seq, IMAGE_DIR, f"img_{frame + 1:06d}.jpg")


def frame_count(subject: str, seq: str, rows: int) -> int:
    """Usable annotation rows: the known frame count when it is smaller, else all rows."""
    known = TRAIN_FRAME_COUNTS.get((subject, seq))
    return rows if known is None else min(rows, known)


def fix_lr_swap(subject: str, seq: str, frames: np.ndarray, pose_mpii: np.ndarray) -> np.ndarray:
    """Undo the documented left/right swap (S4/Seq2) on MPII-16 poses.

    Args:
        frames: (N,) 0-based frame indices of the rows of `pose_mpii`.
        pose_mpii: (N, 16, D).

    Returns:
        (N, 16, D) with the flip pairs swapped back on the affected frames (a copy).
    """
    out = np.array(pose_mpii, copy=True)
    span = LR_SWAPPED_FRAMES.get((subject, seq))
    if span is None:
        return out
    rows = (np.asarray(frames) >= span[0]) & (np.asarray(frames) < span[1])
    out[rows] = skeleton.flip_joints(out[rows])
    return out


# ----------------------------------------------------------------------------------------------
# Training annotations.
# ----------------------------------------------------------------------------------------------
def _cell(mat: dict, key: str, camera: int, width: int, path: str) -> np.ndarray:
    if key not in mat:
        raise KeyError(
            f"{path}: missing key '{key}' (found {sorted(k for k in mat if k[0] != '_')})"
        )
    cells = np.asarray(mat[key])
    if cells.dtype != object or cells.size != NUM_CAMERAS:
        raise ValueError(
            f"{path}: '{key}' must be a ({NUM_CAMERAS}, 1) cell; received {cells.dtype} "
            f"{cells.shape}"
        )
    arr = np.asarray(cells.reshape(-1)[camera], dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != width:
        raise ValueError(f"{path}: '{key}'[{camera}] has shape {arr.shape}; expected (N, {width})")
    return arr


def read_train_annotations(path: str | os.PathLike, camera: int) -> dict[str, np.ndarray]:
    """One camera of a training `annot.mat`, in MPII-16 order.

    Args:
        path: S*/Seq*/annot.mat.
        camera: 0..13.

    Returns:
        dict with `joints_2d` (N, 16, 2) px, `joints_3d` (N, 16, 3) camera mm (annot3, which
        reprojects onto joints_2d), `joints_3d_univ` (N, 16, 3) mm (height-normalised), all
        float64 with N = annotation rows (not yet cut to the frame count).
    """
    import scipy.io

    path = os.fspath(path)
    if not 0 <= camera < NUM_CAMERAS:
        raise ValueError(f"camera must be in [0, {NUM_CAMERAS}). Received: {camera}")
    data = _files().read_bytes(path, "3DHP annotation file")
    try:
        mat = scipy.io.loadmat(io.BytesIO(data))
    except Exception as err:  # scipy raises several types for corrupt files
        raise ValueError(f"{path}: not a readable MATLAB v5 annot.mat ({err})") from err
    a2 = _cell(mat, "annot2", camera, 56, path).reshape(-1, 28, 2)
    a3 = _cell(mat, "annot3", camera, 84, path).reshape(-1, 28, 3)
    u3 = _cell(mat, "univ_annot3", camera, 84, path).reshape(-1, 28, 3)
    if not a2.shape[0] == a3.shape[0] == u3.shape[0]:
        raise ValueError(
            f"{path}: camera {camera}: annot2 ({a2.shape[0]}), annot3 ({a3.shape[0]}) and "
            f"univ_annot3 ({u3.shape[0]}) row counts differ"
        )
    return {
        "joints_2d": a2[:, MPII_FROM_28],
        "joints_3d": a3[:, MPII_FROM_28],
        "joints_3d_univ": u3[:, MPII_FROM_28],
    }


# ----------------------------------------------------------------------------------------------
# Test annotations (v7.3).
# ----------------------------------------------------------------------------------------------
def _h5_joints(f, key: str, dims: int, path: str) -> np.ndarray:
    if key not in f:
        raise KeyError(f"{path}: missing dataset '{key}' (found {sorted(f)})")
    arr = np.asarray(f[key], dtype=np.float64)
    # MATLAB dims x 17 x 1 x N are seen reversed by h5py: (N, 1, 17, dims).
    if arr.ndim == 4 and arr.shape[1:] == (1, 17, dims):
        return arr[:, 0]
    if arr.ndim == 3 and arr.shape[1:] == (17, dims):
        return arr
    raise ValueError(f"{path}: '{key}' has shape {arr.shape}; expected (N, 1, 17, {dims})")


def _h5_vector(f, key: str, n: int, path: str) -> np.ndarray:
    if key not in f:
        raise KeyError(f"{path}: missing dataset '{key}' (found {sorted(f)})")
    arr = np.asarray(f[key]).reshape(-1)
    if arr.size != n:
        raise ValueError(f"{path}: '{key}' has {arr.size} entries; expected {n} (one per frame)")
    return arr


def read_test_annotations(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A test-set `annot_data.mat` (v7.3) in MPII-16 order.

    Returns:
        dict with `joints_2d` (N, 16, 2) px, `joints_3d` (N, 16, 3) camera mm (annot3),
        `joints_3d_univ` (N, 16, 3) mm (univ_annot3: the evaluation ground truth), `valid`
        (N,) bool, `activity` (N,) int (1..7; 0 where unannotated).
    """
    import h5py

    path = os.fspath(path)
    data = _files().read_bytes(path, "3DHP test annotation file")
    try:
        f = h5py.File(io.BytesIO(data), "r")
    except OSError as err:
        raise ValueError(f"{path}: not an HDF5 (MATLAB v7.3) annot_data.mat ({err})") from err
    with f:
        a2 = _h5_joints(f, "annot2", 2, path)
        a3 = _h5_joints(f, "annot3", 3, path)
        u3 = _h5_joints(f, "univ_annot3", 3, path)
        n = a2.shape[0]
        if not a3.shape[0] == u3.shape[0] == n:
            raise ValueError(f"{path}: annot2/annot3/univ_annot3 frame counts differ")
        valid = _h5_vector(f, "valid_frame", n, path)
        activity = _h5_vector(f, "activity_annotation", n, path)
    to_mpii = skeleton.mpi3dhp17_to_mpii
    return {
        "joints_2d": to_mpii(a2),
        "joints_3d": to_mpii(a3),
        "joints_3d_univ": to_mpii(u3),
        "valid": valid.astype(np.float64) == 1.0,
        "activity": np.nan_to_num(activity.astype(np.float64)).astype(np.int64),
    }


def read_test_frame_validity(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """(0-based indices of the frames with `valid_frame` == 1, total frame count); reads only
    that dataset."""
    import h5py

    path = os.fspath(path)
    try:
        data = _files().read_bytes(path, "3DHP test annotation file")
        f = h5py.File(io.BytesIO(data), "r")
    except (OSError, FileNotFoundError) as err:
        raise ValueError(f"{path}: not an HDF5 (MATLAB v7.3) annot_data.mat ({err})") from err
    with f:
        if "valid_frame" not in f:
            raise KeyError(f"{path}: missing dataset 'valid_frame' (found {sorted(f)})")
        valid = np.asarray(f["valid_frame"]).reshape(-1)
    return np.flatnonzero(valid == 1), int(valid.size)
