"""KServe V2 over gRPC, end to end: the real warden binary driven by Triton's own gRPC client
(tritonclient.grpc, unchanged), by the protocol's stubs with typed `contents`, by grpcio's
health and reflection clients; every answer compared with the REST answer for the same rows and
with ONNX Runtime run in-process.

Run by scripts/test after the Rust build; WARDEN_BIN names the binary (default target/debug/warden).
"""

import json
import shutil
import urllib.request

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from test_e2e_tritonclient import CATEGORICAL, IRIS_ROWS, credit_rows, decoded, reference
from warden_process import MODELS, Warden


@pytest.fixture(scope="module")
def warden():
    server = Warden([str(MODELS)])
    assert server.grpc_address and server.grpc_address != server.address
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(warden):
    return grpcclient.InferenceServerClient(warden.grpc_address)


@pytest.fixture(scope="module")
def rest(warden):
    return httpclient.InferenceServerClient(warden.address)


@pytest.fixture(scope="module")
def stub(warden):
    channel = grpc.insecure_channel(warden.grpc_address)
    yield service_pb2_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def test_health_metadata_and_readiness(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata.name == "warden" and metadata.version
    assert list(metadata.extensions) == ["binary_tensor_data", "model_repository"]
    for model in ["iris", "credit"]:
        assert client.is_model_ready(model)
        assert client.is_model_ready(model, model_version="1")
    assert not client.is_model_ready("no-such-model")
    assert not client.is_model_ready("iris", model_version="7")


def test_model_metadata_equals_rest(client, rest):
    for model in ["iris", "credit"]:
        over_grpc = client.get_model_metadata(model, as_json=True)
        over_rest = rest.get_model_metadata(model)
        assert over_grpc["name"] == over_rest["name"] == model
        assert over_grpc["versions"] == over_rest["versions"] == ["1"]
        assert over_grpc["platform"] == over_rest["platform"] == "onnxruntime_onnx"
        shapes = lambda tensors: [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in tensors]
        assert shapes(over_grpc["inputs"]) == shapes(over_rest["inputs"])
        assert shapes(over_grpc["outputs"]) == shapes(over_rest["outputs"])


def test_iris_over_grpc_equals_rest_and_onnxruntime(client, rest):
    x = grpcclient.InferInput("float_input", list(IRIS_ROWS.shape), "FP32")
    x.set_data_from_numpy(IRIS_ROWS)  # tritonclient.grpc sends raw_input_contents
    result = client.infer("iris", [x], request_id="grpc-1")
    response = result.get_response()
    assert response.id == "grpc-1" and response.model_name == "iris" and response.model_version == "1"
    assert len(response.raw_output_contents) == 2, "raw in, raw out"
    y = httpclient.InferInput("float_input", list(IRIS_ROWS.shape), "FP32")
    y.set_data_from_numpy(IRIS_ROWS)
    over_rest = rest.infer("iris", [y])
    labels, probabilities = reference("iris", {"float_input": IRIS_ROWS})
    assert decoded(result.as_numpy("label")) == decoded(over_rest.as_numpy("label")) == list(labels)
    np.testing.assert_array_equal(result.as_numpy("probabilities"), over_rest.as_numpy("probabilities"))
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, atol=1e-5)


def test_credit_with_string_inputs_equals_rest(client, rest):
    _, feeds = credit_rows()
    over_grpc, over_rest = [], []
    for name, array in feeds.items():
        datatype = "BYTES" if name in CATEGORICAL else "FP32"
        tensor = grpcclient.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        over_grpc.append(tensor)
        tensor = httpclient.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        over_rest.append(tensor)
    result = client.infer("credit", over_grpc, model_version="1",
                          outputs=[grpcclient.InferRequestedOutput("label")])
    assert [o.name for o in result.get_response().outputs] == ["label"]
    expected = rest.infer("credit", over_rest)
    labels, _ = reference("credit", feeds)
    assert decoded(result.as_numpy("label")) == decoded(expected.as_numpy("label")) == list(labels)


def typed_request(rows, datatype="FP32", **contents):
    request = service_pb2.ModelInferRequest(model_name="iris", id="typed")
    tensor = request.inputs.add(name="float_input", datatype=datatype, shape=list(rows.shape))
    if contents:
        for field, values in contents.items():
            getattr(tensor.contents, field).extend(values)
    else:
        tensor.contents.fp32_contents.extend(rows.flatten().tolist())
    return request


def test_typed_contents_in_typed_contents_out(stub, rest):
    response = stub.ModelInfer(typed_request(IRIS_ROWS))
    assert not response.raw_output_contents, "typed in, typed out"
    outputs = {o.name: o for o in response.outputs}
    assert list(outputs["probabilities"].shape) == [5, 3]
    y = httpclient.InferInput("float_input", list(IRIS_ROWS.shape), "FP32")
    y.set_data_from_numpy(IRIS_ROWS)
    over_rest = rest.infer("iris", [y])
    assert [b.decode() for b in outputs["label"].contents.bytes_contents] == decoded(over_rest.as_numpy("label"))
    np.testing.assert_array_equal(
        np.array(outputs["probabilities"].contents.fp32_contents, dtype=np.float32).reshape(5, 3),
        over_rest.as_numpy("probabilities"))


def rest_error(warden, body):
    request = urllib.request.Request(f"{warden.url}/v2/models/iris/infer", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)
    raise AssertionError("the REST request was answered 200")


def test_an_invalid_request_is_invalid_argument_with_the_rest_error_body(warden, client, stub):
    x = grpcclient.InferInput("float_input", [1, 4], "FP64")
    x.set_data_from_numpy(IRIS_ROWS[:1].astype(np.float64))
    with pytest.raises(InferenceServerException) as raised:
        client.infer("iris", [x])
    assert raised.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert raised.value.message() == (
        "invalid_input: 1 problem in the request; inputs[0].datatype: input `float_input` is FP32 in the model; "
        "got FP64")

    # NaN in typed contents is a missing value, which iris's features do not take: refused with
    # its location by the contract gate; the trailing metadata carries the code and the very
    # error body REST answers for the same tensor (a missing value sent as null there).
    rows = IRIS_ROWS[:1].copy()
    rows[0, 2] = np.nan
    not_nullable = ("feature `petal_length` is not nullable; got NaN (a missing value: set `nullable = true` "
                    "on the feature in warden.toml if the model handles one)")
    with pytest.raises(grpc.RpcError) as raised:
        stub.ModelInfer(typed_request(rows))
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"invalid_input: 1 problem in the request; inputs[0].data[2]: {not_nullable}"
    trailing = dict(error.trailing_metadata())
    assert trailing["warden-code"] == "invalid_input"
    body = json.loads(trailing["warden-error-bin"])
    status, over_rest = rest_error(warden, {"inputs": [
        {"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, None, 0.2]}]})
    assert status == 400
    assert body["code"] == over_rest["code"] == "invalid_input"
    assert body["details"] == over_rest["details"] == [
        {"loc": ["inputs", 0, "data", 2], "msg": not_nullable, "type": "value_error"}]

    # Elements in the wrong field for the datatype, and an unknown model.
    with pytest.raises(grpc.RpcError) as raised:
        stub.ModelInfer(typed_request(IRIS_ROWS[:1], int64_contents=[1, 2, 3, 4]))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "go in `fp32_contents`; this one fills int64_contents" in raised.value.details()
    request = typed_request(IRIS_ROWS[:1])
    request.model_name = "no-such-model"
    with pytest.raises(grpc.RpcError) as raised:
        stub.ModelInfer(request)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "model_not_found: unknown model `no-such-model`"


def test_hostile_messages_are_answered_from_the_error_table(tmp_path):
    server = Warden([str(MODELS), "--max-body-bytes", "100000"])
    try:
        with grpc.insecure_channel(server.grpc_address) as channel:
            def raw(method, payload):
                call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
                with pytest.raises(grpc.RpcError) as raised:
                    call(payload, timeout=10)
                error = raised.value
                return error.code(), error.details(), dict(error.trailing_metadata() or [])

            infer = "/inference.GRPCInferenceService/ModelInfer"
            code, details, trailing = raw(infer, b"\xff\xff\xff\xff\x0f")
            assert (code, details, trailing["warden-code"]) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                "invalid_input: the message is not a valid protobuf encoding of this method's request",
                "invalid_input")
            # A model name of 200,000 bytes: over the 100,000-byte limit, refused before decoding.
            code, details, trailing = raw(infer, b"\x0a\x80\x9a\x0c" + b"a" * 200_000)
            assert (code, trailing["warden-code"]) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "payload_too_large")
            assert details == "payload_too_large: the message is over the server's limit of 100000 bytes (--max-body-bytes)"
            code, details, trailing = raw("/inference.GRPCInferenceService/Nope", b"")
            assert (code, trailing["warden-code"]) == (grpc.StatusCode.UNIMPLEMENTED, "not_found")
            # Shapes that cannot exist, and raw contents that do not add up, are input errors.
            request = typed_request(IRIS_ROWS[:1])
            request.inputs[0].shape[:] = [1, -4]
            with pytest.raises(grpc.RpcError) as raised:
                service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "negative dimension" in raised.value.details()
            request = service_pb2.ModelInferRequest(model_name="iris")
            request.inputs.add(name="float_input", datatype="FP32", shape=[1, 4])
            request.raw_input_contents.append(b"\x00" * 15)
            with pytest.raises(grpc.RpcError) as raised:
                service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert raised.value.details() == ("invalid_input: 1 problem in the request; raw_input_contents[0]: "
                                              "4 FP32 elements take 4×4 bytes; the binary data has 15")
            # 150 unknown inputs with long names: the client gets INVALID_ARGUMENT and a valid
            # error body, not a transport error for metadata over its 16 KiB limit.
            request = service_pb2.ModelInferRequest(model_name="iris")
            for i in range(150):
                request.inputs.add(name="x" * 60 + str(i), datatype="FP32", shape=[1, 4]).contents \
                    .fp32_contents.extend([1, 2, 3, 4])
            with pytest.raises(grpc.RpcError) as raised:
                service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert raised.value.details().startswith("invalid_input: 151 problems in the request")
            assert len(raised.value.details().encode()) <= 1024
            error_bin = dict(raised.value.trailing_metadata())["warden-error-bin"]
            assert len(error_bin) <= 3 * 1024
            body = json.loads(error_bin)
            assert body["code"] == "invalid_input" and body["details"]
            assert len(body["details"]) + body["details_omitted"] == 151, "each problem listed or counted"
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
            text = response.read().decode()
        counted = [line for line in text.splitlines() if line.startswith("warden_requests_total{")
                   and 'protocol="grpc"' in line and 'code="OK"' not in line]
        assert any('route="unmatched"' in line and 'code="UNIMPLEMENTED"' in line for line in counted), counted
        assert any('code="RESOURCE_EXHAUSTED"' in line for line in counted), counted
    finally:
        server.stop()


def test_a_deadline_that_passes_is_deadline_exceeded_and_the_server_goes_on(tmp_path):
    # 60,000 rows take milliseconds to decode and run; a 1 ms deadline cannot be met. (That the
    # server maps gRPC's deadline to its own is shown deterministically by the Rust test
    # grpc::a_grpc_deadline_is_the_request_deadline, with a model held busy.)
    shutil.copytree(MODELS / "iris", tmp_path / "iris")
    manifest = tmp_path / "iris" / "warden.toml"
    manifest.write_text(manifest.read_text().replace("max_request_rows = 10000", "max_request_rows = 100000"))
    server = Warden([str(tmp_path)])
    try:
        client = grpcclient.InferenceServerClient(server.grpc_address)
        rows = np.tile(IRIS_ROWS, (12_000, 1))
        x = grpcclient.InferInput("float_input", list(rows.shape), "FP32")
        x.set_data_from_numpy(rows)
        with pytest.raises(InferenceServerException) as raised:
            client.infer("iris", [x], client_timeout=0.001)
        assert raised.value.status() == "StatusCode.DEADLINE_EXCEEDED"
        answer = client.infer("iris", [x], client_timeout=60)
        assert answer.as_numpy("probabilities").shape == (60_000, 3)
    finally:
        server.stop()


def test_grpc_health_checking(warden):
    with grpc.insecure_channel(warden.grpc_address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ["", "inference.GRPCInferenceService", "iris", "credit"]:
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(grpc.RpcError) as raised:
            health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()


def test_reflection_lists_the_services(warden):
    with grpc.insecure_channel(warden.grpc_address) as channel:
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                                  timeout=10)
        names = {s.name for s in next(answers).list_services_response.service}
        assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= names
        answers = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="inference.GRPCInferenceService")]), timeout=10)
        assert next(answers).file_descriptor_response.file_descriptor_proto


def test_grpc_calls_are_counted_with_their_protocol(warden, client):
    x = grpcclient.InferInput("float_input", [1, 4], "FP32")
    x.set_data_from_numpy(IRIS_ROWS[:1])
    client.infer("iris", [x])
    with urllib.request.urlopen(f"{warden.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    line = next(line for line in text.splitlines() if line.startswith("warden_requests_total{")
                and 'protocol="grpc"' in line and 'route="/inference.GRPCInferenceService/ModelInfer"' in line
                and 'code="OK"' in line and 'model="iris"' in line)
    assert float(line.rsplit(" ", 1)[1]) >= 1
    assert 'warden_request_duration_seconds_count{model="iris",protocol="grpc",version="1"}' in text


def test_with_tokens_calls_need_one_and_probes_do_not(tmp_path):
    token = "grpc-token-0123456789"
    server = Warden([str(MODELS)], env={"WARDEN_AUTH_TOKENS": token})
    try:
        client = grpcclient.InferenceServerClient(server.grpc_address)
        assert client.is_server_live() and client.is_server_ready()
        with pytest.raises(InferenceServerException) as raised:
            client.get_model_metadata("iris")
        assert raised.value.status() == "StatusCode.UNAUTHENTICATED"
        assert raised.value.message().startswith("unauthorized: ")
        with pytest.raises(InferenceServerException) as raised:
            client.get_model_metadata("iris", headers={"authorization": "Bearer wrong-token-000000"})
        assert raised.value.status() == "StatusCode.UNAUTHENTICATED"
        metadata = client.get_model_metadata("iris", headers={"authorization": f"Bearer {token}"})
        assert metadata.name == "iris"
        # A refused call carries its request id back, and is logged like any answered call.
        with grpc.insecure_channel(server.grpc_address) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as raised:
                stub.ModelMetadata(service_pb2.ModelMetadataRequest(name="iris"), timeout=10,
                                   metadata=[("x-request-id", "grpc-denied-1")])
            assert dict(raised.value.trailing_metadata())["x-request-id"] == "grpc-denied-1"
        with grpc.insecure_channel(server.grpc_address) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop()
    logged = [json.loads(line) for line in server.seen if '"grpc-denied-1"' in line]
    assert any(event.get("message") == "request" and event.get("code") == "unauthorized"
               and event.get("status") == "UNAUTHENTICATED" for event in logged), logged


def test_grpc_port_off_serves_no_grpc():
    server = Warden([str(MODELS), "--grpc-port", "off"])
    try:
        assert server.grpc_address is None
    finally:
        server.stop()
