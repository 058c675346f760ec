"""What a GPU machine must show, in one command (at most 8 minutes on one GPU at paper size).

    PYTHONPATH=. python benchmarks/gpu_check.py [--batch 32] [--steps 20] [--json out.json]
    PYTHONPATH=. python benchmarks/gpu_check.py --tiny      # the CPU test's size, seconds

Prints, from one run, on whatever devices TensorFlow sees (the GPU's name first):
  * the paper-size SAP-Net training step (configs/h36m.yaml's model and losses, all five terms,
    a constant half-2D half-3D batch, `benchmarks/train_step.py`'s step) in float32,
    mixed_float16 and mixed_bfloat16: img/s, achieved GFLOP/s (forward FLOPs of
    `models.complexity` x 3 per image) and each mixed policy's ratio to float32;
  * the same step under MirroredStrategy over every visible GPU (the global batch is
    --batch x replicas), in the fastest precision, with its scaling over one device;
  * the trainer's input pipeline's examples/s (`data.dataset.make_dataset` with
    `finish_in_step`: full augmentation, the image conversion and heatmaps left to the step,
    on synthetic records written in-process) against the fastest step's need (the step is
    timed on constant batches of that form, so it includes the last half);
  * the full serving pipeline's frames/s (`predict_jpeg`: 640x480 JPEG bytes -> mm, the
    BatchNorm-folded graph the export writes) at batch 1 and 32;
  * TP-Net's batch-1 latency (`refine`, N = 20, 2 x 4096) in float32 and bfloat16.
Every figure is printed as `name: value unit`; `--json` also writes them to a file. --tiny runs
a one-stack, narrow SAP-Net at the quickstart's 64 px input (`TINY_MODEL`) at a small batch and
a small TP-Net, for the CPU test (tests/test_gpu_check.py), which checks the figures are
positive and the ratios consistent.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import keras
import numpy as np
import tensorflow as tf

from benchmarks.train_step import STEP_PER_FORWARD, make_config, time_steps
from keras_pose3d.config import DataConfig, SyntheticConfig, from_dict
from keras_pose3d.data import dataset, features, synthetic
from keras_pose3d.models.complexity import forward_flops
from keras_pose3d.models.tp_net import TPNet
from keras_pose3d.serving import export, optimize, signatures
from keras_pose3d.training import trainer as kp_trainer

PRECISIONS = (
    ("float32", "float32"),
    ("mixed_float16", "mixed_float16"),
    ("bf16", "mixed_bfloat16"),
)
SIZES = {
    # name: (config of benchmarks/train_step.py, default batch, steps, TP-Net hidden, seconds)
    "paper": ("paper", 32, 20, 4096, 10.0),
    "tiny": ("quickstart", 4, 2, 64, 1.0),
}
# --tiny's model: the quickstart's input and losses, the smallest hourglass. On the CPU the
# run's time is the tracing and first calls of four train steps, which grow with the number of
# layers: on 2 cores they took 72 s with the quickstart's model, 34 s with this one.
TINY_MODEL = {
    "num_stacks": 1,
    "num_features": 16,
    "hourglass_depth": 1,
    "depth_blocks": 1,
    "num_modules": 1,
}


def step_config(size: str, batch: int, precision: str):
    """benchmarks/train_step.py's config for `size`, with `TINY_MODEL` for --tiny."""
    cfg = make_config(SIZES[size][0], batch, precision, False)
    if size != "tiny":
        return cfg
    tree = cfg.to_dict()
    tree["model"].update(TINY_MODEL)
    return from_dict(tree)


class Report:
    """Collects `name: value unit` lines, printed as they come."""

    def __init__(self):
        self.figures = {}

    def add(self, name: str, value: float, unit: str = "", fmt: str = ".2f") -> float:
        self.figures[name] = float(value)
        print(f"{name}: {value:{fmt}} {unit}".rstrip(), flush=True)
        return value


def devices() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    return f"{len(gpus)} GPU(s): {', '.join(names)}" if gpus else "no GPU (CPU only)"


def train_steps(report: Report, size: str, batch: int, steps: int) -> dict:
    """img/s, GFLOP/s per precision and the mixed/float32 ratios; returns {precision: img/s}."""
    cfg = step_config(size, batch, "float32")
    model = kp_trainer.build_model(cfg)
    gflops = forward_flops(model, cfg.data.input_size) / 1e9
    del model
    report.add("model forward GFLOP per image", gflops, "GFLOP", ".3f")
    rates = {}
    for label, policy in PRECISIONS:
        rate = time_steps(step_config(size, batch, policy), steps)
        rates[label] = report.add(f"train step {label}", rate, "img/s")
        report.add(f"train step {label} GFLOP/s", rate * STEP_PER_FORWARD * gflops, "GFLOP/s")
    for label, _ in PRECISIONS[1:]:
        report.add(f"ratio {label}/float32", rates[label] / rates["float32"], "", ".3f")
    return rates


def mirrored_step(report: Report, size: str, batch: int, steps: int, label: str, one: float):
    """The step under MirroredStrategy over every visible GPU (the CPU when there is none)."""
    policy = dict(PRECISIONS)[label]
    replicas = max(1, len(tf.config.list_logical_devices("GPU")))
    cfg = step_config(size, batch * replicas, policy)
    tree = cfg.to_dict()
    tree["runtime"]["strategy"] = "mirrored"
    rate = time_steps(from_dict(tree), steps)
    report.add("mirrored replicas", replicas, "", ".0f")
    report.add(f"mirrored train step {label}", rate, "img/s")
    report.add("ratio mirrored/one device", rate / one, "", ".3f")


def write_records(folder: pathlib.Path, frames: int, crop_size: int) -> list[str]:
    """Synthetic records (the quickstart renderer) written in-process, one shard."""
    params = SyntheticConfig(
        num_subjects=4,
        num_test_subjects=0,
        num_2d_subjects=2,
        sequences_per_subject=1,
        frames_per_sequence=frames,
        crop_size=crop_size,
        num_shards=1,
    )
    path = folder / "train-00000-of-00001.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for subject, sequence in synthetic.list_sequences(params):
            for _, _, record in synthetic.generate_sequence(params, subject, sequence):
                writer.write(features.encode_example(record))
    return [str(path)]


def input_pipeline(report: Report, size: str, batch: int, seconds: float, need: float) -> None:
    cfg = step_config(size, batch, "float32")
    s = cfg.data.input_size
    with tempfile.TemporaryDirectory() as tmp:
        files = write_records(pathlib.Path(tmp), 8 if size == "tiny" else 40, int(s * 1.75))
        data = DataConfig(
            train_files=tuple(files),
            input_size=s,
            heatmap_size=cfg.data.heatmap_size,
            shuffle_buffer=64,
        )
        ds = dataset.make_dataset(
            data, split="train", batch_size=batch, deterministic=False, finish_in_step=True
        )
        it = iter(ds)
        next(it)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or count == 0:
            next(it)
            count += batch
        rate = count / (time.perf_counter() - start)
    report.add("input pipeline", rate, "examples/s")
    report.add("ratio input pipeline/fastest step", rate / need, "", ".3f")


def median_seconds(fn, repeats: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def serving(report: Report, size: str, repeats: int) -> None:
    """The full pipeline's frames/s at batch 1 and 32, TP-Net's batch-1 latency."""
    cfg = step_config(size, 2, "float32")
    keras.mixed_precision.set_global_policy("float32")
    model = kp_trainer.build_model(cfg)
    s = cfg.data.input_size
    model(np.zeros((1, s, s, 3), np.float32))
    module = signatures.SAPNetServing(export.serving_sap_net(model))
    frame = cv2.GaussianBlur(
        np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8), (0, 0), 3
    )
    data = cv2.imencode(".jpg", frame)[1].tobytes()
    for batch in (1, 32):
        frames = tf.constant([data] * batch)
        reps = repeats if batch == 1 else max(2, repeats // 4)
        t = median_seconds(lambda f=frames: module.predict_jpeg(f)["joints_3d_mm"].numpy(), reps)
        report.add(f"full pipeline batch {batch}", batch / t, "frames/s")
    hidden = SIZES[size][3]
    tp = TPNet(window=20, hidden=hidden)
    tp(np.zeros((1, 20, 16, 3), np.float32))
    poses = tf.constant(np.random.default_rng(0).normal(0, 300, (1, 20, 16, 3)), tf.float32)
    latency = {}
    for precision in ("float32", "bfloat16"):
        # The serving graph without the export's parity check: this TP-Net is untrained, and
        # its random weights can leave the bfloat16 bound that a trained one keeps (latency is
        # what is measured here; the bound is tested in tests/test_export_folding.py).
        served = optimize.reduced_precision_tp_net(tp, precision)
        refine = signatures.TPNetServing(served).refine
        t = median_seconds(lambda r=refine: r(poses)["pose_3d_mm"].numpy(), repeats * 5)
        latency[precision] = report.add(f"tp_net {precision} batch 1", 1e3 * t, "ms", ".3f")
    report.add("ratio tp_net float32/bfloat16", latency["float32"] / latency["bfloat16"], "", ".3f")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="quickstart model, small batch")
    parser.add_argument("--batch", type=int, default=None, help="global batch (even)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per case")
    parser.add_argument("--repeats", type=int, default=None, help="timed serving calls")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    size = "tiny" if args.tiny else "paper"
    _, batch, steps, _, seconds = SIZES[size]
    batch = args.batch or batch
    steps = args.steps or steps
    repeats = args.repeats or (3 if args.tiny else 10)
    start = time.perf_counter()
    print(f"TensorFlow {tf.__version__}; {devices()}; size {size}, batch {batch}, steps {steps}")
    report = Report()
    rates = train_steps(report, size, batch, steps)
    fastest = max(rates, key=rates.get)
    mirrored_step(report, size, batch, steps, fastest, rates[fastest])
    input_pipeline(report, size, batch, seconds, rates[fastest])
    serving(report, size, repeats)
    report.add("wall", time.perf_counter() - start, "s", ".1f")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report.figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
