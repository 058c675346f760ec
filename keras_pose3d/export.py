"""Export trained models as SavedModels in TF-Serving's versioned layout (and ONNX).

    python -m keras_pose3d.export --run RUN_DIR [--out saved_models] [--onnx]

reads `RUN_DIR/sap_net.keras` (and `RUN_DIR/tp_net.keras` when present) and writes

    saved_models/sap_net/<v>/    SAP-Net serving graphs (`serving.signatures.SAP_NET_SIGNATURES`)
    saved_models/tp_net/<v>/     TP-Net `refine`
    saved_models/pipeline/<v>/   SAP-Net + decode to mm + online TP-Net (`predict_jpeg_online`)
    saved_models/models.config   TF-Serving model_config_list for multi-model mode
    saved_models/onnx/...        with --onnx: float-image SAP-Net and TP-Net graphs

<v> is the next free integer version, so TF-Serving picks a new export up without a restart.
Models trained under a mixed-precision policy are rebuilt from their config under float32 and
the weights copied over (`load_float32`): the serving graphs and ONNX start from float32.
"""

from __future__ import annotations

import argparse
import copy
import pathlib
import sys
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_pose3d.models import sap_net as _sap_net  # noqa: F401  (registers SAPNet)
from keras_pose3d.models import tp_net as _tp_net  # noqa: F401  (registers TPNet)
from keras_pose3d.serving import signatures

SAP_NET_FILE = "sap_net.keras"
TP_NET_FILE = "tp_net.keras"
MODEL_NAMES = ("sap_net", "tp_net", "pipeline")


# ----------------------------------------------------------------------------------------------
# Loading under float32.
# ----------------------------------------------------------------------------------------------
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
        raise FileNotFoundError(f"model file {path} not found (expected a keras.saving .keras file)")
    model = keras.saving.load_model(path, compile=False)
    return to_float32(model, example_input(model))


def example_input(model: keras.Model) -> np.ndarray:
    """A zero batch of one that the model accepts (SAPNet: image; TPNet: window of poses)."""
    if hasattr(model, "window"):
        return np.zeros((1, model.window, model.num_joints, 3), np.float32)
    if hasattr(model, "input_size"):
        return np.zeros((1, model.input_size, model.input_size, 3), np.float32)
    raise TypeError(f"cannot build {type(model).__name__}: expected a SAPNet or TPNet")


# ----------------------------------------------------------------------------------------------
# SavedModels.
# ----------------------------------------------------------------------------------------------
def next_version(model_dir: str | pathlib.Path) -> int:
    """Next free integer version under `model_dir` (1 when empty), TF-Serving's layout."""
    model_dir = pathlib.Path(model_dir)
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def save_versioned(module: tf.Module, sigs: dict, base: str | pathlib.Path, name: str) -> pathlib.Path:
    """Save `module` with signatures `sigs` as base/name/<next version>/ and return that path."""
    model_dir = pathlib.Path(base) / name
    path = model_dir / str(next_version(model_dir))
    tf.saved_model.save(module, str(path), signatures=sigs)
    return path


def export_sap_net(sap_net: keras.Model, base: str | pathlib.Path, name: str = "sap_net",
                   tp_net: keras.Model | None = None) -> pathlib.Path:
    """SAP-Net (with an online TP-Net: the composed pipeline) -> base/name/<v>/."""
    module = signatures.SAPNetServing(sap_net, tp_net)
    return save_versioned(module, module.signatures(), base, name)


def export_tp_net(tp_net: keras.Model, base: str | pathlib.Path) -> pathlib.Path:
    """TP-Net -> base/tp_net/<v>/ with the `refine` signature."""
    module = signatures.TPNetServing(tp_net)
    return save_versioned(module, module.signatures(), base, "tp_net")


def models_config(base: str | pathlib.Path, names: Sequence[str],
                  model_base_path: str = "/models") -> str:
    """TF-Serving `model_config_list` text proto for the models under `base`.

    Args:
        base: the local export root (only used to list what exists).
        names: model names to serve.
        model_base_path: where `base` is mounted inside the serving container.
    """
    entries = []
    for name in names:
        if not (pathlib.Path(base) / name).is_dir():
            raise FileNotFoundError(f"no exported model {name!r} under {base}")
        entries.append(
            "  config {\n"
            f"    name: \"{name}\"\n"
            f"    base_path: \"{model_base_path.rstrip('/')}/{name}\"\n"
            "    model_platform: \"tensorflow\"\n"
            "  }\n"
        )
    return "model_config_list {\n" + "".join(entries) + "}\n"


def export_run(run_dir: str | pathlib.Path, out: str | pathlib.Path = "saved_models",
               onnx: bool = False, models: Sequence[str] = MODEL_NAMES) -> dict[str, pathlib.Path]:
    """Export what a run directory holds; returns {name: exported path}.

    Args:
        run_dir: holds sap_net.keras and optionally tp_net.keras.
        out: export root.
        onnx: also write out/onnx/sap_net.onnx (and tp_net.onnx).
        models: which of MODEL_NAMES to export (tp_net and pipeline need tp_net.keras).
    """
    unknown = sorted(set(models) - set(MODEL_NAMES))
    if unknown:
        raise ValueError(f"unknown models {unknown}; expected a subset of {MODEL_NAMES}")
    run_dir, out = pathlib.Path(run_dir), pathlib.Path(out)
    sap = load_float32(run_dir / SAP_NET_FILE)
    tp = load_float32(run_dir / TP_NET_FILE) if (run_dir / TP_NET_FILE).is_file() else None
    paths = {}
    if "sap_net" in models:
        paths["sap_net"] = export_sap_net(sap, out)
    if tp is not None:
        if "tp_net" in models:
            paths["tp_net"] = export_tp_net(tp, out)
        if "pipeline" not in models:
            pass
        elif tp.mode == "online":
            paths["pipeline"] = export_sap_net(sap, out, name="pipeline", tp_net=tp)
        else:
            print(f"skipping the pipeline: it needs an online TP-Net, {TP_NET_FILE} is {tp.mode}")
    if onnx:
        from keras_pose3d.serving import onnx_export

        paths["sap_net_onnx"] = onnx_export.export_sap_net_onnx(sap, out / "onnx" / "sap_net.onnx")
        if tp is not None:
            paths["tp_net_onnx"] = onnx_export.export_tp_net_onnx(tp, out / "onnx" / "tp_net.onnx")
    served = [n for n in MODEL_NAMES if n in paths]
    config_path = out / "models.config"
    config_path.write_text(models_config(out, served))
    paths["models.config"] = config_path
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="run directory with sap_net.keras")
    parser.add_argument("--out", default="saved_models", help="export root (TF-Serving layout)")
    parser.add_argument("--onnx", action="store_true", help="also write ONNX graphs")
    parser.add_argument("--models", default=",".join(MODEL_NAMES),
                        help="comma-separated subset of sap_net,tp_net,pipeline")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    for name, path in export_run(args.run, args.out, args.onnx, models).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
