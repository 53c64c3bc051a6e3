"""Explanations, end to end: a zoo of models (scikit-learn forests, boosting, extra trees and
logistic regression, XGBoost and LightGBM through onnxmltools, and the credit example's
pipeline) exported to ONNX, made servable by `warden init --data` (which stores a background
sample beside the manifest), and explained over `POST :explain`; every attribution, base value
and output is compared with shap's on the same model and the very background warden uses (read
back from background.jsonl), within 1e-5. Then the refusals (no background, too many rows, too
many features for the exact method, contract violations), `top_k`, the exact method against
TreeSHAP, and predictions answered while an explanation runs.

The conventions checked (shap 0.51, verified against exact enumeration of coalitions):
- TreeExplainer(model, data=Independent(bg, max_samples=len(bg)), feature_perturbation=
  "interventional") explains the ensemble's raw sum: for RandomForestClassifier (ONNX
  post_transform NONE) that is the probability, one output per class; for GradientBoosting/
  XGBoost/LightGBM classifiers (LOGISTIC) the log-odds of the positive class, a single output;
  for regressors the value. It equals Exact(f, Independent(bg, max_samples=len(bg))) on that raw
  function. (A bare array as `data` is sampled down to 100 rows: hence the masker.)
- LinearExplainer explains decision_function: the log-odds of the positive class (binary), each
  class's raw score (multiclass, one output per class).
- Exact on the credit pipeline explains predict_proba of the class asked for.

The V2 `contributions` output (the same attributions as a tensor, base value last) is checked
against the row answers, over REST and gRPC.

Run by scripts/test after the Rust build; WARDEN_BIN names the binary (default target/debug/warden).
"""

import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime
import pandas as pd
import pytest
import shap
from lightgbm import LGBMClassifier, LGBMRegressor
from onnxmltools.convert import convert_lightgbm, convert_xgboost
from onnxmltools.convert.common.data_types import FloatTensorType as MLFloatTensorType
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (ExtraTreesRegressor, GradientBoostingClassifier, GradientBoostingRegressor,
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from xgboost import XGBClassifier, XGBRegressor

from warden_process import MODELS, ROOT, Warden, onnxruntime_library

TOLERANCE = 1e-5
FEATURES = [f"f{i}" for i in range(6)]
BACKGROUND_ROWS = 50
EXPLAINED = 5  # rows explained per model
CREDIT_NUMERIC = ["age", "income", "debt_ratio"]
CREDIT_CATEGORICAL = ["country", "employment"]
CREDIT_FEATURES = CREDIT_NUMERIC + CREDIT_CATEGORICAL


def dyadic(x):
    """Multiples of 2^-10: the same number in float32 and float64, in the CSV and in JSON, so
    every side compares the same value with a split threshold. (shap's TreeExplainer does not:
    it compares its float64 background with scikit-learn's thresholds and, in its interventional
    algorithm, narrows thresholds to float32, so a value of four decimals lying at a threshold
    halfway between two float32 numbers takes the other branch there than in scikit-learn and in
    the ONNX graph; exact enumeration on the model's own function agrees with warden there.)"""
    return np.round(x * 1024) / 1024


def classification(classes):
    x, y = make_classification(n_samples=300, n_features=len(FEATURES), n_informative=4, n_redundant=0,
                               n_classes=classes, random_state=0)
    return dyadic(x), y


def regression():
    x, y = make_regression(n_samples=300, n_features=len(FEATURES), n_informative=4, noise=5.0, random_state=0)
    # A target of unit scale: float32 leaves (ONNX) stay within 1e-7 of scikit-learn's float64.
    return dyadic(x), (y - y.mean()) / y.std()


# name: (estimator, data, converter, method, scale)
ZOO = {
    "rf_binary": (lambda: RandomForestClassifier(n_estimators=30, max_depth=5, random_state=0),
                  2, "skl2onnx", "tree_shap", "probability"),
    "rf_multiclass": (lambda: RandomForestClassifier(n_estimators=30, max_depth=5, random_state=0),
                      3, "skl2onnx", "tree_shap", "probability"),
    "rf_regressor": (lambda: RandomForestRegressor(n_estimators=30, max_depth=5, random_state=0),
                     0, "skl2onnx", "tree_shap", "value"),
    "gb_binary": (lambda: GradientBoostingClassifier(n_estimators=30, max_depth=4, random_state=0),
                  2, "skl2onnx", "tree_shap", "margin"),
    "gb_regressor": (lambda: GradientBoostingRegressor(n_estimators=30, max_depth=4, random_state=0),
                     0, "skl2onnx", "tree_shap", "value"),
    "et_regressor": (lambda: ExtraTreesRegressor(n_estimators=30, max_depth=5, random_state=0),
                     0, "skl2onnx", "tree_shap", "value"),
    "xgb_binary": (lambda: XGBClassifier(n_estimators=30, max_depth=4, random_state=0, n_jobs=1),
                   2, "xgboost", "tree_shap", "margin"),
    "xgb_regressor": (lambda: XGBRegressor(n_estimators=30, max_depth=4, random_state=0, n_jobs=1),
                      0, "xgboost", "tree_shap", "value"),
    "lgbm_binary": (lambda: LGBMClassifier(n_estimators=30, max_depth=4, num_leaves=15, random_state=0, n_jobs=1,
                                           verbose=-1), 2, "lightgbm", "tree_shap", "margin"),
    "lgbm_regressor": (lambda: LGBMRegressor(n_estimators=30, max_depth=4, num_leaves=15, random_state=0, n_jobs=1,
                                             verbose=-1), 0, "lightgbm", "tree_shap", "value"),
    "lr_binary": (lambda: LogisticRegression(max_iter=1000), 2, "skl2onnx", "linear", "margin"),
    "lr_multiclass": (lambda: LogisticRegression(max_iter=1000), 3, "skl2onnx", "linear", "margin"),
}


def export(model, converter):
    """The graph with one [N, 6] float input `float_input`; classifiers answer `label` and
    `probabilities` (no ZipMap)."""
    classifier = hasattr(model, "classes_")
    if converter == "xgboost":
        onx = convert_xgboost(model, initial_types=[("float_input", MLFloatTensorType([None, len(FEATURES)]))],
                              target_opset=15)
    elif converter == "lightgbm":
        onx = convert_lightgbm(model, initial_types=[("float_input", MLFloatTensorType([None, len(FEATURES)]))],
                               target_opset=15, zipmap=False)
    else:
        onx = convert_sklearn(model, initial_types=[("float_input", FloatTensorType([None, len(FEATURES)]))],
                              target_opset={"": 17, "ai.onnx.ml": 3},
                              options={id(model): {"zipmap": False}} if classifier else None)
    # onnxmltools declares LightGBM's label output as [1] though it answers [N]: the batch
    # dimension made dynamic, as every other converter writes it.
    for output in onx.graph.output:
        dims = output.type.tensor_type.shape.dim
        if len(dims) >= 1 and dims[0].dim_value == 1:
            dims[0].Clear()
            dims[0].dim_param = "N"
    onnx.checker.check_model(onx)
    return onx


def warden(*args):
    binary = os.environ.get("WARDEN_BIN", str(ROOT / "target" / "debug" / "warden"))
    env = dict(os.environ)
    env.setdefault("WARDEN_ONNXRUNTIME_LIB", onnxruntime_library())
    return subprocess.run([binary, *map(str, args)], env=env, capture_output=True, text=True, timeout=120)


def post(address, path, body, timeout=60):
    request = urllib.request.Request(f"http://{address}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@dataclass
class Case:
    """One served model and what shap says about the rows explained."""
    name: str
    method: str
    scale: str
    features: list
    rows: list            # the explained rows, as the row API takes them
    labels: list | None   # a classifier's labels in output order; None for a regressor
    background: pd.DataFrame
    model: object = None
    # shap's reference per explained row: {label or None: (attributions [F], base value, output)}
    reference: list = field(default_factory=list)


def read_background(folder, features):
    """The background warden uses: the manifest's `[explain]` file, pinned by its hash."""
    manifest = tomllib.loads((folder / "warden.toml").read_text())
    explain = manifest["explain"]
    assert explain["background"] == "background.jsonl", explain
    raw = (folder / explain["background"]).read_bytes()
    assert explain["background_sha256"] == hashlib.sha256(raw).hexdigest()
    frame = pd.read_json(folder / explain["background"], lines=True, convert_dates=False, precise_float=True)
    assert sorted(frame.columns) == sorted(features), frame.columns
    assert len(frame) == BACKGROUND_ROWS
    return frame[features]


def every_row(background):
    """shap's masker over the whole background. A bare array passed as `data` becomes
    `Independent(data)`, whose max_samples=100 silently samples 100 rows of a larger one (warden
    uses every row it stored: 200 by default)."""
    return shap.maskers.Independent(background, max_samples=len(background))


def packed_reference(case, x_explain):
    """shap on the scikit-learn/XGBoost/LightGBM model with warden's background."""
    model, bg = case.model, case.background[case.features].to_numpy(dtype=np.float64)
    if case.method == "linear":
        explainer = shap.LinearExplainer(model, masker=every_row(bg))
        raw = model.decision_function(x_explain)
    else:
        explainer = shap.TreeExplainer(model, data=every_row(bg), feature_perturbation="interventional")
        if isinstance(model, RandomForestClassifier):
            raw = model.predict_proba(x_explain)
        elif isinstance(model, GradientBoostingClassifier):
            raw = model.decision_function(x_explain)
        elif isinstance(model, XGBClassifier):
            raw = model.predict(x_explain, output_margin=True)
        elif isinstance(model, LGBMClassifier):
            raw = model.predict(x_explain, raw_score=True)
        else:
            raw = model.predict(x_explain)
    values = np.asarray(explainer.shap_values(x_explain), dtype=np.float64)
    expected = np.asarray(explainer.expected_value, dtype=np.float64)
    raw = np.asarray(raw, dtype=np.float64)
    reference = []
    for i in range(len(x_explain)):
        if values.ndim == 3:  # one output per class (RandomForestClassifier, multiclass LogisticRegression)
            reference.append({label: (values[i, :, k], float(expected[k]), float(raw[i, k]))
                              for k, label in enumerate(case.labels)})
        elif case.labels is not None:  # one margin: the positive class, the second label
            reference.append({case.labels[1]: (values[i], float(expected.reshape(-1)[0]), float(raw[i]))})
        else:
            reference.append({None: (values[i], float(expected.reshape(-1)[0]), float(raw[i]))})
    return reference


def credit_pipeline():
    """The credit example's pipeline, fitted as examples/make_models.py fits it."""
    frame = pd.read_csv(ROOT / "examples" / "data" / "credit.csv")
    x, y = frame[CREDIT_FEATURES], frame["decision"].to_numpy()
    model = Pipeline([
        ("prepare", ColumnTransformer([
            ("scale", StandardScaler(), CREDIT_NUMERIC),
            ("onehot", OneHotEncoder(handle_unknown="ignore"), CREDIT_CATEGORICAL),
        ])),
        ("classify", LogisticRegression(max_iter=1000)),
    ]).fit(x, y)
    # The same model as the checked-in graph.
    session = onnxruntime.InferenceSession(str(MODELS / "credit" / "1" / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    feeds = {c: x[c].to_numpy().astype(np.float32).reshape(-1, 1) for c in CREDIT_NUMERIC}
    feeds.update({c: x[c].to_numpy().astype(object).reshape(-1, 1) for c in CREDIT_CATEGORICAL})
    _, probabilities = session.run(["label", "probabilities"], feeds)
    np.testing.assert_allclose(probabilities, model.predict_proba(x), atol=1e-5)
    return model, frame


def credit_reference(case, explained):
    """shap's Exact explainer on predict_proba, the categories coded as numbers for the masker
    and decoded again for the pipeline."""
    codes = {c: sorted(set(case.background[c]) | set(explained[c])) for c in CREDIT_CATEGORICAL}

    def encode(frame):
        out = frame[CREDIT_FEATURES].copy()
        for c in CREDIT_CATEGORICAL:
            out[c] = [codes[c].index(v) for v in frame[c]]
        return out.to_numpy(dtype=np.float64)

    def probabilities(z):
        frame = pd.DataFrame(z, columns=CREDIT_FEATURES)
        for c in CREDIT_CATEGORICAL:
            frame[c] = [codes[c][int(round(v))] for v in frame[c]]
        return case.model.predict_proba(frame)

    bg = encode(case.background)
    explainer = shap.explainers.Exact(probabilities, every_row(bg))
    result = explainer(encode(explained))
    values = np.asarray(result.values, dtype=np.float64)  # [rows, features, classes]
    base = np.asarray(result.base_values, dtype=np.float64)  # [rows, classes]
    raw = case.model.predict_proba(explained[CREDIT_FEATURES])
    return [{label: (values[i, :, k], float(base[i, k]), float(raw[i, k])) for k, label in enumerate(case.labels)}
            for i in range(len(explained))]


def build_zoo(tmp):
    """Every model trained, exported, given to `warden init --data` with a 50-row background,
    and shap's reference computed on the background init wrote."""
    repository = tmp / "models"
    repository.mkdir()
    cases = {}
    for name, (make, classes, converter, method, scale) in ZOO.items():
        x, y = classification(classes) if classes else regression()
        model = make().fit(x, y)
        onx = export(model, converter)
        graph = tmp / f"{name}.onnx"
        graph.write_bytes(onx.SerializeToString())
        labels = [str(c) for c in model.classes_] if classes else None
        session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        answered = session.run(None, {"float_input": x.astype(np.float32)})
        if classes:
            np.testing.assert_allclose(answered[1], model.predict_proba(x), atol=1e-5)
        else:
            np.testing.assert_allclose(answered[0].ravel(), model.predict(x), atol=1e-5)
        data = tmp / f"{name}.csv"
        pd.DataFrame(x, columns=FEATURES).assign(y=y).to_csv(data, index=False)
        done = warden("init", graph, "--name", name, "--repository", repository, "--data", data, "--target", "y",
                      "--background-rows", BACKGROUND_ROWS)
        assert done.returncode == 0, f"warden init {name}: exit {done.returncode}\n{done.stderr}"
        background = read_background(repository / name, FEATURES)
        if classes:  # what explanations need: the class probabilities, under the model's labels
            outputs = tomllib.loads((repository / name / "warden.toml").read_text())["outputs"]
            assert {"name": "probabilities", "kind": "probability", "labels": labels} in outputs, (name, outputs)
        # A sample of the training rows, as they are in the CSV.
        training = {tuple(r) for r in x}
        assert all(tuple(r) in training for r in background.to_numpy(dtype=np.float64))
        x_explain = x[-EXPLAINED:]
        case = Case(name, method, scale, FEATURES, [dict(zip(FEATURES, map(float, r))) for r in x_explain],
                    labels, background, model)
        case.reference = packed_reference(case, x_explain)
        cases[name] = case

    model, frame = credit_pipeline()
    done = warden("init", MODELS / "credit" / "1" / "model.onnx", "--name", "credit", "--repository", repository,
                  "--data", ROOT / "examples" / "data" / "credit.csv", "--target", "decision",
                  "--background-rows", BACKGROUND_ROWS)
    assert done.returncode == 0, f"warden init credit: exit {done.returncode}\n{done.stderr}"
    background = read_background(repository / "credit", CREDIT_FEATURES)
    explained = frame[CREDIT_FEATURES].iloc[-EXPLAINED:].reset_index(drop=True)
    rows = [{c: (float(r[c]) if c in CREDIT_NUMERIC else str(r[c])) for c in CREDIT_FEATURES}
            for _, r in explained.iterrows()]
    case = Case("credit", "exact_shapley", "probability", CREDIT_FEATURES, rows, ["approve", "reject"], background,
                model)
    case.reference = credit_reference(case, explained)
    cases["credit"] = case

    # Tight limits: a forest that explains 3 rows a request, the pipeline (5 features) with at
    # most 4 for the exact method.
    for name, limit, copy in (("rf_binary", "max_rows = 3", "rf_limited"),
                              ("credit", "max_exact_features = 4", "credit_limited")):
        shutil.copytree(repository / name, repository / copy)
        manifest = repository / copy / "warden.toml"
        text = manifest.read_text()
        assert text.count("[explain]\n") == 1, text
        manifest.write_text(text.replace("[explain]\n", f"[explain]\n{limit}\n"))
    # A model without a background: the iris example with its `[explain]` table (the last in
    # its manifest) and background set taken away.
    shutil.copytree(MODELS / "iris", repository / "iris")
    manifest = repository / "iris" / "warden.toml"
    text = manifest.read_text()
    kept, table, _ = text.partition("[explain]\n")
    assert table and "\n[" not in _, text[-400:]
    manifest.write_text(kept)
    (repository / "iris" / "background.jsonl").unlink()
    return repository, cases


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return build_zoo(tmp_path_factory.mktemp("explain"))


@pytest.fixture(scope="module")
def served(zoo):
    repository, cases = zoo
    server = Warden([str(repository)])
    yield server, cases
    server.stop()


def explain(server, model, rows, **extra):
    return post(server.address, f"/v1/models/{model}:explain", {"instances": rows, **extra})


def check_against_reference(case, answer, rows, reference, classes=None, method=None):
    """Every explanation equals shap's for the class warden explained; additivity holds."""
    method = method or case.method
    assert (answer["method"], answer["scale"]) == (method, case.scale), (case.name, answer["method"], answer["scale"])
    assert answer["features"] == case.features
    assert answer["background_rows"] == BACKGROUND_ROWS
    assert 0 <= answer["additivity_max_error"] <= TOLERANCE, answer["additivity_max_error"]
    assert len(answer["explanations"]) == len(rows)
    for i, (explanation, expected) in enumerate(zip(answer["explanations"], reference)):
        if case.labels is None:
            assert "class" not in explanation, explanation
            label = None
        else:
            label = explanation["class"]
            if classes is not None:
                assert label == classes[i], (case.name, i, label, classes[i])
        values, base, output = expected[label]
        got = np.array([explanation["attributions"][f] for f in case.features])
        assert set(explanation["attributions"]) == set(case.features)
        assert np.abs(got - values).max() <= TOLERANCE, (case.name, i, got, values)
        assert abs(explanation["base_value"] - base) <= TOLERANCE, (case.name, i, explanation["base_value"], base)
        assert abs(explanation["output"] - output) <= TOLERANCE, (case.name, i, explanation["output"], output)
        assert abs(explanation["base_value"] + got.sum() - explanation["output"]) <= TOLERANCE
        assert "top" not in explanation


def default_classes(case, predictions):
    """The class explained by default: a binary classifier's second label; a multiclass one's
    predicted label per row."""
    if case.labels is None:
        return None
    if len(case.labels) == 2:
        return [case.labels[1]] * len(predictions)
    return [p["label"] for p in predictions]


@pytest.mark.parametrize("name", [*ZOO, "credit"])
def test_attributions_equal_shaps_on_the_same_background(served, name):
    server, cases = served
    case = cases[name]
    status, predicted = post(server.address, f"/v1/models/{name}:predict", {"instances": case.rows})
    assert status == 200, predicted
    status, answer = explain(server, name, case.rows)
    assert status == 200, answer
    assert answer["model"] == predicted["model"]
    check_against_reference(case, answer, case.rows, case.reference, default_classes(case, predicted["predictions"]))
    for explanation, prediction in zip(answer["explanations"], predicted["predictions"]):
        assert explanation["prediction"] == prediction
    # The version's own route answers the same.
    status, versioned = post(server.address, f"/v1/models/{name}/versions/1:explain", {"instances": case.rows})
    assert (status, versioned) == (200, answer)


@pytest.mark.parametrize("name", ["rf_multiclass", "lr_multiclass", "rf_binary", "credit"])
def test_a_class_asked_for_is_the_class_explained(served, name):
    server, cases = served
    case = cases[name]
    for label in case.labels:
        status, answer = explain(server, name, case.rows, **{"class": label})
        assert status == 200, answer
        check_against_reference(case, answer, case.rows, case.reference, [label] * len(case.rows))


def test_rows_as_arrays_in_feature_order_are_explained_alike(served):
    server, cases = served
    case = cases["gb_binary"]
    status, by_name = explain(server, "gb_binary", case.rows)
    assert status == 200, by_name
    status, by_position = explain(server, "gb_binary", [[r[f] for f in FEATURES] for r in case.rows])
    assert (status, by_position) == (200, by_name)


def test_top_k_lists_the_largest_attributions_with_their_signs_and_values(served):
    server, cases = served
    for name in ("xgb_binary", "credit"):
        case = cases[name]
        status, answer = explain(server, name, case.rows, top_k=3)
        assert status == 200, answer
        for row, explanation in zip(case.rows, answer["explanations"]):
            top = explanation["top"]
            assert len(top) == 3
            everything = sorted(explanation["attributions"].items(), key=lambda kv: -abs(kv[1]))
            assert [t["feature"] for t in top] == [f for f, _ in everything[:3]], (top, everything)
            for item in top:
                assert set(item) == {"feature", "value", "attribution", "effect"}
                assert item["attribution"] == explanation["attributions"][item["feature"]]
                assert item["effect"] == ("raises" if item["attribution"] > 0 else "lowers"), item
                # The value sent, as the model was given it: a string as is, a number as its float32
                # (written in float32's shortest form, -2.0302734 for -2.0302734375).
                sent = row[item["feature"]]
                if isinstance(sent, str):
                    assert item["value"] == sent, (item, sent)
                else:
                    assert np.float32(item["value"]) == np.float32(sent), (item, sent)
            assert [abs(t["attribution"]) for t in top] == sorted((abs(t["attribution"]) for t in top), reverse=True)
        # Signs kept: some attribution is negative somewhere in the answer.
        assert any(t["attribution"] < 0 for e in answer["explanations"] for t in e["top"])


def test_the_exact_method_equals_treeshap_on_a_forest(served):
    server, cases = served
    case = cases["rf_binary"]
    status, tree = explain(server, "rf_binary", case.rows, method="tree")
    assert status == 200, tree
    status, exact = explain(server, "rf_binary", case.rows, method="exact")
    assert status == 200, exact
    assert (tree["method"], tree["scale"]) == ("tree_shap", "probability")
    assert (exact["method"], exact["scale"]) == ("exact_shapley", "probability")
    for a, b in zip(tree["explanations"], exact["explanations"]):
        assert a["class"] == b["class"] and a["prediction"] == b["prediction"]
        assert abs(a["base_value"] - b["base_value"]) <= TOLERANCE
        assert abs(a["output"] - b["output"]) <= TOLERANCE
        for f in FEATURES:
            assert abs(a["attributions"][f] - b["attributions"][f]) <= TOLERANCE, (f, a, b)
    # And both are shap's.
    check_against_reference(case, exact, case.rows, case.reference, ["1"] * len(case.rows), method="exact_shapley")


def test_the_linear_method_is_the_default_and_can_be_named(served):
    server, cases = served
    case = cases["lr_binary"]
    status, default = explain(server, "lr_binary", case.rows)
    status_named, named = explain(server, "lr_binary", case.rows, method="linear")
    assert (status, status_named) == (200, 200), (default, named)
    assert named == default


def test_a_model_without_a_background_cannot_explain(served):
    server, _ = served
    row = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    status, body = explain(server, "iris", [row])
    assert status == 409, body
    assert set(body) == {"code", "error"} and body["code"] == "explain_unavailable", body
    assert "background" in body["error"] and "warden init" in body["error"], body
    # Predictions are unaffected.
    status, body = post(server.address, "/v1/models/iris:predict", {"instances": [row]})
    assert status == 200, body


def test_the_limits_refuse_before_any_work(served):
    server, cases = served
    # [explain] max_rows = 3.
    rows = cases["rf_binary"].rows
    status, body = explain(server, "rf_limited", rows[:4])
    assert status == 400, body
    assert set(body) == {"code", "error"} and body["code"] == "batch_too_large", body
    assert "max_rows" in body["error"] and "3" in body["error"], body
    status, body = explain(server, "rf_limited", rows[:3])
    assert status == 200, body
    # The default, 100 rows.
    many = cases["lr_binary"].rows * 21
    status, body = explain(server, "lr_binary", many[:101])
    assert status == 400 and body["code"] == "batch_too_large" and "max_rows" in body["error"], body
    status, body = explain(server, "lr_binary", many[:100])
    assert status == 200, body
    # [explain] max_exact_features = 4; the pipeline has 5 features, and only the exact method.
    rows = cases["credit"].rows
    for method in ({}, {"method": "exact"}):
        status, body = explain(server, "credit_limited", rows[:1], **method)
        assert status == 422, body
        assert set(body) == {"code", "error"} and body["code"] == "explain_too_costly", body
        assert "max_exact_features" in body["error"] and "5" in body["error"], body


def test_contract_violations_are_refused_as_predict_refuses_them(served):
    server, cases = served
    good = cases["credit"].rows[0]
    for bad in ({**good, "country": "XX"}, {k: v for k, v in good.items() if k != "age"}, {**good, "age": "old"},
                {**good, "income": -5.0}):
        status, refused = explain(server, "credit", [good, bad])
        status_predict, predict_refused = post(server.address, "/v1/models/credit:predict", {"instances": [good, bad]})
        assert (status, status_predict) == (400, 400), (refused, predict_refused)
        assert refused["code"] == "invalid_input" and refused["details"], refused
        assert refused == predict_refused
    # A class the model does not have, and a method warden does not know.
    status, body = explain(server, "credit", [good], **{"class": "maybe"})
    assert status == 400 and body["code"] == "invalid_input" and "maybe" in json.dumps(body), body
    status, body = explain(server, "credit", [good], method="kernel")
    assert status == 400 and body["code"] == "invalid_input" and "kernel" in json.dumps(body), body
    # The tree method on a model with no tree ensemble.
    status, body = explain(server, "lr_binary", cases["lr_binary"].rows, method="tree")
    assert status in (400, 422), body
    # An unknown model.
    status, body = explain(server, "nothing", [good])
    assert status == 404 and body["code"] == "model_not_found", body


def test_predictions_are_answered_while_an_explanation_runs(served):
    server, cases = served
    rows = (cases["credit"].rows * 20)[:100]
    answers = []

    def explaining():
        for _ in range(3):
            answers.append(explain(server, "credit", rows))

    worker = threading.Thread(target=explaining)
    worker.start()
    during = 0
    deadline = time.monotonic() + 120
    while worker.is_alive():
        assert time.monotonic() < deadline, "three explanations of 100 rows took over 120 s"
        status, body = post(server.address, "/v1/models/credit:predict", {"instances": rows[:1]}, timeout=10)
        assert status == 200, body
        during += worker.is_alive()
    worker.join()
    assert [status for status, _ in answers] == [200, 200, 200], [body for _, body in answers]
    assert during > 0, "no prediction was answered while the explanations ran"
    # The explanations of one row are the same in a batch of 100 as alone.
    status, alone = explain(server, "credit", rows[:1])
    assert status == 200, alone
    batch = answers[0][1]["explanations"][0]
    for f in CREDIT_FEATURES:
        assert abs(batch["attributions"][f] - alone["explanations"][0]["attributions"][f]) <= 1e-6


# The V2 `contributions` output: XGBoost's pred_contribs layout, [N, F + 1], base value last.

def v2_body(case, outputs):
    if case.name == "credit":
        inputs = [{"name": c, "shape": [len(case.rows), 1], "datatype": "BYTES" if c in CREDIT_CATEGORICAL else "FP32",
                   "data": [r[c] for r in case.rows]} for c in CREDIT_FEATURES]
    else:
        inputs = [{"name": "float_input", "shape": [len(case.rows), len(FEATURES)], "datatype": "FP32",
                   "data": [r[f] for r in case.rows for f in FEATURES]}]
    return {"inputs": inputs, "outputs": [{"name": o} for o in outputs]}


@pytest.mark.parametrize("name", ["gb_binary", "rf_regressor", "lr_binary", "credit"])
def test_v2_contributions_are_the_explanations_as_a_tensor(served, name):
    server, cases = served
    case = cases[name]
    status, answer = explain(server, name, case.rows)
    assert status == 200, answer
    first_output = "probabilities" if case.labels else "variable"
    status, body = post(server.address, f"/v2/models/{name}/infer", v2_body(case, [first_output, "contributions"]))
    assert status == 200, body
    outputs = {o["name"]: o for o in body["outputs"]}
    assert set(outputs) == {first_output, "contributions"}
    contributions = outputs["contributions"]
    assert contributions["datatype"] == "FP64"
    assert contributions["shape"] == [len(case.rows), len(case.features) + 1]
    parameters = contributions["parameters"]
    assert parameters["feature_names"] == [*case.features, "bias"]
    assert (parameters["method"], parameters["scale"]) == (answer["method"], answer["scale"])
    assert parameters["background_rows"] == BACKGROUND_ROWS
    if case.labels:
        assert parameters["classes"] == [e["class"] for e in answer["explanations"]]
    matrix = np.array(contributions["data"]).reshape(len(case.rows), len(case.features) + 1)
    for row, explanation in zip(matrix, answer["explanations"]):
        np.testing.assert_allclose(row[:-1], [explanation["attributions"][f] for f in case.features], atol=1e-12)
        assert abs(row[-1] - explanation["base_value"]) <= 1e-12


def test_v2_contributions_over_grpc(served):
    import tritonclient.grpc as grpcclient

    server, cases = served
    case = cases["xgb_binary"]
    status, answer = explain(server, "xgb_binary", case.rows)
    assert status == 200, answer
    client = grpcclient.InferenceServerClient(server.grpc_address)
    tensor = grpcclient.InferInput("float_input", [len(case.rows), len(FEATURES)], "FP32")
    tensor.set_data_from_numpy(np.array([[r[f] for f in FEATURES] for r in case.rows], dtype=np.float32))
    result = client.infer("xgb_binary", [tensor], outputs=[grpcclient.InferRequestedOutput("probabilities"),
                                                           grpcclient.InferRequestedOutput("contributions")])
    client.close()
    matrix = result.as_numpy("contributions")
    assert matrix.dtype == np.float64 and matrix.shape == (len(case.rows), len(FEATURES) + 1)
    for row, explanation in zip(matrix, answer["explanations"]):
        np.testing.assert_allclose(row[:-1], [explanation["attributions"][f] for f in FEATURES], atol=1e-12)
        assert abs(row[-1] - explanation["base_value"]) <= 1e-12


def test_v2_contributions_refused_without_a_background(served):
    server, _ = served
    body = {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}],
            "outputs": [{"name": "contributions"}]}
    status, answer = post(server.address, "/v2/models/iris/infer", body)
    assert status == 409 and answer["code"] == "explain_unavailable", answer


# The reference itself, without warden: shap's TreeSHAP (interventional) is exact Shapley
# enumeration against the same background, on the scale it claims. Runs with no binary.

@pytest.mark.parametrize("name", ["rf_binary", "gb_binary", "xgb_binary", "lgbm_binary", "et_regressor"])
def test_shaps_treeshap_is_exact_enumeration_on_the_raw_output(name):
    make, classes, converter, _, _ = ZOO[name]
    x, y = classification(classes) if classes else regression()
    model = make().fit(x, y)
    bg, rows = x[:BACKGROUND_ROWS], x[-EXPLAINED:]
    raw = {
        "rf_binary": lambda z: model.predict_proba(z),
        "gb_binary": lambda z: model.decision_function(z),
        "xgb_binary": lambda z: model.predict(z, output_margin=True),
        "lgbm_binary": lambda z: model.predict(z, raw_score=True),
        "et_regressor": lambda z: model.predict(z),
    }[name]
    tree = shap.TreeExplainer(model, data=every_row(bg), feature_perturbation="interventional")
    values = np.asarray(tree.shap_values(rows))
    exact = shap.explainers.Exact(raw, every_row(bg))(rows)
    # XGBoost sums its margin in float32: within 1e-6 there, 1e-7 elsewhere.
    assert np.abs(exact.values - values).max() <= (1e-6 if name == "xgb_binary" else 1e-7)
    assert np.abs(np.asarray(exact.base_values)[0] - np.asarray(tree.expected_value)).max() <= 1e-6
    # The expected value is the raw output's mean over the background.
    assert np.abs(np.asarray(tree.expected_value) - np.asarray(raw(bg)).mean(axis=0)).max() <= 1e-6
