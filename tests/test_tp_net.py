"""TP-Net: the forward pass against NumPy, config, training (windows: test_windows)."""

import logging

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d import temporal_config, temporal_train
from keras_pose3d.data import features
from keras_pose3d.models import sequence_predictions as predict_sequences
from keras_pose3d.models.tp_net import TPNet
from keras_pose3d.training import temporal


def test_tp_net_rejects_a_bad_window_or_mode():
    with pytest.raises(ValueError, match="window"):
        TPNet(window=0)
    with pytest.raises(ValueError, match="mode"):
        TPNet(window=4, mode="offline")


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
    args = {
        "window": 6,
        "mode": "semi_online",
        "num_joints": 5,
        "hidden": 7,
        "dropout": 0.25,
        "scale_mm": 500.0,
    }
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


def _write_predictions(path, seed, sequences=3, frames=150):
    """Smooth sinusoidal motion per sequence (gt) and a jittered copy (pred), shuffled rows.

    Sequence s moves the same way in every file (phases from a fixed seed, start times from
    `seed`); the jitter differs, so a held-out file tests denoising, not memorised noise.
    """
    rng = np.random.default_rng(seed)
    phases = np.random.default_rng(99).uniform(0, 2 * np.pi, (sequences, 1, 16, 3))
    pred, gt, seq, frame = [], [], [], []
    for s in range(sequences):
        t = np.arange(frames)[:, None, None] + rng.integers(0, 50)
        clean = 200.0 * np.sin(0.15 * t + phases[s])
        gt.append(clean)
        pred.append(clean + rng.normal(0, 40, clean.shape))
        seq.append(np.full(frames, s))
        frame.append(np.arange(frames) * 5)
    order = rng.permutation(sequences * frames)
    cat = lambda xs: np.concatenate(xs)[order]
    np.savez(
        path,
        pred=cat(pred).astype(np.float32),
        gt=cat(gt).astype(np.float32),
        sequence=cat(seq).astype(np.int32),
        frame=cat(frame).astype(np.int64),
        sequence_names=np.array([f"s{i}" for i in range(sequences)]),
    )


def test_sequence_windows_sort_rows_and_stay_inside_sequences(tmp_path):
    _write_predictions(tmp_path / "p.npz", seed=0, sequences=2, frames=5)
    data = temporal.load_predictions(tmp_path / "p.npz")
    x, y, seq = temporal.sequence_windows(data, 3, "online")
    order = np.lexsort((data["frame"], data["sequence"]))
    pred, gt = data["pred"][order], data["gt"][order]
    np.testing.assert_array_equal(y, gt)
    np.testing.assert_array_equal(seq, data["sequence"][order])
    np.testing.assert_array_equal(x[5], pred[[5, 5, 5]])  # first frame of sequence 1: padded
    np.testing.assert_array_equal(x[7], pred[[5, 6, 7]])


def test_temporal_train_denoises_and_saves(tmp_path):
    """Adam + L2 on jittered smooth motion: TP-Net beats the raw predictions on held-out data."""
    _write_predictions(tmp_path / "train.npz", seed=1)
    _write_predictions(tmp_path / "val.npz", seed=2, sequences=1)
    config = tmp_path / "temporal.yaml"
    config.write_text(
        f"data: {{train: {tmp_path / 'train.npz'}, val: {tmp_path / 'val.npz'}}}\n"
        "model: {window: 6, mode: semi_online, hidden: 64}\n"
        "train: {epochs: 100, batch_size: 64, learning_rate: 2.0e-3}\n"
        f"run_dir: {tmp_path / 'run'}\n"
    )
    result = temporal.train(temporal_config.load_config(config, ["train.epochs=30"]))
    assert result["val_mpjpe_tp_net"] < 0.8 * result["val_mpjpe_sap_net"], result
    model = keras.saving.load_model(tmp_path / "run" / "tp_net.keras")
    assert model.window == 6 and model.mode == "semi_online"
    resolved = temporal_config.load_config(tmp_path / "run" / "config.yaml")
    assert resolved.train.epochs == 30 and resolved.model.hidden == 64


def test_temporal_config_rejects_unknown_keys_and_bad_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {windw: 4}\n")
    with pytest.raises(ValueError, match="model.windw"):
        temporal_config.load_config(path)
    path.write_text("train: {epochs: many}\n")
    with pytest.raises(ValueError, match=r"train\.epochs.*expected an integer"):
        temporal_config.load_config(path)
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        temporal.load_predictions(tmp_path / "nothing.npz")


class _ConstantPose:
    """Stand-in SAP-Net: the same normalised pose for every image (decoding is then known)."""

    input_size = 16

    def __init__(self, pose_norm):
        self.pose_norm = np.asarray(pose_norm, np.float32)

    def __call__(self, images, training=False):
        pose = np.broadcast_to(self.pose_norm, (len(images), 16, 3))
        return {"pose_3d": pose, "pose_2d": pose[..., :2]}


def test_predict_sequences_groups_sorts_and_decodes(tmp_path, capsys):
    rng = np.random.default_rng(3)
    jpeg = cv2.imencode(".jpg", np.zeros((32, 32, 3), np.uint8))[1].tobytes()
    intr = np.array([60.0, 62.0, 15.5, 14.5])  # crop (32 px) intrinsics
    gts = {}

    def record(subject, frame, has_3d=True):
        j3d = rng.normal(0, 200, (16, 3)) + [0, 0, 4000.0]
        if has_3d:
            gts[(subject, frame)] = j3d
        return features.encode_example(
            {
                "image_jpeg": jpeg,
                "joints_2d": np.zeros((16, 2)),
                "visibility": np.ones(16),
                "joints_3d": j3d if has_3d else None,
                "has_3d": has_3d,
                "intrinsics": intr,
                "distortion": None,
                "box": np.array([0.0, 0, 32, 32]),
                "dataset": "h36m",
                "subject": subject,
                "sequence": "Walk 1",
                "action": "Walk",
                "camera": "c1",
                "frame": frame,
                "orig_size": np.array([100, 100]),
            }
        )

    with tf.io.TFRecordWriter(str(tmp_path / "a.tfrecord")) as w:
        for rec in (record("S9", 10), record("S1", 5), record("S1", 0, has_3d=False)):
            w.write(rec)
    with tf.io.TFRecordWriter(str(tmp_path / "b.tfrecord")) as w:
        for rec in (record("S1", 3), record("S9", 2)):
            w.write(rec)
    pose_norm = rng.uniform(-0.5, 0.5, (16, 3))
    out = predict_sequences.predict_records(
        str(tmp_path / "*.tfrecord"), _ConstantPose(pose_norm), batch_size=2
    )
    assert "skipped 1 2D-only records" in capsys.readouterr().err
    np.testing.assert_array_equal(
        out["sequence_names"], ["h36m/S1/Walk 1/Walk/c1", "h36m/S9/Walk 1/Walk/c1"]
    )
    np.testing.assert_array_equal(out["sequence"], [0, 0, 1, 1])
    np.testing.assert_array_equal(out["frame"], [3, 5, 2, 10])
    keys = [("S1", 3), ("S1", 5), ("S9", 2), ("S9", 10)]
    gt = np.stack([gts[k] for k in keys])
    np.testing.assert_allclose(out["gt"], gt - gt[:, 6:7], atol=1e-3)
    # Hand decode: crop 32 -> input 16 halves fx, fy; cx_S = (cx + 0.5) / 2 - 0.5.
    fx, fy, cx, cy = 52.5, 54.25, 7.5, 6.625
    for row, k in enumerate(keys):
        z_root = gts[k][6, 2]
        u = pose_norm[:, 0] * 8 + 8
        v = pose_norm[:, 1] * 8 + 8
        z = z_root + pose_norm[:, 2] * 8 * z_root / fx
        ref = np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], -1)
        np.testing.assert_allclose(out["pred"][row], ref - ref[6], rtol=1e-4, atol=1e-2)


def test_frame_step_gaps_are_warned_per_sequence(caplog):
    with caplog.at_level(logging.WARNING):
        assert predict_sequences.check_frame_steps("h36m/S1/x", [0, 5, 10, 15, 20]) == []
        assert not caplog.records
        gaps = predict_sequences.check_frame_steps("h36m/S9/y", [20, 0, 5, 10, 30, 35])
    assert gaps == [(10, 20), (20, 30)]
    assert len(caplog.records) == 1
    assert "h36m/S9/y" in caplog.text and "10->20, 20->30" in caplog.text


def test_temporal_train_missing_val_file_is_named(tmp_path, capsys):
    _write_predictions(tmp_path / "train.npz", seed=1, sequences=1, frames=5)
    config = tmp_path / "temporal.yaml"
    config.write_text(
        f"data: {{train: {tmp_path / 'train.npz'}, val: {tmp_path / 'val.npz'}}}\n"
        f"run_dir: {tmp_path / 'run'}\n"
    )
    assert temporal_train.main(["--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config key 'data.val'") and str(tmp_path / "val.npz") in err
    assert not (tmp_path / "run").exists()
