"""Serving-graph optimisations: BatchNorm folded at export (parity, fusions, refusal), the
bfloat16 TP-Net (parity bound), TF-Serving batching parameters (hand values)."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d.layers.residual import Residual
from keras_pose3d.models.complexity import forward_flops
from keras_pose3d.models.sap_net import SAPNet
from keras_pose3d.models.tp_net import TPNet
from keras_pose3d.serving import export, optimize, signatures


def small_sap_net(seed: int = 0) -> SAPNet:
    """2 stacks (stack_bn and the re-projection between stacks), 2 modules, random BN state.

    Default BN statistics (mean 0, variance 1, gamma 1, beta 0) would make folding nearly a
    no-op; random ones make every folded kernel and bias differ from the unfolded ones.
    """
    keras.utils.set_random_seed(seed)
    model = SAPNet(
        num_stacks=2,
        num_features=32,
        hourglass_depth=2,
        depth_blocks=2,
        input_size=64,
        heatmap_size=16,
        num_modules=2,
    )
    model(np.zeros((1, 64, 64, 3), np.float32))
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, c))
            layer.beta.assign(rng.normal(0.0, 0.2, c))
            layer.moving_mean.assign(rng.normal(0.0, 0.3, c))
            layer.moving_variance.assign(rng.uniform(0.3, 2.0, c))
    return model


def residual_count(model) -> int:
    return sum(isinstance(layer, Residual) for layer in model._flatten_layers())


@pytest.fixture(scope="module")
def sap():
    return small_sap_net()


def test_fold_counts_and_leaves_the_model_alone(sap):
    before = [np.array(w) for w in sap.get_weights()]
    folded, counts = optimize.fold_batch_norms(sap)
    residuals = residual_count(sap)
    # Two conv -> BN pairs per residual module, the stem's, one per stack; bn1 of every module.
    assert counts == {"folded": 2 * residuals + 1 + 2, "fused": residuals, "kept": 0}
    for a, b in zip(before, sap.get_weights()):
        np.testing.assert_array_equal(a, b)
    conv = folded.hourglass.stem_conv
    assert not np.allclose(np.asarray(conv.kernel), np.asarray(sap.hourglass.stem_conv.kernel))


@pytest.mark.slow
def test_folded_export_equals_the_unfolded_model(sap, tmp_path):
    path = export.export_sap_net(sap, tmp_path)
    loaded = tf.saved_model.load(str(path))
    images = np.random.default_rng(11).uniform(0, 1, (3, 64, 64, 3)).astype(np.float32)
    ref = sap(images, training=False)
    got = loaded.signatures["predict_raw"](images=tf.constant(images))
    diffs = optimize.max_relative_differences(ref, got, keys=("heatmaps", "depth", "pose_3d"))
    assert max(diffs.values()) <= optimize.FOLD_TOLERANCE, diffs
    # The SavedModel runs folded kernels: its stem kernel is the BN-scaled one.
    bn = sap.hourglass.stem_bn
    scale = np.asarray(bn.gamma) / np.sqrt(np.asarray(bn.moving_variance) + bn.epsilon)
    kernel = np.asarray(sap.hourglass.stem_conv.kernel) * scale
    saved = [v.numpy() for v in loaded.sap_variables if v.shape == kernel.shape]
    assert any(np.allclose(v, kernel, rtol=1e-6, atol=1e-7) for v in saved)


def test_folded_graph_fuses_conv_bias_relu(sap):
    folded, counts = optimize.fold_batch_norms(sap)
    ops = optimize.optimized_op_counts(
        signatures.SAPNetServing(folded).network.get_concrete_function()
    )
    plain = optimize.optimized_op_counts(
        signatures.SAPNetServing(sap).network.get_concrete_function()
    )
    # Every folded pair runs as one Conv2D + BiasAdd + Relu kernel; every residual module's
    # pre-activation BN + ReLU as one fused batch norm; no BN arithmetic is left (unfolded:
    # one Rsqrt per BN layer).
    assert ops["_FusedConv2D[BiasAdd,Relu]"] == counts["folded"]
    assert ops["_FusedBatchNormEx"] == counts["fused"]
    assert ops["Rsqrt"] == 0 and plain["Rsqrt"] == counts["folded"] + counts["fused"]
    assert plain["_FusedConv2D[BiasAdd,Relu]"] == 0


def test_a_wrong_fold_is_refused_naming_the_difference(sap, tmp_path, monkeypatch):
    def fold_kernel_only(conv, bn):  # forgets the bias: BN's shift is lost
        s = np.asarray(bn.gamma) / np.sqrt(np.asarray(bn.moving_variance) + bn.epsilon)
        conv.kernel.assign(np.asarray(conv.kernel) * s)

    monkeypatch.setattr(optimize, "_fold_into", fold_kernel_only)
    with pytest.raises(optimize.ParityError, match=r"max relative difference [0-9.e+-]+ in '"):
        export.export_sap_net(sap, tmp_path)
    assert not (tmp_path / "sap_net").exists() or not any((tmp_path / "sap_net").iterdir())


@pytest.mark.slow
def test_bfloat16_tp_net_within_the_stated_bound(tmp_path):
    """Paper-size TP-Net (N = 20, 2 x 4096): the bf16 SavedModel's refined poses against the
    float32 model's on random windows (not the export's probe)."""
    keras.utils.set_random_seed(3)
    tp = TPNet(window=20, hidden=4096, frame_rate=25.0)
    tp(np.zeros((1, 20, 16, 3), np.float32))
    before = [np.array(w) for w in tp.get_weights()]
    path = export.export_tp_net(tp, tmp_path, precision="bfloat16")
    loaded = tf.saved_model.load(str(path))
    # fc1 and fc2 kernels and biases in bfloat16, the head's in float32.
    dtypes = {tuple(v.shape): v.dtype.name for v in loaded.tp_variables}
    assert dtypes == {
        (960, 4096): "bfloat16",
        (4096,): "bfloat16",
        (4096, 4096): "bfloat16",
        (4096, 48): "float32",
        (48,): "float32",
    }
    assert signatures.read_metadata(loaded) == {"mode": "online", "window": 20, "frame_rate": 25.0}
    windows = optimize.tp_net_probe(20, 16, batch=128, seed=7)
    got = loaded.signatures["refine"](poses=tf.constant(windows))["pose_3d_mm"].numpy()
    distance = np.linalg.norm(got - np.asarray(tp(windows)), axis=-1)
    assert distance.mean() <= optimize.TP_NET_BF16_MEAN_MM
    assert distance.max() <= optimize.TP_NET_BF16_MAX_MM
    assert distance.mean() > 0  # it is bfloat16, not float32 again
    for a, b in zip(before, tp.get_weights()):  # the float32 model is untouched
        np.testing.assert_array_equal(a, b)


def test_bfloat16_parity_check_refuses_a_wrong_model():
    tp = TPNet(window=4, hidden=16)
    tp(np.zeros((1, 4, 16, 3), np.float32))
    probe = optimize.tp_net_probe(4, 16, batch=8)
    shifted = lambda x: tp(x) + 10.0  # sqrt(3) x 10 = 17.3 mm per joint
    with pytest.raises(optimize.ParityError, match=r"17\.3 mm per joint on average"):
        optimize.check_tp_parity(tp, shifted, probe)


def test_batching_parameters_hand_values():
    # Paper-size SAP-Net, 32.33 GFLOP, 2 cores: 0.1 x 32.33e9 / (2 x 50e9) s = 32 ms -> 1 ms cap.
    assert optimize.batching_parameters(32.33e9, 32, 2) == {
        "max_batch_size": 32,
        "batch_timeout_micros": 1000,
        "num_batch_threads": 2,
        "max_enqueued_batches": 2,
    }
    tp = TPNet(window=20, hidden=4096)
    tp(np.zeros((1, 20, 16, 3), np.float32))
    # 2 x (960 x 4096 + 4096 x 4096 + 4096 x 48) = 41,811,968 FLOPs: 0.1 x 418 us = 42 us.
    assert optimize.tp_net_flops(tp) == 41_811_968
    params = export.tp_net_batching(tp, cores=2)
    assert params == {
        "max_batch_size": 128,
        "batch_timeout_micros": 42,
        "num_batch_threads": 2,
        "max_enqueued_batches": 2,
    }
    text = optimize.batching_text(params)
    assert text.splitlines()[1] == "batch_timeout_micros { value: 42 }"
    assert optimize.parse_batching_text(text) == params


def test_version_folder_carries_its_batching_params(sap, tmp_path):
    path = export.export_sap_net(sap, tmp_path, cores=3)
    text = (path / export.PER_MODEL_BATCHING_FILE).read_text()
    flops = forward_flops(sap, 64)
    expected = optimize.batching_parameters(flops, export.SAP_NET_MAX_BATCH, 3)
    assert optimize.parse_batching_text(text) == expected
    assert expected["num_batch_threads"] == 3
    assert export.batching_parameters_for(tmp_path) == expected
    assert os.path.isfile(path / "saved_model.pb")
