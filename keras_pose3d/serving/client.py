"""TF-Serving clients for the exported models: REST (JSON) and gRPC (PredictRequest).

REST needs nothing beyond the standard library:

    client = RestClient("http://localhost:8501", model="pipeline")
    out = client.predict("serving_default", {"images": [open("frame.jpg", "rb").read()]})
    out["joints_3d_mm"]  # (1, 16, 3) numpy

Bytes inputs travel as {"b64": ...} (TF-Serving's REST convention); requests use the columnar
"inputs" format by default ("instances", the row format, with `row_format=True`).

gRPC uses the `tensorflow-serving-api` protos. That package declares a dependency on the full
`tensorflow` wheel, which would replace `tensorflow-cpu`; its protos import fine against
tensorflow-cpu, so install it without dependencies (`grpcio` and `protobuf` are already there):

    pip install --no-deps tensorflow-serving-api==2.19.0

The tensors of a gRPC request come from `tf.make_tensor_proto` (`tensor_protos`, always
available); only `grpc_request` / `GrpcClient` need the package and raise an ImportError
saying how to install it when it is missing.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Mapping

import numpy as np

from keras_pose3d.serving.signatures import SIGNATURES

_NP_DTYPES = {"string": object, "float32": np.float32}


def check_inputs(signature_name: str, inputs: Mapping) -> dict[str, np.ndarray]:
    """Inputs as NumPy arrays of the signature's dtypes; raises naming a missing/extra input."""
    if signature_name not in SIGNATURES:
        raise KeyError(
            f"unknown signature {signature_name!r}; expected one of {sorted(SIGNATURES)}"
        )
    spec, _ = SIGNATURES[signature_name]
    missing, extra = sorted(set(spec) - set(inputs)), sorted(set(inputs) - set(spec))
    if missing or extra:
        raise ValueError(
            f"signature {signature_name!r} takes inputs {sorted(spec)}. Received: "
            f"{sorted(inputs)} (missing {missing}, unexpected {extra})"
        )
    arrays = {}
    for name, (dtype, shape) in spec.items():
        value = inputs[name]
        if dtype == "string":
            array = np.empty(len(value), dtype=object)
            array[:] = [bytes(v) for v in value]
        else:
            array = np.asarray(value, dtype=np.float32)
        if array.ndim != len(shape):
            raise ValueError(
                f"input {name!r} of {signature_name!r} must have {len(shape)} dimensions "
                f"{shape}. Received: shape={array.shape}"
            )
        arrays[name] = array
    return arrays


def _json_value(array: np.ndarray):
    if array.dtype == object:
        return [{"b64": base64.b64encode(v).decode("ascii")} for v in array]
    return array.tolist()


def rest_request_body(signature_name: str, inputs: Mapping, row_format: bool = False) -> dict:
    """The JSON body of a TF-Serving REST predict request.

    Args:
        signature_name: one of `SIGNATURES`.
        inputs: {input name: batch} (lists of bytes for string inputs, arrays otherwise).
        row_format: "instances" (one dict per example) instead of columnar "inputs".
    """
    arrays = check_inputs(signature_name, inputs)
    if not row_format:
        return {
            "signature_name": signature_name,
            "inputs": {k: _json_value(v) for k, v in arrays.items()},
        }
    batch = {len(v) for v in arrays.values()}
    if len(batch) != 1:
        raise ValueError(f"all inputs need the same batch size. Received: {batch}")
    columns = {k: _json_value(v) for k, v in arrays.items()}
    instances = [{k: col[i] for k, col in columns.items()} for i in range(batch.pop())]
    return {"signature_name": signature_name, "instances": instances}


def parse_rest_response(body: Mapping) -> dict[str, np.ndarray]:
    """A REST predict response ("outputs" or "predictions") -> {output name: float32 array}."""
    if "error" in body:
        raise RuntimeError(f"TF-Serving error: {body['error']}")
    if "outputs" in body:
        outputs = body["outputs"]
        if not isinstance(outputs, Mapping):  # a single unnamed output
            return {"output": np.asarray(outputs, np.float32)}
        return {k: np.asarray(v, np.float32) for k, v in outputs.items()}
    if "predictions" in body:
        rows = body["predictions"]
        if rows and isinstance(rows[0], Mapping):
            return {k: np.asarray([r[k] for r in rows], np.float32) for k in rows[0]}
        return {"output": np.asarray(rows, np.float32)}
    raise ValueError(f"REST response has neither 'outputs' nor 'predictions': keys {sorted(body)}")


class RestClient:
    """TF-Serving REST client for one model.

    Args:
        url: server root, e.g. "http://localhost:8501".
        model: model name ("sap_net", "tp_net", "pipeline").
        version: a fixed version, or None for the latest.
        timeout_s: per-request timeout.
    """

    def __init__(self, url: str, model: str, version: int | None = None, timeout_s: float = 30.0):
        self.url = url.rstrip("/")
        self.model = model
        self.version = version
        self.timeout_s = timeout_s

    @property
    def predict_url(self) -> str:
        version = f"/versions/{self.version}" if self.version is not None else ""
        return f"{self.url}/v1/models/{self.model}{version}:predict"

    def predict(
        self, signature_name: str, inputs: Mapping, row_format: bool = False
    ) -> dict[str, np.ndarray]:
        body = json.dumps(rest_request_body(signature_name, inputs, row_format)).encode()
        request = urllib.request.Request(
            self.predict_url, data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return parse_rest_response(json.loads(response.read()))
        except urllib.error.HTTPError as err:  # TF-Serving puts the reason in a JSON body
            detail = err.read().decode(errors="replace")
            raise RuntimeError(f"{self.predict_url} returned {err.code}: {detail}") from err


# ----------------------------------------------------------------------------------------------
# gRPC.
# ----------------------------------------------------------------------------------------------
def tensor_protos(signature_name: str, inputs: Mapping) -> dict:
    """{input name: tf.TensorProto} with the signature's dtypes (DT_STRING / DT_FLOAT)."""
    import tensorflow as tf

    arrays = check_inputs(signature_name, inputs)
    protos = {}
    for name, array in arrays.items():
        if array.dtype == object:
            protos[name] = tf.make_tensor_proto(list(array), dtype=tf.string, shape=array.shape)
        else:
            protos[name] = tf.make_tensor_proto(array, dtype=tf.float32)
    return protos


def _serving_apis():
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    except ImportError as err:
        raise ImportError(
            "gRPC needs the tensorflow-serving-api protos: pip install --no-deps "
            "tensorflow-serving-api==2.19.0 (--no-deps keeps tensorflow-cpu; see this module)"
        ) from err
    return predict_pb2, prediction_service_pb2_grpc


def grpc_request(model: str, signature_name: str, inputs: Mapping, version: int | None = None):
    """A `tensorflow.serving.PredictRequest` for `model` / `signature_name`."""
    predict_pb2, _ = _serving_apis()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    for name, proto in tensor_protos(signature_name, inputs).items():
        request.inputs[name].CopyFrom(proto)
    return request


class GrpcClient:
    """TF-Serving gRPC client for one model (target e.g. "localhost:8500")."""

    def __init__(
        self, target: str, model: str, version: int | None = None, timeout_s: float = 30.0
    ):
        import grpc

        _, service = _serving_apis()
        self.model, self.version, self.timeout_s = model, version, timeout_s
        # JPEG batches exceed gRPC's 4 MB default message size quickly.
        options = [
            ("grpc.max_send_message_length", 64 << 20),
            ("grpc.max_receive_message_length", 64 << 20),
        ]
        self.channel = grpc.insecure_channel(target, options=options)
        self.stub = service.PredictionServiceStub(self.channel)

    def predict(self, signature_name: str, inputs: Mapping) -> dict[str, np.ndarray]:
        import tensorflow as tf

        request = grpc_request(self.model, signature_name, inputs, self.version)
        response = self.stub.Predict(request, self.timeout_s)
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
