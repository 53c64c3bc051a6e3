"""The export recipe (examples/export_onnx.py, the README's "Exporting a scikit-learn pipeline",
the pickle diagnostic's hint) on the model people have: a Pipeline(ColumnTransformer, estimator)
fit on a pandas DataFrame with float, integer and string columns. Exported with the recipe, a
classifier and a tree-ensemble regressor go through `warden init`, `warden check` and `warden
serve` (on ONNX Runtime and on tract) and answer rows as scikit-learn does. And the old advice,
`to_onnx(model, X[:1])`, gives graphs ONNX Runtime refuses.

Run by scripts/test after the Rust build; WARDEN_BIN names the binary (default target/debug/warden).
"""

import importlib.util
import json
import os
import pickle
import shutil
import subprocess
import urllib.error
import urllib.request

import numpy as np
import onnxruntime
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from skl2onnx import to_onnx

from warden_process import ROOT, Warden, onnxruntime_library

spec = importlib.util.spec_from_file_location("export_onnx", ROOT / "examples" / "export_onnx.py")
export_onnx = importlib.util.module_from_spec(spec)
spec.loader.exec_module(export_onnx)

NUMERIC = ["income", "debt_ratio", "age"]
CATEGORICAL = ["city"]
CITIES = ["Berlin", "Lagos", "Lima", "Osaka"]
MAX_BATCH = 64  # rows per request here (any count up to the manifest's max_request_rows works)


def frame(rows=300, seed=0):
    """Features as pandas reads them from a CSV: float64, int64 and object (str) columns."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "income": rng.normal(52_000, 15_000, rows).round(2),
        "debt_ratio": rng.uniform(0, 1, rows),
        "age": rng.integers(18, 80, rows),
        "city": rng.choice(CITIES, rows),
    })


def classifier(X):
    noise = np.random.default_rng(1).normal(0, 0.5, len(X))
    score = (X.income - 52_000) / 15_000 - 2 * X.debt_ratio + (X.age - 45) / 30 + (X.city == "Lima") + noise
    y = np.where(score > -1, "approve", "reject")
    pre = ColumnTransformer([("num", StandardScaler(), NUMERIC), ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)])
    return Pipeline([("pre", pre), ("model", LogisticRegression(max_iter=1000))]).fit(X, y), y


def regressor(X):
    noise = np.random.default_rng(2).normal(0, 500, len(X))
    y = 0.2 * X.income - 4_000 * X.debt_ratio + 30 * X.age + 900 * (X.city == "Osaka") + noise
    # Trees take the numbers as they are: a scaler in front of them would move rows across splits
    # in float32 (export_onnx.check says so when it happens).
    pre = ColumnTransformer([("num", "passthrough", NUMERIC), ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)])
    return Pipeline([("pre", pre), ("model", RandomForestRegressor(n_estimators=30, random_state=0))]).fit(X, y), y


def warden(*args):
    binary = os.environ.get("WARDEN_BIN", str(ROOT / "target" / "debug" / "warden"))
    env = dict(os.environ)
    env.setdefault("WARDEN_ONNXRUNTIME_LIB", onnxruntime_library())
    return subprocess.run([binary, *map(str, args)], env=env, capture_output=True, text=True, timeout=120)


def post(address, path, body):
    request = urllib.request.Request(
        f"http://{address}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def instances(X):
    """The rows as the row API takes them: Python floats, ints and strings."""
    return [
        {"income": float(r.income), "debt_ratio": float(r.debt_ratio), "age": int(r.age), "city": str(r.city)}
        for r in X.itertuples(index=False)
    ]


def predict(address, model, X):
    predictions = []
    rows = instances(X)
    for start in range(0, len(rows), MAX_BATCH):
        status, body = post(address, f"/v1/models/{model}:predict", {"instances": rows[start:start + MAX_BATCH]})
        assert status == 200, body
        predictions += body["predictions"]
    return predictions


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Both models trained, exported with the recipe and made servable by `warden init`."""
    tmp = tmp_path_factory.mktemp("recipe")
    X = frame()
    repository = tmp / "models"
    repository.mkdir()
    models = {}
    for name, train in [("credit", classifier), ("price", regressor)]:
        model, y = train(X)
        onnx_path = export_onnx.export(model, X, tmp / f"{name}.onnx")
        csv_path = tmp / f"{name}.csv"
        X.assign(y=y).to_csv(csv_path, index=False)
        done = warden("init", onnx_path, "--data", csv_path, "--target", "y", "--name", name, "--repository", repository)
        assert done.returncode == 0, f"warden init {name}: exit {done.returncode}\n{done.stderr}"
        models[name] = model
    done = warden("check", repository, "--port", "0")
    assert done.returncode == 0, f"warden check: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    # The same folders pinned to tract: the opset and operators the recipe picks run there too.
    on_tract = tmp / "tract"
    shutil.copytree(repository, on_tract)
    for manifest in on_tract.glob("*/warden.toml"):
        text = manifest.read_text()
        assert 'backend = "auto"' in text
        manifest.write_text(text.replace('backend = "auto"', 'backend = "tract"'))
    done = warden("check", on_tract, "--port", "0")
    assert done.returncode == 0, f"warden check (tract): exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return X, models, {"onnxruntime": repository, "tract": on_tract}


@pytest.fixture(scope="module", params=["onnxruntime", "tract"])
def served(request, trained):
    X, models, repositories = trained
    server = Warden([str(repositories[request.param])])
    for name in models:
        with urllib.request.urlopen(f"{server.url}/v2/models/{name}", timeout=30) as response:
            assert json.load(response)["platform"] == f"{request.param}_onnx"
    yield server.address, X, models
    server.stop()


def test_the_classifier_answers_rows_as_scikit_learn(served):
    address, X, models = served
    model = models["credit"]
    predictions = predict(address, "credit", X)
    assert [p["label"] for p in predictions] == list(model.predict(X))
    probabilities = [[p["probabilities"][str(c)] for c in model.classes_] for p in predictions]
    np.testing.assert_allclose(probabilities, model.predict_proba(X), atol=1e-5)


def test_the_tree_regressor_answers_rows_as_scikit_learn(served):
    address, X, models = served
    values = [p["value"] for p in predict(address, "price", X)]
    np.testing.assert_allclose(values, models["price"].predict(X), rtol=1e-4)


@pytest.mark.parametrize("model", ["credit", "price"])
def test_a_category_sent_as_an_integer_is_invalid_input(served, model):
    address, X, _ = served
    row = dict(instances(X.head(1))[0], city=3)
    status, body = post(address, f"/v1/models/{model}:predict", {"instances": [row]})
    assert status == 400, body
    assert body["code"] == "invalid_input"
    assert [d["loc"] for d in body["details"]] == [["instances", 0, "city"]]


def test_the_pickle_hint_is_the_recipe(tmp_path, monkeypatch, trained):
    """The code `warden check` prints for a pickled model runs, and makes a graph that answers
    as the model does."""
    X, models, _ = trained
    pickled = tmp_path / "model.onnx"
    pickled.write_bytes(pickle.dumps({"not": "a model"}))
    done = warden("check", pickled, "--port", "0")
    assert done.returncode == 65, done.stderr
    hint = done.stderr[done.stderr.index("= hint: warden never unpickles"):].splitlines()[1:]
    code = []
    for line in hint:
        if not line.startswith("      "):
            break
        code.append(line[6:])
    code = "\n".join(code)
    assert "to_onnx(" in code and len(code.splitlines()) >= 7, hint
    for name, model in models.items():
        workdir = tmp_path / name
        workdir.mkdir()
        monkeypatch.chdir(workdir)
        exec(code, {"model": model, "X": X})
        export_onnx.check((workdir / "model.onnx").read_bytes(), model, X)


def test_the_old_advice_fails():
    """What the README and the hint said before: `to_onnx(model, X[:1])` declares the float64
    columns as float64 inputs, and ONNX Runtime refuses the graphs; `X[:1].astype("float32")`
    cannot convert a string column."""
    X = frame()
    credit, _ = classifier(X)
    price, _ = regressor(X)
    with pytest.raises(Exception, match=r"Type 'tensor\(double\)' of input parameter \(probabilities\) of operator \(ZipMap\)"):
        onnxruntime.InferenceSession(to_onnx(credit, X[:1]).SerializeToString(), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match=r"Type \(tensor\(double\)\) of output arg \(variable\) of node \(TreeEnsembleRegressor\)"):
        onnxruntime.InferenceSession(to_onnx(price, X[:1]).SerializeToString(), providers=["CPUExecutionProvider"])
    with pytest.raises(ValueError, match="could not convert string to float"):
        to_onnx(credit, X[:1].astype("float32"))


def test_init_names_the_engine_when_no_engine_can_run_the_old_advice_graph(tmp_path):
    """The old advice's float64 LogisticRegression: ONNX Runtime refuses it at load and tract
    loads it but cannot run it (Sigmoid on F64). `warden init` must say that, after one try,
    not blame 50 training rows for answering NaN."""
    X = frame()
    credit, y = classifier(X)
    graph = tmp_path / "credit.onnx"
    graph.write_bytes(to_onnx(credit, X[:1]).SerializeToString())
    csv_path = tmp_path / "credit.csv"
    X.assign(y=y).to_csv(csv_path, index=False)
    (tmp_path / "models").mkdir()
    done = warden("init", graph, "--data", csv_path, "--target", "y", "--name", "credit",
                  "--repository", tmp_path / "models")
    assert done.returncode == 65, done.stderr
    assert "answers NaN" not in done.stderr and "answers none of" not in done.stderr, done.stderr
    assert "would not serve, so nothing was written" in done.stderr, done.stderr
    assert "tensor(double)" in done.stderr, done.stderr  # ONNX Runtime's reason, in the error
    assert "cannot run it" in done.stderr and "F64" in done.stderr, done.stderr  # tract's, logged
    # One try per engine, not one per candidate example row.
    assert done.stderr.count("this engine cannot load the graph") == 2, done.stderr
