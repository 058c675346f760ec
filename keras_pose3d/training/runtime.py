"""Distribution strategy and precision from `RuntimeConfig`.

Everything that must happen before a model is built lives here: the precision policy is global
in Keras, and variables must be created inside the strategy's scope.
"""

from __future__ import annotations

import json
import logging
import os

import keras
import tensorflow as tf

from keras_pose3d.config import RuntimeConfig

log = logging.getLogger(__name__)


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
        return tf.distribute.MultiWorkerMirroredStrategy()
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
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0
                                             and "chief" not in resolver.cluster_spec().jobs)


def worker_description() -> str:
    """A one-line summary of TF_CONFIG for the progress output."""
    tf_config = os.environ.get("TF_CONFIG")
    if not tf_config:
        return "single worker"
    task = json.loads(tf_config).get("task", {})
    return f"worker {task.get('type')}:{task.get('index')}"
