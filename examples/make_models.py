"""Makes the bundled example models: examples/models/{iris,credit}/1/model.onnx and the
synthetic credit data set examples/data/credit.csv; and two tiny graphs the output-guard tests
serve (crates/server/tests/fixtures/models/{sqrt,echo}): `sqrt` answers NaN for a negative
input, `echo` answers its input as "probabilities", so any row can be a broken probability.
And two float64 graphs for the `warden init` tests (crates/server/tests/fixtures/float64_*.onnx):
ONNX Runtime has no float64 kernel for either; tract runs the tree regressor but not the SVM.

Deterministic: pinned package versions (checked at start), fixed seeds, and ONNX bytes with
nothing variable in them, so running it twice gives the same sha256. Run from the repository
root after `scripts/python-env dev`:

    .venv/bin/python examples/make_models.py
"""

import csv
import hashlib
import pathlib
import sys

PINNED = {
    "sklearn": "1.9.1",
    "skl2onnx": "1.20.0",
    "onnx": "1.19.1",
    "onnxruntime": "1.23.2",
    "pandas": "2.3.3",
}

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime  # noqa: E402
import pandas  # noqa: E402
import skl2onnx  # noqa: E402
import sklearn  # noqa: E402
from skl2onnx import convert_sklearn  # noqa: E402
from skl2onnx.common.data_types import FloatTensorType, StringTensorType  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent
OPSET = {"": 17, "ai.onnx.ml": 3}  # runs on ONNX Runtime >= 1.17
COUNTRIES = ["US", "DE", "FR", "GB", "IN"]
EMPLOYMENT = ["salaried", "self_employed", "unemployed"]
NUMERIC = ["age", "income", "debt_ratio"]
CATEGORICAL = ["country", "employment"]


def check_versions():
    found = {name: sys.modules[name].__version__ for name in PINNED}
    wrong = {n: v for n, v in found.items() if v != PINNED[n]}
    if wrong:
        listed = ", ".join(f"{n} {v} (pinned {PINNED[n]})" for n, v in wrong.items())
        sys.exit(f"error: make_models.py needs the pinned packages, found {listed}; "
                 "the models would not be byte-identical. Run scripts/python-env dev")


def export(model, initial_types, n_classes, path):
    """Converts a classifier to ONNX with plain `label` and `probabilities` outputs."""
    classifier = model.steps[-1][1] if isinstance(model, Pipeline) else model
    onx = convert_sklearn(
        model,
        initial_types=initial_types,
        options={id(classifier): {"zipmap": False}},
        target_opset=OPSET,
        final_types=[
            ("label", StringTensorType([None])),
            ("probabilities", FloatTensorType([None, n_classes])),
        ],
    )
    onx.producer_version = skl2onnx.__version__
    onx.doc_string = ""
    onx.graph.doc_string = ""
    onx.graph.name = path.parent.parent.name  # skl2onnx puts a random UUID here
    # skl2onnx lists opset imports in set order, which changes with Python's hash seed.
    opsets = sorted(onx.opset_import, key=lambda o: o.domain)
    del onx.opset_import[:]
    onx.opset_import.extend(opsets)
    onnx.checker.check_model(onx)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onx.SerializeToString())
    return path


def verify(path, model, feeds, frame, classes):
    """ONNX Runtime must agree with scikit-learn on every training row, and the columns of
    `probabilities` must be in the order the manifests declare (sklearn sorts the classes)."""
    assert [str(c) for c in model.classes_] == classes, f"{path}: classes {model.classes_}, want {classes}"
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
    labels, probabilities = session.run(["label", "probabilities"], feeds)
    assert list(labels) == list(model.predict(frame)), f"{path}: labels differ from sklearn"
    np.testing.assert_allclose(probabilities, model.predict_proba(frame), atol=1e-5)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    inputs = [(i.name, i.type, i.shape) for i in session.get_inputs()]
    outputs = [(o.name, o.type, o.shape) for o in session.get_outputs()]
    opsets = {o.domain or "ai.onnx": o.version for o in onnx.load(path).opset_import}
    print(f"{path.relative_to(ROOT.parent)}  sha256 {digest}")
    print(f"  inputs {inputs}\n  outputs {outputs}\n  opsets {opsets}  classes {classes}")


IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def make_iris():
    data = load_iris()
    x = data.data.astype(np.float32)
    y = np.array(data.target_names)[data.target]
    # The training data as a CSV with named columns: `warden init --data` reads it.
    csv_path = ROOT / "data/iris.csv"
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(IRIS_FEATURES + ["species"])
        writer.writerows([*map(float, row), label] for row, label in zip(data.data, y))
    model = LogisticRegression(max_iter=1000).fit(x, y)
    path = export(model, [("float_input", FloatTensorType([None, 4]))], 3,
                  ROOT / "models/iris/1/model.onnx")
    verify(path, model, {"float_input": x}, x, ["setosa", "versicolor", "virginica"])


def credit_rows(n=600, seed=7):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        age = rng.uniform(18, 80)
        income = float(np.exp(rng.normal(10.8, 0.6)).clip(8000, 250000))
        debt_ratio = rng.uniform(0, 1.5)
        country = COUNTRIES[rng.integers(len(COUNTRIES))]
        employment = EMPLOYMENT[rng.choice(3, p=[0.65, 0.25, 0.10])]
        score = (1.6 * np.log(income / 40000) - 2.2 * debt_ratio + 0.02 * (age - 40)
                 - {"salaried": 0.0, "self_employed": 0.4, "unemployed": 1.8}[employment]
                 + {"US": 0.2, "DE": 0.3, "FR": 0.0, "GB": 0.1, "IN": -0.3}[country]
                 + 1.0 + rng.normal(0, 0.6))
        rows.append({"age": round(age, 2), "income": round(income, 2),
                     "debt_ratio": round(debt_ratio, 2), "country": country,
                     "employment": employment, "decision": "approve" if score > 0 else "reject"})
    return rows


def make_credit():
    rows = credit_rows()
    csv_path = ROOT / "data/credit.csv"
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=NUMERIC + CATEGORICAL + ["decision"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    frame = pandas.DataFrame(rows)
    x, y = frame[NUMERIC + CATEGORICAL], frame["decision"].to_numpy()
    model = Pipeline([
        ("prepare", ColumnTransformer([
            ("scale", StandardScaler(), NUMERIC),
            ("onehot", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ])),
        ("classify", LogisticRegression(max_iter=1000)),
    ]).fit(x, y)
    initial_types = [(c, FloatTensorType([None, 1])) for c in NUMERIC]
    initial_types += [(c, StringTensorType([None, 1])) for c in CATEGORICAL]
    path = export(model, initial_types, 2, ROOT / "models/credit/1/model.onnx")
    feeds = {c: x[c].to_numpy().astype(np.float32).reshape(-1, 1) for c in NUMERIC}
    feeds.update({c: x[c].to_numpy().astype(object).reshape(-1, 1) for c in CATEGORICAL})
    verify(path, model, feeds, x, ["approve", "reject"])
    approve = sum(r["decision"] == "approve" for r in rows)
    print(f"  {csv_path.relative_to(ROOT.parent)}: {len(rows)} rows, {approve} approve, {len(rows) - approve} reject")


def make_guard_fixtures():
    from onnx import TensorProto, helper

    fixtures = ROOT.parent / "crates" / "server" / "tests" / "fixtures" / "models"
    graphs = {
        "sqrt": ("Sqrt", [None, 1], "value"),
        "echo": ("Identity", [None, 2], "probabilities"),
    }
    for name, (op, shape, output) in graphs.items():
        graph = helper.make_graph(
            [helper.make_node(op, ["x"], [output], name=f"{name}_node")],
            name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, shape)],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="warden-tests")
        model.ir_version = 8
        onnx.checker.check_model(model)
        path = fixtures / name / "1" / "model.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(model.SerializeToString())
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        print(f"{path.relative_to(ROOT.parent)}  sha256 {digest}")
    # A graph with an operator no engine implements, for the start-up diagnostics tests.
    graph = helper.make_graph(
        [helper.make_node("Frobnicate", ["x"], ["y"], name="frobnicate_1", domain="ai.example")],
        "unsupported",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.example", 1)],
        producer_name="warden-tests",
    )
    model.ir_version = 8
    path = fixtures.parent / "unsupported.onnx"
    path.write_bytes(model.SerializeToString())
    print(f"{path.relative_to(ROOT.parent)}  sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}")


def make_float64_fixtures():
    """skl2onnx with DoubleTensorType (instead of its default, FloatTensorType) makes the ONNX-ML
    operators float64: ONNX Runtime refuses a float64 TreeEnsembleRegressor (a type error) and
    SVMRegressor (no kernel), which `warden init` must fall back from or explain."""
    from skl2onnx.common.data_types import DoubleTensorType
    from sklearn.svm import SVR
    from sklearn.tree import DecisionTreeRegressor

    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 2))
    y = 2 * x[:, 0] + x[:, 1]
    fixtures = ROOT.parent / "crates" / "server" / "tests" / "fixtures"
    for name, model in [
        ("float64_tree_regressor", DecisionTreeRegressor(max_depth=2, random_state=0)),
        ("float64_svm_regressor", SVR()),
    ]:
        onx = convert_sklearn(model.fit(x, y), initial_types=[("x", DoubleTensorType([None, 2]))],
                              target_opset=OPSET)
        onx.producer_version = skl2onnx.__version__
        onx.doc_string = ""
        onx.graph.doc_string = ""
        onx.graph.name = name  # skl2onnx puts a random UUID here
        opsets = sorted(onx.opset_import, key=lambda o: o.domain)
        del onx.opset_import[:]
        onx.opset_import.extend(opsets)
        onnx.checker.check_model(onx)
        path = fixtures / f"{name}.onnx"
        path.write_bytes(onx.SerializeToString())
        print(f"{path.relative_to(ROOT.parent)}  sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    check_versions()
    make_iris()
    make_credit()
    make_guard_fixtures()
    make_float64_fixtures()
