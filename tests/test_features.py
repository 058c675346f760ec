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
    serialized = features.encode_example(_record())
    keys = sorted(features.FEATURE_SPEC)
    positions = [serialized.index(key.encode() + b"\x12") for key in keys]
    assert positions == sorted(positions)


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
