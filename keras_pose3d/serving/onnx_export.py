"""ONNX export of the float32 graphs (tf2onnx), for ONNX Runtime and TensorRT deployments.

Only the tensor-in, tensor-out graphs are exported: JPEG decoding has no ONNX operator, so the
ONNX SAP-Net takes the already cropped network input `images` (B, S, S, 3) float32 in [0, 1]
(the `predict_raw` signature) and returns `pose_2d`, `depth`, `pose_3d` (normalised crop units)
and `confidence`; decoding to mm (`data.pose_codec.decode_pose_3d`) stays in NumPy on the
client. TP-Net takes `poses` (B, N, J, 3) mm and returns `pose_3d_mm`. Both must start from a
float32 model (`export.load_float32`): tf2onnx mis-converts mixed-precision casts.
"""

from __future__ import annotations

import contextlib
import pathlib

import keras
import tensorflow as tf

OPSET = 17


@contextlib.contextmanager
def _onnx_compatible_argmax():
    """Trace with an argmax that tf2onnx can convert.

    Keras 3's TF `ops.argmax` maps -0.0 to -tiny through `signbit`, which lowers to Bitcast and
    BitwiseAnd: ops tf2onnx cannot convert (`HeatmapDecoder` uses it). During the trace it is
    swapped for `tf.math.top_k(k=1)` (ONNX TopK), which returns the same, lowest, index for ties;
    the two differ only when a maximum is a signed zero. The ONNX test compares ONNX Runtime
    against the TF graph to 1e-4, so a divergence would show.
    """
    original = keras.ops.argmax

    def argmax(x, axis=None, keepdims=False):
        x = tf.convert_to_tensor(x)
        if not x.dtype.is_floating or axis is None or axis not in (-1, x.shape.rank - 1) \
                or keepdims:
            return original(x, axis=axis, keepdims=keepdims)
        return tf.math.top_k(x, k=1).indices[..., 0]

    keras.ops.argmax = argmax
    try:
        yield
    finally:
        keras.ops.argmax = original


def _convert(fn: tf.types.experimental.GenericFunction, spec: list[tf.TensorSpec],
             path: str | pathlib.Path) -> pathlib.Path:
    import tf2onnx  # imported here: it is slow to import and only export needs it

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _onnx_compatible_argmax():
        tf2onnx.convert.from_function(fn, input_signature=spec, opset=OPSET,
                                      output_path=str(path))
    return path


def export_sap_net_onnx(sap_net: keras.Model, path: str | pathlib.Path) -> pathlib.Path:
    """Float32 SAPNet -> ONNX: images (B, S, S, 3) -> pose_2d, depth, pose_3d, confidence."""
    s = int(sap_net.input_size)
    spec = [tf.TensorSpec((None, s, s, 3), tf.float32, name="images")]

    @tf.function(input_signature=spec)
    def fn(images):
        out = sap_net(images, training=False)
        return {
            "pose_2d": tf.identity(out["pose_2d"], name="pose_2d"),
            "depth": tf.identity(out["depth"], name="depth"),
            "pose_3d": tf.identity(out["pose_3d"], name="pose_3d"),
            "confidence": tf.reduce_max(out["heatmaps"][:, -1], axis=[1, 2], name="confidence"),
        }

    return _convert(fn, spec, path)


def export_tp_net_onnx(tp_net: keras.Model, path: str | pathlib.Path) -> pathlib.Path:
    """Float32 TPNet -> ONNX: poses (B, N, J, 3) mm -> pose_3d_mm (B, J, 3)."""
    spec = [tf.TensorSpec((None, tp_net.window, tp_net.num_joints, 3), tf.float32, name="poses")]

    @tf.function(input_signature=spec)
    def fn(poses):
        return {"pose_3d_mm": tf.identity(tp_net(poses, training=False), name="pose_3d_mm")}

    return _convert(fn, spec, path)
