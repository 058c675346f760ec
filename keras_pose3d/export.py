"""Export trained models as SavedModels in TF-Serving's versioned layout (and ONNX).

    python -m keras_pose3d.export --run RUN_DIR [--tp-net runs/temporal/tp_net.keras]
        [--out saved_models] [--models sap_net,tp_net,pipeline] [--onnx]

reads `RUN_DIR/sap_net.keras` and the TP-Net of `--tp-net` (default `RUN_DIR/tp_net.keras` when
present; `temporal_train` writes it to its own run_dir, `runs/temporal/` by default) and writes

    saved_models/sap_net/<v>/    SAP-Net serving graphs (`serving.signatures.SAP_NET_SIGNATURES`)
    saved_models/tp_net/<v>/     TP-Net `refine`
    saved_models/pipeline/<v>/   SAP-Net + decode to mm + online TP-Net (`predict_jpeg_online`)
    saved_models/models.config   TF-Serving model_config_list for multi-model mode
    saved_models/onnx/...        with --onnx: float-image SAP-Net and TP-Net graphs

<v> is the next free integer version; versions appear atomically. A thin entry point: the
export (layout, models.config, atomicity, float32 rebuild) is `keras_pose3d.serving.export`,
whose docstring says the rest.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from keras_pose3d.cli import exits_cleanly
from keras_pose3d.serving.export import export_run


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="run directory with sap_net.keras")
    parser.add_argument(
        "--tp-net",
        help="TP-Net .keras (default RUN/tp_net.keras if present), "
        "e.g. runs/temporal/tp_net.keras from temporal_train",
    )
    parser.add_argument("--out", default="saved_models", help="export root (TF-Serving layout)")
    parser.add_argument("--onnx", action="store_true", help="also write ONNX graphs")
    parser.add_argument(
        "--models",
        default=None,
        help="comma-separated subset of sap_net,tp_net,pipeline (default: every "
        "model the inputs allow)",
    )
    args = parser.parse_args(argv)
    models = None if args.models is None else [m for m in args.models.split(",") if m]
    for name, path in export_run(args.run, args.out, args.onnx, models, args.tp_net).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
