"""SAP-Net predictions in camera mm: the one place where network outputs meet the crop
intrinsics and the root depth, and the batched prediction pass that every caller runs.

Callers: the trainer's validation MPJPE (`training.trainer.Trainer.validate`), evaluation
(`evaluation.predictors.run_predictions`) and TP-Net's prediction files
(`pipelines.predict_sequences`). It lives under `models`, not `evaluation`, because
`pipelines/` may import `models` but never training, evaluation or serving
(docs/architecture.md, Layering), and it needs nothing above `data.pose_codec`.

A predictor maps images (B, S, S, 3) float32, crop intrinsics (B, 4) (fx, fy, cx, cy in
network-input px) and the root depth (B,) mm to either

    {"pose_norm" (B, J, 3), "pose_2d" (B, J, 2)}   SAP-Net's normalised outputs, decoded here
                                                   exactly with the record's crop intrinsics
    {"pose_mm" (B, J, 3), "pose_2d_px" (B, J, 2)}  already decoded (a SavedModel's
                                                   `predict_image`, whose decoder assumes the
                                                   principal point at the crop centre)

Every caller passes the ground-truth root depth: the paper's protocol assumes the global
position and scale known.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from keras_pose3d.data import pose_codec

Predictor = Callable[[np.ndarray, np.ndarray, np.ndarray], dict]


def keras_predictor(model) -> Predictor:
    """A SAP-Net (called on images -> {"pose_3d", "pose_2d", ...}) as a predictor: images
    (B, S, S, 3), intrinsics (B, 4), root depth (B,) -> {"pose_norm", "pose_2d"} float64."""

    def predict(images, intrinsics, root_depth):
        out = model(images, training=False)
        return {
            "pose_norm": np.asarray(out["pose_3d"], np.float64),
            "pose_2d": np.asarray(out["pose_2d"], np.float64),
        }

    return predict


class GraphModel:
    """A SAP-Net called through one tf.function, traced once for (None, S, S, 3) float32.

    Eager Keras calls, one per batch, cost more than a small network's forward pass. A
    tf.function reads the model's variables when it runs, so weights loaded into the same model
    afterwards (`model.load_weights`) are used without a new trace: wrap a model once and
    reload weights into it, rather than wrapping one model per weight set (every wrapper is a
    new trace, and TensorFlow warns about frequent retracing after a few).
    """

    def __init__(self, model):
        import tensorflow as tf

        self.input_size = s = int(model.input_size)
        self._call = tf.function(
            lambda images: model(images, training=False),
            input_signature=[tf.TensorSpec((None, s, s, 3), tf.float32)],
        )

    def __call__(self, images, training=False):
        return self._call(images)


def decode(
    out: dict, intrinsics: np.ndarray, root_depth: np.ndarray, input_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """A predictor's outputs -> (pose_mm (B, J, 3) camera mm, pose_2d_px (B, J, 2) input px).

    Normalised outputs go through `pose_codec.decode_pose_3d` (pinhole back-projection with
    `intrinsics` (B, 4) and `root_depth` (B,) mm) and `pose_codec.denormalise_2d`; decoded ones
    are returned as they are. Both float64.
    """
    if "pose_norm" in out:
        return (
            pose_codec.decode_pose_3d(out["pose_norm"], intrinsics, root_depth, input_size),
            pose_codec.denormalise_2d(out["pose_2d"], input_size),
        )
    if "pose_mm" in out and "pose_2d_px" in out:
        return np.asarray(out["pose_mm"], np.float64), np.asarray(out["pose_2d_px"], np.float64)
    raise ValueError(
        "a predictor must return pose_norm and pose_2d, or pose_mm and pose_2d_px. "
        f"Received keys: {sorted(out)}"
    )


def predict_batches(
    predict: Predictor, batches: Iterable[dict], input_size: int
) -> Iterator[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """The prediction pass: every batch through `predict`, decoded to mm (`decode`).

    Args:
        predict: a predictor (module docstring).
        batches: dicts of per-row arrays (NumPy or eager tensors): "image" (B, S, S, 3),
            "intrinsics" (B, 4) input px, "root_depth" (B,) mm, whatever else the caller needs
            back (ground truth, keys), and optionally "keep" (B,) bool: the rows to predict.
            The others are dropped before the model call (a 2D-only record costs no forward
            pass) and a batch with no row kept is skipped.
        input_size: S, the network input side (px).

    Yields:
        (rows, pred): rows = the batch's arrays (NumPy, "keep" removed) at the kept rows;
        pred = {"pose_mm" (K, J, 3) camera mm, "pose_2d_px" (K, J, 2) input px}, float64.
    """
    for batch in batches:
        rows = {k: np.asarray(v) for k, v in batch.items()}
        keep = rows.pop("keep", None)
        if keep is not None:
            if not keep.any():
                continue
            rows = {k: v[keep] for k, v in rows.items()}
        intrinsics = rows["intrinsics"].astype(np.float64)
        root_depth = rows["root_depth"].astype(np.float64)
        out = predict(rows["image"], intrinsics, root_depth)
        pose_mm, pose_2d_px = decode(out, intrinsics, root_depth, input_size)
        yield rows, {"pose_mm": pose_mm, "pose_2d_px": pose_2d_px}
