"""batch_augment: the batched training pipeline yields the per-example pipeline's batches bit
for bit (mixed kinds, one kind, stored crops of different sizes, every colour jitter), and its
random draws follow the configured ranges."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d.config import AugmentConfig, DataConfig
from keras_pose3d.data import augment, batch_augment
from keras_pose3d.data import dataset as kp_dataset
from tests.test_dataset import _record, _write

S, H = 32, 8
DEFAULT = AugmentConfig()


def _data(files, augment_cfg=DEFAULT, mix_2d_3d=True):
    return DataConfig(
        train_files=tuple(files),
        input_size=S,
        heatmap_size=H,
        shuffle_buffer=8,
        augment=augment_cfg,
        mix_2d_3d=mix_2d_3d,
    )


def _batches(files, batched, augment_cfg=DEFAULT, **kw):
    data = _data(files, augment_cfg, kw.pop("mix_2d_3d", True))
    args = {"split": "train", "batch_size": 6, "seed": 3, "deterministic": True}
    args.update(kw)
    ds = kp_dataset.make_dataset(data, batched=batched, **args)
    return [
        ({k: v.numpy() for k, v in i.items()}, {k: v.numpy() for k, v in t.items()})
        for i, t in ds.take(5)
    ]


def _assert_bitwise_equal(got, want):
    assert len(got) == len(want)
    for (gi, gt), (wi, wt) in zip(got, want):
        assert gi.keys() == wi.keys() and gt.keys() == wt.keys()
        for key in gi:
            assert gi[key].dtype == wi[key].dtype and gi[key].shape == wi[key].shape, key
            np.testing.assert_array_equal(gi[key], wi[key], err_msg=key, strict=True)
        for key in gt:
            assert gt[key].dtype == wt[key].dtype, key
            np.testing.assert_array_equal(gt[key], wt[key], err_msg=key, strict=True)


def _shards(tmp, stored_sizes=(56,)):
    """One shard of 2D-only and 3D records; stored crops cycle through `stored_sizes`.

    One shard is enough here: the comparison is between two pipelines built alike.
    """
    rng = np.random.default_rng(1)
    recs = []
    for i in range(12):
        rec = _record(i, i % 3 == 0 or i == 7, rng)
        side = stored_sizes[i % len(stored_sizes)]
        if side != 56:  # the fixture draws 56 px crops; cut the others from them
            jpeg = tf.io.decode_jpeg(rec["image_jpeg"]).numpy()[:side, : side + 4]
            rec["image_jpeg"] = tf.io.encode_jpeg(jpeg).numpy()
        recs.append(rec)
    return [_write(tmp / "a.tfrecord", recs)]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return _shards(tmp_path_factory.mktemp("batched"))


# Rotation and flip on often, so that 5 batches of 6 see every branch.
STRONG = AugmentConfig(scale=0.3, rotation_deg=40.0, rotation_prob=0.7, flip_prob=0.5)


@pytest.mark.parametrize("warp", ["opencv", "tensorflow"])
def test_mixed_batches_equal_the_per_example_pipeline(shards, warp):
    strong = dataclasses.replace(STRONG, warp=warp)
    got = _batches(shards, batched=True, augment_cfg=strong)
    _assert_bitwise_equal(got, _batches(shards, batched=False, augment_cfg=strong))
    # Not vacuous: the batches are augmented and differ from one another.
    assert len({b[0]["image"].tobytes() for b in got}) == len(got)
    assert any(np.any(t["intrinsics"][3:, 0] != 60.0) for _, t in got)


def test_default_config_and_one_kind_equal_the_per_example_pipeline(shards):
    _assert_bitwise_equal(_batches(shards, batched=True), _batches(shards, batched=False))
    one = {"samples": "3d_only", "batch_size": 4}
    _assert_bitwise_equal(
        _batches(shards, batched=True, **one), _batches(shards, batched=False, **one)
    )
    no_mix = {"mix_2d_3d": False, "batch_size": 5, "seed": 11}
    _assert_bitwise_equal(
        _batches(shards, batched=True, **no_mix), _batches(shards, batched=False, **no_mix)
    )


def test_mixed_stored_sizes_and_full_colour_jitter_equal(tmp_path):
    files = _shards(tmp_path, stored_sizes=(56, 48, 40))
    colour = dataclasses.replace(STRONG, brightness=0.1, contrast=0.2, saturation=0.2)
    _assert_bitwise_equal(
        _batches(files, batched=True, augment_cfg=colour),
        _batches(files, batched=False, augment_cfg=colour),
    )
    plain = dataclasses.replace(STRONG, color=False)
    _assert_bitwise_equal(
        _batches(files, batched=True, augment_cfg=plain),
        _batches(files, batched=False, augment_cfg=plain),
    )


def test_warp_images_equals_warp_image_at_paper_size():
    # Real sizes (448 px stored crops -> 256 px input), where the warp runs in parallel chunks.
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(3, 448, 448, 3)).astype(np.uint8)
    matrices = [
        augment.crop_affine([448, 448], 256, scale, rot, flip)
        for scale, rot, flip in ((0.8, 0.0, False), (1.2, 23.5, True), (1.0, -29.0, False))
    ]
    transforms = tf.stack([augment.warp_transform(m) for m in matrices])
    sizes = tf.constant([[448, 448]] * 3)
    batched = tf.data.Dataset.from_tensors((images, sizes, transforms)).map(
        lambda i, s, t: augment.warp_images(i, s, t, 256)
    )
    got = next(iter(batched)).numpy()
    for b in range(3):
        want = augment.warp_image(images[b], matrices[b], 256).numpy()
        np.testing.assert_array_equal(got[b], want, strict=True)


def _smooth_image(height, width):
    # Smooth, so that where OpenCV's sampling points (rounded to 1/32 px) differ from the
    # TensorFlow op's the values differ by far less than the uint8 rounding.
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [np.sin(x / 17.0), np.cos(y / 23.0), np.sin((x + y) / 31.0)]
    return np.stack([127.0 + 120.0 * c for c in channels], axis=-1).round().astype(np.uint8)


def test_opencv_warp_is_the_tensorflow_warp_rounded_to_uint8():
    # Padded batch of two stored sizes: each image must be warped on its own extent.
    images = np.zeros((3, 448, 448, 3), np.uint8)
    sizes = [(448, 448), (400, 360), (448, 448)]
    for b, (height, width) in enumerate(sizes):
        images[b, :height, :width] = _smooth_image(height, width)
    params = ((1.0, 0.0, False), (1.2, 23.5, True), (0.8, -29.0, False))
    matrices = [augment.crop_affine(size, 256, *p) for size, p in zip(sizes, params)]
    transforms = tf.stack([augment.warp_transform(m) for m in matrices])
    got = augment.warp_images_opencv(images, tf.constant(sizes), transforms, 256).numpy()
    assert got.dtype == np.uint8
    for b, (height, width) in enumerate(sizes):
        want = augment.warp_image(images[b, :height, :width], matrices[b], 256).numpy() * 255.0
        diff = np.abs(got[b] - want)
        assert diff.max() <= 0.5 + 1e-3, (b, diff.max())  # rounding to uint8, nothing else
        # zeros outside the source in the same places (the rotated crops reach past it)
        np.testing.assert_array_equal(got[b] == 0, want < 0.5)
        if b == 0:  # scale 1, no rotation: whole-pixel shifts, the same values exactly
            np.testing.assert_array_equal(got[b], np.round(want))
    # float32 images stay float32 (and in [0, 1]).
    as_float = augment.warp_images_opencv(images / np.float32(255), sizes, transforms, 256)
    assert as_float.dtype == tf.float32
    np.testing.assert_allclose(as_float.numpy()[0], got[0] / 255.0, atol=1e-6)


def test_to_unit_applies_the_channel_factors_and_clips():
    images = np.array([[[[0, 128, 255]]], [[[255, 255, 10]]]], np.uint8)  # (2, 1, 1, 3)
    np.testing.assert_allclose(augment.to_unit(images).numpy(), images / 255.0, rtol=1e-6)
    factors = np.array([[1.4, 0.6, 1.0], [0.5, 1.3, 0.0]], np.float32)
    want = np.minimum(images / 255.0 * factors[:, None, None, :], 1.0)
    np.testing.assert_allclose(augment.to_unit(images, factors).numpy(), want, rtol=1e-6)
    assert augment.to_unit(images, factors).numpy()[0, 0, 0, 2] == 1.0  # 255 * 1.0, clipped
    # Batches of other sizes go through the same tiling (rows of W x C values).
    wide = np.arange(2 * 2 * 5 * 3, dtype=np.uint8).reshape(2, 2, 5, 3) * 4
    want = np.minimum(wide / 255.0 * factors[:, None, None, :], 1.0)
    np.testing.assert_allclose(augment.to_unit(wide, factors).numpy(), want, rtol=1e-6)


def test_draws_follow_the_configured_ranges():
    cfg = AugmentConfig(
        scale=0.25, rotation_deg=30.0, rotation_prob=0.4, flip_prob=0.5, channel_scale=(0.6, 1.4)
    )
    n = 2000

    def draw(index):
        params = batch_augment.draw_params(tf.stack([tf.constant(9, tf.int64), index]), cfg)
        factors = augment.channel_factors(
            augment.colour_factor_seed(params["colour_seed"]), cfg.channel_scale
        )
        return params["scale"], params["rotation_deg"], params["flip"], factors

    ds = tf.data.Dataset.range(n).map(draw).batch(n)
    scale, rot, flip, factors = (x.numpy() for x in next(iter(ds)))
    # Uniform on [1 - r, 1 + r]: mean 1, standard deviation r / sqrt(3).
    assert scale.min() >= 0.75 and scale.max() <= 1.25
    assert abs(scale.mean() - 1.0) < 0.01 and abs(scale.std() - 0.25 / np.sqrt(3)) < 0.01
    rotated = rot[rot != 0]
    assert np.abs(rot).max() <= 30.0
    assert abs(len(rotated) / n - 0.4) < 0.04  # 4.1 standard errors
    assert abs(rotated.mean()) < 2.0 and abs(rotated.std() - 30.0 / np.sqrt(3)) < 1.0
    assert abs(flip.mean() - 0.5) < 0.045
    assert factors.min() >= 0.6 and factors.max() <= 1.4
    for c in range(3):
        assert abs(factors[:, c].mean() - 1.0) < 0.02
        assert abs(factors[:, c].std() - 0.8 / np.sqrt(12)) < 0.01
    # Channels draw independently.
    assert abs(np.corrcoef(factors.T)[0, 1]) < 0.1


@pytest.mark.parametrize(
    "augment_cfg",
    [
        dataclasses.replace(STRONG, warp="opencv"),
        dataclasses.replace(STRONG, warp="tensorflow"),
        dataclasses.replace(STRONG, brightness=0.1, contrast=0.2, saturation=0.2),
    ],
    ids=["opencv", "tensorflow", "opencv-colour-extras"],
)
def test_batches_finished_in_the_step_equal_the_pipelines(shards, augment_cfg):
    """make_dataset(finish_in_step=True) batches, finished by finish_batch eagerly and inside a
    tf.function under a distribution strategy (as the trainer's step runs it, on the CPU here),
    are make_dataset's batches bit for bit, the per-image colour jitter included; its elements
    carry uint8 crops, no heatmaps."""
    data = _data(shards, augment_cfg)
    args = {"split": "train", "batch_size": 6, "seed": 3}
    want = list(kp_dataset.make_dataset(data, **args).take(4))
    prepared = list(kp_dataset.make_dataset(data, finish_in_step=True, **args).take(4))
    assert prepared[0]["image"].dtype == tf.uint8 and "heatmaps" not in prepared[0]
    strategy = tf.distribute.OneDeviceStrategy("CPU:0")
    in_step = tf.function(
        lambda batch: strategy.run(lambda b: kp_dataset.finish_batch(b, data), args=(batch,))
    )
    as_numpy = lambda batches: [tf.nest.map_structure(lambda t: t.numpy(), b) for b in batches]
    for finish in (lambda b: kp_dataset.finish_batch(b, data), in_step):
        _assert_bitwise_equal(as_numpy(finish(b) for b in prepared), as_numpy(want))
    with pytest.raises(ValueError, match="finish_in_step needs the batched form"):
        kp_dataset.make_dataset(data, finish_in_step=True, batched=False, **args)
