"""Memory per inference worker, and tract against ONNX Runtime on forests (issue 29, targets 5
and 7), in one run:

1. resident memory at rest (after the ready check and the warm-up) of warden serving the bench's
   two models (`models-onnxruntime`) and the 16.5 MB, 200-tree `forest`
   (`models-forest-onnxruntime`), with 1, 2 and 4 workers, ONNX Runtime sessions `shared` (the
   default) and `per-worker`, and tract; the cost of each worker beyond the first;
2. requests/s of tract and of ONNX Runtime (both as served by default) on `heavy` (200 trees,
   depth 12) and `forest`, at 1 and 32 rows per request, 64 connections, the server pinned to the
   first half of the CPUs and oha to the other half, interleaved (the order flips each
   repetition), medians; the ratio tract / ONNX Runtime.

    bench/.venv/bin/python bench/forest.py [target/release/warden]

Needs bench/work (bench/run, or `bench/.venv/bin/python bench/make_models.py`) and oha
(bench/.tools). BENCH_DURATION (default 10 s) and BENCH_REPEATS (default 3) as for bench.py.
Prints a markdown report to stdout (and to BENCH_OUT when set)."""

import os
import statistics
import subprocess
import sys
import time

import bench
from bench import BENCH, ROOT, WORK, Server, body, oha

LIB = next((BENCH / ".venv").glob("lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*"))
WARDEN = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target" / "release" / "warden")
bench.FEATURES["forest"] = 30


def server(label, repository, models, **env):
    return Server(label, [WARDEN, "serve", str(WORK / repository), "--port", "{port}", "--grpc-port", "off"],
                  {"WARDEN_ONNXRUNTIME_LIB": str(LIB), "WARDEN_LOG": "info", **env}, "/v2/health/ready", models)


def rss_at_rest(label, repository, **env):
    """MiB resident once ready, read when two readings 200 ms apart agree within 1% (at most 5 s)."""
    s = server(label, repository, [], **env)
    s.start()
    try:
        previous, deadline = None, time.monotonic() + 5
        while True:
            current = bench.tree_rss_kib(s.process.pid)
            if previous and abs(current - previous) <= previous / 100 or time.monotonic() > deadline:
                return current / 1024
            previous = current
            time.sleep(0.2)
    finally:
        s.stop()


def memory():
    lines = ["| repository | engine, sessions | 1 worker | 2 workers | 4 workers | per extra worker |",
             "|---|---|---|---|---|---|"]
    for models in ("models-onnxruntime", "models-forest-onnxruntime", "models-tract", "models-forest-tract"):
        modes = (("shared", "per-worker") if "onnxruntime" in models else ("plan shared",))
        for mode in modes:
            env = {"WARDEN_ONNXRUNTIME_SESSIONS": mode} if "onnxruntime" in models else {}
            mib = [rss_at_rest(f"{models} {mode} {w}", models, WARDEN_WORKERS=str(w), **env) for w in (1, 2, 4)]
            extra = (mib[2] - mib[0]) / 3
            engine = "onnxruntime" if "onnxruntime" in models else "tract"
            lines.append(f"| {models} | {engine}, {mode} | {mib[0]:.1f} MiB | {mib[1]:.1f} MiB | {mib[2]:.1f} MiB "
                         f"| {extra:.1f} MiB |")
            print(lines[-1], flush=True)
    return lines


def engines():
    cells = [(model, rows) for model in ("heavy", "forest") for rows in (1, 32)]
    servers = {
        ("heavy", "onnxruntime"): server("ort heavy", "models-onnxruntime", ["heavy"]),
        ("heavy", "tract"): server("tract heavy", "models-tract", ["heavy"]),
        ("forest", "onnxruntime"): server("ort forest", "models-forest-onnxruntime", ["forest"]),
        ("forest", "tract"): server("tract forest", "models-forest-tract", ["forest"]),
    }
    results = {}
    for repetition in range(bench.REPEATS):
        for model, rows in cells:
            order = ("onnxruntime", "tract") if repetition % 2 == 0 else ("tract", "onnxruntime")
            for engine in order:
                s = servers[(model, engine)]
                s.start()
                try:
                    url = f"http://127.0.0.1:{s.port}/v2/models/{model}/infer"
                    payload = body(model, rows)
                    oha(url, payload, 8)  # warm-up, not counted
                    rps, *_ = oha(url, payload, 64)
                finally:
                    s.stop()
                results.setdefault((model, rows, engine), []).append(rps * rows)
                print(f"{model} rows={rows} {engine}: {rps * rows:.0f} rows/s", flush=True)
    lines = ["| model | rows per request | onnxruntime rows/s | tract rows/s | tract / onnxruntime |",
             "|---|---|---|---|---|"]
    for model, rows in cells:
        ort = statistics.median(results[(model, rows, "onnxruntime")])
        tract = statistics.median(results[(model, rows, "tract")])
        lines.append(f"| {model} | {rows} | {ort:,.0f} | {tract:,.0f} | {tract / ort:.2f}× |")
    return lines


def main():
    bench.DURATION = int(os.environ.get("BENCH_DURATION", "10"))
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    report = [f"# Memory per worker, tract against ONNX Runtime on forests ({head}, {WARDEN})", "",
              "## Resident memory at rest", ""]
    report += memory()
    report += ["", f"## Served rows/s, 64 connections ({bench.DURATION} s cells, {bench.REPEATS} interleaved "
               "repetitions, medians)", ""]
    report += engines()
    text = "\n".join(report) + "\n"
    print(text)
    if os.environ.get("BENCH_OUT"):
        with open(os.environ["BENCH_OUT"], "w") as out:
            out.write(text)


if __name__ == "__main__":
    main()
