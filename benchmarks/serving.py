"""Serving speed, side by side in one run: SavedModel (unfolded, BatchNorm-folded, folded + XLA)
against ONNX Runtime, the full JPEG pipeline, TP-Net in float32 and bfloat16.

    python benchmarks/serving.py [--sizes quickstart,paper] [--repeats 20] [--no-xla]
        [--tp-hidden 4096,1024] [--inter-op N] [--intra-op N]

For each SAP-Net size (random weights and random BatchNorm statistics; speed does not depend
on them) it exports, to a temporary directory, the serving graphs three ways
(`serving.export.export_sap_net`: fold=False, the export before issue 24; fold=True, what the
export writes now; fold=True + jit_compile) and the ONNX graph, and prints
  * latency per image at batch 1 and throughput at batch 32 of `predict_raw` for each
    SavedModel and for the ONNX graph under ONNX Runtime (CPU), and the ratios
    ONNX Runtime time / SavedModel time (> 1: the SavedModel is faster);
  * the full pipeline's frames/s: `predict_jpeg` on 640x480 JPEG frames, batch 8 (JPEG decode,
    crop, SAP-Net, decode to mm), unfolded and folded;
then the paper-size TP-Net (N = 20, 2 x 4096) at batch 1: float32 and bfloat16 SavedModels
(`refine`), ONNX Runtime float32, the ratio, and the bfloat16 model's distance to float32 on
random windows (mean and largest per joint, mm).
Sizes: paper = 2 stacks x 256 features, hourglass depth 4, 2 modules, 256 px input, 64 px
heatmaps; quickstart = configs/quickstart.yaml's model (2 x 64, depth 2, 64 px input).
Timing (`compare`): medians of --repeats calls each (batch 32: a quarter, at least 3), made in
blocks of 5 after one untimed call, the variants' blocks in turn.
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
import keras
import numpy as np
import tensorflow as tf

from keras_pose3d.models.sap_net import SAPNet
from keras_pose3d.models.tp_net import TPNet
from keras_pose3d.serving import export, onnx_export, optimize

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


def compare(fns: dict, repeats: int, block: int = 5) -> dict:
    """{name: median seconds} over `repeats` timed calls of each function.

    Calls are made in blocks: one untimed call, then up to `block` timed ones, the functions'
    blocks in turn until each has `repeats` timed calls. Turns spread a change of machine load
    over all of them; the untimed call keeps what the previous function left behind (ONNX
    Runtime's pool threads spin for a while after a run, another model's weights in the
    cache) out of the figures.
    """
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    while any(len(t) < repeats for t in times.values()):
        for name, fn in fns.items():
            fn()
            for _ in range(min(block, repeats - len(times[name]))):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def random_batch_norms(model: keras.Model, seed: int = 0) -> None:
    """Trained-looking BN statistics (folding then changes every kernel)."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, c))
            layer.beta.assign(rng.normal(0.0, 0.2, c))
            layer.moving_mean.assign(rng.normal(0.0, 0.3, c))
            layer.moving_variance.assign(rng.uniform(0.3, 2.0, c))


def bench_sap_net(name: str, repeats: int, workdir: pathlib.Path, xla: bool) -> None:
    import onnxruntime as ort

    model = SAPNet(**SIZES[name])
    s = model.input_size
    model(np.zeros((1, s, s, 3), np.float32))
    random_batch_norms(model)
    variants = {"unfolded": {"fold": False}, "folded": {"fold": True}}
    if xla:
        variants["folded+XLA"] = {"fold": True, "jit_compile": True}
    loaded = {
        label: tf.saved_model.load(
            str(export.export_sap_net(model, workdir, name=f"{name}_{i}", **options))
        )
        for i, (label, options) in enumerate(variants.items())
    }
    onnx_path = onnx_export.export_sap_net_onnx(model, workdir / f"{name}.onnx")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    print(f"\nSAP-Net {name}: {model.count_params() / 1e6:.2f} M parameters, input {s} px")
    labels = [*variants, "ONNX Runtime"]
    print(f"{'':24}" + "".join(f"{label:>14}" for label in labels))
    results = {}
    for batch in (1, 32):
        x = np.random.default_rng(0).uniform(0, 1, (batch, s, s, 3)).astype(np.float32)
        xt = tf.constant(x)
        fns = {
            label: (lambda m=m, xt=xt: m.signatures["predict_raw"](images=xt)["pose_3d"].numpy())
            for label, m in loaded.items()
        }
        fns["ONNX Runtime"] = lambda x=x: session.run(None, {"images": x})
        reps = repeats if batch == 1 else max(3, repeats // 4)
        results[batch] = compare(fns, reps)
    latency = {label: 1e3 * t for label, t in results[1].items()}
    throughput = {label: 32 / t for label, t in results[32].items()}
    print(f"{'batch 1 latency, ms':24}" + "".join(f"{latency[k]:>14.2f}" for k in labels))
    print(f"{'batch 32, img/s':24}" + "".join(f"{throughput[k]:>14.2f}" for k in labels))
    for label in variants:
        print(
            f"  SavedModel {label} vs ONNX Runtime: batch 1 {results[1]['ONNX Runtime'] / results[1][label]:.2f}x, "
            f"batch 32 {results[32]['ONNX Runtime'] / results[32][label]:.2f}x "
            "(ONNX Runtime time / SavedModel time; > 1: the SavedModel is faster)"
        )
    print(
        f"  folded vs unfolded: batch 1 {results[1]['unfolded'] / results[1]['folded']:.2f}x, "
        f"batch 32 {results[32]['unfolded'] / results[32]['folded']:.2f}x"
    )
    frame = cv2.GaussianBlur(
        np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8), (0, 0), 3
    )
    frames = tf.constant([cv2.imencode(".jpg", frame)[1].tobytes()] * 8)
    fns = {
        label: (lambda m=loaded[label]: m.signatures["predict_jpeg"](images=frames)["joints_3d_mm"])
        for label in ("unfolded", "folded")
    }
    pipeline = compare(fns, max(3, repeats // 4))
    print(
        f"  full pipeline (640x480 JPEG -> mm), batch 8: unfolded {8 / pipeline['unfolded']:.2f} "
        f"frames/s, folded {8 / pipeline['folded']:.2f} frames/s "
        f"({pipeline['unfolded'] / pipeline['folded']:.2f}x)"
    )


def bench_tp_net(repeats: int, workdir: pathlib.Path, hidden: int = 4096) -> None:
    import onnxruntime as ort

    keras.utils.set_random_seed(0)
    model = TPNet(window=20, hidden=hidden)
    workdir = workdir / f"tp_net_{hidden}"
    model(np.zeros((1, 20, 16, 3), np.float32))
    refine = {
        precision: tf.saved_model.load(
            str(export.export_tp_net(model, workdir / precision, precision=precision))
        ).signatures["refine"]
        for precision in ("float32", "bfloat16")
    }
    session = ort.InferenceSession(
        str(onnx_export.export_tp_net_onnx(model, workdir / "tp_net.onnx")),
        providers=["CPUExecutionProvider"],
    )
    x = optimize.tp_net_probe(20, 16, batch=1, seed=5)
    xt = tf.constant(x)
    fns = {p: (lambda r=r: r(poses=xt)["pose_3d_mm"].numpy()) for p, r in refine.items()}
    fns["ONNX Runtime float32"] = lambda: session.run(None, {"poses": x})
    t = compare(fns, repeats * 5)
    windows = optimize.tp_net_probe(20, 16, batch=256, seed=9)
    got = refine["bfloat16"](poses=tf.constant(windows))["pose_3d_mm"].numpy()
    distance = np.linalg.norm(got - np.asarray(model(windows)), axis=-1)
    print(
        f"\nTP-Net (N=20, 2 x {hidden}, {model.count_params() / 1e6:.1f} M parameters), batch 1: "
        f"SavedModel float32 {1e3 * t['float32']:.3f} ms, bfloat16 {1e3 * t['bfloat16']:.3f} ms "
        f"({t['float32'] / t['bfloat16']:.2f}x), ONNX Runtime float32 "
        f"{1e3 * t['ONNX Runtime float32']:.3f} ms; bfloat16 - float32 on 256 random windows: "
        f"{distance.mean():.2f} mm per joint on average, {distance.max():.2f} mm at most"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="quickstart,paper")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-xla", action="store_true", help="skip the folded + XLA SavedModel")
    parser.add_argument(
        "--tp-hidden",
        default="4096",
        help="TP-Net widths to time, comma-separated (the paper's 4096; experiments.tp_net_width "
        "compares their accuracy)",
    )
    parser.add_argument(
        "--inter-op",
        type=int,
        default=0,
        help="TensorFlow's inter-op threads (TF-Serving: --tensorflow_inter_op_parallelism); "
        "0: TensorFlow's default (the cores)",
    )
    parser.add_argument(
        "--intra-op",
        type=int,
        default=0,
        help="TensorFlow's intra-op threads (TF-Serving: --tensorflow_intra_op_parallelism); "
        "0: TensorFlow's default (the cores)",
    )
    args = parser.parse_args(argv)
    # Before anything starts TensorFlow's runtime: the pools are fixed from then on.
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)
    print(
        f"inter-op threads {args.inter_op or 'default'}, "
        f"intra-op threads {args.intra_op or 'default'}"
    )
    print(
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, "
        f"GPUs: {len(tf.config.list_physical_devices('GPU'))}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        for hidden in (int(h) for h in args.tp_hidden.split(",")):
            bench_tp_net(args.repeats, work, hidden)
        for name in filter(None, args.sizes.split(",")):
            bench_sap_net(name, args.repeats, work, xla=not args.no_xla)
    return 0


if __name__ == "__main__":
    sys.exit(main())
