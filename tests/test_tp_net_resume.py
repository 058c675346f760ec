"""TP-Net training survives kill -9: the rerun resumes at the last completed epoch."""

import json
import pathlib
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_pose3d import temporal_config
from keras_pose3d.training import temporal
from tests.test_tp_net import _write_predictions

ROOT = pathlib.Path(__file__).resolve().parents[1]
EPOCHS = 6
KILL_EPOCH = 3  # killed in the middle of the 4th epoch (0-based 3), after its first batch

# Runs temporal_train in a child process. With a kill epoch, a callback records each finished
# epoch's logs and SIGKILLs its own process in the middle of that epoch (kill -9: no cleanup,
# no exception handler runs); without one, it records the epochs the run begins.
_CHILD = """
import json, os, signal, sys
import keras
from keras_pose3d import temporal_config
from keras_pose3d.training import temporal

config_path, log_path, kill_epoch = sys.argv[1], sys.argv[2], int(sys.argv[3])
log = {"begun": [], "ended": {}}

class Probe(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        log["begun"].append(epoch)
        open(log_path, "w").write(json.dumps(log))
    def on_epoch_end(self, epoch, logs=None):
        log["ended"][epoch] = {k: float(v) for k, v in logs.items()}
        open(log_path, "w").write(json.dumps(log))
    def on_train_batch_end(self, batch, logs=None):
        if log["begun"][-1] == kill_epoch and batch == 1:
            os.kill(os.getpid(), signal.SIGKILL)

temporal.train(temporal_config.load_config(config_path), callbacks=[Probe()])
"""


def _child(config, log, kill_epoch):
    return subprocess.run(
        [sys.executable, "-c", _CHILD, str(config), str(log), str(kill_epoch)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _config(tmp_path, **train):
    _write_predictions(tmp_path / "train.npz", seed=1, sequences=2, frames=40)
    settings = dict(epochs=EPOCHS, batch_size=16, learning_rate=1e-3, **train)
    path = tmp_path / f"temporal-{len(train)}.yaml"
    path.write_text(
        f"data: {{train: {tmp_path / 'train.npz'}, val: ''}}\n"
        "model: {window: 4, hidden: 16, frame_rate: 10.0}\n"
        f"train: {json.dumps(settings)}\n"
        f"run_dir: {tmp_path / 'run'}\n"
    )
    return path


@pytest.mark.slow
def test_kill_9_during_training_then_rerun_finishes_all_epochs_once(tmp_path):
    config = _config(tmp_path)
    run = tmp_path / "run"
    killed = _child(config, tmp_path / "first.json", KILL_EPOCH)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    first = json.loads((tmp_path / "first.json").read_text())
    assert first["begun"] == list(range(KILL_EPOCH + 1)), first
    assert not (run / temporal.MODEL_FILE).exists()  # nothing half written under the name
    assert (run / temporal.RESUME_DIR / "checkpoint").is_file()

    # A different config must not pick up this run's weights and epoch counter.
    other = _config(tmp_path, seed=5)
    with pytest.raises(ValueError, match=r"resume.*differs.*delete"):
        temporal.train(temporal_config.load_config(other))

    again = _child(config, tmp_path / "second.json", -1)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming" in again.stderr and f"epoch {KILL_EPOCH + 1}/{EPOCHS}" in again.stderr
    second = json.loads((tmp_path / "second.json").read_text())
    assert second["begun"] == list(range(KILL_EPOCH, EPOCHS)), second  # no epoch run twice

    history = json.loads((run / temporal.HISTORY_FILE).read_text())
    assert [h["epoch"] for h in history] == list(range(EPOCHS))
    # The epochs finished before the kill keep their logged losses (restored, not re-run) ...
    for epoch in range(KILL_EPOCH):
        assert history[epoch]["loss"] == first["ended"][str(epoch)]["loss"], epoch
    # ... and the resumed ones are the second run's.
    for epoch in range(KILL_EPOCH, EPOCHS):
        assert history[epoch]["loss"] == second["ended"][str(epoch)]["loss"], epoch
    assert not (run / temporal.RESUME_DIR).exists()
    assert not list(run.glob(".tmp-*"))
    model = keras.saving.load_model(run / temporal.MODEL_FILE)
    assert model.window == 4 and model.frame_rate == 10.0
    x = np.ones((1, 4, 16, 3), np.float32)
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(model(x))))


def test_crash_after_the_last_epoch_resumes_to_the_same_model_without_training(tmp_path):
    """Killed between the last checkpoint and the final save: the rerun trains 0 epochs."""

    trained = {}

    class CrashAtEnd(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            trained["weights"] = [np.array(w) for w in self.model.get_weights()]
            raise RuntimeError("crash before the model is saved")

    config = temporal_config.load_config(_config(tmp_path), ["train.epochs=2"])
    with pytest.raises(RuntimeError, match="crash before"):
        temporal.train(config, callbacks=[CrashAtEnd()])
    assert not (tmp_path / "run" / temporal.MODEL_FILE).exists()
    result = temporal.train(config)
    assert result["initial_epoch"] == 2 and result["epochs"] == 2
    history = json.loads((tmp_path / "run" / temporal.HISTORY_FILE).read_text())
    assert [h["epoch"] for h in history] == [0, 1]
    model = keras.saving.load_model(tmp_path / "run" / temporal.MODEL_FILE)
    assert model.window == 4
    # The trained weights of the crashed run, not a fresh initialisation.
    for got, want in zip(model.get_weights(), trained["weights"], strict=True):
        np.testing.assert_array_equal(got, want)


def test_restore_loads_weights_optimizer_state_epoch_and_history(tmp_path):
    """ResumableFit restores what it saved, into a model initialised differently."""
    from keras_pose3d.models.tp_net import TPNet
    from keras_pose3d.resumable_fit import ResumableFit

    rng = np.random.default_rng(0)
    x = rng.normal(0, 100, (32, 3, 16, 3)).astype(np.float32)
    y = rng.normal(0, 100, (32, 16, 3)).astype(np.float32)

    def make(seed):
        keras.utils.set_random_seed(seed)
        model = TPNet(window=3, hidden=8)
        model.build(x[:1].shape)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        return model

    first = make(0)
    fit = ResumableFit(first, tmp_path / "resume")
    assert fit.restore() == 0
    first.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[fit])
    second = make(1)
    assert not np.array_equal(second.get_weights()[0], first.get_weights()[0])
    again = ResumableFit(second, tmp_path / "resume")
    assert again.restore() == 2
    assert again.history == fit.history and [h["epoch"] for h in again.history] == [0, 1]
    for got, want in zip(second.get_weights(), first.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    # Adam: 2 epochs x 4 batches, and its moments.
    assert int(second.optimizer.iterations.numpy()) == 8
    for got, want in zip(second.optimizer.variables, first.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    again.finish()
    assert not (tmp_path / "resume").exists()
