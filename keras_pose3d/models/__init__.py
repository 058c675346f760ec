"""Models: SAP-Net (single frame). TP-Net lives in tp_net.py (owned separately)."""

from keras_pose3d.models.sap_net import PARTS, SAPNet

__all__ = ["PARTS", "SAPNet"]
