"""The TFRecord schema (version 1): keys, `encode_example`, `parse_example`, `decode_record`.

One `tf.train.Example` per person per frame, shared by every Beam job (writer side, pure
Python/NumPy so it runs inside DoFns) and by `tf.data` (reader side). The table of keys lives in
docs/architecture.md; the constants below are the only place the key strings are spelled.

The writer takes a *record*: a plain dict with the fields of `PoseRecord`. All joint arrays are
MPII-16 order (`keras_pose3d.skeleton`). Floats are stored as float32, so
`decode_record(encode_example(r))` and `parse_example` return exactly `np.float32(r[...])`.
"""

from __future__ import annotations

import math
from typing import Any, TypedDict

import numpy as np
import tensorflow as tf

from keras_pose3d.skeleton import NUM_JOINTS

SCHEMA_VERSION = 1
# The stored crop is PERSON_MARGIN times the person box, so the paper's scale (+-25 %) and
# rotation (+-30 deg) augmentation never reaches outside the stored pixels.
PERSON_MARGIN = 1.75

# ----------------------------------------------------------------------------------------------
# Keys (the only place they are spelled).
# ----------------------------------------------------------------------------------------------
KEY_IMAGE = "image/encoded"
KEY_IMAGE_SIZE = "image/size"
KEY_JOINTS_2D = "joints_2d"
KEY_VISIBILITY = "visibility"
KEY_JOINTS_3D = "joints_3d"
KEY_HAS_3D = "has_3d"
KEY_INTRINSICS = "intrinsics"
KEY_DISTORTION = "distortion"
KEY_BOX = "box"
KEY_DATASET = "meta/dataset"
KEY_SUBJECT = "meta/subject"
KEY_SEQUENCE = "meta/sequence"
KEY_ACTION = "meta/action"
KEY_CAMERA = "meta/camera"
KEY_FRAME = "meta/frame"
KEY_ORIG_SIZE = "meta/orig_size"
KEY_SCHEMA_VERSION = "schema_version"

# Record field -> feature key for the provenance strings.
META_STRING_FIELDS: dict[str, str] = {
    "dataset": KEY_DATASET,
    "subject": KEY_SUBJECT,
    "sequence": KEY_SEQUENCE,
    "action": KEY_ACTION,
    "camera": KEY_CAMERA,
}

# Float fields: record field -> (feature key, shape).
FLOAT_FIELDS: dict[str, tuple[str, tuple[int, ...]]] = {
    "joints_2d": (KEY_JOINTS_2D, (NUM_JOINTS, 2)),
    "visibility": (KEY_VISIBILITY, (NUM_JOINTS,)),
    "joints_3d": (KEY_JOINTS_3D, (NUM_JOINTS, 3)),
    "intrinsics": (KEY_INTRINSICS, (4,)),
    "distortion": (KEY_DISTORTION, (5,)),
    "box": (KEY_BOX, (4,)),
}

# tf.io parsing spec. Every key is required: a record written by another schema fails loudly.
FEATURE_SPEC: dict[str, Any] = {
    KEY_IMAGE: tf.io.FixedLenFeature([], tf.string),
    KEY_IMAGE_SIZE: tf.io.FixedLenFeature([2], tf.int64),
    KEY_JOINTS_2D: tf.io.FixedLenFeature([NUM_JOINTS * 2], tf.float32),
    KEY_VISIBILITY: tf.io.FixedLenFeature([NUM_JOINTS], tf.float32),
    KEY_JOINTS_3D: tf.io.FixedLenFeature([NUM_JOINTS * 3], tf.float32),
    KEY_HAS_3D: tf.io.FixedLenFeature([], tf.int64),
    KEY_INTRINSICS: tf.io.FixedLenFeature([4], tf.float32),
    KEY_DISTORTION: tf.io.FixedLenFeature([5], tf.float32),
    KEY_BOX: tf.io.FixedLenFeature([4], tf.float32),
    KEY_DATASET: tf.io.FixedLenFeature([], tf.string),
    KEY_SUBJECT: tf.io.FixedLenFeature([], tf.string),
    KEY_SEQUENCE: tf.io.FixedLenFeature([], tf.string),
    KEY_ACTION: tf.io.FixedLenFeature([], tf.string),
    KEY_CAMERA: tf.io.FixedLenFeature([], tf.string),
    KEY_FRAME: tf.io.FixedLenFeature([], tf.int64),
    KEY_ORIG_SIZE: tf.io.FixedLenFeature([2], tf.int64),
    KEY_SCHEMA_VERSION: tf.io.FixedLenFeature([], tf.int64),
}


class PoseRecord(TypedDict, total=False):
    """One person in one frame, as the Beam jobs build it and `decode_record` returns it.

    Fields (J = 16, MPII-16 order):
        image_jpeg: bytes. JPEG of the square person crop.
        image_size: (2,) int. Crop (height, width); optional for `encode_example`, which reads
            it from the JPEG header (and checks it when given).
        joints_2d: (J, 2) float. x, y in crop pixels (0-based, pixel centres at integers).
            Must be finite everywhere: give unannotated joints 0 and visibility 0.
        visibility: (J,) float in [0, 1]. 1 annotated and inside the crop, 0 missing.
        joints_3d: (J, 3) float. Camera-frame mm. None or zeros when has_3d is False.
        has_3d: bool. True for 3D-annotated samples.
        intrinsics: (4,) float. fx, fy, cx, cy of the crop (px); None/zeros when unknown.
        distortion: (5,) float. k1, k2, k3, p1, p2 (normalised coords); None means zeros.
        box: (4,) float. x0, y0, x1, y1 of the crop in original-image pixels.
        dataset, subject, sequence, action, camera: str. Provenance ("" when not applicable).
        frame: int >= 0. Frame index in the original sequence.
        orig_size: (2,) int. Original image (height, width).
        schema_version: int. Only in `decode_record` output.
    """

    image_jpeg: bytes
    image_size: np.ndarray
    joints_2d: np.ndarray
    visibility: np.ndarray
    joints_3d: np.ndarray | None
    has_3d: bool
    intrinsics: np.ndarray | None
    distortion: np.ndarray | None
    box: np.ndarray
    dataset: str
    subject: str
    sequence: str
    action: str
    camera: str
    frame: int
    orig_size: np.ndarray
    schema_version: int


# ----------------------------------------------------------------------------------------------
# Writer (pure Python + NumPy + protobuf: safe inside Beam DoFns).
# ----------------------------------------------------------------------------------------------
def jpeg_size(data: bytes) -> tuple[int, int]:
    """(height, width) from a JPEG's start-of-frame header, without decoding the pixels.

    Raises:
        ValueError: not a JPEG, or no start-of-frame marker before the data ends.
    """
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise ValueError("image_jpeg: not a JPEG (missing SOI marker 0xFFD8)")
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise ValueError(f"image_jpeg: corrupt marker structure at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        seg_len = (data[i + 2] << 8) | data[i + 3]
        # SOF0..SOF15 carry the size, except DHT (C4), JPG (C8) and DAC (CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                break
            height = (data[i + 5] << 8) | data[i + 6]
            width = (data[i + 7] << 8) | data[i + 8]
            return height, width
        i += 2 + seg_len
    raise ValueError("image_jpeg: no start-of-frame marker found (truncated JPEG?)")


def _float_array(record: dict, field: str, shape: tuple[int, ...], allow_none: bool) -> np.ndarray:
    value = record.get(field)
    if value is None:
        if allow_none:
            return np.zeros(shape, np.float32)
        raise ValueError(f"record field '{field}' is missing; expected shape {shape}")
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"record field '{field}' has shape {arr.shape}; expected {shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"record field '{field}' has non-finite values: {arr.tolist()}")
    arr32 = arr.astype(np.float32)
    if not np.all(np.isfinite(arr32)):
        raise ValueError(f"record field '{field}' overflows float32: {arr.tolist()}")
    return arr32


def _string(record: dict, field: str) -> bytes:
    value = record.get(field, "")
    if value is None:
        value = ""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ValueError(f"record field '{field}' must be str or bytes; got {type(value).__name__}")


def _int_pair(record: dict, field: str) -> list[int]:
    value = record.get(field)
    if value is None:
        raise ValueError(f"record field '{field}' is missing; expected (height, width)")
    arr = np.asarray(value)
    if arr.shape != (2,) or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"record field '{field}' must be 2 numbers (height, width); got {value!r}")
    if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)) or np.any(arr <= 0):
        raise ValueError(f"record field '{field}' must be positive integers; got {value!r}")
    return [int(v) for v in arr]


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int_feature(values: list[int]) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def _float_feature(values: np.ndarray) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=values.reshape(-1).tolist()))


def encode_example(record: dict) -> bytes:
    """Validates a `PoseRecord` dict and serialises it as a `tf.train.Example`.

    Args:
        record: dict with the `PoseRecord` fields. `joints_3d` may be None when `has_3d` is
            False; `intrinsics` and `distortion` may be None (stored as zeros).

    Returns:
        The serialised `tf.train.Example` (bytes).

    Raises:
        ValueError: naming the field, when a field is missing, has the wrong shape or type, or
            holds non-finite values; when visibility is outside [0, 1]; when `joints_3d` is
            non-zero for a 2D-only record; when `image_size` disagrees with the JPEG header.
    """
    image = record.get("image_jpeg")
    if not isinstance(image, bytes) or not image:
        raise ValueError("record field 'image_jpeg' must be non-empty JPEG bytes")
    header_size = list(jpeg_size(image))
    if record.get("image_size") is not None:
        given = _int_pair(record, "image_size")
        if given != header_size:
            raise ValueError(
                f"record field 'image_size' is {given} but the JPEG header says {header_size}"
            )

    has_3d_value = record.get("has_3d")
    if not isinstance(has_3d_value, (bool, np.bool_, int, np.integer)) or int(has_3d_value) not in (
        0,
        1,
    ):
        raise ValueError(f"record field 'has_3d' must be a bool; got {has_3d_value!r}")
    has_3d = bool(has_3d_value)

    floats = {}
    for field, (_, shape) in FLOAT_FIELDS.items():
        allow_none = field in ("intrinsics", "distortion") or (field == "joints_3d" and not has_3d)
        floats[field] = _float_array(record, field, shape, allow_none)
    vis = floats["visibility"]
    if np.any(vis < 0) or np.any(vis > 1):
        raise ValueError(f"record field 'visibility' must lie in [0, 1]; got {vis.tolist()}")
    if not has_3d and np.any(floats["joints_3d"] != 0):
        raise ValueError("record field 'joints_3d' must be None or zeros when has_3d is False")

    frame = record.get("frame")
    if not isinstance(frame, (int, np.integer)) or isinstance(frame, bool) or frame < 0:
        raise ValueError(f"record field 'frame' must be an int >= 0; got {frame!r}")
    orig_size = _int_pair(record, "orig_size")

    feature = {
        KEY_IMAGE: _bytes_feature(image),
        KEY_IMAGE_SIZE: _int_feature(header_size),
        KEY_HAS_3D: _int_feature([int(has_3d)]),
        KEY_FRAME: _int_feature([int(frame)]),
        KEY_ORIG_SIZE: _int_feature(orig_size),
        KEY_SCHEMA_VERSION: _int_feature([SCHEMA_VERSION]),
    }
    for field, (key, _) in FLOAT_FIELDS.items():
        feature[key] = _float_feature(floats[field])
    for field, key in META_STRING_FIELDS.items():
        feature[key] = _bytes_feature(_string(record, field))
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    # deterministic=True sorts the feature map by key: without it the byte order of a map
    # depends on the process's hash seed, and reruns on other workers would not be identical.
    return example.SerializeToString(deterministic=True)


# ----------------------------------------------------------------------------------------------
# Readers.
# ----------------------------------------------------------------------------------------------
def decode_record(serialized: bytes) -> dict[str, Any]:
    """Parses one serialised Example into a `PoseRecord` of NumPy values (tools and tests).

    The inverse of `encode_example`: floats come back as float32 arrays of their record shapes,
    strings as str, `has_3d` as bool, `frame`/`schema_version` as int.

    Raises:
        ValueError: a key of the schema is absent, has the wrong length, or the record was
            written by another schema version.
    """
    example = tf.train.Example.FromString(serialized)
    feats = example.features.feature

    def get(key: str, kind: str):
        if key not in feats:
            raise ValueError(f"record has no feature '{key}' (schema v{SCHEMA_VERSION})")
        return list(getattr(feats[key], kind).value)

    version = get(KEY_SCHEMA_VERSION, "int64_list")
    if version != [SCHEMA_VERSION]:
        raise ValueError(f"record has schema_version {version}; this reader is {SCHEMA_VERSION}")
    out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    image = get(KEY_IMAGE, "bytes_list")
    if len(image) != 1:
        raise ValueError(f"feature '{KEY_IMAGE}' must hold one JPEG; got {len(image)}")
    out["image_jpeg"] = image[0]
    out["image_size"] = np.asarray(get(KEY_IMAGE_SIZE, "int64_list"), np.int64)
    for field, (key, shape) in FLOAT_FIELDS.items():
        values = np.asarray(get(key, "float_list"), np.float32)
        if values.size != math.prod(shape):
            raise ValueError(f"feature '{key}' has {values.size} values; expected {shape}")
        out[field] = values.reshape(shape)
    out["has_3d"] = bool(get(KEY_HAS_3D, "int64_list")[0])
    for field, key in META_STRING_FIELDS.items():
        out[field] = get(key, "bytes_list")[0].decode("utf-8")
    out["frame"] = int(get(KEY_FRAME, "int64_list")[0])
    out["orig_size"] = np.asarray(get(KEY_ORIG_SIZE, "int64_list"), np.int64)
    return out


def parse_example(serialized: tf.Tensor, decode_image: bool = True) -> dict[str, tf.Tensor]:
    """Parses one serialised Example inside `tf.data` (graph-safe).

    Args:
        serialized: scalar tf.string tensor.
        decode_image: when True, `image` is the decoded (H, W, 3) uint8 crop; when False the
            JPEG bytes are returned under `image_jpeg` (decode later, e.g. after filtering).

    Returns:
        dict with `image` (H, W, 3) uint8 or `image_jpeg` () string; `image_size` (2,) int64;
        `joints_2d` (J, 2), `visibility` (J,), `joints_3d` (J, 3), `intrinsics` (4,),
        `distortion` (5,), `box` (4,) float32; `has_3d` () int64; `dataset`, `subject`,
        `sequence`, `action`, `camera` () string; `frame` () int64; `orig_size` (2,) int64;
        `schema_version` () int64.
    """
    parsed = tf.io.parse_single_example(serialized, FEATURE_SPEC)
    # A record of another schema must fail, not be read with shifted meanings.
    check = tf.debugging.assert_equal(
        parsed[KEY_SCHEMA_VERSION],
        tf.constant(SCHEMA_VERSION, tf.int64),
        message=f"record schema_version differs from this reader's ({SCHEMA_VERSION})",
    )
    with tf.control_dependencies([check]):
        parsed[KEY_SCHEMA_VERSION] = tf.identity(parsed[KEY_SCHEMA_VERSION])
    out: dict[str, tf.Tensor] = {}
    if decode_image:
        image = tf.io.decode_jpeg(parsed[KEY_IMAGE], channels=3)
        size = tf.cast(parsed[KEY_IMAGE_SIZE], tf.int32)
        # Static-friendly shape: (H, W, 3) with H, W from the record.
        out["image"] = tf.reshape(image, tf.concat([size, [3]], axis=0))
    else:
        out["image_jpeg"] = parsed[KEY_IMAGE]
    out["image_size"] = parsed[KEY_IMAGE_SIZE]
    for field, (key, shape) in FLOAT_FIELDS.items():
        out[field] = tf.reshape(parsed[key], shape)
    out["has_3d"] = parsed[KEY_HAS_3D]
    for field, key in META_STRING_FIELDS.items():
        out[field] = parsed[key]
    out["frame"] = parsed[KEY_FRAME]
    out["orig_size"] = parsed[KEY_ORIG_SIZE]
    out["schema_version"] = parsed[KEY_SCHEMA_VERSION]
    return out
