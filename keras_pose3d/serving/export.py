"""Export trained models as SavedModels in TF-Serving's versioned layout (and ONNX).

The library behind `python -m keras_pose3d.export` (also called by `training/run.py` at the end
of a run). `export_run` reads `RUN_DIR/sap_net.keras` and a TP-Net (`tp_net`, default
`RUN_DIR/tp_net.keras` when present; `training.temporal` writes it to its own run_dir,
`runs/temporal/` by default) and writes

    saved_models/sap_net/<v>/    SAP-Net serving graphs (`serving.signatures.SAP_NET_SIGNATURES`)
    saved_models/tp_net/<v>/     TP-Net `refine`
    saved_models/pipeline/<v>/   SAP-Net + decode to mm + online TP-Net (`predict_jpeg_online`)
    saved_models/models.config   TF-Serving model_config_list for multi-model mode
    saved_models/onnx/...        with onnx=True: float-image SAP-Net and TP-Net graphs

Without `models` every model the inputs allow is exported (a missing TP-Net prints "no
tp_net.keras: exporting sap_net only"); a model named in `models` that cannot be exported is
an error. models.config lists every model folder under the export root, from this call or
earlier ones, so a partial export never drops a served model.
<v> is the next free integer version, so TF-Serving picks a new export up without a restart.

Atomic: TF-Serving's default policy loads the highest all-digit version folder as soon as it
appears, so a version folder must never exist half written. Each SavedModel is saved to a
temporary folder next to it (`atomic_files.temporary_name`: ".tmp-<host>-<pid>-...", a name
TF-Serving ignores, on the same filesystem) and renamed to <v> when complete; a killed export
leaves only that temporary folder, which the next export on the host removes once its writer is
gone. ONNX files and models.config are written the same way (temporary file + rename), so a
polling server never reads a half-written config. models.config is built with TF-Serving's own
protos (`tensorflow_serving.config.model_server_config_pb2`, text_format) when
tensorflow-serving-api is installed, otherwise written with protobuf's text-format escaping, so
any folder name (quotes, backslashes, non-ASCII) stays one well-formed entry. An all-digit
folder without saved_model.pb (left by an export before this was atomic) is reported, not
touched.
Models trained under a mixed-precision policy are rebuilt from their config under float32 and
the weights copied over (`models.loading.load_float32`): the serving graphs and ONNX start from float32.
"""

from __future__ import annotations

import pathlib
import shutil
from collections.abc import Sequence

import keras
import tensorflow as tf

from keras_pose3d import atomic_files
from keras_pose3d.models import sap_net as _sap_net  # noqa: F401  (registers SAPNet)
from keras_pose3d.models import tp_net as _tp_net  # noqa: F401  (registers TPNet)
from keras_pose3d.models.loading import SAP_NET_FILE, TP_NET_FILE, load_float32
from keras_pose3d.serving import signatures

MODEL_NAMES = ("sap_net", "tp_net", "pipeline")


# ----------------------------------------------------------------------------------------------
# SavedModels.
# ----------------------------------------------------------------------------------------------
def next_version(model_dir: str | pathlib.Path) -> int:
    """Next free integer version under `model_dir` (1 when empty), TF-Serving's layout."""
    model_dir = pathlib.Path(model_dir)
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def remove_stale_temporaries(folder: str | pathlib.Path) -> list[pathlib.Path]:
    """Delete what killed exports on this host left in `folder` (`atomic_files`); returns them."""
    stale = atomic_files.stale_temporaries(folder)
    for path in stale:
        print(f"removing {path}, left by an interrupted export")
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale


def incomplete_versions(model_dir: str | pathlib.Path) -> list[pathlib.Path]:
    """All-digit version folders without saved_model.pb: TF-Serving would try to load them."""
    model_dir = pathlib.Path(model_dir)
    return sorted(
        p
        for p in model_dir.glob("*")
        if p.is_dir() and p.name.isdigit() and not (p / "saved_model.pb").is_file()
    )


def save_versioned(
    module: tf.Module, sigs: dict, base: str | pathlib.Path, name: str
) -> pathlib.Path:
    """Save `module` with signatures `sigs` as base/name/<next version>/ and return that path.

    Saved to a temporary folder, then renamed into place (module docstring): base/name never
    holds a half-written version. On any error the temporary folder is removed.
    """
    model_dir = pathlib.Path(base) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(model_dir)
    for bad in incomplete_versions(model_dir):
        print(
            f"warning: {bad} has no saved_model.pb (a broken export); TF-Serving may try to "
            "load it if it is the highest version: delete it"
        )
    tmp = atomic_files.temporary_name(model_dir / "export")
    try:
        tf.saved_model.save(module, str(tmp), signatures=sigs)
        # Another export may take a version number meanwhile: then the next free one.
        for _ in range(100):
            path = model_dir / str(next_version(model_dir))
            try:
                atomic_files.publish_folder(tmp, path)
                return path
            except FileExistsError:
                continue
        raise FileExistsError(f"no free version folder under {model_dir} after 100 tries")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def export_sap_net(
    sap_net: keras.Model,
    base: str | pathlib.Path,
    name: str = "sap_net",
    tp_net: keras.Model | None = None,
) -> pathlib.Path:
    """SAP-Net (with an online TP-Net: the composed pipeline) -> base/name/<v>/."""
    module = signatures.SAPNetServing(sap_net, tp_net)
    return save_versioned(module, module.signatures(), base, name)


def export_tp_net(tp_net: keras.Model, base: str | pathlib.Path) -> pathlib.Path:
    """TP-Net -> base/tp_net/<v>/ with the `refine` signature."""
    module = signatures.TPNetServing(tp_net)
    return save_versioned(module, module.signatures(), base, "tp_net")


def exported_models(base: str | pathlib.Path) -> list[str]:
    """Model folders under `base` holding at least one version with a saved_model.pb.

    MODEL_NAMES first in their order, then any other model folder by name.
    """
    base = pathlib.Path(base)
    found = [
        p.name
        for p in base.glob("*")
        if p.is_dir()
        and any(v.name.isdigit() and (v / "saved_model.pb").is_file() for v in p.glob("*"))
    ]
    return [n for n in MODEL_NAMES if n in found] + sorted(n for n in found if n not in MODEL_NAMES)


def models_config(
    base: str | pathlib.Path, names: Sequence[str] | None = None, model_base_path: str = "/models"
) -> str:
    """TF-Serving `model_config_list` text proto for the models under `base`.

    Built with TF-Serving's ModelServerConfig proto when tensorflow-serving-api is importable,
    else written with protobuf's text-format string escaping (same text for plain names).

    Args:
        base: the local export root (only used to list what exists).
        names: model names to serve; None: every exported model folder (`exported_models`).
        model_base_path: where `base` is mounted inside the serving container.
    """
    names = exported_models(base) if names is None else names
    entries = []
    for name in names:
        if not (pathlib.Path(base) / name).is_dir():
            raise FileNotFoundError(f"no exported model {name!r} under {base}")
        entries.append((name, f"{model_base_path.rstrip('/')}/{name}"))
    try:
        from tensorflow_serving.config import model_server_config_pb2
    except ImportError:
        return _models_config_text(entries)
    from google.protobuf import text_format

    config = model_server_config_pb2.ModelServerConfig()
    for name, base_path in entries:
        entry = config.model_config_list.config.add()
        entry.name, entry.base_path, entry.model_platform = name, base_path, "tensorflow"
    return text_format.MessageToString(config, as_utf8=True)


def _models_config_text(entries: Sequence[tuple[str, str]]) -> str:
    """The text format of ModelServerConfig without its proto (what text_format would write)."""
    from google.protobuf import text_encoding

    quote = lambda text: '"' + text_encoding.CEscape(text, as_utf8=True) + '"'
    body = "".join(
        "  config {\n"
        f"    name: {quote(name)}\n"
        f"    base_path: {quote(base_path)}\n"
        '    model_platform: "tensorflow"\n'
        "  }\n"
        for name, base_path in entries
    )
    return "model_config_list {\n" + body + "}\n"


def export_run(
    run_dir: str | pathlib.Path,
    out: str | pathlib.Path = "saved_models",
    onnx: bool = False,
    models: Sequence[str] | None = None,
    tp_net: str | pathlib.Path | None = None,
) -> dict[str, pathlib.Path]:
    """Export what a run directory holds; returns {name: exported path}.

    Args:
        run_dir: holds sap_net.keras (and tp_net.keras when `tp_net` is not given).
        out: export root.
        onnx: also write out/onnx/sap_net.onnx (and tp_net.onnx).
        models: which of MODEL_NAMES to export; None: every model the inputs allow.
        tp_net: TP-Net .keras file (e.g. temporal_train's runs/temporal/tp_net.keras); None:
            run_dir/tp_net.keras when present.

    Raises:
        FileNotFoundError: run_dir, sap_net.keras, or a TP-Net that was given or that
            `models` names (tp_net, pipeline) is missing.
        ValueError: unknown names in `models`; pipeline requested with a semi-online TP-Net.
    """
    explicit = models is not None
    models = list(MODEL_NAMES) if models is None else list(models)
    unknown = sorted(set(models) - set(MODEL_NAMES))
    if unknown:
        raise ValueError(f"unknown models {unknown}; expected a subset of {MODEL_NAMES}")
    if not models:
        raise ValueError(f"--models is empty; expected a subset of {MODEL_NAMES}")
    run_dir, out = pathlib.Path(run_dir), pathlib.Path(out)
    remove_stale_temporaries(out)  # a models.config or an ONNX file of a killed export
    remove_stale_temporaries(out / "onnx")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} not found (expected {SAP_NET_FILE})")
    tp_path = pathlib.Path(tp_net) if tp_net is not None else run_dir / TP_NET_FILE
    needs_tp = explicit and bool({"tp_net", "pipeline"} & set(models))
    if not tp_path.is_file() and (tp_net is not None or needs_tp):
        # Checked before anything is written: a failed export leaves the root as it was.
        raise FileNotFoundError(
            f"TP-Net {tp_path} not found, needed for {sorted({'tp_net', 'pipeline'} & set(models))}"
            f" (train it with keras_pose3d.temporal_train and pass --tp-net RUN/{TP_NET_FILE})"
        )
    tp = load_float32(tp_path) if tp_path.is_file() else None
    if tp is None:
        print(f"no {TP_NET_FILE}: exporting sap_net only ({tp_path} not found)")
    if tp is not None and explicit and "pipeline" in models and tp.mode != "online":
        raise ValueError(f"the pipeline needs an online TP-Net; {tp_path} is {tp.mode}")
    sap = None
    if "sap_net" in models or ("pipeline" in models and tp is not None) or onnx:
        sap = load_float32(run_dir / SAP_NET_FILE)
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
            print(f"skipping the pipeline: it needs an online TP-Net, {tp_path} is {tp.mode}")
    if onnx:
        from keras_pose3d.serving import onnx_export

        paths["sap_net_onnx"] = onnx_export.export_sap_net_onnx(sap, out / "onnx" / "sap_net.onnx")
        if tp is not None:
            paths["tp_net_onnx"] = onnx_export.export_tp_net_onnx(tp, out / "onnx" / "tp_net.onnx")
    # Every model under `out`, not only this call's: a partial export keeps the others served.
    config_path = atomic_files.write_text(out / "models.config", models_config(out))
    paths["models.config"] = config_path
    return paths
