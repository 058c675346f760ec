"""Value tests of the SAP-Net building blocks: residual, hourglass, depth regressor, decoder."""

import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d.layers import (
    DepthRegressor,
    HeatmapDecoder,
    Hourglass,
    Residual,
    StackedHourglass,
    heatmap_to_normalised,
)


def _zero_residual_branch(residual: Residual) -> None:
    """Zeroes the last conv so the module reduces to its skip path."""
    residual.conv3.kernel.assign(tf.zeros_like(residual.conv3.kernel))
    residual.conv3.bias.assign(tf.zeros_like(residual.conv3.bias))


def _pool(x):  # (B, H, W, C) 2x2 max-pool
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _up(x):  # nearest 2x upsample
    return x.repeat(2, axis=1).repeat(2, axis=2)


def _assert_config(layer, cls, expected: dict) -> None:
    config = layer.get_config()
    for key, value in expected.items():
        assert config[key] == value, key
    clone = cls.from_config(config)
    for key, value in expected.items():
        assert getattr(clone, key) == value, key


# ----------------------------------------------------------------------------------------------
def test_residual_config_and_validation():
    _assert_config(Residual(12, name="r"), Residual, {"filters": 12, "name": "r"})
    with pytest.raises(ValueError, match="filters"):
        Residual(7)


def test_residual_identity_skip():
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 8)).astype(np.float32)
    layer = Residual(8)
    layer.build(x.shape)
    assert layer.skip is None
    _zero_residual_branch(layer)
    np.testing.assert_array_equal(layer(x).numpy(), x)


def test_residual_projection_skip():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5, 5, 6)).astype(np.float32)
    layer = Residual(10)
    layer.build(x.shape)
    _zero_residual_branch(layer)
    w = rng.normal(size=(1, 1, 6, 10)).astype(np.float32)
    b = rng.normal(size=(10,)).astype(np.float32)
    layer.skip.kernel.assign(w)
    layer.skip.bias.assign(b)
    np.testing.assert_allclose(layer(x).numpy(), x @ w[0, 0] + b, rtol=1e-5, atol=1e-5)


def test_residual_branch_is_active():
    x = np.random.default_rng(2).normal(size=(1, 4, 4, 8)).astype(np.float32)
    layer = Residual(8)
    assert np.abs(layer(x).numpy() - x).max() > 1e-3


# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_hourglass_reduces_to_pool_upsample_recursion(depth):
    """With every residual branch zeroed, level k computes x + up(level_{k+1}(pool(x)))."""
    x = np.random.default_rng(3).normal(size=(2, 16, 16, 8)).astype(np.float32)
    layer = Hourglass(depth, 8)
    layer.build(x.shape)
    for r in [*layer.upper, *layer.down, *layer.after, layer.bottom, *layer.bottom_more]:
        _zero_residual_branch(r)

    def reference(v, level):
        low = _pool(v)
        if level + 1 < depth:
            low = reference(low, level + 1)
        return v + _up(low)

    np.testing.assert_allclose(layer(x).numpy(), reference(x, 0), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("num_modules", [1, 2, 3])
def test_hourglass_chains_num_modules_residuals_at_each_place(num_modules):
    """Every residual reduced to `x + c` (zero last kernel, bias c): a place with m modules in a
    row adds m * c, so the output tells how many modules each of the four places holds."""
    m, c, depth = num_modules, 0.25, 2
    x = np.random.default_rng(5).normal(size=(2, 8, 8, 4)).astype(np.float32)
    layer = Hourglass(depth, 4, num_modules=m)
    layer.build(x.shape)
    residuals = [*layer.upper, *layer.down, *layer.after, layer.bottom, *layer.bottom_more]
    assert len(residuals) == (3 * depth + 1) * m
    for r in residuals:
        r.conv3.kernel.assign(tf.zeros_like(r.conv3.kernel))
        r.conv3.bias.assign(tf.fill(r.conv3.bias.shape, c))

    def reference(v, level):
        upper = v + m * c
        low = _pool(v) + m * c
        low = reference(low, level + 1) if level + 1 < depth else low + m * c
        return upper + _up(low + m * c)

    np.testing.assert_allclose(layer(x).numpy(), reference(x, 0), rtol=1e-6, atol=1e-6)


def test_hourglass_config_and_validation():
    _assert_config(Hourglass(3, 16), Hourglass, {"depth": 3, "filters": 16, "num_modules": 1})
    _assert_config(
        Hourglass(2, 8, num_modules=2), Hourglass, {"depth": 2, "filters": 8, "num_modules": 2}
    )
    with pytest.raises(ValueError, match="depth"):
        Hourglass(0, 16)
    with pytest.raises(ValueError, match="num_modules"):
        Hourglass(2, 16, num_modules=0)


def test_one_module_keeps_the_layer_names_of_checkpoints():
    """num_modules=1 is the network as it was before the argument: same sub-layer names, so
    weights saved by it keep loading; further modules get new names."""
    one, two = Hourglass(2, 8), Hourglass(2, 8, num_modules=2)
    assert [r.name for r in one.upper] == ["up0", "up1"]
    assert [r.name for r in two.upper] == ["up0", "up0_1", "up1", "up1_1"]
    assert [r.name for r in two.bottom_more] == ["bottom_1"] and one.bottom_more == []
    stacked = StackedHourglass(5, 2, 8, 1, num_modules=2)
    assert [r.name for r in stacked.stack_res] == [
        "stack0_res",
        "stack0_res_1",
        "stack1_res",
        "stack1_res_1",
    ]
    assert [r.name for r in StackedHourglass(5, 2, 8, 1).stack_res] == ["stack0_res", "stack1_res"]


# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("downsample", [1, 2, 4])
def test_stacked_hourglass_resolution_and_dtypes(downsample):
    layer = StackedHourglass(5, 2, 8, 1, downsample=downsample)
    out = layer(np.zeros((1, 32, 32, 3), np.float32))
    side = 32 // downsample
    assert out["heatmaps"].shape == (1, 2, side, side, 5)
    assert out["features"].shape == (1, side, side, 8)
    assert out["heatmaps"].dtype == tf.float32


def test_stacked_hourglass_config_and_validation():
    expected = {
        "num_joints": 7,
        "num_stacks": 3,
        "num_features": 24,
        "hourglass_depth": 2,
        "downsample": 2,
        "num_modules": 2,
    }
    _assert_config(StackedHourglass(**expected), StackedHourglass, expected)
    assert StackedHourglass(7, 1, 24, 2).num_modules == 1
    with pytest.raises(ValueError, match="num_stacks"):
        StackedHourglass(7, 0, 24, 2)
    with pytest.raises(ValueError, match="downsample"):
        StackedHourglass(7, 1, 24, 2, downsample=8)
    with pytest.raises(ValueError, match="num_features"):
        StackedHourglass(7, 1, 10, 2)


# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("combine", ["sum", "concat"])
def test_depth_regressor_reference(combine):
    """Zeroed branches reduce the regressor to pool^blocks(stack_input) -> dense."""
    rng = np.random.default_rng(4)
    stack_input = rng.normal(size=(2, 8, 8, 8)).astype(np.float32)
    features = rng.normal(size=(2, 8, 8, 8)).astype(np.float32)
    heatmaps = rng.normal(size=(2, 8, 8, 5)).astype(np.float32)
    layer = DepthRegressor(5, 8, num_blocks=2, residuals_per_block=2, combine=combine)
    layer(stack_input, features, heatmaps)  # builds
    if combine == "sum":
        for conv in (layer.remap_features, layer.remap_heatmaps):
            conv.kernel.assign(tf.zeros_like(conv.kernel))
            conv.bias.assign(tf.zeros_like(conv.bias))
    else:  # select the stack_input channels of the concatenation
        kernel = np.zeros(layer.fuse.kernel.shape, np.float32)
        kernel[0, 0, :8, :] = np.eye(8)
        layer.fuse.kernel.assign(kernel)
        layer.fuse.bias.assign(tf.zeros_like(layer.fuse.bias))
    for block in layer.blocks:
        for r in block:
            _zero_residual_branch(r)
    pooled = _pool(_pool(stack_input)).reshape(2, -1)  # (B, 2*2*8)
    expected = pooled @ layer.dense.kernel.numpy() + layer.dense.bias.numpy()
    got = layer(stack_input, features, heatmaps).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_depth_regressor_config_and_validation():
    expected = {
        "num_joints": 9,
        "num_features": 12,
        "num_blocks": 3,
        "residuals_per_block": 1,
        "combine": "concat",
    }
    _assert_config(DepthRegressor(**expected), DepthRegressor, expected)
    with pytest.raises(ValueError, match="combine"):
        DepthRegressor(9, 12, combine="max")


# ----------------------------------------------------------------------------------------------
def gaussian_maps(centres, size=16, sigma=1.0) -> np.ndarray:
    """(1, size, size, J) Gaussians at heatmap coordinates centres[j] = (x, y)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    maps = [np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)) for x, y in centres]
    return np.stack(maps, axis=-1)[None].astype(np.float32)


def test_heatmap_to_normalised_mapping():
    # S = 256, h = 64: heatmap pixel 0 covers input pixels 0..3, centre 1.5.
    np.testing.assert_allclose(heatmap_to_normalised(0.0, 256, 64), (1.5 - 128) / 128)
    np.testing.assert_allclose(heatmap_to_normalised(31.5, 256, 64), (127.5 - 128) / 128)
    np.testing.assert_allclose(heatmap_to_normalised(5.0, 64, 64), (5.0 - 32) / 32)


def test_decoder_integer_peaks_are_exact():
    maps = np.zeros((1, 16, 16, 3), np.float32)
    maps[0, 3, 0, 0] = 1.0  # x=0, y=3 on the border
    maps[0, 8, 8, 1] = 1.0
    maps[0, 15, 12, 2] = 1.0
    for method in ("local_soft_argmax", "soft_argmax"):
        got = HeatmapDecoder(64, 16, method=method)(maps).numpy()[0]
        expected = [
            [(1.5 - 32) / 32, (13.5 - 32) / 32],
            [(33.5 - 32) / 32] * 2,
            [(49.5 - 32) / 32, (61.5 - 32) / 32],
        ]
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_local_soft_argmax_recovers_subpixel_gaussian():
    centres = [(5.3, 9.7), (10.5, 2.0), (0.2, 14.6), (7.0, 7.0)]
    maps = gaussian_maps(centres)
    # A weaker second mode far away must not pull the estimate (a global soft-argmax would).
    maps[0, 1, 14, 0] = 0.6
    got = HeatmapDecoder(64, 16)(maps).numpy()[0]
    expected = heatmap_to_normalised(np.array(centres), 64, 16)
    # Truncating a sigma=1 Gaussian to 5x5 biases the centroid by < 0.05 heatmap px inside
    # the map; 0.06 px = 0.0075 normalised units at r = 4.
    np.testing.assert_allclose(got[[0, 1, 3]], expected[[0, 1, 3]], atol=0.06 * 4 / 32)
    np.testing.assert_allclose(got[3], expected[3], atol=1e-6)  # symmetric: exact
    # At the border the map itself cuts the Gaussian: the estimate moves inwards (< 0.5 px).
    np.testing.assert_allclose(got[2], expected[2], atol=0.5 * 4 / 32)


def _threshold_centroid(heatmap: np.ndarray, window: int, threshold: float) -> np.ndarray:
    """NumPy reference: (x, y) centroid of relu(h - threshold * peak) around the argmax."""
    y0, x0 = np.unravel_index(np.argmax(heatmap), heatmap.shape)
    r = window // 2
    ys, xs = np.mgrid[y0 - r : y0 + r + 1, x0 - r : x0 + r + 1]
    w = np.maximum(heatmap[ys, xs] - threshold * heatmap.max(), 0.0)
    return np.array([np.sum(w * xs), np.sum(w * ys)]) / w.sum()


def test_threshold_centroid_removes_the_pedestal_bias():
    """A broad, weak blob on a pedestal (what a briefly trained network predicts on the
    quickstart's 16 x 16 maps): the plain centroid is pulled to the integer argmax, the
    centroid above half maximum is not."""
    centre = np.array([7.3, 8.6])
    maps = 0.15 * gaussian_maps([tuple(centre)], sigma=2.0) + 0.05  # peak 0.2, floor 0.05
    plain = HeatmapDecoder(64, 16)(maps).numpy()[0, 0]
    half = HeatmapDecoder(64, 16, threshold=0.5)(maps).numpy()[0, 0]
    to_norm = lambda c: heatmap_to_normalised(c, 64, 16)
    np.testing.assert_allclose(
        half, to_norm(_threshold_centroid(maps[0, ..., 0], 5, 0.5)), atol=1e-6
    )
    np.testing.assert_allclose(
        plain, to_norm(_threshold_centroid(maps[0, ..., 0], 5, 0.0)), atol=1e-6
    )
    err_px = lambda got: np.abs(got - to_norm(centre)) * 32 / 4  # heatmap px
    # Figures of the reference: the plain centroid lands 0.22 / 0.29 heatmap px off, towards
    # the argmax pixel (7, 9); above half maximum 0.065 / 0.081 px (the 5 x 5 window still
    # clips the part above half maximum a little).
    assert np.all(err_px(plain) > 0.2)
    assert np.all(err_px(half) < 0.09)
    assert np.all(err_px(half) < err_px(plain) / 3)
    # No positive mass above the threshold share: a non-positive map falls back to the argmax.
    flat = -np.ones((1, 16, 16, 1), np.float32)
    flat[0, 4, 6, 0] = -0.5
    np.testing.assert_allclose(
        HeatmapDecoder(64, 16, threshold=0.5)(flat).numpy()[0, 0], to_norm(np.array([6.0, 4.0]))
    )


def test_decoder_is_differentiable_in_the_window():
    maps = tf.Variable(gaussian_maps([(5.3, 9.7)]))
    with tf.GradientTape() as tape:
        coords = HeatmapDecoder(64, 16)(maps)
        target = tf.reduce_sum(coords[..., 0])
    grad = tape.gradient(target, maps).numpy()[0, ..., 0]
    assert np.all(np.isfinite(grad))
    nonzero = np.argwhere(grad != 0)
    assert len(nonzero) > 0
    assert nonzero[:, 0].min() >= 8 and nonzero[:, 0].max() <= 12  # rows of the 5x5 window
    assert grad[10, 7] > 0 > grad[10, 3]  # mass to the right moves x right


def test_decoder_config_and_validation():
    expected = {
        "input_size": 128,
        "heatmap_size": 32,
        "method": "soft_argmax",
        "window": 3,
        "beta": 20.0,
        "threshold": 0.5,
    }
    _assert_config(HeatmapDecoder(**expected), HeatmapDecoder, expected)
    with pytest.raises(ValueError, match="window"):
        HeatmapDecoder(64, 16, window=4)
    with pytest.raises(ValueError, match="method"):
        HeatmapDecoder(64, 16, method="argmax")
    with pytest.raises(ValueError, match="threshold"):
        HeatmapDecoder(64, 16, threshold=1.0)


def test_decoder_inverts_the_data_pipeline_encoder():
    """Contract with keras_pose3d.data.heatmaps: a target encoded for a joint at input pixel u
    decodes to x_norm = (u - S/2) / (S/2) (docs/architecture.md)."""
    heatmaps_module = pytest.importorskip("keras_pose3d.data.heatmaps")
    joints_input_px = np.array([[[20.3, 41.7], [33.0, 30.0], [50.6, 12.2]]], np.float32)
    on_grid = heatmaps_module.input_to_heatmap_px(joints_input_px, 64, 16)
    maps = heatmaps_module.encode_heatmaps(on_grid, np.ones((1, 3), np.float32), 16)
    got = HeatmapDecoder(64, 16)(maps).numpy()
    expected = (joints_input_px - 32.0) / 32.0
    # < 0.05 heatmap px of centroid bias = 0.2 input px = 0.00625 normalised units.
    np.testing.assert_allclose(got, expected, atol=0.00625)
    np.testing.assert_allclose(
        heatmap_to_normalised(np.asarray(on_grid), 64, 16), expected, atol=1e-6
    )


def test_decoder_peak_index_is_bit_identical_to_argmax(monkeypatch):
    """The decoder finds the peak with top_k (ONNX TopK) instead of keras.ops.argmax (which
    tf2onnx cannot convert); its outputs must not change."""
    import keras

    rng = np.random.default_rng(11)
    maps = rng.normal(0.0, 0.3, (3, 16, 16, 16)).astype(np.float32)
    maps[0, 4, 4, 0] = maps[0, 9, 2, 0] = 5.0  # tie: both pick the lower flat index (4*16+4)
    maps[1, ..., 1] = np.round(maps[1, ..., 1])  # many ties among integer values
    maps[2, ..., 2] = -1.0  # flat map, no positive mass: falls back to the first pixel
    new = {w: HeatmapDecoder(64, 16, window=w)(maps).numpy() for w in (1, 5)}
    # The previous implementation: the peak from keras.ops.argmax.
    monkeypatch.setattr(
        keras.ops, "top_k", lambda x, k: (None, keras.ops.argmax(x, axis=-1)[..., None])
    )
    for window, got in new.items():
        old = HeatmapDecoder(64, 16, window=window)(maps).numpy()
        np.testing.assert_array_equal(got, old)
    # And a hand value: window 1 is the integer peak itself.
    first = heatmap_to_normalised(np.array([4.0, 4.0]), 64, 16)
    np.testing.assert_array_equal(new[1][0, 0], first)
    np.testing.assert_array_equal(new[1][2, 2], heatmap_to_normalised(np.zeros(2), 64, 16))
