"""Training-step throughput of SAP-Net, printed side by side from one run.

    PYTHONPATH=. python benchmarks/train_step.py [--steps 5] [--configs quickstart,paper]
        [--batch N]

For the paper's model (configs/h36m.yaml: 256x256 input, 2 stacks, 256 features, Zhou et al.'s
two residual modules per place) and the quickstart one (configs/quickstart.yaml), it times the
real training step of `keras_pose3d.training.trainer` (all five loss terms on, a half-2D
half-3D batch) in float32, mixed_bfloat16, and float32 with XLA, and reports images/s and the
achieved GFLOP/s. FLOPs: forward convolutions and matrix products of one image
(`keras_pose3d.models.complexity.forward_flops`, 1 MAC = 2 FLOPs); a training step is counted
as 3x the forward pass (forward + gradients with respect to activations and weights). Data
come from a constant in-memory batch in the form the trainer's input pipeline hands over
(`make_dataset(..., finish_in_step=True)`: uint8 crops, heatmap joints), so the step includes
what the trainer does in it (the conversion to [0, 1] with the colour factors, the heatmaps),
not the input pipeline (see benchmarks/input_pipeline.py for that). Run from the repository
root with PYTHONPATH=. so this tree's package is the one measured.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from keras_pose3d.config import from_dict, load_config
from keras_pose3d.models.complexity import forward_flops, trainable_parameters
from keras_pose3d.training import trainer as kp_trainer

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
SOURCES = {"paper": CONFIGS / "h36m.yaml", "quickstart": CONFIGS / "quickstart.yaml"}
ALL_LOSSES = ["heatmap", "depth", "geometric", "illegal_angle", "symmetry"]
# A training step: forward, backward to activations, backward to weights (~1x forward each).
STEP_PER_FORWARD = 3


def make_config(name: str, batch_size: int | None, precision: str, xla: bool):
    """The named config's model, input size and loss weights, with a one-stage schedule."""
    source = load_config(SOURCES[name])
    tree = source.to_dict()
    return from_dict(
        {
            "data": {
                "train_files": ["unused"],
                "input_size": source.data.input_size,
                "heatmap_size": source.data.heatmap_size,
            },
            "model": tree["model"],
            "loss": tree["loss"],
            "train": {
                "batch_size": batch_size or source.train.batch_size,
                "run_dir": "/tmp/kp3d_bench",
                "stages": [
                    {"name": "bench", "steps": 1, "learning_rate": 2.5e-4, "losses": ALL_LOSSES}
                ],
            },
            "runtime": {"precision": precision, "xla": xla},
        }
    )


def constant_batch(cfg, seed: int = 0):
    """A batch as the trainer's pipeline yields it (`batch_augment.prepare_example`'s dicts,
    batched): the trainer's step finishes it (`dataset.finish_batch`)."""
    rng = np.random.default_rng(seed)
    b, s, h, j = cfg.train.batch_size, cfg.data.input_size, cfg.data.heatmap_size, 16
    has_3d = np.array([0.0, 1.0] * (b // 2), np.float32)
    return {
        "image": rng.integers(0, 256, (b, s, s, 3), dtype=np.uint8),
        "image_size": np.full((b, 2), s, np.int32),
        "transform": np.tile(np.array([1, 0, 0, 0, 1, 0, 0, 0], np.float32), (b, 1)),
        "channel_factors": rng.uniform(0.6, 1.4, (b, 3)).astype(np.float32),
        "colour_seed": rng.integers(0, 2**31, (b, 2), dtype=np.int64),
        "heatmap_joints": rng.uniform(0, h - 1, (b, j, 2)).astype(np.float32),
        "visibility": np.ones((b, j), np.float32),
        "pose_2d": rng.uniform(-0.5, 0.5, (b, j, 2)).astype(np.float32),
        "depth": rng.uniform(-0.3, 0.3, (b, j)).astype(np.float32),
        "has_3d": has_3d,
        "joints_3d": rng.normal(0, 300, (b, j, 3)).astype(np.float32),
        "intrinsics": np.tile([[1000, 1000, s / 2, s / 2]], (b, 1)).astype(np.float32),
        "root_depth": np.full((b,), 5000.0, np.float32),
    }


def time_steps(cfg, steps: int) -> float:
    """Images/s of the trainer's step (after two untimed steps: trace, compile, warm-up)."""
    tr = kp_trainer.Trainer(cfg, run_dir="/tmp/kp3d_bench", progress=lambda *_: None)
    stage = cfg.train.stages[0]
    with tr.strategy.scope():
        opt = kp_trainer._make_optimizer(stage, cfg.runtime.precision)
        opt.build(tr.model.trainable_variables)
    step_fn = tr._make_step(stage, opt)
    ds = tf.data.Dataset.from_tensors(constant_batch(cfg)).repeat()
    iterator = iter(tr.strategy.experimental_distribute_dataset(ds))
    step_fn(iterator)  # trace and compile
    step_fn(iterator)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss, _, _ = step_fn(iterator)
    float(loss.numpy())
    elapsed = time.perf_counter() - t0
    keras.mixed_precision.set_global_policy("float32")
    return steps * cfg.train.batch_size / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--configs", default="quickstart,paper")
    parser.add_argument(
        "--batch", type=int, default=None, help="global batch size (even; default: the config's)"
    )
    args = parser.parse_args()
    devices = [d.device_type for d in tf.config.list_logical_devices()]
    print(
        f"TensorFlow {tf.__version__}, devices: {devices}, steps per case: {args.steps}; "
        f"GFLOP/s = images/s x {STEP_PER_FORWARD} x forward GFLOPs"
    )
    cases = (
        ("float32", "float32", False),
        ("bf16", "mixed_bfloat16", False),
        ("xla f32", "float32", True),
    )
    print(
        f"{'model':<11} {'params':>11} {'batch':>5} {'GFLOPs/img':>10}   "
        + "   ".join(f"{label:>8} img/s GFLOP/s" for label, _, _ in cases)
        + f" {'bf16/f32':>9} {'xla/f32':>8}"
    )
    for name in args.configs.split(","):
        cfg = make_config(name, args.batch, "float32", False)
        model = kp_trainer.build_model(cfg)
        params = trainable_parameters(model)
        gflops = forward_flops(model, cfg.data.input_size) / 1e9
        del model
        rates = {}
        for label, precision, xla in cases:
            rates[label] = time_steps(make_config(name, args.batch, precision, xla), args.steps)
        cells = "   ".join(
            f"{rates[label]:>14.2f} {rates[label] * STEP_PER_FORWARD * gflops:>7.1f}"
            for label, _, _ in cases
        )
        print(
            f"{name:<11} {params:>11,} {cfg.train.batch_size:>5} {gflops:>10.2f}   {cells} "
            f"{rates['bf16'] / rates['float32']:>9.2f} "
            f"{rates['xla f32'] / rates['float32']:>8.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
