"""Round trips and validation of the TFRecord schema (keras_pose3d/data/features.py)."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d.data import features


def _record(seed: int = 0, has_3d: bool = True, h: int = 24, w: int = 32) -> dict:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    ok, jpeg = cv2.imencode(".jpg", image)
    assert ok
    return {
        "image_jpeg": jpeg.tobytes(),
        # Values that are not exactly float32 representable: the round trip must return
        # exactly their float32 rounding.
        "joints_2d": rng.uniform(-5, 40, size=(16, 2)),
        "visibility": (rng.uniform(size=16) > 0.3).astype(np.float64),
        "joints_3d": rng.normal(0, 500, size=(16, 3)) + [0, 0, 4000] if has_3d else None,
        "has_3d": has_3d,
        "intrinsics": np.array([1145.04, 1143.78, 512.54, 515.45]) / 7.0,
        "distortion": rng.normal(0, 0.1, size=5),
        "distortion_model": "h36m",
        "box": np.array([-10.5, 3.25, 301.7, 315.95]),
        "dataset": "h36m",
        "subject": "S9",
        "sequence": "Walking 1.54138969",
        "action": "Walking",
        "camera": "54138969",
        "frame": 1234,
        "orig_size": (1002, 1000),
    }


def _check_equal(decoded: dict, record: dict) -> None:
    for field in features.FLOAT_FIELDS:
        expected = record[field]
        if expected is None:
            expected = np.zeros(features.FLOAT_FIELDS[field][1])
        expected32 = np.asarray(expected, np.float32)
        got = np.asarray(decoded[field])
        assert got.dtype == np.float32, field
        np.testing.assert_array_equal(got, expected32, err_msg=field)
    for field in features.META_STRING_FIELDS:
        value = decoded[field]
        if isinstance(value, bytes):
            value = value.decode()
        assert value == record[field], field
    assert int(decoded["frame"]) == record["frame"]
    assert bool(decoded["has_3d"]) == record["has_3d"]
    has_univ = bool(record.get("has_3d_univ", False))
    assert bool(decoded["has_3d_univ"]) == has_univ
    univ = record.get("joints_3d_univ") if has_univ else None
    np.testing.assert_array_equal(
        decoded["joints_3d_univ"], np.zeros((16, 3)) if univ is None else np.float32(univ)
    )
    model = decoded["distortion_model"]
    assert (model.decode() if isinstance(model, bytes) else model) == record.get(
        "distortion_model", ""
    )
    np.testing.assert_array_equal(decoded["orig_size"], record["orig_size"])
    assert int(decoded["schema_version"]) == features.SCHEMA_VERSION


def test_decode_record_round_trip_exact_float32():
    record = _record()
    decoded = features.decode_record(features.encode_example(record))
    _check_equal(decoded, record)
    assert decoded["image_jpeg"] == record["image_jpeg"]
    np.testing.assert_array_equal(decoded["image_size"], [24, 32])
    # Re-encoding the decoded record gives the same bytes.
    assert features.encode_example(decoded) == features.encode_example(record)


def test_encoding_is_canonical_sorted_by_key():
    # Map fields serialise in hash-seed order unless asked not to; reruns in other processes
    # must give identical bytes, so keys must appear in sorted order.
    record = _record()
    record["has_3d_univ"] = True
    record["joints_3d_univ"] = record["joints_3d"] * 0.9
    serialized = features.encode_example(record)
    keys = sorted(features.FEATURE_SPEC)  # every key, the optional ones included
    # Position of each map entry: its key bytes are followed by the value's field tag (0x12).
    position = {key: serialized.index(key.encode() + b"\x12") for key in keys}
    # Sorted by key, except that protobuf (upb) puts a key after the longer keys it prefixes
    # ("has_3d_univ" before "has_3d"); either way the order is fixed, not the hash seed's.
    for a in keys:
        for b in keys:
            if a < b and not b.startswith(a):
                assert position[a] < position[b], (a, b)
    # Inserting the features in another order changes nothing.
    example = tf.train.Example.FromString(serialized)
    items = list(example.features.feature.items())
    rebuilt = tf.train.Example()
    for key, value in reversed(items):
        rebuilt.features.feature[key].CopyFrom(value)
    assert rebuilt.SerializeToString(deterministic=True) == serialized


@pytest.mark.parametrize("has_3d", [True, False])
def test_parse_example_matches_record(has_3d):
    record = _record(seed=3, has_3d=has_3d)
    serialized = features.encode_example(record)
    parsed = features.parse_example(tf.constant(serialized))
    parsed_np = {k: v.numpy() for k, v in parsed.items()}
    _check_equal(parsed_np, record)
    assert parsed_np["joints_2d"].shape == (16, 2)
    assert parsed_np["joints_3d"].shape == (16, 3)
    expected_image = cv2.cvtColor(
        cv2.imdecode(np.frombuffer(record["image_jpeg"], np.uint8), cv2.IMREAD_COLOR),
        cv2.COLOR_BGR2RGB,
    )
    # TF and OpenCV decoders differ slightly in chroma upsampling; a channel swap or a wrong
    # reshape would give errors of tens of grey levels on this noise image.
    assert parsed_np["image"].shape == (24, 32, 3)
    assert np.abs(parsed_np["image"].astype(int) - expected_image.astype(int)).mean() < 2.0
    if not has_3d:
        np.testing.assert_array_equal(parsed_np["joints_3d"], np.zeros((16, 3)))


def test_parse_example_inside_tf_data_without_decoding():
    records = [_record(seed=s) for s in range(3)]
    ds = tf.data.Dataset.from_tensor_slices([features.encode_example(r) for r in records])
    ds = ds.map(lambda s: features.parse_example(s, decode_image=False))
    for record, parsed in zip(records, ds):
        assert parsed["image_jpeg"].numpy() == record["image_jpeg"]
        _check_equal({k: v.numpy() for k, v in parsed.items()}, record)


def test_jpeg_size_reads_header():
    for h, w in [(1, 1), (128, 128), (37, 301)]:
        _, jpeg = cv2.imencode(".jpg", np.zeros((h, w, 3), np.uint8))
        assert features.jpeg_size(jpeg.tobytes()) == (h, w)
    with pytest.raises(ValueError, match="not a JPEG"):
        features.jpeg_size(b"\x89PNG....")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("joints_2d", np.zeros((15, 2)), "'joints_2d' has shape"),
        ("joints_2d", np.full((16, 2), np.nan), "'joints_2d' has non-finite"),
        ("joints_3d", np.full((16, 3), np.inf), "'joints_3d' has non-finite"),
        ("visibility", np.full(16, 2.0), "'visibility' must lie in"),
        ("box", None, "'box' is missing"),
        ("frame", -1, "'frame' must be an int"),
        ("orig_size", (10.5, 3), "'orig_size' must be positive integers"),
        ("image_jpeg", b"", "'image_jpeg'"),
        ("image_size", (5, 5), "'image_size' is \\[5, 5\\]"),
        ("has_3d", 2, "'has_3d' must be a bool"),
        ("subject", 7, "'subject' must be str or bytes"),
        ("distortion_model", "fisheye", "'distortion_model' must be one of"),
        ("distortion_model", 3, "'distortion_model' must be one of"),
        ("distortion_model", "none", "'distortion_model' is 'none' but 'distortion' is non-zero"),
        ("distortion_model", "", "'distortion_model' is '' but 'distortion' is non-zero"),
        ("has_3d_univ", 2, "'has_3d_univ' must be a bool"),
        ("joints_3d_univ", np.ones((16, 3)), "'joints_3d_univ' must be None or zeros"),
    ],
)
def test_encode_rejects_bad_fields(field, value, message):
    record = _record()
    record[field] = value
    with pytest.raises(ValueError, match=message):
        features.encode_example(record)


def test_encode_rejects_3d_on_2d_only_record():
    record = _record(has_3d=True)
    record["has_3d"] = False
    with pytest.raises(ValueError, match="'joints_3d' must be None or zeros"):
        features.encode_example(record)


def test_decode_rejects_other_schema_version():
    example = tf.train.Example.FromString(features.encode_example(_record()))
    example.features.feature[features.KEY_SCHEMA_VERSION].int64_list.value[0] = 2
    with pytest.raises(ValueError, match="schema_version"):
        features.decode_record(example.SerializeToString())
    with pytest.raises(tf.errors.InvalidArgumentError, match="schema_version"):
        features.parse_example(tf.constant(example.SerializeToString()))


# ----------------------------------------------------------------------------------------------
# Optional keys: joints_3d_univ / has_3d_univ, meta/distortion_model.
# ----------------------------------------------------------------------------------------------
def _univ_record(seed: int = 5) -> dict:
    record = _record(seed=seed)
    # A height-normalised skeleton: scaled about the root, so unlike joints_3d everywhere.
    root = record["joints_3d"][6]
    record["joints_3d_univ"] = (record["joints_3d"] - root) * 0.93 + root
    record["has_3d_univ"] = True
    record["distortion_model"] = "opencv"
    return record


def test_univ_and_distortion_model_round_trip_decode_and_parse():
    record = _univ_record()
    serialized = features.encode_example(record)
    decoded = features.decode_record(serialized)
    _check_equal(decoded, record)
    np.testing.assert_array_equal(decoded["joints_3d_univ"], np.float32(record["joints_3d_univ"]))
    assert decoded["has_3d_univ"] is True and decoded["distortion_model"] == "opencv"
    assert features.encode_example(decoded) == serialized
    parsed = {k: v.numpy() for k, v in features.parse_example(tf.constant(serialized)).items()}
    _check_equal(parsed, record)
    assert parsed["has_3d_univ"] == 1 and parsed["distortion_model"] == b"opencv"
    assert parsed["joints_3d_univ"].dtype == np.float32


@pytest.mark.parametrize("model", ["h36m", "opencv", "none", ""])
def test_every_allowed_distortion_model_round_trips(model):
    record = _record(seed=1)
    record["distortion_model"] = model
    if model in ("none", ""):
        record["distortion"] = None  # these two say there are no coefficients
    decoded = features.decode_record(features.encode_example(record))
    assert decoded["distortion_model"] == model
    parsed = features.parse_example(tf.constant(features.encode_example(record)))
    assert parsed["distortion_model"].numpy() == model.encode()


def test_record_without_univ_stores_neither_key():
    # has_3d_univ False: both keys are left out (the defaults say the same), so consumers that
    # test key presence see no universal ground truth.
    record = _record(seed=2)
    record["joints_3d_univ"] = np.zeros((16, 3))
    example = tf.train.Example.FromString(features.encode_example(record))
    keys = set(example.features.feature)
    assert features.KEY_JOINTS_3D_UNIV not in keys and features.KEY_HAS_3D_UNIV not in keys
    assert example.features.feature[features.KEY_DISTORTION_MODEL].bytes_list.value == [b"h36m"]


def test_univ_needs_3d_and_values():
    record = _univ_record()
    record["has_3d"] = False
    record["joints_3d"] = None
    with pytest.raises(ValueError, match="'has_3d_univ' is True but 'has_3d' is False"):
        features.encode_example(record)
    record = _univ_record()
    record["joints_3d_univ"] = None
    with pytest.raises(ValueError, match="'joints_3d_univ' is missing"):
        features.encode_example(record)
    record = _univ_record()
    record["joints_3d_univ"][3, 1] = np.nan
    with pytest.raises(ValueError, match="'joints_3d_univ' has non-finite"):
        features.encode_example(record)


def _legacy_example(record: dict) -> bytes:
    """The record as a writer from before the optional keys would have stored it."""
    example = tf.train.Example.FromString(features.encode_example(record))
    for key in features.OPTIONAL_KEYS:
        if key in example.features.feature:
            del example.features.feature[key]
    assert set(example.features.feature).isdisjoint(features.OPTIONAL_KEYS)
    return example.SerializeToString(deterministic=True)


def test_record_without_optional_keys_parses_with_defaults():
    record = _univ_record()
    legacy = _legacy_example(record)
    want = dict(record, has_3d_univ=False, joints_3d_univ=None, distortion_model="")
    decoded = features.decode_record(legacy)
    _check_equal(decoded, want)
    assert decoded["has_3d_univ"] is False and decoded["distortion_model"] == ""
    ds = tf.data.Dataset.from_tensors(legacy).map(features.parse_example)
    parsed = {k: v.numpy() for k, v in next(iter(ds)).items()}
    _check_equal(parsed, want)
    np.testing.assert_array_equal(parsed["joints_3d_univ"], np.zeros((16, 3), np.float32))
    assert parsed["has_3d_univ"] == 0 and parsed["distortion_model"] == b""
    # The core keys are still required.
    example = tf.train.Example.FromString(legacy)
    del example.features.feature[features.KEY_BOX]
    with pytest.raises(ValueError, match="no feature 'box'"):
        features.decode_record(example.SerializeToString())


def test_decode_rejects_univ_flag_without_joints():
    example = tf.train.Example.FromString(features.encode_example(_univ_record()))
    del example.features.feature[features.KEY_JOINTS_3D_UNIV]
    with pytest.raises(ValueError, match="has_3d_univ = 1 but no feature 'joints_3d_univ'"):
        features.decode_record(example.SerializeToString())


def test_resolve_distortion_model():
    coeffs = np.array([-0.27686, 0.13113, -0.04932, -0.00036, -0.00115])
    resolve = features.resolve_distortion_model
    assert resolve("opencv", coeffs, "mpi_inf_3dhp") == "opencv"
    assert resolve(b"h36m", coeffs, b"h36m") == "h36m"
    # Zero coefficients are the pinhole under every formula.
    assert resolve("h36m", np.zeros(5), "h36m") == "none"
    assert resolve("", np.zeros(5), "synthetic") == "none"
    # Old records (no key): the dataset says which formula made the coefficients.
    assert resolve("", coeffs, "h36m") == "h36m"
    assert resolve("", coeffs, "mpi_inf_3dhp") == "opencv"
    with pytest.raises(ValueError, match="dataset 'mystery' has distortion"):
        resolve("", coeffs, "mystery")
    with pytest.raises(ValueError, match="'none' but distortion is"):
        resolve("none", coeffs, "h36m")
    with pytest.raises(ValueError, match="must be one of"):
        resolve("kannala", coeffs, "h36m")
    # A legacy record read back resolves by its dataset.
    record = _record(seed=4)
    decoded = features.decode_record(_legacy_example(record))
    assert resolve(decoded["distortion_model"], decoded["distortion"], decoded["dataset"]) == "h36m"
