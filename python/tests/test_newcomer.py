"""A newcomer's first hour, as the README's "From Flask to warden" walks it, on a pipeline the
project has never seen: synthetic churn rows with NaN in two float columns, an int column, two
string categoricals with a rare value; ColumnTransformer(SimpleImputer + StandardScaler,
OneHotEncoder(handle_unknown="ignore")) and then LogisticRegression or GradientBoosting,
exported with the recipe, written by `warden init --data`, served on both engines.

Every training row, NaNs included, scores through the row API, V2 JSON (null), V2 binary
(tritonclient, NaN) and gRPC (tritonclient, NaN), each equal to scikit-learn's predict_proba
within 1e-6; one 1,000-row request equals 1,000 single rows; every refusal names the key that
changes it; an unseen category passes to the model and answers what scikit-learn answers; a
value above the training maximum but inside init's margin is served and counted by the drift
monitor.

Run by scripts/test after the Rust build; WARDEN_BIN names the binary (default target/debug/warden).
"""

import http.client
import importlib.util
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from test_export_recipe import warden
from warden_process import ROOT, Warden

spec = importlib.util.spec_from_file_location("export_onnx", ROOT / "examples" / "export_onnx.py")
export_onnx = importlib.util.module_from_spec(spec)
spec.loader.exec_module(export_onnx)

FLOATS = ["monthly_charges", "tenure_months"]
INTS = ["support_tickets"]
CATEGORIES = ["contract", "payment"]
ROWS = 2_000


def churn_frame(rows=ROWS, seed=7):
    """Churn rows as pandas reads them from a CSV: float64 with NaN, int64, object (str)."""
    rng = np.random.default_rng(seed)
    charges = rng.normal(70, 25, rows).clip(18, 120).round(2)
    tenure = rng.integers(0, 72, rows).astype(float)
    charges[rng.random(rows) < 0.08] = np.nan
    tenure[rng.random(rows) < 0.05] = np.nan
    contract = rng.choice(["month", "one_year", "two_year", "lifetime"], rows, p=[0.55, 0.25, 0.199, 0.001])
    payment = rng.choice(["card", "bank", "check", "crypto"], rows, p=[0.4, 0.35, 0.245, 0.005])
    return pd.DataFrame({
        "monthly_charges": charges,
        "tenure_months": tenure,
        "support_tickets": rng.poisson(1.5, rows).astype(np.int64),
        "contract": contract,
        "payment": payment,
    })


def labels(X):
    noise = np.random.default_rng(11).normal(0, 0.7, len(X))
    score = (np.nan_to_num(X.monthly_charges, nan=70) - 70) / 25 - np.nan_to_num(X.tenure_months, nan=36) / 24
    score += 0.6 * X.support_tickets + (X.contract == "month") - (X.payment == "bank") * 0.5 + noise
    return np.where(score > 0.3, "churn", "stay")


def pipeline(estimator, X, y):
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    pre = ColumnTransformer([
        ("num", numeric, FLOATS + INTS),
        ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORIES),
    ])
    return Pipeline([("pre", pre), ("model", estimator)]).fit(X, y)


MODELS = {
    "churn_lr": lambda: LogisticRegression(max_iter=2000),
    "churn_gb": lambda: GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0),
}


def row(r):
    """A row for the row API: NaN as null, ints as ints, strings as strings."""
    return {
        "monthly_charges": None if np.isnan(r.monthly_charges) else float(r.monthly_charges),
        "tenure_months": None if np.isnan(r.tenure_months) else float(r.tenure_months),
        "support_tickets": int(r.support_tickets),
        "contract": str(r.contract),
        "payment": str(r.payment),
    }


def v2_json(X):
    """A V2 JSON request of every row of X: one [N, 1] input per column, null for NaN."""
    def data(column):
        values = X[column].tolist()
        return [None if isinstance(v, float) and np.isnan(v) else v for v in values]
    kinds = {"f": "FP32", "i": "INT64"}
    return {"inputs": [
        {"name": c, "shape": [len(X), 1], "datatype": kinds.get(X[c].dtype.kind, "BYTES"), "data": data(c)}
        for c in X.columns
    ]}


def triton_inputs(module, X):
    inputs = []
    for column in X.columns:
        kind = X[column].dtype.kind
        if kind == "f":
            values, datatype = X[[column]].to_numpy(np.float32), "FP32"
        elif kind in "iu":
            values, datatype = X[[column]].to_numpy(np.int64), "INT64"
        else:
            values, datatype = X[[column]].to_numpy(object), "BYTES"
        tensor = module.InferInput(column, list(values.shape), datatype)
        if module is httpclient:
            tensor.set_data_from_numpy(values, binary_data=True)
        else:
            tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    return inputs


class Client:
    """One kept-alive HTTP connection to the server."""

    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=60)

    def post(self, path, body):
        self.connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        return response.status, json.loads(response.read())

    def get(self, path):
        self.connection.request("GET", path)
        response = self.connection.getresponse()
        return response.status, json.loads(response.read())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("newcomer")
    X = churn_frame()
    y = labels(X)
    repository = tmp / "models"
    repository.mkdir()
    models, summaries = {}, {}
    csv = tmp / "train.csv"
    X.assign(churned=y).to_csv(csv, index=False)
    for name, estimator in MODELS.items():
        model = pipeline(estimator(), X, y)
        graph = export_onnx.export(model, X, tmp / f"{name}.onnx")
        done = warden("init", graph, "--data", csv, "--target", "churned", "--name", name, "--repository", repository)
        assert done.returncode == 0, f"warden init {name}: exit {done.returncode}\n{done.stderr}"
        models[name] = model
        summaries[name] = done.stdout
    done = warden("check", repository, "--port", "0", "--grpc-port", "off")
    assert done.returncode == 0, f"warden check: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    # What the summary says to do for a pipeline built to ignore unseen categories.
    passing = tmp / "passing"
    shutil.copytree(repository, passing)
    for manifest in passing.glob("*/warden.toml"):
        manifest.write_text(pass_unseen(manifest.read_text()))
    on_tract = tmp / "tract"
    shutil.copytree(passing, on_tract)
    for manifest in on_tract.glob("*/warden.toml"):
        manifest.write_text(manifest.read_text().replace('backend = "auto"', 'backend = "tract"'))
    return X, models, summaries, {"init": repository, "onnxruntime": passing, "tract": on_tract}


def pass_unseen(manifest):
    """`handle_unknown = "pass"` on both category features, after their `values` line."""
    lines = []
    for line in manifest.splitlines():
        lines.append(line)
        if line.startswith("values = ["):
            lines.append('handle_unknown = "pass"')
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module", params=["onnxruntime", "tract"])
def served(request, trained):
    X, models, _, repositories = trained
    server = Warden([str(repositories[request.param])])
    yield server, X, models
    server.stop()


def probabilities(predictions, classes):
    return np.array([[p["probabilities"][c] for c in classes] for p in predictions])


def test_init_prints_what_it_wrote_and_what_to_review(trained):
    _, _, summaries, repositories = trained
    summary = summaries["churn_lr"]
    assert summary.startswith(f"wrote {repositories['init'] / 'churn_lr'} (warden.toml, 1/model.onnx)"), summary
    lines = {line.split()[0]: line for line in summary.splitlines() if line.startswith("  ") and not line.startswith("  -")}
    assert "nullable" in lines["monthly_charges"] and "nullable" in lines["tenure_months"], summary
    assert "nullable" not in lines["support_tickets"] and " int " in lines["support_tickets"], summary
    # The encoder ignores unseen categories: reported, the default (refuse) kept.
    assert "unseen values refused" in lines["contract"], summary
    assert "contract, payment: the graph's OneHotEncoder ignores categories it was not fitted on" in summary, summary
    assert f"next: warden serve {repositories['init']}" in summary, summary
    manifest = (repositories["init"] / "churn_lr" / "warden.toml").read_text()
    # Integer bounds for the int feature, never below 0, and wider than training's 0..max.
    tickets = manifest[manifest.index('name = "support_tickets"'):].split("\n\n")[0]
    assert "min = 0\n" in tickets and "max = " in tickets and "." not in tickets.split("max = ")[1].split("\n")[0], tickets
    assert "handle_unknown" not in manifest


@pytest.mark.parametrize("name", MODELS)
def test_every_training_row_scores_in_every_protocol_as_scikit_learn(served, name):
    server, X, models = served
    model = models[name]
    classes = [str(c) for c in model.classes_]
    want = model.predict_proba(X)
    client = Client(server.address)

    status, body = client.post(f"/v1/models/{name}:predict", {"instances": [row(r) for r in X.itertuples(index=False)]})
    assert status == 200, body
    np.testing.assert_allclose(probabilities(body["predictions"], classes), want, atol=1e-6)

    status, body = client.post(f"/v2/models/{name}/infer", v2_json(X))
    assert status == 200, body
    output = next(o for o in body["outputs"] if o["name"] == "probabilities")
    np.testing.assert_allclose(np.array(output["data"]).reshape(len(X), -1), want, atol=1e-6)

    http = httpclient.InferenceServerClient(server.address)
    result = http.infer(name, triton_inputs(httpclient, X))
    np.testing.assert_allclose(result.as_numpy("probabilities"), want, atol=1e-6)

    grpc = grpcclient.InferenceServerClient(server.grpc_address)
    result = grpc.infer(name, triton_inputs(grpcclient, X))
    np.testing.assert_allclose(result.as_numpy("probabilities"), want, atol=1e-6)


def test_a_thousand_row_request_equals_a_thousand_single_rows(served):
    server, X, models = served
    client = Client(server.address)
    rows = [row(r) for r in X.head(1000).itertuples(index=False)]
    status, body = client.post("/v1/models/churn_gb:predict", {"instances": rows})
    assert status == 200, body
    assert len(body["predictions"]) == 1000
    singles = []
    for one in rows:
        status, answer = client.post("/v1/models/churn_gb:predict", {"instances": [one]})
        assert status == 200, answer
        singles += answer["predictions"]
    assert body["predictions"] == singles


def test_each_refusal_names_the_key_that_changes_it(served):
    server, X, _ = served
    client = Client(server.address)
    good = row(next(X.itertuples(index=False)))

    status, body = client.post("/v1/models/churn_lr:predict", {"instances": [good] * 10_001})
    assert (status, body["code"]) == (400, "batch_too_large"), body
    assert "max_request_rows" in body["error"], body

    status, body = client.post("/v1/models/churn_lr:predict", {"instances": [dict(good, support_tickets=None)]})
    assert status == 400, body
    assert "`nullable = true`" in body["details"][0]["msg"], body

    status, body = client.post("/v1/models/churn_lr:predict", {"instances": [dict(good, support_tickets=10_000)]})
    assert status == 400, body
    assert "`min`/`max`" in body["details"][0]["msg"], body

    status, body = client.post("/v2/models/churn_lr/infer", v2_json(X.head(1).assign(monthly_charges=np.inf)))
    assert status == 400, body
    assert "finite" in body["details"][0]["msg"], body


def test_an_unseen_category_is_refused_by_default_with_the_key_that_passes_it(trained):
    X, _, _, repositories = trained
    server = Warden([str(repositories["init"])])
    try:
        status, body = Client(server.address).post(
            "/v1/models/churn_lr:predict", {"instances": [dict(row(next(X.itertuples(index=False))), contract="weekly")]})
        assert (status, body["details"][0]["type"]) == (400, "category_error"), body
        assert 'handle_unknown = \\"pass\\"' in json.dumps(body["details"][0]["msg"]), body
    finally:
        server.stop()


def test_an_unseen_category_passes_and_answers_as_scikit_learn(served):
    server, X, models = served
    unseen = X.head(5).assign(contract="weekly", payment=["card", "voucher", "bank", "gift", "check"])
    client = Client(server.address)
    for name, model in models.items():
        status, body = client.post(f"/v1/models/{name}:predict", {"instances": [row(r) for r in unseen.itertuples(index=False)]})
        assert status == 200, body
        classes = [str(c) for c in model.classes_]
        np.testing.assert_allclose(probabilities(body["predictions"], classes), model.predict_proba(unseen), atol=1e-6)


def test_a_value_past_the_training_range_inside_the_margin_is_served_and_counted(trained):
    X, models, _, repositories = trained
    server = Warden([str(repositories["onnxruntime"])])
    try:
        client = Client(server.address)
        beyond = X.head(50).assign(support_tickets=int(X.support_tickets.max()) + 2)
        status, body = client.post("/v1/models/churn_lr:predict", {"instances": [row(r) for r in beyond.itertuples(index=False)]})
        assert status == 200, body
        classes = [str(c) for c in models["churn_lr"].classes_]
        np.testing.assert_allclose(probabilities(body["predictions"], classes), models["churn_lr"].predict_proba(beyond), atol=1e-6)
        status, report = client.get("/v1/models/churn_lr/drift")
        assert status == 200, report
        window = report["windows"][0]
        tickets = next(f for f in window["features"] if f["name"] == "support_tickets")
        assert tickets["out_of_range_share"] > 0.9, tickets
    finally:
        server.stop()
