"""The prediction log, end to end over the real binary: requests sent over the row API, V2 REST
and gRPC are read back from the Parquet files with pyarrow, pandas and DuckDB, value by value;
sampling by request id, redaction, rotation and retention, a full queue, a kill -9 mid-write, a
directory that vanishes, and an unwritable one at start.

Run by scripts/test after the Rust build; WARDEN_BIN names the binary (default target/debug/warden).
"""

import glob
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import subprocess
import time

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import tritonclient.grpc as grpcclient
from prometheus_client.parser import text_string_to_metric_families

from warden_process import MODELS, ROOT, Warden, onnxruntime_library

KEY = "a-test-key-never-in-a-file"
COUNTRIES = ["DE", "FR", "GB", "IN", "US"]
EMPLOYMENT = ["salaried", "self_employed", "unemployed"]


def credit_repository(tmp_path, log_table=""):
    """The credit example in a repository of its own, its manifest ending with `log_table`."""
    root = tmp_path / "repo"
    shutil.copytree(MODELS / "credit", root / "credit")
    manifest = root / "credit" / "warden.toml"
    manifest.write_text(manifest.read_text() + "\n" + log_table)
    return root


def rows(count, seed=7):
    rng = np.random.default_rng(seed)
    return [
        {
            "age": float(np.round(rng.uniform(18, 90), 3)),
            "income": float(np.round(rng.uniform(0, 200000), 2)),
            "debt_ratio": float(rng.uniform(0, 2.5)),
            "country": COUNTRIES[int(rng.integers(len(COUNTRIES)))],
            "employment": EMPLOYMENT[int(rng.integers(len(EMPLOYMENT)))],
        }
        for _ in range(count)
    ]


def predict_credit(client, batch, times):
    """Sends `batch` to the credit model `times` times; every answer must be a 200."""
    for _ in range(times):
        status, raw = client.call("POST", "/v1/models/credit:predict", {"instances": batch})
        assert status == 200, raw


class Client:
    """One keep-alive HTTP connection."""

    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)

    def call(self, method, path, body=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        self.connection.request(method, path, body=data, headers={"content-type": "application/json", **(headers or {})})
        answer = self.connection.getresponse()
        raw = answer.read()
        return answer.status, raw

    def close(self):
        self.connection.close()


def read_log(directory, model="credit"):
    files = sorted(glob.glob(str(directory / model / "*.parquet")))
    assert files, f"no published files in {directory / model}: {os.listdir(directory)}"
    return pq.read_table(files).to_pandas(), files


def metrics(warden):
    client = Client(warden.address)
    try:
        status, raw = client.call("GET", "/metrics")
    finally:
        client.close()
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(raw.decode()):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples


def sample(samples, name, **labels):
    return sum(v for l, v in samples.get(name, []) if all(l.get(k) == w for k, w in labels.items()))


def poll(what, check, within=30):
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        time.sleep(0.05)


def sampled(share, request_id):
    """warden's sampling rule (prediction_log::sampled), written again: FNV-1a of the id, then
    SplitMix64's finaliser, the top 53 bits as a share."""
    if share >= 1.0:
        return True
    if share <= 0.0:
        return False
    mask = (1 << 64) - 1
    h = 0xCBF29CE484222325
    for byte in request_id.encode():
        h ^= byte
        h = (h * 0x100000001B3) & mask
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & mask
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & mask
    h ^= h >> 31
    return (h >> 11) / float(1 << 53) < share


def test_every_logged_value_equals_what_was_sent_and_answered(tmp_path):
    log_dir = tmp_path / "log"
    repo = credit_repository(tmp_path, '[prediction_log]\ndrop = ["income"]\nhash = ["employment"]\n')
    warden = Warden([str(repo), "--prediction-log", str(log_dir)], env={"WARDEN_PREDICTION_LOG_KEY": KEY})
    sent = {}  # request id -> (protocol, rows, answer rows as (label, [p_approve, p_reject]))
    refused = {}
    try:
        client = Client(warden.address)
        data = rows(120)
        # The row API: 1 to 3 rows a request.
        i = 0
        for n in range(40):
            batch = data[i:i + 1 + n % 3]
            i += len(batch)
            rid = f"rows-{n}"
            status, raw = client.call("POST", "/v1/models/credit:predict", {"instances": batch}, {"x-request-id": rid})
            assert status == 200, raw
            answer = json.loads(raw)["predictions"]
            sent[rid] = ("rows", batch, [(p["label"], [p["probabilities"]["approve"], p["probabilities"]["reject"]]) for p in answer])
        # V2 REST, a tensor per feature.
        for n, row in enumerate(data[80:100]):
            rid = f"v2-{n}"
            body = {"inputs": [
                {"name": name, "shape": [1, 1], "datatype": "BYTES" if name in ("country", "employment") else "FP32", "data": [row[name]]}
                for name in ("age", "income", "debt_ratio", "country", "employment")
            ]}
            status, raw = client.call("POST", "/v2/models/credit/infer", body, {"x-request-id": rid})
            assert status == 200, raw
            outputs = {o["name"]: o["data"] for o in json.loads(raw)["outputs"]}
            sent[rid] = ("rest_v2", [row], [(outputs["label"][0], outputs["probabilities"][:2])])
        # gRPC, through Triton's client.
        grpc = grpcclient.InferenceServerClient(warden.grpc_address)
        for n, row in enumerate(data[100:120]):
            rid = f"grpc-{n}"
            inputs = []
            for name in ("age", "income", "debt_ratio", "country", "employment"):
                text = name in ("country", "employment")
                tensor = grpcclient.InferInput(name, [1, 1], "BYTES" if text else "FP32")
                tensor.set_data_from_numpy(np.array([[row[name]]], dtype=object if text else np.float32))
                inputs.append(tensor)
            result = grpc.infer("credit", inputs, headers={"x-request-id": rid})
            label = result.as_numpy("label")[0]
            label = label.decode() if isinstance(label, bytes) else str(label)
            sent[rid] = ("grpc", [row], [(label, [float(x) for x in result.as_numpy("probabilities")[0]])])
        grpc.close()
        # Refused: an unknown country, a missing feature.
        for n, bad in enumerate([{**data[0], "country": "XX"}, {k: v for k, v in data[1].items() if k != "age"}]):
            rid = f"refused-{n}"
            status, raw = client.call("POST", "/v1/models/credit:predict", {"instances": [bad]}, {"x-request-id": rid})
            assert status == 400, raw
            refused[rid] = json.loads(raw)
        client.close()
    finally:
        warden.stop()  # SIGTERM publishes every open file

    table, files = read_log(log_dir)
    assert not [f for f in os.listdir(log_dir / "credit") if f.startswith(".")], "a temporary file was left"
    schema = pq.read_schema(files[0])
    assert schema.metadata[b"warden.prediction_log.schema"] == b"1"
    assert schema.metadata[b"warden.model"] == b"credit"
    assert "income" not in schema.names
    assert schema.field("age").type == "float" and schema.field("country").type.value_type == "string"
    assert str(schema.field("timestamp").type) == "timestamp[us, tz=UTC]"

    answered = table[table["status"] == "ok"]
    assert len(answered) == sum(len(r) for _, r, _ in sent.values())
    for rid, (protocol, batch, answers) in sent.items():
        logged = answered[answered["request_id"] == rid].sort_values("row")
        assert list(logged["row"]) == list(range(len(batch))), rid
        assert set(logged["protocol"]) == {protocol}
        for (_, got), row, (label, probabilities) in zip(logged.iterrows(), batch, answers):
            # Floats bit-exact as the model was given them (float32 inputs).
            assert np.float32(got["age"]).tobytes() == np.float32(row["age"]).tobytes(), (rid, got["age"], row["age"])
            assert np.float32(got["debt_ratio"]).tobytes() == np.float32(row["debt_ratio"]).tobytes()
            assert got["country"] == row["country"]
            assert got["employment"] == hmac.new(KEY.encode(), row["employment"].encode(), hashlib.sha256).hexdigest()
            assert got["label"] == label
            assert [np.float32(got["probability_approve"]), np.float32(got["probability_reject"])] == [np.float32(p) for p in probabilities]
            assert got["version"] == 1 and got["role"] == "primary" and got["sample_weight"] == 1.0
            assert got["latency_us"] > 0 and got["error"] is None
    for rid, body in refused.items():
        [logged] = table[table["request_id"] == rid].to_dict("records")
        assert logged["status"] == "invalid_input"
        assert json.loads(logged["error"]) == body
        # Refused before admission: no row, no feature or output values.
        assert pd.isna(logged["row"]) and pd.isna(logged["age"]) and pd.isna(logged["label"])

    # DuckDB reads the same files: one request by id, agreement of the label with a rule.
    con = duckdb.connect()
    pattern = str(log_dir / "credit" / "*.parquet")
    found = con.execute(f"SELECT row, label FROM read_parquet('{pattern}') WHERE request_id = 'rows-5' ORDER BY row").fetchall()
    assert [label for _, label in found] == [label for label, _ in sent["rows-5"][2]]
    [(count,)] = con.execute(f"SELECT count(*) FROM read_parquet('{pattern}') WHERE status = 'ok'").fetchall()
    assert count == len(answered)


def test_sampling_is_by_request_id_and_within_binomial_bounds(tmp_path):
    log_dir = tmp_path / "log"
    repo = credit_repository(tmp_path)
    warden = Warden([str(repo), "--prediction-log", str(log_dir), "--prediction-log-sample", "0.3"])
    count = 1000
    try:
        client = Client(warden.address)
        row = rows(1)
        for n in range(count):
            status, raw = client.call("POST", "/v1/models/credit:predict", {"instances": row}, {"x-request-id": f"req-{n}"})
            assert status == 200, raw
        client.close()
    finally:
        warden.stop()
    table, _ = read_log(log_dir)
    logged = set(table["request_id"])
    # Exactly the ids the rule picks, and as many as a share of 0.3 would: σ ≈ 14.5, within 5σ.
    assert logged == {f"req-{n}" for n in range(count) if sampled(0.3, f"req-{n}")}
    assert abs(len(logged) - 300) < 73, len(logged)
    assert set(table["sample_weight"]) == {1 / 0.3}


def test_a_full_queue_drops_and_counts_while_every_request_is_answered(tmp_path):
    log_dir = tmp_path / "log"
    repo = credit_repository(tmp_path)
    # A queue of 1 byte: every record is dropped at the door, counted, and no request waits.
    warden = Warden([str(repo), "--prediction-log", str(log_dir), "--prediction-log-queue-bytes", "1"])
    try:
        client = Client(warden.address)
        row = rows(1)
        latencies = []
        for n in range(200):
            started = time.perf_counter()
            status, raw = client.call("POST", "/v1/models/credit:predict", {"instances": row})
            latencies.append(time.perf_counter() - started)
            assert status == 200, raw
        client.close()
        samples = metrics(warden)
        assert sample(samples, "warden_prediction_log_dropped_total", model="credit", reason="queue_full") == 200
        assert sample(samples, "warden_prediction_log_records_total", model="credit") == 0
        assert np.percentile(latencies, 90) < 0.05, np.percentile(latencies, 90)
    finally:
        warden.stop()
    assert not glob.glob(str(log_dir / "credit" / "*.parquet"))


def test_rotation_and_retention_hold_their_limits(tmp_path):
    log_dir = tmp_path / "log"
    repo = credit_repository(tmp_path, "[prediction_log]\nrotate_bytes = 65536\nrotate_seconds = 1\nretain_files = 3\n")
    warden = Warden([str(repo), "--prediction-log", str(log_dir)])
    try:
        client = Client(warden.address)
        batch = rows(50)

        def published():
            return sorted(glob.glob(str(log_dir / "credit" / "*.parquet")))

        deadline = time.monotonic() + 60
        while sample(metrics(warden), "warden_prediction_log_files_deleted_total", model="credit") < 3:
            assert time.monotonic() < deadline, "retention never deleted a file"
            predict_credit(client, batch, 20)
            assert len(published()) <= 3, published()
        samples = metrics(warden)
        kept = sample(samples, "warden_prediction_log_kept_files", model="credit")
        assert 1 <= kept <= 3
        # The page shows the model's log: where, what it keeps, what it wrote and dropped.
        status, raw = client.call("GET", "/")
        page = raw.decode()
        assert status == 200 and "credit</a>: prediction log" in page, page[-2000:]
        assert f"in {log_dir}/credit · sample 1" in page
        assert "dropped: queue_full 0, write_error 0" in page
        deleted = int(sample(samples, "warden_prediction_log_files_deleted_total", model="credit"))
        assert f"{deleted} deleted by retention" in page or f"{deleted + 1} deleted by retention" in page
        client.close()
        for path in published():
            assert pq.read_metadata(path).num_rows > 0
    finally:
        warden.stop()
    assert len(glob.glob(str(log_dir / "credit" / "*.parquet"))) <= 3


def test_kill_9_mid_write_leaves_only_complete_files(tmp_path):
    log_dir = tmp_path / "log"
    repo = credit_repository(tmp_path, "[prediction_log]\nrotate_seconds = 1\n")
    warden = Warden([str(repo), "--prediction-log", str(log_dir)])
    client = Client(warden.address)
    batch = rows(20)

    def write_some():
        predict_credit(client, batch, 30)

    # Files published, and one open (written to, not yet published) when the process dies.
    poll("a published file", lambda: write_some() or glob.glob(str(log_dir / "credit" / "*.parquet")))
    poll("an open file", lambda: write_some() or glob.glob(str(log_dir / "credit" / ".*.tmp")))
    warden.process.send_signal(signal.SIGKILL)
    warden.process.wait()
    client.close()
    for path in glob.glob(str(log_dir / "credit" / "*.parquet")):
        assert pq.read_table(path).num_rows > 0, path
    assert glob.glob(str(log_dir / "credit" / ".*.tmp")), "the open file should be left hidden"
    # The next server removes what the dead one left unpublished.
    again = Warden([str(repo), "--prediction-log", str(log_dir)])
    try:
        assert not glob.glob(str(log_dir / "credit" / ".*.tmp"))
        assert any("removed unpublished prediction log files" in line for line in again.seen)
    finally:
        again.stop()


def test_a_vanished_directory_is_counted_and_serving_goes_on(tmp_path):
    log_dir = tmp_path / "log"
    repo = credit_repository(tmp_path, "[prediction_log]\nrotate_seconds = 1\n")
    warden = Warden([str(repo), "--prediction-log", str(log_dir)])
    try:
        client = Client(warden.address)
        batch = rows(5)

        def write_some():
            predict_credit(client, batch, 10)

        poll("an open file", lambda: write_some() or glob.glob(str(log_dir / "credit" / ".*.tmp")))
        shutil.rmtree(log_dir)
        # Its open file is gone: publishing it fails, counted; the next file starts afresh.
        poll("a write error counted", lambda: write_some() or sample(
            metrics(warden), "warden_prediction_log_dropped_total", model="credit", reason="write_error") > 0)
        poll("files published again", lambda: write_some() or glob.glob(str(log_dir / "credit" / "*.parquet")))
        client.close()
    finally:
        warden.stop()
    assert any("prediction log write failed" in line for line in warden.seen)


def test_an_unwritable_directory_stops_the_start_with_its_exit_code(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    binary = os.environ.get("WARDEN_BIN", str(ROOT / "target" / "debug" / "warden"))
    env = dict(os.environ, WARDEN_ONNXRUNTIME_LIB=onnxruntime_library())
    args = [str(MODELS), "--prediction-log", str(blocker / "log"), "--port", "0", "--grpc-port", "0"]
    served = subprocess.run([binary, "serve", *args], env=env, capture_output=True, text=True, timeout=60)
    assert served.returncode == 73, served.stderr
    assert "cannot keep the prediction log in" in served.stderr and str(blocker / "log") in served.stderr
    checked = subprocess.run([binary, "check", *args, "--format", "json"], env=env, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 73
    [item] = [c for c in json.loads(checked.stdout)["checks"] if c["check"] == "prediction log"]
    assert item["status"] == "failed" and "hint" in item


def test_a_hashed_feature_without_a_key_stops_the_start(tmp_path):
    repo = credit_repository(tmp_path, '[prediction_log]\nhash = ["employment"]\n')
    binary = os.environ.get("WARDEN_BIN", str(ROOT / "target" / "debug" / "warden"))
    env = {k: v for k, v in os.environ.items() if k != "WARDEN_PREDICTION_LOG_KEY"}
    env["WARDEN_ONNXRUNTIME_LIB"] = onnxruntime_library()
    served = subprocess.run(
        [binary, "serve", str(repo), "--prediction-log", str(tmp_path / "log"), "--port", "0", "--grpc-port", "0"],
        env=env, capture_output=True, text=True, timeout=60)
    assert served.returncode == 78, served.stderr
    assert "WARDEN_PREDICTION_LOG_KEY" in served.stderr


def test_a_shadow_run_is_logged_as_a_row_of_its_own_with_the_agreement(tmp_path):
    # The rollout fixtures: approval versions 1 and 2 differ where amount > 800.
    fixtures = ROOT / "tests" / "rollout"
    expected = json.loads((fixtures / "approval" / "expected.json").read_text())
    approval_rows = json.loads((fixtures / "approval" / "rows.json").read_text())
    root = tmp_path / "repo"
    shutil.copytree(fixtures / "approval", root / "approval")
    for extra in ("3", "4"):
        shutil.rmtree(root / "approval" / extra, ignore_errors=True)
    manifest = root / "approval" / "warden.toml"
    manifest.write_text("version = 1\n" + manifest.read_text() + "\n[rollout]\ncandidate = 2\nshadow = 1.0\n")
    log_dir = tmp_path / "log"
    warden = Warden([str(root), "--prediction-log", str(log_dir)])
    count = 150
    try:
        client = Client(warden.address)
        for i in range(count):
            status, raw = client.call("POST", "/v1/models/approval:predict", {"instances": [approval_rows[i]]},
                                      {"x-request-id": f"req-{i}"})
            assert status == 200, raw

            def settled():
                status, raw = client.call("GET", "/v1/models/approval/rollout")
                return json.loads(raw)["rollout"]["shadow_in_flight"] == 0

            poll("the shadow run finished", settled)
        runs = sample(metrics(warden), "warden_shadow_runs_total", model="approval", version="2")
        client.close()
    finally:
        warden.stop()
    table, _ = read_log(log_dir, "approval")
    primary = table[table["role"] == "primary"].set_index("request_id")
    shadow = table[table["role"] == "shadow"].set_index("request_id")
    assert len(primary) == count and set(primary["version"]) == {1}
    # Every shadow run that was made is a row: version 2's answer, beside version 1's.
    assert len(shadow) == runs > 0
    assert set(shadow["version"]) == {2} and set(shadow["other_version"]) == {1}
    labels = expected["labels"]
    for rid, row in shadow.iterrows():
        i = int(rid.split("-")[1])
        v1, v2 = expected["versions"]["1"]["label"][i], expected["versions"]["2"]["label"][i]
        assert row["label"] == labels[v2] and primary.loc[rid, "label"] == labels[v1]
        assert row["agreed"] == (v1 == v2), (rid, row["agreed"], v1, v2)
        # The features are on the primary's row of the same request.
        assert pd.isna(row["amount"]) and primary.loc[rid, "amount"] == np.float32(approval_rows[i]["amount"])
    disagreed = sum(1 for agreed in shadow["agreed"] if not agreed)
    assert disagreed > 0, "the known slice (amount > 800) disagrees"


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def s3_env(port):
    """The standard AWS variables for an S3 server on 127.0.0.1:`port`, over plain HTTP."""
    return {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT": f"http://127.0.0.1:{port}", "AWS_ALLOW_HTTP": "true"}


def test_published_files_are_uploaded_to_s3_compatible_storage(tmp_path):
    import boto3

    port = free_port()
    moto = subprocess.Popen([str(ROOT / ".venv" / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    aws = s3_env(port)
    try:
        s3 = boto3.client("s3", endpoint_url=aws["AWS_ENDPOINT"], region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")

        def bucket_made():
            try:
                s3.create_bucket(Bucket="logs")
                return True
            except Exception:  # the server is still starting
                return False

        poll("moto's S3 server answers", bucket_made)
        log_dir = tmp_path / "log"
        repo = credit_repository(tmp_path, "[prediction_log]\nrotate_seconds = 1\n")
        warden = Warden([str(repo), "--prediction-log", str(log_dir), "--prediction-log-upload", "s3://logs/warden/test"],
                        env=aws)
        try:
            client = Client(warden.address)
            batch = rows(10)
            for n in range(40):
                status, raw = client.call("POST", "/v1/models/credit:predict", {"instances": batch}, {"x-request-id": f"u-{n}"})
                assert status == 200, raw
            client.close()
        finally:
            warden.stop()  # publishes the open file and uploads what waits
        local = {os.path.basename(p): open(p, "rb").read() for p in glob.glob(str(log_dir / "credit" / "*.parquet"))}
        assert local
        listed = s3.list_objects_v2(Bucket="logs", Prefix="warden/test/credit/").get("Contents", [])
        remote = {o["Key"].rsplit("/", 1)[1]: s3.get_object(Bucket="logs", Key=o["Key"])["Body"].read() for o in listed}
        # Every published file is in the bucket, byte for byte, and reads as the same table.
        assert remote == local
    finally:
        moto.terminate()
        moto.wait(timeout=30)


def test_an_unreachable_bucket_counts_failures_and_keeps_the_files(tmp_path):
    port = free_port()  # nothing listens there
    aws = s3_env(port)
    log_dir = tmp_path / "log"
    repo = credit_repository(tmp_path, "[prediction_log]\nrotate_seconds = 1\n")
    warden = Warden([str(repo), "--prediction-log", str(log_dir), "--prediction-log-upload", "s3://logs"], env=aws)
    try:
        client = Client(warden.address)
        batch = rows(5)

        def failed():
            predict_credit(client, batch, 10)
            return sample(metrics(warden), "warden_prediction_log_uploads_total", model="credit", outcome="failed") > 0

        poll("an upload failure counted", failed, within=60)
        poll("the failure logged", lambda: any("prediction log upload failed; the file stays on disk" in line
                                               for line in list(warden.lines.queue)))
        client.close()
    finally:
        warden.process.send_signal(signal.SIGKILL)  # its retries would outlast the grace period
        warden.process.wait()
    assert glob.glob(str(log_dir / "credit" / "*.parquet")), "the files stay on disk"
