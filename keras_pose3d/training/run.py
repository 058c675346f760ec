"""One training run end to end: data (generated if it is the synthetic default), the staged
schedule, evaluation and export. `keras_pose3d.train` calls `run`; tests call it too."""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import sys
import time

from keras_pose3d.config import Config

log = logging.getLogger(__name__)


def ensure_data(cfg: Config, progress=print) -> None:
    """Generate the synthetic default into `data.data_dir` when it is asked for and absent."""
    if not cfg.data.generate_synthetic:
        return
    from keras_pose3d.data import synthetic

    params = dataclasses.asdict(cfg.data.synthetic)  # SyntheticParams fields + num_shards
    t0 = time.time()
    made = synthetic.ensure_synthetic_dataset(cfg.data.data_dir, **params)
    if made:
        progress(f"generated the synthetic dataset in {cfg.data.data_dir} "
                 f"({time.time() - t0:.0f}s)")


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

        runtime.wait_for(lambda: common.manifest_is_complete(cfg.data.data_dir),
                         f"the chief to generate the synthetic dataset in {cfg.data.data_dir} "
                         f"(data.data_dir must be storage every worker reads)",
                         cfg.runtime.collective_timeout_s, progress)
    from keras_pose3d.data.dataset import list_files

    # Fail before building a model (minutes on a GPU host) when a record glob matches nothing.
    list_files(list(cfg.data.train_patterns()))
    list_files(list(cfg.data.val_patterns()))
    trainer = Trainer(cfg, strategy=strategy, run_dir=run_dir, progress=progress)
    progress(f"run directory: {trainer.run_dir} | {trainer.num_replicas} replica(s), "
             f"precision {cfg.runtime.precision}, xla {cfg.runtime.xla}")
    try:
        metrics = trainer.fit()
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    progress(f"validation MPJPE: untrained {metrics.get('untrained_mpjpe_mm', float('nan')):.1f}"
             f" mm -> trained {metrics['final_mpjpe_mm']:.1f} mm")
    if not trainer.chief:
        return 0
    if cfg.eval.enabled:
        from keras_pose3d import evaluate

        out = pathlib.Path(trainer.run_dir) / "eval"
        evaluate.evaluate_run(trainer.run_dir, cfg.eval.dataset,
                              records=list(cfg.data.val_patterns()), out_dir=out)
        progress(f"evaluation tables in {out}")
    if cfg.export.enabled:
        from keras_pose3d import export

        paths = export.export_run(trainer.run_dir, cfg.export.saved_models_dir,
                                  onnx=cfg.export.onnx)
        progress(f"exported: {paths}")
    return 0
