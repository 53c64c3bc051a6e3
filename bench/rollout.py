"""What a shadow costs the primary: the light and the heavy model served with a rollout whose
shadow share is 1.0 (every request also runs on version 2, compared and discarded) against the
same model with no rollout, side by side in one run.

Both servers (release binary, ONNX Runtime from bench/.venv) run at once, pinned to the
server's cores, with the load generator (oha) on the others, as bench.py does; cells
alternate between them (the order flips every repetition). For each model:
  1. saturation: oha at 16 connections, as fast as the server answers: requests/s and p99;
  2. fixed rates, at 25%, 50%, 75% and 90% of the no-shadow saturation throughput
     (oha -q with latency correction, so a stalled server is not hidden by a waiting client):
     p50 and p99 of each, and the ratio shadow / none;
  3. the shadow's own accounting from /metrics, per cell: the share of requests whose shadow
     ran (the rest were shed, counted by reason), and over the run, runs and drops by reason.
Medians of BENCH_REPEATS (default 3) cells of BENCH_DURATION seconds (default 5); the table is
printed and written to bench/ROLLOUT.md (BENCH_OUT names another file).

    bench/.venv/bin/python bench/rollout.py      (after bench/run, which builds everything)
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
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
CORES = os.cpu_count() or 1
PIN = os.environ.get("BENCH_PIN", "1") != "0" and CORES >= 2
SERVER_CPUS = f"0-{CORES // 2 - 1}" if PIN else None
LOAD_CPUS = f"{CORES // 2}-{CORES - 1}" if PIN else None
FEATURES = {"light": 20, "heavy": 30}
SHARES = (0.25, 0.5, 0.75, 0.9)
PORTS = {"none": 18141, "shadow": 18142}


def pinned(cpus, command):
    return ["taskset", "-c", cpus, *command] if cpus else command


def get(port, path):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10).read().decode()


def repository(model, config):
    """Versions 1 and 2 of `model` (the same graph) with no rollout, or version 2 shadowing every
    request."""
    root = Path(tempfile.mkdtemp(prefix=f"warden-rollout-{model}-{config}-"))
    source = BENCH / "work" / "models-onnxruntime" / model
    target = root / model
    (target / "1").mkdir(parents=True)
    shutil.copy(source / "1" / "model.onnx", target / "1" / "model.onnx")
    shutil.copytree(target / "1", target / "2")
    manifest = (source / "warden.toml").read_text()
    rollout = "\n[rollout]\ncandidate = 2\nshadow = 1.0\n" if config == "shadow" else ""
    (target / "warden.toml").write_text("version = 1\n" + manifest + rollout)
    return root


def start(model, config, lib):
    env = dict(os.environ, WARDEN_ONNXRUNTIME_LIB=lib, WARDEN_LOG="warn")
    command = pinned(SERVER_CPUS, [str(ROOT / "target" / "release" / "warden"), "serve", str(repository(model, config)),
                                   "--port", str(PORTS[config]), "--grpc-port", "off"])
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            get(PORTS[config], "/v2/health/ready")
            return server
        except OSError:
            assert server.poll() is None, f"warden ({model}, {config}) exited with {server.returncode}"
            assert time.monotonic() < deadline, f"warden ({model}, {config}) was not ready in 60 s"
            time.sleep(0.05)


def oha(port, model, rate=None):
    payload = json.dumps({"inputs": [{"name": "float_input", "shape": [1, FEATURES[model]], "datatype": "FP32",
                                      "data": [0.1] * FEATURES[model]}]})
    rate_args = ["-q", str(int(rate)), "--latency-correction"] if rate else []
    result = subprocess.run(
        pinned(LOAD_CPUS, [str(OHA), "-z", f"{DURATION}s", "-c", "16", *rate_args, "--no-tui", "--output-format",
                           "json", "-m", "POST", "-H", "content-type: application/json", "-d", payload,
                           f"http://127.0.0.1:{port}/v2/models/{model}/infer"]),
        capture_output=True, text=True, check=True)
    report = json.loads(result.stdout)
    codes = report.get("statusCodeDistribution", {})
    ok = sum(n for code, n in codes.items() if code.startswith("2"))
    assert ok == sum(codes.values()), f"non-2xx answers: {codes}"
    return {"rps": report["summary"]["requestsPerSec"], "p50": report["latencyPercentiles"]["p50"] * 1000,
            "p99": report["latencyPercentiles"]["p99"] * 1000}


def shadow_accounting(model):
    text = get(PORTS["shadow"], "/metrics")
    runs, dropped = 0, {}
    for line in text.splitlines():
        if line.startswith("warden_shadow_runs_total{") and f'model="{model}"' in line:
            runs += int(float(line.split()[-1]))
        if line.startswith("warden_shadow_dropped_total{") and f'model="{model}"' in line:
            reason = line.split('reason="')[1].split('"')[0]
            dropped[reason] = dropped.get(reason, 0) + int(float(line.split()[-1]))
    return runs, {k: v for k, v in dropped.items() if v}


def median(cells, key):
    return statistics.median(cell[key] for cell in cells)


def main():
    lib = glob.glob(str(BENCH / ".venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*"))[0]
    lines = []
    for model in ("light", "heavy"):
        servers = {config: start(model, config, lib) for config in PORTS}
        try:
            order = list(PORTS)
            for config in order:  # warm-up
                oha(PORTS[config], model, rate=200)
            cells = {}
            for repeat in range(REPEATS):
                for config in (order if repeat % 2 == 0 else order[::-1]):
                    before = shadow_accounting(model)
                    figures = oha(PORTS[config], model)
                    after = shadow_accounting(model)
                    runs, drops = after[0] - before[0], sum(after[1].values()) - sum(before[1].values())
                    figures["shadowed"] = runs / max(runs + drops, 1)
                    cells.setdefault(("max", config), []).append(figures)
            saturation = median(cells[("max", "none")], "rps")
            for repeat in range(REPEATS):
                for share in SHARES:
                    for config in (order if repeat % 2 == 0 else order[::-1]):
                        before = shadow_accounting(model) if config == "shadow" else None
                        figures = oha(PORTS[config], model, rate=share * saturation)
                        if before:
                            after = shadow_accounting(model)
                            runs = after[0] - before[0]
                            drops = sum(after[1].values()) - sum(before[1].values())
                            figures["shadowed"] = runs / max(runs + drops, 1)
                        cells.setdefault((share, config), []).append(figures)
                        print(model, share, config, {k: round(v, 3) for k, v in figures.items()}, flush=True)
            runs, dropped = shadow_accounting(model)
        finally:
            for server in servers.values():
                server.terminate()
                server.wait(timeout=30)
        lines.append(f"\n**{model}** (1 row per request, V2 JSON; no-shadow saturation {saturation:.0f} req/s)\n")
        lines.append("| load | none req/s | shadow req/s | none p50 / p99 ms | shadow p50 / p99 ms "
                     "| p99 shadow / none | requests shadowed |")
        lines.append("|---|---|---|---|---|---|---|")
        for key in [*SHARES, "max"]:
            none, shadow = cells[(key, "none")], cells[(key, "shadow")]
            label = "saturated (16 connections)" if key == "max" else f"{key:.0%} of saturation"
            lines.append(
                f"| {label} | {median(none, 'rps'):.0f} | {median(shadow, 'rps'):.0f} | "
                f"{median(none, 'p50'):.2f} / {median(none, 'p99'):.2f} | "
                f"{median(shadow, 'p50'):.2f} / {median(shadow, 'p99'):.2f} | "
                f"{median(shadow, 'p99') / median(none, 'p99'):.2f} | {median(shadow, 'shadowed'):.1%} |")
        lines.append(f"\nShadow runs made: {runs}; dropped: {dropped or 'none'}.")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    text = (f"# Shadow cost (bench/rollout.py)\n\n{time.strftime('%Y-%m-%d')} · {platform.uname().release} · {cpu} · "
            f"{CORES} cores · oha, {DURATION} s per cell, medians of {REPEATS}; warden pinned to CPUs {SERVER_CPUS}, "
            f"oha to {LOAD_CPUS}. `none`: versions 1 and 2 loaded, no rollout; `shadow`: `[rollout] candidate = 2, "
            f"shadow = 1.0`.\n" + "\n".join(lines) + "\n")
    print(text)
    (BENCH / os.environ.get("BENCH_OUT", "ROLLOUT.md")).write_text(text)


if __name__ == "__main__":
    main()
