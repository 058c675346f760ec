"""Poses of the people in frames: SAP-Net's serving graph (`predict_jpeg_boxes`: JPEG bytes and
person boxes in, mm and pixels out), from an exported SavedModel or a run directory's SAP-Net.

Not `models.prediction.Predictor` (a callable on network-input crops): this one takes whole
frames and does the crop inside the graph, as a served model does.
"""

from __future__ import annotations

import pathlib

import numpy as np
import tensorflow as tf


class FramePredictor:
    """`predict_jpeg_boxes` from a SavedModel or from a run directory's SAP-Net:
    `predictor(jpegs, boxes (B, 4), focal, root_depth) -> {name: (B, ...) array}`."""

    def __init__(self, saved_model: str | None = None, run: str | None = None):
        if (saved_model is None) == (run is None):
            raise ValueError("give exactly one of --saved-model and --run")
        if saved_model is not None:
            if not pathlib.Path(saved_model).is_dir():
                raise FileNotFoundError(f"SavedModel {saved_model} not found")
            try:
                loaded = tf.saved_model.load(str(saved_model))
            except OSError as e:  # no saved_model.pb, or not readable
                raise ValueError(f"cannot load SavedModel {saved_model}: {e}") from None
            if "predict_jpeg_boxes" not in loaded.signatures:
                raise ValueError(
                    f"{saved_model} has no predict_jpeg_boxes signature; export it "
                    "with python -m keras_pose3d.export (sap_net or pipeline)"
                )
            self._loaded = loaded  # keeps the variables alive
            self.fn = loaded.signatures["predict_jpeg_boxes"]
        else:
            from keras_pose3d.models import loading
            from keras_pose3d.serving import signatures

            path = pathlib.Path(run) / loading.SAP_NET_FILE
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found (--run needs a training run directory)")
            module = signatures.SAPNetServing(loading.load_float32(path))
            self._module = module
            self.fn = module.predict_jpeg_boxes

    def __call__(self, jpegs: list[bytes], boxes: np.ndarray, focal: float, root: float) -> dict:
        n = len(jpegs)
        out = self.fn(
            images=tf.constant(jpegs),
            boxes=tf.constant(boxes, tf.float32),
            focal_length=tf.fill([n], float(focal)),
            root_depth_mm=tf.fill([n], float(root)),
        )
        return {k: np.asarray(v) for k, v in out.items()}
