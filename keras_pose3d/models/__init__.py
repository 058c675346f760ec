"""Models: SAP-Net (`sap_net`), TP-Net (`tp_net`), prediction (outputs -> mm), loading, complexity."""

from keras_pose3d.models.sap_net import PARTS, SAPNet

__all__ = ["PARTS", "SAPNet"]
