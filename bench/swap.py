"""Hot reload under load: what a version swap costs in answers and in memory.

Serves the benchmark's heavy model (RandomForest, 200 trees; made by bench/run) from a
temporary repository with the release binary, then
  1. runs oha for 6 s at 16 connections and copies version 1 to version 2 after 2 s:
     every answer's status is counted (the swap must lose none);
  2. copies N more versions in, one at a time, waiting for each to be served
     (warden_model_loaded_version), and prints resident memory after each swap.

    bench/.venv/bin/python bench/swap.py [SWAPS]      (after bench/run, which builds everything)

Extra environment (e.g. MALLOC_ARENA_MAX=1) is passed to warden.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
PORT = 18131


def get(path):
    return urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}", timeout=10).read().decode()


def main():
    swaps = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    lib = glob.glob(BENCH + "/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*")[0]
    repo = tempfile.mkdtemp()
    shutil.copytree(BENCH + "/work/models-onnxruntime/heavy", repo + "/heavy")
    env = dict(os.environ, WARDEN_ONNXRUNTIME_LIB=lib, WARDEN_LOG="warn")
    server = subprocess.Popen([ROOT + "/target/release/warden", "serve", repo, "--port", str(PORT)], env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                get("/v2/health/ready")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

        def rss():
            with open(f"/proc/{server.pid}/status") as status:
                return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))

        def swap_to(version):
            shutil.copytree(repo + "/heavy/1", repo + f"/heavy/{version}")
            deadline = time.monotonic() + 60
            while f'warden_model_loaded_version{{model="heavy"}} {version}' not in get("/metrics"):
                assert time.monotonic() < deadline, f"version {version} was not served"
                time.sleep(0.02)

        start = rss()
        payload = json.dumps({"inputs": [{"name": "float_input", "shape": [1, 30], "datatype": "FP32",
                                          "data": [0.1] * 30}]})
        oha = subprocess.Popen(
            [BENCH + "/.tools/bin/oha", "-z", "6s", "-c", "16", "--no-tui", "--output-format", "json", "-m", "POST",
             "-H", "content-type: application/json", "-d", payload, f"http://127.0.0.1:{PORT}/v2/models/heavy/infer"],
            stdout=subprocess.PIPE, text=True)
        time.sleep(2)
        swap_to(2)
        report = json.loads(oha.communicate()[0])
        print("answers during a swap under load (oha, 16 connections, 6 s):",
              report["statusCodeDistribution"], "client-side:", report.get("errorDistribution") or "none")
        memory = [start, rss()]
        for version in range(3, swaps + 2):
            swap_to(version)
            time.sleep(0.2)
            memory.append(rss())
        print("resident MiB at start, then after each swap:", " ".join(f"{m:.0f}" for m in memory))
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(repo)


if __name__ == "__main__":
    main()
