"""Hostile input against the real binary: whatever a client sends, the answer is a bounded JSON
error with a stable `code`, no internals leak, and the server stays healthy.

Every check asserts the status, the JSON `code`, `content-type: application/json`, an answer body
under 64 KiB, no filesystem path and no panic text in the body, and GET /v2/health/ready -> 200
afterwards. Malformed HTTP goes over raw sockets; everything else through http.client. Only
127.0.0.1, every socket with a timeout, no sleeping to wait for something: polls have deadlines.

Run by scripts/test after the Rust build; WARDEN_BIN names the binary (default target/debug/warden).
"""

import gzip
import http.client
import json
import queue
import select
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from warden_process import MODELS, Warden

ANSWER_LIMIT = 65536  # every answer body must be smaller than this
READ_CAP = 1 << 20  # never read more than this of an answer; its Content-Length says the rest
BIG_TIMEOUT = 60  # seconds for one request with a multi-megabyte body
TIMEOUT = 10  # seconds for any other request
PATH_MARKERS = ("/work", "/home", "/root/", "/usr/", "/tmp/", "src/", ".rs", ".cargo")
PANIC_MARKERS = ("panicked", "backtrace")
CUT = 64  # an offending string is quoted as at most its first 64 characters, then "…"
ELLIPSIS = "…"

IRIS_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
IRIS_DATA = [5.1, 3.5, 1.4, 0.2]
CREDIT_ROW = {"age": 56.76, "income": 58644.4, "debt_ratio": 1.16, "country": "IN", "employment": "salaried"}
MAX_REQUEST_ROWS = 10_000  # the manifest default [batching] max_request_rows


def excerpt(text, limit=300):
    text = text if isinstance(text, str) else text.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + "…"


# ---------------------------------------------------------------------------------------------
# Answers and the checks every test makes


class Answer:
    """An HTTP answer: status, lower-cased headers, the body (at most READ_CAP bytes of it) and
    the body's full length (from Content-Length when the body was not read to its end)."""

    def __init__(self, status, headers, body, length):
        self.status, self.headers, self.body, self.length = status, headers, body, length

    def text(self):
        return self.body.decode("utf-8", "replace")

    def show(self):
        return f"HTTP {self.status} ({self.length} bytes, content-type {self.headers.get('content-type')!r}): " \
               f"{excerpt(self.body)}"


def host_port(address):
    host, port = address.rsplit(":", 1)
    assert host == "127.0.0.1", f"tests only talk to 127.0.0.1, not {address}"
    return host, int(port)


def request(address, method, path, body=None, headers=None, timeout=TIMEOUT):
    """One request through http.client. A server that answers before reading the whole body
    (and closes) still has its answer read."""
    conn = http.client.HTTPConnection(*host_port(address), timeout=timeout)
    try:
        try:
            conn.request(method, path, body=body, headers=headers or {})
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered early; the answer is in the socket
        response = conn.getresponse()
        data = response.read(READ_CAP)
        declared = response.getheader("content-length")
        length = int(declared) if declared is not None else len(data)
        headers = {k.lower(): v for k, v in response.getheaders()}
        return Answer(response.status, headers, data, length)
    finally:
        conn.close()


def post_json(address, path, body, headers=None, timeout=TIMEOUT):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return request(address, "POST", path, data, {"Content-Type": "application/json", **(headers or {})}, timeout)


def connect(address, timeout=TIMEOUT):
    return socket.create_connection(host_port(address), timeout=timeout)


def raw_request(method, target, body=b"", headers=None, close=True):
    """The bytes of one HTTP/1.1 request, target sent exactly as given (no normalisation)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    if close:
        lines.append("Connection: close")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def read_until_close(sock, deadline, cap=READ_CAP):
    """Everything the peer sends until it closes (or cap bytes). Returns (data, closed) where
    closed is False when the deadline passed first."""
    data = b""
    while len(data) < cap:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data, False
        except (ConnectionResetError, BrokenPipeError):
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, True


def parse_answer(data):
    """Parses one raw HTTP answer (Content-Length or chunked)."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no complete HTTP answer head in {excerpt(data)!r}"
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    assert len(parts) >= 2 and parts[0].startswith("HTTP/"), f"not an HTTP status line: {lines[0]!r}"
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body, rest_chunks = b"", rest
        while rest_chunks:
            size_line, _, rest_chunks = rest_chunks.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            body += rest_chunks[:size]
            rest_chunks = rest_chunks[size + 2:]
        return Answer(int(parts[1]), headers, body, len(body))
    if "content-length" in headers:
        length = int(headers["content-length"])
        return Answer(int(parts[1]), headers, rest[:length], length)
    return Answer(int(parts[1]), headers, rest, len(rest))


def raw_exchange(address, data, timeout=TIMEOUT):
    """Sends raw bytes (a request with Connection: close) and parses the answer."""
    with connect(address, timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received, closed = read_until_close(sock, time.monotonic() + timeout)
    assert received, f"no answer within {timeout} s (closed={closed}) to {excerpt(data)!r}"
    return parse_answer(received)


def poll_ready(address, within=TIMEOUT):
    """GET /v2/health/ready until 200 or the deadline; returns the last outcome."""
    deadline = time.monotonic() + within
    last = None
    while True:
        try:
            answer = request(address, "GET", "/v2/health/ready", timeout=max(0.5, deadline - time.monotonic()))
            if answer.status == 200:
                return None
            last = answer.show()
        except OSError as err:
            last = f"{type(err).__name__}: {err}"
        if time.monotonic() >= deadline:
            return last
        time.sleep(0.05)  # poll interval of a deadline-bounded poll


def assert_healthy(address, within=TIMEOUT):
    problem = poll_ready(address, within)
    assert problem is None, f"expected GET /v2/health/ready -> 200 afterwards, got {excerpt(problem)}"


def assert_bounded_json(answer, where=""):
    """The checks every answer gets: JSON content type, under 64 KiB, no internals."""
    prefix = f"{where}: " if where else ""
    content_type = answer.headers.get("content-type", "")
    assert content_type.split(";")[0].strip().lower() == "application/json", \
        f"{prefix}expected content-type application/json, got {content_type!r}: {answer.show()}"
    assert answer.length < ANSWER_LIMIT, \
        f"{prefix}expected an answer under {ANSWER_LIMIT} bytes, got {answer.length}: {answer.show()}"
    text = answer.text()
    for marker in PATH_MARKERS:
        assert marker not in text, f"{prefix}the answer names a filesystem path ({marker!r}): {answer.show()}"
    lowered = text.lower()
    for marker in PANIC_MARKERS:
        assert marker not in lowered, f"{prefix}the answer mentions {marker!r}: {answer.show()}"
    try:
        return json.loads(text)
    except ValueError as err:
        raise AssertionError(f"{prefix}the answer is not JSON ({err}): {answer.show()}") from None


def expect_error(address, answer, status, codes, where=""):
    """Asserts an error answer (status, one of `codes`, bounded JSON) and a healthy server."""
    codes = (codes,) if isinstance(codes, str) else tuple(codes)
    prefix = f"{where}: " if where else ""
    assert answer.status == status, f"{prefix}expected HTTP {status} {'/'.join(codes)}, got {answer.show()}"
    doc = assert_bounded_json(answer, where)
    assert isinstance(doc, dict) and doc.get("code") in codes, \
        f"{prefix}expected code {' or '.join(codes)}, got {excerpt(json.dumps(doc))}"
    assert isinstance(doc.get("error"), str), f"{prefix}expected an `error` string: {excerpt(json.dumps(doc))}"
    assert_healthy(address)
    return doc


def details_of(doc):
    details = doc.get("details")
    assert isinstance(details, list) and details, f"expected a non-empty `details` list: {excerpt(json.dumps(doc))}"
    return details


def assert_cut(doc, long_text, where):
    """`long_text` (an offending value or key, far over 64 characters) is quoted nowhere in full:
    at most its first 64 characters, then "…" in the detail message."""
    body = json.dumps(doc, ensure_ascii=False)
    assert long_text[:CUT + 1] not in body, \
        f"{where}: expected the offending text cut to {CUT} characters + '…', got {excerpt(body)}"
    messages = [d.get("msg", "") for d in doc.get("details", [])] + [doc.get("error", "")]
    assert any(long_text[:8] in m and ELLIPSIS in m for m in messages), \
        f"{where}: expected a message quoting the start of the offending text followed by '…', got {excerpt(body)}"


# ---------------------------------------------------------------------------------------------
# Bodies


def v2_input(name, shape, datatype, data=None, **extra):
    entry = {"name": name, "shape": shape, "datatype": datatype, **extra}
    if data is not None:
        entry["data"] = data
    return entry


def v2_iris(shape, data, **extra):
    return {"inputs": [v2_input("float_input", shape, "FP32", data, **extra)]}


def v2_credit(rows, **override):
    """A V2 body for credit from row dicts, one [n, 1] tensor per column; `override` replaces
    whole input entries by name."""
    inputs = []
    for column, datatype in (("age", "FP32"), ("income", "FP32"), ("debt_ratio", "FP32"),
                             ("country", "BYTES"), ("employment", "BYTES")):
        inputs.append(override.get(column) or v2_input(column, [len(rows), 1], datatype, [[r[column]] for r in rows]))
    return {"inputs": inputs}


def rows_with_unknown_keys(count):
    """One iris row with its four features and `count` unknown keys (about 12 bytes each)."""
    known = ",".join(f'"{k}":{v}' for k, v in IRIS_ROW.items())
    unknown = ",".join(f'"k{i:07d}":0' for i in range(count))
    return ('{"instances":[{' + known + "," + unknown + "}]}").encode()


def v2_iris_out_of_range(rows):
    """A V2 iris body of `rows` rows, every value 9, written by hand
    so four million values stay under the 8 MiB body limit."""
    data = ",".join(["9"] * (rows * 4))
    return ('{"inputs":[{"name":"float_input","shape":[' + str(rows) +
            ',4],"datatype":"FP32","data":[' + data + "]}]}").encode()


def nested(depth, inner="1"):
    return "[" * depth + inner + "]" * depth


LONG = 100_000
BIG_CASES = {
    # name: (method, path, body bytes or None)
    "row: 200,000 unknown keys": lambda: ("POST", "/v1/models/iris:predict", rows_with_unknown_keys(200_000)),
    "row: unknown key of 100,000 characters": lambda: (
        "POST", "/v1/models/iris:predict", json.dumps({"instances": [dict(IRIS_ROW, **{"q" * LONG: 1})]}).encode()),
    "row: category value of 1 MB": lambda: (
        "POST", "/v1/models/credit:predict",
        json.dumps({"instances": [dict(CREDIT_ROW, country="A" * 1_000_000)]}).encode()),
    "v2: category value of 1 MB": lambda: (
        "POST", "/v2/models/credit/infer",
        json.dumps(v2_credit([dict(CREDIT_ROW, country="A" * 1_000_000)])).encode()),
    "v2: shape [1000000, 4] of out-of-range values": lambda: (
        "POST", "/v2/models/iris/infer", v2_iris_out_of_range(1_000_000)),
    "v2: input name of 100,000 characters": lambda: (
        "POST", "/v2/models/iris/infer",
        json.dumps({"inputs": [v2_input("n" * LONG, [1, 4], "FP32", IRIS_DATA)]}).encode()),
    "v2: datatype of 100,000 characters": lambda: (
        "POST", "/v2/models/iris/infer",
        json.dumps({"inputs": [v2_input("float_input", [1, 4], "D" * LONG, IRIS_DATA)]}).encode()),
    "v2: output name of 100,000 characters": lambda: (
        "POST", "/v2/models/iris/infer",
        json.dumps(dict(v2_iris([1, 4], IRIS_DATA), outputs=[{"name": "o" * LONG}])).encode()),
    "v2: data nested 100,000 deep": lambda: (
        "POST", "/v2/models/iris/infer",
        ('{"inputs":[{"name":"float_input","shape":[1,4],"datatype":"FP32","data":' + nested(LONG) + "}]}").encode()),
    "v2: whole body nested 100,000 deep": lambda: ("POST", "/v2/models/iris/infer", nested(LONG).encode()),
    "v2: 8,000 inputs of unknown names": lambda: (
        "POST", "/v2/models/iris/infer",
        json.dumps({"inputs": [v2_input(f"x{i}", [1, 4], "FP32", IRIS_DATA) for i in range(8000)]}).encode()),
    "url: model name of 30,000 characters": lambda: ("GET", "/v2/models/" + "m" * 30_000, None),
}
_big_answers = {}


def big_answer(address, case):
    """The answer to BIG_CASES[case], sent once per server and remembered (the largest-answer
    test reuses what the other tests already sent). An exception is remembered too."""
    key = (address, case)
    if key not in _big_answers:
        method, path, body = BIG_CASES[case]()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            _big_answers[key] = request(address, method, path, body, headers, timeout=BIG_TIMEOUT)
        except OSError as err:
            _big_answers[key] = err
    answer = _big_answers[key]
    if isinstance(answer, OSError):
        raise AssertionError(f"{case}: no answer within {BIG_TIMEOUT} s ({type(answer).__name__}: {answer})")
    return answer


# ---------------------------------------------------------------------------------------------
# Servers


@pytest.fixture(scope="module")
def server():
    warden = Warden([str(MODELS)])
    yield warden.address
    warden.stop()


HEADER_TIMEOUT_MS = BODY_TIMEOUT_MS = IDLE_TIMEOUT_MS = 1000
MAX_CONNECTIONS = 8
SHUTDOWN_GRACE_MS = 1000
GUARD_FLAGS = [
    "--header-timeout-ms", str(HEADER_TIMEOUT_MS), "--body-timeout-ms", str(BODY_TIMEOUT_MS),
    "--idle-timeout-ms", str(IDLE_TIMEOUT_MS), "--max-connections", str(MAX_CONNECTIONS),
    "--shutdown-grace-ms", str(SHUTDOWN_GRACE_MS),
]


def start(args):
    """A Warden, or the reason it did not start (so each test fails with it, not errors)."""
    try:
        return Warden(args)
    except AssertionError as err:
        return str(err)


def running(warden, flags):
    if isinstance(warden, str):
        pytest.fail(f"expected `warden serve` to accept {' '.join(flags)}; it did not start: {excerpt(warden)}")
    return warden.address


@pytest.fixture(scope="module")
def guarded():
    """A server with small connection timeouts and a connection cap."""
    warden = start([str(MODELS), *GUARD_FLAGS])
    yield warden
    if not isinstance(warden, str):
        warden.stop()


# ---------------------------------------------------------------------------------------------
# 1. Bounded error answers


def test_200000_unknown_keys_answer_lists_100(server):
    answer = big_answer(server, "row: 200,000 unknown keys")
    doc = expect_error(server, answer, 400, "invalid_input", "row with 200,000 unknown keys")
    details = details_of(doc)
    assert len(details) <= 100, f"expected at most 100 details, got {len(details)}"
    omitted = doc.get("details_omitted")
    assert isinstance(omitted, int) and omitted > 0, \
        f"expected details_omitted > 0, got {omitted!r}: {excerpt(doc.get('error', ''))}"
    assert omitted + len(details) == 200_000, \
        f"expected details + details_omitted == 200000 violations, got {len(details)} + {omitted}"
    assert "200000" in doc["error"], f"expected the error to count 200000 problems, got {doc['error']!r}"
    assert all(d.get("type") == "extra_forbidden" for d in details), \
        f"expected extra_forbidden details, got {excerpt(json.dumps(details[:3]))}"


def test_unknown_key_is_cut_in_loc_and_msg(server):
    key = "q" * LONG
    answer = big_answer(server, "row: unknown key of 100,000 characters")
    doc = expect_error(server, answer, 400, "invalid_input", "unknown key of 100,000 characters")
    details = details_of(doc)
    assert_cut(doc, key, "unknown key of 100,000 characters")
    last = details[0].get("loc", [None])[-1]
    assert isinstance(last, str) and last.endswith(ELLIPSIS) and len(last) <= CUT + 1 \
        and key.startswith(last[:-1]), f"expected loc's key cut to <= {CUT} characters + '…', got {excerpt(repr(last))}"


@pytest.mark.parametrize("case", ["row: category value of 1 MB", "v2: category value of 1 MB"])
def test_one_megabyte_category_value(server, case):
    answer = big_answer(server, case)
    doc = expect_error(server, answer, 400, "invalid_input", case)
    details = details_of(doc)
    assert any(d.get("type") == "category_error" for d in details), \
        f"{case}: expected a category_error detail, got {excerpt(json.dumps(details))}"
    assert_cut(doc, "A" * 1_000_000, case)


def test_batch_size_is_checked_before_values_v2_four_million(server):
    case = "v2: shape [1000000, 4] of out-of-range values"
    answer = big_answer(server, case)
    expect_error(server, answer, 400, "batch_too_large", case)


def test_batch_size_is_checked_before_values_v2_small(server):
    answer = post_json(server, "/v2/models/iris/infer", v2_iris_out_of_range(MAX_REQUEST_ROWS + 1))
    expect_error(server, answer, 400, "batch_too_large", f"v2 shape [{MAX_REQUEST_ROWS + 1}, 4] of out-of-range values")


@pytest.mark.parametrize("case", [
    "v2: input name of 100,000 characters",
    "v2: datatype of 100,000 characters",
    "v2: output name of 100,000 characters",
])
def test_long_v2_strings_are_cut(server, case):
    long_text = {"input": "n", "datatype": "D", "output": "o"}[case.split()[1]] * LONG
    answer = big_answer(server, case)
    doc = expect_error(server, answer, 400, "invalid_input", case)
    assert_cut(doc, long_text, case)


def test_many_unknown_inputs(server):
    case = "v2: 8,000 inputs of unknown names"
    doc = expect_error(server, big_answer(server, case), 400, "invalid_input", case)
    assert len(details_of(doc)) <= 100, f"{case}: expected at most 100 details, got {len(doc['details'])}"


def test_long_model_name_in_url(server):
    case = "url: model name of 30,000 characters"
    doc = expect_error(server, big_answer(server, case), 404, "model_not_found", case)
    # The 64-character rule is for `msg` and `loc`; here only: not echoed in full, and marked cut.
    assert "m" * 30_000 not in doc["error"] and ELLIPSIS in doc["error"], \
        f"{case}: expected the name quoted cut, with '…', got {excerpt(doc['error'])}"


def test_largest_answer_to_any_request_under_the_body_limit(server):
    sizes, failures = {}, []
    for case in BIG_CASES:
        try:
            sizes[case] = big_answer(server, case).length
        except AssertionError as err:
            failures.append(str(err))
    assert not failures, "; ".join(failures)
    largest = max(sizes, key=sizes.get)
    ranked = ", ".join(f"{c}: {n}" for c, n in sorted(sizes.items(), key=lambda kv: -kv[1]))
    assert sizes[largest] < ANSWER_LIMIT, \
        f"expected every answer under {ANSWER_LIMIT} bytes; largest was {largest} ({sizes[largest]}); " \
        f"all: {excerpt(ranked)}"
    assert_healthy(server)


# ---------------------------------------------------------------------------------------------
# 2. Deep nesting and huge shapes


@pytest.mark.parametrize("path,body", [
    ("/v2/models/iris/infer", None),  # data nested 100,000 deep (from BIG_CASES)
    ("/v2/models/iris/infer", nested(LONG)),
    ("/v2/models/iris/infer", "[" * LONG),
    ("/v1/models/iris:predict", '{"instances":' + nested(LONG) + "}"),
    ("/v1/models/iris:predict", '{"a":' * LONG + "1" + "}" * LONG),
], ids=["v2-data", "v2-body", "v2-body-unclosed", "v1-instances", "v1-objects"])
def test_deep_nesting_is_malformed_json(server, path, body):
    if body is None:
        answer = big_answer(server, "v2: data nested 100,000 deep")
    else:
        answer = post_json(server, path, body.encode(), timeout=BIG_TIMEOUT)
    expect_error(server, answer, 400, "malformed_json", f"100,000-deep nesting to {path}")


@pytest.mark.parametrize("shape", [
    [2**62, 2**62], [2**62, 4], [2**61, 4], [2**63 - 1, 4], [2**64, 4], [4, 2**62], [-(2**63), 4],
    [2**31, 2**31, 2**31, 2**31], [1] * 1000,
], ids=lambda s: "x".join(map(str, s[:4])) + ("" if len(s) <= 4 else f"...rank{len(s)}"))
def test_huge_shapes_are_refused(server, shape):
    answer = post_json(server, "/v2/models/iris/infer", v2_iris(shape, IRIS_DATA))
    expect_error(server, answer, 400, ("invalid_input", "batch_too_large"), f"shape {str(shape)[:80]}")


# ---------------------------------------------------------------------------------------------
# 3. Duplicate keys

ROW_JSON = json.dumps(IRIS_ROW)
V2_INPUT_JSON = json.dumps(v2_input("float_input", [1, 4], "FP32", IRIS_DATA))


@pytest.mark.parametrize("path,body", [
    ("/v1/models/iris:predict", '{"instances":[' + ROW_JSON + '],"instances":[' + ROW_JSON + "]}"),
    ("/v1/models/iris:predict",
     '{"instances":[{"sepal_length":5.1,"sepal_length":5.2,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}]}'),
    ("/v2/models/iris/infer", '{"inputs":[' + V2_INPUT_JSON + '],"inputs":[' + V2_INPUT_JSON + "]}"),
    ("/v2/models/iris/infer",
     '{"inputs":[{"name":"float_input","name":"float_input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}'),
], ids=["v1-instances-twice", "v1-feature-twice", "v2-inputs-twice", "v2-name-twice"])
def test_duplicate_keys_are_malformed_json(server, path, body):
    answer = post_json(server, path, body.encode())
    expect_error(server, answer, 400, "malformed_json", f"duplicate key in {excerpt(body, 80)}")


# ---------------------------------------------------------------------------------------------
# 4. Content encoding and content type

V1_BODY = json.dumps({"instances": [IRIS_ROW]}).encode()
V2_BODY = json.dumps(v2_iris([1, 4], IRIS_DATA)).encode()
ROUTES = [("/v1/models/iris:predict", V1_BODY), ("/v2/models/iris/infer", V2_BODY)]


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP", "identity, gzip", "x-unknown"])
@pytest.mark.parametrize("path,body", ROUTES, ids=["v1", "v2"])
def test_content_encoding_other_than_identity_is_415(server, path, body, encoding):
    payload = gzip.compress(body) if "gzip" in encoding.lower() else body
    answer = post_json(server, path, payload, {"Content-Encoding": encoding})
    expect_error(server, answer, 415, "unsupported_media_type", f"Content-Encoding: {encoding} on {path}")


@pytest.mark.parametrize("path,body", ROUTES, ids=["v1", "v2"])
def test_identity_content_encoding_is_served(server, path, body):
    answer = post_json(server, path, body, {"Content-Encoding": "identity"})
    assert answer.status == 200, f"expected 200 with Content-Encoding: identity on {path}, got {answer.show()}"
    assert_healthy(server)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml"])
@pytest.mark.parametrize("path,body", ROUTES, ids=["v1", "v2"])
def test_wrong_content_type_is_415(server, path, body, content_type):
    answer = request(server, "POST", path, body, {"Content-Type": content_type})
    expect_error(server, answer, 415, "unsupported_media_type", f"Content-Type: {content_type} on {path}")


# ---------------------------------------------------------------------------------------------
# 5. Empty batches


@pytest.mark.parametrize("path,body", [
    ("/v2/models/iris/infer", v2_iris([0, 4], [])),
    ("/v2/models/credit/infer", v2_credit([])),
    ("/v1/models/iris:predict", {"instances": []}),
], ids=["v2-iris", "v2-credit", "v1-iris"])
def test_empty_batch_is_invalid_input(server, path, body):
    answer = post_json(server, path, body)
    expect_error(server, answer, 400, "invalid_input", f"empty batch to {path}")


# ---------------------------------------------------------------------------------------------
# 6. Data nesting that disagrees with the shape


@pytest.mark.parametrize("path,body", [
    # 8 values as the shape says, but rows of 5 and 3
    ("/v2/models/iris/infer", v2_iris([2, 4], [[5.1, 3.5, 1.4, 0.2, 5.0], [3.0, 1.4, 0.2]])),
    # 8 values nested [4, 2]
    ("/v2/models/iris/infer", v2_iris([2, 4], [[5.1, 3.5], [1.4, 0.2], [5.0, 3.0], [1.4, 0.2]])),
    # one level too deep
    ("/v2/models/iris/infer", v2_iris([1, 4], [[[5.1, 3.5, 1.4, 0.2]]])),
    # shape [2, 2] with rows of 3 and 1; iris rows are 4 wide, so width_mismatch is as right
    ("/v2/models/iris/infer", v2_iris([2, 2], [[1, 2, 3], [4]])),
    # credit's [2, 1] given as [1, 2]
    ("/v2/models/credit/infer", v2_credit([CREDIT_ROW, CREDIT_ROW],
                                          age=v2_input("age", [2, 1], "FP32", [[30.0, 40.0]]))),
], ids=["iris-ragged-5-3", "iris-4x2", "iris-too-deep", "iris-2x2-ragged", "credit-1x2"])
def test_nesting_that_disagrees_with_shape(server, path, body):
    answer = post_json(server, path, body)
    doc = expect_error(server, answer, 400, "invalid_input", f"ragged data {excerpt(json.dumps(body), 120)}")
    # A shape that is itself the wrong width for the model may be refused for that first.
    allowed = {"shape_mismatch"} | ({"width_mismatch"} if body["inputs"][0]["shape"] == [2, 2] else set())
    assert any(d.get("type") in allowed for d in details_of(doc)), \
        f"expected a {' or '.join(sorted(allowed))} detail, got {excerpt(json.dumps(doc['details']))}"


@pytest.mark.parametrize("data", [IRIS_DATA * 2, [IRIS_DATA, IRIS_DATA]], ids=["flat", "nested"])
def test_data_flat_or_nested_as_the_shape_is_served(server, data):
    answer = post_json(server, "/v2/models/iris/infer", v2_iris([2, 4], data))
    assert answer.status == 200, f"expected 200 for {data}, got {answer.show()}"
    assert_healthy(server)


# ---------------------------------------------------------------------------------------------
# 7. Invalid UTF-8 in the path


@pytest.mark.parametrize("method,target", [
    ("POST", "/v1/models/%FF%FE:predict"),
    ("POST", "/v1/models/iris/versions/%FF:predict"),
    ("GET", "/v2/models/%FF"),
    ("GET", "/v2/models/%FF/ready"),
    ("GET", "/v2/models/iris/versions/%C3%28"),
    ("POST", "/v2/models/%C3%28/infer"),
])
def test_invalid_utf8_in_path_is_json(server, method, target):
    body = {"POST": V1_BODY if target.startswith("/v1") else V2_BODY}.get(method, b"")
    answer = raw_exchange(server, raw_request(method, target, body, {"Content-Type": "application/json"} if body else {}))
    expect_error(server, answer, 400, "invalid_input", f"{method} {target}")


# ---------------------------------------------------------------------------------------------
# 8. Bad binary-extension headers


def binary_body(parameters, data_bytes):
    header = json.dumps({"inputs": [v2_input("float_input", [1, 4], "FP32", parameters=parameters)]}).encode()
    return header, header + data_bytes


FOUR_FLOATS = struct.pack("<4f", *IRIS_DATA)


@pytest.mark.parametrize("header_length,parameters,data_bytes", [
    ("abc", {"binary_data_size": 16}, FOUR_FLOATS),
    ("", {"binary_data_size": 16}, FOUR_FLOATS),
    ("-5", {"binary_data_size": 16}, FOUR_FLOATS),
    ("999999", {"binary_data_size": 16}, FOUR_FLOATS),
    ("18446744073709551616", {"binary_data_size": 16}, FOUR_FLOATS),
    (None, {"binary_data_size": 1000}, FOUR_FLOATS),
    (None, {"binary_data_size": 2**40}, FOUR_FLOATS),
    (None, {"binary_data_size": 2**64}, FOUR_FLOATS),
    (None, {"binary_data_size": -1}, FOUR_FLOATS),
    (None, {"binary_data_size": 15}, FOUR_FLOATS[:15]),
    (None, {"binary_data_size": "16"}, FOUR_FLOATS),
], ids=["length-abc", "length-empty", "length-negative", "length-over-body", "length-overflow",
        "size-over-data", "size-2^40", "size-2^64", "size-negative", "size-not-whole-floats", "size-string"])
def test_bad_binary_extension_is_invalid_input(server, header_length, parameters, data_bytes):
    header, body = binary_body(parameters, data_bytes)
    length = str(len(header)) if header_length is None else header_length
    answer = request(server, "POST", "/v2/models/iris/infer", body,
                     {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": length})
    expect_error(server, answer, 400, "invalid_input",
                 f"Inference-Header-Content-Length {length!r}, parameters {parameters}")


# ---------------------------------------------------------------------------------------------
# 9. Path traversal


@pytest.mark.parametrize("method,target", [
    ("GET", "/v2/models/..%2F..%2Fetc%2Fpasswd"),
    ("GET", "/v2/models/..%2F..%2Fetc%2Fpasswd/ready"),
    ("POST", "/v2/models/..%2F..%2Fetc%2Fpasswd/infer"),
    ("POST", "/v1/models/../../etc/passwd:predict"),
    ("POST", "/v1/models/..%2F..%2Fetc%2Fpasswd:predict"),
    ("GET", "/v2/models/../../../../etc/passwd"),
    ("GET", "/../../../../etc/passwd"),
    ("GET", "/v2/models/iris/versions/..%2F..%2F1"),
    ("GET", "/v2/models/%2e%2e%2f%2e%2e%2firis%2f1%2fmodel.onnx"),
])
def test_path_traversal_is_404(server, method, target):
    body = {"POST": V1_BODY if target.startswith("/v1") else V2_BODY}.get(method, b"")
    answer = raw_exchange(server, raw_request(method, target, body, {"Content-Type": "application/json"} if body else {}))
    expect_error(server, answer, 404, ("model_not_found", "not_found"), f"{method} {target}")
    text = answer.text()
    leaked = [m for m in ("root:", "ai.onnx", "skl2onnx", "ir_version", "\x00") if m in text]
    assert not leaked, f"{method} {target}: the answer shows file content ({leaked}): {answer.show()}"


# ---------------------------------------------------------------------------------------------
# 10. Wrong methods and unknown routes


@pytest.mark.parametrize("method,path", [
    ("DELETE", "/v2/models/iris/infer"),
    ("GET", "/v2/models/iris/infer"),
    ("PUT", "/v2/models/iris/infer"),
    ("GET", "/v1/models/iris:predict"),
    ("DELETE", "/v2/models/iris"),
    ("POST", "/v2/health/ready"),
])
def test_wrong_method_is_405(server, method, path):
    answer = request(server, method, path)
    expect_error(server, answer, 405, "method_not_allowed", f"{method} {path}")


@pytest.mark.parametrize("method,path", [
    ("GET", "/nope"),
    ("POST", "/v3/models/iris/infer"),
    ("GET", "/v2/models/iris/infer/extra"),
    ("POST", "/v1/models/iris:classify"),
    ("GET", "/v2/health"),
    ("GET", "/" + "z" * 2000),
])
def test_unknown_route_is_404(server, method, path):
    body = V1_BODY if method == "POST" else None
    answer = request(server, method, path, body, {"Content-Type": "application/json"} if body else {})
    expect_error(server, answer, 404, "not_found", f"{method} {path[:80]}")


# ---------------------------------------------------------------------------------------------
# 11. Number precision in messages


@pytest.mark.parametrize("number", ["9007199254740993", "-9007199254740993", "18446744073709551615"])
def test_range_error_quotes_the_number_as_sent(server, number):
    body = '{"instances":[{"sepal_length":' + number + ',"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}]}'
    answer = post_json(server, "/v1/models/iris:predict", body.encode())
    doc = expect_error(server, answer, 400, "invalid_input", f"sepal_length {number}")
    detail = next((d for d in details_of(doc) if d.get("loc") == ["instances", 0, "sepal_length"]), None)
    assert detail is not None and detail.get("type") == "range_error", \
        f"expected a range_error at instances/0/sepal_length, got {excerpt(json.dumps(doc['details']))}"
    assert number in detail.get("msg", ""), f"expected {number} in the message, got {detail.get('msg')!r}"


# ---------------------------------------------------------------------------------------------
# 12. Connection handling


def check_timeout_answer(data, where):
    """A connection cut for a timeout may carry an answer first: then 408 request_timeout."""
    if not data:
        return
    answer = parse_answer(data)
    assert answer.status == 408, f"{where}: expected 408 request_timeout if anything, got {answer.show()}"
    doc = assert_bounded_json(answer, where)
    assert doc.get("code") == "request_timeout", f"{where}: expected code request_timeout, got {excerpt(json.dumps(doc))}"


def test_slowloris_header_drip_is_cut(guarded):
    address = running(guarded, GUARD_FLAGS)
    drip = b"GET /v2/health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: " + b"a" * 1000
    within = HEADER_TIMEOUT_MS / 1000 + 2
    served, received, closed_after = [], b"", None
    with connect(address, timeout=TIMEOUT) as sock:
        start = time.monotonic()
        for byte in drip:
            if time.monotonic() - start > within:
                break
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed_after = time.monotonic() - start
                break
            # The drip interval, watching for the server closing the socket meanwhile.
            readable, _, _ = select.select([sock], [], [], 0.2)
            if readable:
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    chunk = b""
                received += chunk
                if not chunk:
                    closed_after = time.monotonic() - start
                    break
            answer = request(address, "GET", "/v2/health/ready", timeout=5)
            served.append(answer.status)
    assert closed_after is not None, \
        f"expected the server to close a header drip within {within} s (header timeout {HEADER_TIMEOUT_MS} ms); " \
        f"still open after {time.monotonic() - start:.1f} s"
    check_timeout_answer(received, "slowloris")
    assert served and all(s == 200 for s in served), \
        f"expected normal requests to succeed during the drip, got statuses {served}"
    assert_healthy(address)


def test_stalled_body_is_cut(guarded):
    address = running(guarded, GUARD_FLAGS)
    within = BODY_TIMEOUT_MS / 1000 + 2
    with connect(address, timeout=TIMEOUT) as sock:
        sock.sendall(b"POST /v1/models/iris:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + b'{"instance')
        start = time.monotonic()
        data, closed = read_until_close(sock, start + within)
    assert closed, f"expected the server to close a stalled body within {within} s " \
                   f"(body timeout {BODY_TIMEOUT_MS} ms); still open, received {excerpt(data)!r}"
    check_timeout_answer(data, "stalled body")
    assert_healthy(address)


def test_idle_keep_alive_is_closed(guarded):
    address = running(guarded, GUARD_FLAGS)
    within = IDLE_TIMEOUT_MS / 1000 + 2
    with connect(address, timeout=TIMEOUT) as sock:
        sock.sendall(raw_request("GET", "/v2/health/ready", close=False))
        deadline = time.monotonic() + TIMEOUT
        data = b""
        while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + int(
                parse_answer(data).headers.get("content-length", "0")):
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            assert chunk, f"expected a keep-alive answer, the server closed after {excerpt(data)!r}"
            data += chunk
        first = parse_answer(data)
        assert first.status == 200, f"expected 200 for the keep-alive request, got {first.show()}"
        start = time.monotonic()
        rest, closed = read_until_close(sock, start + within)
    assert closed, f"expected the server to close an idle keep-alive connection within {within} s " \
                   f"(idle timeout {IDLE_TIMEOUT_MS} ms); still open"
    assert not rest, f"expected nothing more on the idle connection, got {excerpt(rest)!r}"
    assert_healthy(address)


def keep_alive_answered(address):
    """A connection that has had one request answered and stays open, idle."""
    sock = connect(address, timeout=5)
    sock.sendall(raw_request("GET", "/v2/health/live", close=False))
    data = b""
    while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + int(
            parse_answer(data).headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk, f"the server closed a keep-alive connection after {excerpt(data)!r}"
        data += chunk
    assert parse_answer(data).status == 200, excerpt(data)
    return sock


def closed_connections(address, reason):
    metrics = request(address, "GET", "/metrics").text()
    found = [line for line in metrics.splitlines()
             if line.startswith(f'warden_connections_closed_total{{reason="{reason}"}}')]
    return float(found[0].split()[-1]) if found else 0.0


def test_connection_cap_closes_idle_connections_for_real_clients(guarded):
    address = running(guarded, GUARD_FLAGS)
    evicted_before = closed_connections(address, "evicted_idle")
    idle = []
    try:
        for _ in range(20):
            try:
                idle.append(keep_alive_answered(address))
            except OSError as err:
                raise AssertionError(f"expected each keep-alive client served at the cap, got {err}")
        try:
            answer = request(address, "GET", "/v2/health/ready", timeout=10)
        except OSError as err:
            raise AssertionError(f"expected an HTTP answer with 20 idle connections open and "
                                 f"--max-connections {MAX_CONNECTIONS}, got {type(err).__name__}: {err}")
        # At the cap the longest-idle connection (answered, waiting) is closed for the new one.
        assert answer.status == 200, f"expected 200 (an idle connection evicted), got {answer.show()}"
        evicted = closed_connections(address, "evicted_idle") - evicted_before
        assert evicted >= 12, f"expected at least 12 idle connections evicted, got {evicted}"
    finally:
        for sock in idle:
            sock.close()
    assert_healthy(address)


def test_new_connections_are_not_evicted_before_their_first_request():
    """A connection that has not yet sent its request is owed an answer: at the cap it is kept
    (and a newcomer is answered 503), until the header timeout closes it if it stays silent."""
    flags = ["--max-connections", "4", "--header-timeout-ms", "1000"]
    warden = start([str(MODELS), *flags])
    address = running(warden, flags)
    silent = []
    try:
        for _ in range(4):
            silent.append(connect(address, timeout=5))
        # Accepted in order: the newcomer comes after the four are counted.
        with connect(address, timeout=5) as sock:
            sock.sendall(raw_request("GET", "/v2/health/live"))
            raw, _ = read_until_close(sock, time.monotonic() + 5)
        assert raw.startswith(b"HTTP/1.1 503"), f"expected 503 with four new connections at the cap, got {excerpt(raw)!r}"
        for sock in silent:
            sock.setblocking(False)
            try:
                assert sock.recv(1) != b"", "a new connection was closed (evicted) before its first request"
            except BlockingIOError:
                pass  # still open, nothing sent: as it should be
            sock.setblocking(True)
        # Silent past the header timeout: closed, and the cap admits clients again.
        last = poll_ready(address, within=5)
        assert last is None, f"no client admitted after the silent connections' header timeout: {last}"
        assert closed_connections(address, "no_request") >= 4
    finally:
        for sock in silent:
            sock.close()
        warden.stop()


def test_every_client_over_the_cap_reads_its_503():
    """300 clients at a cap of 4 busy connections: each reads a whole 503 `overloaded` answer,
    none a connection reset (the server reads what they sent before it closes)."""
    flags = ["--max-connections", "4", "--body-timeout-ms", "60000"]
    warden = start([str(MODELS), *flags])
    address = running(warden, flags)
    held = []
    try:
        for _ in range(4):
            held.append(busy_connection(address))
        outcomes = {}

        def client(index):
            try:
                with connect(address, timeout=10) as sock:
                    sock.sendall(raw_request("POST", "/v1/models/iris:predict",
                                             json.dumps({"instances": [IRIS_ROW]}).encode(),
                                             {"Content-Type": "application/json"}))
                    raw, closed = read_until_close(sock, time.monotonic() + 10)
                outcomes[index] = raw[:12].decode("latin-1") if closed else "no close"
            except OSError as err:
                outcomes[index] = type(err).__name__

        threads = [threading.Thread(target=client, args=(i,)) for i in range(300)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        counts = {}
        for outcome in outcomes.values():
            counts[outcome] = counts.get(outcome, 0) + 1
        assert counts == {"HTTP/1.1 503": 300}, f"expected 300 whole 503 answers, got {counts}"
    finally:
        for sock in held:
            sock.close()
        warden.stop()


def busy_connection(address):
    """A connection in the middle of a request: `100 Continue` proves its handler waits for the
    body (busy, not idle), with no sleep."""
    sock = connect(address, timeout=5)
    sock.sendall(b"POST /v1/models/iris:predict HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 100\r\n"
                 b"Expect: 100-continue\r\n\r\n")
    seen = b""
    while b"100 Continue" not in seen:
        chunk = sock.recv(1024)
        assert chunk, f"the connection closed before 100 Continue: {excerpt(seen)!r}"
        seen += chunk
    return sock


def test_a_cap_over_the_descriptor_limit_is_warned_about():
    warden = Warden([str(MODELS), "--max-connections", "2000"], prefix=("prlimit", "--nofile=512:512", "--"))
    try:
        warned = [line for line in warden.seen if "more than the open-files limit" in line]
        assert warned, f"expected a warning at start-up, got: {excerpt(''.join(warden.seen))}"
        assert "--max-connections 2000" in warned[0] and "(448," in warned[0], excerpt(warned[0])
    finally:
        warden.stop()


@pytest.mark.parametrize("head, status, code", [
    ("Content-Length: 5\r\nContent-Length: 6", 400, "invalid_input"),
    ("Content-Length: five", 400, "invalid_input"),
    ("Bad Header Name: x", 400, "invalid_input"),
    ("X-Big: " + "a" * 70000, 431, "headers_too_large"),
], ids=["duplicate content-length", "bad content-length", "bad header", "head over 64 KiB"])
def test_answers_hyper_makes_itself_are_json(server, head, status, code):
    raw = (f"POST /v1/models/iris:predict HTTP/1.1\r\nHost: x\r\n{head}\r\n\r\nhello").encode()
    answer = raw_exchange(server, raw)
    expect_error(server, answer, status, code, head[:40])


def test_a_content_length_over_the_limit_is_413_at_once(server):
    with connect(server, timeout=TIMEOUT) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /v1/models/iris:predict HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 99999999\r\n\r\n")
        raw, _ = read_until_close(sock, started + TIMEOUT)
        took = time.monotonic() - started
    answer = parse_answer(raw)
    expect_error(server, answer, 413, "payload_too_large", "Content-Length over the limit")
    assert took < 2, f"expected 413 before any of the body was sent, took {took:.1f} s"


def test_a_busy_cap_answers_503_overloaded():
    """At the cap with no connection idle (each in the middle of a request), a new one is
    refused at once with 503 `overloaded`, not left to hang."""
    flags = ["--max-connections", "2", "--body-timeout-ms", "60000"]
    warden = start([str(MODELS), *flags])
    address = running(warden, flags)
    held = []
    try:
        for _ in range(2):
            held.append(busy_connection(address))
        with connect(address, timeout=5) as sock:
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            raw, _ = read_until_close(sock, time.monotonic() + 5)
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503"), f"expected 503 at a busy cap, got {excerpt(raw)!r}"
        assert b"retry-after: 1" in head.lower(), f"expected Retry-After, got {excerpt(head)!r}"
        assert json.loads(body)["code"] == "overloaded", excerpt(body)
    finally:
        for sock in held:
            sock.close()
        warden.stop()


def test_accepting_goes_on_when_file_descriptors_run_out():
    """With the open-files limit below the connection cap, `accept` fails with EMFILE; warden
    closes an idle connection and accepts again instead of stalling (axum waited a second per
    failure and clients timed out)."""
    flags = ["--max-connections", "1000"]
    warden = Warden([str(MODELS), *flags], prefix=("prlimit", "--nofile=64:64", "--"))
    address = warden.address
    idle = []
    try:
        for _ in range(80):
            try:
                idle.append(connect(address, timeout=5))
            except OSError:
                break
        for _ in range(8):
            answer = request(address, "GET", "/v2/health/ready", timeout=5)
            assert answer.status == 200, f"expected 200 under fd pressure, got {answer.show()}"
        logged = []
        while not warden.lines.empty():
            logged.append(warden.lines.get())
        assert any("accept failed" in line for line in logged), \
            f"expected the descriptor exhaustion to be logged; the test did not reach it: {excerpt(''.join(logged))}"
    finally:
        for sock in idle:
            sock.close()
        warden.stop()


def test_shutdown_cuts_a_half_sent_request_within_grace():
    flags = ["--shutdown-grace-ms", str(SHUTDOWN_GRACE_MS), "--header-timeout-ms", "60000"]
    warden = start([str(MODELS), *flags])
    address = running(warden, flags)
    process = warden.process
    try:
        with connect(address, timeout=TIMEOUT) as sock:
            sock.sendall(b"POST /v1/models/iris:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")
            # Accepted in order: once a later connection is answered, the half-sent one is held.
            assert_healthy(address)
            while not warden.lines.empty():
                warden.seen.append(warden.lines.get())
            process.send_signal(signal.SIGTERM)
            within = SHUTDOWN_GRACE_MS / 1000 + 3
            try:
                code = process.wait(timeout=within)
            except subprocess.TimeoutExpired:
                code = None
        assert code is not None, \
            f"expected warden to exit within {within} s of SIGTERM (grace {SHUTDOWN_GRACE_MS} ms) " \
            f"with a half-sent request open; still running"
        # The log after SIGTERM, read until a line mentions the cut (or the deadline passes).
        after = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any("cut" in line.lower() for line in after):
            try:
                after.append(warden.lines.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                break
        assert code == 0, f"expected exit code 0 after SIGTERM, got {code}: {excerpt(''.join(after[-5:]))}"
        assert any("cut" in line.lower() for line in after), \
            f"expected a log line after SIGTERM about the cut connection, got: {excerpt(''.join(after))}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
