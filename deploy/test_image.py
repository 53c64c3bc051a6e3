"""Runs a warden image's filesystem as a container runtime would and checks what its user sees.

podman cannot run containers on these machines (cgroups in hybrid mode), so the image is
exported (`podman create` + `podman export`) and its root filesystem run with
`unshare -Urmpf --mount-proc=ROOTFS/proc chroot ROOTFS /warden ...` (new user, mount and PID
namespaces, warden as PID 1, a fresh /proc), with the image's environment and entrypoint.
Checks: the image's metadata (non-root user, port, health check, size), ready and one prediction
over HTTP, `warden health` inside the image, a start-up with a missing repository (a clear
message and exit code 66 in the container's output, not a bare `SystemExit: 1`), and SIGTERM
(in-flight work finished, exit code 0).

Usage: python3 deploy/test_image.py IMAGE   (deploy/test-image builds one and runs this)
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

DEADLINE_S = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def podman(*args, **kwargs):
    return subprocess.run(["podman", *args], check=True, capture_output=True, **kwargs).stdout


def export_rootfs(image, into):
    container = podman("create", image).decode().strip()
    try:
        archive = Path(into) / "image.tar"
        with open(archive, "wb") as out:
            subprocess.run(["podman", "export", container], check=True, stdout=out)
        rootfs = Path(into) / "rootfs"
        rootfs.mkdir()
        with tarfile.open(archive) as tar:
            tar.extractall(rootfs, filter="tar")
        archive.unlink()
    finally:
        podman("rm", container)
    (rootfs / "proc").mkdir(exist_ok=True)
    return rootfs


class Container:
    """The image's entrypoint run in its filesystem, with its environment plus `env`."""

    def __init__(self, rootfs, config, args, env):
        environment = dict(item.split("=", 1) for item in config.get("Env") or [])
        environment.update(env)
        command = ["unshare", "-Urmpf", f"--mount-proc={rootfs}/proc", "chroot", str(rootfs),
                   *config["Entrypoint"], *args]
        self.process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)

    def pid_one(self):
        """warden's host PID: the child `unshare --fork` made, which exec'd chroot then warden."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
            if children and Path(f"/proc/{children[0]}/exe").resolve().name == "warden":
                return int(children[0])
            time.sleep(0.01)
        raise AssertionError("warden did not start in the namespace")

    def wait(self, limit=DEADLINE_S):
        output, _ = self.process.communicate(timeout=limit)
        return self.process.returncode, output


def get(url, data=None):
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def wait_ready(base, container):
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if container.process.poll() is not None:
            raise AssertionError(f"warden exited: {container.wait()}")
        try:
            if get(f"{base}/v2/health/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("not ready in time")


def main(image):
    started = time.monotonic()
    info = json.loads(podman("image", "inspect", image))[0]
    config = info["Config"]
    size_mib = info["Size"] / 2**20
    assert config.get("User") == "65534:65534", config.get("User")
    assert config["Entrypoint"] == ["/warden"], config["Entrypoint"]
    assert config["Cmd"] == ["serve", "/models"], config["Cmd"]
    assert "8080/tcp" in config.get("ExposedPorts", {}), config.get("ExposedPorts")
    assert "PORT=8080" in config["Env"] and "WARDEN_HOST=0.0.0.0" in config["Env"], config["Env"]
    health = info.get("Healthcheck") or config.get("Healthcheck") or {}
    assert health.get("Test") == ["CMD", "/warden", "health"], health
    print(f"{image}: {size_mib:.1f} MiB, user {config['User']}, health check {health['Test'][1:]}")

    with tempfile.TemporaryDirectory() as scratch:
        rootfs = export_rootfs(image, scratch)
        files = sorted(str(p.relative_to(rootfs)) for p in rootfs.rglob("*") if p.is_file())
        print(f"  {len(files)} files in the image; top level: {sorted(p.name for p in rootfs.iterdir())}")

        # Served as the platform says: PORT, as Cloud Run and Azure Container Apps set it.
        port = free_port()
        container = Container(rootfs, config, config["Cmd"], {"PORT": str(port)})
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, container)
            engine = ("onnxruntime_onnx" if any(e.startswith("WARDEN_ONNXRUNTIME_LIB=") for e in config["Env"])
                      else "tract_onnx")
            status, body = get(f"{base}/v2/models/iris")
            assert status == 200 and body["platform"] == engine, (status, body)
            status, body = get(f"{base}/v1/models/iris:predict",
                               json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode())
            assert status == 200 and body["predictions"][0]["label"] == "setosa", (status, body)
            status, body = get(f"{base}/v1/models/credit:predict", json.dumps({"instances": [
                {"age": 42, "income": 52000, "debt_ratio": 0.3, "country": 3, "employment": "salaried"}]}).encode())
            assert status == 400 and body["code"] == "invalid_input", (status, body)
            print(f"  ready in {time.monotonic() - started:.1f} s since the test began, on {engine}; iris "
                  "answered, the integer category refused")
            probe = subprocess.run(["unshare", "-Ur", "chroot", str(rootfs), "/warden", "health"],
                                   env={"PORT": str(port), "PATH": os.environ["PATH"]}, capture_output=True,
                                   text=True, timeout=10)
            assert probe.returncode == 0 and probe.stdout.strip() == "ready", probe
            pid = container.pid_one()
            os.kill(pid, signal.SIGTERM)
            code, output = container.wait()
            assert code == 0, (code, output)
            assert "SIGTERM received" in output, output
            print("  `warden health` inside the image: ready; SIGTERM: exit 0")
        finally:
            if container.process.poll() is None:
                container.process.kill()

        # The Flask container's bare `SystemExit: 1`, the warden way.
        missing = Container(rootfs, config, ["serve", "/no/such/models"], {"PORT": str(free_port())})
        code, output = missing.wait()
        assert code == 66, (code, output)
        assert "error: " in output and "/no/such/models" in output, output
        assert "panicked" not in output and "RUST_BACKTRACE" not in output, output
        print(f"  missing repository: exit {code}: {next(l for l in output.splitlines() if l.startswith('error'))}")
    print(f"ok in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    if len(sys.argv) != 2 or shutil.which("podman") is None:
        sys.exit("usage: python3 deploy/test_image.py IMAGE (needs podman)")
    main(sys.argv[1])
