"""benchmarks/gpu_check.py --tiny on the CPU: every figure printed, positive, ratios consistent.

Not a timing test: the figures' sizes are not checked, only that each is a positive finite
number and that every printed ratio is the quotient of the figures it names.
"""

import json
import math
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

EXPECTED = (
    "model forward GFLOP per image",
    "train step float32",
    "train step float32 GFLOP/s",
    "train step mixed_float16",
    "train step mixed_float16 GFLOP/s",
    "train step bf16",
    "train step bf16 GFLOP/s",
    "ratio mixed_float16/float32",
    "ratio bf16/float32",
    "mirrored replicas",
    "ratio mirrored/one device",
    "input pipeline",
    "ratio input pipeline/fastest step",
    "full pipeline batch 1",
    "full pipeline batch 32",
    "tp_net float32 batch 1",
    "tp_net bfloat16 batch 1",
    "ratio tp_net float32/bfloat16",
    "wall",
)


@pytest.mark.slow
def test_tiny_gpu_check_prints_consistent_positive_figures(tmp_path):
    out = tmp_path / "figures.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--tiny", "--json", str(out)],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = {
        m[0]: float(m[1])
        for m in re.findall(
            r"^([A-Za-z][^:\n]*): (-?[0-9.]+(?:e[-+]?\d+)?)", result.stdout, re.MULTILINE
        )
    }
    figures = json.loads(out.read_text())
    assert set(EXPECTED) <= set(printed) and set(printed) == set(figures)
    for name, value in figures.items():
        assert math.isfinite(value) and value > 0, name
        # The printed value is the JSON's, rounded to what was printed.
        assert abs(printed[name] - value) <= 0.5e-2 * max(1.0, abs(value)), name
    # A mirrored step on the CPU-only machine runs on the CPU: one replica.
    assert figures["mirrored replicas"] == 1
    f32 = figures["train step float32"]
    for label in ("mixed_float16", "bf16"):
        assert figures[f"ratio {label}/float32"] == pytest.approx(
            figures[f"train step {label}"] / f32, rel=1e-9
        )
    gflop = figures["model forward GFLOP per image"]
    for label in ("float32", "mixed_float16", "bf16"):
        assert figures[f"train step {label} GFLOP/s"] == pytest.approx(
            figures[f"train step {label}"] * 3 * gflop, rel=1e-9
        )
    rates = {
        label: figures[f"train step {label}"] for label in ("float32", "mixed_float16", "bf16")
    }
    fastest = max(rates, key=rates.get)  # the mirrored step runs in the fastest precision
    mirrored = [name for name in figures if name.startswith("mirrored train step ")]
    assert mirrored == [f"mirrored train step {fastest}"]
    assert figures["ratio mirrored/one device"] == pytest.approx(
        figures[mirrored[0]] / rates[fastest], rel=1e-9
    )
    assert figures["ratio input pipeline/fastest step"] == pytest.approx(
        figures["input pipeline"] / rates[fastest], rel=1e-9
    )
    assert figures["ratio tp_net float32/bfloat16"] == pytest.approx(
        figures["tp_net float32 batch 1"] / figures["tp_net bfloat16 batch 1"], rel=1e-9
    )


def test_the_step_benchmarks_batch_has_the_trainers_batch_form(tmp_path):
    """benchmarks/train_step.py's constant batch has the keys, dtypes and shapes of the batches
    the trainer's pipeline yields (make_dataset(..., finish_in_step=True)), so the timed step
    finishes them as the trainer's does."""
    import numpy as np
    import tensorflow as tf

    from benchmarks.train_step import constant_batch, make_config
    from keras_pose3d.config import DataConfig
    from keras_pose3d.data import dataset
    from tests.test_dataset import _record, _write

    rng = np.random.default_rng(0)
    files = [_write(tmp_path / "a.tfrecord", [_record(i, i % 2 == 0, rng) for i in range(8)])]
    cfg = make_config("quickstart", 4, "float32", False)
    data = DataConfig(
        train_files=tuple(files),
        input_size=cfg.data.input_size,
        heatmap_size=cfg.data.heatmap_size,
        shuffle_buffer=4,
    )
    spec = dataset.make_dataset(data, split="train", batch_size=4, finish_in_step=True).element_spec
    batch = constant_batch(cfg)
    assert set(batch) == set(spec)
    for key, value in batch.items():
        assert tf.as_dtype(value.dtype) == spec[key].dtype, key
        assert spec[key].shape.is_compatible_with(value.shape), key
