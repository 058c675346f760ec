"""Train TP-Net on SAP-Net predictions (Dabral et al. 2018, sections 4.2 and 4.3).

    python -m keras_pose3d.temporal_train --config configs/temporal.yaml [--set train.epochs=5]

A thin entry point: the config tree is `keras_pose3d.temporal_config`, the training (inputs,
frame-rate check, resumable fit, outputs in run_dir) is `keras_pose3d.training.temporal.train`,
whose docstring says what is read and written. A missing train or val file stops before training
with `error: config key 'data.val': prediction file ... not found` (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from keras_pose3d.cli import exits_cleanly
from keras_pose3d.temporal_config import load_config
from keras_pose3d.training.temporal import train


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", action="append", default=[], help="dotted.key=value override")
    args = parser.parse_args(argv)
    # ConfigError, the model's window/mode checks and missing files: `error: ...`, exit 2.
    train(load_config(args.config, args.set))
    return 0


if __name__ == "__main__":
    sys.exit(main())
