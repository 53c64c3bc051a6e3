"""Runs the benchmark: warden (ONNX Runtime and tract backends), the Flask + gunicorn baseline
(joblib, and onnxruntime), MLServer (the KServe V2 peer), and a fixed-response server (the HTTP
ceiling), on the same models and machine, interleaved, with oha; prints one table with medians
and ratios and writes it to bench/RESULTS.md. BENCH_DURATION (seconds per cell, default 10) and
BENCH_REPEATS (default 3) shorten it. A/B of two builds: BENCH_BASELINE=/path/to/other/warden
adds it as warden-ort-baseline; BENCH_SERVERS=warden-ort,warden-ort-baseline runs only those (and
no overload run); BENCH_OUT names the report file instead of RESULTS.md. The same binary as
BENCH_BASELINE is an A/A run: the spread of its ratios is the noise band an A/B is read against.
Servers take turns going first in each cell (the order flips every repetition).

Fairness: with two cores or more, every server runs pinned (taskset) to the first half of the
cores and the load generator to the other half (BENCH_PIN=0 turns that off), so no server's
figures are the load generator fighting it for a core; and each cell's server CPU time (its
whole process tree's utime + stime from /proc, before and after) is divided by the answers it
gave, for every server alike. `warden-ort-current` is warden on the newest onnxruntime wheel
(bench/.venv-ort-current, upgraded on every bench/run), beside `warden-ort` on the pinned one.
The engine's limit (the pinned onnxruntime called in a loop in-process on the server's cores)
is measured per model and batch size and set beside warden's served rows/s;
BENCH_ONLY=engine measures only that. Every warden serves gRPC on a free port beside HTTP (idle
but for the protocols table: 32-row requests over gRPC, REST JSON and REST binary, driven by
bench/loadgen; BENCH_ONLY=protocols runs only that).

`mlserver` is MLServer with mlserver-sklearn (bench/.venv-mlserver, from
requirements-mlserver.txt, with the same scikit-learn as .venv) serving the joblib files
flask-joblib serves, both models in one process, from a model repository this script writes to
bench/work/mlserver (settings.json, and a model-settings.json per model). HTTP on a free port; its
gRPC server, which it always starts, and its metrics server (on by default, as warden's /metrics
is) on free ports of their own; debug off, so no access-log line per request (as MLServer and
gunicorn run by default), while warden runs at its default WARDEN_LOG=info, with its access log,
as its users run it (its stderr goes to /dev/null, as every server's does). It takes warden's
request body unchanged: one FP32 input without a content_type parameter decodes to one numpy
array. Its model-settings set predict_fn to
predict_proba, so it answers the class probabilities, computed once per request as in warden's
one ONNX run (the default, predict, would answer the labels only; the labels are the
probabilities' argmax). Workers: with one server core (a 2-core machine) parallel_workers is 0, so
inference runs in the one process that serves HTTP; a worker process on the same core only adds a
pickle-and-pipe hop per request and a second process fighting for that core (1 or 2 workers gave
about half the light model's req/s of 0 here). With more server cores, one inference worker per
core (MLServer's own advice), beside its one HTTP process. check_mlserver compares its answers
with warden's (with the joblib model's when no warden runs) before the cells."""

import datetime
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "work"
OHA = BENCH / ".tools" / "bin" / "oha"
DURATION = int(os.environ.get("BENCH_DURATION", "10"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
CORES = os.cpu_count() or 1
FEATURES = {"light": 20, "heavy": 30}
PIN = os.environ.get("BENCH_PIN", "1") != "0" and CORES >= 2
SERVER_CPUS = f"0-{CORES // 2 - 1}" if PIN else None
LOAD_CPUS = f"{CORES // 2}-{CORES - 1}" if PIN else None
SERVER_CORES = CORES // 2 if PIN else CORES
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MLSERVER = BENCH / ".venv-mlserver" / "bin" / "mlserver"
MLSERVER_WORKERS = 0 if SERVER_CORES == 1 else SERVER_CORES


def pinned(cpus, command):
    return ["taskset", "-c", cpus, *command] if cpus else command


def process_tree(pid):
    """The process and all its descendants that are still alive, as pids."""
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        yield current
        todo.extend(int(c) for c in children)


def tree_cpu_seconds(pid):
    """User + system CPU time of a process and all its descendants, from /proc."""
    total = 0
    for current in process_tree(pid):
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
    return total / CLOCK_TICKS


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_status_kib(pid, field):
    """A memory figure of /proc/PID/status (VmRSS, VmHWM), in KiB, summed over a process and all
    its descendants."""
    total = 0
    for current in process_tree(pid):
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(l for l in status.splitlines() if l.startswith(field + ":")).split()[1])
        except (FileNotFoundError, StopIteration, ProcessLookupError):
            pass
    return total


def tree_rss_kib(pid):
    """Resident memory of a process and all its descendants."""
    return tree_status_kib(pid, "VmRSS")


def reset_peak(pid):
    """Resets each process's high-water mark to its resident size now (clear_refs 5), so a later
    tree_peak_kib is the peak since this call."""
    for current in process_tree(pid):
        try:
            Path(f"/proc/{current}/clear_refs").write_text("5")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass


def tree_peak_kib(pid):
    """Peak resident memory (VmHWM) of a process and its descendants, summed: an upper bound on
    the tree's peak, since the processes need not peak at once."""
    return tree_status_kib(pid, "VmHWM")


def wait_ready(url, process, strict=False, limit=120):
    """Until the server answers at url: any answer under 500 (e.g. 404 for a route it does not
    have), or with strict only a 2xx (MLServer's /v2/health/ready says 400 while models load). The
    limit is generous: MLServer's first start in a fresh venv took 34 s on a busy 2-core machine."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"server exited with {process.returncode} before it was ready: {url}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as error:
            if error.code < 500 and not strict:
                return  # answering: e.g. 404 for a route it does not have
            time.sleep(0.005)
        except OSError:
            time.sleep(0.005)
    sys.exit(f"not ready within {limit}s: {url}")


class Server:
    """A server process. In its command and env values `{port}` is the port it serves on and each
    `{free}` another free port (e.g. for a second listener it cannot be told not to open)."""

    def __init__(self, label, command, env, ready_path, models, strict_ready=False):
        self.label, self.command, self.env, self.ready_path, self.models = label, command, env, ready_path, models
        self.strict_ready = strict_ready
        self.process, self.port, self.startup_ms, self.rss_kib = None, None, None, None
        # The highest resident memory seen during any 64-connection cell.
        self.peak_kib = 0

    def start(self):
        self.port = free_port()

        def fill(text):
            text = text.replace("{port}", str(self.port))
            while "{free}" in text:
                text = text.replace("{free}", str(free_port()), 1)
            return text

        command = [fill(part) for part in self.command]
        env = dict(os.environ, **{name: fill(value) for name, value in self.env.items()})
        started = time.monotonic()
        self.process = subprocess.Popen(pinned(SERVER_CPUS, command), env=env, cwd=BENCH, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_ready(f"http://127.0.0.1:{self.port}{self.ready_path}", self.process, self.strict_ready)
        self.startup_ms = (time.monotonic() - started) * 1000

    def stop(self):
        if self.process and self.process.poll() is None:
            children = list(process_tree(self.process.pid))[1:]
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            for child in children:  # e.g. worker processes a killed server left behind
                try:
                    os.kill(child, 9)
                except ProcessLookupError:
                    pass


def body(model, rows):
    rng = random.Random(rows * 31 + FEATURES[model])
    width = FEATURES[model]
    data = [round(rng.uniform(-2, 2), 4) for _ in range(rows * width)]
    return json.dumps({"inputs": [{"name": "float_input", "shape": [rows, width], "datatype": "FP32", "data": data}]})


def oha(url, payload, concurrency):
    result = subprocess.run(
        pinned(LOAD_CPUS, [str(OHA), "-z", f"{DURATION}s", "-c", str(concurrency), "--no-tui", "--output-format",
                           "json", "-m", "POST", "-H", "content-type: application/json", "-d", payload, url]),
        capture_output=True, text=True, check=True)
    report = json.loads(result.stdout)
    codes = report.get("statusCodeDistribution", {})
    ok = sum(n for code, n in codes.items() if code.startswith("2"))
    total = sum(codes.values()) or 1
    rps = report["summary"]["requestsPerSec"] * ok / total
    p50 = report["latencyPercentiles"]["p50"] * 1000
    p99 = report["latencyPercentiles"]["p99"] * 1000
    return rps, p50, p99, codes, ok


def mlserver_repository():
    """MLServer's model repository in bench/work/mlserver: server settings (ports come from the
    environment, as settings.json would override it) and one model-settings.json per model."""
    root = WORK / "mlserver"
    settings = {"debug": False, "host": "127.0.0.1", "parallel_workers": MLSERVER_WORKERS,
                "metrics_dir": str(root / ".metrics"), "environments_dir": str(root / ".envs")}
    root.mkdir(parents=True, exist_ok=True)
    (root / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    for model in FEATURES:
        (root / model).mkdir(exist_ok=True)
        (root / model / "model-settings.json").write_text(json.dumps({
            "name": model, "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": str(WORK / f"{model}.joblib"), "extra": {"predict_fn": "predict_proba"}},
        }, indent=2) + "\n")
    return root


def infer(port, model, payload):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/{model}/infer", data=payload.encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def check_mlserver(server, warden):
    """MLServer's answers to 4 rows of each model against warden's (or, when no warden runs, the
    joblib model's, in this process): the same labels (the argmax of its probabilities) and the
    same probabilities to 1e-4 (warden's ONNX runs in float32)."""
    for model in FEATURES:
        rows, payload = 4, body(model, 4)
        outputs = {o["name"]: o["data"] for o in infer(server.port, model, payload)["outputs"]}
        probabilities = outputs["predict_proba"]
        width = len(probabilities) // rows
        labels = [max(range(width), key=lambda c: probabilities[r * width + c]) for r in range(rows)]
        if warden:
            expected = {o["name"]: o["data"] for o in infer(warden.port, model, payload)["outputs"]}
            want_labels, want_probabilities, source = expected["label"], expected["probabilities"], warden.label
        else:
            import joblib
            import numpy
            estimator = joblib.load(WORK / f"{model}.joblib")
            x = numpy.asarray(json.loads(payload)["inputs"][0]["data"], dtype=numpy.float32).reshape(rows, -1)
            want_labels = estimator.predict(x).tolist()
            want_probabilities, source = estimator.predict_proba(x).ravel().tolist(), f"{model}.joblib"
        close = len(probabilities) == len(want_probabilities) and all(
            abs(a - b) <= 1e-4 for a, b in zip(probabilities, want_probabilities))
        if labels != want_labels or not close:
            sys.exit(f"mlserver answers {model} unlike {source}: labels {labels} vs {want_labels}, "
                     f"probabilities {probabilities} vs {want_probabilities}")
        print(f"mlserver {model}: labels {labels} and probabilities as {source}'s", flush=True)


ENGINE_LOOP = """
import sys, time, numpy as np, onnxruntime as ort
path, rows, width, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
x = np.random.default_rng(rows).uniform(-2, 2, size=(rows, width)).astype(np.float32)
for _ in range(50):
    session.run(None, {"float_input": x})
calls, started = 0, time.perf_counter()
while time.perf_counter() - started < seconds:
    session.run(None, {"float_input": x})
    calls += 1
print(calls * rows / (time.perf_counter() - started))
"""


def engine_limit():
    """Rows/s of the pinned onnxruntime called in a loop in-process (one thread, on the server's
    cores), per model and batch size: the physical limit a server of that engine can approach.
    Python's call overhead (~10 µs) is in it, so at 1 row it understates the engine."""
    limits = {}
    for model, width in FEATURES.items():
        for rows in (1, 32):
            result = subprocess.run(
                pinned(SERVER_CPUS, [str(BENCH / ".venv" / "bin" / "python"), "-c", ENGINE_LOOP,
                                     str(WORK / f"{model}.onnx"), str(rows), str(width), str(DURATION)]),
                capture_output=True, text=True, check=True)
            limits[(model, rows)] = float(result.stdout.strip())
            print(f"engine {model} rows={rows}: {limits[(model, rows)]:.0f} rows/s", flush=True)
    return limits


LOADGEN = BENCH / "loadgen" / "target" / "release" / "loadgen"


def protocols(warden, lib):
    """Rows/s of 32-row requests to warden-ort over gRPC (raw contents, as tritonclient.grpc
    sends), REST JSON and REST binary (Triton's binary extension), driven by one load loop
    (bench/loadgen) for all three so the client is the same; interleaved, medians."""
    grpc_port = free_port()
    server = Server("warden-ort protocols", [warden, "serve", str(WORK / "models-onnxruntime"), "--port", "{port}",
                                             "--grpc-port", str(grpc_port)],
                    {"WARDEN_ONNXRUNTIME_LIB": str(lib), "WARDEN_LOG": "info"}, "/v2/health/ready", None)
    server.start()
    cells = {}
    modes = ("grpc", "rest-json", "rest-binary")
    try:
        for repeat in range(REPEATS):
            for model, width in FEATURES.items():
                for concurrency in (8, 64):
                    for mode in modes:
                        port = grpc_port if mode == "grpc" else server.port
                        result = subprocess.run(
                            pinned(LOAD_CPUS, [str(LOADGEN), mode, f"127.0.0.1:{port}", model, "32", str(width),
                                               str(concurrency), str(DURATION)]),
                            capture_output=True, text=True, check=True)
                        figures = json.loads(result.stdout)
                        assert figures["ok"] == figures["requests"], f"{mode} {model}: failed answers {figures}"
                        cells.setdefault((model, concurrency, mode), []).append(figures)
                        print(f"rep {repeat} protocols {model} c={concurrency} {mode}: "
                              f"{figures['rows_per_s']:.0f} rows/s p99 {figures['p99_ms']:.2f} ms", flush=True)
    finally:
        server.stop()
    lines = ["| model | rows | conc | " + " | ".join(f"{m} rows/s (p50 / p99 ms)" for m in modes)
             + " | grpc / rest-json | rest-binary / rest-json |", "|" + "---|" * (3 + len(modes) + 2)]
    for model in FEATURES:
        for concurrency in (8, 64):
            median = {m: {key: statistics.median(c[key] for c in cells[(model, concurrency, m)])
                          for key in ("rows_per_s", "p50_ms", "p99_ms")} for m in modes}
            lines.append(f"| {model} | 32 | {concurrency} | " + " | ".join(
                f"{median[m]['rows_per_s']:.0f} ({median[m]['p50_ms']:.2f} / {median[m]['p99_ms']:.1f})" for m in modes)
                + f" | {median['grpc']['rows_per_s'] / median['rest-json']['rows_per_s']:.2f}×"
                + f" | {median['rest-binary']['rows_per_s'] / median['rest-json']['rows_per_s']:.2f}× |")
    return ("Protocols: warden-ort, 32-row requests, rows/s of successful answers, one load loop "
            "(bench/loadgen, Rust: tonic for gRPC, reqwest for REST) for all three, interleaved; "
            "gRPC sends raw_input_contents as tritonclient.grpc does:\n\n" + "\n".join(lines))


def overload(warden, lib):
    """Far more connections than the queue holds: every answer must be a 200 or a 503 with
    Retry-After, with no connection errors."""
    server = Server("warden-ort overload", [warden, "serve", str(WORK / "models-overload"), "--port", "{port}", "--grpc-port", "{free}"],
                    {"WARDEN_ONNXRUNTIME_LIB": str(lib), "WARDEN_LOG": "info"}, "/v2/health/ready", None)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/v2/models/heavy/infer"
        result = subprocess.run(
            pinned(LOAD_CPUS, [str(OHA), "-z", f"{DURATION}s", "-c", "256", "--no-tui", "--output-format", "json",
                               "-m", "POST", "-H", "content-type: application/json", "-d", body("heavy", 1), url]),
            capture_output=True, text=True, check=True)
        report = json.loads(result.stdout)
        codes = report.get("statusCodeDistribution", {})
        errors = report.get("errorDistribution", {})
        p99 = report["latencyPercentiles"]["p99"] * 1000
        return (f"Overload: heavy model, queue of 16, 256 connections, {DURATION} s: status codes {codes}, "
                f"connection errors {errors or 'none'}, p99 of all answers {p99:.1f} ms.")
    finally:
        server.stop()


def main():
    lib = next((BENCH / ".venv" / "lib").glob("python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*"))
    warden = str(ROOT / "target" / "release" / "warden")
    gunicorn = str(BENCH / ".venv" / "bin" / "gunicorn")
    workers = str(2 * SERVER_CORES + 1)
    current = next((BENCH / ".venv-ort-current" / "lib").glob("python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*"),
                   None)
    servers = {
        "ceiling": [Server("ceiling", [str(BENCH / "ceiling" / "target" / "release" / "ceiling"), "{port}"], {}, "/", None)],
        "warden-ort": [Server("warden-ort", [warden, "serve", str(WORK / "models-onnxruntime"), "--port", "{port}", "--grpc-port", "{free}"],
                              {"WARDEN_ONNXRUNTIME_LIB": str(lib), "WARDEN_LOG": "info"}, "/v2/health/ready", None)],
        "warden-tract": [Server("warden-tract", [warden, "serve", str(WORK / "models-tract"), "--port", "{port}", "--grpc-port", "{free}"],
                                {"WARDEN_ONNXRUNTIME_LIB": str(lib), "WARDEN_LOG": "info"}, "/v2/health/ready", None)],
    }
    for variant, env_of in (("flask-joblib", lambda m: {"MODEL_PATH": str(WORK / f"{m}.joblib")}),
                            ("flask-ort", lambda m: {"BACKEND": "onnxruntime", "ONNX_PATH": str(WORK / f"{m}.onnx")})):
        servers[variant] = [Server(f"{variant}-{m}", [gunicorn, "-w", workers, "-b", "127.0.0.1:{port}", "-k", "sync",
                                                       "--log-level", "warning", "flask_app:app"], env_of(m), "/", m)
                            for m in FEATURES]
    if current:
        # What users install today: the newest onnxruntime wheel, not the project's pin.
        servers["warden-ort-current"] = [Server(
            "warden-ort-current", [warden, "serve", str(WORK / "models-onnxruntime"), "--port", "{port}", "--grpc-port", "{free}"],
            {"WARDEN_ONNXRUNTIME_LIB": str(current), "WARDEN_LOG": "info"}, "/v2/health/ready", None)]
    # The same server on manifests with a training baseline: what drift monitoring costs.
    servers["warden-ort-drift"] = [Server(
        "warden-ort-drift", [str(warden), "serve", str(WORK / "models-drift"), "--port", "{port}", "--grpc-port", "{free}"],
        {"WARDEN_ONNXRUNTIME_LIB": str(lib), "WARDEN_LOG": "info"}, "/v2/health/ready", None)]
    mlserver_version = next((d.name.removesuffix(".dist-info").split("-")[1] for d in
                             (BENCH / ".venv-mlserver" / "lib").glob("python3*/site-packages/mlserver-*.dist-info")),
                            None)
    if MLSERVER.exists():
        # The KServe V2 peer: MLServer + mlserver-sklearn on the joblib files, both models in one process.
        servers["mlserver"] = [Server(
            "mlserver", [str(MLSERVER), "start", str(mlserver_repository())],
            {"MLSERVER_HTTP_PORT": "{port}", "MLSERVER_GRPC_PORT": "{free}", "MLSERVER_METRICS_PORT": "{free}"},
            "/v2/health/ready", None, strict_ready=True)]
    baseline = os.environ.get("BENCH_BASELINE")
    if baseline:
        # Another warden binary (e.g. main before a change) on the same models, interleaved.
        servers["warden-ort-baseline"] = [Server(
            "warden-ort-baseline", [baseline, "serve", str(WORK / "models-onnxruntime"), "--port", "{port}"],
            {"WARDEN_ONNXRUNTIME_LIB": str(lib), "WARDEN_LOG": "info"}, "/v2/health/ready", None)]
    only = [name for name in os.environ.get("BENCH_SERVERS", "").split(",") if name]
    if only:
        if "mlserver" in only and "mlserver" not in servers:
            sys.exit(f"no {MLSERVER}: bench/run installs it (bench/.venv-mlserver)")
        servers = {name: group for name, group in servers.items() if name in only}
    every = [s for group in servers.values() for s in group]
    if os.environ.get("BENCH_ONLY") == "overload":
        print(overload(warden, lib))
        return
    if os.environ.get("BENCH_ONLY") == "engine":
        engine_limit()
        return
    if os.environ.get("BENCH_ONLY") == "protocols":
        print(protocols(warden, lib))
        return
    try:
        for server in every:
            server.start()
            # Warm up and load every model, then measure memory with everything resident.
            for model in ([server.models] if server.models else list(FEATURES)):
                request = urllib.request.Request(f"http://127.0.0.1:{server.port}/v2/models/{model}/infer",
                                                 data=body(model, 1).encode(), headers={"content-type": "application/json"})
                urllib.request.urlopen(request).read()
            server.rss_kib = tree_rss_kib(server.process.pid)
            print(f"{server.label}: ready in {server.startup_ms:.0f} ms, RSS {server.rss_kib / 1024:.0f} MiB", flush=True)
        if "mlserver" in servers:
            check_mlserver(servers["mlserver"][0], next((s for s in every if s.label.startswith("warden")), None))
        cells = {}
        for repeat in range(REPEATS):
            for model in FEATURES:
                for rows in (1, 32):
                    for concurrency in (1, 8, 64):
                        payload = body(model, rows)
                        # Alternate which server goes first in each repetition: with a fixed
                        # order one binary against itself measured 0.95-1.06x per cell (AA-27.md).
                        order = list(servers.items())
                        for name, group in (order if repeat % 2 == 0 else order[::-1]):
                            server = next(s for s in group if s.models in (None, model))
                            url = f"http://127.0.0.1:{server.port}/v2/models/{model}/infer"
                            cpu_before = tree_cpu_seconds(server.process.pid)
                            if concurrency == 64:
                                reset_peak(server.process.pid)
                            rps, p50, p99, codes, ok = oha(url, payload, concurrency)
                            if concurrency == 64:
                                server.peak_kib = max(server.peak_kib, tree_peak_kib(server.process.pid))
                            cpu_us = (tree_cpu_seconds(server.process.pid) - cpu_before) / max(ok, 1) * 1e6
                            cells.setdefault((model, rows, concurrency, name), []).append((rps, p50, p99, cpu_us))
                            print(f"rep {repeat} {model} rows={rows} c={concurrency} {name}: {rps:.0f} req/s "
                                  f"p50 {p50:.2f} ms p99 {p99:.2f} ms cpu {cpu_us:.0f} us/req {codes}", flush=True)
    finally:
        for server in every:
            server.stop()
    overloaded = overload(warden, lib) if not only else ""
    protocol_table = protocols(warden, lib) if (not only or os.environ.get("BENCH_PROTOCOLS")) else ""
    limits = engine_limit()
    names = list(servers)
    ratios = [(a, b) for a, b in (("warden-ort", "flask-joblib"), ("warden-ort", "flask-ort"),
                                  ("warden-ort", "mlserver"), ("warden-ort", "ceiling"),
                                  ("warden-ort", "warden-ort-baseline"),
                                  ("warden-ort-drift", "warden-ort"), ("warden-ort-current", "warden-ort"))
              if a in names and b in names]
    header = ["model", "rows", "conc"] + [f"{n} req/s (p50 / p99 ms)" for n in names] + [f"{a} / {b}" for a, b in ratios]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    cpu_header = ["model", "rows", "conc"] + [f"{n} µs" for n in names]
    if "ceiling" in names:
        cpu_header += [f"{n} / ceiling" for n in names if n.startswith("warden")]
    cpu_lines = ["| " + " | ".join(cpu_header) + " |", "|" + "---|" * len(cpu_header)]
    for model in FEATURES:
        for rows in (1, 32):
            for concurrency in (1, 8, 64):
                medians = {n: (statistics.median(r[0] for r in cells[(model, rows, concurrency, n)]),
                               statistics.median(r[2] for r in cells[(model, rows, concurrency, n)]),
                               statistics.median(r[1] for r in cells[(model, rows, concurrency, n)])) for n in names}
                ratio = lambda a, b: f"{medians[a][0] / medians[b][0]:.2f}×" if medians[b][0] else "n/a"
                row = [model, str(rows), str(concurrency)] + [f"{medians[n][0]:.0f} ({medians[n][2]:.2f} / {medians[n][1]:.1f})"
                                                              for n in names]
                row += [ratio(a, b) for a, b in ratios]
                lines.append("| " + " | ".join(row) + " |")
                cpu = {n: statistics.median(r[3] for r in cells[(model, rows, concurrency, n)]) for n in names}
                cpu_row = [model, str(rows), str(concurrency)] + [f"{cpu[n]:.0f}" for n in names]
                if "ceiling" in cpu and cpu["ceiling"]:
                    cpu_row += [f"{cpu[n] / cpu['ceiling']:.2f}×" for n in names if n.startswith("warden")]
                cpu_lines.append("| " + " | ".join(cpu_row) + " |")
    engine = ["| model | rows | engine in-process rows/s | " + " | ".join(f"{n} rows/s (share)" for n in names
                                                                   if n.startswith("warden")) + " |",
              "|" + "---|" * (3 + sum(n.startswith("warden") for n in names))]
    for (model, rows), limit in limits.items():
        served = [statistics.median(r[0] for r in cells[(model, rows, 64, n)]) * rows
                  for n in names if n.startswith("warden")]
        engine.append(f"| {model} | {rows} | {limit:.0f} | " + " | ".join(f"{v:.0f} ({v / limit:.2f}×)" for v in served) + " |")
    memory = ["| server | exec to ready (ms) | resident memory at rest, whole process tree (MiB) | "
              "peak during the 64-connection cells (MiB) |", "|---|---|---|---|"]
    memory += [f"| {s.label} | {s.startup_ms:.0f} | {s.rss_kib / 1024:.0f} | {s.peak_kib / 1024:.0f} |"
               for s in every]
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    report = (f"# Benchmark results\n\n{datetime.date.today()} · {platform.uname().system} "
              f"{platform.uname().release} · {cpu} · {CORES} cores · oha, {DURATION} s per cell, "
              f"{REPEATS} interleaved repetitions, medians; gunicorn with {workers} sync workers"
              + (f"; MLServer with parallel_workers={MLSERVER_WORKERS}" if "mlserver" in names else "") + ". "
              + (f"Every server pinned to CPUs {SERVER_CPUS}, the load generator to {LOAD_CPUS} (taskset).\n\n"
                 if PIN else "No CPU pinning (BENCH_PIN=0).\n\n") +
              "Requests per second of 2xx answers (p50 / p99 latency in ms); ratios of the medians, to two decimals. "
              "`warden-ort-drift` is warden-ort on manifests that carry a training baseline (every request counted "
              "by the drift monitor); `warden-ort-current` is warden-ort on the newest onnxruntime wheel"
              + (f" ({current.name})" if current else "")
              + (f"; `mlserver` is MLServer {mlserver_version} with mlserver-sklearn on the joblib files, both models in "
                 "one process, on the same request body, answering predict_proba (the probabilities warden answers "
                 "beside the labels; its default, predict, answers the labels only)" if "mlserver" in names else "")
              + ":\n\n" + "\n".join(lines) +
              "\n\nServer CPU time per answered request (µs; the server's whole process tree, user + system, over the "
              "cell), and warden's as a multiple of the ceiling's:\n\n" + "\n".join(cpu_lines) +
              "\n\nThe engine's limit: the pinned onnxruntime called in a loop in-process on the server's cores "
              "(one thread; Python's call overhead included, so it understates the engine at 1 row), against "
              "warden's served rows/s at 64 connections:\n\n" + "\n".join(engine) +
              "\n\n" + "\n".join(memory) + "\n\n" + overloaded + "\n\n" + protocol_table +
              "\n\nMade by `bench/run`.\n")
    (BENCH / os.environ.get("BENCH_OUT", "RESULTS.md")).write_text(report)
    print(report)


if __name__ == "__main__":
    main()
