"""Serving client: request bodies and protos match the exported signatures; REST round trip."""

import base64
import http.server
import json
import threading

import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d.serving import client, signatures
from tests.test_export import WINDOW, _load, exported, jpeg_bytes  # noqa: F401  (fixture)


def _inputs(sig, batch=2):
    rng = np.random.default_rng(0)
    spec = signatures.signature_table(sig, input_size=64, window=WINDOW)
    out = {}
    for name, (dtype, shape) in spec.items():
        if dtype == "string":
            out[name] = [
                jpeg_bytes(rng.integers(0, 255, (20 + 4 * i, 24, 3), np.uint8))
                for i in range(batch)
            ]
        else:
            out[name] = rng.uniform(0.1, 1.0, (batch,) + tuple(shape[1:])).astype(np.float32)
    if "boxes" in out:
        out["boxes"] = np.array([[0, 0, 0, 0], [2.0, 3.0, 18.0, 19.0]], np.float32)
    return out


def _signature_specs(loaded, sig):
    return loaded.signatures[sig].structured_input_signature[1]


@pytest.mark.slow
def test_rest_bodies_match_signature_names_and_dtypes(exported):  # noqa: F811
    loaded = _load(exported, "pipeline")
    for sig in signatures.PIPELINE_SIGNATURES:
        specs = _signature_specs(loaded, sig)
        inputs = _inputs(sig)
        body = client.rest_request_body(sig, inputs)
        assert body["signature_name"] == sig
        assert set(body["inputs"]) == set(specs), sig
        for name, spec in specs.items():
            value = body["inputs"][name]
            if spec.dtype == tf.string:
                assert [base64.b64decode(v["b64"]) for v in value] == inputs[name]
            else:
                assert spec.dtype == tf.float32
                array = np.asarray(value, np.float32)
                assert spec.shape.is_compatible_with(array.shape), (sig, name)
                np.testing.assert_array_equal(array, inputs[name])
        rows = client.rest_request_body(sig, inputs, row_format=True)["instances"]
        assert len(rows) == 2 and all(set(r) == set(specs) for r in rows)


@pytest.mark.slow
def test_tensor_protos_match_signature_dtypes(exported):  # noqa: F811
    loaded = _load(exported, "pipeline")
    for sig in ("predict_jpeg_boxes", "predict_image", "predict_jpeg_online"):
        specs = _signature_specs(loaded, sig)
        inputs = _inputs(sig)
        protos = client.tensor_protos(sig, inputs)
        assert set(protos) == set(specs)
        for name, proto in protos.items():
            assert proto.dtype == specs[name].dtype.as_datatype_enum, (sig, name)
            value = tf.make_ndarray(proto)
            if specs[name].dtype == tf.string:
                assert list(value) == inputs[name]
            else:
                np.testing.assert_array_equal(value, inputs[name])


def test_grpc_request_names_model_and_signature():
    pytest.importorskip(
        "tensorflow_serving.apis.predict_pb2",
        reason="tensorflow-serving-api not installed (pip install --no-deps)",
    )
    request = client.grpc_request(
        "pipeline", "refine", {"poses": np.zeros((1, 4, 16, 3))}, version=3
    )
    assert request.model_spec.name == "pipeline" and request.model_spec.version.value == 3
    assert request.model_spec.signature_name == "refine"
    assert tf.make_ndarray(request.inputs["poses"]).shape == (1, 4, 16, 3)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"missing \['boxes'"):
        client.rest_request_body(
            "predict_jpeg_boxes", {"images": [b"x"], "focal_length": [1.0], "root_depth_mm": [1.0]}
        )
    with pytest.raises(ValueError, match="'poses'.*4 dimensions"):
        client.check_inputs("refine", {"poses": np.zeros((4, 16, 3))})
    with pytest.raises(KeyError, match="unknown signature"):
        client.check_inputs("predict", {})


class _FakeServing(http.server.BaseHTTPRequestHandler):
    """TF-Serving's REST predict API in front of a loaded SavedModel (columnar and row formats)."""

    loaded = None

    def do_POST(self):
        assert self.path == "/v1/models/pipeline:predict", self.path
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        fn = self.loaded.signatures[body["signature_name"]]
        specs = fn.structured_input_signature[1]
        if "inputs" in body:
            columns = body["inputs"]
        else:
            columns = {k: [row[k] for row in body["instances"]] for k in specs}
        feed = {}
        for name, spec in specs.items():
            value = columns[name]
            if spec.dtype == tf.string:
                value = [base64.b64decode(v["b64"]) for v in value]
            feed[name] = tf.constant(value, spec.dtype)
        outputs = {k: v.numpy().tolist() for k, v in fn(**feed).items()}
        reply = (
            {"outputs": outputs}
            if "inputs" in body
            else {
                "predictions": [
                    {k: v[i] for k, v in outputs.items()}
                    for i in range(len(next(iter(outputs.values()))))
                ]
            }
        )
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_rest_client_round_trip_matches_direct_call(exported):  # noqa: F811
    loaded = _load(exported, "pipeline")
    _FakeServing.loaded = loaded
    server = http.server.HTTPServer(("127.0.0.1", 0), _FakeServing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        rest = client.RestClient(f"http://127.0.0.1:{server.server_port}", "pipeline")
        inputs = _inputs("predict_jpeg_boxes")
        direct = loaded.signatures["predict_jpeg_boxes"](
            **{k: tf.constant(v) for k, v in inputs.items()}
        )
        for row_format in (False, True):
            got = rest.predict("predict_jpeg_boxes", inputs, row_format=row_format)
            assert set(got) == set(signatures.SIGNATURES["predict_jpeg_boxes"][1])
            for key, value in direct.items():
                np.testing.assert_allclose(got[key], value.numpy(), rtol=1e-6, err_msg=key)
    finally:
        server.shutdown()
        server.server_close()
