"""One training run end to end: data (generated if it is the synthetic default), the staged
schedule, the main job's arms and table (`training.main_job`), evaluation and export.
`keras_pose3d.train` calls `run`; tests call it too.

The one module of the package that calls a Beam job: `ensure_data` runs the synthetic
dataset's (`pipelines.synthetic_to_tfrecord`) when the config asks for the embedded default.
"""

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


def _deterministic_kernels() -> None:
    """TensorFlow's oneDNN CPU kernels off (`RuntimeConfig.deterministic` says why). The switch
    is read when TensorFlow loads: in a process that loaded it already, it may come too late."""
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
        return
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    if "tensorflow" in sys.modules:
        log.warning(
            "runtime.deterministic: TensorFlow was loaded before the run started, so its oneDNN "
            "kernels may stay on; start the process with TF_ENABLE_ONEDNN_OPTS=0 to be sure"
        )


def run(cfg: Config, run_dir: str | None = None, progress=print, strategy=None) -> int:
    """Train, then the main job's report, evaluation and export as the config asks. Returns a
    process exit code."""
    if cfg.runtime.deterministic:
        _deterministic_kernels()
    from keras_pose3d.training import runtime

    # The strategy before anything else touches TensorFlow (data generation, file listing,
    # even importing the trainer: keras_pose3d.data.augment makes a tensor at import):
    # MultiWorkerMirroredStrategy and the thread limits can only be set up at start-up.
    strategy = strategy or runtime.start(cfg.runtime)
    if runtime.is_chief(strategy):
        from keras_pose3d.atomic_files import check_writable

        # A read-only or full run / export folder fails now, not after hours of training.
        # The chief's only: the other workers write nothing there (their checkpoints go to a
        # private temporary folder).
        exports = [cfg.export.saved_models_dir] if cfg.export.enabled else []
        for target in [run_dir or cfg.train.run_dir, *exports]:
            check_writable(target)
    from keras_pose3d.training import main_job
    from keras_pose3d.training.trainer import Trainer, TrainingDiverged

    if runtime.is_chief(strategy):
        ensure_data(cfg, progress)
    elif cfg.data.generate_synthetic:
        # Two writers into one directory would corrupt it: the chief generates, the others
        # wait for its manifest (data.data_dir must be shared by the workers).
        from keras_pose3d.data.manifest import manifest_is_complete

        runtime.wait_for(
            lambda: manifest_is_complete(cfg.data.data_dir),
            f"the chief to generate the synthetic dataset in {cfg.data.data_dir} "
            f"(data.data_dir must be storage every worker reads)",
            cfg.runtime.collective_timeout_s,
            progress,
        )
    from keras_pose3d.data.dataset import list_files

    # Fail before building a model (minutes on a GPU host) when a record glob matches nothing.
    for patterns in (cfg.data.train_patterns(), cfg.data.val_patterns(), cfg.data.test_patterns()):
        if patterns:
            list_files(list(patterns))
    report = cfg.report.enabled
    if cfg.runtime.deterministic:
        # Fixed seeds and deterministic tf.data (the trainer and the dataset) plus
        # deterministic kernels (raises where an op has none).
        import tensorflow as tf

        from keras_pose3d.training import sums

        tf.config.experimental.enable_op_determinism()
        sums.fixed_order_sums()  # no AddN whose order depends on scheduling (training/sums.py)
    run_path = pathlib.Path(run_dir or cfg.train.run_dir)
    trainer = Trainer(
        cfg,
        strategy=strategy,
        run_dir=run_path,
        progress=progress,
        on_stage_end=main_job.snapshot_saver(run_path) if report else None,
    )
    progress(
        f"run directory: {trainer.run_dir} | {trainer.num_replicas} replica(s), "
        f"precision {cfg.runtime.precision}, xla {cfg.runtime.xla}"
    )
    try:
        if report:
            main_job.save_untrained(trainer)
        metrics = trainer.fit()
        progress(
            f"validation MPJPE: untrained {metrics.get('untrained_mpjpe_mm', float('nan')):.1f}"
            f" mm -> trained {metrics['final_mpjpe_mm']:.1f} mm"
        )
        tp_net_path = None
        if report:
            tp_net_path = main_job.run(cfg, run_path, strategy, progress)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    if not trainer.chief:
        return 0
    if cfg.eval.enabled:
        from keras_pose3d.evaluation import runner

        split, records = main_job.report_split(cfg)
        out = run_path / "eval"
        runner.evaluate_run(run_path, cfg.eval.dataset, records=records, out_dir=out)
        progress(f"evaluation tables ({split} split) in {out}")
    if cfg.export.enabled:
        from keras_pose3d.serving import export

        paths = export.export_run(
            run_path, cfg.export.saved_models_dir, onnx=cfg.export.onnx, tp_net=tp_net_path
        )
        progress(f"exported: {paths}")
        if "pipeline" in paths:
            smoke_test_pipeline(paths["pipeline"], list(cfg.data.val_patterns()), progress)
    table = run_path / "main_job_table.md"
    if report and table.exists():
        progress("\nthe main job's table (" + str(table) + "):\n" + table.read_text())
    return 0


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
