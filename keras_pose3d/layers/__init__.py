"""Keras layers of SAP-Net and the loss layers that wrap `keras_pose3d.losses`."""

from keras_pose3d.layers.depth_regressor import DepthRegressor
from keras_pose3d.layers.heatmap_decode import HeatmapDecoder, heatmap_to_normalised
from keras_pose3d.layers.hourglass import Hourglass, StackedHourglass
from keras_pose3d.layers.loss_layers import (
    DepthLoss,
    GeometricLoss,
    HeatmapLoss,
    IllegalAngleLoss,
    SymmetryLoss,
)
from keras_pose3d.layers.residual import Residual

__all__ = [
    "DepthLoss",
    "DepthRegressor",
    "GeometricLoss",
    "HeatmapDecoder",
    "HeatmapLoss",
    "Hourglass",
    "IllegalAngleLoss",
    "Residual",
    "StackedHourglass",
    "SymmetryLoss",
    "heatmap_to_normalised",
]
