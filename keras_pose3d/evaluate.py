r"""Evaluate SAP-Net, or a stored predictions file, and write the paper's tables.

    python -m keras_pose3d.evaluate --run RUN_DIR --dataset h36m|mpi_inf_3dhp|mpii|synthetic \
        [--records GLOB ...] [--saved-model PATH] [--out DIR] [--batch-size 32]
        [--mpii-gt mpii_val_gt_tompson_format.mat --mpii-valid-h5 valid.h5]
    python -m keras_pose3d.evaluate --dataset mpii --predictions preds.mat|preds.h5 \
        --mpii-gt mpii_val_gt_tompson_format.mat [--predictions-key preds] [--out DIR]
    python -m keras_pose3d.evaluate --dataset h36m|mpi_inf_3dhp|synthetic \
        --predictions poses.npz --records GLOB ... [--out DIR]

With `--run`: the model is `RUN_DIR/sap_net.keras` (with `RUN_DIR/config.yaml`) or a SavedModel
(`--saved-model`, `predict_raw` preferred over `predict_image`); outputs go to `--out`
(default `RUN_DIR/eval/<dataset>`). With `--predictions`: no model; the file formats (published
MPII `preds`, the 3D `.npz` keyed by record id) are in `keras_pose3d.evaluation.predictions_file`;
outputs go to `--out` (default `<predictions stem>_eval/` beside the file).

Outputs: `<dataset>.md` (every table, printed too), one CSV per table, `<dataset>.json` (all
numbers), and for 3D runs `<dataset>_predictions.npz`. The logic lives in
`keras_pose3d.evaluation` (`runner.evaluate` checks the flags and picks the run or the file; one
module per dataset, `records`, `predictors`); the prediction pass and the decode to mm in
`keras_pose3d.models.prediction`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from keras_pose3d.cli import exits_cleanly
from keras_pose3d.evaluation.predictions_file import MPII_KEY
from keras_pose3d.evaluation.runner import DATASETS, evaluate


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    """Command line; bad input prints `error: ...` and returns 2."""
    parser = argparse.ArgumentParser(
        description="Evaluate SAP-Net or stored predictions: the paper's tables."
    )
    parser.add_argument("--run", default=None, help="run directory (config.yaml, sap_net.keras)")
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument(
        "--predictions", default=None, help="score this stored predictions file instead of a model"
    )
    parser.add_argument(
        "--predictions-key",
        default=MPII_KEY,
        help="array name in an MPII .mat/.h5 predictions file",
    )
    parser.add_argument("--records", nargs="+", default=None, help="TFRecord glob(s)")
    parser.add_argument("--saved-model", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--mpii-gt", default=None)
    parser.add_argument("--mpii-valid-h5", default=None)
    args = parser.parse_args(argv)
    evaluate(
        args.dataset,
        run=args.run,
        predictions=args.predictions,
        predictions_key=args.predictions_key,
        records=args.records,
        saved_model=args.saved_model,
        out_dir=args.out,
        batch_size=args.batch_size,
        mpii_gt=args.mpii_gt,
        mpii_valid_h5=args.mpii_valid_h5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
