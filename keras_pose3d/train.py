"""Train SAP-Net: `python -m keras_pose3d.train --config configs/h36m.yaml`.

Thin entry point: parse arguments, load the config, hand over to `keras_pose3d.training.run`.
"""

from __future__ import annotations

import argparse
import os
import sys

from keras_pose3d.cli import exits_cleanly
from keras_pose3d.config import ConfigError, load_config


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m keras_pose3d.train", description=__doc__)
    parser.add_argument("--config", required=True, help="YAML file under configs/")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. --set train.batch_size=12 or "
        "--set train.stages.structure.steps=1000 (repeatable)",
    )
    parser.add_argument("--run-dir", help="run directory (default: train.run_dir)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    return parser.parse_args(argv)


def _cause(error: Exception) -> str:
    """The line of a TensorFlow error that says what happened, not where in the graph."""
    noise = (
        "Graph execution error",
        "Detected at node",
        "File ",
        "[[",
        "Additional GRPC",
        ":UNKNOWN",
        "defined at",
        "Traceback",
    )
    lines = [line.strip() for line in (getattr(error, "message", None) or str(error)).splitlines()]
    useful = [line for line in lines if line and not line.startswith(noise)]
    return (useful or lines or [""])[0]


@exits_cleanly
def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(cfg.to_yaml(), end="")
        return 0
    from keras_pose3d.training import run  # heavy imports only when training

    if cfg.runtime.strategy != "multi_worker":
        return run.run(cfg, run_dir=args.run_dir)
    import tensorflow as tf

    from keras_pose3d.training import runtime

    # What a worker sees when another one died: the coordination service's missed heartbeats
    # (Unavailable/Aborted/Cancelled/Internal), a collective past runtime.collective_timeout_s
    # (DeadlineExceeded), or the wait for the chief's data (TimeoutError).
    try:
        return run.run(cfg, run_dir=args.run_dir)
    except (
        tf.errors.UnavailableError,
        tf.errors.DeadlineExceededError,
        tf.errors.AbortedError,
        tf.errors.CancelledError,
        tf.errors.InternalError,
        TimeoutError,
    ) as e:
        print(
            f"error: {runtime.worker_description()}: stopped, another worker died or stopped "
            f"responding ({type(e).__name__}: {_cause(e)}); start every worker's command "
            f"again to resume from the chief's last checkpoint",
            file=sys.stderr,
        )
        # Not `return`: TensorFlow's teardown waits for the lost worker at its shutdown barrier
        # (measured: 40 s). Checkpoints, metrics.json and the summary writers (closed by the
        # trainer) are already on disk; only the console needs flushing.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(4)


if __name__ == "__main__":
    sys.exit(main())
