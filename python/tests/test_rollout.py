"""Rolling out a new version, end to end over the real binary: several versions served at once,
canary and shadow traffic, and the disagreement warden measures between them.

The fixtures are tests/rollout/ (tests/rollout/README.md): an `approval` classifier whose
versions 1 and 2 differ on a known slice of inputs (amount > 800: reject → review), a slow
version 3 and a faulty version 4 (NaN probabilities where amount > 900), and a `price`
regressor pair. Their expected.json holds ONNX Runtime's answers computed offline; the
agreement and confusion warden reports must equal those exactly.

Run by scripts/test after the Rust build; WARDEN_BIN names the binary (default target/debug/warden).
"""

import http.client
import json
import os
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from prometheus_client.parser import text_string_to_metric_families

from warden_process import ROOT, Warden, onnxruntime_library

FIXTURES = ROOT / "tests" / "rollout"
APPROVAL = json.loads((FIXTURES / "approval" / "expected.json").read_text())
APPROVAL_ROWS = json.loads((FIXTURES / "approval" / "rows.json").read_text())
PRICE = json.loads((FIXTURES / "price" / "expected.json").read_text())
PRICE_ROWS = json.loads((FIXTURES / "price" / "rows.json").read_text())
LABELS = APPROVAL["labels"]
DEADLINE = 60


def repository(tmp_path, model, top="", rollout="", versions=None):
    """A repository holding `model` from the fixtures (only `versions` when given), its
    manifest with `top` keys before the tables and `rollout` appended."""
    root = tmp_path / "repo"
    target = root / model
    shutil.copytree(FIXTURES / model, target)
    for folder in target.iterdir():
        if folder.is_dir() and versions is not None and int(folder.name) not in versions:
            shutil.rmtree(folder)
    manifest = target / "warden.toml"
    manifest.write_text(top + "\n" + manifest.read_text() + "\n" + rollout)
    return root


class Client:
    """One keep-alive HTTP connection."""

    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)

    def call(self, method, path, body=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"content-type": "application/json", **(headers or {})}
        self.connection.request(method, path, body=data, headers=all_headers)
        answer = self.connection.getresponse()
        raw = answer.read()
        return answer.status, dict((k.lower(), v) for k, v in answer.getheaders()), json.loads(raw) if raw else None

    def predict(self, rows, headers=None, path="/v1/models/approval:predict"):
        return self.call("POST", path, {"instances": rows}, headers)

    def close(self):
        self.connection.close()


def report(warden, model="approval"):
    client = Client(warden.address)
    try:
        status, _, body = client.call("GET", f"/v1/models/{model}/rollout")
    finally:
        client.close()
    assert status == 200, body
    return body


def since_start(body):
    window = body["rollout"]["windows"][-1]
    assert window["window"] == "since_start"
    return window


def comparison(window, primary, other):
    [found] = [c for c in window["comparisons"] if (c["primary"], c["other"]) == (primary, other)]
    return found


def arm(window, version):
    [found] = [v for v in window["versions"] if v["version"] == version]
    return found


def poll(what, check, within=DEADLINE):
    """Polls `check()` until it returns a true value, with a deadline (no sleeps to wait)."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        time.sleep(0.05)


def metrics(warden):
    client = Client(warden.address)
    try:
        client.connection.request("GET", "/metrics")
        text = client.connection.getresponse().read().decode()
    finally:
        client.close()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def sample(samples, name, **labels):
    found = [value for got, value in samples.get(name, []) if all(got.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


def settle(warden, model="approval"):
    """Waits until no shadow run is in flight, so the next request's shadow is never shed for
    the last one's (the rule that keeps shadow work to idle capacity)."""
    poll("shadow runs finished", lambda: report(warden, model)["rollout"]["shadow_in_flight"] == 0)


def test_shadow_agreement_and_confusion_equal_the_offline_figures_exactly(tmp_path):
    # Version 1 answers; every request also runs on version 2, compared and discarded.
    repo = repository(tmp_path, "approval", top="version = 1", rollout="[rollout]\ncandidate = 2\nshadow = 1.0\nmin_agreement = 0.9\n")
    warden = Warden([str(repo)])
    try:
        client = Client(warden.address)
        for start in range(0, len(APPROVAL_ROWS), 100):
            status, headers, body = client.predict(APPROVAL_ROWS[start:start + 100])
            assert status == 200, body
            assert headers["x-model-version"] == "1"
            got = [LABELS.index(p["label"]) for p in body["predictions"]]
            assert got == APPROVAL["versions"]["1"]["label"][start:start + 100]
            settle(warden)
        client.close()

        def compared():
            window = since_start(report(warden))
            pair = comparison(window, "1", "2")
            return window if pair["rows"] == len(APPROVAL_ROWS) else None

        window = poll("every shadow run compared", compared)
        pair = comparison(window, "1", "2")
        assert pair["agreed"] == APPROVAL["agreement"] == 1629
        assert pair["confusion"]["labels"] == LABELS
        assert pair["confusion"]["counts"] == APPROVAL["confusion"]
        assert pair["agreement"] == pytest.approx(1629 / 2000, abs=1e-12)
        # Version 2 moved probability only on the disagreeing slice: the largest |Δ| per class
        # is exact and equals the offline figure.
        v1 = np.array(APPROVAL["versions"]["1"]["probabilities"], dtype=np.float32).astype(np.float64)
        v2 = np.array(APPROVAL["versions"]["2"]["probabilities"], dtype=np.float32).astype(np.float64)
        deltas = pair["probability_delta"]
        for i, cls in enumerate(LABELS):
            assert deltas[cls]["max"] == pytest.approx(np.abs(v2[:, i] - v1[:, i]).max(), abs=1e-7)
        assert pair["psi"] is not None and pair["psi"] > 0
        assert arm(window, "1")["requests"] == 20 and arm(window, "1")["errors"] == 0
        assert arm(window, "2")["shadow_runs"] == 20 and arm(window, "2")["shadow_errors"] == 0
        # Nothing on the reverse pair: version 2 answered no request.
        assert comparison(window, "2", "1")["rows"] == 0

        # The same counts in Prometheus, parsed by its own client.
        samples = metrics(warden)
        pair_labels = {"model": "approval", "primary": "1", "other": "2"}
        assert sample(samples, "warden_rollout_compared_rows_total", **pair_labels) == 2000
        assert sample(samples, "warden_rollout_agreed_rows_total", **pair_labels) == 1629
        for i, primary_label in enumerate(LABELS):
            for j, other_label in enumerate(LABELS):
                assert sample(samples, "warden_rollout_confusion_total", **pair_labels,
                              primary_label=primary_label, other_label=other_label) == APPROVAL["confusion"][i][j]
        assert sample(samples, "warden_rollout_share", model="approval", kind="shadow") == 1.0
        dropped = [value for labels, value in samples["warden_shadow_dropped_total"] if labels["model"] == "approval"]
        assert sum(dropped) == 0
        assert sample(samples, "warden_rollout_agreement_ratio", **pair_labels, window="5m") == pytest.approx(0.8145)

        # The page shows the rollout, the agreement under min_agreement marked, and where the
        # versions disagree.
        client = Client(warden.address)
        client.connection.request("GET", "/")
        page = client.connection.getresponse().read().decode()
        client.close()
        assert "approval</a>: rollout</h2>" in page
        assert "default version 1 · candidate 2 · canary 0.0% · shadow 100.0%" in page
        assert '<td class="warn">0.8145</td>' in page
        assert ("<caption>since the rollout began: version 1 label (rows) × version 2 label (columns)</caption>"
                "<tr><th></th><th>approve</th><th>review</th><th>reject</th></tr>"
                "<tr><th>approve</th><td>716</td><td>0</td><td>0</td></tr>"
                "<tr><th>review</th><td>0</td><td>744</td><td>0</td></tr>"
                '<tr><th>reject</th><td>0</td><td class="warn">371</td><td>169</td></tr></table>') in page

        # Agreement under the manifest's min_agreement is one log event per window crossed,
        # judged at most once a second when traffic is counted or the report read.
        def warned():
            report(warden)
            while not warden.lines.empty():
                warden.seen.append(warden.lines.get())
            events = [json.loads(line) for line in warden.seen if line.startswith("{")]
            below = [e for e in events if "agree less than" in e.get("message", "")]
            return below if len(below) >= 2 else None

        below = poll("agreement log events", warned)
        assert sorted(e["window"] for e in below) == ["1h", "5m"]
        assert all(e["primary_version"] == 1 and e["other_version"] == 2 for e in below)
    finally:
        warden.stop()


def test_a_regressor_pair_reports_delta_and_mean_signed_difference(tmp_path):
    repo = repository(tmp_path, "price", top="version = 1", rollout="[rollout]\ncandidate = 2\nshadow = 1.0\n")
    warden = Warden([str(repo)])
    try:
        client = Client(warden.address)
        for start in range(0, len(PRICE_ROWS), 50):
            status, headers, body = client.predict(PRICE_ROWS[start:start + 50], path="/v1/models/price:predict")
            assert status == 200, body
            assert headers["x-model-version"] == "1"
            settle(warden, "price")
        client.close()
        pair = poll("every shadow run compared",
                    lambda: (lambda p: p if p["rows"] == len(PRICE_ROWS) else None)(
                        comparison(since_start(report(warden, "price")), "1", "2")))
        v1 = np.array(PRICE["versions"]["1"]["variable"], dtype=np.float64)
        v2 = np.array(PRICE["versions"]["2"]["variable"], dtype=np.float64)
        assert pair["mean_signed_difference"] == pytest.approx((v2 - v1).mean(), rel=1e-9)
        assert pair["delta"]["max"] == pytest.approx(np.abs(v2 - v1).max(), rel=1e-12)
        assert "confusion" not in pair and "probability_delta" not in pair
        assert pair["agreed"] == int((v1 == v2).sum())
    finally:
        warden.stop()


def test_canary_share_is_binomial_and_a_sticky_key_always_meets_one_version(tmp_path):
    repo = repository(tmp_path, "approval", top="version = 1",
                      rollout='[rollout]\ncandidate = 2\ncanary = 0.2\nsticky_header = "x-customer"\n')
    warden = Warden([str(repo)])
    try:
        requests, threads = 10_000, 4
        seen = {"1": 0, "2": 0}
        failures = []
        lock = threading.Lock()
        row = [APPROVAL_ROWS[2]]  # amount 814: versions 1 and 2 answer differently

        def send(count):
            client = Client(warden.address)
            mine = {"1": 0, "2": 0}
            for _ in range(count):
                status, headers, body = client.predict(row)
                version = headers.get("x-model-version")
                want = LABELS[APPROVAL["versions"][version]["label"][2]] if version in mine else None
                if status != 200 or body["predictions"][0]["label"] != want:
                    failures.append((status, version, body))
                    continue
                mine[version] += 1
            client.close()
            with lock:
                for k, v in mine.items():
                    seen[k] += v

        workers = [threading.Thread(target=send, args=(requests // threads,)) for _ in range(threads)]
        [w.start() for w in workers]
        [w.join() for w in workers]
        assert not failures, failures[:3]
        # 0.2 × 10,000 = 2,000, σ = 40: within 4.5σ (a false alarm once in ~150,000 runs).
        assert abs(seen["2"] - 2000) <= 180, seen
        window = since_start(report(warden))
        assert arm(window, "2")["requests"] == seen["2"]
        assert arm(window, "1")["requests"] == seen["1"]

        # A sticky key meets one version, every time; the keys split like the requests did.
        # Over gRPC the key is the same metadata entry, and meets the same version.
        client = Client(warden.address)
        grpc = grpcclient.InferenceServerClient(warden.grpc_address)
        x = grpcclient.InferInput("input", [1, 2], "FP32")
        x.set_data_from_numpy(np.array([[row[0]["amount"], row[0]["tenure"]]], dtype=np.float32))
        on_candidate = 0
        for key in range(300):
            sticky = {"x-customer": f"customer-{key}"}
            versions = {client.predict(row, sticky)[1]["x-model-version"] for _ in range(3)}
            if key % 10 == 0:
                versions.add(grpc.infer("approval", [x], headers=sticky).get_response().model_version)
            assert len(versions) == 1, (key, versions)
            on_candidate += versions == {"2"}
        grpc.close()
        client.close()
        # 300 keys at 0.2: 60, σ ≈ 6.9; within 4.5σ.
        assert abs(on_candidate - 60) <= 31, on_candidate
    finally:
        warden.stop()


def test_a_slow_shadow_leaves_the_primary_latency_and_counts_its_drops(tmp_path):
    # Version 3 takes ~40-50 ms a run; its shadow queue holds 2.
    repo = repository(tmp_path, "approval", top="version = 1",
                      rollout="[rollout]\ncandidate = 3\nshadow = 0.0\nshadow_queue = 2\n")
    warden = Warden([str(repo)])
    try:
        client = Client(warden.address)
        row = [APPROVAL_ROWS[0]]

        def latencies(count):
            out = []
            for _ in range(count):
                started = time.perf_counter()
                status, headers, body = client.predict(row)
                out.append(time.perf_counter() - started)
                assert status == 200 and headers["x-model-version"] == "1", body
            return np.array(out)

        latencies(50)  # warm up
        without = latencies(300)
        status, _, body = client.call("POST", "/v2/repository/models/approval/rollout", {"shadow": 1.0})
        assert status == 200 and body["rollout"]["shadow"] == 1.0, body
        with_shadow = latencies(300)
        # Waiting for a shadow run would add 40 ms to every answer; the primary's median stays
        # where it was (generous for a noisy 2-core machine, far below one shadow run).
        assert np.median(with_shadow) < np.median(without) * 2 + 0.004, (np.median(without), np.median(with_shadow))
        assert np.percentile(with_shadow, 90) < 0.030, np.percentile(with_shadow, 90)

        def settled():
            body = report(warden)
            return body if body["rollout"]["shadow_in_flight"] == 0 else None

        settled_report = poll("shadow runs finished", settled)
        window = since_start(settled_report)
        runs = arm(window, "3")["shadow_runs"]
        samples = metrics(warden)
        dropped = {labels["reason"]: value for labels, value in samples["warden_shadow_dropped_total"]
                   if labels["model"] == "approval" and labels["version"] == "3"}
        # Every shadowed request either ran on version 3 or was dropped, and counted.
        assert runs + sum(dropped.values()) == 300, (runs, dropped)
        # Shed because a run already waited for idle CPU, two were in flight, or one was not
        # finished by its request's deadline.
        assert dropped["busy"] + dropped["queue_full"] + dropped["deadline"] > 0 and runs >= 2, (runs, dropped)
        assert sample(samples, "warden_shadow_runs_total", model="approval", version="3") == runs
        # The shadow runs on version 3's idle lane: a thread at Linux's SCHED_IDLE policy, which
        # the kernel runs only on CPU time no request's thread wants.
        assert thread_policies(warden.process.pid, "idle-approval") == [SCHED_IDLE]
        client.close()
    finally:
        warden.stop()


SCHED_IDLE = 5


def thread_policies(pid, name):
    """The scheduling policy (field 41 of /proc/…/stat) of each of `pid`'s threads named `name`."""
    policies = []
    tasks = f"/proc/{pid}/task"
    for task in os.listdir(tasks):
        with open(f"{tasks}/{task}/comm") as comm, open(f"{tasks}/{task}/stat") as stat_file:
            if comm.read().strip() != name:
                continue
            stat = stat_file.read()
            # Fields after the command name, which is in parentheses and may hold spaces.
            fields = stat[stat.rindex(")") + 2:].split()
            policies.append(int(fields[41 - 3]))
    return policies


def test_a_failing_shadow_never_changes_an_answer_and_its_errors_are_counted(tmp_path):
    # Version 4 answers NaN probabilities where amount > 900: its output guard refuses them.
    repo = repository(tmp_path, "approval", top="version = 1", rollout="[rollout]\ncandidate = 4\nshadow = 1.0\n")
    warden = Warden([str(repo)])
    try:
        client = Client(warden.address)
        count = 400
        for i in range(count):
            status, headers, body = client.predict([APPROVAL_ROWS[i]])
            assert status == 200, body
            assert headers["x-model-version"] == "1"
            assert body["predictions"][0]["label"] == LABELS[APPROVAL["versions"]["1"]["label"][i]]
            want = APPROVAL["versions"]["1"]["probabilities"][i]
            got = [body["predictions"][0]["probabilities"][c] for c in LABELS]
            assert got == pytest.approx(want, abs=1e-7)
            settle(warden)
        client.close()
        faulty = sum(1 for i in APPROVAL["faulty_rows"] if i < count)
        assert faulty > 0

        def settled():
            window = since_start(report(warden))
            v4 = arm(window, "4")
            return window if v4["shadow_runs"] == count else None

        window = poll("every shadow run counted", settled)
        assert arm(window, "4")["shadow_errors"] == faulty
        assert comparison(window, "1", "4")["rows"] == count - faulty
        assert comparison(window, "1", "4")["agreed"] == count - faulty
        assert arm(window, "1")["errors"] == 0
    finally:
        warden.stop()


def test_promotion_and_rollback_under_concurrent_load_lose_no_request(tmp_path):
    repo = repository(tmp_path, "approval", top="version = 1", rollout="[rollout]\ncandidate = 2\ncanary = 0.5\nshadow = 0.5\n")
    warden = Warden([str(repo)])
    try:
        stop = threading.Event()
        answered, failures = [], []

        def load(offset):
            client = Client(warden.address)
            i = offset
            while not stop.is_set():
                i = (i + 7) % len(APPROVAL_ROWS)
                status, headers, body = client.predict([APPROVAL_ROWS[i]])
                version = headers.get("x-model-version")
                if status != 200 or version not in ("1", "2") or \
                        body["predictions"][0]["label"] != LABELS[APPROVAL["versions"][version]["label"][i]]:
                    failures.append((status, version, body))
                answered.append(version)
            client.close()

        workers = [threading.Thread(target=load, args=(n,)) for n in range(3)]
        [w.start() for w in workers]
        admin = Client(warden.address)
        changes = [
            ({"canary": 0.0}, lambda b: b["rollout"]["canary"] == 0.0),          # roll back
            ({"canary": 0.3}, lambda b: b["rollout"]["canary"] == 0.3),
            ({"default_version": 2}, lambda b: b["default_version"] == "2" and b["rollout"] is None),  # promote
            ({"candidate": 1, "canary": 0.2}, lambda b: b["rollout"]["candidate"] == "1"),  # 1 is now the candidate
            ({"end": True}, lambda b: b["rollout"] is None),
            ({"default_version": 1}, lambda b: b["default_version"] == "1"),
        ]
        for change, check in changes:
            before = len(answered)
            poll("traffic between changes", lambda: len(answered) >= before + 200)
            status, _, body = admin.call("POST", "/v2/repository/models/approval/rollout", change)
            assert status == 200 and check(body), (change, body)
        poll("traffic after the last change", lambda: len(answered) >= before + 400)
        stop.set()
        [w.join() for w in workers]
        assert not failures, failures[:3]
        assert len(answered) >= 1400
        # After the last change only version 1 answers.
        status, headers, _ = admin.predict([APPROVAL_ROWS[0]])
        assert status == 200 and headers["x-model-version"] == "1"
        # A change that cannot be is refused whole, naming why, and changes nothing.
        status, _, body = admin.call("POST", "/v2/repository/models/approval/rollout", {"candidate": 9})
        assert status == 400 and body["code"] == "invalid_input" and "9" in body["error"], body
        status, _, body = admin.call("POST", "/v2/repository/models/approval/rollout", {"canary": 1.5, "candidate": 2})
        assert status == 400 and body["code"] == "invalid_input", body
        status, _, body = admin.call("POST", "/v2/repository/models/approval/rollout", {"promote": 2})
        assert status == 400 and body["code"] == "invalid_input" and "promote" in body["error"], body
        assert report(warden)["rollout"] is None
        admin.close()
    finally:
        warden.stop()


def test_the_guard_rolls_a_failing_canary_back_by_itself(tmp_path):
    repo = repository(tmp_path, "approval", top="version = 1",
                      rollout="[rollout]\ncandidate = 4\ncanary = 0.5\n[rollout.guard]\nmax_error_rate = 0.02\nmin_requests = 50\n")
    warden = Warden([str(repo)])
    try:
        client = Client(warden.address)
        refused = 0

        def rolled_back():
            nonlocal refused
            for i in range(20):
                status, headers, body = client.predict([APPROVAL_ROWS[i]])
                if status != 200:
                    assert status == 500 and body["code"] == "invalid_output" and headers["x-model-version"] == "4"
                    refused += 1
            body = report(warden)["rollout"]
            return body if body["canary"] == 0.0 else None

        body = poll("the guard's rollback", rolled_back)
        assert refused > 0
        assert body["configured_canary"] == 0.5 and "error rate" in body["rolled_back"], body
        assert body["rollbacks"] == 1
        samples = metrics(warden)
        assert sample(samples, "warden_rollout_rollbacks_total", model="approval") == 1
        assert sample(samples, "warden_rollout_share", model="approval", kind="canary") == 0.0
        # From now on the default version answers every request.
        for i in range(200):
            status, headers, _ = client.predict([APPROVAL_ROWS[i]])
            assert status == 200 and headers["x-model-version"] == "1"
        events = [json.loads(line) for line in warden.seen + list(warden.lines.queue) if line.startswith("{")]
        assert any("canary rolled back" in e.get("message", "") and e["level"] == "ERROR" for e in events)
        client.close()
    finally:
        warden.stop()


def test_each_version_is_reached_by_its_url_and_grpc_model_version(tmp_path):
    repo = repository(tmp_path, "approval", top="version = 1\nversion_policy = { specific = [1, 2] }")
    warden = Warden([str(repo)])
    try:
        client = Client(warden.address)
        rows = APPROVAL_ROWS[:50]
        flat = [x for r in rows for x in (r["amount"], r["tenure"])]
        for version in ("1", "2"):
            want = APPROVAL["versions"][version]["label"][:50]
            status, headers, body = client.predict(rows, path=f"/v1/models/approval/versions/{version}:predict")
            assert status == 200 and headers["x-model-version"] == version, body
            assert [LABELS.index(p["label"]) for p in body["predictions"]] == want
            v2 = {"inputs": [{"name": "input", "shape": [50, 2], "datatype": "FP32", "data": flat}]}
            status, headers, body = client.call("POST", f"/v2/models/approval/versions/{version}/infer", v2)
            assert status == 200 and body["model_version"] == version, body
            [label] = [o for o in body["outputs"] if o["name"] == "label"]
            assert label["data"] == want
        # Naming no version reaches the default.
        status, headers, body = client.predict(rows[:1])
        assert headers["x-model-version"] == "1"
        # Version 3 is on disk but not in the policy.
        status, _, body = client.predict(rows[:1], path="/v1/models/approval/versions/3:predict")
        assert status == 404 and body["code"] == "model_not_found" and "1, 2" in body["error"], body
        status, _, body = client.call("GET", "/v1/models/approval/rollout")
        assert body["versions"] == ["1", "2"] and body["default_version"] == "1" and body["rollout"] is None
        client.close()

        grpc = grpcclient.InferenceServerClient(warden.grpc_address)
        x = grpcclient.InferInput("input", [50, 2], "FP32")
        x.set_data_from_numpy(np.array(flat, dtype=np.float32).reshape(50, 2))
        for version in ("1", "2"):
            result = grpc.infer("approval", [x], model_version=version)
            assert result.get_response().model_version == version
            assert result.as_numpy("label").tolist() == APPROVAL["versions"][version]["label"][:50]
        grpc.close()
    finally:
        warden.stop()


def test_an_incompatible_version_is_a_start_up_error_naming_what_differs(tmp_path):
    # Version 5 is the price regressor: the same input, other outputs. The versions share the
    # model's manifest, so the candidate must answer its outputs.
    repo = repository(tmp_path, "approval", top="version = 1", rollout="[rollout]\ncandidate = 5\n", versions={1})
    shutil.copytree(FIXTURES / "price" / "1", repo / "approval" / "5")
    binary = os.environ.get("WARDEN_BIN", str(ROOT / "target" / "debug" / "warden"))
    env = dict(os.environ, WARDEN_ONNXRUNTIME_LIB=onnxruntime_library())
    checked = subprocess.run([binary, "check", str(repo), "--port", "0", "--grpc-port", "0"], capture_output=True, text=True, timeout=120, env=env)
    failing = [line for line in checked.stdout.splitlines() if line.startswith("FAIL")]
    assert failing == [
        "FAIL  model approval version 5: the manifest of model `approval` does not match its graph: "
        "output `label` is not a graph output (the graph's outputs are: variable); output `probabilities` "
        "is not a graph output (the graph's outputs are: variable)"], checked.stdout
    assert checked.returncode == 65
    served = subprocess.run([binary, "serve", str(repo), "--port", "0", "--host", "127.0.0.1"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert served.returncode == 65, served.stderr
    assert "model `approval`: the manifest of model `approval` does not match its graph" in served.stderr


def test_a_manifest_edit_changes_the_rollout_through_hot_reload(tmp_path):
    repo = repository(tmp_path, "approval", top="version = 1", rollout="[rollout]\ncandidate = 2\ncanary = 1.0\n")
    manifest = repo / "approval" / "warden.toml"
    warden = Warden([str(repo)])
    try:
        client = Client(warden.address)
        assert client.predict([APPROVAL_ROWS[0]])[1]["x-model-version"] == "2"
        # Promote by editing the manifest: version 2 becomes the default, the rollout ends.
        manifest.write_text(manifest.read_text().replace("version = 1", "version = 2").replace(
            "[rollout]\ncandidate = 2\ncanary = 1.0\n", ""))
        body = poll("the reload", lambda: (lambda b: b if b["default_version"] == "2" else None)(report(warden)))
        assert body["rollout"] is None and body["versions"] == ["2"], body
        for i in range(50):
            status, headers, _ = client.predict([APPROVAL_ROWS[i]])
            assert status == 200 and headers["x-model-version"] == "2"
        # Version 2 was loaded already: the reload kept it rather than loading it again.
        lines = warden.seen + list(warden.lines.queue)
        loaded = [json.loads(l) for l in lines if l.startswith("{") and '"model loaded and warmed up"' in l]
        assert [e["version"] for e in loaded if e.get("model") == "approval"].count(2) == 1, loaded
        client.close()
    finally:
        warden.stop()


def test_a_hostile_rollout_change_is_refused_whole_with_a_clear_error(tmp_path):
    repo = repository(tmp_path, "approval", top="version = 1", rollout="[rollout]\ncandidate = 2\ncanary = 0.1\n")
    warden = Warden([str(repo)])
    try:
        client = Client(warden.address)
        path = "/v2/repository/models/approval/rollout"

        def raw(body, content_type="application/json"):
            client.connection.request("POST", path, body=body, headers={"content-type": content_type})
            answer = client.connection.getresponse()
            return answer.status, json.loads(answer.read())

        # Bounded in bytes: 4 KiB at most, whatever the server's body limit for predictions.
        status, body = raw(b'{"canary": 0.5, "pad": "' + b"x" * (1 << 20) + b'"}')
        assert (status, body["code"]) == (413, "payload_too_large"), body
        assert body["error"] == "a rollout change is at most 4096 bytes"
        client.close()
        client = Client(warden.address)
        for bad, word in [(b"", "EOF"), (b"[]", "object"), (b'{"canary": "half"}', "canary"),
                          (b'{"canary": 0.5, "weights": [1]}', "weights"), (b'{"canary": -0.1}', "canary"),
                          (b'{"shadow": 1e308}', "shadow"), (b'{"default_version": 7}', "7"),
                          (b'{"candidate": 1}', "1"), (b"\xff\xfe", "")]:
            status, body = raw(bad)
            assert status == 400 and body["code"] == "invalid_input" and word in body["error"], (bad, body)
            assert len(body["error"]) < 600
        status, body = raw(b"{}")
        assert status == 200 and body["rollout"]["canary"] == 0.1
        status, _, body = client.call("POST", "/v2/repository/models/nope/rollout", {"canary": 0.1})
        assert status == 404 and body["code"] == "model_not_found"
        # Nothing above changed the rollout.
        rollout = report(warden)["rollout"]
        assert (rollout["candidate"], rollout["canary"], rollout["shadow"]) == ("2", 0.1, 0.0)
        client.close()
    finally:
        warden.stop()
