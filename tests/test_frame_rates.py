"""Frame rates: native rates, resampling records to TP-Net's rate, predict_sequences at a rate."""

import math

import cv2
import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d import predict_sequences as predict_cli
from keras_pose3d import temporal_config
from keras_pose3d.data import features, frame_rates
from keras_pose3d.models import sequence_predictions as predict_sequences
from keras_pose3d.training import temporal
from tests.test_tp_net import _ConstantPose


def test_native_rates_from_the_dataset_notes():
    assert frame_rates.source_frame_rate("h36m", "S9", "Walking 1") == 50.0
    assert frame_rates.source_frame_rate("synthetic", "S1", "seq0") == 25.0
    # 3DHP: 50 fps for S1/Seq2, S3 and S5; 25 fps otherwise.
    rates = {
        (s, q): frame_rates.source_frame_rate("mpi_inf_3dhp", s, q)
        for s in ("S1", "S2", "S3", "S5", "S8")
        for q in ("Seq1", "Seq2")
    }
    assert [k for k, v in rates.items() if v == 50.0] == [
        ("S1", "Seq2"),
        ("S3", "Seq1"),
        ("S3", "Seq2"),
        ("S5", "Seq1"),
        ("S5", "Seq2"),
    ]
    assert all(v == 25.0 for k, v in rates.items() if k[0] in ("S2", "S8") or k == ("S1", "Seq1"))
    with pytest.raises(ValueError, match="mpi_inf_3dhp/TS1/TS1"):
        frame_rates.source_frame_rate("mpi_inf_3dhp", "TS1", "TS1")


def test_resample_positions_subsample_interpolate_split_and_refuse():
    # H36M 50 fps, every frame recorded -> 10 fps: every 5th frame.
    (pos,) = frame_rates.resample_positions(np.arange(23), 50.0, 10.0)
    np.testing.assert_array_equal(pos, [0, 5, 10, 15, 20])
    # 3DHP 25 fps -> 10 fps: every 2.5 frames, starting at the first record.
    (pos,) = frame_rates.resample_positions(np.arange(3, 14), 25.0, 10.0)
    np.testing.assert_array_equal(pos, [3, 5.5, 8, 10.5, 13])
    # Stride-5 records at 10 fps give 10 fps exactly; a missing record splits the sequence.
    runs = frame_rates.resample_positions([0, 5, 10, 20, 25, 30], 50.0, 10.0)
    assert [r.tolist() for r in runs] == [[0, 5, 10], [20, 25, 30]]
    # ... and cannot give 25 fps.
    with pytest.raises(
        ValueError,
        match=r"h36m/S1/x: .*every 5th frame of 50 fps.*10 fps.*"
        r"cannot give 25 fps",
    ):
        frame_rates.resample_positions(np.arange(0, 50, 5), 50.0, 25.0, "h36m/S1/x")


def test_resample_takes_records_and_interpolates_between_them():
    frames = np.array([0, 1, 2, 4])
    values = np.array([[0.0, 1.0], [10.0, 3.0], [20.0, 7.0], [60.0, -1.0]])
    got = frame_rates.resample(frames, values, np.array([0, 1.5, 2, 2.5, 4]))
    ref = [
        values[0],
        (values[1] + values[2]) / 2,
        values[2],
        0.75 * values[2] + 0.25 * values[3],
        values[3],
    ]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got[[0, 2, 4]], values[[0, 2, 3]])  # exact at records
    with pytest.raises(ValueError, match="leave the recorded frames"):
        frame_rates.resample(frames, values, np.array([4.5]))


def _records(path, sequences):
    """TFRecords of (dataset, subject, sequence, frames); gt moves linearly with the frame."""
    jpeg = cv2.imencode(".jpg", np.zeros((32, 32, 3), np.uint8))[1].tobytes()
    base = np.random.default_rng(0).normal(0, 200, (16, 3))
    velocity = np.random.default_rng(1).normal(0, 5, (16, 3))
    with tf.io.TFRecordWriter(str(path)) as w:
        for dataset, subject, sequence, frames in sequences:
            for f in frames:
                j3d = base + f * velocity + [0, 0, 4000.0 + 3.0 * f]
                w.write(
                    features.encode_example(
                        {
                            "image_jpeg": jpeg,
                            "joints_2d": np.zeros((16, 2)),
                            "visibility": np.ones(16),
                            "joints_3d": j3d,
                            "has_3d": True,
                            "intrinsics": np.array([60.0, 62.0, 15.5, 14.5]),
                            "distortion": None,
                            "box": np.array([0.0, 0, 32, 32]),
                            "dataset": dataset,
                            "subject": subject,
                            "sequence": sequence,
                            "action": "",
                            "camera": "0",
                            "frame": int(f),
                            "orig_size": np.array([100, 100]),
                        }
                    )
                )


def test_run_predictions_writes_rows_at_the_frame_rate(tmp_path):
    """3DHP S1/Seq1 (25 fps, every frame) and H36M (50 fps, every 5th) -> 10 fps."""
    _records(
        tmp_path / "r.tfrecord",
        [("mpi_inf_3dhp", "S1", "Seq1", range(11)), ("h36m", "S9", "Walk", range(0, 30, 5))],
    )
    model = _ConstantPose(np.random.default_rng(2).uniform(-0.5, 0.5, (16, 3)))
    raw = predict_sequences.predict_records(str(tmp_path / "*.tfrecord"), model)
    summary = predict_sequences.run_predictions(
        model, str(tmp_path / "*.tfrecord"), tmp_path / "p" / "val.npz", frame_rate=10.0
    )
    assert summary == {
        "out": str(tmp_path / "p" / "val.npz"),
        "frames": 5 + 6,
        "sequences": 2,
        "records_2d_skipped": 0,
        "frame_rate": 10.0,
    }
    data = temporal.load_predictions(tmp_path / "p" / "val.npz")
    assert float(data["frame_rate"]) == 10.0
    np.testing.assert_array_equal(
        data["sequence_names"], ["h36m/S9/Walk//0", "mpi_inf_3dhp/S1/Seq1//0"]
    )
    h36m, mpi = data["sequence"] == 0, data["sequence"] == 1
    np.testing.assert_array_equal(data["frame"][h36m], [0, 5, 10, 15, 20, 25])
    np.testing.assert_array_equal(data["frame"][mpi], [0, 2.5, 5, 7.5, 10])
    # H36M: every record taken as it is.
    raw_h36m = raw["sequence"] == 0
    np.testing.assert_array_equal(data["pred"][h36m], raw["pred"][raw_h36m])
    np.testing.assert_array_equal(data["gt"][h36m], raw["gt"][raw_h36m])
    # 3DHP: records at integer positions, the mean of the two neighbours at x.5.
    raw_pred = raw["pred"][raw["sequence"] == 1].astype(np.float64)  # frames 0..10
    raw_gt = raw["gt"][raw["sequence"] == 1].astype(np.float64)
    for row, position in zip(np.flatnonzero(mpi), data["frame"][mpi]):
        lo, hi = math.floor(position), math.ceil(position)
        np.testing.assert_allclose(data["pred"][row], (raw_pred[lo] + raw_pred[hi]) / 2, atol=1e-3)
        np.testing.assert_allclose(data["gt"][row], (raw_gt[lo] + raw_gt[hi]) / 2, atol=1e-3)
    # The gt moves linearly, so the interpolated gt is the gt at the fractional frame.
    np.testing.assert_allclose(data["gt"][mpi][1], (raw_gt[2] + raw_gt[3]) / 2, atol=1e-3)


def test_run_predictions_refuses_a_rate_the_records_cannot_give(tmp_path):
    _records(
        tmp_path / "r.tfrecord",
        [("h36m", "S9", "Walk", range(0, 30, 5)), ("synthetic", "S1", "seq0", range(6))],
    )
    model = _ConstantPose(np.zeros((16, 3)))
    with pytest.raises(
        ValueError,
        match=r"50 fps: h36m/S9/Walk//0: .*every 5th frame.*10 fps"
        r".*synthetic/S1/seq0//0: .*25 fps",
    ):
        predict_sequences.run_predictions(
            model, str(tmp_path / "*.tfrecord"), tmp_path / "p.npz", frame_rate=50.0
        )
    assert not (tmp_path / "p.npz").exists() and not list(tmp_path.glob(".tmp-*"))
    # As recorded: 10 and 25 fps, no one rate, so the file says unknown (NaN).
    summary = predict_sequences.run_predictions(
        model, [str(tmp_path / "*.tfrecord")], tmp_path / "p.npz"
    )
    assert summary["frame_rate"] is None and summary["frames"] == 12


def test_temporal_train_refuses_predictions_at_another_rate(tmp_path, caplog):
    pred = np.zeros((4, 16, 3), np.float32)
    arrays = {
        "pred": pred,
        "gt": pred,
        "sequence": np.zeros(4, np.int32),
        "frame": np.arange(4.0),
        "sequence_names": np.array(["s"]),
    }
    np.savez(tmp_path / "p25.npz", **arrays, frame_rate=np.float64(25.0))
    config = tmp_path / "t.yaml"
    config.write_text(
        f"data: {{train: {tmp_path / 'p25.npz'}, val: ''}}\n"
        "model: {window: 2, hidden: 4, frame_rate: 10}\n"
        f"train: {{epochs: 1}}\nrun_dir: {tmp_path / 'run'}\n"
    )
    with pytest.raises(
        ValueError,
        match=r"'data.train': .*p25.npz holds predictions at 25 fps "
        r"but model.frame_rate is 10 fps",
    ):
        temporal.train(temporal_config.load_config(config))
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match=r"model.frame_rate.*must be positive, got 0"):
        temporal_config.load_config(config, ["model.frame_rate=0"])
    with pytest.raises(ValueError, match=r"model.frame_rate.*expected a finite number, got inf"):
        temporal_config.load_config(config, ["model.frame_rate=.inf"])
    # Every other bad value names its dotted key and where it came from (the --set).
    for override, key in (
        ("model.mode=offline", "model.mode"),
        ("model.window=0", "model.window"),
        ("model.hidden=-1", "model.hidden"),
        ("model.dropout=1.5", "model.dropout"),
        ("train.epochs=0", "train.epochs"),
        ("train.learning_rate=0", "train.learning_rate"),
    ):
        with pytest.raises(ValueError, match=rf"'{key}' \(from --set {override}\)"):
            temporal_config.load_config(config, [override])


def test_tp_net_keeps_its_frame_rate_in_the_keras_file(tmp_path):
    import keras

    from keras_pose3d.models.tp_net import TPNet

    model = TPNet(window=3, hidden=4, frame_rate=25.0)
    model(np.zeros((1, 3, 16, 3), np.float32))
    assert model.get_config()["frame_rate"] == 25.0
    model.save(tmp_path / "tp.keras")
    assert keras.saving.load_model(tmp_path / "tp.keras").frame_rate == 25.0
    # A config saved before frame_rate existed: unknown, not a guessed default.
    old = {k: v for k, v in model.get_config().items() if k != "frame_rate"}
    assert TPNet.from_config(old).frame_rate is None
    for bad in (0.0, -10.0, float("nan")):
        with pytest.raises(ValueError, match="frame_rate"):
            TPNet(window=3, frame_rate=bad)


def test_cli_frame_rate_argument():
    import argparse

    assert predict_cli._frame_rate_arg("native") is None
    assert predict_cli._frame_rate_arg("12.5") == 12.5
    for bad in ("0", "-3", "fast", "nan"):
        with pytest.raises(argparse.ArgumentTypeError, match="frames per second"):
            predict_cli._frame_rate_arg(bad)


def test_run_predictions_splits_a_sequence_at_a_gap_named_by_its_first_frame(tmp_path):
    """H36M every 5th frame with one record missing -> two parts, each at 10 fps; frame numbers
    past 10^6 keep their digits (no '1e+06' names that two parts could share)."""
    start = 1_000_000
    frames = [start + f for f in (0, 5, 10, 20, 25)]  # start + 15 missing
    _records(tmp_path / "r.tfrecord", [("h36m", "S9", "Walk", frames)])
    model = _ConstantPose(np.random.default_rng(3).uniform(-0.5, 0.5, (16, 3)))
    raw = predict_sequences.predict_records(str(tmp_path / "*.tfrecord"), model, frame_rate=None)
    data = predict_sequences.predict_records(str(tmp_path / "*.tfrecord"), model, frame_rate=10.0)
    np.testing.assert_array_equal(
        data["sequence_names"], [f"h36m/S9/Walk//0@{start}", f"h36m/S9/Walk//0@{start + 20}"]
    )
    np.testing.assert_array_equal(data["sequence"], [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(data["frame"], frames)
    # Every sample is a record, taken as it is (no interpolation across the gap).
    np.testing.assert_array_equal(data["gt"], raw["gt"])
    np.testing.assert_array_equal(data["pred"], raw["pred"])


def test_temporal_train_warns_on_an_unknown_rate_naming_why(tmp_path, caplog):
    data = {"pred": np.zeros((2, 16, 3))}
    with caplog.at_level("WARNING", logger=temporal.__name__):
        temporal.check_frame_rate(data, "old.npz", "data.train", 10.0)
        temporal.check_frame_rate(
            {**data, "frame_rate": np.float64(np.nan)}, "mixed.npz", "data.val", 10.0
        )
        temporal.check_frame_rate(
            {**data, "frame_rate": np.float64(10.0)}, "ok.npz", "data.train", 10.0
        )
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "'data.train': old.npz does not record its frame rate" in messages[0]
    assert "'data.val': mixed.npz holds sequences at no single known frame rate" in messages[1]
    assert "--frame-rate 10" in messages[1]
