"""`serving.optimize.copy_model` rebuilds a float32 model under a mixed global policy: the main
job exports in the training process, whose policy may be mixed_bfloat16."""

import keras
import numpy as np

from keras_pose3d import config
from keras_pose3d.serving import optimize
from keras_pose3d.training.trainer import build_model


def test_copy_is_float32_and_equal_under_a_mixed_global_policy():
    cfg = config.load_config(
        "configs/quickstart.yaml",
        ["model.num_features=16", "model.num_stacks=1", "model.depth_blocks=1"],
    )
    model = build_model(cfg)
    x = np.random.default_rng(0).uniform(0, 1, (2, 64, 64, 3)).astype("float32")
    model(x)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        copy = optimize.copy_model(model, x[:1])
        assert keras.config.dtype_policy().name == "mixed_bfloat16"  # restored
    finally:
        keras.config.set_dtype_policy(previous)
    assert {layer.dtype_policy.name for layer in copy._flatten_layers()} == {"float32"}
    for key in ("heatmaps", "pose_3d"):
        np.testing.assert_array_equal(
            np.asarray(copy(x, training=False)[key]), np.asarray(model(x, training=False)[key])
        )
