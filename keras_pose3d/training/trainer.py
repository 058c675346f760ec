"""The SAP-Net trainer: the paper's staged schedule, resumable, on any tf.distribute strategy.

A run directory holds everything about a run:

    RUN_DIR/config.yaml          the resolved config
    RUN_DIR/checkpoints/NN_name/ tf.train checkpoints of stage NN (model, optimizer, step)
    RUN_DIR/state.json           stages completed so far
    RUN_DIR/logs/                TensorBoard event files (train/, validation/)
    RUN_DIR/metrics.json         losses per stage, validation MPJPE history, untrained baseline
    RUN_DIR/sap_net.keras        the final model (float32 weights), what export/evaluate read

Kill the process at any point and run the same command: completed stages are skipped, and the
current stage continues from its last checkpoint with the same step count and weights, on a
data stream seeded by (stage, step) so that it does not replay the stage's first batches;
validation entries made after that checkpoint are dropped from metrics.json (they are made
again), and folders left by a checkpoint save that was interrupted are removed.

Under MultiWorkerMirroredStrategy only the chief writes into the run directory. The other
workers still save checkpoints (a save may run collective ops) into a temporary folder of
their own, deleted at the end, and restore from the chief's checkpoints: resuming needs the
run directory on storage every worker reads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import pathlib
import shutil
import tempfile
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from keras_pose3d import metrics as kp_metrics
from keras_pose3d import skeleton
from keras_pose3d.config import PART_NAMES, Config, StageConfig
from keras_pose3d.data import dataset as kp_dataset
from keras_pose3d.models import prediction
from keras_pose3d.models.loading import SAP_NET_FILE
from keras_pose3d.models.sap_net import SAPNet
from keras_pose3d.training import objective, runtime
from keras_pose3d.training import sums as fixed_order

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """A loss term became NaN or infinite; the last good checkpoint is kept."""


@dataclasses.dataclass
class StageResult:
    name: str
    steps: int
    final_losses: dict
    seconds: float


def build_model(cfg: Config) -> SAPNet:
    """SAP-Net from the model config, built on a dummy batch so its variables exist."""
    m = cfg.model
    model = SAPNet(
        num_joints=m.num_joints,
        num_stacks=m.num_stacks,
        num_features=m.num_features,
        hourglass_depth=m.hourglass_depth,
        depth_blocks=m.depth_blocks,
        num_modules=m.num_modules,
        decode_threshold=m.decode_threshold,
        input_size=cfg.data.input_size,
        heatmap_size=cfg.data.heatmap_size,
    )
    model(tf.zeros((1, cfg.data.input_size, cfg.data.input_size, 3)), training=False)
    return model


def weights_digest(model: keras.Model) -> str:
    """SHA-256 of every weight's bytes, in a fixed order: equal digests, equal weights."""
    digest = hashlib.sha256()
    for v in sorted(model.weights, key=lambda v: v.path):
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(v.value))
        digest.update(f"{v.path}:{value.dtype}:{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _make_optimizer(stage: StageConfig, precision: str):
    lr = stage.learning_rate
    if stage.lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=stage.steps, alpha=0.0)
    opt = {
        "rmsprop": lambda: keras.optimizers.RMSprop(lr),
        "adam": lambda: keras.optimizers.Adam(lr),
        "adamw": lambda: keras.optimizers.AdamW(lr),
        "sgd": lambda: keras.optimizers.SGD(lr, momentum=0.9),
    }[stage.optimizer]()
    if precision == "mixed_float16":
        # float16 gradients underflow without loss scaling; bfloat16 has float32's range.
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def _set_trainable(model: SAPNet, stage: StageConfig) -> None:
    # A frozen Keras 3 BatchNormalization also stops updating its statistics, which is what a
    # frozen part should do.
    for name in PART_NAMES:
        model.part(name).trainable = name in stage.trainable


class Trainer:
    """Runs the stages of `cfg.train.stages` in order on `strategy`.

    Hooks for a caller that needs more than the final model (the main job,
    `training/main_job.py`):

    * `on_stage_end(index, stage, model)`: called on the chief when stage `index` has finished
      training in this process, with every weight of the model in memory (BatchNormalization's
      moving statistics included, which the stage checkpoints do not restore on their own).
      The main job saves its per-stage snapshots there.
    * `start_index` and `initial_weights`: start at stage `start_index` from the weights file
      `initial_weights` (`model.save_weights`), the earlier stages counted as done elsewhere.
      The main job's control arm is this: the schedule from the depth warm-up's snapshot with
      the structure losses left out. A stage keeps its index, so it draws the same data seeds
      (`stream_seed`) as the same stage of the full schedule.
    """

    def __init__(
        self,
        cfg: Config,
        strategy: tf.distribute.Strategy | None = None,
        run_dir: str | pathlib.Path | None = None,
        progress=print,
        *,
        on_stage_end: Callable[[int, StageConfig, keras.Model], None] | None = None,
        start_index: int = 0,
        initial_weights: str | pathlib.Path | None = None,
    ):
        if not 0 <= start_index < len(cfg.train.stages):
            raise ValueError(
                f"start_index must index train.stages (0..{len(cfg.train.stages) - 1}), "
                f"got {start_index}"
            )
        if start_index and initial_weights is None:
            raise ValueError("start_index > 0 needs initial_weights (the model at that point)")
        self.cfg = cfg
        self.on_stage_end = on_stage_end
        self.start_index = start_index
        self.run_dir = pathlib.Path(run_dir or cfg.train.run_dir)
        self.progress = progress
        runtime.set_precision(cfg.runtime)
        keras.utils.set_random_seed(cfg.train.seed)  # same init and data order on a rerun
        self.strategy = strategy or runtime.make_strategy(cfg.runtime)
        self.chief = runtime.is_chief(self.strategy)
        self.num_replicas = self.strategy.num_replicas_in_sync
        with self.strategy.scope():
            self.model = build_model(cfg)
        if self.chief:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(cfg.to_yaml())
        self._state_path = self.run_dir / "state.json"
        self._metrics_path = self.run_dir / "metrics.json"
        self.metrics = self._load_json(self._metrics_path, {"stages": {}, "validation": []})
        self._writers = {}
        # Non-chief workers' checkpoint copies: per process, removed by `close`.
        self._scratch = None if self.chief else pathlib.Path(tempfile.mkdtemp(prefix="kp3d_"))
        # Index of the last stage trained in this process: its weights are in memory.
        self._trained_here = None
        if self.chief:
            self._remove_interrupted_saves()
        if initial_weights is not None and not self._any_checkpoint():
            # A resumed run continues from its own checkpoints instead.
            self.model.load_weights(initial_weights)

    # ------------------------------------------------------------------------------------------
    # Bookkeeping.
    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _load_json(path: pathlib.Path, default):
        return json.loads(path.read_text()) if path.exists() else default

    def _save_json(self, path: pathlib.Path, value) -> None:
        if self.chief:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(value, indent=2))
            tmp.replace(path)

    def completed_stages(self) -> list[str]:
        return self._load_json(self._state_path, {"completed": []})["completed"]

    def _any_checkpoint(self) -> bool:
        return any(
            tf.train.latest_checkpoint(str(self._stage_dir(i, stage)))
            for i, stage in enumerate(self.cfg.train.stages)
        )

    def _stage_dir(self, index: int, stage: StageConfig) -> pathlib.Path:
        return self.run_dir / "checkpoints" / f"{index:02d}_{stage.name}"

    def _writer(self, name: str):
        if name not in self._writers:
            # Summaries hold already-reduced values: only the chief needs to write them.
            self._writers[name] = (
                tf.summary.create_file_writer(str(self.run_dir / "logs" / name))
                if self.chief
                else tf.summary.create_noop_writer()
            )
        return self._writers[name]

    def _remove_interrupted_saves(self) -> None:
        """Delete `ckpt-N_temp/` folders: a checkpoint save writes its shards there and merges
        them into ckpt-N.* at the end, so one that remains was interrupted."""
        for temp in sorted((self.run_dir / "checkpoints").glob("*/*_temp*")):
            if temp.is_dir():
                shutil.rmtree(temp)
            else:
                temp.unlink()
            self.progress(f"removed {temp}, left by an interrupted checkpoint save")

    def close(self) -> None:
        """Close the summary writers and delete a non-chief worker's scratch folder."""
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    # ------------------------------------------------------------------------------------------
    # Data.
    # ------------------------------------------------------------------------------------------
    def stream_seed(self, index: int, start_step: int) -> int:
        """The data seed of stage `index` (re)started at `start_step`.

        A resumed stage must not replay the batches it already trained on. Skipping them would
        decode and augment every consumed batch again (hours for a late resume), and a
        tf.train.Checkpoint of the iterator cannot work under MultiWorkerMirroredStrategy:
        each worker reads its own shard of the input, but only the chief's checkpoint is kept.
        A seed drawn from (train.seed, stage, step) gives a fresh, reproducible order instead.
        """
        return int(
            np.random.SeedSequence([self.cfg.train.seed, index, start_step]).generate_state(1)[0]
            >> 1
        )

    def _train_dataset(self, stage: StageConfig, index: int = 0, start_step: int = 0):
        d = self.cfg.data
        global_batch = self.cfg.train.batch_size
        seed = self.stream_seed(index, start_step)

        def dataset_fn(ctx: tf.distribute.InputContext):
            # make_dataset takes the GLOBAL batch and splits it with the input context. With
            # the OpenCV warp the batches' last half (image conversion, heatmaps) runs in the
            # step, on the replica's device: uint8 crops to copy there, less work for the input
            # threads. (The TensorFlow warp's batches would carry padded stored crops.)
            ds = kp_dataset.make_dataset(
                d,
                split="train",
                batch_size=global_batch,
                samples=stage.samples,
                seed=seed,
                input_context=ctx,
                finish_in_step=d.augment.warp == "opencv",
            )
            return ds

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def _val_dataset(self):
        d = self.cfg.data
        ds = kp_dataset.make_dataset(
            d, split="validation", batch_size=max(2, self.cfg.train.batch_size)
        )
        return ds.take(math.ceil(d.val_examples / max(2, self.cfg.train.batch_size)))

    # ------------------------------------------------------------------------------------------
    # Validation: MPJPE in mm on 3D samples, root-relative (Protocol 1).
    # ------------------------------------------------------------------------------------------
    def validate(self) -> float:
        """Protocol 1 MPJPE (mm, 16 joints) of the current model on the validation records.

        Predictions are turned into camera mm with the ground-truth root depth and crop
        intrinsics (the paper's assumption of a known global position; the prediction pass of
        `models.prediction`, as evaluation and predict_sequences run it), on the samples with
        3D ground truth, then both poses are made root-relative.
        """
        batches = (
            {
                "image": inputs["image"],
                "intrinsics": targets["intrinsics"],
                "root_depth": targets["root_depth"],
                "joints_3d": targets["joints_3d"],
                "keep": targets["has_3d"].numpy() > 0.5,
            }
            for inputs, targets in self._val_dataset()
        )
        errors = [
            kp_metrics.mpjpe(pred["pose_mm"], rows["joints_3d"], root=skeleton.ROOT)
            for rows, pred in prediction.predict_batches(
                prediction.keras_predictor(self.model), batches, self.cfg.data.input_size
            )
        ]
        if not errors:
            return float("nan")
        return float(np.mean(np.concatenate(errors)))

    # ------------------------------------------------------------------------------------------
    # One stage.
    # ------------------------------------------------------------------------------------------
    def _make_step(self, stage: StageConfig, optimizer):
        model, cfg = self.model, self.cfg
        names = tuple(stage.losses)
        global_batch = cfg.train.batch_size
        scale_loss = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        train_vars = model.trainable_variables

        def grads_fn(images, targets):
            outputs = model(images, training=True)
            terms = objective.per_sample_terms(outputs, targets, names, cfg.loss)
            loss, sums, counts = objective.total_loss(terms, global_batch)
            scaled = optimizer.scale_loss(loss) if scale_loss else loss
            # Not tf.GradientTape: its AddN sums add in an order that depends on thread
            # scheduling (training/sums.py).
            grads = fixed_order.gradients(scaled, train_vars)
            return loss, sums, counts, grads

        if cfg.runtime.xla:
            grads_fn = tf.function(grads_fn, jit_compile=True)

        def replica_step(batch):
            # A dict: a batch of make_dataset(..., finish_in_step=True), finished here; else
            # (inputs, targets) as they are.
            inputs, targets = (
                kp_dataset.finish_batch(batch, cfg.data) if isinstance(batch, dict) else batch
            )
            loss, sums, counts, grads = grads_fn(inputs["image"], targets)
            optimizer.apply_gradients(zip(grads, train_vars))
            return loss, sums, counts

        @tf.function
        def train_step(iterator):
            loss, sums, counts = self.strategy.run(replica_step, args=(next(iterator),))
            reduce = lambda v: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
            return (
                reduce(loss),
                {k: reduce(v) for k, v in sums.items()},
                {k: reduce(v) for k, v in counts.items()},
            )

        return train_step

    def _make_sync(self):
        """A function that sets every float non-trainable weight (BatchNorm's moving mean and
        variance) to its mean over all replicas.

        Each replica updates its moving statistics from its own share of the batch, so
        replicas drift apart (under MultiWorkerMirroredStrategy, each worker keeps its own
        copy). The moving average is linear in the batch statistics, so averaging at the
        points where the weights are used (validation, checkpoints, the end of a stage)
        equals averaging after every step. A collective: every worker calls it at the same
        steps.
        """
        variables = [
            v
            for v in self.model.non_trainable_variables
            if np.issubdtype(np.dtype(v.dtype), np.floating)
        ]

        def replica_sync():
            ctx = tf.distribute.get_replica_context()
            # Tensors, not the variables: a variable's "destinations" are its own devices.
            values = [tf.identity(v.value) for v in variables]
            means = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, values)
            for v, m in zip(variables, means):
                v.assign(m)

        @tf.function
        def sync():
            self.strategy.run(replica_sync)

        return sync

    def run_stage(self, index: int, stage: StageConfig) -> StageResult:
        cfg = self.cfg
        _set_trainable(self.model, stage)
        with self.strategy.scope():
            optimizer = _make_optimizer(stage, cfg.runtime.precision)
            optimizer.build(self.model.trainable_variables)
            step = tf.Variable(0, dtype=tf.int64, trainable=False, name="stage_step")
        ckpt = tf.train.Checkpoint(model=self.model, optimizer=optimizer, step=step)
        stage_dir = self._stage_dir(index, stage)
        directory = stage_dir if self.chief else self._scratch / stage_dir.name
        manager = tf.train.CheckpointManager(ckpt, str(directory), max_to_keep=2)
        # Every worker resumes from the chief's checkpoints.
        latest = tf.train.latest_checkpoint(str(stage_dir))
        if latest:
            ckpt.restore(latest).assert_existing_objects_matched()
            # A checkpoint at the stage's last step was followed by its final validation,
            # which the resume makes again.
            self._drop_validation_after(stage.name, min(int(step.numpy()), stage.steps - 1))
            self.progress(
                f"[{stage.name}] resumed from {latest} at step {int(step.numpy())}/{stage.steps}"
            )
        elif self._trained_here != index - 1:
            # Not after a stage trained in this process, whose weights are already in memory
            # (and whose last checkpoint another worker's chief may still be writing).
            self._restore_previous_stage(index)

        train_step = self._make_step(stage, optimizer)
        sync = self._make_sync()
        iterator = iter(self._train_dataset(stage, index, int(step.numpy())))
        writer = self._writer("train")
        losses_avg: dict[str, float] = {}
        t_start = time.time()
        t_log, step_log = time.time(), int(step.numpy())
        while int(step.numpy()) < stage.steps:
            loss, sums, counts = train_step(iterator)
            loss = float(loss.numpy())
            term_means = {
                k: float(sums[k].numpy()) / max(float(counts[k].numpy()), 1.0) for k in sums
            }
            bad = [k for k, v in term_means.items() if not math.isfinite(v)]
            if bad or not math.isfinite(loss):
                raise TrainingDiverged(
                    f"stage '{stage.name}' step {int(step.numpy()) + 1}: loss term(s) "
                    f"{bad or ['total']} became non-finite ({term_means}); stopped without "
                    f"saving, the last good checkpoint in {stage_dir} is kept"
                )
            step.assign_add(1)
            s = int(step.numpy())
            for k, v in term_means.items():
                losses_avg[k] = v if k not in losses_avg else 0.9 * losses_avg[k] + 0.1 * v
            if s % cfg.train.log_every == 0 or s == stage.steps:
                now = time.time()
                rate = (s - step_log) * cfg.train.batch_size / max(now - t_log, 1e-9)
                eta = (stage.steps - s) * cfg.train.batch_size / max(rate, 1e-9)
                terms = " ".join(f"{k}={v:.4g}" for k, v in losses_avg.items())
                self.progress(
                    f"[{stage.name} {index + 1}/{len(cfg.train.stages)}] step "
                    f"{s}/{stage.steps} loss={loss:.4g} {terms} | "
                    f"{rate:.1f} img/s, eta {eta:.0f}s"
                )
                t_log, step_log = now, s
                with writer.as_default(step=self._global_step(index, s)):
                    tf.summary.scalar("loss/total", loss)
                    for k, v in term_means.items():
                        tf.summary.scalar(f"loss/{k}", v)
                    lr = optimizer.learning_rate
                    tf.summary.scalar("learning_rate", float(tf.convert_to_tensor(lr).numpy()))
            save = s % cfg.train.checkpoint_every == 0 and s < stage.steps
            evaluate = s % cfg.train.eval_every == 0 and s < stage.steps
            if save or evaluate:
                sync()
            if save:
                manager.save(checkpoint_number=s)
            if evaluate:
                self._record_validation(stage.name, index, s)
        sync()
        manager.save(checkpoint_number=int(step.numpy()))
        self._trained_here = index
        self._record_validation(stage.name, index, stage.steps)
        if self.on_stage_end is not None and self.chief:
            self.on_stage_end(index, stage, self.model)
        return StageResult(stage.name, stage.steps, losses_avg, time.time() - t_start)

    def _global_step(self, index: int, step: int) -> int:
        return sum(s.steps for s in self.cfg.train.stages[:index]) + step

    def _restore_previous_stage(self, index: int) -> None:
        for prev in range(index - 1, -1, -1):
            prev_dir = self._stage_dir(prev, self.cfg.train.stages[prev])
            latest = tf.train.latest_checkpoint(str(prev_dir))
            if latest:
                # Only the weights carry over; each stage starts a fresh optimizer.
                tf.train.Checkpoint(model=self.model).restore(latest).expect_partial()
                self.progress(
                    f"weights from the end of stage '{self.cfg.train.stages[prev].name}' ({latest})"
                )
                return

    def _drop_validation_after(self, stage_name: str, step: int) -> None:
        """Forget validation entries of `stage_name` made after `step`: they measured weights
        that a resume from the step-`step` checkpoint throws away, and are made again."""
        kept = [
            v
            for v in self.metrics["validation"]
            if not (v["stage"] == stage_name and v["step"] > step)
        ]
        if len(kept) != len(self.metrics["validation"]):
            self.metrics["validation"] = kept
            self._save_json(self._metrics_path, self.metrics)

    def _record_validation(self, stage_name: str, index: int, step: int) -> float:
        if not self.chief:
            # Only the chief records it; the others wait for it at the next collective.
            return float("nan")
        value = self.validate()
        self.progress(f"[{stage_name}] validation MPJPE (Protocol 1, 16 joints): {value:.1f} mm")
        self.metrics["validation"].append(
            {
                "stage": stage_name,
                "step": step,
                "global_step": self._global_step(index, step),
                "mpjpe_mm": value,
            }
        )
        self._save_json(self._metrics_path, self.metrics)
        with self._writer("validation").as_default(step=self._global_step(index, step)):
            tf.summary.scalar("mpjpe_mm", value)
        return value

    # ------------------------------------------------------------------------------------------
    # The whole schedule.
    # ------------------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Run every stage not yet completed; returns the metrics dict (also in metrics.json)."""
        try:
            return self._fit()
        finally:
            self.close()

    def _fit(self) -> dict:
        done = self.completed_stages()
        if (
            self.chief
            and "untrained_mpjpe_mm" not in self.metrics
            and not done
            and not self.start_index
        ):
            self.metrics["untrained_mpjpe_mm"] = self.validate()
            self.progress(
                f"untrained model: validation MPJPE {self.metrics['untrained_mpjpe_mm']:.1f} mm"
            )
        for index, stage in enumerate(self.cfg.train.stages):
            if index < self.start_index:
                continue
            if stage.name in done:
                self.progress(f"[{stage.name}] already completed, skipped")
                continue
            result = self.run_stage(index, stage)
            done = done + [stage.name]
            self._save_json(self._state_path, {"completed": done})
            self.metrics["stages"][stage.name] = {
                "steps": result.steps,
                "final_losses": result.final_losses,
                "seconds": round(result.seconds, 1),
            }
            self._save_json(self._metrics_path, self.metrics)
        # The final weights are those of the last stage's last checkpoint: in memory when this
        # process trained it, else (a resume that found every stage completed) restored.
        if self._trained_here != len(self.cfg.train.stages) - 1:
            self._restore_previous_stage(len(self.cfg.train.stages))
        self.metrics["final_mpjpe_mm"] = self.validate()
        self._save_json(self._metrics_path, self.metrics)
        self.save_final_model()
        # Every worker prints it: under a multi-worker strategy they must all agree.
        self.progress(
            f"final weights ({runtime.worker_description()}): sha256 {weights_digest(self.model)}"
        )
        return self.metrics

    def save_final_model(self) -> pathlib.Path:
        """RUN_DIR/sap_net.keras with float32 weights (what export and evaluate load)."""
        path = self.run_dir / SAP_NET_FILE
        if self.chief:
            self.model.save(path)
        return path
