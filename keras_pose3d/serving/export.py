"""Export trained models as SavedModels in TF-Serving's versioned layout (and ONNX).

The library behind `python -m keras_pose3d.export` (also called by `training/run.py` at the end
of a run). `export_run` reads `RUN_DIR/sap_net.keras` and a TP-Net (`tp_net`, default
`RUN_DIR/tp_net.keras` when present; `training.temporal` writes it to its own run_dir,
`runs/temporal/` by default) and writes

    saved_models/sap_net/<v>/    SAP-Net serving graphs (`serving.signatures.SAP_NET_SIGNATURES`)
    saved_models/tp_net/<v>/     TP-Net `refine`
    saved_models/pipeline/<v>/   SAP-Net + decode to mm + online TP-Net (`predict_jpeg_online`)
    saved_models/models.config   TF-Serving model_config_list for multi-model mode
    saved_models/batching_parameters.txt   TF-Serving --batching_parameters_file
    saved_models/onnx/...        with onnx=True: float-image SAP-Net and TP-Net graphs

Each version folder also holds its model's `batching_params.pbtxt` (TF-Serving reads it with
`--enable_per_model_batching_parameters`); the server-wide file is that of the costliest model
served. The serving graphs run SAP-Net with its BatchNorm folded into the convolutions and
TP-Net at `tp_precision` (`serving.optimize`: how, and the parity each is checked to before
it is written; a model that fails is refused with the difference named).

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

import os
import pathlib
import shutil
from collections.abc import Sequence

import keras
import tensorflow as tf

from keras_pose3d import atomic_files
from keras_pose3d.models import sap_net as _sap_net  # noqa: F401  (registers SAPNet)
from keras_pose3d.models import tp_net as _tp_net  # noqa: F401  (registers TPNet)
from keras_pose3d.models.complexity import forward_flops
from keras_pose3d.models.loading import SAP_NET_FILE, TP_NET_FILE, load_float32
from keras_pose3d.serving import optimize, signatures

MODEL_NAMES = ("sap_net", "tp_net", "pipeline")
# TF-Serving batching: the server-wide file beside models.config (--batching_parameters_file)
# and each version folder's own (--enable_per_model_batching_parameters).
BATCHING_FILE = "batching_parameters.txt"
PER_MODEL_BATCHING_FILE = "batching_params.pbtxt"
SAP_NET_MAX_BATCH = 32  # the largest batch benchmarks/serving.py measures
TP_NET_MAX_BATCH = 128
# What the serving graphs are built with (docs/benchmarks.md, "Serving", for the measurements):
# BatchNorm folded into the convolutions; no XLA (it did not pay on the CPU measured); TP-Net in
# float32 unless asked for bfloat16, which needs AVX512-BF16 / AMX on the serving machine.
FOLD_BATCH_NORMS = True
JIT_COMPILE = False
TP_NET_PRECISION = "float32"


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
    module: tf.Module,
    sigs: dict,
    base: str | pathlib.Path,
    name: str,
    extra_files: dict[str, str] | None = None,
) -> pathlib.Path:
    """Save `module` with signatures `sigs` as base/name/<next version>/ and return that path.

    Saved to a temporary folder, then renamed into place (module docstring): base/name never
    holds a half-written version. On any error the temporary folder is removed. `extra_files`
    ({file name: text}) are written into the version folder before it is published (e.g.
    TF-Serving's per-model `batching_params.pbtxt`).
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
        for file_name, text in (extra_files or {}).items():
            (tmp / file_name).write_text(text)
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


def serving_sap_net(sap_net: keras.Model, fold: bool = FOLD_BATCH_NORMS) -> keras.Model:
    """The SAP-Net the serving graphs run: BatchNorm folded (`optimize.fold_batch_norms`) and
    checked against `sap_net` on the probe batch (`optimize.check_parity`), or `sap_net`.

    Raises:
        optimize.ParityError: the folded model leaves `optimize.FOLD_TOLERANCE`.
    """
    if not fold:
        return sap_net
    folded, _ = optimize.fold_batch_norms(sap_net)
    probe = optimize.sap_net_probe(int(sap_net.input_size))
    optimize.check_parity(sap_net, lambda x: folded(x, training=False), probe)
    return folded


def serving_tp_net(tp_net: keras.Model, precision: str = TP_NET_PRECISION) -> keras.Model:
    """The TP-Net the serving graphs run: `tp_net` or its reduced-precision copy, checked
    against `tp_net` on probe windows (`optimize.check_tp_parity`)."""
    served = optimize.reduced_precision_tp_net(tp_net, precision)
    if served is not tp_net:
        probe = optimize.tp_net_probe(tp_net.window, tp_net.num_joints)
        optimize.check_tp_parity(tp_net, lambda x: served(x, training=False), probe)
    return served


def sap_net_batching(sap_net: keras.Model, cores: int | None = None) -> dict:
    """TF-Serving batching parameters sized for SAP-Net (`optimize.batching_parameters`)."""
    flops = forward_flops(sap_net, int(sap_net.input_size))
    return optimize.batching_parameters(flops, SAP_NET_MAX_BATCH, cores or os.cpu_count() or 1)


def tp_net_batching(tp_net: keras.Model, cores: int | None = None) -> dict:
    """TF-Serving batching parameters sized for TP-Net (`optimize.batching_parameters`)."""
    flops = optimize.tp_net_flops(tp_net)
    return optimize.batching_parameters(flops, TP_NET_MAX_BATCH, cores or os.cpu_count() or 1)


def export_sap_net(
    sap_net: keras.Model,
    base: str | pathlib.Path,
    name: str = "sap_net",
    tp_net: keras.Model | None = None,
    fold: bool = FOLD_BATCH_NORMS,
    jit_compile: bool = JIT_COMPILE,
    tp_precision: str = TP_NET_PRECISION,
    cores: int | None = None,
) -> pathlib.Path:
    """SAP-Net (with an online TP-Net: the composed pipeline) -> base/name/<v>/.

    `sap_net` is the float32 Keras model; the graphs run its BatchNorm-folded copy when `fold`
    (refused unless within `optimize.FOLD_TOLERANCE` of it, and checked once more through the
    traced serving network), compiled with XLA when `jit_compile`, with the TP-Net at
    `tp_precision`. The version folder gets the model's `batching_params.pbtxt`.
    """
    served = serving_sap_net(sap_net, fold)
    tp = None if tp_net is None else serving_tp_net(tp_net, tp_precision)
    module = signatures.SAPNetServing(served, tp, jit_compile=jit_compile)
    if fold or jit_compile:
        probe = optimize.sap_net_probe(int(sap_net.input_size))
        optimize.check_parity(sap_net, module.network, probe, what="the SAP-Net serving graph")
    batching = optimize.batching_text(sap_net_batching(sap_net, cores))
    return save_versioned(
        module, module.signatures(), base, name, extra_files={PER_MODEL_BATCHING_FILE: batching}
    )


def export_tp_net(
    tp_net: keras.Model,
    base: str | pathlib.Path,
    precision: str = TP_NET_PRECISION,
    cores: int | None = None,
) -> pathlib.Path:
    """TP-Net -> base/tp_net/<v>/ with the `refine` signature, at `precision` (float32 or
    bfloat16: refused beyond `optimize.TP_NET_BF16_MEAN_MM` / `TP_NET_BF16_MAX_MM` of float32)."""
    module = signatures.TPNetServing(serving_tp_net(tp_net, precision))
    batching = optimize.batching_text(tp_net_batching(tp_net, cores))
    return save_versioned(
        module, module.signatures(), base, "tp_net", extra_files={PER_MODEL_BATCHING_FILE: batching}
    )


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
    fold: bool = FOLD_BATCH_NORMS,
    jit_compile: bool = JIT_COMPILE,
    tp_precision: str = TP_NET_PRECISION,
    cores: int | None = None,
) -> dict[str, pathlib.Path]:
    """Export what a run directory holds; returns {name: exported path}.

    Args:
        run_dir: holds sap_net.keras (and tp_net.keras when `tp_net` is not given).
        out: export root.
        onnx: also write out/onnx/sap_net.onnx (and tp_net.onnx).
        models: which of MODEL_NAMES to export; None: every model the inputs allow.
        tp_net: TP-Net .keras file (e.g. temporal_train's runs/temporal/tp_net.keras); None:
            run_dir/tp_net.keras when present.
        fold: fold BatchNorm into the convolutions of the serving graphs (`optimize`).
        jit_compile: compile SAP-Net's serving network with XLA.
        tp_precision: "float32" or "bfloat16" TP-Net weights in the tp_net and pipeline graphs.
        cores: the serving machine's CPU cores, for the batching parameters (default: this
            machine's).

    Besides the SavedModels, writes out/batching_parameters.txt (TF-Serving's
    `--batching_parameters_file`): the per-model parameters of the costliest model served
    (`batching_parameters_for`).

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
    if tp_precision not in optimize.REDUCED_PRECISIONS:
        raise ValueError(
            f"tp_precision must be one of {optimize.REDUCED_PRECISIONS}. Received: {tp_precision!r}"
        )
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
    options = {"fold": fold, "jit_compile": jit_compile, "tp_precision": tp_precision}
    options["cores"] = cores
    if "sap_net" in models:
        paths["sap_net"] = export_sap_net(sap, out, **options)
    if tp is not None:
        if "tp_net" in models:
            paths["tp_net"] = export_tp_net(tp, out, precision=tp_precision, cores=cores)
        if "pipeline" not in models:
            pass
        elif tp.mode == "online":
            paths["pipeline"] = export_sap_net(sap, out, name="pipeline", tp_net=tp, **options)
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
    batching = batching_parameters_for(out)
    if batching is not None:
        paths["batching_parameters"] = atomic_files.write_text(
            out / BATCHING_FILE, optimize.batching_text(batching)
        )
    return paths


def batching_parameters_for(base: str | pathlib.Path) -> dict | None:
    """The server-wide batching parameters for every model under `base`: those of the model
    whose batch-1 cost is largest (the longest `batch_timeout_micros`, then the smallest
    `max_batch_size`), read from each model's latest version's `batching_params.pbtxt`.

    TF-Serving applies one file to every model; sized for the costliest, a cheap model's
    request waits at most 1 ms. None when no version carries the file (older exports).
    """
    found = []
    for name in exported_models(base):
        versions = [
            p
            for p in (pathlib.Path(base) / name).glob("*")
            if p.is_dir() and p.name.isdigit() and (p / "saved_model.pb").is_file()
        ]
        latest = max(versions, key=lambda p: int(p.name))
        path = latest / PER_MODEL_BATCHING_FILE
        if path.is_file():
            found.append(optimize.parse_batching_text(path.read_text()))
    if not found:
        return None
    return max(found, key=lambda p: (p["batch_timeout_micros"], -p["max_batch_size"]))
