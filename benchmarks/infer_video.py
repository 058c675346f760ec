"""Whole `infer` on a generated 720p video: frames/s and peak memory (RSS).

    python benchmarks/infer_video.py --frames 300 1200 --size quickstart [--no-render]

For each frame count it writes a video of a synthetic person walking across the frame
(`tests/walker.py`), builds a SAP-Net of the chosen size with random weights (speed and memory
do not depend on them) and runs `python -m keras_pose3d.infer --video ... --run ...` in a child
process, with detection and tracking (no --boxes) and rendering unless --no-render. Prints per
run: wall seconds (the child's whole life: TensorFlow start-up, model load, both passes),
frames/s = frames / wall, the child's peak RSS (`RUSAGE_CHILDREN`
ru_maxrss in KiB, read in a fresh parent per run so each figure is that run's own peak), how
many frames' boxes came from the detector / tracking, the detector's own cost per frame (it
runs only when tracking needs it), whole and HOG alone (the rest is MTCNN's face search; the
walker has no face, MTCNN's slower case), and the load average (the machine is shared).
Sizes: paper = 2 stacks x 256 features, depth 4, 256 px input; quickstart =
configs/quickstart.yaml's model (2 x 64, depth 2, 64 px input).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# One table of benchmark model sizes (paper size = Zhou's net, num_modules 2): serving.py's.
from serving import SIZES

# A fresh parent per run, so RUSAGE_CHILDREN's peak is that one infer process's own.
MEASURE = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
)


def build_run(run_dir: pathlib.Path, size: str) -> None:
    from keras_pose3d.models import loading
    from keras_pose3d.models.sap_net import SAPNet

    cfg = SIZES[size]
    sap = SAPNet(**cfg)
    sap(np.zeros((1, cfg["input_size"], cfg["input_size"], 3), np.float32))
    sap.save(run_dir / loading.SAP_NET_FILE)


def detector_cost(video: pathlib.Path, detector, frames: int = 20) -> float:
    """Median ms of one detector call on the video's first frames (what a re-detection costs)."""
    import cv2

    capture = cv2.VideoCapture(str(video))
    times = []
    for _ in range(frames):
        ok, image = capture.read()
        if not ok:
            break
        start = time.perf_counter()
        detector(image)
        times.append(1000 * (time.perf_counter() - start))
    capture.release()
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[300, 1200])
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--size", choices=sorted(SIZES), default="quickstart")
    parser.add_argument("--no-render", dest="render", action="store_false")
    args = parser.parse_args()

    from keras_pose3d.inference.detect import DetectorConfig, PersonDetector
    from tests import walker

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        build_run(tmp, args.size)
        for frames in args.frames:
            video = tmp / f"walk_{frames}.mp4"
            walker.write_video(video, frames, args.width, args.height)
            out = tmp / f"out_{frames}"
            cmd = [
                sys.executable,
                "-m",
                "keras_pose3d.infer",
                "--video",
                str(video),
                "--run",
                str(tmp),
                "--out",
                str(out),
            ] + ([] if args.render else ["--no-render"])
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", MEASURE] + cmd,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                sys.exit(f"infer failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
            peak_kib = int(proc.stdout.strip().splitlines()[-1])
            boxes = json.loads((out / "boxes.json").read_text())
            sources = [
                json.loads(p.read_text())["box_source"]
                for p in sorted((out / "json").glob("frame_*.json"))
            ]
            detector_ms = detector_cost(video, PersonDetector())
            hog_ms = detector_cost(video, PersonDetector(DetectorConfig(faces=False)))
            print(
                f"{args.width}x{args.height} frames={frames} size={args.size} "
                f"render={args.render}: wall {wall:.1f} s, {frames / wall:.2f} frames/s, "
                f"peak RSS {peak_kib / 1024:.0f} MiB, boxes {len(boxes)}, "
                f"box sources { {s: sources.count(s) for s in sorted(set(sources))} }; "
                f"the detector alone: {detector_ms:.0f} ms per frame, HOG alone {hog_ms:.0f} "
                f"(medians of 20); load average {os.getloadavg()[0]:.1f} on "
                f"{os.cpu_count()} CPUs",
                flush=True,
            )


if __name__ == "__main__":
    main()
