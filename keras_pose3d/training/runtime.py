"""Distribution strategy, threads and precision from `RuntimeConfig`.

Everything that must happen before a model is built lives here: the precision policy is global
in Keras, and variables must be created inside the strategy's scope.

Order matters at start-up: thread pools and MultiWorkerMirroredStrategy's collective ops can
only be configured before TensorFlow initialises its runtime, which the first eager op, device
listing or dataset does. `start` does both and must be the first thing a run does
(`keras_pose3d.training.run.run`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable

import keras
import tensorflow as tf

from keras_pose3d.config import RuntimeConfig

log = logging.getLogger(__name__)


def start(cfg: RuntimeConfig) -> tf.distribute.Strategy:
    """Configure the thread pools, then create the strategy: call before anything else in TF."""
    configure_threads(cfg)
    return make_strategy(cfg)


def configure_threads(cfg: RuntimeConfig) -> None:
    """Limit TensorFlow's thread pools (0 keeps TensorFlow's default)."""
    try:
        if cfg.intra_op_threads:
            tf.config.threading.set_intra_op_parallelism_threads(cfg.intra_op_threads)
        if cfg.inter_op_threads:
            tf.config.threading.set_inter_op_parallelism_threads(cfg.inter_op_threads)
    except RuntimeError as e:  # TF already initialised: a caller broke the start-up order
        raise RuntimeError(
            "runtime.intra_op_threads / inter_op_threads must be set before TensorFlow "
            f"initialises; call keras_pose3d.training.runtime.start first ({e})"
        ) from None


def make_strategy(cfg: RuntimeConfig) -> tf.distribute.Strategy:
    """The strategy named by `cfg.strategy`.

    * `default`: one device (the first GPU if any).
    * `mirrored`: synchronous data parallelism over `cfg.devices` or every local GPU (falls back
      to the CPU when there is none, so the same config runs on a laptop).
    * `multi_worker`: MultiWorkerMirroredStrategy; the cluster comes from the TF_CONFIG
      environment variable that Kubernetes / Vertex / a launcher sets on each worker.
    """
    if cfg.strategy == "default":
        return tf.distribute.get_strategy()
    if cfg.strategy == "mirrored":
        devices = list(cfg.devices) or None
        if devices is None and not tf.config.list_logical_devices("GPU"):
            devices = ["/cpu:0"]
        return tf.distribute.MirroredStrategy(devices)
    if cfg.strategy == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            log.warning("runtime.strategy=multi_worker without TF_CONFIG: running as one worker")
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=cfg.collective_timeout_s or None
        )
        try:
            return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        except RuntimeError as e:
            if "program startup" not in str(e):
                raise
            raise RuntimeError(
                "runtime.strategy=multi_worker: TensorFlow was initialised before the strategy "
                "was created; create it first (keras_pose3d.training.runtime.start) "
                f"({e})"
            ) from None
    raise ValueError(f"runtime.strategy: unknown strategy {cfg.strategy!r}")


def set_precision(cfg: RuntimeConfig) -> None:
    """Set the global Keras dtype policy. Loss math and model heads stay float32 regardless."""
    keras.mixed_precision.set_global_policy(cfg.precision)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes checkpoints, logs and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (
        task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().jobs
    )


def worker_description() -> str:
    """A one-line summary of TF_CONFIG for the progress output."""
    tf_config = os.environ.get("TF_CONFIG")
    if not tf_config:
        return "single worker"
    task = json.loads(tf_config).get("task", {})
    return f"worker {task.get('type')}:{task.get('index')}"


def wait_for(
    ready: Callable[[], bool], what: str, timeout_s: float, progress=print, poll_s: float = 0.5
) -> None:
    """Poll `ready` until it is true; raise TimeoutError naming `what` after `timeout_s`
    (0: wait forever)."""
    t0 = time.monotonic()
    progress(f"{worker_description()}: waiting for {what}")
    while not ready():
        if timeout_s and time.monotonic() - t0 > timeout_s:
            raise TimeoutError(
                f"{worker_description()}: waited {timeout_s:.0f}s "
                f"(runtime.collective_timeout_s) for {what}"
            )
        time.sleep(poll_s)
