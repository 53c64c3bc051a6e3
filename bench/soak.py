"""Soak test: half an hour (by default) of mixed traffic, hot swaps and one abusive burst against warden.

Serves examples/models (iris and credit) from a temporary copy of the repository, then for
--duration seconds (default 1800) sends a fixed mix of requests at a target rate over
keep-alive connections:
  ~70% valid   row API iris and credit, KServe V2 JSON iris                     -> 200
  ~30% invalid out-of-range value, unknown key, a category sent as an integer,
               malformed JSON, more rows than max_batch_size                    -> 400 (its code)
               JSON with content-type text/plain                                -> 415
The rate is --rate requests/s, or by default 80% of the capacity measured first for 10 s with
the same mix at full concurrency (which doubles as the warm-up; with --rate a 5 s warm-up at
that rate runs instead). Every --swap-every seconds (default 240) the highest version folder of
iris is copied to the next version number and /metrics is polled until
warden_model_loaded_version{model="iris"} shows it (the server's watcher does the rest). Once,
after the first third (--abuse, default on), 8 raw-socket clients each send a ~6 MB row
request with ~540,000 unknown keys and do not read their answers for 20 s, then close; beside
them, in a process of their own, raw HTTP/2 attackers (bench's copy of the hostile suite's):
two gRPC connections and one h2c connection each open 100 streams that declare 8 MB and send
7 MB, and two gRPC connections open 50 calls each that send only their headers or half a
message and then stall; every stalled call must be answered by the server within its body
timeout (30 s) and the floods must be refused by the memory budget, not buffered. The
server's resident memory (VmRSS), threads and open files are sampled every second.

Every answer is counted by request kind and status, and checked against what that kind must
get (status and error `code`, or the body of a prediction); connection errors are counted with
their time. At the end the report is printed and written to bench/SOAK.md (--report). Exit
code 1 when a valid request got anything but 200, an invalid one a 5xx, a connection error
happened outside the abuse phase (it and 2 s after it), a swap was not served within
--swap-timeout, or the server died or did not stop cleanly on SIGTERM; 0 otherwise.

    .venv/bin/python bench/soak.py               # 30 min; target/release/warden, else target/debug/warden
    .venv/bin/python bench/soak.py --duration 60 --swap-every 20 --binary target/debug/warden

The load generator is one thread running an epoll loop over --connections (default 16)
keep-alive sockets with pre-encoded requests, so one core drives several thousand requests/s.
Latency is measured from the moment a request is written to the moment its answer is complete
(an open schedule: slots the connections fall behind on are caught up on, up to one second's
worth; beyond that they are skipped and counted, so a stall is not followed by a flood).
Extra environment (e.g. MALLOC_ARENA_MAX=1) is passed to warden; WARDEN_LOG defaults to warn.
"""

import argparse
import datetime
import glob
import importlib.util
import json
import math
import os
import platform
import random
import re
import selectors
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
MODELS = ROOT / "examples" / "models"

ABUSE_CLIENTS = 8
ABUSE_HOLD_S = 20.0
ABUSE_KEYS = 540_000  # ~6 MB of `"u000000":0,` under the 8 MiB default body limit
ABUSE_GRACE_S = 2.0  # connection errors this long after the abusers closed still count as theirs
H2_HOLD_S = 40.0  # the HTTP/2 attackers stay this long: past the server's 30 s body timeout
H2_BODY_TIMEOUT_S = 30.0  # the server's default body timeout, which must answer every stall

# --------------------------------------------------------------------------------------------
# The request mix

IRIS = {"sepal_length": (4.3, 7.9), "sepal_width": (2.0, 4.4), "petal_length": (1.0, 6.9),
        "petal_width": (0.1, 2.5)}
CREDIT_FLOAT = {"age": (18.17, 79.96), "income": (8000.0, 250000.0), "debt_ratio": (0.0, 1.5)}
CREDIT_CAT = {"country": ["DE", "FR", "GB", "IN", "US"],
              "employment": ["salaried", "self_employed", "unemployed"]}

# kind: (valid?, weight, expected status, bytes the body must contain)
KINDS = {
    "iris row": (True, 30, 200, b'"predictions"'),
    "credit row": (True, 20, 200, b'"predictions"'),
    "iris V2": (True, 20, 200, b'"outputs"'),
    "out of range": (False, 6, 400, b'"invalid_input"'),
    "unknown key": (False, 5, 400, b'"invalid_input"'),
    "category as integer": (False, 5, 400, b'"invalid_input"'),
    "malformed JSON": (False, 5, 400, b'"malformed_json"'),
    "oversized batch": (False, 4, 400, b'"batch_too_large"'),
    "wrong content type": (False, 5, 415, b'"unsupported_media_type"'),
}
KIND_NAMES = list(KINDS)


def inside(lo, hi, rng):
    """A value strictly inside [lo, hi] (2 decimals), so float32 rounding cannot leave it."""
    return round(rng.uniform(lo + 0.01 * (hi - lo), hi - 0.01 * (hi - lo)), 2)


def iris_row(rng):
    return {name: inside(lo, hi, rng) for name, (lo, hi) in IRIS.items()}


def credit_row(rng):
    row = {name: inside(lo, hi, rng) for name, (lo, hi) in CREDIT_FLOAT.items()}
    row.update({name: rng.choice(values) for name, values in CREDIT_CAT.items()})
    return row


def http_request(host, path, body, content_type="application/json"):
    if isinstance(body, (dict, list)):
        body = json.dumps(body, separators=(",", ":")).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def make_requests(host, seed=7, variants=64):
    """Pre-encoded requests of every kind, and a shuffled sequence of indices into them that
    follows the weights."""
    rng = random.Random(seed)
    iris_path, credit_path, v2_path = "/v1/models/iris:predict", "/v1/models/credit:predict", "/v2/models/iris/infer"
    requests, sequence = [], []
    for kind in KIND_NAMES:
        for _ in range(variants):
            if kind == "iris row":
                rows = [iris_row(rng) for _ in range(rng.choice([1, 1, 1, 2, 4]))]
                raw = http_request(host, iris_path, {"instances": rows})
            elif kind == "credit row":
                raw = http_request(host, credit_path, {"instances": [credit_row(rng)]})
            elif kind == "iris V2":
                n = rng.choice([1, 1, 2, 3])
                data = [v for _ in range(n) for v in iris_row(rng).values()]
                raw = http_request(host, v2_path, {"id": f"soak-{rng.randrange(10**6)}", "inputs": [
                    {"name": "float_input", "shape": [n, 4], "datatype": "FP32", "data": data}]})
            elif kind == "out of range":
                if rng.random() < 0.5:
                    row = iris_row(rng)
                    row[rng.choice(list(IRIS))] = rng.choice([-3.0, 50.0, 1e9])
                    raw = http_request(host, iris_path, {"instances": [row]})
                else:
                    row = credit_row(rng)
                    row[rng.choice(list(CREDIT_FLOAT))] = rng.choice([-1.0, 150.0, 1e12])
                    raw = http_request(host, credit_path, {"instances": [row]})
            elif kind == "unknown key":
                row = iris_row(rng)
                row[rng.choice(["petal_colour", "sepal_lenght", "id", "species"])] = 1
                raw = http_request(host, iris_path, {"instances": [row]})
            elif kind == "category as integer":
                row = credit_row(rng)
                row[rng.choice(list(CREDIT_CAT))] = rng.randrange(0, 5)
                raw = http_request(host, credit_path, {"instances": [row]})
            elif kind == "malformed JSON":
                text = json.dumps({"instances": [iris_row(rng)]})
                cut = rng.randrange(1, len(text) - 1)
                raw = http_request(host, rng.choice([iris_path, credit_path, v2_path]), text[:cut].encode())
            elif kind == "oversized batch":
                rows = [iris_row(rng) for _ in range(rng.choice([65, 100]))]
                raw = http_request(host, iris_path, {"instances": rows})
            elif kind == "wrong content type":
                path, row = rng.choice([(iris_path, iris_row), (credit_path, credit_row)])
                raw = http_request(host, path, {"instances": [row(rng)]},
                                   rng.choice(["text/plain", "application/x-www-form-urlencoded"]))
            requests.append((KIND_NAMES.index(kind), raw))
    for k, kind in enumerate(KIND_NAMES):
        weight = KINDS[kind][1]
        sequence += [k * variants + rng.randrange(variants) for _ in range(weight * 100)]
    rng.shuffle(sequence)
    return requests, sequence


# --------------------------------------------------------------------------------------------
# Counting

HIST_BINS = 1200  # log10 buckets of 1/100 decade from 1 µs: ~2.3% resolution up to 10^6 s


def hist_bin(seconds):
    if seconds <= 1e-6:
        return 0
    return min(HIST_BINS - 1, int((math.log10(seconds) + 6.0) * 100))


def hist_quantile(hist, q):
    total = sum(hist)
    if not total:
        return None
    rank, seen = q * total, 0
    for b, n in enumerate(hist):
        seen += n
        if seen >= rank and n:
            return 10 ** ((b + 0.5) / 100 - 6)
    return None


class Stats:
    def __init__(self, name):
        self.name = name
        self.answers = Counter()  # (kind index, status, as expected) -> n
        # latency histograms by (valid?, during the abuse phase?)
        self.hist = {(v, a): [0] * HIST_BINS for v in (True, False) for a in (False, True)}
        self.max_latency = 0.0
        self.errors = []  # (monotonic time, kind index or None, what)
        self.unexpected = []  # first examples: (t, kind, status, body)
        self.sent = 0
        self.skipped = 0  # schedule slots dropped because every connection was busy
        self.connects = 0
        self.per_second = Counter()  # whole second since start -> answers
        self.started = self.ended = None
        self.cpu = None  # CPU seconds this process (the load generator) spent in the phase

    @property
    def answered(self):
        return sum(self.answers.values())

    def seconds(self):
        return (self.ended or time.monotonic()) - self.started


# --------------------------------------------------------------------------------------------
# The load generator: one epoll loop over keep-alive connections


class Conn:
    __slots__ = ("sock", "buf", "req", "t_send", "out", "head_end", "length", "status", "close_after", "chunked",
                 "used")

    def __init__(self):
        self.sock, self.buf, self.req, self.out = None, bytearray(), None, None
        self.t_send, self.head_end, self.length, self.status = 0.0, -1, 0, 0
        self.close_after = self.chunked = self.used = False


class Load:
    def __init__(self, address, connections, requests, sequence, server):
        self.address, self.requests, self.sequence, self.server = address, requests, sequence, server
        self.pos = 0
        self.sel = selectors.DefaultSelector()
        self.conns = [Conn() for _ in range(connections)]
        self.stop = False
        self.in_abuse = False  # set by the abuse phase: latencies then go to their own histograms

    # connection handling

    def connect(self, c, stats):
        s = socket.create_connection(self.address, timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        c.sock, c.used = s, False
        self.sel.register(s, selectors.EVENT_READ, c)
        stats.connects += 1

    def drop(self, c):
        if c.sock is not None:
            try:
                self.sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            c.sock.close()
            c.sock = None
        c.req, c.out = None, None

    def fail(self, c, stats, what, idle):
        stats.errors.append((time.monotonic(), None if c.req is None else self.requests[c.req][0], what))
        self.drop(c)
        idle.append(c)

    def dispatch(self, c, stats, idle):
        idx = self.sequence[self.pos]
        self.pos = (self.pos + 1) % len(self.sequence)
        raw = self.requests[idx][1]
        stats.sent += 1
        if c.sock is None:
            try:
                self.connect(c, stats)
            except OSError as err:
                c.req = idx
                self.fail(c, stats, f"connect: {err.strerror or err}", idle)
                return False
        c.req, c.buf, c.head_end, c.status = idx, bytearray(), -1, 0
        c.t_send = time.monotonic()
        try:
            n = c.sock.send(raw)
        except BlockingIOError:
            n = 0
        except OSError as err:
            self.fail(c, stats, f"send: {err.strerror or err}", idle)
            return False
        if n < len(raw):
            c.out = memoryview(raw)[n:]
            self.sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
        return True

    def flush(self, c, stats, idle):
        try:
            n = c.sock.send(c.out)
        except BlockingIOError:
            return
        except OSError as err:
            self.fail(c, stats, f"send: {err.strerror or err}", idle)
            return
        c.out = c.out[n:]
        if not len(c.out):
            c.out = None
            self.sel.modify(c.sock, selectors.EVENT_READ, c)

    def on_read(self, c, stats, idle):
        try:
            chunk = c.sock.recv(262144)
        except BlockingIOError:
            return
        except OSError as err:
            if c.req is None:  # an idle connection reset: reconnect at the next request
                self.drop(c)
                return
            self.fail(c, stats, f"recv: {err.strerror or err}", idle)
            return
        if not chunk:
            if c.req is None:  # the server closed an idle connection
                self.drop(c)
                return
            what = "closed mid-answer" if c.buf else ("closed before answering a reused connection" if c.used
                                                       else "closed before answering")
            self.fail(c, stats, what, idle)
            return
        if c.req is None:
            stats.errors.append((time.monotonic(), None, "bytes on an idle connection"))
            self.drop(c)
            return
        buf = c.buf
        buf += chunk
        if c.head_end < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            c.head_end = end + 4
            try:
                c.status = int(head[9:12])
            except ValueError:
                self.fail(c, stats, "not HTTP", idle)
                return
            c.close_after = b"\r\nconnection: close" in head
            c.chunked = b"\r\ntransfer-encoding: chunked" in head
            i = head.find(b"\r\ncontent-length:")
            if i >= 0:
                j = head.find(b"\r\n", i + 2)
                c.length = int(head[i + 17:j if j >= 0 else len(head)])
            elif not c.chunked:
                c.length = 0
        if c.chunked:
            body = dechunk(buf, c.head_end)
            if body is None:
                return
        else:
            if len(buf) < c.head_end + c.length:
                return
            body = bytes(buf[c.head_end:c.head_end + c.length])
        now = time.monotonic()
        kind = self.requests[c.req][0]
        valid, _, status, marker = KINDS[KIND_NAMES[kind]]
        ok = c.status == status and marker in body
        stats.answers[(kind, c.status, ok)] += 1
        latency = now - c.t_send
        stats.hist[(valid, self.in_abuse)][hist_bin(latency)] += 1
        if latency > stats.max_latency:
            stats.max_latency = latency
        stats.per_second[int(now - stats.started)] += 1
        if not ok and len(stats.unexpected) < 30:
            stats.unexpected.append((now, KIND_NAMES[kind], c.status, body[:400]))
        c.req, c.used = None, True
        if c.close_after:
            self.drop(c)
        idle.append(c)

    # phases

    def run(self, stats, seconds, rate=None, drain_s=30.0):
        """Sends for `seconds`, at `rate` requests/s (None: as fast as the connections go), then
        waits up to drain_s for the answers still outstanding."""
        sel, conns = self.sel, self.conns
        idle = [c for c in conns if c.req is None]
        cpu = time.process_time()
        start = stats.started = time.monotonic()
        end = start + seconds
        slots = 0  # schedule slots used or skipped
        # slots due but not yet sent are caught up on (as fast as idle connections allow) up to one
        # second's worth; beyond that (a stall) they are skipped, so a stall is not followed by a flood
        max_backlog = max(len(conns), int(rate or 0))
        next_check = start + 1
        while not self.stop:
            now = time.monotonic()
            if now >= end:
                break
            if now >= next_check:
                next_check = now + 1
                if self.server.poll() is not None:
                    stats.errors.append((now, None, f"server exited with {self.server.returncode}"))
                    self.stop = True
                    break
            if idle:
                if rate:
                    due = int((now - start) * rate) + 1 - slots
                    if due > max_backlog:
                        stats.skipped += due - max_backlog
                        slots += due - max_backlog
                        due = max_backlog
                else:
                    due = len(idle)
                while idle and due > 0:
                    self.dispatch(idle.pop(), stats, idle)
                    slots += 1
                    due -= 1
            if idle and rate:
                timeout = min(end, start + slots / rate) - time.monotonic()
            else:
                timeout = min(0.05, end - now)
            for key, mask in sel.select(max(0.0, timeout)):
                c = key.data
                if mask & selectors.EVENT_WRITE and c.out is not None:
                    self.flush(c, stats, idle)
                if mask & selectors.EVENT_READ and c.sock is not None:
                    self.on_read(c, stats, idle)
        deadline = time.monotonic() + drain_s
        while any(c.req is not None for c in conns) and time.monotonic() < deadline:
            for key, mask in sel.select(0.05):
                c = key.data
                if mask & selectors.EVENT_WRITE and c.out is not None:
                    self.flush(c, stats, idle)
                if mask & selectors.EVENT_READ and c.sock is not None:
                    self.on_read(c, stats, idle)
        for c in conns:
            if c.req is not None:
                self.fail(c, stats, f"no answer within {drain_s:.0f} s of the phase's end", idle)
        stats.ended = time.monotonic()
        stats.cpu = time.process_time() - cpu

    def close(self):
        for c in self.conns:
            self.drop(c)


def dechunk(buf, start):
    """The body of a chunked answer in buf[start:], or None while incomplete."""
    out, i = bytearray(), start
    while True:
        j = buf.find(b"\r\n", i)
        if j < 0:
            return None
        size = int(bytes(buf[i:j]).split(b";")[0], 16)
        if size == 0:
            return bytes(out) if buf.find(b"\r\n", j + 2) >= 0 else None
        if len(buf) < j + 2 + size + 2:
            return None
        out += buf[j + 2:j + 2 + size]
        i = j + 2 + size + 2


# --------------------------------------------------------------------------------------------
# The server and what runs beside the load


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def onnxruntime_library():
    if os.environ.get("WARDEN_ONNXRUNTIME_LIB"):
        return os.environ["WARDEN_ONNXRUNTIME_LIB"]
    places = []
    spec = importlib.util.find_spec("onnxruntime")  # finds the package without importing it
    if spec and spec.submodule_search_locations:
        places += [os.path.join(p, "capi") for p in spec.submodule_search_locations]
    for venv in (ROOT / ".venv", BENCH / ".venv"):
        places += glob.glob(str(venv / "lib" / "python3*" / "site-packages" / "onnxruntime" / "capi"))
    for place in places:
        found = sorted(glob.glob(os.path.join(place, "libonnxruntime.so.*")))
        if found:
            return found[-1]
    sys.exit("no libonnxruntime.so.* found in the onnxruntime package (" + ", ".join(places or ["none"])
             + "); run scripts/python-env or set WARDEN_ONNXRUNTIME_LIB")


def proc_status(pid):
    """(VmRSS KiB, threads, open files) of a process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return int(fields["VmRSS"].split()[0]), int(fields["Threads"]), fds
    except (OSError, KeyError, ValueError):
        return None


class Sampler(threading.Thread):
    def __init__(self, pid, t0):
        super().__init__(daemon=True)
        self.pid, self.t0, self.samples, self.halt = pid, t0, [], threading.Event()

    def run(self):
        while not self.halt.is_set():
            s = proc_status(self.pid)
            if s:
                self.samples.append((time.monotonic(), *s))
            self.halt.wait(1.0)

    def now(self):
        return proc_status(self.pid)


def http_get(base, path, timeout=10):
    with urllib.request.urlopen(base + path, timeout=timeout) as response:
        return response.read().decode()


LOADED = re.compile(r'^warden_model_loaded_version\{model="iris"\} (\S+)$', re.M)


def loaded_version(base):
    match = LOADED.search(http_get(base, "/metrics"))
    return float(match.group(1)) if match else None


class Swapper(threading.Thread):
    """Every `every` s: copies iris's highest version folder to the next number and polls
    /metrics until that version is served."""

    def __init__(self, base, iris_dir, start, every, timeout, until):
        super().__init__(daemon=True)
        self.base, self.iris, self.start_t, self.every = base, Path(iris_dir), start, every
        self.timeout, self.until, self.halt, self.swaps = timeout, until, threading.Event(), []

    def run(self):
        due = self.start_t + self.every
        while not self.halt.wait(max(0.0, due - time.monotonic())):
            if time.monotonic() >= self.until - 1:
                return
            current = max(int(d.name) for d in self.iris.iterdir() if d.is_dir() and d.name.isdigit())
            new = current + 1
            began = time.monotonic()
            shutil.copytree(self.iris / str(current), self.iris / str(new))
            copied = time.monotonic()
            served, seen = None, None
            while time.monotonic() < copied + self.timeout and not self.halt.is_set():
                try:
                    seen = loaded_version(self.base)
                except OSError as err:
                    seen = f"/metrics failed: {err}"
                if seen == new:
                    served = time.monotonic()
                    break
                time.sleep(0.02)
            self.swaps.append({"version": new, "at": began - self.start_t, "copy_s": copied - began,
                               "served_s": None if served is None else served - copied, "last_seen": seen})
            due += self.every
            while due < time.monotonic():
                due += self.every


def h2_attacks(http_address, grpc_address, results):
    """The HTTP/2 attackers, in a process of their own (so their Python work does not take the
    load generator's interpreter): floods of 8 MB streams and stalled calls, all at once, held
    H2_HOLD_S; `results` receives what each got."""
    sys.path.insert(0, str(ROOT / "python" / "tests"))
    from h2_client import GRPC_HEADERS, H2Client, grpc_frame

    infer = "/inference.GRPCInferenceService/ModelInfer"
    began = time.monotonic()

    def attack(name, address, open_streams):
        outcome = {"name": name, "streams": 0, "answers": Counter(), "open_at_end": 0,
                   "slowest_answer_s": 0.0, "error": None}
        try:
            client = H2Client(address, timeout=30)
            streams = open_streams(client)
            outcome["streams"] = len(streams)
            client.run_until(lambda: all(st.done for st in streams), H2_HOLD_S)
            for st in streams:
                if st.answered_at is not None:
                    label = st.headers.get("warden-code") or st.headers.get(":status") or "reset"
                    outcome["answers"][label] += 1
                    outcome["slowest_answer_s"] = max(outcome["slowest_answer_s"], st.answered_at - st.opened)
                else:
                    outcome["open_at_end"] += 1
            client.close()
        except Exception as err:  # report it; the soak judges
            outcome["error"] = f"{type(err).__name__}: {err}"
        outcome["answers"] = dict(outcome["answers"])
        results.put(outcome)

    def flood(grpc):
        def open_streams(client):
            if grpc:
                body = grpc_frame(b"\x0a" * (7 << 20), declared=(8 << 20) - 5)
                return [client.open(infer, GRPC_HEADERS, body=body) for _ in range(100)]
            headers = [("content-type", "application/json"), ("content-length", str(8 << 20))]
            return [client.open("/v1/models/iris:predict", headers, body=b" " * (7 << 20)) for _ in range(100)]
        return open_streams

    def stall(half):
        def open_streams(client):
            body = grpc_frame(b"\x0a" * 100, declared=1000) if half else b""
            return [client.open(infer, GRPC_HEADERS, body=body) for _ in range(50)]
        return open_streams

    plan = [("gRPC flood 1", grpc_address, flood(True)), ("gRPC flood 2", grpc_address, flood(True)),
            ("h2c flood", http_address, flood(False)), ("gRPC calls with headers only", grpc_address, stall(False)),
            ("gRPC calls with half a message", grpc_address, stall(True))]
    threads = [threading.Thread(target=attack, args=step) for step in plan]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.put({"name": "done", "held_s": time.monotonic() - began})


class Abuse(threading.Thread):
    """8 clients each send a ~6 MB row request full of unknown keys, leave the answer unread
    for 20 s, then close."""

    def __init__(self, address, host, sampler, load, grpc_address):
        super().__init__(daemon=True)
        self.address, self.sampler, self.load = address, sampler, load
        self.grpc_address = grpc_address
        self.h2 = []  # what each HTTP/2 attacker got
        keys = ",".join(f'"u{i:06d}":0' for i in range(ABUSE_KEYS))
        row = json.dumps(iris_row(random.Random(3)))[:-1]
        body = ('{"instances":[' + row + "," + keys + "}]}").encode()
        self.raw = http_request(host, "/v1/models/iris:predict", body)
        self.body_bytes = len(body)
        self.began = self.closed = None
        self.clients = [None] * ABUSE_CLIENTS
        self.rss_after = {}

    def client(self, i):
        info = {"sent_s": None, "error": None, "answer": None}
        self.clients[i] = info
        try:
            s = socket.create_connection(self.address, timeout=60)
        except OSError as err:
            info["error"] = f"connect: {err}"
            return
        try:
            t = time.monotonic()
            s.sendall(self.raw)
            info["sent_s"] = time.monotonic() - t
        except OSError as err:
            info["error"] = f"send: {err}"
        time.sleep(max(0.0, self.began + ABUSE_HOLD_S - time.monotonic()))
        try:  # what had arrived, without reading it: a peek at the status line
            s.setblocking(False)
            info["answer"] = s.recv(32, socket.MSG_PEEK).split(b"\r\n")[0].decode(errors="replace")
        except (BlockingIOError, OSError) as err:
            info["answer"] = f"nothing readable ({type(err).__name__})"
        s.close()

    def run(self):
        import multiprocessing
        self.began = time.monotonic()
        self.load.in_abuse = True
        results = multiprocessing.Queue()
        attackers = multiprocessing.Process(
            target=h2_attacks, args=(f"{self.address[0]}:{self.address[1]}", self.grpc_address, results), daemon=True)
        attackers.start()
        threads = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(ABUSE_CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.monotonic() + H2_HOLD_S + 60
        while time.monotonic() < deadline:
            try:
                outcome = results.get(timeout=max(0.1, deadline - time.monotonic()))
            except Exception:
                break
            if outcome["name"] == "done":
                break
            self.h2.append(outcome)
        attackers.join(timeout=10)
        if attackers.is_alive():
            attackers.kill()
        self.closed = time.monotonic()
        for wait, label in ((1, "1 s"), (9, "10 s"), (20, "30 s")):
            time.sleep(wait)
            if label == "1 s":
                self.load.in_abuse = False  # the grace period is over
            s = self.sampler.now()
            self.rss_after[label] = s and s[0]


# --------------------------------------------------------------------------------------------
# Report


def mib(kib):
    return "–" if kib is None else f"{kib / 1024:.1f}"


def ms(seconds):
    return "–" if seconds is None else f"{seconds * 1000:.2f}"


def span_ms(values):
    low, high = min(values) * 1000, max(values) * 1000
    return f"{low:.0f} ms" if round(low) == round(high) else f"{low:.0f}–{high:.0f} ms"


def summarise(args, command, binary, phases, soak, sampler, swapper, abuse, server_log, shutdown_code,
              rate, capacity, t0):
    lines, failures = [], []

    def out(text=""):
        lines.append(text)

    in_abuse = (lambda t: abuse is not None and abuse.began is not None and abuse.began <= t
                and (abuse.closed is None or t <= abuse.closed + ABUSE_GRACE_S))

    def check(stats):
        for (kind, status, ok), n in stats.answers.items():
            valid = KINDS[KIND_NAMES[kind]][0]
            if valid and not ok:
                failures.append(f"{stats.name}: {n} valid `{KIND_NAMES[kind]}` answered {status} (or without "
                                f"a prediction)")
            if not valid and status >= 500:
                failures.append(f"{stats.name}: {n} invalid `{KIND_NAMES[kind]}` answered {status}")
        outside = [e for e in stats.errors if not in_abuse(e[0])]
        if outside:
            failures.append(f"{stats.name}: {len(outside)} connection errors outside the abuse phase "
                            f"({Counter(e[2] for e in outside).most_common(3)})")

    for stats in phases:
        check(stats)

    out("# warden soak test")
    out()
    out(f"`{command}`")
    out()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "?"
    if subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                      text=True).stdout.strip():
        commit += " plus uncommitted changes"
    built = datetime.datetime.fromtimestamp(args.binary_mtime).strftime("%Y-%m-%d %H:%M")
    out(f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, {platform.platform()}, "
        f"binary `{os.path.relpath(binary, ROOT)}` (built {built}; tree at {commit}), {args.connections} keep-alive "
        f"connections, models iris and credit from examples/models.")
    out()
    summary_at = len(lines)
    out("## Load")
    out()
    if capacity is not None:
        out(f"Capacity (10 s, full concurrency, same mix): **{capacity:,.0f} answers/s**; target rate 80% = "
            f"**{rate:,.0f} req/s**.")
    else:
        out(f"Target rate **{rate:,.0f} req/s** (--rate).")
    achieved = soak.answered / soak.seconds() if soak.started else 0
    out(f"Soak: {soak.seconds():.0f} s, {soak.sent:,} sent, {soak.answered:,} answered: **{achieved:,.0f} answers/s "
        f"achieved** ({100 * achieved / rate:.1f}% of target); {soak.skipped:,} schedule slots skipped because "
        f"every connection was busy.")
    out()
    for stats in phases:
        valid_n = sum(n for (k, _, _), n in stats.answers.items() if KINDS[KIND_NAMES[k]][0])
        out(f"### {stats.name}: {stats.answered:,} answers in {stats.seconds():.1f} s "
            f"({valid_n:,} valid, {stats.answered - valid_n:,} invalid)")
        out()
        out(f"{stats.answered / stats.seconds():,.0f} answers/s; the load generator used "
            f"{stats.cpu:.1f} CPU s ({100 * stats.cpu / stats.seconds():.0f}% of one core); "
            f"{stats.connects} connections opened.")
        out()
        out("| request | expected | answers | statuses | unexpected |")
        out("|---|---|---|---|---|")
        for k, kind in enumerate(KIND_NAMES):
            valid, _, status, marker = KINDS[kind]
            got = Counter()
            bad = 0
            for (kk, st, ok), n in stats.answers.items():
                if kk == k:
                    got[st] += n
                    bad += 0 if ok else n
            statuses = ", ".join(f"{st}: {n:,}" for st, n in sorted(got.items()))
            out(f"| {kind} ({'valid' if valid else 'invalid'}) | {status} `{marker.decode().strip(chr(34))}` | "
                f"{sum(got.values()):,} | {statuses or '–'} | {bad:,} |")
        out()
        abused = sum(sum(stats.hist[(v, True)]) for v in (True, False))
        where = " outside the abuse phase" if abused else ""
        for label, valid in (("valid", True), ("invalid", False)):
            h = stats.hist[(valid, False)]
            out(f"- latency, {label}{where}: p50 {ms(hist_quantile(h, 0.5))} ms, p90 {ms(hist_quantile(h, 0.9))} ms, "
                f"p99 {ms(hist_quantile(h, 0.99))} ms, p99.9 {ms(hist_quantile(h, 0.999))} ms")
        both = [sum(col) for col in zip(*stats.hist.values())]
        out(f"- latency, all answers: p50 {ms(hist_quantile(both, 0.5))} ms, p99 {ms(hist_quantile(both, 0.99))} ms, "
            f"max {ms(stats.max_latency)} ms")
        if abused:
            h = [a + b for a, b in zip(stats.hist[(True, True)], stats.hist[(False, True)])]
            out(f"- latency during the abuse phase ({abused:,} answers): p50 {ms(hist_quantile(h, 0.5))} ms, "
                f"p99 {ms(hist_quantile(h, 0.99))} ms")
        errors = Counter(e[2] for e in stats.errors)
        outside = Counter(e[2] for e in stats.errors if not in_abuse(e[0]))
        out(f"- connection errors: {len(stats.errors):,} ({sum(outside.values()):,} outside the abuse phase)"
            + ("" if not errors else ": " + "; ".join(f"{what} × {n}" for what, n in errors.most_common())))
        if stats.errors:
            times = ", ".join(f"{e[0] - soak.started:.1f}" for e in stats.errors[:10])
            out(f"  (the first at s {times} of the soak; negative: before it)")
        if stats.unexpected:
            out("- unexpected answers (first few):")
            for t, kind, status, body in stats.unexpected[:8]:
                text = body[:200].decode(errors="replace")
                out(f"  - s {t - soak.started:.1f} of the soak: {kind} → {status} `{text}`")
        out()

    out("## Resident memory (VmRSS of the warden process)")
    out()
    samples = sampler.samples
    soak_samples = [s for s in samples if soak.started and soak.started <= s[0] <= soak.ended + 0.5]
    start_s = soak_samples[0] if soak_samples else None
    end_s = soak_samples[-1] if soak_samples else None
    peak = max(samples, key=lambda s: s[1]) if samples else None
    out("Times are seconds since the soak started (after the warm-up).")
    out()
    out("| when | MiB | threads | open files |")
    out("|---|---|---|---|")
    if start_s:
        out(f"| start of the soak, after warm-up (s {start_s[0] - soak.started:.0f}) | {mib(start_s[1])} | "
            f"{start_s[2]} | {start_s[3]} |")
    if abuse and abuse.began:
        during = [s for s in samples if abuse.began <= s[0] <= (abuse.closed or abuse.began + ABUSE_HOLD_S)]
        if during:
            top = max(during, key=lambda s: s[1])
            out(f"| abuse phase, peak (s {top[0] - soak.started:.0f}) | {mib(top[1])} | {top[2]} | {top[3]} |")
        for label, kib in abuse.rss_after.items():
            out(f"| {label} after the abusers closed | {mib(kib)} | | |")
    if peak:
        out(f"| peak of the whole run (s {peak[0] - soak.started:.0f}) | {mib(peak[1])} | {peak[2]} | {peak[3]} |")
    if abuse and abuse.began:
        calm = [s for s in soak_samples if not (abuse.began - 1 <= s[0] <= (abuse.closed or 0) + 30)]
        if calm:
            top = max(calm, key=lambda s: s[1])
            out(f"| peak outside the abuse phase and 30 s after it (s {top[0] - soak.started:.0f}) | {mib(top[1])} | "
                f"{top[2]} | {top[3]} |")
    if end_s:
        out(f"| end of the soak (s {end_s[0] - soak.started:.0f}) | {mib(end_s[1])} | {end_s[2]} | {end_s[3]} |")
    out()
    if soak_samples:
        step = max(5, round(args.duration / 30 / 5) * 5)
        out(f"Timeline (every {step} s of the soak; answers/s over the preceding {step} s):")
        out()
        out("| s | MiB | threads | answers/s | events |")
        out("|---|---|---|---|---|")
        marks = []
        for sw in swapper.swaps:
            marks.append((soak.started + sw["at"], f"swap to v{sw['version']}"))
        if abuse and abuse.began:
            marks += [(abuse.began, "abuse starts"), (abuse.closed or abuse.began, "abusers close")]
        last = soak.started
        for s in soak_samples:
            if s[0] - last < step and s is not soak_samples[-1]:
                continue
            a, b = int(last - soak.started), int(s[0] - soak.started)
            rate_here = sum(soak.per_second[i] for i in range(a, b)) / max(1, b - a)
            events = ", ".join(label for t, label in marks if last < t <= s[0])
            out(f"| {s[0] - soak.started:.0f} | {mib(s[1])} | {s[2]} | {rate_here:,.0f} | {events} |")
            last = s[0]
        out()

    out("## Hot swaps")
    out()
    if not swapper.swaps:
        out("None.")
    else:
        served = [sw["served_s"] for sw in swapper.swaps if sw["served_s"] is not None]
        out(f"{len(swapper.swaps)} swap{'s' if len(swapper.swaps) > 1 else ''} (iris, the highest version folder "
            f"copied to the next number, watch mode `events`); served {len(served)}"
            + (f", {span_ms(served)} after the copy." if served else "."))
        out()
        out("| swap | at s of the soak | copy ms | served after ms |")
        out("|---|---|---|---|")
        for i, sw in enumerate(swapper.swaps, 1):
            out(f"| to v{sw['version']} | {sw['at']:.1f} | {sw['copy_s'] * 1000:.0f} | "
                + (f"{sw['served_s'] * 1000:.0f} |" if sw["served_s"] is not None
                   else f"**not served** (metric showed {sw['last_seen']}) |"))
            if sw["served_s"] is None:
                failures.append(f"swap to version {sw['version']} not served within {args.swap_timeout:.0f} s")
    out()

    out("## Abuse phase")
    out()
    if abuse is None:
        out("Off (--no-abuse).")
    elif abuse.began is None:
        out("Did not run (the soak ended first).")
    else:
        out(f"At s {abuse.began - soak.started:.0f} of the soak: {ABUSE_CLIENTS} raw-socket clients each sent "
            f"{abuse.body_bytes / 1e6:.2f} MB (an iris row plus {ABUSE_KEYS:,} unknown keys) to "
            f"/v1/models/iris:predict, left the answer unread for {ABUSE_HOLD_S:.0f} s, then closed "
            f"(held {abuse.closed - abuse.began:.1f} s in all).")
        out()
        for i, c in enumerate(abuse.clients):
            if c is None:
                continue
            sent = "–" if c["sent_s"] is None else f"{c['sent_s'] * 1000:.0f} ms"
            out(f"- client {i}: request written in {sent}; waiting at close: `{c['answer']}`"
                + (f"; error: {c['error']}" if c["error"] else ""))
        out()
        out(f"The HTTP/2 attackers (a process of their own, held up to {H2_HOLD_S:.0f} s; each stream's answer is "
            f"its `warden-code`, else its HTTP status):")
        out()
        out("| attacker | streams | answers | slowest answer | open at the end |")
        out("|---|---|---|---|---|")
        for h in abuse.h2:
            answers = ", ".join(f"{k}: {n}" for k, n in sorted(h["answers"].items())) or "–"
            out(f"| {h['name']} | {h['streams']} | {answers} | {h['slowest_answer_s']:.1f} s | {h['open_at_end']} |"
                + (f" error: {h['error']}" if h["error"] else ""))
            if h["error"]:
                failures.append(f"HTTP/2 attacker {h['name']}: {h['error']}")
            if "calls" in h["name"]:
                if h["open_at_end"] or h["slowest_answer_s"] > H2_BODY_TIMEOUT_S + 5:
                    failures.append(f"{h['name']}: {h['open_at_end']} stalled calls left open, slowest answered "
                                    f"after {h['slowest_answer_s']:.1f} s (body timeout {H2_BODY_TIMEOUT_S:.0f} s)")
        if len(abuse.h2) < 5:
            failures.append(f"only {len(abuse.h2)} of the 5 HTTP/2 attackers reported")
    out()

    out("## Server")
    out()
    warn = [line for line in server_log if '"level":"WARN"' in line.upper().replace(" ", "")
            or '"level":"ERROR"' in line.upper().replace(" ", "")]
    out(f"Log lines at warn or error (WARDEN_LOG=warn): {len(warn)}.")
    for line in warn[:12]:
        out(f"    {line.strip()[:400]}")
    out()
    out(f"Stopped with SIGTERM: exit code {shutdown_code}.")
    if shutdown_code != 0:
        failures.append(f"the server did not stop cleanly on SIGTERM (exit code {shutdown_code})")
    out()
    # the headline figures, placed before the details
    unexpected = sum(n for (_, _, ok), n in soak.answers.items() if not ok)
    both = [sum(col) for col in zip(*soak.hist.values())]
    calm = [sum(col) for col in zip(soak.hist[(True, False)], soak.hist[(False, False)])]
    served = [sw["served_s"] for sw in swapper.swaps if sw["served_s"] is not None]
    after = abuse.rss_after if abuse is not None else {}
    head = ["## Summary", "", "| | |", "|---|---|",
            f"| soak | {soak.seconds():.0f} s at a target of {rate:,.0f} req/s"
            + (f" (80% of the measured {capacity:,.0f})" if capacity is not None else "") + " |",
            f"| achieved | {achieved:,.0f} answers/s, {soak.answered:,} answers |",
            f"| unexpected answers | {unexpected:,} |",
            f"| connection errors | {len(soak.errors):,} ({len([e for e in soak.errors if not in_abuse(e[0])]):,} "
            f"outside the abuse phase) |",
            f"| latency p50 / p99, all | {ms(hist_quantile(both, 0.5))} / {ms(hist_quantile(both, 0.99))} ms |",
            f"| latency p50 / p99, outside the abuse phase | {ms(hist_quantile(calm, 0.5))} / "
            f"{ms(hist_quantile(calm, 0.99))} ms |",
            f"| RSS start / peak / end | {mib(start_s and start_s[1])} / {mib(peak and peak[1])} / "
            f"{mib(end_s and end_s[1])} MiB |"]
    if after:
        head.append(f"| RSS 1 s / 10 s / 30 s after the abuse phase | "
                    + " / ".join(mib(v) for v in after.values()) + " MiB |")
    head.append(f"| hot swaps | {len(swapper.swaps)}, served {len(served)}"
                + (f", {span_ms(served)} after the copy" if served else "") + " |")
    head.append(f"| verdict | {'**FAIL**' if failures else '**PASS**'} |")
    lines[summary_at:summary_at] = head + [""]

    out("## Verdict")
    out()
    if failures:
        out("**FAIL**")
        out()
        for f in failures:
            out(f"- {f}")
    else:
        out("**PASS**: every valid request answered 200 with a prediction, no invalid request got a 5xx, no "
            "connection error outside the abuse phase, every swap served.")
    out()
    return "\n".join(lines), failures


# --------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", help="warden binary (default target/release/warden, else target/debug/warden)")
    parser.add_argument("--duration", type=float, default=1800, help="seconds of soak (default 1800)")
    parser.add_argument("--rate", type=float, help="requests/s (default: 80%% of the capacity measured first)")
    parser.add_argument("--swap-every", type=float, default=240, help="seconds between hot swaps; 0: none")
    parser.add_argument("--swap-timeout", type=float, default=60, help="seconds a swap may take to be served")
    parser.add_argument("--abuse", action=argparse.BooleanOptionalAction, default=True,
                        help="the unread-6-MB-answers phase after the first third (default on)")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections (default 16)")
    parser.add_argument("--report", default=str(BENCH / "SOAK.md"), help="Markdown report (default bench/SOAK.md)")
    args = parser.parse_args()

    if args.binary:
        binary = os.path.abspath(args.binary)
    else:
        binary = next((str(p) for p in (ROOT / "target" / "release" / "warden", ROOT / "target" / "debug" / "warden")
                       if os.access(p, os.X_OK)), None)
        if binary is None:
            sys.exit("no warden binary: build one (cargo build --release -p warden-server) or pass --binary")
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary} is not an executable")
    args.binary_mtime = os.stat(binary).st_mtime
    command = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(
        str(ROOT)) else sys.executable, os.path.relpath(__file__, ROOT), *sys.argv[1:]])

    workdir = Path(tempfile.mkdtemp(prefix="warden-soak-"))
    repo = workdir / "models"
    shutil.copytree(MODELS, repo)
    port = free_port()
    grpc_port = free_port()
    host = f"127.0.0.1:{port}"
    base = f"http://{host}"
    env = dict(os.environ, WARDEN_ONNXRUNTIME_LIB=onnxruntime_library())
    env.setdefault("WARDEN_LOG", "warn")
    log_path = workdir / "warden.log"
    log_file = open(log_path, "w")
    t0 = time.monotonic()
    server = subprocess.Popen([binary, "serve", str(repo), "--host", "127.0.0.1", "--port", str(port),
                               "--grpc-port", str(grpc_port)], env=env,
                              stdout=log_file, stderr=subprocess.STDOUT, cwd=workdir)
    failures = []
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                sys.exit(f"warden exited with {server.returncode} before it was ready:\n{log_path.read_text()[-3000:]}")
            try:
                http_get(base, "/v2/health/ready", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("warden not ready within 60 s:\n" + log_path.read_text()[-3000:])
                time.sleep(0.05)
        print(f"warden {binary} ready on {base} after {time.monotonic() - t0:.2f} s (pid {server.pid})", flush=True)

        requests, sequence = make_requests(host)
        load = Load(("127.0.0.1", port), args.connections, requests, sequence, server)
        sampler = Sampler(server.pid, t0)
        sampler.start()
        abuse = Abuse(("127.0.0.1", port), host, sampler, load, f"127.0.0.1:{grpc_port}") if args.abuse else None

        phases = []
        capacity = None
        warm = Stats("warm-up" if args.rate else "capacity measurement")
        phases.append(warm)
        if args.rate:
            rate = args.rate
            print(f"warm-up: 5 s at {rate:,.0f} req/s", flush=True)
            load.run(warm, 5, rate)
        else:
            print(f"capacity: 10 s at full concurrency ({args.connections} connections)", flush=True)
            load.run(warm, 10, None)
            capacity = warm.answered / warm.seconds()
            rate = 0.8 * capacity
            print(f"capacity {capacity:,.0f} answers/s; soak at {rate:,.0f} req/s", flush=True)
        if load.stop:
            sys.exit("the server died during the warm-up:\n" + log_path.read_text()[-3000:])

        soak = Stats("soak")
        phases.append(soak)
        soak_start = time.monotonic()
        swapper = Swapper(base, repo / "iris", soak_start, args.swap_every, args.swap_timeout,
                          soak_start + args.duration)
        if args.swap_every > 0:
            swapper.start()
        if abuse is not None:
            timer = threading.Timer(args.duration / 3, abuse.start)
            timer.daemon = True
            timer.start()
        print(f"soak: {args.duration:.0f} s at {rate:,.0f} req/s, swap every {args.swap_every:.0f} s, abuse "
              f"{'at s ' + format(args.duration / 3, '.0f') if abuse else 'off'}", flush=True)
        load.run(soak, args.duration, rate)
        swapper.halt.set()
        if abuse is not None:
            timer.cancel()
            if abuse.began is not None:
                abuse.join(timeout=120)
        if swapper.is_alive():
            swapper.join(timeout=args.swap_timeout + 10)
        time.sleep(1.1)
        sampler.halt.set()
        sampler.join()
        load.close()
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                shutdown_code = server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
                shutdown_code = "none within 30 s (killed)"
        else:
            shutdown_code = f"none: it had already exited with {server.returncode}"
        log_file.close()
    server_log = log_path.read_text().splitlines()
    report, failures = summarise(args, command, binary, phases, soak, sampler, swapper, abuse, server_log,
                                 shutdown_code, rate, capacity, t0)
    Path(args.report).write_text(report)
    print()
    print(report)
    print(f"written to {args.report}")
    shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
