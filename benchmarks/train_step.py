"""Training-step throughput of SAP-Net, printed side by side from one run.

    python benchmarks/train_step.py [--steps 5] [--configs quickstart,paper]

For the paper's model (256x256 input, 2 stacks, 256 features) and the quickstart one, it times
the real training step of `keras_pose3d.training.trainer` (all five loss terms on, a half-2D
half-3D batch) in float32, mixed_bfloat16, and float32 with XLA, and reports images/s and the
forward FLOPs per image. Data come from a constant in-memory batch, so this measures the step,
not the input pipeline (see benchmarks/input_pipeline.py for that).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_pose3d.config import from_dict  # noqa: E402
from keras_pose3d.training import trainer as kp_trainer  # noqa: E402

SIZES = {
    "paper": dict(input_size=256, heatmap_size=64, num_stacks=2, num_features=256,
                  hourglass_depth=4, depth_blocks=4, batch_size=6),
    "quickstart": dict(input_size=64, heatmap_size=16, num_stacks=2, num_features=64,
                       hourglass_depth=2, depth_blocks=2, batch_size=16),
}
ALL_LOSSES = ["heatmap", "depth", "geometric", "illegal_angle", "symmetry"]


def make_config(size: dict, precision: str, xla: bool):
    return from_dict({
        "data": {"train_files": ["unused"], "input_size": size["input_size"],
                 "heatmap_size": size["heatmap_size"]},
        "model": {k: size[k] for k in ("num_stacks", "num_features", "hourglass_depth",
                                        "depth_blocks")},
        "train": {"batch_size": size["batch_size"], "run_dir": "/tmp/kp3d_bench",
                  "stages": [{"name": "bench", "steps": 1, "learning_rate": 2.5e-4,
                              "losses": ALL_LOSSES}]},
        "runtime": {"precision": precision, "xla": xla},
    })


def constant_batch(size: dict, seed: int = 0):
    rng = np.random.default_rng(seed)
    b, s, h, j = size["batch_size"], size["input_size"], size["heatmap_size"], 16
    has_3d = np.array([0.0, 1.0] * (b // 2), np.float32)
    inputs = {"image": rng.random((b, s, s, 3), np.float32)}
    targets = {
        "heatmaps": rng.random((b, h, h, j), np.float32) * 0.1,
        "visibility": np.ones((b, j), np.float32),
        "pose_2d": rng.uniform(-0.5, 0.5, (b, j, 2)).astype(np.float32),
        "depth": rng.uniform(-0.3, 0.3, (b, j)).astype(np.float32),
        "has_3d": has_3d,
        "joints_3d": rng.normal(0, 300, (b, j, 3)).astype(np.float32),
        "intrinsics": np.tile([[1000, 1000, s / 2, s / 2]], (b, 1)).astype(np.float32),
        "root_depth": np.full((b,), 5000.0, np.float32),
    }
    return inputs, targets


def forward_flops(model, input_size: int) -> float:
    """FLOPs of one forward pass on one image, from TensorFlow's graph profiler."""
    from tensorflow.python.profiler import model_analyzer, option_builder

    fn = tf.function(lambda x: model(x, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec((1, input_size, input_size, 3)))
    opts = option_builder.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    info = model_analyzer.profile(concrete.graph, options=opts)
    return float(info.total_float_ops)


def time_steps(size: dict, precision: str, xla: bool, steps: int) -> tuple[float, float]:
    cfg = make_config(size, precision, xla)
    tr = kp_trainer.Trainer(cfg, run_dir="/tmp/kp3d_bench", progress=lambda *_: None)
    stage = cfg.train.stages[0]
    opt = kp_trainer._make_optimizer(stage, precision)
    opt.build(tr.model.trainable_variables)
    step_fn = tr._make_step(stage, opt)
    batch = constant_batch(size)
    ds = tf.data.Dataset.from_tensors(batch).repeat()
    iterator = iter(tr.strategy.experimental_distribute_dataset(ds))
    step_fn(iterator)  # trace and compile
    step_fn(iterator)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss, _, _ = step_fn(iterator)
    float(loss.numpy())
    elapsed = time.perf_counter() - t0
    flops = forward_flops(tr.model, size["input_size"]) if precision == "float32" and not xla \
        else float("nan")
    keras.mixed_precision.set_global_policy("float32")
    return steps * size["batch_size"] / elapsed, flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--configs", default="quickstart,paper")
    args = parser.parse_args()
    devices = [d.device_type for d in tf.config.list_logical_devices()]
    print(f"TensorFlow {tf.__version__}, devices: {devices}, steps per case: {args.steps}")
    print(f"{'model':<11} {'batch':>5} {'GFLOPs/img':>10} {'float32':>10} {'bf16':>10} "
          f"{'xla f32':>10} {'bf16/f32':>9} {'xla/f32':>8}   (images/s)")
    for name in args.configs.split(","):
        size = SIZES[name]
        f32, flops = time_steps(size, "float32", False, args.steps)
        bf16, _ = time_steps(size, "mixed_bfloat16", False, args.steps)
        xla, _ = time_steps(size, "float32", True, args.steps)
        print(f"{name:<11} {size['batch_size']:>5} {flops / 1e9:>10.2f} {f32:>10.2f} "
              f"{bf16:>10.2f} {xla:>10.2f} {bf16 / f32:>9.2f} {xla / f32:>8.2f}")


if __name__ == "__main__":
    main()
