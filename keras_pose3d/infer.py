"""3D pose on a video or an image folder: per-frame JSON, boxes.json, BVH, rendered frames.

    python -m keras_pose3d.infer --video in.mp4 --out DIR (--run RUN_DIR | --saved-model PATH)
    python -m keras_pose3d.infer --images FRAMES_DIR --out DIR --run RUN_DIR [--online]

Without `--boxes`, people are found by the person detector (`inference.detect`) and, in a
video, followed frame to frame from their 2D joints (`inference.tracking`); the detector's
best-ranked person by default, everyone with `--all-people`. The boxes used are written to
DIR/boxes.json, which `--boxes` reads back (edit it to correct a run). Frames go through the
serving graph (`predict_jpeg_boxes`) of an exported SavedModel (`--saved-model`) or of a run
directory's SAP-Net (`--run`). `--online` refines with TP-Net (`--tp-net`, or
RUN_DIR/tp_net.keras) at the frame rate it was trained at. Everything else is the
`keras_pose3d.inference` package; this entry point calls `inference.runner.run`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from keras_pose3d.cli import exits_cleanly
from keras_pose3d.inference.runner import InferConfig, run


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", help="input video file")
    source.add_argument("--images", help="folder of images (processed in name order)")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--saved-model", help="exported sap_net or pipeline version directory")
    model.add_argument("--run", help="run directory with sap_net.keras (and tp_net.keras)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--boxes",
        help="boxes.json: per-frame person boxes [x0, y0, x1, y1] "
        "(skips detection; a previous run's OUT/boxes.json works)",
    )
    parser.add_argument(
        "--all-people",
        action="store_true",
        help="every person found (one JSON entry and BVH per track), not only the best-ranked",
    )
    parser.add_argument(
        "--track-images",
        action="store_true",
        help="treat an image folder as the frames of one shot (track people "
        "across images instead of detecting in each)",
    )
    parser.add_argument("--online", action="store_true", help="TP-Net refinement (online)")
    parser.add_argument("--tp-net", help="TP-Net .keras or SavedModel (default RUN/tp_net.keras)")
    parser.add_argument(
        "--focal-length", type=float, default=0.0, help="fx = fy in image pixels (0: max(H, W))"
    )
    parser.add_argument(
        "--root-depth-mm", type=float, default=0.0, help="pelvis depth in mm (0: 5000)"
    )
    parser.add_argument(
        "--fps",
        type=float,
        default=25.0,
        help="frame rate of an image folder (or of a video that declares none)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=16,
        help="frames per model call when boxes do not depend on the previous "
        "frame (--boxes, image folders)",
    )
    parser.add_argument(
        "--no-render", dest="render", action="store_false", help="skip the rendered images/video"
    )
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> InferConfig:
    return InferConfig(
        out=args.out,
        video=args.video,
        images=args.images,
        saved_model=args.saved_model,
        run_dir=args.run,
        boxes=args.boxes,
        online=args.online,
        tp_net=args.tp_net,
        focal_length=args.focal_length,
        root_depth_mm=args.root_depth_mm,
        fps=args.fps,
        batch=args.batch,
        render=args.render,
        all_people=args.all_people,
        track_images=args.track_images,
    )


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(config_from_args(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
