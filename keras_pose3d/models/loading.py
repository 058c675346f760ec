"""Loading trained `.keras` models under float32, whatever policy they were trained under.

Models trained under a mixed-precision policy are rebuilt from their config under float32 and
the weights copied over: the serving graphs, ONNX, inference and offline prediction start from
float32 (tf2onnx mis-converts mixed-precision casts, and host-side NumPy wants float32).
"""

from __future__ import annotations

import copy
import pathlib

import keras
import numpy as np

from keras_pose3d.models import sap_net as _sap_net  # noqa: F401  (registers SAPNet)
from keras_pose3d.models import tp_net as _tp_net  # noqa: F401  (registers TPNet)

# File names of the trained models in a run directory (`train` writes SAP-Net, `temporal_train`
# TP-Net; `export`, `evaluate`, `infer` and `predict_sequences` read them).
SAP_NET_FILE = "sap_net.keras"
TP_NET_FILE = "tp_net.keras"


def _float32_config(config):
    """A copy of a serialised Keras config with every dtype policy replaced by float32."""
    if isinstance(config, dict):
        out = {}
        for key, value in config.items():
            if key == "dtype" and (
                (isinstance(value, dict) and value.get("class_name") == "DTypePolicy")
                or (isinstance(value, str) and value.startswith("mixed_"))
            ):
                out[key] = "float32"
            else:
                out[key] = _float32_config(value)
        return out
    if isinstance(config, list):
        return [_float32_config(v) for v in config]
    return copy.deepcopy(config)


def to_float32(model: keras.Model, example_input: np.ndarray) -> keras.Model:
    """The same model rebuilt under float32 with the same weights (itself if already float32).

    Args:
        model: a built Keras model, possibly under a mixed-precision policy.
        example_input: an input batch to build the rebuilt model with.
    """
    policies = {layer.dtype_policy.name for layer in model._flatten_layers()}
    if policies <= {"float32"}:
        return model
    config = _float32_config(keras.saving.serialize_keras_object(model))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        rebuilt = keras.saving.deserialize_keras_object(config)
        rebuilt(example_input)
    finally:
        keras.config.set_dtype_policy(previous)
    rebuilt.set_weights([np.asarray(w, np.float32) for w in model.get_weights()])
    return rebuilt


def load_float32(path: str | pathlib.Path) -> keras.Model:
    """Load a `.keras` SAPNet or TPNet and return a float32, built copy."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"model file {path} not found (expected a keras.saving .keras file)"
        )
    model = keras.saving.load_model(path, compile=False)
    return to_float32(model, example_input(model))


def example_input(model: keras.Model) -> np.ndarray:
    """A zero batch of one that the model accepts (SAPNet: image; TPNet: window of poses)."""
    if hasattr(model, "window"):
        return np.zeros((1, model.window, model.num_joints, 3), np.float32)
    if hasattr(model, "input_size"):
        return np.zeros((1, model.input_size, model.input_size, 3), np.float32)
    raise TypeError(f"cannot build {type(model).__name__}: expected a SAPNet or TPNet")
