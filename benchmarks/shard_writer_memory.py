"""Peak memory (RSS) of the Beam jobs' shard writer on one large shard.

    python benchmarks/shard_writer_memory.py --shard_mb 1024 --record_kb 48

Feeds `pipelines.sharded_write.write_shard_file` one shard of generated records (an H36M-like
48 KB crop each, in random key order, produced lazily so the input itself holds no memory) and
prints, per mode, the process's peak RSS before and after writing and the difference:

* `external`: the writer as the jobs use it (sort buffer `--buffer_mb`, runs spilled to disk);
* `in_memory`: the same shard sorted as one Python list (the former writer), for comparison.

Each mode runs in a fresh subprocess (ru_maxrss is a per-process high-water mark). The output
shard and the spilled runs go to a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _records(num: int, record_bytes: int, seed: int):
    """(sort_key, serialized Example) in a random key order, generated one at a time."""
    import numpy as np
    import tensorflow as tf

    from keras_pose3d.data import features

    order = np.random.default_rng(seed).permutation(num)
    payload_rng = np.random.default_rng(seed + 1)

    def text(value: str) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))

    def integer(value: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    for i in order:
        sequence = f"seq{i // 1000:03d}"
        example = tf.train.Example(
            features=tf.train.Features(
                feature={
                    features.KEY_DATASET: text("h36m"),
                    features.KEY_SUBJECT: text("S1"),
                    features.KEY_SEQUENCE: text(sequence),
                    features.KEY_ACTION: text("Walking"),
                    features.KEY_CAMERA: text("54138969"),
                    features.KEY_FRAME: integer(int(i)),
                    features.KEY_HAS_3D: integer(1),
                    features.KEY_IMAGE: tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[payload_rng.bytes(record_bytes)])
                    ),
                }
            )
        )
        yield f"h36m\x00S1\x00{sequence}\x0054138969\x00{int(i):012d}", example.SerializeToString()


def _child(args: argparse.Namespace) -> None:
    import tensorflow as tf  # imported before the baseline, as on a worker

    from pipelines import sharded_write

    num = int(args.shard_mb * 2**20 // (args.record_kb * 1024))
    out_dir = tempfile.mkdtemp(prefix="shard-bench-")
    tempfile.tempdir = out_dir  # spilled runs next to the shard, removed with it
    try:
        items = _records(num, args.record_kb * 1024, seed=0)
        first = next(items)  # imports and generator set up: the baseline
        baseline = _peak_rss_mb()

        def all_items():
            yield first
            yield from items

        start = time.perf_counter()
        if args.mode == "external":
            source = all_items()
            buffer = int(args.buffer_mb * 2**20)
        else:
            source = sorted(all_items())  # the whole shard as one list
            buffer = 1 << 62  # never spill
        summary = sharded_write.write_shard_file(out_dir, "train", 0, 1, source, buffer)
        seconds = time.perf_counter() - start
        shard = f"{out_dir}/{sharded_write.shard_name('train', 0, 1)}"
        shard_mb = tf.io.gfile.stat(shard).length / 2**20
        peak = _peak_rss_mb()
        print(
            json.dumps(
                {
                    "mode": args.mode,
                    "records": summary["num_examples"],
                    "shard_mb": round(shard_mb, 1),
                    "buffer_mb": args.buffer_mb if args.mode == "external" else None,
                    "rss_before_mb": round(baseline, 1),
                    "rss_peak_mb": round(peak, 1),
                    "rss_added_mb": round(peak - baseline, 1),
                    "seconds": round(seconds, 1),
                }
            )
        )
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shard_mb", type=float, default=1024)
    parser.add_argument("--record_kb", type=int, default=48)
    parser.add_argument("--buffer_mb", type=float, default=64)
    parser.add_argument("--modes", default="external,in_memory")
    parser.add_argument("--mode", default=None, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.mode:
        _child(args)
        return
    for mode in args.modes.split(","):
        cmd = [
            sys.executable,
            __file__,
            "--mode",
            mode,
            "--shard_mb",
            str(args.shard_mb),
            "--record_kb",
            str(args.record_kb),
            "--buffer_mb",
            str(args.buffer_mb),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=True)
        print(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
