"""What an explanation costs: microseconds per explained row, warden's `POST :explain` against
shap in Python on the same model and the same background, for the light model (LogisticRegression,
20 features: warden's linear method, shap's LinearExplainer), the heavy forest (RandomForest, 200
trees, depth 12, 30 features: TreeSHAP, interventional, on the probability) and the credit
pipeline (examples/models/credit: exact Shapley values over its 5 raw features, shap's Exact
explainer on predict_proba).

The background is what `warden init --data` samples (the default 200 rows): the light and heavy
models' training data (bench/make_models.py's, made again with its seeds) and examples/data/
credit.csv go through `warden init` into a temporary repository, and shap is given the rows of
the background.jsonl it wrote. Requests of 1, 10 and 100 rows, sent one at a time (no
concurrency: the cost of one explanation, not throughput); each cell is the median of
BENCH_REPEATS (default 5) timed runs after one warm-up, for warden the HTTP round trip included (one kept-alive connection; the same rows' `:predict`
round trip is timed too, to show what explaining adds),
for shap the `shap_values`/`__call__` on rows already in memory (the explainer built once,
outside the timing). The warden answer and shap's are compared once per model (the largest
attribution difference is reported; it should be under 1e-5).

warden (release binary, ONNX Runtime from bench/.venv; WARDEN_BIN names another binary) is
pinned to the first half of the cores, this process (the client and shap) to the other half, so
each side has the same CPUs. The table is printed and written to bench/EXPLAIN.md (BENCH_OUT
names another file).

    bench/.venv/bin/python bench/explain.py      (after bench/run, which builds everything)
"""
import glob
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
import urllib.request
import http.client
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import shap
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "work"
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
SIZES = (1, 10, 100)
CORES = os.cpu_count() or 1
PIN = os.environ.get("BENCH_PIN", "1") != "0" and CORES >= 2
SERVER_CPUS = f"0-{CORES // 2 - 1}" if PIN else None
CLIENT_CPUS = set(range(CORES // 2, CORES)) if PIN else None
PORT = 18161
CREDIT_NUMERIC = ["age", "income", "debt_ratio"]
CREDIT_CATEGORICAL = ["country", "employment"]
CREDIT = CREDIT_NUMERIC + CREDIT_CATEGORICAL
# make_models.py's training data: make_classification(n_samples=2000, n_features=F, n_informative=10,
# random_state=0) for each model's F.
BENCH_DATA = {"light": 20, "heavy": 30}


def warden_binary():
    return os.environ.get("WARDEN_BIN", str(ROOT / "target" / "release" / "warden"))


def onnxruntime_library():
    found = sorted(glob.glob(str(BENCH / ".venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*")))
    if not found:
        import onnxruntime
        found = sorted(glob.glob(str(Path(onnxruntime.__file__).parent / "capi" / "libonnxruntime.so.*")))
    assert found, "no libonnxruntime.so.*; run bench/run first"
    return found[-1]


def init(repository, name, graph, data, target):
    """`warden init --data` with the default background; the background rows it wrote."""
    env = dict(os.environ, WARDEN_ONNXRUNTIME_LIB=onnxruntime_library(), WARDEN_LOG="warn")
    done = subprocess.run([warden_binary(), "init", str(graph), "--name", name, "--repository", str(repository),
                           "--data", str(data), "--target", target], env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"warden init {name}: exit {done.returncode}\n{done.stderr}"
    # The benchmark times requests of 100 heavy rows, which may take longer than the default
    # explain timeout (10 s): a request must be answered, not cut short.
    manifest = repository / name / "warden.toml"
    text = manifest.read_text()
    assert text.count("[explain]\n") == 1, text
    manifest.write_text(text.replace("[explain]\n", "[explain]\ntimeout_ms = 600000\n"))
    return pd.read_json(repository / name / "background.jsonl", lines=True, convert_dates=False,
                        precise_float=True)


def bench_models(repository):
    """The light and heavy models with their training data through `warden init`: (model,
    background [rows, F], rows to explain [100, F], feature names) per name."""
    models = {}
    for name, features in BENCH_DATA.items():
        assert (WORK / f"{name}.onnx").exists(), f"no {WORK / name}.onnx: run bench/make_models.py (bench/run does)"
        x, y = make_classification(n_samples=2000, n_features=features, n_informative=10, random_state=0)
        x = x.astype(np.float32)
        columns = [f"f{i}" for i in range(features)]
        data = repository.parent / f"{name}.csv"
        pd.DataFrame(x, columns=columns).assign(y=y).to_csv(data, index=False)
        background = init(repository, name, WORK / f"{name}.onnx", data, "y")[columns]
        model = joblib.load(WORK / f"{name}.joblib")
        # The rows as the model takes them, float32 (the file holds float32's shortest decimals).
        background = background.to_numpy(dtype=np.float32).astype(np.float64)
        models[name] = (model, background, x[-max(SIZES):].astype(np.float64), columns)
    return models


def credit_model(repository):
    frame = pd.read_csv(ROOT / "examples" / "data" / "credit.csv")
    model = Pipeline([
        ("prepare", ColumnTransformer([("scale", StandardScaler(), CREDIT_NUMERIC),
                                       ("onehot", OneHotEncoder(handle_unknown="ignore"), CREDIT_CATEGORICAL)])),
        ("classify", LogisticRegression(max_iter=1000)),
    ]).fit(frame[CREDIT], frame["decision"])
    background = init(repository, "credit", ROOT / "examples" / "models" / "credit" / "1" / "model.onnx",
                      ROOT / "examples" / "data" / "credit.csv", "decision")[CREDIT]
    return model, background, frame[CREDIT].iloc[-max(SIZES):].reset_index(drop=True)


def every_row(background):
    """shap's masker over the whole background. A bare array passed as `data` becomes
    `Independent(data)`, whose max_samples=100 silently samples 100 rows of a larger one (warden
    uses every row it stored: 200 by default)."""
    return shap.maskers.Independent(background, max_samples=len(background))


def shap_light(model, background):
    explainer = shap.LinearExplainer(model, masker=every_row(background))
    return lambda rows: np.asarray(explainer.shap_values(rows))  # [rows, F]: the log-odds of class 1


def shap_heavy(model, background):
    explainer = shap.TreeExplainer(model, data=every_row(background), feature_perturbation="interventional")
    return lambda rows: np.asarray(explainer.shap_values(rows))[:, :, 1]  # the probability of class 1


def shap_credit(model, background, explained):
    """Exact over the 5 raw features; the categories coded as numbers for shap's masker."""
    codes = {c: sorted(set(background[c]) | set(explained[c])) for c in CREDIT_CATEGORICAL}

    def encode(frame):
        out = frame[CREDIT].copy()
        for c in CREDIT_CATEGORICAL:
            out[c] = [codes[c].index(v) for v in frame[c]]
        return out.to_numpy(dtype=np.float64)

    def probability(z):
        frame = pd.DataFrame(z, columns=CREDIT)
        for c in CREDIT_CATEGORICAL:
            frame[c] = [codes[c][int(round(v))] for v in frame[c]]
        return model.predict_proba(frame)[:, 1]  # `reject`, the second label

    bg = encode(background)
    explainer = shap.explainers.Exact(probability, every_row(bg))
    return lambda rows: np.asarray(explainer(rows).values), encode(explained)


def instances(rows, columns):
    if isinstance(rows, pd.DataFrame):
        return [{c: (float(r[c]) if c in CREDIT_NUMERIC else str(r[c])) for c in columns} for _, r in rows.iterrows()]
    return [[float(v) for v in row] for row in rows]


def start(repository):
    env = dict(os.environ, WARDEN_ONNXRUNTIME_LIB=onnxruntime_library(), WARDEN_LOG="warn")
    command = [warden_binary(), "serve", str(repository), "--port", str(PORT), "--grpc-port", "off"]
    if SERVER_CPUS:
        command = ["taskset", "-c", SERVER_CPUS, *command]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/v2/health/ready", timeout=10).read()
            return server
        except OSError:
            assert server.poll() is None, f"warden exited with {server.returncode}"
            assert time.monotonic() < deadline, "warden was not ready in 60 s"
            time.sleep(0.05)


CONNECTION = None


def call(name, verb, body):
    """POSTs `body` to `:verb` on one kept-alive connection (as a client in production would),
    so each timing is the request, not a TCP handshake."""
    global CONNECTION
    if CONNECTION is None:
        CONNECTION = http.client.HTTPConnection("127.0.0.1", PORT, timeout=600)
    CONNECTION.request("POST", f"/v1/models/{name}:{verb}", body, {"content-type": "application/json"})
    response = CONNECTION.getresponse()
    data = response.read()
    assert response.status == 200, (response.status, data[:300])
    return json.loads(data)


def explain(name, body):
    return call(name, "explain", body)


def micros(seconds):
    us = seconds * 1e6
    return f"{us:.0f}" if us >= 10 else f"{us:.2f}"


def timed(run):
    """Median seconds of REPEATS runs after one warm-up."""
    run()
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main():
    if CLIENT_CPUS:
        os.sched_setaffinity(0, CLIENT_CPUS)
    repository = Path(tempfile.mkdtemp(prefix="warden-explain-")) / "models"
    repository.mkdir()
    models = bench_models(repository)
    credit, credit_background, credit_rows = credit_model(repository)
    cases = {}  # name: (what, shap function, rows for shap, rows for warden, features)
    light, bg, rows, columns = models["light"]
    cases["light"] = ("LogisticRegression, 20 features; linear", shap_light(light, bg), rows,
                      instances(rows, columns), columns)
    heavy, bg, rows, columns = models["heavy"]
    cases["heavy"] = ("RandomForest 200 trees depth 12, 30 features; TreeSHAP", shap_heavy(heavy, bg), rows,
                      instances(rows, columns), columns)
    run_credit, encoded = shap_credit(credit, credit_background, credit_rows)
    cases["credit"] = ("pipeline, 5 features; exact Shapley", run_credit, encoded, instances(credit_rows, CREDIT),
                       CREDIT)
    background_rows = {name: len(models[name][1]) for name in models} | {"credit": len(credit_background)}

    server = start(repository)
    results, agreement, methods = {}, {}, {}
    try:
        for name, (what, run_shap, shap_rows, warden_rows, columns) in cases.items():
            # The two agree before they are timed.
            answer = explain(name, json.dumps({"instances": warden_rows[:10]}).encode())
            methods[name] = (answer["method"], answer["scale"], answer["background_rows"])
            got = np.array([[e["attributions"][c] for c in columns] for e in answer["explanations"]])
            agreement[name] = float(np.abs(got - run_shap(shap_rows[:10])).max())
            for size in SIZES:
                body = json.dumps({"instances": warden_rows[:size]}).encode()
                warden_s = timed(lambda: explain(name, body))
                predict_s = timed(lambda: call(name, "predict", body))
                shap_s = timed(lambda: run_shap(shap_rows[:size]))
                results[(name, size)] = (warden_s / size, shap_s / size, predict_s / size)
                print(name, size, f"warden {micros(warden_s / size)} µs/row, shap {micros(shap_s / size)} µs/row",
                      flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)

    lines = ["| model | rows per request | warden µs/row | of which beyond `:predict` | shap µs/row | shap / warden |",
             "|---|---|---|---|---|---|"]
    for name, (what, *_rest) in cases.items():
        for size in SIZES:
            warden_s, shap_s, predict_s = results[(name, size)]
            ratio = shap_s / warden_s
            shown = f"{ratio:.1f}" if ratio >= 0.1 else f"{ratio:.3f}"
            beyond = micros(max(warden_s - predict_s, 0.0))
            lines.append(f"| {name} ({what}) | {size} | {micros(warden_s)} | {beyond} | {micros(shap_s)} | **{shown}×** |")
    notes = [f"- {name}: warden's method `{m}`, scale `{s}`, {b} background rows; largest |warden − shap| "
             f"over 10 rows: {agreement[name]:.1e}" for name, (m, s, b) in methods.items()]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    pinning = (f"warden pinned to CPUs {SERVER_CPUS}, the client and shap to {min(CLIENT_CPUS)}-{max(CLIENT_CPUS)}"
               if PIN else "no pinning")
    text = (f"# Explanation cost (bench/explain.py)\n\n{time.strftime('%Y-%m-%d')} · {platform.uname().release} · {cpu} · "
            f"{CORES} cores · shap {shap.__version__} · medians of {REPEATS} sequential runs; {pinning}. warden: "
            f"`POST /v1/models/NAME:explain` on one kept-alive connection, the HTTP round trip included (the "
            f"next column subtracts the same rows' `:predict` round trip: what explaining adds); shap: the explainer's call on rows in "
            f"memory, the explainer built beforehand. Background: `warden init --data`'s sample "
            f"({background_rows['heavy']} rows), the same rows given to shap.\n\n"
            + "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n")
    print(text)
    (BENCH / os.environ.get("BENCH_OUT", "EXPLAIN.md")).write_text(text)


if __name__ == "__main__":
    main()
