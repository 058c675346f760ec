"""One training run end to end: data (generated if it is the synthetic default), the staged
schedule, evaluation and export. `keras_pose3d.train` calls `run`; tests call it too."""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import sys
import time

from keras_pose3d.config import Config

log = logging.getLogger(__name__)


def train(cfg: Config, run_dir: str | None = None) -> int:
    """What `python -m keras_pose3d.train` runs: `run`, and under multi-worker, a worker whose
    peer died exits 4 with one line saying so instead of a stack trace or a hang."""
    if cfg.runtime.strategy != "multi_worker":
        return run(cfg, run_dir=run_dir)
    import tensorflow as tf

    from keras_pose3d.training import runtime

    # What a worker sees when another one died: the coordination service's missed heartbeats
    # (Unavailable/Aborted/Cancelled/Internal), a collective past runtime.collective_timeout_s
    # (DeadlineExceeded), or the wait for the chief's data (TimeoutError).
    try:
        return run(cfg, run_dir=run_dir)
    except (
        tf.errors.UnavailableError,
        tf.errors.DeadlineExceededError,
        tf.errors.AbortedError,
        tf.errors.CancelledError,
        tf.errors.InternalError,
        TimeoutError,
    ) as e:
        print(
            f"error: {runtime.worker_description()}: stopped, another worker died or stopped "
            f"responding ({type(e).__name__}: {_cause(e)}); start every worker's command "
            f"again to resume from the chief's last checkpoint",
            file=sys.stderr,
        )
        # Not `return`: TensorFlow's teardown waits for the lost worker at its shutdown barrier
        # (measured: 40 s). Checkpoints, metrics.json and the summary writers (closed by the
        # trainer) are already on disk; only the console needs flushing.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(4)


def _cause(error: Exception) -> str:
    """The line of a TensorFlow error that says what happened, not where in the graph."""
    noise = (
        "Graph execution error",
        "Detected at node",
        "File ",
        "[[",
        "Additional GRPC",
        ":UNKNOWN",
        "defined at",
        "Traceback",
    )
    lines = [line.strip() for line in (getattr(error, "message", None) or str(error)).splitlines()]
    useful = [line for line in lines if line and not line.startswith(noise)]
    return (useful or lines or [""])[0]


def ensure_data(cfg: Config, progress=print) -> None:
    """Generate the synthetic default into `data.data_dir` when it is asked for and absent."""
    if not cfg.data.generate_synthetic:
        return
    from pipelines import synthetic_to_tfrecord

    params = dataclasses.asdict(cfg.data.synthetic)  # SyntheticConfig fields
    t0 = time.time()
    made = synthetic_to_tfrecord.ensure_synthetic_dataset(cfg.data.data_dir, **params)
    if made:
        progress(
            f"generated the synthetic dataset in {cfg.data.data_dir} ({time.time() - t0:.0f}s)"
        )


def run(cfg: Config, run_dir: str | None = None, progress=print, strategy=None) -> int:
    """Train, then evaluate and export as the config asks. Returns a process exit code."""
    from keras_pose3d.training import runtime

    # The strategy before anything else touches TensorFlow (data generation, file listing,
    # even importing the trainer: keras_pose3d.data.augment makes a tensor at import):
    # MultiWorkerMirroredStrategy and the thread limits can only be set up at start-up.
    strategy = strategy or runtime.start(cfg.runtime)
    from keras_pose3d.training.trainer import Trainer, TrainingDiverged

    if runtime.is_chief(strategy):
        ensure_data(cfg, progress)
    elif cfg.data.generate_synthetic:
        # Two writers into one directory would corrupt it: the chief generates, the others
        # wait for its manifest (data.data_dir must be shared by the workers).
        from pipelines import common

        runtime.wait_for(
            lambda: common.manifest_is_complete(cfg.data.data_dir),
            f"the chief to generate the synthetic dataset in {cfg.data.data_dir} "
            f"(data.data_dir must be storage every worker reads)",
            cfg.runtime.collective_timeout_s,
            progress,
        )
    from keras_pose3d.data.dataset import list_files

    # Fail before building a model (minutes on a GPU host) when a record glob matches nothing.
    list_files(list(cfg.data.train_patterns()))
    list_files(list(cfg.data.val_patterns()))
    trainer = Trainer(cfg, strategy=strategy, run_dir=run_dir, progress=progress)
    progress(
        f"run directory: {trainer.run_dir} | {trainer.num_replicas} replica(s), "
        f"precision {cfg.runtime.precision}, xla {cfg.runtime.xla}"
    )
    try:
        metrics = fit_with_snapshots(trainer, cfg.temporal.enabled)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    progress(
        f"validation MPJPE: untrained {metrics.get('untrained_mpjpe_mm', float('nan')):.1f}"
        f" mm -> trained {metrics['final_mpjpe_mm']:.1f} mm"
    )
    if not trainer.chief:
        return 0
    if cfg.eval.enabled:
        from keras_pose3d.evaluation import runner

        out = pathlib.Path(trainer.run_dir) / "eval"
        runner.evaluate_run(
            trainer.run_dir, cfg.eval.dataset, records=list(cfg.data.val_patterns()), out_dir=out
        )
        progress(f"evaluation tables in {out}")
    tp_net_path = None
    if cfg.temporal.enabled:
        tp_net_path = main_job_stages(cfg, pathlib.Path(trainer.run_dir), progress)
    if cfg.export.enabled:
        from keras_pose3d.serving import export

        paths = export.export_run(
            trainer.run_dir, cfg.export.saved_models_dir, onnx=cfg.export.onnx, tp_net=tp_net_path
        )
        progress(f"exported: {paths}")
        if "pipeline" in paths:
            smoke_test_pipeline(paths["pipeline"], list(cfg.data.val_patterns()), progress)
    table = pathlib.Path(trainer.run_dir) / "main_job_table.md"
    if table.exists():
        progress(
            "\nvalidation subject, stage by stage (mm; " + str(table) + "):\n" + table.read_text()
        )
    return 0


# ----------------------------------------------------------------------------------------------
# The whole method after SAP-Net's stages: predictions, TP-Net, the stage-by-stage table.
# ----------------------------------------------------------------------------------------------
def predict_sequences(
    model, patterns: list[str], out_path: pathlib.Path, frame_rate: float
) -> dict:
    """SAP-Net's root-relative mm predictions over the 3D records, by sequence and frame, at
    `frame_rate`, saved as the npz `training.temporal` reads (`pipelines.predict_sequences`).

    `model` is called once per batch: pass a `models.prediction.GraphModel`, built once (eager
    Keras calls cost more than the small quickstart network itself)."""
    import numpy as np

    from pipelines import predict_sequences as ps

    ps.run_predictions(model, patterns, out_path, frame_rate=frame_rate)
    with np.load(out_path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def snapshot_path(run_dir: pathlib.Path, index: int | None, name: str = "") -> pathlib.Path:
    """RUN_DIR/snapshots/NN_name.weights.h5 (the model at the end of stage NN), or
    untrained.weights.h5 for index None."""
    leaf = "untrained" if index is None else f"{index:02d}_{name}"
    return run_dir / "snapshots" / f"{leaf}.weights.h5"


def fit_with_snapshots(trainer, snapshots: bool) -> dict:
    """`trainer.fit()`; with `snapshots` (the main job) every model weight is saved before the
    first stage and at the end of each stage (the stage-by-stage table reads them) and
    TensorFlow's op determinism is on.

    Why not the stage checkpoints: they hold the trainable weights only through the optimizer
    (restoring them needs each stage's optimizer rebuilt on the same variables) and most
    BatchNormalization moving statistics not at all, so a model restored from them predicts
    with the wrong statistics.
    """
    if not snapshots:
        return trainer.fit()
    import tensorflow as tf

    # The main job reruns to the same figures: fixed seeds and deterministic tf.data (the
    # trainer and the dataset) plus deterministic kernels (raises where an op has none).
    tf.config.experimental.enable_op_determinism()
    run_dir = pathlib.Path(trainer.run_dir)
    run_stage = trainer.run_stage

    def save(path: pathlib.Path) -> None:
        if trainer.chief:
            path.parent.mkdir(parents=True, exist_ok=True)
            trainer.model.save_weights(path)

    def run_stage_and_snapshot(index, stage):
        result = run_stage(index, stage)
        save(snapshot_path(run_dir, index, stage.name))
        return result

    if not trainer.completed_stages() and not snapshot_path(run_dir, None).exists():
        save(snapshot_path(run_dir, None))
    trainer.run_stage = run_stage_and_snapshot  # the instance only; fit() calls it per stage
    return trainer.fit()


def _load_snapshot(model, weights: pathlib.Path) -> None:
    """Load a snapshot's weights (`snapshot_path`) into `model`, a SAP-Net of the run's config.

    One model takes every snapshot in turn: its `GraphModel` is then traced once for the whole
    main job, not once per stage."""
    if not weights.is_file():
        raise FileNotFoundError(
            f"model snapshot {weights} not found (written by "
            f"fit_with_snapshots when temporal.enabled)"
        )
    model.load_weights(weights)


def main_job_stages(cfg: Config, run_dir: pathlib.Path, progress=print) -> pathlib.Path:
    """After SAP-Net's stages: the stage-by-stage table and TP-Net; returns tp_net.keras.

    SAP-Net (final weights) predicts every 3D training and validation sequence
    (RUN_DIR/predictions/{train,val}.npz), TP-Net trains on the training predictions
    (`training.temporal.train` with `cfg.temporal`, written to RUN_DIR/temporal/), and
    RUN_DIR/main_job_table.{md,json} gets one row per model state on the validation sequences
    (`keras_pose3d.evaluation.main_job`).
    """
    import json

    import numpy as np

    from keras_pose3d import temporal_config
    from keras_pose3d.evaluation import main_job
    from keras_pose3d.models.prediction import GraphModel
    from keras_pose3d.training import temporal
    from keras_pose3d.training.trainer import build_model

    t0 = time.time()
    val_patterns = list(cfg.data.val_patterns())
    rows = []
    rate = cfg.temporal.frame_rate
    model = build_model(cfg)
    graph = GraphModel(model)  # traced once; each snapshot is loaded into `model` in turn
    _load_snapshot(model, snapshot_path(run_dir, None))
    untrained = predict_sequences(
        graph, val_patterns, run_dir / "predictions" / "val_untrained.npz", rate
    )
    rows.append(
        main_job.pose_row("untrained", untrained["pred"], untrained["gt"], untrained["sequence"])
    )
    for index, stage in enumerate(cfg.train.stages):
        _load_snapshot(model, snapshot_path(run_dir, index, stage.name))
        last = index == len(cfg.train.stages) - 1
        name = "val" if last else f"val_{stage.name}"
        arrays = predict_sequences(
            graph, val_patterns, run_dir / "predictions" / f"{name}.npz", rate
        )
        rows.append(
            main_job.pose_row(
                f"after {stage.name}", arrays["pred"], arrays["gt"], arrays["sequence"]
            )
        )
    # `model` holds the last stage's snapshot: the final weights.
    predict_sequences(
        graph, list(cfg.data.train_patterns()), run_dir / "predictions" / "train.npz", rate
    )
    progress(
        f"SAP-Net predictions over the training and validation sequences ({time.time() - t0:.0f}s)"
    )

    t = cfg.temporal
    tp_cfg = temporal_config.TemporalConfig(
        data=temporal_config.TemporalData(
            train=str(run_dir / "predictions" / "train.npz"),
            val=str(run_dir / "predictions" / "val.npz"),
        ),
        model=temporal_config.TemporalModel(
            window=t.window,
            mode=t.mode,
            hidden=t.hidden,
            dropout=t.dropout,
            frame_rate=t.frame_rate,
        ),
        train=temporal_config.TemporalTrain(
            epochs=t.epochs,
            batch_size=t.batch_size,
            learning_rate=t.learning_rate,
            seed=cfg.train.seed,
        ),
        run_dir=str(run_dir / "temporal"),
    )
    t1 = time.time()
    tp_path = pathlib.Path(temporal.train(tp_cfg)["model"])
    progress(f"TP-Net trained ({time.time() - t1:.0f}s): {tp_path}")

    import keras

    tp = keras.saving.load_model(tp_path, compile=False)
    val = temporal.load_predictions(run_dir / "predictions" / "val.npz")
    windows, gt, seq = temporal.sequence_windows(val, t.window, t.mode)  # (M, N, J, 3), (M, J, 3)
    refined = np.asarray(tp.predict(windows, batch_size=t.batch_size, verbose=0))
    rows.append(main_job.pose_row("after TP-Net", refined, gt, seq))

    (run_dir / "main_job_table.md").write_text(main_job.format_table(rows) + "\n")
    (run_dir / "main_job_table.json").write_text(json.dumps([r.to_dict() for r in rows], indent=2))
    return tp_path


def smoke_test_pipeline(saved_model: pathlib.Path, val_patterns: list[str], progress=print) -> None:
    """One request through the exported pipeline's JPEG signature (`predict_jpeg_online`): the
    first validation frame's stored JPEG, an empty history (zeros); raises on non-finite or
    misshapen outputs."""
    import numpy as np
    import tensorflow as tf

    from keras_pose3d.data import features
    from keras_pose3d.data.dataset import list_files

    first = next(iter(tf.data.TFRecordDataset(list_files(val_patterns)[:1])))
    jpeg = features.parse_example(first, decode_image=False)["image_jpeg"]
    loaded = tf.saved_model.load(str(saved_model))
    fn = loaded.signatures["predict_jpeg_online"]
    window = int(fn.structured_input_signature[1]["history"].shape[1]) + 1
    t0 = time.time()
    out = fn(images=tf.reshape(jpeg, [1]), history=tf.zeros([1, window - 1, 16, 3], tf.float32))
    ms = 1000 * (time.time() - t0)
    refined = out["joints_3d_refined_mm"].numpy()
    if refined.shape != (1, 16, 3) or not all(np.isfinite(v.numpy()).all() for v in out.values()):
        raise RuntimeError(
            f"pipeline smoke test: bad outputs from {saved_model}: "
            f"{ {k: v.shape for k, v in out.items()} }"
        )
    progress(
        f"pipeline smoke test: one JPEG through {saved_model} predict_jpeg_online in "
        f"{ms:.0f} ms, outputs {sorted(out)} finite"
    )
