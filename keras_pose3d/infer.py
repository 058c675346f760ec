"""3D pose on a video or an image folder: per-frame JSON, a BVH of the motion, rendered frames.

    python -m keras_pose3d.infer --video in.mp4 --out DIR (--run RUN_DIR | --saved-model PATH)
    python -m keras_pose3d.infer --images FRAMES_DIR --out DIR --run RUN_DIR [--online]

Frames go through the same serving graph as TF-Serving (`predict_jpeg_boxes`: JPEG decode,
square crop, SAP-Net, decode to mm): from an exported SavedModel (`--saved-model`) or built
in-process from a run directory (`--run`, sap_net.keras). `--boxes boxes.json` gives a person
box [x0, y0, x1, y1] (pixel edges) per frame, either a list in frame order or a dict keyed by
frame index or image file name; frames without a box use the centred whole-image crop.
`--focal-length` / `--root-depth-mm` override the serving defaults (`serving.signatures`).

`--online` refines every frame with TP-Net from the frames before it (the first frame repeated
before the start, `models.tp_net.make_windows`); TP-Net comes from `--tp-net` (.keras file or
tp_net SavedModel, e.g. temporal_train's runs/temporal/tp_net.keras) or else
RUN_DIR/tp_net.keras; it is loaded and its mode checked before any frame is processed.

Outputs in DIR: `json/frame_XXXXXX.json` (joints_3d_mm camera frame, joints_3d_root_relative_mm,
joints_3d_refined_mm with --online, joints_2d_px, confidence, box: the square crop used), `motion.bvh` (the root-
relative motion fitted to one skeleton (the sequence's median bone lengths, `fitting`), turned
to y-up: (x, -y, -z)), `render/frame_XXXXXX.jpg` (2D overlay | 3D view) and `render.mp4` for a
video input.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import tensorflow as tf

from keras_pose3d import bvh, fitting, render
from keras_pose3d.cli import exits_cleanly
from keras_pose3d.models import tp_net as tp_net_lib

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# Camera frame (y down, z forward) -> y-up viewer frame: a 180-degree turn about x.
Y_UP = np.diag([1.0, -1.0, -1.0])


def iter_video(path: pathlib.Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, BGR frame) for every frame of a video file."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FileNotFoundError(f"cannot open video {path}")
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        yield str(index), frame
        index += 1
    capture.release()


def iter_images(folder: pathlib.Path) -> Iterator[tuple[str, np.ndarray]]:
    """(file name, BGR image) for the images of a folder in name order."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    for path in files:
        image = cv2.imread(str(path))
        if image is None:
            raise ValueError(f"cannot decode image {path}")
        yield path.name, image


def load_boxes(path: pathlib.Path | None) -> dict[str, list[float]] | list | None:
    """boxes.json: a list (frame order) or a dict keyed by frame index / file name."""
    if path is None:
        return None
    boxes = json.loads(pathlib.Path(path).read_text())
    values = boxes if isinstance(boxes, list) else list(boxes.values())
    for i, box in enumerate(values):
        if box is not None and (len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]):
            raise ValueError(f"{path}: box {i} must be [x0, y0, x1, y1] with x1 > x0, y1 > y0. "
                             f"Received: {box}")
    return boxes


def box_for(boxes, index: int, name: str) -> list[float]:
    """The box of frame `index` / file `name`; zeros (= centred whole image) when none."""
    box = None
    if isinstance(boxes, list):
        box = boxes[index] if index < len(boxes) else None
    elif isinstance(boxes, dict):
        box = boxes.get(name, boxes.get(str(index)))
    return [0.0, 0.0, 0.0, 0.0] if box is None else [float(v) for v in box]


class Predictor:
    """Runs `predict_jpeg_boxes` from a SavedModel or from a run directory's SAP-Net."""

    def __init__(self, saved_model: str | None = None, run: str | None = None):
        if (saved_model is None) == (run is None):
            raise ValueError("give exactly one of --saved-model and --run")
        if saved_model is not None:
            loaded = tf.saved_model.load(str(saved_model))
            if "predict_jpeg_boxes" not in loaded.signatures:
                raise ValueError(f"{saved_model} has no predict_jpeg_boxes signature; export it "
                                 "with python -m keras_pose3d.export (sap_net or pipeline)")
            self._loaded = loaded  # keeps the variables alive
            self.fn = loaded.signatures["predict_jpeg_boxes"]
        else:
            from keras_pose3d import export
            from keras_pose3d.serving import signatures

            module = signatures.SAPNetServing(
                export.load_float32(pathlib.Path(run) / export.SAP_NET_FILE))
            self._module = module
            self.fn = module.predict_jpeg_boxes

    def __call__(self, jpegs: list[bytes], boxes: np.ndarray, focal: float, root: float) -> dict:
        n = len(jpegs)
        out = self.fn(images=tf.constant(jpegs), boxes=tf.constant(boxes, tf.float32),
                      focal_length=tf.fill([n], float(focal)),
                      root_depth_mm=tf.fill([n], float(root)))
        return {k: np.asarray(v) for k, v in out.items()}


def load_refiner(path: str | pathlib.Path):
    """(callable (B, N, J, 3) -> (B, J, 3), window N, mode) from a TP-Net .keras or SavedModel.

    A SavedModel must be a tp_net export: a `refine` signature and the TP-Net metadata
    (`serving.signatures.read_metadata`: mode and window).

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: no `refine` signature, no metadata, or a window that disagrees with it.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"TP-Net {path} not found (a .keras file or a tp_net SavedModel)")
    if path.suffix == ".keras":
        from keras_pose3d import export

        model = export.load_float32(path)
        return (lambda w: np.asarray(model(w))), model.window, model.mode
    from keras_pose3d.serving import signatures

    loaded = tf.saved_model.load(str(path))
    if "refine" not in loaded.signatures:
        raise ValueError(f"{path} has no 'refine' signature; signatures: "
                         f"{sorted(loaded.signatures)} (expected a tp_net export)")
    fn = loaded.signatures["refine"]
    window = int(fn.structured_input_signature[1]["poses"].shape[1])
    meta = signatures.read_metadata(loaded, str(path))
    if meta["window"] != window:
        raise ValueError(f"{path}: tp_window {meta['window']} disagrees with the refine "
                         f"signature's window {window}")

    def refiner(windows: np.ndarray) -> np.ndarray:
        return fn(poses=tf.constant(windows, tf.float32))["pose_3d_mm"].numpy()

    refiner.keep = loaded  # keeps the variables alive with the function
    return refiner, window, meta["mode"]


def refine_online(poses: np.ndarray, refiner, window: int, batch: int = 256) -> np.ndarray:
    """TP-Net over online windows of a (T, J, 3) sequence -> (T, J, 3)."""
    windows = tp_net_lib.make_windows(poses, window, "online").astype(np.float32)
    return np.concatenate([refiner(windows[i:i + batch]) for i in range(0, len(windows), batch)])


def run(args: argparse.Namespace) -> dict:
    out = pathlib.Path(args.out)
    (out / "json").mkdir(parents=True, exist_ok=True)
    source = iter_video(pathlib.Path(args.video)) if args.video else iter_images(
        pathlib.Path(args.images))
    boxes = load_boxes(pathlib.Path(args.boxes) if args.boxes else None)
    refiner = None
    if args.online:
        # Loaded and checked before any frame is processed: a bad TP-Net fails in seconds.
        if args.tp_net:
            tp_path = pathlib.Path(args.tp_net)
        elif args.run:
            tp_path = pathlib.Path(args.run) / "tp_net.keras"
            if not tp_path.exists():
                raise FileNotFoundError(
                    f"--online needs a TP-Net: {tp_path} not found; pass --tp-net (temporal_train "
                    "writes runs/temporal/tp_net.keras)")
        else:
            raise ValueError("--online with --saved-model needs --tp-net (a .keras file or a "
                             "tp_net SavedModel)")
        refiner, window, mode = load_refiner(tp_path)
        if mode != "online":
            raise ValueError(f"--online needs an online TP-Net; {tp_path} is {mode}")
    predictor = Predictor(args.saved_model, args.run)

    frames, names, results = [], [], []
    pending: list[tuple[str, np.ndarray]] = []

    def flush():
        start = len(names)
        jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
                 for _, f in pending]
        bx = np.array([box_for(boxes, start + i, n) for i, (n, _) in enumerate(pending)])
        res = predictor(jpegs, bx, args.focal_length, args.root_depth_mm)
        for i, (name, frame) in enumerate(pending):
            names.append(name)
            frames.append(frame if args.render else None)
            results.append({k: v[i] for k, v in res.items() if k != "crop_boxes"}
                           | {"box": res["crop_boxes"][i]})
        print(f"frames {len(names)}", file=sys.stderr, flush=True)
        pending.clear()

    for item in source:
        pending.append(item)
        if len(pending) == args.batch:
            flush()
    if pending:
        flush()
    if not results:
        raise ValueError(f"no frames read from {args.video or args.images}")

    root_rel = np.stack([r["joints_3d_root_relative_mm"] for r in results])  # (T, J, 3)
    motion = root_rel
    if refiner is not None:
        motion = refine_online(root_rel, refiner, window)
        for r, refined in zip(results, motion):
            r["joints_3d_refined_mm"] = refined

    for i, (name, r) in enumerate(zip(names, results)):
        record = {"frame": i, "source": name} | {k: np.asarray(v).tolist() for k, v in r.items()}
        (out / "json" / f"frame_{i:06d}.json").write_text(json.dumps(record))

    # BVH: one skeleton for the whole motion (median bone lengths), y-up.
    lengths = fitting.sequence_bone_lengths(motion)
    fps = args.fps
    if args.video:
        fps = cv2.VideoCapture(str(args.video)).get(cv2.CAP_PROP_FPS) or fps
    bvh.write_bvh(out / "motion.bvh", motion @ Y_UP.T, frame_time=1.0 / fps, lengths=lengths)

    if args.render:
        (out / "render").mkdir(exist_ok=True)
        writer = None
        for i, (frame, r, pose) in enumerate(zip(frames, results, motion)):
            image = render.side_by_side(frame, r["joints_2d_px"], pose, r["confidence"])
            cv2.imwrite(str(out / "render" / f"frame_{i:06d}.jpg"), image)
            if args.video:
                if writer is None:
                    writer = cv2.VideoWriter(str(out / "render.mp4"),
                                             cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                             (image.shape[1], image.shape[0]))
                writer.write(image)
        if writer is not None:
            writer.release()
    print(f"wrote {len(results)} frames to {out}", file=sys.stderr)
    return {"frames": len(results), "motion": motion, "results": results}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", help="input video file")
    source.add_argument("--images", help="folder of images (processed in name order)")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--saved-model", help="exported sap_net or pipeline version directory")
    model.add_argument("--run", help="run directory with sap_net.keras (and tp_net.keras)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--boxes", help="boxes.json: per-frame [x0, y0, x1, y1]")
    parser.add_argument("--online", action="store_true", help="TP-Net refinement (online)")
    parser.add_argument("--tp-net", help="TP-Net .keras or SavedModel (default RUN/tp_net.keras)")
    parser.add_argument("--focal-length", type=float, default=0.0,
                        help="fx = fy in image pixels (0: max(H, W))")
    parser.add_argument("--root-depth-mm", type=float, default=0.0,
                        help="pelvis depth in mm (0: 5000)")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate for image folders")
    parser.add_argument("--batch", type=int, default=16, help="frames per model call")
    parser.add_argument("--no-render", dest="render", action="store_false",
                        help="skip the rendered images/video")
    return parser.parse_args(argv)


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
