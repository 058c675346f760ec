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

Every step is resumable: snapshots, the control arm's checkpoints and TP-Net's epochs stay on
disk, and a rerun skips what is complete.
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
    from keras_pose3d.training.trainer import build_model

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
    rate = cfg.temporal.model.frame_rate
    model = build_model(cfg)
    graph = GraphModel(model)  # traced once; each snapshot is loaded into `model` in turn
    stages = cfg.train.stages

    def predict(weights: pathlib.Path, records: list[str]) -> dict:
        if not weights.is_file():
            raise FileNotFoundError(
                f"model snapshot {weights} not found (the trainer's on_stage_end hook writes "
                f"it when report.enabled)"
            )
        model.load_weights(weights)
        return sequence_predictions.predict_records(records, graph, frame_rate=rate)

    states: list[tuple[str, dict]] = [
        ("untrained", predict(snapshot_path(run_dir, None), patterns))
    ]
    for index, stage in enumerate(stages):
        states.append(
            (f"after {stage.name}", predict(snapshot_path(run_dir, index, stage.name), patterns))
        )
    if first_control is not None:
        for index in range(first_control, len(stages)):
            weights = snapshot_path(run_dir / CONTROL_DIR, index, stages[index].name)
            name = main_job_table.control_row_name(stages[index].name)
            states.append((name, predict(weights, patterns)))
    final_weights = snapshot_path(run_dir, len(stages) - 1, stages[-1].name)
    final = states[len(stages)][1]  # the last stage's test predictions
    val = predict(final_weights, list(cfg.data.val_patterns()))
    predictions = run_dir / "predictions"
    sequence_predictions.write_predictions(final, predictions / f"{split}.npz")
    sequence_predictions.write_predictions(val, predictions / "val.npz")
    progress(
        f"SAP-Net predictions over the {split} and validation sequences ({time.time() - t0:.0f}s)"
    )

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

    tp_path = None
    if cfg.temporal.enabled:
        tp_path, refined = _tp_net(cfg, run_dir, model, graph, final_weights, val, final, progress)
        name = main_job_table.TP_NET_ROW
        rows.append(
            main_job_table.pose_row(name, refined["pred"], refined["gt"], refined["sequence"])
        )
        arms[name] = refined

    plots = {}
    if report.plots:
        plots = main_job_plots.write_all(run_dir, arms, stages, progress)
    table = main_job_table.format_report(rows, split=split, last_stage=stages[-1].name, plots=plots)
    (run_dir / "main_job_table.md").write_text(table + "\n")
    (run_dir / "main_job_table.json").write_text(
        json.dumps({"split": split, "rows": [r.to_dict() for r in rows]}, indent=2)
    )
    return tp_path


def _tp_net(cfg, run_dir, model, graph, final_weights, val, test, progress):
    """TP-Net trained on the final SAP-Net's training predictions; (tp_net.keras, its test
    predictions as prediction arrays)."""
    import keras

    from keras_pose3d import temporal_config
    from keras_pose3d.models import sequence_predictions
    from keras_pose3d.training import temporal

    t0 = time.time()
    rate = cfg.temporal.model.frame_rate
    model.load_weights(final_weights)
    train = sequence_predictions.predict_records(
        list(cfg.data.train_patterns()), graph, frame_rate=rate
    )
    sequence_predictions.write_predictions(train, run_dir / "predictions" / "train.npz")
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
    result = temporal.train(tp_cfg, data={"train": train, "val": val})
    tp_path = pathlib.Path(result["model"])
    progress(f"TP-Net trained ({time.time() - t0:.0f}s): {tp_path}")
    tp = keras.saving.load_model(tp_path, compile=False)
    windows, gt, seq = temporal.sequence_windows(test, t.model.window, t.model.mode)
    refined = np.asarray(tp.predict(windows, batch_size=t.train.batch_size, verbose=0))
    return tp_path, {"pred": refined, "gt": gt, "sequence": seq}
