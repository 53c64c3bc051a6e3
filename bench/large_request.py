"""One large request against the same rows sent as engine-sized requests: the bench's light model
(20 features), 10,000 rows as one V2 JSON request (cut into batches by the server) and as 157
requests of 64 rows in turn over one kept-alive connection. Checks both give the same labels,
then prints the median of 7 timings of each. The server is pinned to CPU 0, as bench.py pins it.

    bench/.venv/bin/python bench/large_request.py target/release/warden

Needs bench/work (made by bench/run or `bench/.venv/bin/python bench/make_models.py`).
"""

import http.client
import json
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROWS, WIDTH, BATCH = 10_000, 20, 64


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    binary = sys.argv[1]
    lib = next((BENCH / ".venv" / "lib").glob("python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*"))
    port = free_port()
    server = subprocess.Popen(
        ["taskset", "-c", "0", binary, "serve", str(BENCH / "work" / "models-onnxruntime"), "--port", str(port),
         "--grpc-port", "off"],
        env={"WARDEN_ONNXRUNTIME_LIB": str(lib), "WARDEN_LOG": "info", "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                probe.request("GET", "/v2/health/ready")
                if probe.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit("the server did not become ready")
            time.sleep(0.1)
        rng = random.Random(3)
        data = [round(rng.uniform(-2, 2), 4) for _ in range(ROWS * WIDTH)]

        def body(lo, hi):
            return json.dumps({"inputs": [{"name": "float_input", "shape": [hi - lo, WIDTH], "datatype": "FP32",
                                           "data": data[lo * WIDTH:hi * WIDTH]}]})

        whole = body(0, ROWS)
        parts = [body(lo, min(lo + BATCH, ROWS)) for lo in range(0, ROWS, BATCH)]
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def post(text):
            connection.request("POST", "/v2/models/light/infer", text, {"content-type": "application/json"})
            response = connection.getresponse()
            answer = response.read()
            assert response.status == 200, answer[:300]
            return answer

        labels = json.loads(post(whole))["outputs"][0]["data"]
        assert labels == [label for text in parts for label in json.loads(post(text))["outputs"][0]["data"]]

        def timed(work):
            started = time.perf_counter()
            work()
            return (time.perf_counter() - started) * 1000

        one = statistics.median(timed(lambda: post(whole)) for _ in range(7))
        many = statistics.median(timed(lambda: [post(text) for text in parts]) for _ in range(7))
        print(f"{ROWS:,} rows ({len(whole) / 1e6:.2f} MB of V2 JSON): one request {one:.1f} ms; "
              f"{len(parts)} requests of {BATCH} rows in turn {many:.1f} ms ({many / one:.1f}x); same labels")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
