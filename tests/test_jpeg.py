"""Tests for keras_pose3d.data.jpeg: round trips through the decoders the project reads with."""

import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d.data import features
from keras_pose3d.data.jpeg import encode_jpeg
from keras_pose3d.data.readers import images


def _pattern(h=24, w=40):
    # Flat 8x8-aligned colour blocks: JPEG keeps them within a few levels.
    out = np.zeros((h, w, 3), np.uint8)
    out[:, :16] = (200, 30, 40)  # red-ish (RGB)
    out[:, 16:32] = (20, 180, 60)  # green-ish
    out[:, 32:] = (30, 40, 210)  # blue-ish
    return out


def test_rgb_round_trip_through_the_record_decoder():
    rgb = _pattern()
    data = encode_jpeg(rgb)
    assert features.jpeg_size(data) == (24, 40)
    decoded = tf.io.decode_jpeg(data, channels=3).numpy()  # what parse_example does: RGB
    # Block interiors (away from the colour edges, where chroma subsampling blurs).
    for x in (4, 20, 36):
        np.testing.assert_allclose(decoded[8:16, x], rgb[8:16, x], atol=6)


def test_bgr_order_and_the_raw_image_decoder():
    rgb = _pattern()
    bgr = rgb[..., ::-1].copy()
    assert encode_jpeg(bgr, order="bgr") == encode_jpeg(rgb)
    back = images.decode_bgr(encode_jpeg(bgr, order="bgr"))  # raw datasets' decoder: BGR
    np.testing.assert_allclose(back[8:16, 4], bgr[8:16, 4], atol=6)


def test_quality_trades_size_for_error():
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    errors, sizes = [], []
    for quality in (30, 95):
        data = encode_jpeg(noisy, quality=quality)
        decoded = tf.io.decode_jpeg(data, channels=3).numpy().astype(float)
        errors.append(np.abs(decoded - noisy).mean())
        sizes.append(len(data))
    assert errors[1] < errors[0] and sizes[1] > sizes[0]


@pytest.mark.parametrize(
    "image, kwargs, match",
    [
        (np.zeros((8, 8), np.uint8), {}, "image must be"),
        (np.zeros((8, 8, 3), np.float32), {}, "image must be"),
        (np.zeros((8, 8, 3), np.uint8), {"quality": 0}, "quality"),
        (np.zeros((8, 8, 3), np.uint8), {"order": "rgba"}, "order"),
    ],
)
def test_bad_input_is_named(image, kwargs, match):
    with pytest.raises(ValueError, match=match):
        encode_jpeg(image, **kwargs)
