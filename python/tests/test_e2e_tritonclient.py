"""End to end: the real warden binary driven by Triton's own Python client (tritonclient.http,
unchanged), every answer compared with ONNX Runtime run in-process on the same model file.

Run by scripts/test after the Rust build; WARDEN_BIN names the binary (default target/debug/warden).
"""

import csv
import hashlib
import json
import urllib.error
import urllib.request

import numpy as np
import onnxruntime
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from warden_process import MODELS, ROOT, Warden

NUMERIC = ["age", "income", "debt_ratio"]
CATEGORICAL = ["country", "employment"]
IRIS_ROWS = np.array(
    [[5.1, 3.5, 1.4, 0.2], [4.9, 3.0, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [5.9, 3.0, 5.1, 1.8], [7.7, 3.0, 6.1, 2.3]],
    dtype=np.float32,
)


@pytest.fixture(scope="module")
def server():
    warden = Warden([str(MODELS)])
    yield warden.address
    warden.stop()


@pytest.fixture(scope="module")
def client(server):
    return httpclient.InferenceServerClient(server)


def reference(model, feeds):
    session = onnxruntime.InferenceSession(str(MODELS / model / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["label", "probabilities"], feeds)


def credit_rows(n=6):
    with open(ROOT / "examples" / "data" / "credit.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:n]
    feeds = {c: np.array([[float(r[c])] for r in rows], dtype=np.float32) for c in NUMERIC}
    feeds.update({c: np.array([[r[c]] for r in rows], dtype=np.object_) for c in CATEGORICAL})
    return rows, feeds


def decoded(labels):
    return [x.decode() if isinstance(x, bytes) else x for x in labels]


def test_health_and_server_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] == "warden"
    assert metadata["version"]
    assert isinstance(metadata["extensions"], list)


@pytest.mark.parametrize("model", ["iris", "credit"])
def test_model_ready_on_both_paths(client, model):
    assert client.is_model_ready(model)
    assert client.is_model_ready(model, model_version="1")
    assert not client.is_model_ready("no-such-model")


def test_model_metadata(client):
    iris = client.get_model_metadata("iris")
    assert iris["name"] == "iris" and "1" in iris["versions"]
    assert iris["platform"] == "onnxruntime_onnx"
    assert iris["inputs"] == [{"name": "float_input", "datatype": "FP32", "shape": [-1, 4]}]
    assert [(o["name"], o["datatype"]) for o in iris["outputs"]] == [("label", "BYTES"), ("probabilities", "FP32")]
    credit = client.get_model_metadata("credit", model_version="1")
    assert credit["name"] == "credit" and "1" in credit["versions"]
    assert credit["platform"] == "onnxruntime_onnx"
    inputs = {i["name"]: (i["datatype"], i["shape"]) for i in credit["inputs"]}
    assert inputs == {
        "age": ("FP32", [-1, 1]), "income": ("FP32", [-1, 1]), "debt_ratio": ("FP32", [-1, 1]),
        "country": ("BYTES", [-1, 1]), "employment": ("BYTES", [-1, 1]),
    }
    assert [(o["name"], o["datatype"]) for o in credit["outputs"]] == [("label", "BYTES"), ("probabilities", "FP32")]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_iris_matches_onnxruntime(client, binary):
    x = httpclient.InferInput("float_input", list(IRIS_ROWS.shape), "FP32")
    x.set_data_from_numpy(IRIS_ROWS, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("label", "probabilities")]
    result = client.infer("iris", [x], outputs=outputs, request_id="abc-1")
    labels, probabilities = reference("iris", {"float_input": IRIS_ROWS})
    assert decoded(result.as_numpy("label")) == list(labels)
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, atol=1e-5)
    assert result.get_response()["id"] == "abc-1"


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_credit_through_bytes_inputs(client, binary):
    _, feeds = credit_rows()
    inputs = []
    for name, array in feeds.items():
        tensor = httpclient.InferInput(name, list(array.shape), "BYTES" if name in CATEGORICAL else "FP32")
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    # No outputs named: the client asks for every output, as binary.
    result = client.infer("credit", inputs, model_version="1")
    labels, probabilities = reference("credit", feeds)
    assert decoded(result.as_numpy("label")) == list(labels)
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, atol=1e-5)


def test_requesting_one_output_returns_only_it(client):
    x = httpclient.InferInput("float_input", [1, 4], "FP32")
    x.set_data_from_numpy(IRIS_ROWS[:1])
    result = client.infer("iris", [x], outputs=[httpclient.InferRequestedOutput("probabilities")])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["probabilities"]
    assert result.as_numpy("label") is None


def test_unknown_model_is_404(client):
    x = httpclient.InferInput("float_input", [1, 4], "FP32")
    x.set_data_from_numpy(IRIS_ROWS[:1])
    with pytest.raises(InferenceServerException) as raised:
        client.infer("no-such-model", [x])
    assert raised.value.status() == "404"
    assert "unknown model `no-such-model`" in raised.value.message()


def post(server, path, body):
    request = urllib.request.Request(
        f"http://{server}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_row_api_and_the_incident(server):
    row = {"age": 42.0, "income": 52000.0, "debt_ratio": 0.3, "country": "US", "employment": "salaried"}
    status, body = post(server, "/v1/models/credit:predict", {"instances": [row]})
    assert status == 200, body
    feeds = {c: np.array([[row[c]]], dtype=np.float32) for c in NUMERIC}
    feeds.update({c: np.array([[row[c]]], dtype=np.object_) for c in CATEGORICAL})
    labels, probabilities = reference("credit", feeds)
    prediction = body["predictions"][0]
    assert prediction["label"] == labels[0]
    np.testing.assert_allclose(
        [prediction["probabilities"]["approve"], prediction["probabilities"]["reject"]], probabilities[0], atol=1e-5
    )
    sha256 = hashlib.sha256((MODELS / "credit" / "1" / "model.onnx").read_bytes()).hexdigest()
    assert body["model"] == {"name": "credit", "version": "1", "sha256": sha256}

    status, body = post(server, "/v1/models/credit:predict", {"instances": [dict(row, country=3)]})
    assert status == 400
    assert body["code"] == "invalid_input"
    assert body["details"] == [
        {"loc": ["instances", 0, "country"], "msg": "expected one of DE, FR, GB, IN, US; got integer 3", "type": "type_error"}
    ]
