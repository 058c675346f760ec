"""dataset: half/half batches, targets against NumPy, validation order, replicas."""

import logging

import cv2
import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d import skeleton
from keras_pose3d.config import DataConfig
from keras_pose3d.data import dataset, features, pose_codec

STORED, S, H = 56, 32, 8  # stored crop 56 px -> person region 32 px -> input 32 px (s = 1)
INTR = np.array([60.0, 60.0, 27.5, 27.5], np.float32)  # stored-crop intrinsics (fx = fy)


def _record(frame, has_3d, rng, sequence="seq"):
    j2d = rng.uniform(20.0, 35.0, size=(16, 2)).astype(np.float32)
    image = np.full((STORED, STORED, 3), 40, np.uint8)
    for x, y in j2d:
        cv2.circle(image, (round(x), round(y)), 1, (250, 200, 30), -1)
    vis = np.ones(16, np.float32)
    vis[rng.integers(0, 16)] = 0.0
    rec = {
        "image_jpeg": cv2.imencode(".jpg", image)[1].tobytes(),
        "joints_2d": j2d,
        "visibility": vis,
        "has_3d": has_3d,
        "box": [0, 0, 10, 10],
        "frame": frame,
        "orig_size": [100, 100],
        "dataset": "h36m" if has_3d else "mpii",
        "subject": "S1",
        "sequence": sequence,
        "camera": "c0",
    }
    if has_3d:
        z = rng.uniform(2800.0, 3200.0, size=16)
        rec["joints_3d"] = np.stack(
            [(j2d[:, 0] - INTR[2]) * z / INTR[0], (j2d[:, 1] - INTR[3]) * z / INTR[1], z], -1
        )
        rec["intrinsics"] = INTR
    return rec


def _write(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for rec in records:
            writer.write(features.encode_example(rec))
    return str(path)


@pytest.fixture(scope="module")
def mixed_files(tmp_path_factory):
    """Two shards: 6 2D-only and 4 3D records, interleaved unevenly."""
    tmp = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(0)
    recs = [_record(i, i % 3 == 0 or i == 7, rng) for i in range(10)]
    return [_write(tmp / "a.tfrecord", recs[:5]), _write(tmp / "b.tfrecord", recs[5:])], recs


def _data(files):
    """A DataConfig reading `files` for both splits at the test's sizes."""
    files = (files,) if isinstance(files, str) else tuple(files)
    return DataConfig(
        train_files=files, val_files=files, input_size=S, heatmap_size=H, shuffle_buffer=8
    )


def _train(files, **kw):
    args = {"split": "train", "batch_size": 4, "seed": 1, "deterministic": True}
    args.update(kw)
    return dataset.make_dataset(_data(files), **args)


@pytest.fixture(scope="module")
def train_batches(mixed_files):
    files, _ = mixed_files
    return [
        ({k: v.numpy() for k, v in i.items()}, {k: v.numpy() for k, v in t.items()})
        for i, t in _train(files, batch_size=6).take(4)
    ]


def test_every_batch_is_half_2d_half_3d(train_batches):
    for inputs, targets in train_batches:
        np.testing.assert_array_equal(targets["has_3d"], [0, 0, 0, 1, 1, 1])
        # 2D-only rows carry no 3D anything.
        for key in ("depth", "joints_3d", "intrinsics", "root_depth"):
            assert np.all(targets[key][:3] == 0), key
        assert np.all(targets["root_depth"][3:] > 2000)
        image = inputs["image"]
        assert image.shape == (6, S, S, 3) and 0 <= image.min() and image.max() <= 1


def test_augmented_targets_are_mutually_consistent(train_batches):
    scaled = 0
    yy, xx = np.mgrid[0:H, 0:H]
    for _, t in train_batches:
        px = pose_codec.denormalise_2d(t["pose_2d"], S)
        # NumPy heatmaps of the augmented 2D targets: Gaussians at (px + 0.5) * H / S - 0.5,
        # zero for invisible joints and joints off the grid.
        q = (px + 0.5) * H / S - 0.5  # (B, J, 2)
        on = np.all((q >= -0.5) & (q <= H - 0.5), axis=-1) & (t["visibility"] > 0)  # (B, J)
        dx2 = (xx[None, :, :, None] - q[:, None, None, :, 0]) ** 2  # (B, H, H, J)
        dy2 = (yy[None, :, :, None] - q[:, None, None, :, 1]) ** 2
        ref = np.exp(-(dx2 + dy2) / 2.0) * on[:, None, None, :]
        np.testing.assert_allclose(t["heatmaps"], ref, atol=1e-4)
        assert on.sum() > 0.5 * on.size  # most joints are on the grid (the test is not empty)
        np.testing.assert_allclose(
            t["depth"], pose_codec.depth_target(t["joints_3d"], t["intrinsics"], S), atol=1e-5
        )
        proj = pose_codec.project_pinhole(t["joints_3d"][3:], t["intrinsics"][3:])
        np.testing.assert_allclose(proj, px[3:], atol=1e-2)  # 3D and 2D augmented together
        # Unaugmented, fx would stay 60 (s = 1); the scale augmentation changes it.
        scaled += int(np.sum(np.abs(t["intrinsics"][3:, 0] - 60.0) > 1e-3))
    assert scaled > 0  # the augmentation really ran


def test_validation_targets_equal_numpy(mixed_files):
    files, recs = mixed_files
    ds = dataset.make_dataset(_data(files), split="validation", batch_size=4)
    batches = list(ds)
    assert [len(b[1]["has_3d"]) for b in batches] == [4, 4, 2]  # drop_remainder=False
    inputs = np.concatenate([b[0]["image"].numpy() for b in batches])
    t = {k: np.concatenate([b[1][k].numpy() for b in batches]) for k in batches[0][1]}
    offset = (STORED - 1) / 2 - (S - 1) / 2  # s = 1: a pure shift by 12 px
    for i, rec in enumerate(recs):  # file order, record order
        jpeg = tf.io.decode_jpeg(rec["image_jpeg"]).numpy()
        np.testing.assert_allclose(inputs[i], jpeg[12:44, 12:44] / 255.0, atol=1e-6)
        q = rec["joints_2d"] - offset
        np.testing.assert_allclose(t["pose_2d"][i], (q - S / 2) / (S / 2), atol=1e-6)
        np.testing.assert_array_equal(t["visibility"][i], rec["visibility"])
        qh = (q + 0.5) * H / S - 0.5
        yy, xx = np.mgrid[0:H, 0:H]
        for j in range(16):
            ref = np.exp(-((xx - qh[j, 0]) ** 2 + (yy - qh[j, 1]) ** 2) / 2.0)
            np.testing.assert_allclose(
                t["heatmaps"][i, ..., j], ref * rec["visibility"][j], atol=1e-6
            )
        if rec["has_3d"]:
            j3d = rec["joints_3d"]
            intr = np.array([INTR[0], INTR[1], INTR[2] - offset, INTR[3] - offset])
            np.testing.assert_allclose(t["intrinsics"][i], intr, atol=1e-4)
            zr = j3d[skeleton.ROOT, 2]
            np.testing.assert_allclose(
                t["depth"][i], (j3d[:, 2] - zr) * 60.0 / zr / (S / 2), rtol=1e-5, atol=1e-6
            )
            np.testing.assert_allclose(t["joints_3d"][i], j3d, rtol=1e-6)
            assert t["root_depth"][i] == pytest.approx(zr, rel=1e-6)
            assert t["has_3d"][i] == 1
        else:
            assert t["has_3d"][i] == 0 and np.all(t["depth"][i] == 0)


def test_deterministic_with_a_seed(mixed_files, train_batches):
    files, _ = mixed_files
    inputs, targets = next(iter(_train(files, batch_size=6)))
    np.testing.assert_array_equal(inputs["image"].numpy(), train_batches[0][0]["image"])
    np.testing.assert_array_equal(targets["pose_2d"].numpy(), train_batches[0][1]["pose_2d"])


def test_mixed_batches_repeat_over_many_epochs(mixed_files):
    """Three pipelines with one seed give the same 60 batches: 30 epochs of the 2D-only
    stream, 15 of the 3D one, each epoch with a new file order drawn from the one
    file-shuffling dataset both kind streams repeat (two shards)."""
    files, _ = mixed_files

    def batches():
        return [
            np.concatenate([i["image"].numpy().ravel(), t["pose_2d"].numpy().ravel()])
            for i, t in _train(files, batch_size=4).take(60)
        ]

    first = batches()
    for _ in range(2):
        again = batches()
        assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


def test_missing_kind_falls_back_or_raises(tmp_path, caplog):
    rng = np.random.default_rng(1)
    only_3d = _write(tmp_path / "3d.tfrecord", [_record(i, True, rng) for i in range(3)])
    with caplog.at_level(logging.WARNING, logger="keras_pose3d.data.dataset"):
        ds = _train(only_3d)
    assert "only 3D samples" in caplog.text
    _, t = next(iter(ds))
    np.testing.assert_array_equal(t["has_3d"].numpy(), [1, 1, 1, 1])
    with pytest.raises(ValueError, match="only 3D"):
        _train(only_3d, on_missing_kind="error")
    with pytest.raises(ValueError, match="even per-replica batch"):
        _train(only_3d, batch_size=3)
    with pytest.raises(ValueError, match="no TFRecord files match"):
        _train(str(tmp_path / "nothing-*.tfrecord"))


def test_single_kind_stages_read_only_that_kind(mixed_files, tmp_path):
    files, _ = mixed_files
    for samples, kind in (("3d_only", 1), ("2d_only", 0)):
        for _, t in _train(files, batch_size=4, samples=samples).take(3):
            np.testing.assert_array_equal(t["has_3d"].numpy(), [kind] * 4)
    rng = np.random.default_rng(2)
    only_2d = _write(tmp_path / "2d.tfrecord", [_record(i, False, rng) for i in range(3)])
    with pytest.raises(ValueError, match="no 3D samples"):
        _train(only_2d, samples="3d_only")
    with pytest.raises(ValueError, match="samples must be"):
        _train(files, samples="3d")
    with pytest.raises(ValueError, match="split must be"):
        _train(files, split="test")


def test_each_replica_batch_is_half_and_half(mixed_files, mirrored_strategy):
    files, _ = mixed_files
    strategy = mirrored_strategy
    dist = strategy.distribute_datasets_from_function(
        lambda ctx: _train(files, batch_size=4, input_context=ctx)
    )
    _, targets = next(iter(dist))
    per_replica = strategy.experimental_local_results(targets["has_3d"])
    assert len(per_replica) == 2
    for has_3d in per_replica:
        np.testing.assert_array_equal(has_3d.numpy(), [0, 1])


def test_kind_probe_reads_on_past_a_sorted_prefix(tmp_path):
    """Shards sorted by subject put every 2D-only record first; a 3-record probe must still find
    the 3D records behind them (counts from reading on), and mixing must then use both kinds."""
    rng = np.random.default_rng(3)
    files = [
        _write(
            tmp_path / f"s{i}.tfrecord",
            [_record(k, False, rng) for k in range(4)] + [_record(9, True, rng)],
        )
        for i in range(2)
    ]
    # Interleaved one record per file: 8 2D-only, then the two 3D records.
    assert dataset.count_kinds(files, probe_records=3) == (8, 1)
    assert dataset.count_kinds(files, probe_records=100) == (8, 2)
    only_2d = [_write(tmp_path / "2d.tfrecord", [_record(k, False, rng) for k in range(3)])]
    assert dataset.count_kinds(only_2d, probe_records=1) == (3, 0)
    _, t = next(iter(_train(files, probe_records=3)))
    np.testing.assert_array_equal(t["has_3d"].numpy(), [0, 0, 1, 1])


def test_records_of_kind_keeps_each_kind_in_order(tmp_path):
    """records_of_kind (64-record vectorised parses, a pass-through filter) keeps exactly the
    records a per-record has_3d filter keeps, in their order, across parse batches and a partial
    last one (150 records)."""
    rng = np.random.default_rng(2)
    flags = rng.random(150) < 0.4
    path = _write(tmp_path / "k.tfrecord", [_record(i, bool(f), rng) for i, f in enumerate(flags)])
    serialized = [s.numpy() for s in tf.data.TFRecordDataset(path)]
    for kind in (0, 1):
        records = tf.data.TFRecordDataset(path)
        got = [s.numpy() for s in dataset.records_of_kind(records, kind)]
        want = [s for s, flag in zip(serialized, flags) if int(flag) == kind]
        assert len(want) > 40 and got == want
    with pytest.raises(ValueError, match=r"kind must be 0 \(2D-only\) or 1 \(3D\), got 2"):
        dataset.records_of_kind(tf.data.TFRecordDataset(path), 2)
