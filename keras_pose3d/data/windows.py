"""Temporal windows of poses for TP-Net (NumPy only, no TensorFlow).

For frame t of a sequence of T poses the window is N poses at frames t + offsets:

* ``online``: offsets -N+1 .. 0, the current frame and the N-1 before it (the paper's Fig. 5
  runs over t = 0 .. -19, so the target frame is part of the window and the output has no lag);
* ``semi_online`` (Bi-TP-Net): offsets -N//2 .. N-N//2-1, the N//2 frames before, the current
  frame and the rest after (10 / 1 / 9 for N = 20); the output lags N-N//2-1 frames.

At the ends of a sequence an offset before the first frame repeats the first pose and one past
the last frame repeats the last pose, so every frame gets a window (`window_indices`).

Every window built in the project (TP-Net training and inference, refinement, the sensitivity
analysis, experiments/temporal.py) comes from here, so they all agree.
"""

from __future__ import annotations

import numpy as np

MODES = ("online", "semi_online")


def window_offsets(window: int, mode: str) -> np.ndarray:
    """Frame offsets of a window relative to its target frame t.

    Args:
        window: N, the number of poses in a window (>= 1).
        mode: "online" or "semi_online".

    Returns:
        (N,) int offsets in time order: online -N+1..0, semi-online -N//2..N-N//2-1.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}. Received: mode={mode!r}")
    if isinstance(window, bool) or int(window) != window or window < 1:
        raise ValueError(f"window must be a whole number >= 1. Received: window={window!r}")
    window = int(window)
    if mode == "online":
        return np.arange(-window + 1, 1)
    return np.arange(-(window // 2), window - window // 2)


def target_index(window: int, mode: str) -> int:
    """Position of the target frame t inside a window (N-1 online, N//2 semi-online)."""
    return int(np.flatnonzero(window_offsets(window, mode) == 0)[0])


def window_indices(length: int, window: int, mode: str) -> np.ndarray:
    """(T, N) frame indices of the windows of a sequence of T = `length` frames.

    Row t holds frames t + window_offsets(N, mode), clamped to 0 .. T-1 (the first or last pose
    repeated at the ends).
    """
    if int(length) < 1:
        raise ValueError(f"length must be >= 1. Received: length={length}")
    idx = np.arange(length)[:, None] + window_offsets(window, mode)[None, :]  # (T, N)
    return np.clip(idx, 0, length - 1)


def make_windows(sequence: np.ndarray, window: int, mode: str) -> np.ndarray:
    """All windows of a sequence, one per frame, padded at the ends by repetition.

    Args:
        sequence: (T, J, 3) poses of one sequence in time order.
        window: N.
        mode: "online" or "semi_online".

    Returns:
        (T, N, J, 3): windows[t] = sequence[window_indices(T, N, mode)[t]].
    """
    sequence = np.asarray(sequence)
    if sequence.ndim != 3 or sequence.shape[0] == 0:
        raise ValueError(
            f"sequence must be (T, J, 3) with T >= 1. Received: shape={sequence.shape}"
        )
    return sequence[window_indices(sequence.shape[0], window, mode)]
