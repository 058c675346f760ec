"""TP-Net: window layout, padding, the forward pass against NumPy, config, training."""

import keras
import numpy as np
import pytest

from keras_pose3d.models import tp_net
from keras_pose3d.models.tp_net import TPNet


def test_window_offsets_online_and_semi_online():
    np.testing.assert_array_equal(tp_net.window_offsets(4, "online"), [-3, -2, -1, 0])
    np.testing.assert_array_equal(tp_net.window_offsets(4, "semi_online"), [-1, 0, 1, 2])
    assert tp_net.target_index(20, "online") == 19
    assert tp_net.target_index(20, "semi_online") == 9
    with pytest.raises(ValueError, match="even window"):
        tp_net.window_offsets(5, "semi_online")
    with pytest.raises(ValueError, match="mode"):
        tp_net.window_offsets(4, "offline")


def test_make_windows_pads_by_repeating_first_and_last_pose():
    seq = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 2, 3), np.float32)
    online = tp_net.make_windows(seq, 3, "online")[..., 0, 0]  # frame ids
    np.testing.assert_array_equal(online, [[0, 0, 0], [0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]])
    semi = tp_net.make_windows(seq, 4, "semi_online")[..., 0, 0]
    np.testing.assert_array_equal(semi[0], [0, 0, 1, 2])
    np.testing.assert_array_equal(semi[4], [3, 4, 4, 4])


def test_forward_matches_numpy_reference():
    model = TPNet(window=3, num_joints=4, hidden=8)
    x = np.random.default_rng(0).normal(0, 300, (2, 3, 4, 3)).astype(np.float32)
    out = keras.ops.convert_to_numpy(model(x))
    w1, b1 = model.fc1.get_weights()
    w2, b2 = model.fc2.get_weights()
    w3, b3 = model.head.get_weights()
    h = np.maximum(x.reshape(2, -1) / 1000.0 @ w1 + b1, 0)
    h = np.maximum(h @ w2 + b2, 0)
    ref = ((h @ w3 + b3) * 1000.0).reshape(2, 4, 3)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-3)


def test_get_config_returns_every_argument_and_reloads(tmp_path):
    args = dict(window=6, mode="semi_online", num_joints=5, hidden=7, dropout=0.25, scale_mm=500.0)
    model = TPNet(**args)
    config = model.get_config()
    for key, value in args.items():
        assert config[key] == value, key
    x = np.ones((1, 6, 5, 3), np.float32)
    before = keras.ops.convert_to_numpy(model(x))
    model.save(tmp_path / "tp.keras")
    again = keras.saving.load_model(tmp_path / "tp.keras")
    assert isinstance(again, TPNet) and again.mode == "semi_online"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(x)), before, atol=1e-5)


def test_wrong_window_length_names_poses_and_expected_n():
    model = TPNet(window=4, num_joints=16, hidden=8)
    with pytest.raises(ValueError, match=r"`poses`.*\(B, 4, 16, 3\).*N=4"):
        model(np.zeros((1, 5, 16, 3), np.float32))


def test_learns_to_denoise_a_smooth_motion():
    """Adam + L2 on a jittered sinusoid: the refined pose beats the noisy current frame."""
    rng = np.random.default_rng(1)
    t = np.arange(400)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, (1, 4, 3))
    clean = 200.0 * np.sin(0.15 * t + phase)  # (T, 4, 3) mm
    noisy = clean + rng.normal(0, 40, clean.shape)
    windows = tp_net.make_windows(noisy, 6, "semi_online").astype(np.float32)
    model = TPNet(window=6, mode="semi_online", num_joints=4, hidden=64)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.fit(windows[:300], clean[:300].astype(np.float32), epochs=60, batch_size=32, verbose=0)
    pred = keras.ops.convert_to_numpy(model(windows[300:]))
    err_refined = np.mean(np.linalg.norm(pred - clean[300:], axis=-1))
    err_noisy = np.mean(np.linalg.norm(noisy[300:] - clean[300:], axis=-1))
    assert err_refined < 0.8 * err_noisy, (err_refined, err_noisy)
