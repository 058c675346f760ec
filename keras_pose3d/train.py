"""Train SAP-Net: `python -m keras_pose3d.train --config configs/h36m.yaml`.

Thin entry point: parse arguments, load the config, hand over to `keras_pose3d.training.run`.
"""

from __future__ import annotations

import argparse
import sys

from keras_pose3d.cli import exits_cleanly
from keras_pose3d.config import load_config


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


@exits_cleanly
def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = load_config(args.config, args.overrides)  # ConfigError: `error: ...`, exit 2
    if args.dry_run:
        print(cfg.to_yaml(), end="")
        return 0
    from keras_pose3d.training import run  # heavy imports only when training (TF: in run)

    try:
        return run.train(cfg, run_dir=args.run_dir)
    except Exception as err:
        if type(err).__name__ != "DataLossError":
            raise
        # TensorFlow names no file: find the corrupt shard (imported only now, so TensorFlow
        # is loaded by the run, after runtime.deterministic set its switches).
        from keras_pose3d.data.dataset import name_corrupt_shard

        data = cfg.data
        shards = [*data.train_patterns(), *data.val_patterns(), *data.test_patterns()]
        raise name_corrupt_shard(err, shards) from err


if __name__ == "__main__":
    sys.exit(main())
