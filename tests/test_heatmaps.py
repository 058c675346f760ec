"""heatmaps: Gaussian values against NumPy, pixel maps, tf.data parity (decode: test_layers)."""

import numpy as np
import tensorflow as tf

from keras_pose3d.data import heatmaps


def _np_gaussian(joint, size, sigma):
    y, x = np.mgrid[0:size, 0:size]
    return np.exp(-((x - joint[0]) ** 2 + (y - joint[1]) ** 2) / (2 * sigma**2))


def test_encode_matches_numpy_and_masks():
    joints = np.array([[10.3, 20.7], [3.0, 5.0], [30.0, 30.0], [64.2, 10.0]], np.float32)
    vis = np.array([1, 1, 0, 1], np.float32)
    hm = heatmaps.encode_heatmaps(joints, vis, 64, sigma=1.5).numpy()
    np.testing.assert_allclose(hm[..., 0], _np_gaussian(joints[0], 64, 1.5), atol=1e-6)
    assert hm[5, 3, 1] == 1.0  # peak 1 at an integer joint (row y=5, column x=3)
    assert np.all(hm[..., 2] == 0)  # invisible
    assert np.all(hm[..., 3] == 0)  # off the grid (x > 63.5)
    np.testing.assert_array_equal(heatmaps.heatmap_weights(joints, vis, 64).numpy(), [1, 1, 0, 0])


def test_batched_equals_per_sample():
    rng = np.random.default_rng(0)
    joints = rng.uniform(0, 32, size=(3, 16, 2)).astype(np.float32)
    vis = (rng.uniform(size=(3, 16)) > 0.2).astype(np.float32)
    batched = heatmaps.encode_heatmaps(joints, vis, 32).numpy()
    for b in range(3):
        np.testing.assert_allclose(batched[b], heatmaps.encode_heatmaps(joints[b], vis[b], 32))


def test_input_to_heatmap_pixel_map_hand_values():
    # (q + 0.5) * 64 / 256 - 0.5: the first and last input pixels, a centre, an interior one.
    q = np.array([[0.0, 255.0], [127.5, 10.0]], np.float32)
    hm = heatmaps.input_to_heatmap_px(q, 256, 64).numpy()
    np.testing.assert_allclose(hm, [[-0.375, 63.375], [31.5, 2.125]])


def test_eager_equals_tf_data_map():
    joints = np.random.default_rng(2).uniform(0, 16, size=(2, 16, 2)).astype(np.float32)
    vis = np.ones((2, 16), np.float32)
    ds = tf.data.Dataset.from_tensor_slices((joints, vis)).map(
        lambda j, v: heatmaps.encode_heatmaps(j, v, 16)
    )
    for b, heat in enumerate(ds):
        eager = heatmaps.encode_heatmaps(joints[b], vis[b], 16)
        np.testing.assert_array_equal(heat.numpy(), eager.numpy())
