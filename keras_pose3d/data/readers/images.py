"""Strict decoding of the raw JPEG / PNG images of the datasets.

OpenCV (libjpeg) decodes a truncated JPEG with a warning and fills the missing rows with grey,
so `cv2.imread` alone would turn a half-copied file into a plausible-looking training image.
Here the container must be complete before pixels are decoded: a JPEG has to start with the
SOI marker and end with the EOI marker (0xFFD9; trailing zero padding allowed), a PNG has to
end with its IEND chunk. Anything else raises ValueError with the reason.
"""

from __future__ import annotations

import cv2
import numpy as np

_JPEG_SOI = b"\xff\xd8\xff"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The last 12 bytes of every complete PNG: IEND chunk (length 0, type, fixed CRC).
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def check_complete(data: bytes) -> str | None:
    """Why the encoded image is not a complete JPEG / PNG, or None when it is."""
    if not data:
        return "empty file"
    if data.startswith(_JPEG_SOI):
        # Some writers pad files with zeros after EOI; anything else after it is not ours.
        if not data.rstrip(b"\x00").endswith(_JPEG_EOI):
            return "truncated JPEG (no end-of-image marker 0xFFD9 at the end)"
        return None
    if data.startswith(_PNG_SIGNATURE):
        if not data.rstrip(b"\x00").endswith(_PNG_IEND):
            return "truncated PNG (no IEND chunk at the end)"
        return None
    return f"not a JPEG or PNG (starts with {data[:4].hex()})"


def decode_bgr(data: bytes) -> np.ndarray:
    """Encoded JPEG / PNG -> (H, W, 3) uint8 BGR, as `cv2.imread(path, IMREAD_COLOR)`.

    Raises:
        ValueError: an incomplete container (`check_complete`) or data OpenCV cannot decode.
    """
    reason = check_complete(data)
    if reason is not None:
        raise ValueError(reason)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("cannot decode image")
    return image
