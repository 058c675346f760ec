"""Frame rates of the source sequences, and resampling recorded frames to a target rate.

Records carry `meta/frame`, the frame index in the original sequence, not a time: the time of a
frame is frame / (the sequence's native rate). TP-Net needs poses at the rate it was trained at
(a window of N poses spans N / rate seconds), so its training predictions are resampled here.

Native rates (`source_frame_rate`; per dataset in `docs/datasets.md`):

* h36m: 50 fps (the videos; the converter keeps every `--stride`-th frame, 5: 10 fps).
* mpi_inf_3dhp training sequences: 50 fps for S1/Seq2 and both sequences of S3 and S5, 25 fps
  otherwise. The test sequences TS1..TS6: no rate is documented with the release, so unknown
  (an error naming the sequence) rather than guessed.
* synthetic: `data.synthetic.FPS` (25), every frame recorded.

Resampling (`resample_positions`, `resample`): output samples are taken every
native / target source frames from the first recorded frame of a run of frames. A sample that
falls on a recorded frame takes it as it is (subsampling: H36M every 5th frame -> 10 fps is exact);
one that falls between two recorded frames is the linear interpolation of the two (3DHP 25 fps ->
10 fps: every 2.5 frames). Recorded frames cannot give a higher rate than their own: when the
usual step between recorded frames is longer than the output period, `resample_positions`
refuses (upsampling would invent motion). A gap longer than the period (frames missing in the
records) ends a run; the next run starts at the frame after the gap, so no output sample is
interpolated between records more than one output period apart. A shorter gap is bridged: a
sample inside it is interpolated between the records on either side (3DHP at 25 fps -> 10 fps
with one frame missing: between records 2 frames, 80 ms, apart).
"""

from __future__ import annotations

import collections
import math

import numpy as np

from keras_pose3d.data import synthetic

H36M_FPS = 50.0
MPI_INF_3DHP_50_FPS = {
    ("S1", "Seq2"),
    ("S3", "Seq1"),
    ("S3", "Seq2"),
    ("S5", "Seq1"),
    ("S5", "Seq2"),
}
_TOLERANCE = 1e-6  # in source frames: positions this close to a recorded frame take it


def source_frame_rate(dataset: str, subject: str, sequence: str) -> float:
    """Native frames per second of a recorded sequence (module docstring).

    Raises:
        ValueError: the rate is not known, naming dataset/subject/sequence.
    """
    if dataset == "h36m":
        return H36M_FPS
    if dataset == synthetic.DATASET_NAME:
        return float(synthetic.FPS)
    if dataset == "mpi_inf_3dhp" and subject.startswith("S") and subject[1:].isdigit():
        return 50.0 if (subject, sequence) in MPI_INF_3DHP_50_FPS else 25.0
    raise ValueError(
        f"the native frame rate of {dataset}/{subject}/{sequence} is not known "
        "(known: h36m, synthetic, mpi_inf_3dhp training sequences S1..S8); it is "
        "needed to resample its frames to a frame rate"
    )


def usual_step(frames: np.ndarray) -> int | None:
    """The most common difference between consecutive sorted frames (None for < 2 frames)."""
    frames = np.sort(np.asarray(frames, np.int64))
    if len(frames) < 2:
        return None
    return int(collections.Counter(np.diff(frames).tolist()).most_common(1)[0][0])


def recorded_rate(frames: np.ndarray, source_rate: float) -> float | None:
    """Frames per second of the records: source rate / usual step (None for < 2 frames)."""
    step = usual_step(frames)
    return None if step is None else source_rate / step


def resample_positions(
    frames: np.ndarray, source_rate: float, target_rate: float, name: str = "sequence"
) -> list[np.ndarray]:
    """Source-frame positions of the output samples, one array per run of frames.

    Args:
        frames: (T,) recorded frame indices of one sequence (any order, no duplicates).
        source_rate: the sequence's native frames per second.
        target_rate: the wanted frames per second.
        name: for the error message.

    Returns:
        float64 arrays of positions, in time order; a new array starts after each gap longer
        than one output period (module docstring).

    Raises:
        ValueError: the records' usual step is longer than one output period.
    """
    if not (math.isfinite(target_rate) and target_rate > 0):
        raise ValueError(f"frame_rate must be frames per second > 0. Received: {target_rate}")
    frames = np.sort(np.asarray(frames, np.int64))
    period = source_rate / target_rate  # source frames per output frame
    step = usual_step(frames)
    if step is not None and step > period + _TOLERANCE:
        raise ValueError(
            f"{name}: its records are every {step}th frame of {source_rate:g} fps, i.e. "
            f"{source_rate / step:g} fps; they cannot give {target_rate:g} fps (that needs a "
            f"record at least every {period:g} frames: convert with a smaller --stride, or "
            f"choose a frame rate <= {source_rate / step:g})"
        )
    breaks = np.flatnonzero(np.diff(frames) > period + _TOLERANCE) + 1
    runs = np.split(frames, breaks)
    out = []
    for run in runs:
        count = math.floor((run[-1] - run[0]) / period + _TOLERANCE) + 1
        out.append(run[0] + np.arange(count) * period)
    return out


def resample(frames: np.ndarray, values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """`values` recorded at `frames`, linearly interpolated at `positions` (source frames).

    Args:
        frames: (T,) recorded frames, strictly increasing.
        values: (T, ...) one value per recorded frame.
        positions: (K,) positions inside [frames[0], frames[-1]].

    Returns:
        (K, ...) float64: the recorded value where a position is (within 1e-6) a recorded
        frame, else the linear interpolation of the recorded frames before and after it.
    """
    frames = np.asarray(frames, np.float64)
    values = np.asarray(values, np.float64)
    positions = np.asarray(positions, np.float64)
    if np.any(np.diff(frames) <= 0):
        raise ValueError("frames must be strictly increasing")
    if len(positions) and (
        positions[0] < frames[0] - _TOLERANCE or positions[-1] > frames[-1] + _TOLERANCE
    ):
        raise ValueError(
            f"positions {positions[0]}..{positions[-1]} leave the recorded frames "
            f"{frames[0]:g}..{frames[-1]:g}"
        )
    hi = np.clip(np.searchsorted(frames, positions - _TOLERANCE), 0, len(frames) - 1)  # (K,)
    lo = np.maximum(hi - 1, 0)
    exact = np.abs(frames[hi] - positions) <= _TOLERANCE
    span = np.where(hi > lo, frames[hi] - frames[lo], 1.0)
    w = np.where(exact, 1.0, np.clip((positions - frames[lo]) / span, 0.0, 1.0))  # weight of hi
    w = w.reshape((-1,) + (1,) * (values.ndim - 1))
    return (1.0 - w) * values[lo] + w * values[hi]
