"""Run a trained SAP-Net over the frames of 3D sequences and save predictions for TP-Net.

    python -m keras_pose3d.predict_sequences --records 'data/h36m/train-*' --run RUN_DIR \
        --out predictions/train.npz [--frame-rate 25] [--batch 64]

The npz, the frame-rate handling and the input crop: `keras_pose3d.models.sequence_predictions`.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
from collections.abc import Sequence

from keras_pose3d.atomic_files import check_writable
from keras_pose3d.cli import exits_cleanly
from keras_pose3d.config import TP_NET_FRAME_RATE
from keras_pose3d.data.dataset import corrupt_shards_named
from keras_pose3d.models.sequence_predictions import run_predictions


def _frame_rate_arg(text: str) -> float | None:
    if text == "native":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"expected frames per second > 0 or 'native', got {text!r}"
        )
    return value


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", required=True, nargs="+", help="TFRecord file patterns")
    parser.add_argument("--run", required=True, help="run directory with sap_net.keras")
    parser.add_argument("--out", required=True, help="output .npz")
    parser.add_argument(
        "--frame-rate",
        type=_frame_rate_arg,
        default=TP_NET_FRAME_RATE,
        help="frames per second of the written rows, TP-Net's model.frame_rate "
        f"(default {TP_NET_FRAME_RATE:g}); 'native': the records as they are",
    )
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)
    # A read-only or full target fails now, not after the prediction pass.
    check_writable(pathlib.Path(args.out).parent)
    with corrupt_shards_named(args.records):  # a DataLossError names the corrupt shard
        run_predictions(
            args.run, args.records, args.out, frame_rate=args.frame_rate, batch_size=args.batch
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
