"""The SavedModel predictor and evaluation's prediction pass over validation records.

Predictors and the decode to mm are `models.prediction`'s (a Keras SAP-Net:
`models.prediction.keras_predictor`). Here: a SavedModel as a predictor, and `run_predictions`,
which runs the shared prediction pass (`models.prediction.predict_batches`) over the validation
dataset and keeps the ground truth beside the predictions. 3D is decoded with the ground-truth
root depth of `joints_3d` (the paper assumes global position and scale known), so 3DHP
predictions come out at the `annot3` size (`evaluation.mpi_inf_3dhp.scale_to_univ`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keras_pose3d.models.prediction import Predictor, predict_batches


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
    batches = ({"image": inputs["image"], **targets} for inputs, targets in ds.as_numpy_iterator())
    parts: dict[str, list] = {k: [] for k in ("pred_mm", "gt_mm", "pred_px", "gt_px", "visibility")}
    for rows, pred in predict_batches(predict, batches, input_size):
        parts["pred_mm"].append(pred["pose_mm"])
        parts["gt_mm"].append(rows["joints_3d"].astype(np.float64))
        parts["pred_px"].append(pred["pose_2d_px"])
        parts["gt_px"].append(pose_codec.denormalise_2d(rows["pose_2d"], input_size))
        parts["visibility"].append(rows["visibility"].astype(np.float64))
    if not parts["pred_mm"]:
        raise ValueError(f"no records in {list(files)}")
    return {k: np.concatenate(v) for k, v in parts.items()}
