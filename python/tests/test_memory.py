"""What a request body costs in memory, measured on the real binary: the decoders' peak (the
process's resident high-water mark, VmHWM, reset through /proc/PID/clear_refs before each
request) must stay within a small multiple of the body, and after a burst of large bodies the
resident size must come back near where it was.

Every body here is fully decoded: the models' batch limit is raised past the rows sent, and the
last row or element is invalid, so the whole body is parsed and checked (every column built)
before the 400 answer; nothing reaches the engine. A fresh server per case, so memory one case
freed cannot hide what the next one costs.
"""

import http.client
import json
import pathlib
import re
import shutil
import threading
import time

import pytest

from warden_process import MODELS, Warden

MiB = 1 << 20
ROWS_LIMIT = 200_000  # max_request_rows in the copied manifests
PEAK_FACTOR = 4  # the decoders' peak over the resident size before, per byte of body

IRIS_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
CREDIT_ROW = {"age": 56.76, "income": 58644.4, "debt_ratio": 1.16, "country": "IN", "employment": "salaried"}


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    """iris and credit with the batch limit raised to ROWS_LIMIT (and no pinned hash to break:
    the graphs are unchanged)."""
    root = tmp_path_factory.mktemp("models")
    for name in ("iris", "credit"):
        shutil.copytree(MODELS / name, root / name)
        manifest = root / name / "warden.toml"
        text = manifest.read_text()
        text = re.sub(r"max_request_rows = \d+", f"max_request_rows = {ROWS_LIMIT}", text)
        text = re.sub(r"queue_capacity = \d+", f"queue_capacity = {ROWS_LIMIT}", text)
        manifest.write_text(text)
    return root


def status(warden):
    found = {}
    with open(f"/proc/{warden.process.pid}/status") as lines:
        for line in lines:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) / 1024
    return found


def post(warden, path, body):
    host, port = warden.address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def rows_body(row, bad, count):
    return json.dumps({"instances": [row] * (count - 1) + [bad]}).encode()


def v2_body(inputs):
    return json.dumps({"inputs": inputs}).encode()


def cases():
    n = 100_000
    iris_arrays = rows_body(list(IRIS_ROW.values()), [5.1, 3.5, 1.4, "x"], 2 * n)
    iris_objects = rows_body(IRIS_ROW, {**IRIS_ROW, "petal_width": "x"}, n)
    credit_objects = rows_body(CREDIT_ROW, {**CREDIT_ROW, "country": 3}, n // 2 + 10_000)
    iris_v2 = v2_body([{"name": "float_input", "shape": [2 * n, 4], "datatype": "FP32",
                        "data": list(IRIS_ROW.values()) * (2 * n - 1) + [5.1, 3.5, 1.4, "x"]}])
    rows = n // 2 + 10_000
    credit_v2 = v2_body([
        {"name": "age", "shape": [rows, 1], "datatype": "FP32", "data": [56.76] * rows},
        {"name": "income", "shape": [rows, 1], "datatype": "FP32", "data": [58644.4] * rows},
        {"name": "debt_ratio", "shape": [rows, 1], "datatype": "FP32", "data": [1.16] * rows},
        {"name": "country", "shape": [rows, 1], "datatype": "BYTES", "data": ["IN"] * (rows - 1) + [3]},
        {"name": "employment", "shape": [rows, 1], "datatype": "BYTES", "data": ["salaried"] * rows},
    ])
    return [
        ("iris rows as arrays", "/v1/models/iris:predict", iris_arrays),
        ("iris rows as objects", "/v1/models/iris:predict", iris_objects),
        ("credit rows as objects", "/v1/models/credit:predict", credit_objects),
        ("iris V2 JSON", "/v2/models/iris/infer", iris_v2),
        ("credit V2 JSON", "/v2/models/credit/infer", credit_v2),
    ]


@pytest.mark.parametrize("name, path, body", cases(), ids=[case[0] for case in cases()])
def test_decoding_a_body_peaks_within_four_times_its_size(repository, name, path, body):
    warden = Warden([str(repository), "--max-body-bytes", str(16 * MiB)])
    try:
        with open(f"/proc/{warden.process.pid}/clear_refs", "w") as clear:
            clear.write("5")  # reset the high-water mark to the resident size now
        before = status(warden)["VmRSS"]
        code, answer = post(warden, path, body)
        peak = status(warden)["VmHWM"]
        assert code == 400 and json.loads(answer)["code"] == "invalid_input", \
            f"{name}: expected the last element refused after a full decode, got {code} {answer[:200]!r}"
        size = len(body) / MiB
        grown = peak - before
        print(f"{name}: body {size:.1f} MiB, peak +{grown:.1f} MiB ({grown / size:.2f}x)")
        assert grown <= PEAK_FACTOR * size, \
            f"{name}: decoding a {size:.1f} MiB body took the resident size up {grown:.1f} MiB " \
            f"({grown / size:.1f}x; the bound is {PEAK_FACTOR}x)"
    finally:
        warden.stop()


def test_memory_comes_back_after_a_burst():
    """Eight 8 MB row bodies at once against the example models as shipped (the case that left
    700 MB resident): a few seconds later the resident size is within twice what it was before
    the burst."""
    warden = Warden([str(MODELS), "--max-body-bytes", str(16 * MiB)])
    try:
        body = rows_body(CREDIT_ROW, CREDIT_ROW, 80_000)
        assert len(body) > 7 * MiB
        assert post(warden, "/v1/models/credit:predict", rows_body(CREDIT_ROW, CREDIT_ROW, 10))[0] == 200
        before = status(warden)["VmRSS"]
        answers = []
        threads = [threading.Thread(target=lambda: answers.append(
            post(warden, "/v1/models/credit:predict", body)[0])) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers == [400] * 8, f"expected eight batch_too_large answers, got {answers}"
        peak = status(warden)["VmHWM"]
        deadline = time.monotonic() + 5
        after = status(warden)["VmRSS"]
        while after > 2 * before and time.monotonic() < deadline:
            time.sleep(0.25)  # poll interval of a deadline-bounded poll
            after = status(warden)["VmRSS"]
        print(f"burst: before {before:.0f} MiB, peak {peak:.0f} MiB, after {after:.0f} MiB")
        assert after <= 2 * before, \
            f"resident size {after:.0f} MiB 5 s after the burst, more than twice the {before:.0f} MiB before"
    finally:
        warden.stop()
