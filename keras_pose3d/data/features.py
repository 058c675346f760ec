"""The TFRecord schema (version 1): keys, `encode_example`, `parse_example`, `decode_record`.

One `tf.train.Example` per person per frame, shared by every Beam job (writer side, pure
Python/NumPy so it runs inside DoFns) and by `tf.data` (reader side). The table of keys lives in
docs/architecture.md; the constants below are the only place the key strings are spelled.

The writer takes a *record*: a plain dict with the fields of `PoseRecord`. All joint arrays are
MPII-16 order (`keras_pose3d.skeleton`). Floats are stored as float32, so
`decode_record(encode_example(r))` and `parse_example` return exactly `np.float32(r[...])`.

Optional keys (added to v1 without a version bump; a record that lacks them parses with the
default, so every record written before them still reads):

* `joints_3d_univ` (float, 16*3, default zeros) with `has_3d_univ` (int64, default 0):
  MPI-INF-3DHP's `univ_annot3`, the height-normalised "universal" skeleton that is the 3DHP
  evaluation ground truth, camera frame, mm. The writer stores both keys only when
  `has_3d_univ` is set, so a record without universal 3D looks exactly like an old one.
* `meta/distortion_model` (bytes, default ""): how to read `distortion`. "h36m" (H36M's
  tangential formula), "opencv" (the 3DHP TS5-6 GoPro calibration), "none" (no lens
  distortion: the coefficients are zero), or "" (not stated). "" is the default because
  records written before the key existed are not all one model (H36M records hold "h36m"
  coefficients, 3DHP TS5-6 records "opencv" ones, the rest zeros); `resolve_distortion_model`
  settles an old record from its dataset. The writer accepts "" only with zero coefficients.
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
# Optional keys (see the module docstring); absent -> the defaults of FEATURE_SPEC.
KEY_JOINTS_3D_UNIV = "joints_3d_univ"
KEY_HAS_3D_UNIV = "has_3d_univ"
KEY_DISTORTION_MODEL = "meta/distortion_model"

# Values of `meta/distortion_model`. "h36m" and "opencv" are the two formulas of
# `keras_pose3d.camera`; "none" says there is no distortion; "" says nothing (old records).
DISTORTION_MODEL_H36M = "h36m"
DISTORTION_MODEL_OPENCV = "opencv"
DISTORTION_MODEL_NONE = "none"
DISTORTION_MODEL_UNSTATED = ""
DISTORTION_MODELS: tuple[str, ...] = (
    DISTORTION_MODEL_H36M,
    DISTORTION_MODEL_OPENCV,
    DISTORTION_MODEL_NONE,
    DISTORTION_MODEL_UNSTATED,
)
# Model of the non-zero coefficients of records written before `meta/distortion_model`
# existed, by `meta/dataset` (3DHP training cameras have none; its TS5-6 are OpenCV).
LEGACY_DISTORTION_MODELS: dict[str, str] = {
    "h36m": DISTORTION_MODEL_H36M,
    "mpi_inf_3dhp": DISTORTION_MODEL_OPENCV,
}

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

# Optional float fields: record field -> (feature key, shape); zeros when absent.
OPTIONAL_FLOAT_FIELDS: dict[str, tuple[str, tuple[int, ...]]] = {
    "joints_3d_univ": (KEY_JOINTS_3D_UNIV, (NUM_JOINTS, 3)),
}

# tf.io parsing spec. The v1 core keys are required: a record written by another schema fails
# loudly. The optional keys carry defaults, so records written before them still parse.
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
    KEY_JOINTS_3D_UNIV: tf.io.FixedLenFeature(
        [NUM_JOINTS * 3], tf.float32, default_value=[0.0] * (NUM_JOINTS * 3)
    ),
    KEY_HAS_3D_UNIV: tf.io.FixedLenFeature([], tf.int64, default_value=0),
    KEY_DISTORTION_MODEL: tf.io.FixedLenFeature([], tf.string, default_value=""),
}
# The optional keys and their defaults as `decode_record` returns them.
OPTIONAL_KEYS: tuple[str, ...] = (KEY_JOINTS_3D_UNIV, KEY_HAS_3D_UNIV, KEY_DISTORTION_MODEL)


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
        distortion_model: str, optional. "h36m", "opencv", "none" or "" (default: not
            stated). Non-zero `distortion` needs "h36m" or "opencv".
        joints_3d_univ: (J, 3) float, optional. 3DHP `univ_annot3`, camera frame, mm. None or
            zeros when has_3d_univ is False.
        has_3d_univ: bool, optional (default False). True when `joints_3d_univ` is stored;
            needs has_3d.
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
    distortion_model: str
    joints_3d_univ: np.ndarray | None
    has_3d_univ: bool
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


def _flag(record: dict, field: str, required: bool) -> bool:
    value = record.get(field)
    if value is None and not required:
        return False
    if not isinstance(value, (bool, np.bool_, int, np.integer)) or int(value) not in (0, 1):
        raise ValueError(f"record field '{field}' must be a bool; got {value!r}")
    return bool(value)


def _distortion_model(record: dict, distortion: np.ndarray) -> str:
    value = record.get("distortion_model", DISTORTION_MODEL_UNSTATED)
    if value is None:
        value = DISTORTION_MODEL_UNSTATED
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str) or value not in DISTORTION_MODELS:
        raise ValueError(
            f"record field 'distortion_model' must be one of {list(DISTORTION_MODELS)}; "
            f"got {value!r}"
        )
    # Coefficients without their formula are ambiguous (H36M's and OpenCV's tangential terms
    # differ), so a writer that stores non-zero ones must say which.
    if value in (DISTORTION_MODEL_NONE, DISTORTION_MODEL_UNSTATED) and np.any(distortion != 0):
        raise ValueError(
            f"record field 'distortion_model' is {value!r} but 'distortion' is non-zero "
            f"({distortion.tolist()}); give 'h36m' or 'opencv'"
        )
    return value


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
            False; `intrinsics` and `distortion` may be None (stored as zeros). Optional:
            `distortion_model` (default ""), `has_3d_univ` (default False) and
            `joints_3d_univ` (stored only when `has_3d_univ`).

    Returns:
        The serialised `tf.train.Example` (bytes).

    Raises:
        ValueError: naming the field, when a field is missing, has the wrong shape or type, or
            holds non-finite values; when visibility is outside [0, 1]; when `joints_3d` is
            non-zero for a 2D-only record; when `image_size` disagrees with the JPEG header;
            when `distortion_model` is not one of `DISTORTION_MODELS`, or is "none"/"" with
            non-zero `distortion`; when `has_3d_univ` is set without `has_3d` or
            `joints_3d_univ` is non-zero without `has_3d_univ`.
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

    has_3d = _flag(record, "has_3d", required=True)
    has_3d_univ = _flag(record, "has_3d_univ", required=False)
    if has_3d_univ and not has_3d:
        raise ValueError("record field 'has_3d_univ' is True but 'has_3d' is False")

    floats = {}
    for field, (_, shape) in FLOAT_FIELDS.items():
        allow_none = field in ("intrinsics", "distortion") or (field == "joints_3d" and not has_3d)
        floats[field] = _float_array(record, field, shape, allow_none)
    joints_3d_univ = _float_array(
        record, "joints_3d_univ", OPTIONAL_FLOAT_FIELDS["joints_3d_univ"][1], not has_3d_univ
    )
    if not has_3d_univ and np.any(joints_3d_univ != 0):
        raise ValueError(
            "record field 'joints_3d_univ' must be None or zeros when has_3d_univ is False"
        )
    distortion_model = _distortion_model(record, floats["distortion"])
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
    feature[KEY_DISTORTION_MODEL] = _bytes_feature(distortion_model.encode("utf-8"))
    if has_3d_univ:
        # Absent when False (the parse defaults say the same), so evaluation code that asks
        # "does this record carry universal 3D?" by key presence gets the right answer.
        feature[KEY_JOINTS_3D_UNIV] = _float_feature(joints_3d_univ)
        feature[KEY_HAS_3D_UNIV] = _int_feature([1])
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
    strings as str, `has_3d`/`has_3d_univ` as bool, `frame`/`schema_version` as int. Optional
    keys the record lacks come back as their defaults (`joints_3d_univ` zeros, `has_3d_univ`
    False, `distortion_model` "").

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
    # Optional keys: the FEATURE_SPEC defaults when absent (records written before them).
    for field, (key, shape) in OPTIONAL_FLOAT_FIELDS.items():
        if key in feats:
            values = np.asarray(feats[key].float_list.value, np.float32)
            if values.size != math.prod(shape):
                raise ValueError(f"feature '{key}' has {values.size} values; expected {shape}")
            out[field] = values.reshape(shape)
        else:
            out[field] = np.zeros(shape, np.float32)
    out["has_3d_univ"] = (
        bool(get(KEY_HAS_3D_UNIV, "int64_list")[0]) if KEY_HAS_3D_UNIV in feats else False
    )
    if out["has_3d_univ"] and KEY_JOINTS_3D_UNIV not in feats:
        raise ValueError(f"record has {KEY_HAS_3D_UNIV} = 1 but no feature '{KEY_JOINTS_3D_UNIV}'")
    out["distortion_model"] = (
        get(KEY_DISTORTION_MODEL, "bytes_list")[0].decode("utf-8")
        if KEY_DISTORTION_MODEL in feats
        else DISTORTION_MODEL_UNSTATED
    )
    return out


def resolve_distortion_model(distortion_model: str, distortion: np.ndarray, dataset: str) -> str:
    """The formula of a record's `distortion`: "h36m", "opencv" or "none" (never "").

    Records written before `meta/distortion_model` existed read as "" (not stated); their
    model follows from `meta/dataset` (`LEGACY_DISTORTION_MODELS`). Zero coefficients are
    "none" whatever was stated (every formula is then the pinhole).

    Args:
        distortion_model: the record's `distortion_model` (str or bytes).
        distortion: (5,) k1, k2, k3, p1, p2.
        dataset: the record's `dataset` (str or bytes).

    Returns:
        "none", or the model to pass to `keras_pose3d.camera.project_points`.

    Raises:
        ValueError: an unknown model, or non-zero coefficients of an unstated model from a
            dataset without a known legacy model.
    """
    model = distortion_model.decode() if isinstance(distortion_model, bytes) else distortion_model
    name = dataset.decode() if isinstance(dataset, bytes) else dataset
    if model not in DISTORTION_MODELS:
        raise ValueError(
            f"distortion_model must be one of {list(DISTORTION_MODELS)}; got {model!r}"
        )
    coefficients = np.asarray(distortion, np.float64).reshape(-1)
    if not np.any(coefficients != 0):
        return DISTORTION_MODEL_NONE
    if model == DISTORTION_MODEL_NONE:
        raise ValueError(f"distortion_model is 'none' but distortion is {coefficients.tolist()}")
    if model != DISTORTION_MODEL_UNSTATED:
        return model
    if name not in LEGACY_DISTORTION_MODELS:
        raise ValueError(
            f"record of dataset {name!r} has distortion {coefficients.tolist()} but no "
            f"distortion_model, and {name!r} has no known model "
            f"(known: {sorted(LEGACY_DISTORTION_MODELS)})"
        )
    return LEGACY_DISTORTION_MODELS[name]


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
        `schema_version` () int64; and the optional keys (their defaults when the record
        lacks them): `joints_3d_univ` (J, 3) float32 (zeros), `has_3d_univ` () int64 (0),
        `distortion_model` () string ("").
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
    for field, (key, shape) in OPTIONAL_FLOAT_FIELDS.items():
        out[field] = tf.reshape(parsed[key], shape)
    out["has_3d_univ"] = parsed[KEY_HAS_3D_UNIV]
    out["distortion_model"] = parsed[KEY_DISTORTION_MODEL]
    return out
