"""Strict decoding of the raw JPEG / PNG images of the datasets.

OpenCV (libjpeg) decodes a damaged JPEG with a warning on stderr and returns an image all the
same: the missing rows of a truncated file come back grey, a stretch of zeroed or overwritten
scan data comes back as smeared blocks ("Corrupt JPEG data: 899 extraneous bytes before marker
0xd9"). Here neither becomes an image:

1. the container must be complete before pixels are decoded: a JPEG has to start with the SOI
   marker and end with the EOI marker (0xFFD9; trailing zero padding allowed), a PNG has to
   end with its IEND chunk;
2. the decoder must not complain: libjpeg reports corrupt scan data only as a warning, which it
   prints to stderr, and neither OpenCV, Pillow nor `tf.io.decode_jpeg` turns it into an
   error or exposes the warning count (all three were tried). So `decode_bgr` catches what the
   decoder writes to file descriptor 2 while it runs (`_decoder_messages`), and a libjpeg
   corrupt-data warning (`CORRUPT_MESSAGES`) fails the image with the warning as the reason.

Anything else raises ValueError with the reason. The capture swaps the process's stderr for
the length of one decode, under a lock, so decodes in threads of one process run one at a
time; text other threads print meanwhile is passed on to stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

import cv2
import numpy as np

_JPEG_SOI = b"\xff\xd8\xff"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The last 12 bytes of every complete PNG: IEND chunk (length 0, type, fixed CRC).
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# libjpeg(-turbo)'s warnings about damaged data (jerror.h JWRN_*), and libpng's errors: an image
# that gives one of them is refused. Other decoder chatter ("Warning: unknown JFIF revision")
# is passed on to stderr.
CORRUPT_MESSAGES = (
    "Corrupt JPEG data",
    "Premature end of JPEG file",
    "Invalid SOS parameters",
    "Inconsistent progression sequence",
    "Application transferred too few scanlines",
    "libpng error",
)

_capture_lock = threading.Lock()


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


@contextlib.contextmanager
def _decoder_messages() -> Iterator[list[str]]:
    """Collects the lines written to file descriptor 2 inside the block (libjpeg / libpng print
    their warnings there, with C's stderr); the list is filled when the block ends."""
    lines: list[str] = []
    with _capture_lock:
        for stream in (sys.stderr, sys.__stderr__):
            with contextlib.suppress(Exception):
                stream.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all (a daemon): nothing to read the warnings from
            yield lines
            return
        try:
            with tempfile.TemporaryFile() as capture:
                os.dup2(capture.fileno(), 2)
                try:
                    yield lines
                finally:
                    os.dup2(saved, 2)
                    capture.seek(0)
                    text = capture.read().decode("utf-8", errors="replace")
                    lines.extend(line for line in text.splitlines() if line.strip())
        finally:
            os.close(saved)
    others = [line for line in lines if not line.startswith(CORRUPT_MESSAGES)]
    if others:  # not the decoder's complaint: another thread's output, or decoder chatter
        os.write(2, ("\n".join(others) + "\n").encode("utf-8", errors="replace"))


def decode_bgr(data: bytes) -> np.ndarray:
    """Encoded JPEG / PNG -> (H, W, 3) uint8 BGR, as `cv2.imread(path, IMREAD_COLOR)`.

    Raises:
        ValueError: an incomplete container (`check_complete`), corrupt data the decoder warns
            about (`CORRUPT_MESSAGES`, the warning quoted) or data OpenCV cannot decode.
    """
    reason = check_complete(data)
    if reason is not None:
        raise ValueError(reason)
    with _decoder_messages() as messages:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    corrupt = [line.strip() for line in messages if line.startswith(CORRUPT_MESSAGES)]
    said = f" (decoder: {'; '.join(corrupt[:3])})" if corrupt else ""
    if image is None:
        raise ValueError(f"cannot decode image{said}")
    if corrupt:
        kind = "JPEG" if data.startswith(_JPEG_SOI) else "PNG"
        raise ValueError(f"corrupt {kind} data{said}")
    return image
