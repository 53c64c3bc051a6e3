"""Starting and stopping the real warden binary for the Python tests: spawn `warden serve` on
port 0, read its JSON log until it reports `listening` (with a deadline, no sleeps), and on stop
send SIGTERM and require exit code 0. WARDEN_BIN names the binary (default target/debug/warden).
"""

import glob
import json
import os
import pathlib
import queue
import signal
import subprocess
import threading
import time

import onnxruntime

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / "examples" / "models"


def onnxruntime_library():
    capi = pathlib.Path(onnxruntime.__file__).parent / "capi"
    found = sorted(glob.glob(str(capi / "libonnxruntime.so.*")))
    assert found, f"no libonnxruntime.so.* in {capi}; set WARDEN_ONNXRUNTIME_LIB"
    return found[-1]


class Warden:
    """A running `warden serve`; `address` is host:port, `grpc_address` the gRPC listener's
    (`--grpc-port 0` unless the arguments name one; `None` with `--grpc-port off`)."""

    def __init__(self, args, env=None, prefix=()):
        """`prefix` runs the binary under another command (e.g. `prlimit --nofile=48 --`)."""
        binary = os.environ.get("WARDEN_BIN", str(ROOT / "target" / "debug" / "warden"))
        full_env = dict(os.environ)
        full_env.setdefault("WARDEN_ONNXRUNTIME_LIB", onnxruntime_library())
        full_env.update(env or {})
        grpc = [] if "--grpc-port" in args else ["--grpc-port", "0"]
        grpc_off = "off" in [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--grpc-port"]
        self.process = subprocess.Popen(
            [*prefix, binary, "serve", *args, *grpc, "--host", "127.0.0.1", "--port", "0"],
            cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        # Drained for the whole run, so the server never blocks on a full pipe.
        self.lines = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.process.stderr], daemon=True).start()
        self.seen, self.address, self.grpc_address = [], None, None
        deadline = time.monotonic() + 60
        waiting = lambda: self.address is None or (self.grpc_address is None and not grpc_off)
        while waiting() and time.monotonic() < deadline and self.process.poll() is None:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("message") == "listening" and event.get("protocol") == "grpc":
                self.grpc_address = event["address"]
            elif event.get("message") == "listening":
                self.address = event["address"]
        if waiting():
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"warden did not report listening (exit code {self.process.returncode}):\n" + "".join(self.seen))

    @property
    def url(self):
        return f"http://{self.address}"

    def stop(self):
        """SIGTERM, then require a clean exit (code 0) within 30 s."""
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        assert code == 0, f"warden exited with {code} after SIGTERM:\n" + "".join(self.seen[-40:])
