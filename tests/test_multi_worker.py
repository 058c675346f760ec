"""Two MultiWorkerMirroredStrategy workers on 127.0.0.1, run as the README says.

Each worker is `python -m keras_pose3d.train --config tests/configs/multi_worker_tiny.yaml
--set runtime.strategy=multi_worker` with its own `TF_CONFIG`, one TF thread per pool so two
fit on two cores. One scenario (each worker start costs seconds of imports and tracing):

1. A fresh run; worker 1 runs in a folder of its own that shares only the data with the chief,
   so anything it wrote where its config points would appear there. Worker 1 is killed in the
   middle of stage 3: the chief exits with a clear error within the documented bound
   (TensorFlow's coordination service / `runtime.collective_timeout_s`).
2. Both commands again, the run directory now shared: both resume from the chief's last
   checkpoint and finish all four stages, evaluation and export. Only the chief wrote the run
   directory and the SavedModel, worker 1's scratch folder is gone, both print the same SHA-256
   of their final weights (also the digest of the chief's saved model), and metrics.json holds
   one validation entry per (stage, step).
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

    def __init__(
        self,
        index: int,
        ports: list[int],
        cwd: pathlib.Path,
        log: pathlib.Path,
        extra=(),
        tmpdir: pathlib.Path | None = None,
    ):
        tf_config = {
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": "worker", "index": index},
        }
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps(tf_config),
            PYTHONPATH=str(ROOT),
            TF_CPP_MIN_LOG_LEVEL="2",
            PYTHONUNBUFFERED="1",
        )
        if tmpdir is not None:
            env["TMPDIR"] = str(tmpdir)
        cmd = [
            sys.executable,
            "-m",
            "keras_pose3d.train",
            "--config",
            str(CONFIG),
            "--set",
            "runtime.strategy=multi_worker",
            "--set",
            "runtime.intra_op_threads=1",
            "--set",
            "runtime.inter_op_threads=1",
            "--set",
            f"runtime.collective_timeout_s={COLLECTIVE_TIMEOUT_S}",
            *extra,
        ]
        self.log = log
        self._out = open(log, "w")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=self._out, stderr=subprocess.STDOUT
        )

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


def _wait_for_line(worker: Worker, pattern: str, timeout: float) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if re.search(pattern, worker.text(), re.MULTILINE):
            return
        if worker.proc.poll() is not None:
            pytest.fail(f"worker exited before '{pattern}':\n{worker.text()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"no '{pattern}' after {timeout}s:\n{worker.text()[-3000:]}")


def test_two_workers_kill_resume_and_only_the_chief_writes(tmp_path):
    chief_dir, other_dir = tmp_path / "chief", tmp_path / "worker1"
    tmp1, tmp2 = tmp_path / "worker1_tmp1", tmp_path / "worker1_tmp2"
    for d in (chief_dir, other_dir, tmp1, tmp2):
        d.mkdir()
    # Run 1 shares only the data with worker 1 (it waits for the chief to generate it): any
    # file worker 1 wrote where its config points would land in its own folder.
    (other_dir / "data").symlink_to(chief_dir / "data", target_is_directory=True)
    # A longer 'structure' stage, checkpointed every 5 steps, validated every 3: killed after
    # step 7, the run holds a validation entry (step 6) newer than its checkpoint (step 5).
    extra = [
        "--set",
        "train.stages.structure.steps=16",
        "--set",
        "train.checkpoint_every=5",
        "--set",
        "train.eval_every=3",
    ]
    cwds = [chief_dir, other_dir]
    workers = _start_pair(
        cwds, [tmp_path / "run1_w0.log", tmp_path / "run1_w1.log"], extra, tmpdirs=(None, tmp1)
    )
    try:
        _wait_for_line(workers[0], r"^\[structure 3/4\] step 7/16", timeout=900)
        workers[1].kill()
        t_kill = time.monotonic()
        code = workers[0].wait(timeout=DETECT_BOUND_S + 60)
        detect_s = time.monotonic() - t_kill
    finally:
        for w in workers:
            w.kill()
    survivor = workers[0].text()
    assert code == 4, survivor[-3000:]
    assert detect_s < DETECT_BOUND_S, f"took {detect_s:.0f}s to notice the lost worker"
    assert re.search(
        r"^error: worker worker:0: stopped, another worker died", survivor, re.MULTILINE
    ), survivor[-3000:]
    print(f"survivor exited {detect_s:.1f}s after the kill")
    assert "waiting for the chief to generate" in workers[1].text()
    assert _files(other_dir) == ["data"], _files(other_dir)

    run = chief_dir / RUN
    latest = (run / "checkpoints" / "02_structure" / "checkpoint").read_text()
    step = int(re.search(r'model_checkpoint_path: "ckpt-(\d+)"', latest).group(1))
    assert step in (5, 10)
    before = json.loads((run / "metrics.json").read_text())["validation"]

    # Run 2: the run directory is shared storage now (worker 1 resumes from the chief's
    # checkpoints); the SavedModel folder and TMPDIR stay private.
    (other_dir / "runs").symlink_to(chief_dir / "runs", target_is_directory=True)
    workers = _start_pair(
        cwds, [tmp_path / "run2_w0.log", tmp_path / "run2_w1.log"], extra, tmpdirs=(None, tmp2)
    )
    codes = _finish(workers)
    assert codes == [0, 0], "\n".join(w.text()[-3000:] for w in workers)
    for w in workers:
        assert "[pretrain_2d] already completed" in w.text()
        assert "[structure] resumed from" in w.text() and f"at step {step}/16" in w.text()
    assert _files(other_dir) == ["data", "runs"]  # no SavedModel
    assert _files(tmp2) == []  # worker 1's checkpoint scratch is deleted at exit
    assert json.loads((run / "state.json").read_text())["completed"] == [
        "pretrain_2d",
        "depth_warmup",
        "structure",
        "symmetry",
    ]
    for i, name in enumerate(["pretrain_2d", "depth_warmup", "structure", "symmetry"]):
        assert (run / "checkpoints" / f"{i:02d}_{name}" / "checkpoint").is_file()
    assert list((run / "logs" / "train").iterdir())
    assert (run / "eval").is_dir()
    assert (chief_dir / "saved_models" / "sap_net" / "1" / "saved_model.pb").is_file()

    digests = _digests(workers)
    assert set(digests) == {0, 1}, "each worker prints its final weights' digest"
    assert digests[0] == digests[1]
    assert _saved_model_digest(run / "sap_net.keras") == digests[0]

    validation = json.loads((run / "metrics.json").read_text())["validation"]
    keys = [(v["stage"], v["step"]) for v in validation]
    assert len(keys) == len(set(keys)), keys
    assert [s for stage, s in keys if stage == "structure"] == [3, 6, 9, 12, 15, 16]
    # Entries made up to the checkpoint survive the resume unchanged.
    kept = [v for v in before if v["stage"] != "structure" or v["step"] <= step]
    assert validation[: len(kept)] == kept
