"""The main job's evidence: every arm of the method on the held-out test split, side by side.

After SAP-Net's schedule (`training.trainer.Trainer`, whose `on_stage_end` hook saves a
snapshot of every weight at the end of each stage), with `report.enabled`:

1. **Control arm** (`report.control_arm`): from the snapshot of the stage before the first one
   with a structure loss (geometric, illegal_angle, symmetry), the same stages again, same steps,
   learning rates, optimizers and data order (`Trainer(start_index=...)` keeps the stage
   indices, so the stages draw the same data seeds), with only their heatmap and depth losses.
   The structure losses' effect is the difference between this arm and the paper's stages at
   equal training: comparing against the snapshot before them would credit the losses with
   the extra steps.
2. **Predictions** of every model state over the test sequences (`report_split`) at TP-Net's
   frame rate, in memory (`models.sequence_predictions`); the final SAP-Net's also over the
   training and validation sequences, which TP-Net trains and validates on (also written to
   RUN_DIR/predictions/*.npz as artefacts, what `temporal_train` would read).
3. **Filter arm** (`report.filter_arm`): the final SAP-Net smoothed by the causal filter
   (`evaluation.filters.best_causal_filter`: moving averages and 1-Euro filters, no future
   frame, TP-Net online's latency) that does best on the validation sequences.
4. **TP-Net** (`temporal.enabled`): trained on the training predictions, validated on the
   validation ones (scored there once, by `training.temporal.train`), applied to the test ones.
5. RUN_DIR/main_job_table.{md,json} (`evaluation.main_job_table`) and the plots
   (`evaluation.main_job_plots`, RUN_DIR/plots/*.png, linked from the Markdown).
6. **The paper's tables with and without TP-Net** (`eval.enabled`, `temporal.enabled`,
   `eval.dataset` h36m or mpi_inf_3dhp): Tables 1, 2 and 6 (H36M) or 5 and 6 (3DHP) of the
   final SAP-Net's predictions and TP-Net's refinement of them, at the records of the reported
   split, scored by `evaluation.h36m` / `evaluation.mpi_inf_3dhp`
   (RUN_DIR/paper_tables/DATASET.{md,json,csv}, also appended to main_job_table.md).

Predictions are made in float32 (like evaluation, export and `predict_sequences`), at TP-Net's
frame rate; a split whose sequences have no known native rate (the 3DHP test sequences,
`docs/datasets.md` 4.3) is predicted at its recorded frames instead, which TP-Net then takes as
consecutive, and the run says so.

Every step is resumable: snapshots, the control arm's checkpoints and TP-Net's epochs stay on
disk, every state's predictions are kept (RUN_DIR/predictions/states/, reused while the
snapshot, the records and the rate are unchanged), a finished TP-Net of the same config is not
trained again, and a rerun skips what is complete.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import numpy as np

from keras_pose3d.config import Config, StageConfig

STRUCTURE_LOSSES = ("geometric", "illegal_angle", "symmetry")
CONTROL_DIR = "control"
PAPER_TABLES_DIR = "paper_tables"
PAPER_TABLE_DATASETS = ("h36m", "mpi_inf_3dhp")  # eval.dataset values with a TP-Net row


# ----------------------------------------------------------------------------------------------
# Snapshots: every weight of the model at the end of each stage (the trainer's hook).
# ----------------------------------------------------------------------------------------------
def snapshot_path(run_dir: pathlib.Path, index: int | None, name: str = "") -> pathlib.Path:
    """RUN_DIR/snapshots/NN_name.weights.h5 (the model at the end of stage NN), or
    untrained.weights.h5 for index None."""
    leaf = "untrained" if index is None else f"{index:02d}_{name}"
    return pathlib.Path(run_dir) / "snapshots" / f"{leaf}.weights.h5"


def snapshot_saver(run_dir: pathlib.Path):
    """`Trainer(on_stage_end=...)`: saves the model at the end of each stage.

    Why not the stage checkpoints: they hold the trainable weights only through the optimizer
    (restoring them needs each stage's optimizer rebuilt on the same variables) and most
    BatchNormalization moving statistics not at all, so a model restored from them predicts
    with the wrong statistics.
    """

    def save(index: int, stage: StageConfig, model) -> None:
        path = snapshot_path(run_dir, index, stage.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save_weights(path)

    return save


def save_untrained(trainer) -> None:
    """The model before its first stage (once: a resumed run keeps the first one)."""
    path = snapshot_path(trainer.run_dir, None)
    if trainer.chief and not trainer.completed_stages() and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        trainer.model.save_weights(path)


# ----------------------------------------------------------------------------------------------
# The control arm.
# ----------------------------------------------------------------------------------------------
def control_schedule(cfg: Config) -> tuple[int, Config] | None:
    """(index of the first stage with a structure loss, the config whose stages from there on
    train without the structure losses), or None when no stage has one."""
    stages = cfg.train.stages
    first = next((i for i, s in enumerate(stages) if set(s.losses) & set(STRUCTURE_LOSSES)), None)
    if first is None:
        return None
    if first == 0:
        raise ValueError(
            f"report.control_arm: the first stage ('{stages[0].name}') already has a structure "
            f"loss, so there is no snapshot for a control arm to start from; set "
            f"report.control_arm: false"
        )
    control = []
    for stage in stages[first:]:
        losses = tuple(term for term in stage.losses if term not in STRUCTURE_LOSSES)
        if not losses:
            raise ValueError(
                f"report.control_arm: stage '{stage.name}' has only structure losses "
                f"{list(stage.losses)}, so its control would train nothing; set "
                f"report.control_arm: false"
            )
        control.append(dataclasses.replace(stage, losses=losses))
    train = dataclasses.replace(cfg.train, stages=tuple(stages[:first]) + tuple(control))
    return first, dataclasses.replace(cfg, train=train)


def train_control_arm(cfg: Config, run_dir: pathlib.Path, strategy, progress=print) -> int | None:
    """Train the control arm into RUN_DIR/control (snapshots there too); returns the index of
    its first stage, or None when the schedule has no structure loss."""
    from keras_pose3d.training.trainer import Trainer

    schedule = control_schedule(cfg)
    if schedule is None:
        progress("report: no stage has a structure loss, so there is no control arm")
        return None
    first, control_cfg = schedule
    out = run_dir / CONTROL_DIR
    start = snapshot_path(run_dir, first - 1, cfg.train.stages[first - 1].name)
    progress(
        f"control arm (no structure losses) from {start.name}: "
        f"{[s.name for s in control_cfg.train.stages[first:]]} into {out}"
    )
    trainer = Trainer(
        control_cfg,
        strategy=strategy,
        run_dir=out,
        progress=progress,
        on_stage_end=snapshot_saver(out),
        start_index=first,
        initial_weights=start,
    )
    trainer.fit()
    return first


# ----------------------------------------------------------------------------------------------
# Predictions, arms, table.
# ----------------------------------------------------------------------------------------------
def report_split(cfg: Config) -> tuple[str, list[str]]:
    """("test" and its globs) when the data has a test split, else ("validation", ...)."""
    test = list(cfg.data.test_patterns())
    return ("test", test) if test else ("validation", list(cfg.data.val_patterns()))


def _by_sequence(arrays: dict) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(pred, gt) trajectories per sequence, frames in order (rows are sorted that way)."""
    seq = arrays["sequence"]
    ids = np.unique(seq)
    return [arrays["pred"][seq == s] for s in ids], [arrays["gt"][seq == s] for s in ids]


def run(cfg: Config, run_dir: pathlib.Path, strategy, progress=print) -> pathlib.Path | None:
    """Steps 1-5 of the module docstring; returns tp_net.keras (None without TP-Net)."""
    from keras_pose3d.evaluation import filters, main_job_plots, main_job_table
    from keras_pose3d.models import sequence_predictions
    from keras_pose3d.models.prediction import GraphModel
    from keras_pose3d.training import runtime

    report = cfg.report
    first_control = None
    if report.control_arm:
        # Every worker trains the control arm (its steps are collective); the rest is the chief's.
        first_control = train_control_arm(cfg, run_dir, strategy, progress)
    if not runtime.is_chief(strategy):
        return None

    t0 = time.time()
    split, patterns = report_split(cfg)
    val_patterns = list(cfg.data.val_patterns())
    rate = cfg.temporal.model.frame_rate
    meta = _split_meta(cfg, patterns)
    rates = {"report": split_frame_rate(meta, rate, split, progress)}
    rates["val"] = (
        rates["report"]
        if val_patterns == patterns
        else split_frame_rate(_split_meta(cfg, val_patterns), rate, "validation", progress)
    )
    model = float32_model(cfg)
    graph = GraphModel(model)  # traced once; each snapshot is loaded into `model` in turn
    stages = cfg.train.stages

    def predict(weights: pathlib.Path, records: list[str], split_name: str, at_rate) -> dict:
        if not weights.is_file():
            raise FileNotFoundError(
                f"model snapshot {weights} not found (the trainer's on_stage_end hook writes "
                f"it when report.enabled)"
            )

        def compute():
            model.load_weights(weights)
            return sequence_predictions.predict_records(records, graph, frame_rate=at_rate)

        return cached_predictions(run_dir, split_name, weights, records, at_rate, compute)

    def predict_report(weights: pathlib.Path) -> dict:
        return predict(weights, patterns, split, rates["report"])

    states: list[tuple[str, dict]] = [("untrained", predict_report(snapshot_path(run_dir, None)))]
    for index, stage in enumerate(stages):
        states.append(
            (f"after {stage.name}", predict_report(snapshot_path(run_dir, index, stage.name)))
        )
    if first_control is not None:
        for index in range(first_control, len(stages)):
            weights = snapshot_path(run_dir / CONTROL_DIR, index, stages[index].name)
            name = main_job_table.control_row_name(stages[index].name)
            states.append((name, predict_report(weights)))
    final_weights = snapshot_path(run_dir, len(stages) - 1, stages[-1].name)
    final = states[len(stages)][1]  # the last stage's test predictions
    if val_patterns == patterns:  # no separate validation split: the same predictions
        val = final
    else:
        val = predict(final_weights, val_patterns, "validation", rates["val"])
    predictions = run_dir / "predictions"
    sequence_predictions.write_predictions(final, predictions / f"{split}.npz")
    sequence_predictions.write_predictions(val, predictions / "val.npz")
    over = split if val_patterns == patterns else f"{split} and validation"  # one set, once
    progress(f"SAP-Net predictions over the {over} sequences ({time.time() - t0:.0f}s)")

    rows = [main_job_table.pose_row(name, a["pred"], a["gt"], a["sequence"]) for name, a in states]
    arms = dict(states)
    if report.filter_arm:
        name, params, val_error = filters.best_causal_filter(*_by_sequence(val), rate)
        smooth = filters.causal_filter(name, params, rate)
        filtered = dict(final, pred=np.concatenate([smooth(p) for p in _by_sequence(final)[0]]))
        label = f"SAP-Net + {filters.describe(name, params)}"
        progress(f"filter arm: {label} (validation error {val_error:.1f} mm, best of the grid)")
        rows.append(
            main_job_table.pose_row(label, filtered["pred"], filtered["gt"], filtered["sequence"])
        )
        arms[label] = filtered

    tp_path = refined = None
    if cfg.temporal.enabled:
        train_predictions = lambda: predict(
            final_weights, list(cfg.data.train_patterns()), "train", rate
        )
        tp_path, refined = _tp_net(cfg, run_dir, train_predictions, val, final, progress)
        name = main_job_table.TP_NET_ROW
        rows.append(
            main_job_table.pose_row(name, refined["pred"], refined["gt"], refined["sequence"])
        )
        arms[name] = refined

    plots = {}
    if report.plots:
        plots = main_job_plots.write_all(run_dir, arms, stages, progress)
    table = main_job_table.format_report(rows, split=split, last_stage=stages[-1].name, plots=plots)
    if refined is not None and cfg.eval.enabled and cfg.eval.dataset in PAPER_TABLE_DATASETS:
        paper = paper_tables(cfg.eval.dataset, run_dir, split, meta, final, refined, progress)
        table += (
            f"\n\n## The paper's tables, with and without TP-Net ({paper})\n\n" + paper.read_text()
        )
    (run_dir / "main_job_table.md").write_text(table + "\n")
    (run_dir / "main_job_table.json").write_text(
        json.dumps({"split": split, "rows": [r.to_dict() for r in rows]}, indent=2)
    )
    return tp_path


def _tp_net(cfg, run_dir, train_predictions, val, test, progress):
    """TP-Net trained on the final SAP-Net's training predictions (`train_predictions()`), or
    the one a previous run of the same config finished; (tp_net.keras, its refinement of the
    test predictions: `sorted_rows(test)` with TP-Net's poses as "pred")."""
    import yaml

    from keras_pose3d import temporal_config
    from keras_pose3d.models import loading
    from keras_pose3d.training import temporal

    t0 = time.time()
    t = cfg.temporal
    seed = cfg.train.seed if t.train.seed is None else t.train.seed
    tp_cfg = temporal_config.TemporalConfig(
        data=temporal_config.TemporalData(
            train=str(run_dir / "predictions" / "train.npz"),
            val=str(run_dir / "predictions" / "val.npz"),
        ),
        model=t.model,
        train=dataclasses.replace(t.train, seed=seed),
        run_dir=str(run_dir / "temporal"),
    )
    out = pathlib.Path(tp_cfg.run_dir)
    tp_path = out / temporal.MODEL_FILE
    config_file = out / temporal.CONFIG_FILE
    done = (
        tp_path.is_file()
        and not (out / temporal.RESUME_DIR).exists()
        and config_file.is_file()
        and config_file.read_text() == yaml.safe_dump(dataclasses.asdict(tp_cfg))
    )
    if done:
        progress(f"TP-Net: {tp_path} of this config is complete; not trained again")
    else:
        from keras_pose3d.models import sequence_predictions

        train = train_predictions()
        sequence_predictions.write_predictions(train, run_dir / "predictions" / "train.npz")
        result = temporal.train(tp_cfg, data={"train": train, "val": val})
        tp_path = pathlib.Path(result["model"])
        progress(f"TP-Net trained ({time.time() - t0:.0f}s): {tp_path}")
    tp = loading.load_float32(tp_path)  # float32 like SAP-Net's predictions and the export
    test = sorted_rows(test)
    windows, _, _ = temporal.sequence_windows(test, t.model.window, t.model.mode)
    refined = np.asarray(tp.predict(windows, batch_size=t.train.batch_size, verbose=0))
    return tp_path, dict(test, pred=refined)


# ----------------------------------------------------------------------------------------------
# float32 predictions, kept per state; the frame rate of a split.
# ----------------------------------------------------------------------------------------------
ROW_KEYS = ("pred", "gt", "sequence", "frame")  # the per-row arrays of a predictions dict


def float32_model(cfg: Config):
    """SAP-Net built under float32 whatever `runtime.precision` (the snapshots' variables are
    float32 under every policy): the main job predicts like evaluation and export do."""
    import keras

    from keras_pose3d.training.trainer import build_model

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        return build_model(cfg)
    finally:
        keras.config.set_dtype_policy(previous)


def sorted_rows(arrays: dict) -> dict:
    """The predictions' rows in (sequence, frame) order, the order TP-Net's windows are made in
    (`training.temporal.sequence_windows`); other keys as they are."""
    order = np.lexsort((arrays["frame"], arrays["sequence"]))
    return {k: (np.asarray(v)[order] if k in ROW_KEYS else v) for k, v in arrays.items()}


def cached_predictions(
    run_dir: pathlib.Path, split: str, weights: pathlib.Path, records, frame_rate, compute
) -> dict:
    """`compute()`'s predictions of `weights` over `records`, kept in
    RUN_DIR/predictions/states/SPLIT__SNAPSHOT.npz beside a key (.json: the snapshot's path,
    size and mtime, the record files, the rate); a later call with the same key reads them."""
    from keras_pose3d import atomic_files
    from keras_pose3d.data.dataset import list_files
    from keras_pose3d.models import sequence_predictions

    stat = pathlib.Path(weights).stat()
    key = json.dumps(
        {
            "weights": str(weights),
            "weights_bytes": stat.st_size,
            "weights_mtime_ns": stat.st_mtime_ns,
            "records": list_files(list(records)),
            "frame_rate": frame_rate,
        },
        sort_keys=True,
    )
    leaf = pathlib.Path(weights).relative_to(run_dir).as_posix().replace("/", "__")
    path = run_dir / "predictions" / "states" / f"{split}__{leaf.removesuffix('.weights.h5')}.npz"
    key_path = path.with_suffix(".json")
    if path.is_file() and key_path.is_file() and key_path.read_text() == key:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    arrays = compute()
    sequence_predictions.write_predictions(arrays, path)
    atomic_files.write_text(key_path, key)  # last: a key names complete predictions only
    return arrays


def _split_meta(cfg: Config, patterns: list[str]) -> list[dict]:
    """`evaluation.records` entries of the records (provenance, ground truth), in file order."""
    from keras_pose3d.data.dataset import list_files
    from keras_pose3d.evaluation.records import read_checked_meta, read_record_meta

    files = list_files(patterns)
    if cfg.eval.enabled and cfg.eval.dataset in PAPER_TABLE_DATASETS:
        return read_checked_meta(files, cfg.eval.dataset)
    return read_record_meta(files)


def split_frame_rate(meta: list[dict], rate: float, split: str, progress=print) -> float | None:
    """`rate` when every 3D sequence of the records has a known native rate
    (`data.frame_rates`), else None: the records are predicted at their recorded frames."""
    from keras_pose3d.data import frame_rates

    unknown = set()
    for m in meta:
        if not m["has_3d"]:
            continue
        try:
            frame_rates.source_frame_rate(m["dataset"], m["subject"], m["sequence"])
        except ValueError:
            unknown.add(f"{m['dataset']}/{m['subject']}/{m['sequence']}")
    if not unknown:
        return rate
    progress(
        f"the {split} split's sequences {sorted(unknown)[:6]}{' ...' if len(unknown) > 6 else ''} "
        f"have no documented frame rate: predicted at their recorded frames, which TP-Net takes "
        f"as {rate:g} fps"
    )
    return None


# ----------------------------------------------------------------------------------------------
# The paper's tables with TP-Net rows.
# ----------------------------------------------------------------------------------------------
def record_rows(arrays: dict, meta: list[dict]) -> tuple[np.ndarray, list[dict]]:
    """(row of `arrays` at each record, the records that have one): a record's row is the one of
    its sequence at its frame exactly (resampled rows between records have none)."""
    from keras_pose3d.models.sequence_predictions import META

    names = [str(n) for n in arrays["sequence_names"]]
    # Parts of a sequence split at a gap are named "<name>@<first frame>".
    base = [n.rsplit("@", 1)[0] if n.rsplit("@", 1)[-1].isdigit() else n for n in names]
    lookup = {}
    for i, (s, f) in enumerate(zip(arrays["sequence"], arrays["frame"].astype(float).tolist())):
        if abs(f - round(f)) < 1e-6:
            lookup[(base[int(s)], round(f))] = i
    rows, kept = [], []
    for m in meta:
        i = lookup.get(("/".join(str(m[k]) for k in META), int(m["frame"])))
        if i is not None:
            rows.append(i)
            kept.append(m)
    return np.asarray(rows, np.int64), kept


def paper_tables(
    dataset: str,
    run_dir: pathlib.Path,
    split: str,
    meta: list[dict],
    final: dict,
    refined: dict,
    progress=print,
) -> pathlib.Path:
    """Step 6 of the module docstring; returns the Markdown's path.

    Args:
        dataset: "h36m" or "mpi_inf_3dhp".
        meta: the split's `evaluation.records` entries.
        final: the final SAP-Net's predictions over the split (rows as `predict_records`).
        refined: TP-Net's refinement of them (`_tp_net`: `sorted_rows(final)` with TP-Net's
            poses).
    """
    from keras_pose3d.evaluation import h36m, mpi_inf_3dhp, tables

    final = sorted_rows(final)
    if not (
        np.array_equal(final["sequence"], refined["sequence"])
        and np.array_equal(final["frame"], refined["frame"])
    ):
        raise ValueError("paper_tables: SAP-Net's and TP-Net's rows are not the same frames")
    rows, kept = record_rows(final, meta)
    if not kept:
        raise ValueError(
            f"paper tables: none of the {len(meta)} {split} records has a prediction at its frame"
        )
    arrays = {"pred_mm": final["pred"][rows], "gt_mm": np.stack([m["joints_3d"] for m in kept])}
    score = {"h36m": h36m.tables_from_records, "mpi_inf_3dhp": mpi_inf_3dhp.tables_from_records}
    results, made = score[dataset](arrays, kept, tp_net_mm=refined["pred"][rows])
    rate = float(final["frame_rate"])
    header = (
        f"# {dataset}: the final SAP-Net and SAP-Net + TP-Net on the {split} split\n\n"
        f"{len(kept)} of {len(meta)} records (those with a prediction at their own frame); "
        f"predictions at {'the recorded frames' if np.isnan(rate) else f'{rate:g} fps'}, "
        f"decoded with the ground-truth root depth, float32."
    )
    paths = tables.write_report(
        made,
        {"dataset": dataset, "split": split, "records": len(meta), "scored": len(kept), **results},
        run_dir / PAPER_TABLES_DIR,
        dataset,
        header,
    )
    progress(f"the paper's tables with TP-Net rows: {paths['markdown']}")
    return pathlib.Path(paths["markdown"])
