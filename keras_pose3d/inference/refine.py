"""TP-Net refinement of a pose sequence, at the frame rate TP-Net was trained at.

TP-Net maps a window of N poses *spaced one training frame apart* to one pose, so a video at
another rate must be resampled first (50 fps into a 25 fps TP-Net would feed it half-speed
motion). `resampled_windows` builds, for every video frame t_i, the online window of poses at
t_i - (N-1-n) / rate (n = 0..N-1) by linear interpolation between the frames around each time,
clamped to the first frame (the first pose repeated before the start, as `make_windows` pads).
Every sample time is <= t_i, so the refinement stays online; the output is one pose per video
frame, so no resampling back is needed; the true frame times also handle variable frame rates.
When the rates agree the windows are exactly `data.windows.make_windows`'s.

A TP-Net that records no frame rate (`TPNet.frame_rate` / SavedModel metadata `frame_rate`
missing or None: trained before it was recorded) is assumed to match the video, with a warning.
"""

from __future__ import annotations

import logging
import pathlib

import numpy as np
import tensorflow as tf

from keras_pose3d.data import frame_rates
from keras_pose3d.data.windows import make_windows, window_offsets

logger = logging.getLogger(__name__)


class Refiner:
    """A loaded TP-Net: `refiner(windows (B, N, J, 3)) -> (B, J, 3)` plus its metadata."""

    def __init__(self, fn, window: int, mode: str, frame_rate: float | None, keep=None):
        self.fn, self.window, self.mode, self.frame_rate = fn, int(window), mode, frame_rate
        self._keep = keep  # a SavedModel's variables live as long as its functions

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        return self.fn(windows)


def _rate(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) and value > 0 else None


def load_refiner(path: str | pathlib.Path) -> Refiner:
    """A TP-Net .keras file or tp_net SavedModel (a `refine` signature and the TP-Net
    metadata, `serving.signatures.read_metadata`: mode, window, frame rate when recorded).

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: no `refine` signature, no metadata, or a window that disagrees with it.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"TP-Net {path} not found (a .keras file or a tp_net SavedModel)")
    if path.suffix == ".keras":
        from keras_pose3d.models import loading

        model = loading.load_float32(path)
        return Refiner(
            lambda w: np.asarray(model(w)),
            model.window,
            model.mode,
            _rate(getattr(model, "frame_rate", None)),
            keep=model,
        )
    from keras_pose3d.serving import signatures

    loaded = tf.saved_model.load(str(path))
    if "refine" not in loaded.signatures:
        raise ValueError(
            f"{path} has no 'refine' signature; signatures: "
            f"{sorted(loaded.signatures)} (expected a tp_net export)"
        )
    fn = loaded.signatures["refine"]
    window = int(fn.structured_input_signature[1]["poses"].shape[1])
    meta = signatures.read_metadata(loaded, str(path))
    if meta["window"] != window:
        raise ValueError(
            f"{path}: tp_window {meta['window']} disagrees with the refine "
            f"signature's window {window}"
        )
    return Refiner(
        lambda w: fn(poses=tf.constant(w, tf.float32))["pose_3d_mm"].numpy(),
        window,
        meta["mode"],
        _rate(meta.get("frame_rate")),
        keep=loaded,
    )


def resampled_windows(
    poses: np.ndarray, times_s: np.ndarray, window: int, rate: float
) -> np.ndarray:
    """Online TP-Net windows at `rate` fps for every frame of a (T, J, 3) sequence.

    Args:
        poses: (T, J, 3) poses in time order.
        times_s: (T,) strictly increasing frame times in seconds.
        window: N.
        rate: TP-Net's frame rate (fps).

    Returns:
        (T, N, J, 3): windows[i, n] = the pose at time t_i - (N - 1 - n) / rate, linearly
        interpolated between the frames around it, clamped to the first frame.
    """
    poses = np.asarray(poses, np.float64)
    times = np.asarray(times_s, np.float64)
    if poses.ndim != 3 or len(times) != len(poses) or len(poses) == 0:
        raise ValueError(
            f"poses (T, J, 3) and times (T,) must agree. Received: {poses.shape}, {times.shape}"
        )
    if np.any(np.diff(times) <= 0):
        raise ValueError("frame times must increase strictly")
    offsets = window_offsets(window, "online") / float(rate)  # (N,) s, <= 0
    samples = np.maximum(times[:, None] + offsets[None, :], times[0])  # (T, N)
    # The interpolation the training predictions were resampled with (times as positions).
    flat = frame_rates.resample(times, poses, samples.reshape(-1))  # (T * N, J, 3)
    return flat.reshape(samples.shape + poses.shape[1:])


def refine_online(
    poses: np.ndarray,
    refiner,
    window: int,
    times_s: np.ndarray | None = None,
    video_fps: float | None = None,
    batch: int = 256,
) -> np.ndarray:
    """TP-Net over online windows of a (T, J, 3) sequence -> (T, J, 3).

    With `times_s` and a refiner that knows its frame rate, the windows are resampled to that
    rate (`resampled_windows`); otherwise consecutive frames form the windows.
    """
    rate = _rate(getattr(refiner, "frame_rate", None))
    if rate is None or times_s is None:
        if times_s is not None:
            logger.warning(
                "TP-Net records no training frame rate; assuming it matches the "
                "video's (%s fps). Re-train/re-export it to record one.",
                f"{video_fps:.3g}" if video_fps else "unknown",
            )
        windows = make_windows(poses, window, "online")
    else:
        if video_fps and abs(video_fps - rate) > 0.01 * rate:
            logger.warning(
                "video at %.3g fps, TP-Net trained at %.3g fps: resampling the "
                "poses to %.3g fps for TP-Net%s",
                video_fps,
                rate,
                rate,
                " (interpolated between frames: motion faster than the video's rate is not seen)"
                if video_fps < rate
                else "",
            )
        windows = resampled_windows(poses, times_s, window, rate)
    windows = windows.astype(np.float32)
    return np.concatenate([refiner(windows[i : i + batch]) for i in range(0, len(windows), batch)])
