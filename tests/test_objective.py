"""The training objective: each term through its custom-loss layer with the config's weight,
the samples each term applies to, and the division by the global batch size."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d import losses
from keras_pose3d.config import LossConfig
from keras_pose3d.layers import loss_layers
from keras_pose3d.training import objective

ALL = ("heatmap", "depth", "geometric", "illegal_angle", "symmetry")


def _batch(rng, b=4, j=16, h=8):
    outputs = {
        "heatmaps": rng.random((b, 2, h, h, j)).astype(np.float32),
        "depth": rng.normal(0, 0.3, (b, j)).astype(np.float32),
    }
    targets = {
        "heatmaps": rng.random((b, h, h, j)).astype(np.float32),
        "visibility": (rng.random((b, j)) > 0.2).astype(np.float32),
        "pose_2d": rng.uniform(-0.6, 0.6, (b, j, 2)).astype(np.float32),
        "depth": rng.normal(0, 0.3, (b, j)).astype(np.float32),
        "has_3d": np.array([1, 1, 0, 0], np.float32)[:b],
    }
    return outputs, targets


@pytest.mark.parametrize("weak_on", ["2d_only", "all"])
def test_total_is_the_weighted_masked_sum_over_the_global_batch(weak_on):
    cfg = LossConfig(
        heatmap=1.5, depth=0.1, lambda_g=0.03, lambda_a=0.05, lambda_s=0.07, weak_on=weak_on
    )
    outputs, targets = _batch(np.random.default_rng(0))
    terms = objective.per_sample_terms(outputs, targets, ALL, cfg)
    loss, sums, counts = objective.total_loss(terms, global_batch_size=8)

    # NumPy reference from the pure loss functions (not the layers).
    vis, has_3d = targets["visibility"], targets["has_3d"]
    pose = np.concatenate([targets["pose_2d"], outputs["depth"][..., None]], -1)
    weak = 1.0 - has_3d if weak_on == "2d_only" else np.ones_like(has_3d)
    per = {
        "heatmap": (losses.heatmap_loss(outputs["heatmaps"], targets["heatmaps"], vis), 1.0),
        "depth": (losses.depth_loss(outputs["depth"], targets["depth"], vis), has_3d),
        "geometric": (losses.geometric_loss(pose, vis), weak),
        "illegal_angle": (losses.illegal_angle_loss(pose, vis), weak),
        "symmetry": (losses.symmetry_loss(pose, vis), weak),
    }
    expected_sums = {
        k: cfg.weight(k) * float(np.sum(np.asarray(v) * m)) for k, (v, m) in per.items()
    }
    for k in ALL:
        np.testing.assert_allclose(float(sums[k]), expected_sums[k], rtol=1e-5, err_msg=k)
        assert float(counts[k]) == float(np.sum(np.broadcast_to(per[k][1], has_3d.shape)))
    np.testing.assert_allclose(float(loss), sum(expected_sums.values()) / 8.0, rtol=1e-5)
    assert expected_sums["symmetry"] > 0 and expected_sums["depth"] > 0  # the case is not trivial


def test_terms_go_through_the_custom_loss_layers_with_the_config_weights():
    cfg = LossConfig(heatmap=2.0, depth=0.1, lambda_g=0.03, lambda_a=0.04, lambda_s=0.05)
    layers = objective.loss_layers_for(cfg)
    assert {k: type(v) for k, v in layers.items()} == {
        "heatmap": loss_layers.HeatmapLoss,
        "depth": loss_layers.DepthLoss,
        "geometric": loss_layers.GeometricLoss,
        "illegal_angle": loss_layers.IllegalAngleLoss,
        "symmetry": loss_layers.SymmetryLoss,
    }
    assert {k: v.weight for k, v in layers.items()} == {k: cfg.weight(k) for k in layers}
    assert objective.loss_layers_for(cfg) is layers  # built once per config
    other = dataclasses.replace(cfg, lambda_s=0.5)
    assert objective.loss_layers_for(other)["symmetry"].weight == 0.5


def test_only_the_named_terms_are_computed():
    outputs, targets = _batch(np.random.default_rng(1))
    terms = objective.per_sample_terms(outputs, targets, ("depth",), LossConfig())
    assert set(terms) == {"depth"}
    values, mask = terms["depth"]
    np.testing.assert_array_equal(np.asarray(mask), targets["has_3d"])
    assert tf.is_tensor(values) and values.dtype == tf.float32
