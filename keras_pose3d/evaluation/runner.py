"""Evaluation runs: a trained model over validation records, or a stored predictions file.

`evaluate_run` predicts with a run directory's model (or a SavedModel), decodes 3D with the
crop intrinsics and the ground-truth root depth, builds the dataset's tables and writes them
(`tables.write_report`) together with the 3D predictions (`<dataset>_predictions.npz`, the
format of `predictions_file`, so they can be scored again without the model).
`evaluate_predictions` scores a stored file with no model: MPII `preds` against Tompson's
ground truth, or a 3D `.npz` against the records' ground truth. `evaluate` is what the command
line (`keras_pose3d.evaluate`) calls: it checks the flags' combination and picks one of the two.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Sequence

import numpy as np

from keras_pose3d.atomic_files import check_writable
from keras_pose3d.evaluation import h36m, mpi_inf_3dhp, mpii, predictions_file, synthetic
from keras_pose3d.evaluation.predictors import run_predictions, saved_model_predictor
from keras_pose3d.evaluation.records import read_checked_meta, record_id
from keras_pose3d.evaluation.tables import Table, to_markdown, write_report
from keras_pose3d.models.prediction import GraphModel, keras_predictor

DATASETS = ("h36m", "mpi_inf_3dhp", "mpii", "synthetic")
# 3D datasets: arrays {"pred_mm", "gt_mm"} + meta -> (results, tables).
TABLES_3D: dict[str, Callable[..., tuple[dict, list[Table]]]] = {
    "h36m": h36m.tables_from_records,
    "mpi_inf_3dhp": mpi_inf_3dhp.tables_from_records,
    "synthetic": synthetic.tables_from_records,
}


def check_mpii_inputs(
    mpii_gt: str | None, mpii_valid_h5: str | None, need_valid_h5: bool = True
) -> None:
    """Fails before any long pass when the MPII ground-truth files are not given or absent."""
    if not mpii_gt or (need_valid_h5 and not mpii_valid_h5):
        raise ValueError(
            "--dataset mpii needs --mpii-gt (mpii_val_gt_tompson_format.mat: head "
            "boxes are not in the records)"
            + (" and --mpii-valid-h5 (row order)" if need_valid_h5 else "")
        )
    for flag, path in (("--mpii-gt", mpii_gt), ("--mpii-valid-h5", mpii_valid_h5)):
        if path and not pathlib.Path(path).is_file():
            raise FileNotFoundError(f"{flag} {path} not found")


def _report(
    tables: list[Table], results: dict, out: pathlib.Path, dataset: str, header: str, verbose: bool
) -> dict:
    paths = write_report(tables, results, out, dataset, header)
    if verbose:
        print(header + "\n")
        for t in tables:
            print(to_markdown(t))
    return paths


def evaluate_run(
    run_dir: str,
    dataset: str,
    records: str | Sequence[str] | None = None,
    out_dir: str | None = None,
    *,
    saved_model: str | None = None,
    batch_size: int = 32,
    mpii_gt: str | None = None,
    mpii_valid_h5: str | None = None,
    verbose: bool = True,
) -> dict:
    """Evaluates a run directory (or SavedModel) and writes the tables.

    Args:
        run_dir: directory with config.yaml and sap_net.keras.
        dataset: one of DATASETS.
        records: TFRecord glob(s); None = the config's validation patterns
            (`data.val_files`, else `data_dir/validation-*.tfrecord`).
        out_dir: where to write; None = RUN_DIR/eval/<dataset>.
        saved_model: evaluate this SavedModel instead of sap_net.keras.
        batch_size: evaluation batch.
        mpii_gt, mpii_valid_h5: MPII ground truth files (dataset "mpii" only).
        verbose: print the Markdown tables.

    Returns:
        dict with the numbers ("results"), the written paths ("files") and "model".
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}. Received: {dataset!r}")
    if dataset == "mpii":
        check_mpii_inputs(mpii_gt, mpii_valid_h5)
    from keras_pose3d.config import load_config
    from keras_pose3d.data.dataset import corrupt_shards_named, list_files

    run = pathlib.Path(run_dir)
    cfg_path = run / "config.yaml"
    if not cfg_path.exists():
        raise FileNotFoundError(
            f"{cfg_path} not found (run directory contract: config.yaml + sap_net.keras)"
        )
    cfg = load_config(cfg_path)
    patterns = records if records is not None else list(cfg.data.val_patterns())
    if not patterns:
        raise ValueError(f"no records: pass --records or set data.val_files in {cfg_path}")
    files = list_files(patterns)
    out = pathlib.Path(out_dir) if out_dir else run / "eval" / dataset
    check_writable(out)  # a read-only or full target fails before the prediction pass
    with corrupt_shards_named(files):  # a DataLossError names the corrupt shard
        meta = read_checked_meta(files, dataset)
    if saved_model:
        predict, model_desc = saved_model_predictor(saved_model)
        model_desc = f"SavedModel {saved_model} ({model_desc})"
    else:
        from keras_pose3d.models import loading

        # float32 like export and predict_sequences: a mixed-precision run is scored at full
        # precision, through one traced graph.
        model_path = run / loading.SAP_NET_FILE
        predict = keras_predictor(GraphModel(loading.load_float32(model_path)))
        model_desc = str(model_path)
    with corrupt_shards_named(files):
        arrays = run_predictions(
            predict, files, cfg.data.input_size, cfg.data.heatmap_size, batch_size
        )
    arrays["input_size"] = cfg.data.input_size
    if len(meta) != len(arrays["pred_mm"]):
        raise RuntimeError(f"{len(meta)} records read but {len(arrays['pred_mm'])} predicted")
    if dataset == "mpii":
        results, tables = mpii.tables_from_records(arrays, meta, mpii_gt, mpii_valid_h5)
    else:
        results, tables = TABLES_3D[dataset](arrays, meta)
    header = (
        f"# Evaluation: {dataset}\n\nModel: {model_desc}. Records: {len(files)} files, "
        f"{len(meta)} examples. 3D decoded with crop intrinsics and ground-truth root depth."
    )
    paths = _report(
        tables, {"dataset": dataset, "model": model_desc, **results}, out, dataset, header, verbose
    )
    if dataset != "mpii":
        paths["predictions"] = str(
            predictions_file.save_pose_predictions(
                out / f"{dataset}_predictions.npz", [record_id(m) for m in meta], arrays["pred_mm"]
            )
        )
    return {"results": results, "files": paths, "model": model_desc}


def evaluate_predictions(
    dataset: str,
    predictions: str,
    out_dir: str | None = None,
    *,
    records: str | Sequence[str] | None = None,
    mpii_gt: str | None = None,
    key: str = predictions_file.MPII_KEY,
    verbose: bool = True,
) -> dict:
    """Scores a stored predictions file (no model) and writes the tables.

    Args:
        dataset: one of DATASETS.
        predictions: MPII: a .mat / .h5 `preds` file (rows in valid.h5 order, 1-based original
            pixels); other datasets: the 3D .npz of `predictions_file`.
        out_dir: where to write; None = `<predictions stem>_eval/` beside the file.
        records: TFRecord glob(s) with the ground truth (3D datasets).
        mpii_gt: Tompson's `mpii_val_gt_tompson_format.mat` (MPII).
        key: the MPII array's name in the file.
        verbose: print the Markdown tables.

    Returns:
        dict with "results" and "files".
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}. Received: {dataset!r}")
    path = pathlib.Path(predictions)
    out = pathlib.Path(out_dir) if out_dir else path.parent / f"{path.stem}_eval"
    if dataset == "mpii":
        check_mpii_inputs(mpii_gt, None, need_valid_h5=False)
        gt = mpii.load_tompson_gt(mpii_gt)
        pred, layout = predictions_file.load_mpii_predictions(path, len(gt["gt"]), key)
        res = mpii.score(pred, gt)
        res.update(predictions=str(path), key=key, layout=layout)
        tables = mpii.mpii_markdown_tables(res, label=path.name)
        header = (
            f"# Evaluation: mpii\n\nPredictions: {path} (key {key!r}, stored {layout}), "
            f"ground truth: {mpii_gt}."
        )
        results = {"mpii": res}
    else:
        if not records:
            raise ValueError(
                f"--dataset {dataset} --predictions needs --records (the ground "
                "truth is in the validation records)"
            )
        from keras_pose3d.data.dataset import corrupt_shards_named, list_files

        ids, poses, pose_scale = predictions_file.load_pose_predictions(path)
        if pose_scale != "annot3" and dataset != "mpi_inf_3dhp":
            raise ValueError(
                f"{path}: pose_scale {pose_scale!r} is the 3DHP univ_annot3 size; "
                f"--dataset {dataset} has only one ground truth (pose_scale "
                "'annot3', the records' joints_3d)"
            )
        files = list_files(records)
        with corrupt_shards_named(files):  # a DataLossError names the corrupt shard
            meta = read_checked_meta(files, dataset)
        if not all(m["has_3d"] for m in meta):
            raise ValueError(
                f"{sum(not m['has_3d'] for m in meta)} of {len(meta)} records in "
                f"{records} have no 3D ground truth (has_3d = 0)"
            )
        pred = predictions_file.match_records(ids, poses, [record_id(m) for m in meta], str(path))
        arrays = {"pred_mm": pred, "gt_mm": np.stack([m["joints_3d"] for m in meta])}
        if dataset == "mpi_inf_3dhp":
            results, tables = mpi_inf_3dhp.tables_from_records(arrays, meta, pose_scale)
        else:
            results, tables = TABLES_3D[dataset](arrays, meta)
        header = (
            f"# Evaluation: {dataset}\n\nPredictions: {path} ({len(ids)} poses, "
            f"pose_scale {pose_scale}). Records: {len(files)} files, {len(meta)} examples."
        )
    paths = _report(
        tables,
        {"dataset": dataset, "predictions": str(path), **results},
        out,
        dataset,
        header,
        verbose,
    )
    return {"results": results, "files": paths}


def evaluate(
    dataset: str,
    *,
    run: str | None = None,
    predictions: str | None = None,
    predictions_key: str = predictions_file.MPII_KEY,
    records: str | Sequence[str] | None = None,
    saved_model: str | None = None,
    out_dir: str | None = None,
    batch_size: int = 32,
    mpii_gt: str | None = None,
    mpii_valid_h5: str | None = None,
    verbose: bool = True,
) -> dict:
    """The command line's choice: score `predictions` if given, else evaluate the model of `run`.

    Args mirror the flags of `keras_pose3d.evaluate` (their errors name the flags):
    `predictions` excludes `run` and `saved_model`; without it `run` is required, and for
    MPII the ground-truth files are checked first (before the run directory, so the missing
    files are named first). The rest is passed on to `evaluate_predictions` / `evaluate_run`.

    Returns:
        what `evaluate_predictions` or `evaluate_run` returns.
    """
    if predictions:
        if run or saved_model:
            raise ValueError("--predictions scores a stored file: give no --run/--saved-model")
        return evaluate_predictions(
            dataset,
            predictions,
            out_dir,
            records=records,
            mpii_gt=mpii_gt,
            key=predictions_key,
            verbose=verbose,
        )
    if dataset == "mpii":  # before the run directory: the missing files are named first
        check_mpii_inputs(mpii_gt, mpii_valid_h5)
    if not run:
        raise ValueError("give --run RUN_DIR (a model to evaluate) or --predictions FILE")
    return evaluate_run(
        run,
        dataset,
        records,
        out_dir,
        saved_model=saved_model,
        batch_size=batch_size,
        mpii_gt=mpii_gt,
        mpii_valid_h5=mpii_valid_h5,
        verbose=verbose,
    )
