"""SAP-Net: config round trip, output contracts, saving, mixed precision, training, freezing,
and the paper-size network's parameters and FLOPs against Zhou et al.'s."""

import dataclasses
import json
import pathlib
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d import config as kc
from keras_pose3d import losses
from keras_pose3d.layers import HeatmapDecoder
from keras_pose3d.models import PARTS, SAPNet
from keras_pose3d.models.complexity import forward_flops, trainable_parameters

ROOT = pathlib.Path(__file__).resolve().parents[1]

TINY = {
    "num_joints": 16,
    "num_stacks": 2,
    "num_features": 8,
    "hourglass_depth": 2,
    "depth_blocks": 2,
    "input_size": 32,
    "heatmap_size": 8,
}


@pytest.fixture(scope="module")
def tiny_model() -> SAPNet:
    keras.utils.set_random_seed(0)
    return SAPNet(**TINY, name="tiny_sap")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)


@pytest.fixture
def bf16_policy():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def test_config_round_trip_keeps_every_argument():
    args = {
        "num_joints": 5,
        "num_stacks": 1,
        "num_features": 12,
        "hourglass_depth": 1,
        "depth_blocks": 1,
        "input_size": 16,
        "heatmap_size": 8,
        "depth_combine": "concat",
        "decode": "soft_argmax",
        "decode_threshold": 0.25,
        "num_modules": 2,
    }
    model = SAPNet(**args, name="cfg")
    config = model.get_config()
    for key, value in args.items():
        assert config[key] == value, key
    assert config["name"] == "cfg"
    clone = SAPNet.from_config(config)
    for key, value in args.items():
        assert getattr(clone, key) == value, key
    assert clone.name == "cfg"
    assert clone.hourglass.get_config()["downsample"] == 2
    assert clone.depth_regressor.combine == "concat"
    assert clone.decoder.method == "soft_argmax" and clone.decoder.threshold == 0.25
    assert clone.count_params() == model.count_params()
    assert clone.hourglass.num_modules == 2 and clone.hourglass.hourglasses[0].num_modules == 2
    # A config saved before num_modules existed rebuilds the one-module network it described.
    old = {k: v for k, v in config.items() if k != "num_modules"}
    assert SAPNet.from_config(old).num_modules == 1
    # ... and one saved before decode_threshold existed decodes as it did (plain centroid).
    old = {k: v for k, v in config.items() if k != "decode_threshold"}
    assert SAPNet.from_config(old).decoder.threshold == 0.0


def test_defaults_are_the_model_configs():
    import inspect

    parameters = inspect.signature(SAPNet.__init__).parameters
    for field in dataclasses.fields(kc.ModelConfig):
        assert parameters[field.name].default == field.default, field.name


def test_a_keras_file_saved_before_the_newer_arguments_reloads_as_it_was(images, tmp_path):
    # A model of the days before num_modules and decode_threshold: 1 module, plain centroid.
    keras.utils.set_random_seed(0)
    model = SAPNet(**TINY, num_modules=1, decode_threshold=0.0)
    path = tmp_path / "old.keras"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        files = {name: z.read(name) for name in z.namelist()}
    config = json.loads(files["config.json"])
    for key in ("num_modules", "decode_threshold"):
        del config["config"][key]
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    reloaded = keras.saving.load_model(path)
    assert reloaded.num_modules == 1 and reloaded.decoder.threshold == 0.0
    np.testing.assert_array_equal(reloaded(images)["pose_2d"], model(images)["pose_2d"])


def test_build_model_takes_the_decoder_threshold_from_the_config():
    from keras_pose3d.training.trainer import build_model

    path = ROOT / "configs" / "quickstart.yaml"
    assert build_model(kc.load_config(path)).decoder.threshold == 0.5  # the config default
    model = build_model(kc.load_config(path, ["model.decode_threshold=0.3"]))
    assert model.decoder.threshold == 0.3 and model.get_config()["decode_threshold"] == 0.3


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"input_size": 32, "heatmap_size": 12}, "multiple of heatmap_size"),
        ({"input_size": 64, "heatmap_size": 8}, "input_size / heatmap_size"),
        ({"heatmap_size": 8, "hourglass_depth": 4}, "hourglass_depth"),
        ({"heatmap_size": 8, "depth_blocks": 4}, "depth_blocks"),
    ],
)
def test_invalid_sizes_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        SAPNet(**{**TINY, **bad})


def test_outputs_are_consistent(tiny_model, images):
    out = tiny_model(images)
    assert set(out) == {"heatmaps", "pose_2d", "depth", "pose_3d"}
    assert out["heatmaps"].shape == (2, 2, 8, 8, 16)
    for value in out.values():
        assert value.dtype == tf.float32
    np.testing.assert_array_equal(out["pose_3d"][..., :2], out["pose_2d"])
    np.testing.assert_array_equal(out["pose_3d"][..., 2], out["depth"])
    decoded = HeatmapDecoder(32, 8, threshold=tiny_model.decode_threshold)(out["heatmaps"][:, -1])
    np.testing.assert_allclose(out["pose_2d"], decoded, atol=1e-6)
    assert np.all(np.abs(out["pose_2d"].numpy()) <= 1.0)
    # The batch dict of the data pipeline is accepted as it is.
    from_dict = tiny_model({"image": images})
    np.testing.assert_array_equal(from_dict["depth"], out["depth"])
    with pytest.raises(ValueError, match="image"):
        tiny_model({"images": images})


def test_saved_keras_file_reloads_identically(tiny_model, images, tmp_path):
    path = tmp_path / "sap.keras"
    tiny_model.save(path)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded, SAPNet)
    a, b = tiny_model(images), reloaded(images)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert reloaded.get_config() == tiny_model.get_config()


def test_tf_checkpoint_holds_every_weight(images, tmp_path):
    """The trainer's stage checkpoints (tf.train.Checkpoint) must hold every variable, also
    those of layers kept in lists (hourglasses, stack residuals, heads, regressor blocks)."""
    keras.utils.set_random_seed(2)
    model = SAPNet(**{**TINY, "num_modules": 2})
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    stored = [name for name, _ in tf.train.list_variables(path) if name.startswith("model/")]
    assert len(stored) == len(model.weights)
    keras.utils.set_random_seed(3)
    fresh = SAPNet(**{**TINY, "num_modules": 2})
    tf.train.Checkpoint(model=fresh).read(path).assert_existing_objects_matched()
    a, b = model(images), fresh(images)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_mixed_bfloat16_outputs_are_float32(bf16_policy, images):
    model = SAPNet(**{**TINY, "num_stacks": 1})
    assert model.hourglass.stem_conv.compute_dtype == "bfloat16"
    assert model.hourglass.heads[0].compute_dtype == "float32"
    assert model.depth_regressor.dense.compute_dtype == "float32"
    out = model(images)
    for key, value in out.items():
        assert value.dtype == tf.float32, key
    assert np.all(np.isfinite(out["pose_3d"].numpy()))


def _targets(images):
    rng = np.random.default_rng(1)
    gt = np.zeros((2, 8, 8, 16), np.float32)
    gt[:, 3, 4, :] = 1.0
    depth = rng.normal(scale=0.2, size=(2, 16)).astype(np.float32)
    return gt, depth, np.ones((2, 16), np.float32)


def _loss(model, images, gt, depth, vis):
    out = model(images, training=True)
    per_sample = losses.heatmap_loss(out["heatmaps"], gt, vis)
    per_sample += losses.depth_loss(out["depth"], depth, vis)
    return tf.reduce_mean(per_sample)


def test_gradient_steps_reduce_the_loss(images):
    # Eager steps on the smallest model: on a loaded 2-core CPU, tracing a tf.function
    # gradient of even a tiny hourglass costs minutes, an eager step a few seconds.
    keras.utils.set_random_seed(1)
    model = SAPNet(**{**TINY, "num_stacks": 1, "hourglass_depth": 1, "depth_blocks": 1})
    gt, depth, vis = _targets(images)
    optimizer = keras.optimizers.Adam(1e-2)

    def step():
        with tf.GradientTape() as tape:
            loss = _loss(model, images, gt, depth, vis)
        grads = tape.gradient(loss, model.trainable_variables)
        assert all(g is not None for g in grads)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return float(loss)

    losses_seen = [step() for _ in range(4)]
    assert np.isfinite(losses_seen[0]) and losses_seen[-1] < 0.7 * losses_seen[0], losses_seen


def test_freezing_the_hourglass_trains_only_the_depth(tiny_model, images):
    gt, depth, vis = _targets(images)
    hourglass = tiny_model.part("hourglass")
    assert hourglass is tiny_model.hourglass and PARTS["depth"] == "depth_regressor"
    # Every part a config may name (config.PART_NAMES) is a sub-network of the model.
    parts = [tiny_model.part(n) for n in kc.PART_NAMES]
    assert kc.PART_NAMES == ("hourglass", "depth")
    assert parts[0] is tiny_model.hourglass and parts[1] is tiny_model.depth_regressor
    with pytest.raises(ValueError, match="part"):
        tiny_model.part("head")
    hourglass.trainable = False
    try:
        trainable = {id(v) for v in tiny_model.trainable_variables}
        assert trainable == {id(v) for v in tiny_model.part("depth").trainable_variables}
        before_hg = [v.numpy().copy() for v in hourglass.variables]
        before_depth = [v.numpy().copy() for v in tiny_model.depth_regressor.trainable_variables]
        optimizer = keras.optimizers.SGD(0.1)
        with tf.GradientTape() as tape:
            loss = _loss(tiny_model, images, gt, depth, vis)
        grads = tape.gradient(loss, tiny_model.trainable_variables)
        optimizer.apply_gradients(zip(grads, tiny_model.trainable_variables))
        # Frozen: weights and BatchNorm statistics untouched.
        for old, var in zip(before_hg, hourglass.variables):
            np.testing.assert_array_equal(old, var.numpy())
        changed = [
            not np.array_equal(old, var.numpy())
            for old, var in zip(before_depth, tiny_model.depth_regressor.trainable_variables)
        ]
        assert any(changed)
    finally:
        hourglass.trainable = True


def test_predict_sequences_input_equals_the_validation_input(tmp_path):
    """TP-Net's training predictions must see the person at the scale SAP-Net was trained on."""
    import cv2

    from keras_pose3d.data import dataset, features
    from keras_pose3d.models import sequence_predictions as predict_sequences

    rng = np.random.default_rng(5)
    # A textured stored crop (not square: 40 x 48) so any geometric mismatch changes pixels.
    pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    jpeg = cv2.imencode(".jpg", pixels)[1].tobytes()
    serialized = features.encode_example(
        {
            "image_jpeg": jpeg,
            "joints_2d": rng.uniform(5, 35, (16, 2)),
            "visibility": np.ones(16),
            "joints_3d": rng.normal(0, 200, (16, 3)) + [0, 0, 4000.0],
            "has_3d": True,
            "intrinsics": np.array([70.0, 72.0, 23.0, 19.5]),
            "distortion": None,
            "box": np.array([0.0, 0, 48, 40]),
            "dataset": "h36m",
            "subject": "S9",
            "sequence": "Walk 1",
            "action": "Walk",
            "camera": "c1",
            "frame": 7,
            "orig_size": np.array([100, 100]),
        }
    )
    path = tmp_path / "v.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as w:
        w.write(serialized)
    size = 16
    got = predict_sequences._prepare(features.parse_example(tf.constant(serialized)), size)
    inputs, targets = next(
        iter(
            dataset.make_dataset(
                kc.DataConfig(
                    train_files=(str(path),),
                    val_files=(str(path),),
                    input_size=size,
                    heatmap_size=4,
                ),
                split="validation",
                batch_size=1,
            )
        )
    )
    np.testing.assert_array_equal(got["image"].numpy(), inputs["image"][0].numpy())
    np.testing.assert_array_equal(got["intrinsics"].numpy(), targets["intrinsics"][0].numpy())
    # Hand value: the input covers the central 48 / 1.75 px, so fx scales by 16 * 1.75 / 48 and
    # the stored-crop centre (23.5, 19.5) goes to the input centre (7.5, 7.5).
    s = size * features.PERSON_MARGIN / 48
    np.testing.assert_allclose(
        got["intrinsics"].numpy(), [70 * s, 72 * s, 7.5 + (23.0 - 23.5) * s, 7.5], rtol=1e-5
    )


# ----------------------------------------------------------------------------------------------
# The paper-size network against Zhou et al.'s (github.com/xingyizhou/pose-hg-3d,
# src/models/hg-reg.lua and opts.lua: nStack 2, nFeats 256, nModules 2, nRegModules 2).
# Hand count: a conv has k*k*cin*cout + cout parameters, a BatchNorm 2*c (gamma, beta), a
# bottleneck Residual(cin, cout) BN(cin), conv1x1 -> cout/2, BN, conv3x3, BN, conv1x1 -> cout,
# plus a 1x1 projection when cin != cout.
def _conv(k, cin, cout):
    return k * k * cin * cout + cout


def _residual_params(cin, cout):
    half = cout // 2
    skip = _conv(1, cin, cout) if cin != cout else 0
    batch_norms = 2 * cin + 2 * half + 2 * half
    return batch_norms + _conv(1, cin, half) + _conv(3, half, half) + _conv(1, half, cout) + skip


def _residual_macs(cin, cout, side):
    half = cout // 2
    skip = cin * cout if cin != cout else 0
    return side * side * (cin * half + 9 * half * half + half * cout + skip)


def _zhou_params(m, f=256, joints=16, stacks=2, levels=4, reg_blocks=4, reg_modules=2):
    """Zhou et al.'s network with m = nModules (f = nFeats, stacks = nStack)."""
    stem = _conv(7, 3, f // 4) + 2 * (f // 4)  # 7x7 stride-2 conv + BN
    stem += _residual_params(f // 4, f // 2) + _residual_params(f // 2, f // 2)
    stem += _residual_params(f // 2, f)
    hourglass = (3 * levels + 1) * m * _residual_params(f, f)  # up1, low1, low3 per level; low2
    per_stack = hourglass + m * _residual_params(f, f) + _conv(1, f, f) + 2 * f  # + lin
    # Heatmap head, then ll_ and tmpOut_: after every stack, the last too (its sum is the
    # regressor's input; here those two convs live in DepthRegressor, combine="sum").
    per_stack += _conv(1, f, joints) + _conv(1, f, f) + _conv(1, joints, f)
    regressor = reg_blocks * reg_modules * _residual_params(f, f) + _conv(1, 4 * 4 * f, joints)
    return stem + stacks * per_stack + regressor


def _zhou_macs(m, f=256, joints=16, stacks=2, levels=4, reg_blocks=4, reg_modules=2):
    """Multiply-accumulates of one 256x256 image (stem at 128 px, the rest from 64 px down)."""
    stem = 128 * 128 * 7 * 7 * 3 * (f // 4) + _residual_macs(f // 4, f // 2, 128)
    stem += _residual_macs(f // 2, f // 2, 64) + _residual_macs(f // 2, f, 64)
    sides = [64 >> level for level in range(levels)]  # 64, 32, 16, 8
    # Per level: up1 at the level's side, low1 and low3 at half of it; low2 at the 4x4 bottom.
    hourglass = m * sum(_residual_macs(f, f, s) + 2 * _residual_macs(f, f, s // 2) for s in sides)
    hourglass += m * _residual_macs(f, f, sides[-1] // 2)
    per_stack = hourglass + m * _residual_macs(f, f, 64)
    per_stack += 64 * 64 * (f * f + f * joints + f * f + joints * f)  # lin, head, ll_, tmpOut_
    regressor = reg_modules * sum(_residual_macs(f, f, s) for s in sides) + 4 * 4 * f * joints
    return stem + stacks * per_stack + regressor


def _model_from_config(path: pathlib.Path, **overrides) -> tuple[SAPNet, kc.Config]:
    cfg = kc.load_config(path)
    m = dataclasses.asdict(cfg.model) | overrides
    model = SAPNet(**m, input_size=cfg.data.input_size, heatmap_size=cfg.data.heatmap_size)
    return model, cfg


def _residual_count(model: SAPNet) -> int:
    # Every 3x3 convolution of SAP-Net is the middle conv of a bottleneck Residual.
    return sum(1 for v in model.trainable_weights if tuple(v.shape[:2]) == (3, 3))


@pytest.fixture(scope="module")
def paper_model() -> SAPNet:
    model, cfg = _model_from_config(ROOT / "configs" / "h36m.yaml")
    assert (cfg.data.input_size, cfg.data.heatmap_size, cfg.model.num_modules) == (256, 64, 2)
    return model


def test_hand_counts_match_zhous_published_network():
    # 14,429,104: the count of Zhou et al.'s hg3d; the hand formula must reproduce it first.
    assert _zhou_params(2) == 14_429_104
    assert _zhou_params(2) - _zhou_params(1) == 28 * _residual_params(256, 256) == 6_006_784


def test_paper_config_builds_zhous_network(paper_model):
    assert trainable_parameters(paper_model) == _zhou_params(2) == 14_429_104
    # 3 stem + 2 stacks x (13 places x 2 in the hourglass + 2 after it) + 4 x 2 in the regressor.
    assert _residual_count(paper_model) == 3 + 2 * (13 * 2 + 2) + 8 == 67


@pytest.mark.slow  # traces the full 256x256 graph: ~10 s idle, ~30 s on a loaded 2-core CPU
def test_paper_model_forward_flops(paper_model):
    """Convolutions + dense of one 256x256 image, 1 MAC = 2 FLOPs: TensorFlow's profiler on the
    traced graph equals the hand count (which also places every residual at its resolution)."""
    flops = forward_flops(paper_model, 256)
    assert flops == 2 * _zhou_macs(2) == 32_329_826_304


def test_one_module_per_place_is_the_lighter_network():
    model, _ = _model_from_config(ROOT / "configs" / "h36m.yaml", num_modules=1)
    assert _residual_count(model) == 3 + 2 * (13 + 1) + 8 == 39
    assert trainable_parameters(model) == _zhou_params(1) == 8_422_320
