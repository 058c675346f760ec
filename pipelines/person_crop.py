"""The person crop every Beam job stores: the image warp around a person, joints and
intrinsics through the same map (the geometry is `keras_pose3d.data.crop_geometry`'s)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from keras_pose3d.data import crop_geometry, features


def crop_person(
    image: np.ndarray,
    center_xy: Sequence[float],
    person_side_px: float,
    out_size: int,
    joints_2d: np.ndarray,
    intrinsics: np.ndarray | None = None,
    antialias: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Square crop of side `PERSON_MARGIN * person_side_px` around a person, resized.

    Outside the image the crop is zero (black). The geometry is exact: joints and intrinsics
    go through the same affine map as the pixels (`crop_geometry.crop_affine`), so a 3D joint
    projected with `intrinsics_crop` lands on its `joints_2d_crop`.

    Args:
        image: (H, W, 3) uint8.
        center_xy: (2,) person centre in image pixels.
        person_side_px: person box side (px), e.g. max(height, width) of the joint box.
        out_size: crop side S in px.
        joints_2d: (J, 2) image pixels.
        intrinsics: (4,) fx, fy, cx, cy of the image, or None when unknown.
        antialias: area-downsample by a power of two first when the scale is below 1/2, so
            large people are not aliased by bilinear sampling.

    Returns:
        crop (S, S, 3) uint8; joints_2d_crop (J, 2) float64; intrinsics_crop (4,) float64 or
        None; box (4,) float64 x0, y0, x1, y1 in image pixels (box edges, may leave the image).

    Raises:
        ValueError: on a non-positive size or a malformed image.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8. Received: {image.shape} {image.dtype}")
    if not (person_side_px > 0 and np.isfinite(person_side_px)):
        raise ValueError(f"person_side_px must be > 0. Received: {person_side_px}")
    if out_size < 1:
        raise ValueError(f"out_size must be >= 1. Received: {out_size}")
    side = features.PERSON_MARGIN * float(person_side_px)
    centre = (float(center_xy[0]), float(center_xy[1]))
    matrix = crop_geometry.crop_affine(centre, side, out_size)[:2]  # (2, 3)
    s = out_size / side

    src = image
    warp = matrix
    factor = 1
    if antialias:
        while s * factor * 2 <= 1.0 and min(image.shape[:2]) // (factor * 2) >= 1:
            factor *= 2
    if factor > 1:
        # Area-average f x f blocks: small pixel i covers original [f i - 0.5, f (i + 1) - 0.5],
        # so x = f x_small + (f - 1) / 2. Compose that into the warp (the last < f rows and
        # columns are dropped; they read as zero padding, a sub-pixel effect at this scale).
        h, w = image.shape[0] // factor, image.shape[1] // factor
        src = cv2.resize(image[: h * factor, : w * factor], (w, h), interpolation=cv2.INTER_AREA)
        small_to_orig = np.array(
            [[factor, 0.0, (factor - 1) / 2.0], [0.0, factor, (factor - 1) / 2.0], [0, 0, 1]]
        )
        warp = matrix @ small_to_orig
    crop = cv2.warpAffine(
        src,
        warp,
        (out_size, out_size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    joints_crop = crop_geometry.transform_points(joints_2d, matrix)
    intrinsics_crop = None
    if intrinsics is not None:
        intrinsics_crop = crop_geometry.transform_intrinsics(intrinsics, matrix)
    return crop, joints_crop, intrinsics_crop, crop_geometry.square_box(centre, side)
