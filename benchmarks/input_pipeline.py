"""Throughput of the input side: Beam synthetic job (1 vs 2 workers) and the tf.data pipeline.

    python benchmarks/input_pipeline.py --num_subjects 6 --frames_per_sequence 50 \
        --input_size 256 --heatmap_size 64 --batch_size 6 --seconds 20 [--rounds 3] [--no_beam]

Prints, from one run:
* frames/s of `pipelines/synthetic_to_tfrecord` on the DirectRunner with
  `--direct_num_workers 1` and `2` (`--direct_running_mode multi_processing`), wall clock
  including pipeline start-up (what a user waits for);
* examples/s of the full training pipeline (`make_dataset(split="train")`: parse, JPEG decode,
  2D/3D split, augmentation, heatmaps, batching) next to the bare JPEG-decode rate of the same
  records (read + parse + decode, same parallelism), and their ratio: how much of the CPU
  budget the augmentation and targets cost on top of decoding. Four training pipelines: the
  trainer's (`finish_in_step=True`: OpenCV warp per record; the conversion to [0, 1] and the
  heatmaps are left to the train step, on the accelerator), `make_dataset`'s default (the same
  batches finished in tf.data: what a CPU-only consumer gets), `batched=False` (the same
  batches, all per record) and `warp: tensorflow` (TensorFlow's warp op: the pipeline before
  the OpenCV warp, other batches). They are measured in turn, `--rounds` times (the machine's
  load moves between measurements; the table has every round and the median).
The records are the synthetic job's `train-*` shards, written to a temporary directory
(`--no_beam`: written once with 1 worker, the Beam timing skipped).
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import shutil
import statistics
import sys
import tempfile
import time

import tensorflow as tf

from keras_pose3d.config import DataConfig
from keras_pose3d.data import dataset, features
from pipelines import synthetic_to_tfrecord


def run_beam(out_dir: str, args: argparse.Namespace, workers: int) -> tuple[float, int]:
    """Runs the synthetic job; returns (seconds, frames written)."""
    argv = [
        f"--output_dir={out_dir}",
        f"--num_subjects={args.num_subjects}",
        f"--sequences_per_subject={args.sequences_per_subject}",
        f"--frames_per_sequence={args.frames_per_sequence}",
        f"--crop_size={args.crop_size}",
        f"--num_shards={args.num_shards}",
        "--overwrite",
        f"--direct_num_workers={workers}",
        "--direct_running_mode=multi_processing",
    ]
    start = time.perf_counter()
    synthetic_to_tfrecord.run(argv)
    seconds = time.perf_counter() - start
    files = glob.glob(os.path.join(out_dir, "*.tfrecord"))
    frames = int(tf.data.TFRecordDataset(files).reduce(0, lambda n, _: n + 1))
    return seconds, frames


def rate(ds: tf.data.Dataset, per_element: int, seconds: float) -> float:
    """Elements/s after one warm-up element, over at least `seconds` of iteration."""
    it = iter(ds)
    next(it)  # tracing, thread pools, first shuffle fill
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(it)
        count += per_element
    return count / (time.perf_counter() - start)


def bare_decode_dataset(files: list[str], batch_size: int) -> tf.data.Dataset:
    spec = {features.KEY_IMAGE: tf.io.FixedLenFeature([], tf.string)}

    def decode(serialized):
        image = tf.io.parse_single_example(serialized, spec)[features.KEY_IMAGE]
        return tf.io.decode_jpeg(image, channels=3)

    ds = tf.data.Dataset.from_tensor_slices(files).interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 16),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False,
    )
    ds = ds.repeat().map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_subjects", type=int, default=6)
    parser.add_argument("--sequences_per_subject", type=int, default=2)
    parser.add_argument("--frames_per_sequence", type=int, default=50)
    parser.add_argument("--crop_size", type=int, default=448)
    parser.add_argument("--num_shards", type=int, default=4)
    parser.add_argument("--input_size", type=int, default=256)
    parser.add_argument("--heatmap_size", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=15.0, help="per tf.data measurement")
    parser.add_argument("--rounds", type=int, default=1, help="tf.data measurements of each")
    parser.add_argument("--no_beam", action="store_true", help="skip the Beam 1 vs 2 timing")
    parser.add_argument("--workdir", default=None, help="default: a temporary directory")
    args = parser.parse_args(argv)

    workdir = args.workdir or tempfile.mkdtemp(prefix="input_pipeline_bench_")
    try:
        beam = {}
        for workers in (1,) if args.no_beam else (1, 2):
            out = os.path.join(workdir, f"beam_{workers}")
            beam[workers] = run_beam(out, args, workers)
        files = sorted(glob.glob(os.path.join(workdir, "beam_1", "train-*.tfrecord")))
        data = DataConfig(
            train_files=tuple(files),
            input_size=args.input_size,
            heatmap_size=args.heatmap_size,
            shuffle_buffer=256,
        )
        tf_warp = dataclasses.replace(
            data, augment=dataclasses.replace(data.augment, warp="tensorflow")
        )
        pipelines = {
            "bare JPEG decode": lambda: bare_decode_dataset(files, args.batch_size),
            "trainer's (finish in step)": lambda: dataset.make_dataset(
                data, split="train", batch_size=args.batch_size, finish_in_step=True
            ),
            "finished in tf.data": lambda: dataset.make_dataset(
                data, split="train", batch_size=args.batch_size
            ),
            "batched=False": lambda: dataset.make_dataset(
                data, split="train", batch_size=args.batch_size, batched=False
            ),
            "warp=tensorflow": lambda: dataset.make_dataset(
                tf_warp, split="train", batch_size=args.batch_size
            ),
        }
        rates = {name: [] for name in pipelines}
        for _ in range(args.rounds):
            for name, make in pipelines.items():
                rates[name].append(rate(make(), args.batch_size, args.seconds))

        print(f"\nmachine: {os.cpu_count()} CPU cores; TF {tf.__version__}")
        print(
            f"records: {args.crop_size} px stored crops -> {args.input_size} px input, "
            f"{args.heatmap_size} px heatmaps, batch {args.batch_size}"
        )
        if not args.no_beam:
            print("\nBeam synthetic_to_tfrecord (DirectRunner, multi_processing, incl. start-up)")
            print(f"{'workers':>8} {'frames':>8} {'seconds':>9} {'frames/s':>10}")
            for workers, (seconds, frames) in beam.items():
                print(f"{workers:>8} {frames:>8} {seconds:>9.1f} {frames / seconds:>10.1f}")
            print(f"speed-up 2 vs 1 worker: {beam[1][0] / beam[2][0]:.2f}x")
        print(f"\ntf.data examples/s, {args.seconds:g} s each, measured in turn")
        names = list(pipelines)
        print(f"{'round':>6} " + " ".join(f"{n:>26}" for n in names) + "  ratios to bare")
        rows = [(str(r + 1), [rates[n][r] for n in names]) for r in range(args.rounds)]
        rows.append(("median", [statistics.median(rates[n]) for n in names]))
        for label, values in rows:
            ratios = " / ".join(f"{v / values[0]:.2f}" for v in values[1:])
            print(f"{label:>6} " + " ".join(f"{v:>26.1f}" for v in values) + f"  {ratios}")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
