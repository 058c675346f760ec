"""The training losses as pure tensor functions returning per-sample values (B,).

Heatmap and depth losses (Zhou et al. 2017), the geometric bone-ratio loss (Zhou et al.), and
Dabral et al.'s illegal-angle (Eq. 1) and symmetry (Eq. 2) losses. All compute in float32.
Keras layers wrapping them live in `keras_pose3d.layers.loss_layers`.
"""

from keras_pose3d.losses._common import bone_lengths, safe_norm, safe_unit
from keras_pose3d.losses.depth import depth_loss
from keras_pose3d.losses.geometric import geometric_loss
from keras_pose3d.losses.heatmap import heatmap_loss
from keras_pose3d.losses.illegal_angle import (
    ANGLE_LIMB_NAMES,
    ELBOW_PLANES,
    angle_limbs,
    illegal_angle_loss,
    illegal_angle_margin,
    illegal_angle_terms,
)
from keras_pose3d.losses.symmetry import symmetry_loss, symmetry_terms

__all__ = [
    "ANGLE_LIMB_NAMES",
    "ELBOW_PLANES",
    "angle_limbs",
    "bone_lengths",
    "depth_loss",
    "geometric_loss",
    "heatmap_loss",
    "illegal_angle_loss",
    "illegal_angle_margin",
    "illegal_angle_terms",
    "safe_norm",
    "safe_unit",
    "symmetry_loss",
    "symmetry_terms",
]
