"""JPEG encoding of the images the project writes (record crops, served frames).

One function so every writer shares the colour order and quality handling: OpenCV encodes BGR,
the records and models are RGB. Decoding lives with its readers (`parse_example` for records,
`readers.images.decode_bgr` for the raw datasets).
"""

from __future__ import annotations

import cv2
import numpy as np

# Quality of the Beam jobs' record crops (changing it changes every record's bytes, and so the
# byte-identical reruns the jobs promise across versions).
DEFAULT_QUALITY = 95


def encode_jpeg(image: np.ndarray, quality: int = DEFAULT_QUALITY, order: str = "rgb") -> bytes:
    """(H, W, 3) uint8 -> JPEG bytes.

    Args:
        image: (H, W, 3) uint8, channels in `order`.
        quality: libjpeg quality, 1..100.
        order: "rgb" (records, models) or "bgr" (frames straight from OpenCV).

    Raises:
        ValueError: a malformed image, a bad quality or order, or a failed encoding.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8. Received: {image.shape} {image.dtype}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100. Received: {quality}")
    if order not in ("rgb", "bgr"):
        raise ValueError(f"order must be 'rgb' or 'bgr'. Received: {order!r}")
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if order == "rgb" else image
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return buf.tobytes()
