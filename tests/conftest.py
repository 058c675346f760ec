"""Test-wide set-up: two logical CPUs so MirroredStrategy code runs with 2 replicas here.

The split must happen before TensorFlow initialises its devices, hence at import time of the
conftest, before any test module imports keras_pose3d's training code.
"""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
import tensorflow as tf

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
except RuntimeError:  # already initialised by a plugin; tests needing 2 replicas will skip
    pass

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REALDATA = SHARED / "realdata"


@pytest.fixture(scope="session")
def realdata() -> pathlib.Path:
    """Path to ../shared/realdata, or skip the test when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data samples not found at {REALDATA}")
    return REALDATA


def require_realdata(*parts: str) -> pathlib.Path:
    """A file under ../shared/realdata, or pytest.skip naming what is missing."""
    path = REALDATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data sample {path} is absent")
    return path


_MIRRORED = None


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One 2-replica MirroredStrategy on the two logical CPUs, shared by every test.

    Collective ops key their instances per process: a second MirroredStrategy over the same
    devices can collide with the first one's instance keys and abort with a shape mismatch,
    so tests share this one.
    """
    global _MIRRORED
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs two logical CPU devices (set up before TensorFlow initialised)")
    if _MIRRORED is None:
        _MIRRORED = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
    return _MIRRORED
