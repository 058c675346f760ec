"""Two MultiWorkerMirroredStrategy workers on 127.0.0.1, run as the README says.

Each worker is `python -m keras_pose3d.train --config tests/configs/multi_worker_tiny.yaml
--set runtime.strategy=multi_worker` with its own `TF_CONFIG`, one TF thread per pool so two
fit on two cores. Checked by values:

* a fresh run through all four stages, evaluation and export: the chief (worker 0) writes the
  run directory and the SavedModel; worker 1 runs in a folder of its own that shares only the
  data (`data -> chief's data`), and that folder (its TMPDIR included) holds nothing afterwards,
  so it wrote nothing anywhere its config points; both print the same SHA-256 of their final
  weights, which is also the digest of the chief's saved model;
* a worker killed mid-stage: the other one exits with an error naming the lost worker within
  the documented bound (`runtime.collective_timeout_s` and TensorFlow's coordination service
  heartbeat), and running both commands again resumes from the chief's last checkpoint, ends
  with equal weights on both, and leaves no duplicate validation entries in metrics.json.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests" / "configs" / "multi_worker_tiny.yaml"
RUN = pathlib.Path("runs") / "multi_worker_tiny"  # train.run_dir in the config, cwd-relative
# runtime.collective_timeout_s for these runs, and the bound a survivor must exit within.
COLLECTIVE_TIMEOUT_S = 20
DETECT_BOUND_S = COLLECTIVE_TIMEOUT_S + 15  # + interpreter shutdown on a loaded CI machine
DIGEST = re.compile(r"final weights \(worker worker:(\d)\): sha256 ([0-9a-f]{64})")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Worker:
    """One worker process; stdout and stderr go to `log`."""

    def __init__(self, index: int, ports: list[int], cwd: pathlib.Path, log: pathlib.Path,
                 extra=(), tmpdir: pathlib.Path | None = None):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                     "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), PYTHONPATH=str(ROOT),
                   TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
        if tmpdir is not None:
            env["TMPDIR"] = str(tmpdir)
        cmd = [sys.executable, "-m", "keras_pose3d.train", "--config", str(CONFIG),
               "--set", "runtime.strategy=multi_worker",
               "--set", "runtime.intra_op_threads=1", "--set", "runtime.inter_op_threads=1",
               "--set", f"runtime.collective_timeout_s={COLLECTIVE_TIMEOUT_S}", *extra]
        self.log = log
        self._out = open(log, "w")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self._out,
                                     stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text()

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._out.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._out.close()


def _start_pair(cwds, logs, extra=(), tmpdirs=(None, None)) -> list[Worker]:
    ports = _free_ports(2)
    return [Worker(i, ports, cwds[i], logs[i], extra, tmpdirs[i]) for i in range(2)]


def _finish(workers: list[Worker], timeout: float = 900) -> list[int]:
    try:
        return [w.wait(timeout) for w in workers]
    except subprocess.TimeoutExpired:
        pytest.fail("a worker hung:\n" + "\n".join(w.text()[-3000:] for w in workers))
    finally:
        for w in workers:
            w.kill()


def _digests(workers: list[Worker]) -> dict[int, str]:
    found = {}
    for w in workers:
        for index, digest in DIGEST.findall(w.text()):
            found[int(index)] = digest
    return found


def _files(root: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _saved_model_digest(path: pathlib.Path) -> str:
    import keras

    from keras_pose3d.training.trainer import weights_digest

    return weights_digest(keras.saving.load_model(path, compile=False))


def test_two_workers_train_all_stages_and_only_the_chief_writes(tmp_path):
    chief_dir, other_dir = tmp_path / "chief", tmp_path / "worker1"
    other_tmp = tmp_path / "worker1_tmp"
    for d in (chief_dir, other_dir, other_tmp):
        d.mkdir()
    # Shared storage is the data only: worker 1 waits for the chief to generate it.
    (other_dir / "data").symlink_to(chief_dir / "data", target_is_directory=True)
    logs = [tmp_path / "worker0.log", tmp_path / "worker1.log"]
    workers = _start_pair([chief_dir, other_dir], logs, tmpdirs=(None, other_tmp))
    codes = _finish(workers)
    assert codes == [0, 0], "\n".join(w.text()[-3000:] for w in workers)

    # Worker 1 wrote nothing: no run directory, no SavedModel, no scratch left in its TMPDIR.
    assert _files(other_dir) == ["data"], _files(other_dir)
    assert _files(other_tmp) == []
    assert "waiting for the chief to generate" in workers[1].text()
    # The chief wrote everything.
    run = chief_dir / RUN
    assert json.loads((run / "state.json").read_text())["completed"] == [
        "pretrain_2d", "depth_warmup", "structure", "symmetry"]
    for i, name in enumerate(["pretrain_2d", "depth_warmup", "structure", "symmetry"]):
        assert (run / "checkpoints" / f"{i:02d}_{name}" / "checkpoint").is_file()
    assert list((run / "logs" / "train").iterdir())
    assert (run / "eval").is_dir()
    assert (chief_dir / "saved_models" / "sap_net" / "1" / "saved_model.pb").is_file()

    digests = _digests(workers)
    assert set(digests) == {0, 1}, "each worker prints its final weights' digest"
    assert digests[0] == digests[1]
    assert _saved_model_digest(run / "sap_net.keras") == digests[0]


def _wait_for_line(worker: Worker, pattern: str, timeout: float) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if re.search(pattern, worker.text(), re.MULTILINE):
            return
        if worker.proc.poll() is not None:
            pytest.fail(f"worker exited before '{pattern}':\n{worker.text()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"no '{pattern}' after {timeout}s:\n{worker.text()[-3000:]}")


def test_killed_worker_fails_the_other_and_both_resume(tmp_path):
    # A longer 'structure' stage, checkpointed every 10 steps, validated every 3: killed after
    # step 13, the run holds a validation entry (step 12) newer than its checkpoint (step 10).
    extra = ["--set", "train.stages.structure.steps=24", "--set", "train.checkpoint_every=10",
             "--set", "train.eval_every=3", "--set", "eval.enabled=false",
             "--set", "export.enabled=false"]
    logs = [tmp_path / "run1_worker0.log", tmp_path / "run1_worker1.log"]
    workers = _start_pair([tmp_path, tmp_path], logs, extra)
    try:
        _wait_for_line(workers[0], r"^\[structure 3/4\] step 13/24", timeout=900)
        workers[1].kill()
        t_kill = time.monotonic()
        code = workers[0].wait(timeout=DETECT_BOUND_S + 30)
        detect_s = time.monotonic() - t_kill
    finally:
        for w in workers:
            w.kill()
    survivor = workers[0].text()
    assert code != 0
    assert detect_s < DETECT_BOUND_S, f"took {detect_s:.0f}s to notice the lost worker"
    assert re.search(r"^error: .*worker", survivor, re.MULTILINE), survivor[-3000:]
    print(f"survivor exited {detect_s:.1f}s after the kill")

    run = tmp_path / RUN
    latest = (run / "checkpoints" / "02_structure" / "checkpoint").read_text()
    step = int(re.search(r'model_checkpoint_path: "ckpt-(\d+)"', latest).group(1))
    assert step == 10
    before = json.loads((run / "metrics.json").read_text())["validation"]
    assert [v["step"] for v in before if v["stage"] == "structure"][-1] > step

    logs = [tmp_path / "run2_worker0.log", tmp_path / "run2_worker1.log"]
    workers = _start_pair([tmp_path, tmp_path], logs, extra)
    codes = _finish(workers)
    assert codes == [0, 0], "\n".join(w.text()[-3000:] for w in workers)
    for w in workers:
        assert "[structure] resumed from" in w.text() and f"at step {step}/24" in w.text()
        assert "[pretrain_2d] already completed" in w.text()
    digests = _digests(workers)
    assert set(digests) == {0, 1} and digests[0] == digests[1]

    validation = json.loads((run / "metrics.json").read_text())["validation"]
    keys = [(v["stage"], v["step"]) for v in validation]
    assert len(keys) == len(set(keys)), keys
    structure = [s for stage, s in keys if stage == "structure"]
    assert structure == [3, 6, 9, 12, 15, 18, 21, 24]
    # Entries made before the checkpoint survive the resume unchanged.
    kept = [v for v in before if v["stage"] != "structure" or v["step"] <= step]
    assert validation[:len(kept)] == kept
