"""ONNX export of the float32 graphs (tf2onnx), for ONNX Runtime and TensorRT deployments.

Only the tensor-in, tensor-out graphs are exported: JPEG decoding has no ONNX operator, so the
ONNX SAP-Net takes the already cropped network input `images` (B, S, S, 3) float32 in [0, 1]
(the `predict_raw` signature) and returns `pose_2d`, `depth`, `pose_3d` (normalised crop units)
and `confidence`; decoding to mm (`data.pose_codec.decode_pose_3d`) stays in NumPy on the
client. TP-Net takes `poses` (B, N, J, 3) mm and returns `pose_3d_mm`. Both must start from a
float32 model (`models.loading.load_float32`): tf2onnx mis-converts mixed-precision casts.
"""

from __future__ import annotations

import pathlib

import keras
import tensorflow as tf

from keras_pose3d import atomic_files

OPSET = 17


def _convert(
    fn: tf.types.experimental.GenericFunction, spec: list[tf.TensorSpec], path: str | pathlib.Path
) -> pathlib.Path:
    import tf2onnx  # imported here: it is slow to import and only export needs it

    # Temporary file + rename: a killed export never leaves a truncated .onnx under the name.
    return atomic_files.write_with(
        path,
        lambda tmp: tf2onnx.convert.from_function(
            fn, input_signature=spec, opset=OPSET, output_path=str(tmp)
        ),
        suffix=".onnx",
    )


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
