"""Classical temporal filters that TP-Net is compared against: moving average, 1-Euro, S-G,
and `best_causal_filter`, the one a user would try first, tuned on validation sequences (the
main job's filter arm; the motion experiment, `experiments/temporal.py`).

All filters act on trajectories (T, ...) along axis 0 (T frames at a fixed rate) and treat every
trailing element (joint coordinate) as an independent scalar signal.

* `moving_average`: causal (online, uses frames t-w+1..t) or centred (semi-online).
* `one_euro`: Casiez, Roussel and Vogel, "1 Euro Filter: A Simple Speed-based Low-pass Filter
  for Noisy Input in Interactive Systems", CHI 2012. Online by construction.
* `savitzky_golay`: offline (uses future frames), through `scipy.signal.savgol_filter`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import savgol_filter


def moving_average(x: np.ndarray, window: int, causal: bool = True) -> np.ndarray:
    """Box filter over `window` frames.

    Args:
        x: (T, ...) trajectory.
        window: frames averaged (>= 1).
        causal: True averages frames t-window+1..t (online); False centres the window on t
            (needs an odd window; uses (window-1)/2 future frames).
    Returns:
        (T, ...) float64. Near the ends the window is truncated to the frames that exist (a
        shorter average, not zero padding), so a constant signal stays exact everywhere.
    """
    x = np.asarray(x, dtype=np.float64)
    if window < 1:
        raise ValueError(f"moving_average: window must be >= 1. Received: window={window}")
    if not causal and window % 2 == 0:
        raise ValueError(f"moving_average: a centred window must be odd. Received: {window}")
    t = x.shape[0]
    csum = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x, axis=0)], axis=0)
    idx = np.arange(t)
    if causal:
        lo, hi = np.maximum(idx - window + 1, 0), idx + 1
    else:
        half = window // 2
        lo, hi = np.maximum(idx - half, 0), np.minimum(idx + half + 1, t)
    count = (hi - lo).reshape((t,) + (1,) * (x.ndim - 1))
    return (csum[hi] - csum[lo]) / count


def _smoothing_factor(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    # Exponential smoothing factor of a first-order low-pass with cutoff `cutoff` Hz
    # (Casiez et al. eq. for alpha): alpha = 1 / (1 + tau / Te), tau = 1 / (2 pi fc).
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def one_euro(
    x: np.ndarray,
    rate: float,
    min_cutoff: float = 1.0,
    beta: float = 0.0,
    d_cutoff: float = 1.0,
) -> np.ndarray:
    """1-Euro filter (Casiez et al. 2012), online, independently per scalar signal.

    Per frame: the derivative dx = (x_t - x̂_{t-1}) * rate is low-passed with cutoff `d_cutoff`;
    the signal is low-passed with the adaptive cutoff `min_cutoff + beta * |dx̂|`, so slow
    motion is smoothed hard (less jitter) and fast motion lightly (less lag).

    Args:
        x: (T, ...) trajectory.
        rate: sampling rate in Hz (25 for the H36M motion).
        min_cutoff: Hz, the cutoff at zero speed.
        beta: speed coefficient (1 / units of x).
        d_cutoff: Hz, cutoff of the derivative filter.
    Returns:
        (T, ...) float64; frame 0 is passed through unchanged, as in the reference algorithm.
    """
    x = np.asarray(x, dtype=np.float64)
    if rate <= 0 or min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
        raise ValueError(
            "one_euro: need rate, min_cutoff, d_cutoff > 0 and beta >= 0. Received: "
            f"rate={rate}, min_cutoff={min_cutoff}, d_cutoff={d_cutoff}, beta={beta}"
        )
    dt = 1.0 / rate
    out = np.empty_like(x)
    if x.shape[0] == 0:
        return out
    out[0] = x[0]
    dx_hat = np.zeros(x.shape[1:])
    a_d = _smoothing_factor(d_cutoff, dt)
    for t in range(1, x.shape[0]):
        dx = (x[t] - out[t - 1]) * rate
        dx_hat = a_d * dx + (1.0 - a_d) * dx_hat
        a = _smoothing_factor(min_cutoff + beta * np.abs(dx_hat), dt)
        out[t] = a * x[t] + (1.0 - a) * out[t - 1]
    return out


def savitzky_golay(x: np.ndarray, window: int, polyorder: int) -> np.ndarray:
    """Savitzky-Golay smoothing (offline: uses (window-1)/2 future frames).

    Args:
        x: (T, ...) trajectory with T >= window.
        window: odd number of frames of the local polynomial fit.
        polyorder: polynomial degree (< window). Polynomials up to this degree pass unchanged.
    Returns:
        (T, ...) float64. Ends use scipy's `mode="interp"` (a polynomial fit to the end window).
    """
    x = np.asarray(x, dtype=np.float64)
    if window % 2 == 0 or polyorder >= window:
        raise ValueError(
            f"savitzky_golay: need an odd window > polyorder. Received: window={window}, "
            f"polyorder={polyorder}"
        )
    if x.shape[0] < window:
        raise ValueError(
            f"savitzky_golay: sequence of {x.shape[0]} frames is shorter than window={window}"
        )
    return savgol_filter(x, window, polyorder, axis=0, mode="interp")


# Causal filters (no future frame: TP-Net online's latency) tried by `best_causal_filter`.
CAUSAL_GRID: tuple[tuple[str, tuple[float, ...]], ...] = (
    *(("moving_average", (w,)) for w in (2, 3, 4, 5, 7, 9)),
    *(
        ("one_euro", (fc, beta))
        for fc in (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
        for beta in (0.0, 0.001, 0.01, 0.1)
    ),
)


def causal_filter(name: str, params: tuple[float, ...], rate: float):
    """The filter `name` of CAUSAL_GRID with `params` as a function (T, ...) -> (T, ...)."""
    if name == "moving_average":
        return lambda x: moving_average(x, int(params[0]), causal=True)
    if name == "one_euro":
        return lambda x: one_euro(x, rate, params[0], params[1])
    raise ValueError(f"unknown causal filter {name!r}; known: moving_average, one_euro")


def describe(name: str, params: tuple[float, ...]) -> str:
    """A label such as "1-Euro (fc 1 Hz, beta 0.01)"."""
    if name == "moving_average":
        return f"causal moving average ({int(params[0])} frames)"
    return f"1-Euro (fc {params[0]:g} Hz, beta {params[1]:g})"


def best_causal_filter(
    sequences: list[np.ndarray], targets: list[np.ndarray], rate: float, grid=CAUSAL_GRID
) -> tuple[str, tuple[float, ...], float]:
    """The causal filter of `grid` with the lowest mean per-joint error on `sequences`.

    Args:
        sequences: (T_i, J, 3) predicted trajectories, one per sequence, at `rate` fps.
        targets: (T_i, J, 3) their ground truth.
        rate: frames per second.
    Returns:
        (name, params, mean error) of the best; ties keep the first in `grid`.
    """
    if len(sequences) != len(targets) or not sequences:
        raise ValueError(
            f"best_causal_filter: need as many target as predicted sequences (>= 1), got "
            f"{len(sequences)} and {len(targets)}"
        )
    best = None
    for name, params in grid:
        f = causal_filter(name, params, rate)
        errors = [
            np.linalg.norm(f(x) - np.asarray(y, np.float64), axis=-1).ravel()
            for x, y in zip(sequences, targets)
        ]
        error = float(np.concatenate(errors).mean())
        if best is None or error < best[2]:
            best = (name, tuple(params), error)
    return best
