"""Resumable Keras `fit`: model, optimizer, epoch and history in one checkpoint per epoch.

    resume = ResumableFit(model, RUN_DIR / "resume")
    initial_epoch = resume.restore()          # 0 on a fresh start
    model.fit(..., initial_epoch=initial_epoch, callbacks=[resume])
    resume.history                             # one dict of logs per epoch, every epoch
    resume.finish()                            # after the final model is safely written

Why not `keras.callbacks.BackupAndRestore`: it writes the weights, then the epoch counter, as
two separate files rewritten in place; a kill -9 between the two resumes with one epoch's weights
and another's counter, and a kill during the weights write leaves a truncated .h5. Here a
`tf.train.CheckpointManager` holds model, optimizer (Adam moments, step), the epoch counter and
the per-epoch logs: it commits a checkpoint by atomically rewriting its `checkpoint` state file
after the data files are complete, so whatever the latest checkpoint is, it is whole and its
parts belong together (the SAP-Net trainer resumes the same way).

A resumed run continues from the last completed epoch with the same weights and optimizer state;
the batch order of the remaining epochs differs from an uninterrupted run's (the shuffling RNG
is not checkpointed), which only changes the result within training noise.
"""

from __future__ import annotations

import json
import pathlib
import shutil

import keras
import tensorflow as tf


class ResumableFit(keras.callbacks.Callback):
    """Checkpoints after every epoch and restores the last one (module docstring).

    Args:
        model: a built, compiled Keras model (its optimizer is built here before restoring).
        directory: where the checkpoints live; deleted by `finish`.
    """

    def __init__(self, model: keras.Model, directory: str | pathlib.Path):
        super().__init__()
        if not model.built or model.optimizer is None:
            raise ValueError("ResumableFit needs a built and compiled model")
        self.directory = pathlib.Path(directory)
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self._logs = tf.Variable("[]", dtype=tf.string, trainable=False, name="history")
        self._checkpoint = tf.train.Checkpoint(
            model=model, optimizer=model.optimizer, epoch=self._epoch, history=self._logs
        )
        # One kept checkpoint: the manager deletes the previous one only after the new one is
        # committed, so a kill at any point leaves one whole checkpoint.
        self._manager = tf.train.CheckpointManager(
            self._checkpoint, str(self.directory), max_to_keep=1
        )
        self.history: list[dict] = []

    @property
    def latest(self) -> str | None:
        """Path prefix of the checkpoint `restore` would load, None when there is none."""
        return self._manager.latest_checkpoint

    def restore(self) -> int:
        """Load the latest checkpoint if there is one; returns the epoch to continue from."""
        if self.latest is None:
            return 0
        self._checkpoint.restore(self.latest).assert_existing_objects_matched()
        self.history = json.loads(self._logs.numpy().decode("utf-8"))
        epoch = int(self._epoch.numpy())
        if len(self.history) != epoch:
            raise ValueError(
                f"checkpoint {self.latest} is inconsistent: epoch {epoch} but "
                f"{len(self.history)} logged epochs"
            )
        return epoch

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": int(epoch), **{k: float(v) for k, v in (logs or {}).items()}}
        self.history = self.history[:epoch] + [entry]
        self._epoch.assign(epoch + 1)
        self._logs.assign(json.dumps(self.history))
        self._manager.save(checkpoint_number=epoch + 1)

    def finish(self) -> None:
        """Delete the checkpoints: call it once the trained model is written for good."""
        shutil.rmtree(self.directory, ignore_errors=True)
