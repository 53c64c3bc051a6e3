"""Hostile HTTP/2 against the real binary, on both ports that speak it: the gRPC listener and
h2c on the HTTP port. Raw frames (h2_client.H2Client) do what a real client library never
would: open a call and send nothing, send half a message and stop, open a hundred streams that
each declare 8 MB and send 7. Every stream must be answered and closed within the body timeout
(or the client's own, shorter deadline) while other clients are served, and the bytes all of
them hold must stay within the server's memory budget.

Run by scripts/test after the Rust build; WARDEN_BIN names the binary (default target/debug/warden).
"""

import http.client
import json
import time

import pytest
import tritonclient.grpc as grpcclient

from h2_client import GRPC_HEADERS, H2Client, grpc_frame
from warden_process import MODELS, Warden

BODY_TIMEOUT_MS = 1500
BUDGET_BYTES = 32 << 20
MiB = 1 << 20
FLAGS = ["--body-timeout-ms", str(BODY_TIMEOUT_MS), "--max-body-bytes-in-flight", str(BUDGET_BYTES)]
INFER = "/inference.GRPCInferenceService/ModelInfer"
MARGIN = 1.5  # seconds of scheduling slack on a loaded 2-core machine


@pytest.fixture(scope="module")
def server():
    warden = Warden([str(MODELS), *FLAGS])
    yield warden
    warden.stop()


@pytest.fixture(scope="module")
def patient():
    """A server whose body timeout outlasts a flood sent from Python, so the streams the budget
    admits are still open when the test looks."""
    warden = Warden([str(MODELS), "--body-timeout-ms", "20000", "--max-body-bytes-in-flight", str(BUDGET_BYTES)])
    yield warden
    warden.stop()


def budget_in_flight(warden):
    host, port = warden.address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    found = [line for line in text.splitlines() if line.startswith("warden_body_bytes_in_flight ")]
    assert found, "no warden_body_bytes_in_flight in /metrics"
    return float(found[0].split()[1])


def rss_mib(warden):
    with open(f"/proc/{warden.process.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def served_meanwhile(warden):
    """Another gRPC client and an HTTP client are served while the attack is open."""
    client = grpcclient.InferenceServerClient(url=warden.grpc_address)
    try:
        assert client.is_server_live(), "ServerLive answered false"
        assert client.is_model_ready("iris"), "iris not ready over gRPC"
    finally:
        client.close()
    host, port = warden.address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/v2/health/ready")
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def assert_closed_with(stream, grpc_status, code, within, started):
    """The stream was answered with `grpc_status` and warden's `code`, within `within` s of
    `started`, and is closed (ended or reset), not left open."""
    assert stream.answered_at is not None, f"stream {stream.id}: no answer within {within} s"
    took = stream.answered_at - started
    assert took <= within, f"stream {stream.id}: answered after {took:.2f} s, bound {within} s"
    assert stream.grpc_status() == grpc_status, f"stream {stream.id}: {stream.headers}"
    assert stream.headers.get("warden-code") == code, f"stream {stream.id}: {stream.headers}"
    assert stream.done, f"stream {stream.id}: answered but left open"


@pytest.mark.parametrize("case", ["headers only", "half a message"])
def test_a_stalled_grpc_call_is_answered_and_closed_within_the_body_timeout(server, case):
    client = H2Client(server.grpc_address)
    try:
        body = b"" if case == "headers only" else grpc_frame(b"\x0a" * 100, declared=1000)
        started = time.monotonic()
        stream = client.open(INFER, GRPC_HEADERS, body=body)
        client.run_until(lambda: stream.answered_at is not None, 0.3)
        assert stream.answered_at is None, f"answered before the body timeout: {stream.headers}"
        served_meanwhile(server)
        within = BODY_TIMEOUT_MS / 1000 + MARGIN
        client.run_until(lambda: stream.done, within + 1)
        # DEADLINE_EXCEEDED is gRPC status 4; the body timeout is warden's `request_timeout`.
        assert_closed_with(stream, 4, "request_timeout", within, started)
        assert took_at_least(stream, started, BODY_TIMEOUT_MS / 1000 - 0.1)
    finally:
        client.close()
    served_meanwhile(server)


def took_at_least(stream, started, seconds):
    return stream.answered_at - started >= seconds


def test_a_stalled_call_is_answered_within_its_own_shorter_deadline(server):
    client = H2Client(server.grpc_address)
    try:
        started = time.monotonic()
        stream = client.open(INFER, [*GRPC_HEADERS, ("grpc-timeout", "300m")])
        client.run_until(lambda: stream.done, 3)
        assert_closed_with(stream, 4, "deadline_exceeded", 0.3 + MARGIN, started)
    finally:
        client.close()


def test_a_stalled_h2c_body_is_408_within_the_body_timeout(server):
    client = H2Client(server.address)
    try:
        started = time.monotonic()
        stream = client.open("/v1/models/iris:predict",
                             [("content-type", "application/json"), ("content-length", "1000")],
                             body=b'{"instances": [')
        served_meanwhile(server)
        within = BODY_TIMEOUT_MS / 1000 + MARGIN
        client.run_until(lambda: stream.done, within + 1)
        assert stream.answered_at is not None and stream.answered_at - started <= within, \
            f"no answer within {within} s"
        assert stream.headers.get(":status") == "408", stream.headers
        assert json.loads(stream.data)["code"] == "request_timeout", stream.data
        assert stream.done, "answered but left open"
    finally:
        client.close()


def flood(address, path, headers, streams, declared, sent, grpc):
    """Opens `streams` streams on one connection, each declaring `declared` bytes and sending
    `sent` of them, as fast as flow control lets it; returns the client (streams left open)."""
    client = H2Client(address)
    for _ in range(streams):
        if grpc:
            body = grpc_frame(b"\x0a" * (sent - 5), declared=declared - 5)
            client.open(path, headers, body=body)
        else:
            client.open(path, [*headers, ("content-length", str(declared))], body=b" " * sent)
    client.run_until(lambda: all(s.done or not s.to_send for s in client.streams.values()), 60)
    return client


@pytest.mark.parametrize("port", ["grpc", "h2c"])
def test_a_hundred_streams_of_7_mb_stay_within_the_memory_budget(patient, port):
    grpc = port == "grpc"
    before = rss_mib(patient)
    address = patient.grpc_address if grpc else patient.address
    path = INFER if grpc else "/v1/models/iris:predict"
    headers = GRPC_HEADERS if grpc else [("content-type", "application/json")]
    client = flood(address, path, headers, 100, 8 * MiB, 7 * MiB, grpc)
    try:
        during = rss_mib(patient)
        streams = list(client.streams.values())
        refused = [s for s in streams if s.done]
        holding = [s for s in streams if not s.done]
        # The budget holds 32 MiB: three or four 8 MB bodies; every other stream is refused at
        # once (RESOURCE_EXHAUSTED / 503 `overloaded`), not buffered.
        assert 1 <= len(holding) <= BUDGET_BYTES // (8 * MiB), \
            f"{len(holding)} streams still sending; the budget holds {BUDGET_BYTES // (8 * MiB)}"
        for stream in refused:
            if grpc:
                assert stream.grpc_status() == 8, stream.headers  # RESOURCE_EXHAUSTED
                assert stream.headers.get("warden-code") == "overloaded", stream.headers
            else:
                assert stream.headers.get(":status") == "503", stream.headers
                assert stream.headers.get("retry-after") == "1", stream.headers
                assert json.loads(stream.data)["code"] == "overloaded", stream.data
        grown = during - before
        assert grown <= BUDGET_BYTES / MiB + 16, \
            f"resident memory grew {grown:.0f} MiB with the streams open; the budget is {BUDGET_BYTES / MiB:.0f} MiB"
        assert 0 < budget_in_flight(patient) <= BUDGET_BYTES
        served_meanwhile(patient)
    finally:
        client.close()
    # The client went away: every reservation is returned.
    deadline = time.monotonic() + 5
    while budget_in_flight(patient) != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert budget_in_flight(patient) == 0, "the budget was not returned when the client left"


def test_streams_per_connection_are_capped(server):
    for address in (server.grpc_address, server.address):
        client = H2Client(address)
        try:
            assert client.conn.remote_settings.max_concurrent_streams == 100
            assert client.conn.remote_settings.initial_window_size == 64 * 1024, \
                "the stream window: the budget's 512th, at least 64 KiB"
        finally:
            client.close()


@pytest.mark.parametrize("how", ["grpc-encoding gzip", "compressed flag"])
def test_compressed_grpc_messages_are_invalid_argument(server, how):
    client = H2Client(server.grpc_address)
    try:
        if how == "grpc-encoding gzip":
            headers, body = [*GRPC_HEADERS, ("grpc-encoding", "gzip")], grpc_frame(b"\x1f\x8b")
        else:
            headers, body = GRPC_HEADERS, b"\x01" + grpc_frame(b"\x1f\x8b")[1:]
        stream = client.open(INFER, headers, body=body, finish=True)
        client.run_until(lambda: stream.done, 5)
        assert stream.grpc_status() == 3, stream.headers  # INVALID_ARGUMENT
        assert stream.headers.get("warden-code") == "unsupported_media_type", stream.headers
    finally:
        client.close()
