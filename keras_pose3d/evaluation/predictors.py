"""SAP-Net predictors for evaluation and the prediction pass over validation records.

A predictor maps images (B, S, S, 3), crop intrinsics (B, 4) and ground-truth root depth (B,)
to either {"pose_norm", "pose_2d"} (normalised network outputs; decoded here exactly with the
record's crop intrinsics) or {"pose_mm", "pose_2d_px"} (a SavedModel's `predict_image`, whose
decoder assumes the principal point at the crop centre). `run_predictions` decodes 3D with the
ground-truth root depth of `joints_3d` (the paper assumes global position and scale known), so
3DHP predictions come out at the `annot3` size (`evaluation.mpi_inf_3dhp.scale_to_univ`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Predictor = Callable[[np.ndarray, np.ndarray, np.ndarray], dict]


def keras_predictor(model) -> Predictor:
    """images (B,S,S,3), intrinsics (B,4), root depth (B,) -> {"pose_norm", "pose_2d"}."""

    def predict(images, intrinsics, root_depth):
        out = model(images, training=False)
        return {
            "pose_norm": np.asarray(out["pose_3d"], np.float64),
            "pose_2d": np.asarray(out["pose_2d"], np.float64),
        }

    return predict


def saved_model_predictor(path: str) -> tuple[Predictor, str]:
    """A SavedModel's `predict_raw` (exact) or `predict_image` signature."""
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    sigs = loaded.signatures
    if "predict_raw" in sigs:
        fn = sigs["predict_raw"]

        def predict(images, intrinsics, root_depth):
            out = fn(images=tf.constant(images, tf.float32))
            return {
                "pose_norm": out["pose_3d"].numpy().astype(np.float64),
                "pose_2d": out["pose_2d"].numpy().astype(np.float64),
            }

        return predict, "predict_raw"
    if "predict_image" in sigs:
        fn = sigs["predict_image"]

        def predict(images, intrinsics, root_depth):
            out = fn(
                images=tf.constant(images, tf.float32),
                focal_length=tf.constant(intrinsics[:, 0], tf.float32),
                root_depth_mm=tf.constant(root_depth, tf.float32),
            )
            return {
                "pose_mm": out["joints_3d_mm"].numpy().astype(np.float64),
                "pose_2d_px": out["joints_2d_px"].numpy().astype(np.float64),
            }

        return predict, "predict_image"
    raise ValueError(
        f"SavedModel {path} has neither 'predict_raw' nor 'predict_image'; "
        f"signatures: {sorted(sigs)}"
    )


def run_predictions(
    predict: Predictor,
    files: Sequence[str],
    input_size: int,
    heatmap_size: int,
    batch_size: int = 32,
) -> dict[str, np.ndarray]:
    """Predictions and ground truth over validation records.

    Returns:
        pred_mm (N,16,3) camera mm, gt_mm (N,16,3), pred_px / gt_px (N,16,2) input px,
        visibility (N,16).
    """
    from keras_pose3d.data import pose_codec
    from keras_pose3d.data.dataset import make_validation_dataset

    ds = make_validation_dataset(
        list(files), input_size=input_size, heatmap_size=heatmap_size, batch_size=batch_size
    )
    parts: dict[str, list] = {k: [] for k in ("pred_mm", "gt_mm", "pred_px", "gt_px", "visibility")}
    for inputs, targets in ds.as_numpy_iterator():
        intr = targets["intrinsics"].astype(np.float64)
        root = targets["root_depth"].astype(np.float64)
        out = predict(inputs["image"], intr, root)
        if "pose_norm" in out:
            pred_mm = pose_codec.decode_pose_3d(out["pose_norm"], intr, root, input_size)
            pred_px = pose_codec.denormalise_2d(out["pose_2d"], input_size)
        else:  # predict_image returns mm and pixels of the S x S input already
            pred_mm, pred_px = out["pose_mm"], out["pose_2d_px"]
        parts["pred_mm"].append(pred_mm)
        parts["gt_mm"].append(targets["joints_3d"].astype(np.float64))
        parts["pred_px"].append(pred_px)
        parts["gt_px"].append(pose_codec.denormalise_2d(targets["pose_2d"], input_size))
        parts["visibility"].append(targets["visibility"].astype(np.float64))
    if not parts["pred_mm"]:
        raise ValueError(f"no records in {list(files)}")
    return {k: np.concatenate(v) for k, v in parts.items()}
