"""TP-Net at its training frame rate: window resampling by values, metadata read with defaults."""

import logging

import numpy as np
import pytest

from keras_pose3d.data.windows import make_windows
from keras_pose3d.inference import refine
from keras_pose3d.models.tp_net import TPNet


def _poses(t=12, j=16, seed=0):
    return np.random.default_rng(seed).normal(0, 100, (t, j, 3))


def test_same_rate_windows_are_make_windows():
    poses = _poses()
    times = np.arange(12) / 25.0
    np.testing.assert_allclose(
        refine.resampled_windows(poses, times, 4, 25.0),
        make_windows(poses, 4, "online"),
        atol=1e-9,
    )


def test_double_rate_video_takes_every_other_frame():
    """50 fps video into a 25 fps TP-Net: window of frame i = frames i-6, i-4, i-2, i."""
    poses = _poses()
    got = refine.resampled_windows(poses, np.arange(12) / 50.0, 4, 25.0)
    idx = np.clip(np.arange(12)[:, None] + np.array([-6, -4, -2, 0])[None], 0, 11)
    np.testing.assert_allclose(got, poses[idx], atol=1e-9)


def test_half_rate_and_variable_rate_interpolate():
    """12.5 fps into 25 fps: the in-between samples are the midpoints; uneven times too."""
    poses = _poses(4)
    got = refine.resampled_windows(poses, np.arange(4) / 12.5, 3, 25.0)
    # Frame 3 (t = 0.24): samples at 0.16 (frame 2), 0.20 (mid 2-3), 0.24 (frame 3).
    np.testing.assert_allclose(got[3], [poses[2], 0.5 * (poses[2] + poses[3]), poses[3]])
    times = np.array([0.0, 0.1, 0.13, 0.3])
    got = refine.resampled_windows(poses, times, 2, 10.0)
    # Frame 3: sample 0.2 lies between 0.13 (frame 2) and 0.3 (frame 3), weight 7/17.
    w = 0.07 / 0.17
    np.testing.assert_allclose(got[3, 0], (1 - w) * poses[2] + w * poses[3], atol=1e-9)
    np.testing.assert_allclose(got[0], [poses[0], poses[0]])  # clamped before the start
    with pytest.raises(ValueError, match="increase strictly"):
        refine.resampled_windows(poses, np.array([0.0, 0.1, 0.1, 0.2]), 2, 10.0)


class _Mean:
    """A refiner that averages its window (so what it was fed shows in the output)."""

    window, mode = 3, "online"

    def __init__(self, frame_rate):
        self.frame_rate = frame_rate

    def __call__(self, windows):
        return windows.mean(axis=1)


def test_refine_online_resamples_with_a_frame_rate_and_warns_without(caplog):
    poses = _poses(8)
    times = np.arange(8) / 50.0
    caplog.set_level(logging.WARNING)
    out = refine.refine_online(poses, _Mean(25.0), 3, times_s=times, video_fps=50.0)
    idx = np.clip(np.arange(8)[:, None] + np.array([-4, -2, 0])[None], 0, 7)
    np.testing.assert_allclose(out, poses[idx].mean(axis=1), rtol=1e-5, atol=1e-3)
    assert "resampling the poses to 25 fps" in caplog.text
    caplog.clear()
    out = refine.refine_online(poses, _Mean(None), 3, times_s=times, video_fps=50.0)
    np.testing.assert_allclose(
        out, make_windows(poses, 3, "online").mean(axis=1), rtol=1e-5, atol=1e-3
    )
    assert "records no training frame rate" in caplog.text


def test_load_refiner_reads_frame_rate_when_present(tmp_path):
    """A model that carries a frame rate passes it on (.keras and SavedModel); old models have
    none (None)."""
    from keras_pose3d.serving import export

    tp = TPNet(window=2, hidden=8, frame_rate=12.5)
    tp(np.zeros((1, 2, 16, 3), np.float32))
    tp.save(tmp_path / "tp.keras")
    loaded = refine.load_refiner(tmp_path / "tp.keras")
    assert (loaded.window, loaded.mode, loaded.frame_rate) == (2, "online", 12.5)
    served = refine.load_refiner(export.export_tp_net(tp, tmp_path / "sm"))
    assert (served.window, served.mode, served.frame_rate) == (2, "online", 12.5)
    old = TPNet(window=2, hidden=8)
    old(np.zeros((1, 2, 16, 3), np.float32))
    old.save(tmp_path / "old.keras")
    assert refine.load_refiner(tmp_path / "old.keras").frame_rate is None
    assert refine._rate(None) is None and refine._rate(0) is None and refine._rate("50") == 50.0
