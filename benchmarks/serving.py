"""Serving speed: SavedModel vs ONNX Runtime, TP-Net latency, full-pipeline frames/s.

    python benchmarks/serving.py [--sizes quickstart,paper] [--repeats 20]

For each SAP-Net size (random weights; speed does not depend on them) it exports the serving
graphs and the ONNX graph to a temporary directory and prints
  * latency per image at batch 1 and throughput at batch 32 for `predict_raw` (SavedModel) and
    the ONNX graph under ONNX Runtime (CPU),
  * the full pipeline's frames/s: `predict_jpeg` on 640x480 JPEG frames, batch 8 (JPEG decode,
    crop, SAP-Net, decode to mm),
and once the paper-size TP-Net's latency at batch 1 (the paper: < 1 ms on a 1080 Ti).
Sizes: paper = 2 stacks x 256 features, hourglass depth 4, 256 px input, 64 px heatmaps;
quickstart = configs/quickstart.yaml's model (2 x 64, depth 2, 64 px input, 16 px heatmaps).
Medians over --repeats calls after 2 warm-up calls.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np
import tensorflow as tf

from keras_pose3d.models.sap_net import SAPNet
from keras_pose3d.models.tp_net import TPNet
from keras_pose3d.serving import export, onnx_export

SIZES = {
    "quickstart": {
        "num_stacks": 2,
        "num_features": 64,
        "hourglass_depth": 2,
        "depth_blocks": 2,
        "input_size": 64,
        "heatmap_size": 16,
    },
    "paper": {
        "num_stacks": 2,
        "num_features": 256,
        "hourglass_depth": 4,
        "depth_blocks": 4,
        "num_modules": 2,
        "input_size": 256,
        "heatmap_size": 64,
    },
}


def median_seconds(fn, repeats: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_sap_net(name: str, repeats: int, workdir: pathlib.Path) -> None:
    import onnxruntime as ort

    model = SAPNet(**SIZES[name])
    s = model.input_size
    model(np.zeros((1, s, s, 3), np.float32))
    path = export.export_sap_net(model, workdir, name=f"sap_net_{name}")
    loaded = tf.saved_model.load(str(path))
    raw, jpeg = loaded.signatures["predict_raw"], loaded.signatures["predict_jpeg"]
    onnx_path = onnx_export.export_sap_net_onnx(model, workdir / f"{name}.onnx")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    params = model.count_params() / 1e6
    print(f"\nSAP-Net {name}: {params:.2f} M parameters, input {s} px")
    for batch in (1, 32):
        x = np.random.default_rng(0).uniform(0, 1, (batch, s, s, 3)).astype(np.float32)
        xt = tf.constant(x)
        reps = repeats if batch == 1 else max(3, repeats // 4)
        t_tf = median_seconds(lambda xt=xt: raw(images=xt)["pose_3d"].numpy(), reps)
        t_ort = median_seconds(lambda x=x: session.run(None, {"images": x}), reps)
        if batch == 1:
            print(
                f"  batch 1 latency   SavedModel {1e3 * t_tf:8.2f} ms   ONNX Runtime "
                f"{1e3 * t_ort:8.2f} ms"
            )
        else:
            print(
                f"  batch 32 throughput SavedModel {batch / t_tf:8.1f} img/s  ONNX Runtime "
                f"{batch / t_ort:8.1f} img/s"
            )
    frame = cv2.GaussianBlur(
        np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8), (0, 0), 3
    )
    data = cv2.imencode(".jpg", frame)[1].tobytes()
    frames = tf.constant([data] * 8)
    t = median_seconds(lambda: jpeg(images=frames)["joints_3d_mm"].numpy(), max(3, repeats // 4))
    print(f"  full pipeline (640x480 JPEG -> mm), batch 8: {8 / t:8.1f} frames/s")


def bench_tp_net(repeats: int, workdir: pathlib.Path) -> None:
    model = TPNet(window=20, hidden=4096)
    model(np.zeros((1, 20, 16, 3), np.float32))
    path = export.export_tp_net(model, workdir)
    refine = tf.saved_model.load(str(path)).signatures["refine"]
    x = tf.constant(np.random.default_rng(0).normal(0, 300, (1, 20, 16, 3)).astype(np.float32))
    t = median_seconds(lambda: refine(poses=x)["pose_3d_mm"].numpy(), repeats * 5)
    print(
        f"\nTP-Net (N=20, 2 x 4096, {model.count_params() / 1e6:.1f} M parameters): "
        f"batch 1 latency {1e3 * t:.3f} ms (SavedModel)"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="quickstart,paper")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    print(
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, "
        f"GPUs: {len(tf.config.list_physical_devices('GPU'))}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        bench_tp_net(args.repeats, work)
        for name in args.sizes.split(","):
            bench_sap_net(name, args.repeats, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
