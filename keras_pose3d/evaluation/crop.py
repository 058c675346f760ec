"""Network-input pixels back to original-image pixels (the MPII protocol compares there).

A record stores a square crop whose edges are `box` = (x0, y0, x1, y1) in original 0-based
pixels (`pipelines.common.crop_person`: side B = x1 - x0 = PERSON_MARGIN x person box). The
validation input (`keras_pose3d.data.augment.crop_affine` at scale 1, no rotation, no flip) is
the central 1 / PERSON_MARGIN of that crop resized to S x S, and both are the square-crop map
of `data.crop_geometry`. Composed, whatever the stored crop's size, the input is the square crop
of the original image with the box's centre c and side B / PERSON_MARGIN:

    q = k (x - c) + (S - 1) / 2,   k = S * PERSON_MARGIN / B,

so x = (q - (S - 1) / 2) / k + c (`crop_geometry.crop_to_source`). Pixel centres are at
integers on both sides (0-based).
"""

from __future__ import annotations

import numpy as np

from keras_pose3d.data import crop_geometry


def _margin(margin: float | None) -> float:
    if margin is not None:
        return float(margin)
    # Imported here: data.features loads TensorFlow, which scoring a stored file never needs.
    from keras_pose3d.data.features import PERSON_MARGIN

    return PERSON_MARGIN


def input_to_original(
    points_px: np.ndarray, box: np.ndarray, input_size: int, margin: float | None = None
) -> np.ndarray:
    """Input pixels -> original 0-based pixels.

    Args:
        points_px: (N, J, 2) network-input pixels (0-based).
        box: (N, 4) stored-crop edges x0, y0, x1, y1 in original pixels (the record's `box`).
        input_size: S.
        margin: stored crop side / person box side (None: `features.PERSON_MARGIN`).

    Returns:
        (N, J, 2) original-image pixels, 0-based (add 1 for MPII's MATLAB convention).
    """
    box = np.asarray(box, dtype=np.float64)
    width = box[:, 2] - box[:, 0]  # (N,) the stored crop's side
    if np.any(width <= 0):
        raise ValueError(f"crop box must have x1 > x0. Received: {box.reshape(-1, 4)[:3]}")
    centre, _ = crop_geometry.box_centre_side(box)  # (N, 2)
    side = width / _margin(margin)  # (N,) the network input's box
    return crop_geometry.crop_to_source(points_px, centre[:, None], side[:, None], input_size)
