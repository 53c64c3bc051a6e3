"""What the prediction log costs: the light model served with the log off and with it on at
sample 1.0 (every request written to Parquet), side by side in one run, and the bytes a logged
row takes on disk.

Both servers (release binary, ONNX Runtime from bench/.venv) run at once, pinned to the
server's cores, with the load generator (oha) on the others, as bench.py does; cells alternate
between them (the order flips every repetition). Each cell: oha at 16 connections for
BENCH_DURATION seconds (default 5), 1-row V2 JSON requests; medians of BENCH_REPEATS (default
5). Then the logging server is stopped (SIGTERM publishes its files), and the files' bytes are
divided by the rows they hold; its drops are read from /metrics first. The table is printed
and written to bench/PREDICTION_LOG.md (BENCH_OUT names another file).

    bench/.venv/bin/python bench/prediction_log.py      (after bench/run, which builds everything)
"""
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OHA = BENCH / ".tools" / "bin" / "oha"
DURATION = int(os.environ.get("BENCH_DURATION", "5"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
CORES = os.cpu_count() or 1
PIN = os.environ.get("BENCH_PIN", "1") != "0" and CORES >= 2
SERVER_CPUS = f"0-{CORES // 2 - 1}" if PIN else None
LOAD_CPUS = f"{CORES // 2}-{CORES - 1}" if PIN else None
MODEL, FEATURES = "light", 20
PORTS = {"off": 18151, "on": 18152}


def pinned(cpus, command):
    return ["taskset", "-c", cpus, *command] if cpus else command


def get(port, path):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10).read().decode()


def start(config, lib, log_dir):
    root = Path(tempfile.mkdtemp(prefix=f"warden-log-{config}-"))
    shutil.copytree(BENCH / "work" / "models-onnxruntime" / MODEL, root / MODEL)
    env = dict(os.environ, WARDEN_ONNXRUNTIME_LIB=lib, WARDEN_LOG="warn")
    log = ["--prediction-log", str(log_dir), "--prediction-log-sample", "1.0"] if config == "on" else []
    command = pinned(SERVER_CPUS, [str(ROOT / "target" / "release" / "warden"), "serve", str(root),
                                   "--port", str(PORTS[config]), "--grpc-port", "off", *log])
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            get(PORTS[config], "/v2/health/ready")
            return server
        except OSError:
            assert server.poll() is None, f"warden ({config}) exited with {server.returncode}"
            assert time.monotonic() < deadline, f"warden ({config}) was not ready in 60 s"
            time.sleep(0.05)


def oha(port):
    payload = json.dumps({"inputs": [{"name": "float_input", "shape": [1, FEATURES], "datatype": "FP32",
                                      "data": [0.1] * FEATURES}]})
    result = subprocess.run(
        pinned(LOAD_CPUS, [str(OHA), "-z", f"{DURATION}s", "-c", "16", "--no-tui", "--output-format", "json",
                           "-m", "POST", "-H", "content-type: application/json", "-d", payload,
                           f"http://127.0.0.1:{port}/v2/models/{MODEL}/infer"]),
        capture_output=True, text=True, check=True)
    report = json.loads(result.stdout)
    codes = report.get("statusCodeDistribution", {})
    ok = sum(n for code, n in codes.items() if code.startswith("2"))
    assert ok == sum(codes.values()), f"non-2xx answers: {codes}"
    return {"rps": report["summary"]["requestsPerSec"], "p50": report["latencyPercentiles"]["p50"] * 1000,
            "p99": report["latencyPercentiles"]["p99"] * 1000}


def log_counters():
    text = get(PORTS["on"], "/metrics")
    counts = {}
    for line in text.splitlines():
        for name in ("warden_prediction_log_dropped_total", "warden_prediction_log_rows_total"):
            if line.startswith(name + "{"):
                key = name if name.endswith("rows_total") else line.split('reason="')[1].split('"')[0]
                counts[key] = counts.get(key, 0) + int(float(line.split()[-1]))
    return counts


def main():
    import pyarrow.parquet as pq

    lib = glob.glob(str(BENCH / ".venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*"))[0]
    log_dir = Path(tempfile.mkdtemp(prefix="warden-log-files-"))
    servers = {config: start(config, lib, log_dir) for config in PORTS}
    cells = {}
    try:
        order = list(PORTS)
        for config in order:  # warm-up
            oha(PORTS[config])
        for repeat in range(REPEATS):
            for config in (order if repeat % 2 == 0 else order[::-1]):
                figures = oha(PORTS[config])
                cells.setdefault(config, []).append(figures)
                print(config, {k: round(v, 3) for k, v in figures.items()}, flush=True)
        counters = log_counters()
    finally:
        for server in servers.values():
            server.terminate()
            server.wait(timeout=60)
    files = glob.glob(str(log_dir / MODEL / "*.parquet"))
    rows = sum(pq.read_metadata(f).num_rows for f in files)
    size = sum(os.path.getsize(f) for f in files)
    med = {c: {k: statistics.median(cell[k] for cell in cells[c]) for k in ("rps", "p50", "p99")} for c in PORTS}
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    dropped = {k: v for k, v in counters.items() if k != "warden_prediction_log_rows_total" and v}
    text = (
        f"# Prediction log cost (bench/prediction_log.py)\n\n{time.strftime('%Y-%m-%d')} · {platform.uname().release} · "
        f"{cpu} · {CORES} cores · oha, 16 connections, {DURATION} s per cell, medians of {REPEATS}; warden pinned to "
        f"CPUs {SERVER_CPUS}, oha to {LOAD_CPUS}. The light model ({FEATURES} float features, a classifier), 1 row "
        f"per V2 JSON request; `on`: `--prediction-log DIR --prediction-log-sample 1.0`.\n\n"
        "| log | req/s | p50 / p99 ms |\n|---|---|---|\n"
        f"| off | {med['off']['rps']:.0f} | {med['off']['p50']:.2f} / {med['off']['p99']:.2f} |\n"
        f"| on, sample 1.0 | {med['on']['rps']:.0f} | {med['on']['p50']:.2f} / {med['on']['p99']:.2f} |\n\n"
        f"Throughput on / off: **{med['on']['rps'] / med['off']['rps']:.2f}×**. The log wrote {rows} rows in "
        f"{len(files)} files, {size} bytes: **{size / max(rows, 1):.1f} bytes per logged row** (snappy; request id, "
        f"timestamp, latency and {FEATURES} float32 features, label and class probabilities). "
        f"Dropped: {dropped or 'none'}.\n")
    print(text)
    (BENCH / os.environ.get("BENCH_OUT", "PREDICTION_LOG.md")).write_text(text)
    shutil.rmtree(log_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
