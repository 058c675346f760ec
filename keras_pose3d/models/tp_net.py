"""TP-Net: the temporal pose network of Dabral et al. (ECCV 2018), section 4.2.

A moving window of N SAP-Net predictions (root-relative 3D poses) is flattened and mapped by two
fully connected layers of 4096 ReLU units to one refined pose. Two window layouts:

* ``online``: the N poses ending at the target frame t, i.e. frames t-N+1 .. t. The paper's
  sensitivity analysis (its Fig. 5) runs over t = 0 .. -19, so the target frame is part of the
  window and the output has no lag.
* ``semi_online`` (Bi-TP-Net): the N//2 poses before t, t itself and the N - N//2 - 1 after it
  (10 / 1 / 9 for N = 20); the output lags N - N//2 - 1 frames.

At the ends of a sequence the missing frames are padded by repeating the first (before the
start) or the last (after the end) pose, so every frame gets an output. The window maths
(`window_offsets`, `target_index`, `make_windows`) lives in `data.windows`.

Frame rate: a window of N poses covers N / frame_rate seconds, so a TP-Net is only valid on
poses at the rate it was trained at (`config.TP_NET_FRAME_RATE`, 25 fps; docs/training.md). The
model records it (`frame_rate`, None when unknown) in its config, and export stores it in the
SavedModel.

Units: poses go in and come out in mm. Inside, they are divided by `scale_mm` (1000, so metres)
before the first layer and multiplied back after the last: raw mm (values up to ~1000) would put
the ReLU layers far outside the range Glorot initialisation assumes and slow Adam down.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_pose3d import skeleton
from keras_pose3d.data.windows import window_offsets


@keras.saving.register_keras_serializable(package="keras_pose3d")
class TPNet(keras.Model):
    """Temporal PoseNet (Dabral et al. 2018, section 4.2).

    Args:
        window: int. N, poses per input window (20 in the paper).
        mode: str. "online" (target last) or "semi_online" (Bi-TP-Net, target at N//2). The layer
            math is the same; the mode fixes how windows are built (`data.windows.make_windows`)
            and is kept in the config so a saved model says which windows it expects.
        num_joints: int. J (16, MPII order).
        hidden: int. Units of each of the two hidden layers (4096 in the paper).
        dropout: float. Dropout after each hidden layer (0 = none, the paper's setting).
        scale_mm: float. Poses are divided by this before the first layer and multiplied after
            the last (module docstring).
        frame_rate: float or None. Frames per second of the pose sequences the model was trained
            on (None: unknown, models saved before it was recorded). A window of N poses spans
            N / frame_rate seconds, so a caller must feed poses at this rate (`infer`
            resamples a video's poses to it, `keras_pose3d.refine`); stored in the config and
            in the SavedModel.

    Call: poses (B, N, J, 3) root-relative mm -> refined pose (B, J, 3) mm, float32.
    """

    def __init__(
        self,
        window: int = 20,
        mode: str = "online",
        num_joints: int = skeleton.NUM_JOINTS,
        hidden: int = 4096,
        dropout: float = 0.0,
        scale_mm: float = 1000.0,
        frame_rate: float | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        window_offsets(window, mode)  # raises on a bad window or mode
        if hidden < 1 or num_joints < 1:
            raise ValueError(
                f"hidden and num_joints must be >= 1. Received: hidden={hidden}, "
                f"num_joints={num_joints}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout}")
        if scale_mm <= 0:
            raise ValueError(f"scale_mm must be > 0. Received: scale_mm={scale_mm}")
        if frame_rate is not None and not (np.isfinite(frame_rate) and frame_rate > 0):
            raise ValueError(
                f"frame_rate must be None (unknown) or a finite number of frames per second > 0. "
                f"Received: frame_rate={frame_rate}"
            )
        self.window = int(window)
        self.mode = mode
        self.num_joints = int(num_joints)
        self.hidden = int(hidden)
        self.dropout = float(dropout)
        self.scale_mm = float(scale_mm)
        self.frame_rate = None if frame_rate is None else float(frame_rate)
        self.flatten = keras.layers.Reshape((self.window * self.num_joints * 3,))
        self.fc1 = keras.layers.Dense(self.hidden, activation="relu", name="fc1")
        self.drop1 = keras.layers.Dropout(self.dropout)
        self.fc2 = keras.layers.Dense(self.hidden, activation="relu", name="fc2")
        self.drop2 = keras.layers.Dropout(self.dropout)
        # The output head computes in float32 under mixed precision (house style).
        self.head = keras.layers.Dense(self.num_joints * 3, dtype="float32", name="head")
        self.unflatten = keras.layers.Reshape((self.num_joints, 3))

    def build(self, input_shape):
        self._check_shape(input_shape)
        n_in = self.window * self.num_joints * 3
        self.fc1.build((None, n_in))
        self.fc2.build((None, self.hidden))
        self.head.build((None, self.hidden))
        self.built = True

    def _check_shape(self, shape):
        expected = (self.window, self.num_joints, 3)
        got = tuple(shape[1:])
        if len(got) != 3 or any(g is not None and g != e for g, e in zip(got, expected)):
            raise ValueError(
                f"TPNet input `poses` must have shape (B, {self.window}, {self.num_joints}, 3) "
                f"(window N={self.window}). Received: shape={tuple(shape)}"
            )

    def call(self, poses, training=None):
        self._check_shape(poses.shape)
        x = keras.ops.cast(poses, self.compute_dtype) / self.scale_mm  # (B, N, J, 3) in m
        x = self.flatten(x)  # (B, N*J*3)
        x = self.drop1(self.fc1(x), training=training)  # (B, hidden)
        x = self.drop2(self.fc2(x), training=training)  # (B, hidden)
        x = self.head(x)  # (B, J*3), float32
        return self.unflatten(x) * self.scale_mm  # (B, J, 3) mm

    def get_config(self):
        config = super().get_config()
        config.update(
            window=self.window,
            mode=self.mode,
            num_joints=self.num_joints,
            hidden=self.hidden,
            dropout=self.dropout,
            scale_mm=self.scale_mm,
            frame_rate=self.frame_rate,
        )
        return config
