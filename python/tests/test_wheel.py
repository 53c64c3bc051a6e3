"""`pip install` of warden's wheel, as a user would do it: maturin builds the wheel (the
pyproject.toml at the repository root, bindings = "bin"), a fresh virtual environment installs
it (pulling onnxruntime, its one dependency), and the `warden` it puts on PATH checks and serves
the example models with no configuration: it finds ONNX Runtime in its own environment.

The wheel is built with the dev profile (the test is about packaging and discovery, not speed;
maturin strips the binary either way); `maturin build --release` makes the shipped one.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / "examples" / "models"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the wheel installed; returns its `warden`."""
    work = tmp_path_factory.mktemp("wheel")
    maturin = pathlib.Path(sys.executable).parent / "maturin"
    subprocess.run([str(maturin), "build", "--profile", "dev", "--out", str(work / "dist")],
                   cwd=ROOT, check=True, capture_output=True)
    wheels = list((work / "dist").glob("warden_serve-*.whl"))
    assert len(wheels) == 1, wheels
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                    str(wheels[0])], check=True)
    warden = venv / "bin" / "warden"
    assert warden.exists(), "pip did not put `warden` on the venv's PATH"
    return warden


def clean_env(warden):
    """The environment of a user who configured nothing: no WARDEN_* or ORT_* variables, and
    PATH with only the venv's bin and the system's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARDEN_", "ORT_"))}
    env["PATH"] = f"{warden.parent}:/usr/bin:/bin"
    return env


def test_warden_check_finds_onnxruntime_in_its_own_environment(installed, tmp_path):
    result = subprocess.run([str(installed), "check", str(MODELS), "--format", "json"],
                            cwd=tmp_path, env=clean_env(installed), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    onnx = next(c for c in report["checks"] if c["check"] == "ONNX Runtime")
    assert onnx["status"] == "ok", onnx
    assert str(installed.parent.parent) in onnx["detail"], onnx
    models = [c for c in report["checks"] if c["check"].startswith("model ") and "version" in c["check"]]
    assert {c["check"] for c in models} == {"model credit version 1", "model iris version 1"}
    assert all(c["detail"].startswith("onnxruntime_onnx") for c in models), models


def test_warden_serves_from_the_wheel(installed, tmp_path):
    process = subprocess.Popen([str(installed), "serve", str(MODELS), "--port", "0"], cwd=tmp_path,
                               env=clean_env(installed), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()  # "warden listening on http://ADDR", after the checks
        assert line.startswith("warden listening on http://"), line
        base = line.split()[-1]
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/v2/health/ready", timeout=5) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "not ready"
                time.sleep(0.05)
        request = urllib.request.Request(
            f"{base}/v1/models/iris:predict", data=json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode(),
            headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response)["predictions"][0]["label"] == "setosa"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
