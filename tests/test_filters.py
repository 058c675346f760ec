"""Classical filters of keras_pose3d/evaluation/filters.py against hand-computed cases."""

import math

import numpy as np
import pytest

from keras_pose3d.evaluation.filters import moving_average, one_euro, savitzky_golay


def test_moving_average_causal_ramp():
    ramp = np.arange(6.0)
    # window 3: truncated means at the start, then t - 1 (the mean of t-2, t-1, t).
    np.testing.assert_allclose(moving_average(ramp, 3), [0.0, 0.5, 1.0, 2.0, 3.0, 4.0])


def test_moving_average_centred_ramp_and_shapes():
    ramp = np.arange(6.0)
    np.testing.assert_allclose(
        moving_average(ramp, 3, causal=False), [0.5, 1.0, 2.0, 3.0, 4.0, 4.5]
    )
    # Trailing axes are independent signals: a (T, J, 3) input equals per-column filtering.
    x = np.random.default_rng(0).normal(size=(20, 4, 3))
    got = moving_average(x, 5)
    np.testing.assert_allclose(got[:, 2, 1], moving_average(x[:, 2, 1], 5))
    np.testing.assert_allclose(got[10], x[6:11].mean(axis=0))


def test_moving_average_rejects_bad_window():
    with pytest.raises(ValueError, match="window"):
        moving_average(np.zeros(4), 0)
    with pytest.raises(ValueError, match="odd"):
        moving_average(np.zeros(4), 4, causal=False)


def test_one_euro_constant_signal_is_exact():
    x = np.full((50, 16, 3), 123.25)
    np.testing.assert_array_equal(one_euro(x, rate=25.0, min_cutoff=0.5, beta=0.01), x)


def test_one_euro_hand_computed_step():
    # rate = 2 pi Hz and cutoff 1 Hz give tau = dt, hence alpha = 1/2 (beta = 0).
    rate = 2.0 * math.pi
    got = one_euro(np.array([0.0, 1.0, 1.0, 1.0]), rate=rate, min_cutoff=1.0, beta=0.0)
    np.testing.assert_allclose(got, [0.0, 0.5, 0.75, 0.875])


def test_one_euro_speed_raises_cutoff():
    # dx = 2 pi, derivative alpha 1/2 -> dx_hat = pi; beta = 1/pi -> cutoff 2 Hz ->
    # tau = 1/(4 pi), alpha = 1 / (1 + tau * rate) = 2/3.
    rate = 2.0 * math.pi
    got = one_euro(np.array([0.0, 1.0]), rate=rate, min_cutoff=1.0, beta=1.0 / math.pi)
    np.testing.assert_allclose(got, [0.0, 2.0 / 3.0])


def test_savitzky_golay_preserves_quadratic_and_matches_local_fit():
    t = np.arange(30.0)
    quad = 0.5 * t**2 - 3.0 * t + 7.0
    np.testing.assert_allclose(savitzky_golay(quad, 7, 2), quad, atol=1e-8)
    # Interior sample = least-squares quadratic through its 5-frame window, evaluated at 0.
    x = np.random.default_rng(1).normal(size=30)
    got = savitzky_golay(x, 5, 2)
    coef = np.polyfit(np.arange(-2, 3), x[10:15], 2)
    assert got[12] == pytest.approx(np.polyval(coef, 0.0), abs=1e-10)


def test_savitzky_golay_rejects_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        savitzky_golay(np.zeros(10), 4, 2)
    with pytest.raises(ValueError, match="shorter"):
        savitzky_golay(np.zeros(3), 5, 2)
