"""Makes the model zoo: one small ONNX file per model kind people export from scikit-learn,
XGBoost and LightGBM, each beside a JSON file with test rows and ONNX Runtime's (Python API)
answers on them, in KServe V2 tensor form. warden's zoo tests serve every model on both
backends and compare with these answers.

Deterministic (pinned packages, fixed seeds). Run from the repository root:

    .venv/bin/pip install -r tests/zoo/requirements.txt
    .venv/bin/python tests/zoo/make_zoo.py
"""

import json
import pathlib
import sys
import warnings

import numpy as np
import onnx
import onnxruntime
import pandas
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC, LinearSVC
from skl2onnx import convert_sklearn, to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType

warnings.filterwarnings("ignore")
ZOO = pathlib.Path(__file__).resolve().parent
OPSET = {"": 17, "ai.onnx.ml": 3}
ROWS = 16
FEATURES = 6


def check_versions():
    import lightgbm
    import onnxmltools
    import xgboost

    pinned = {sklearn: "1.9.1", onnx: "1.19.1", onnxruntime: "1.23.2", xgboost: "3.2.0",
              lightgbm: "4.7.0", onnxmltools: "1.16.0"}
    wrong = {m.__name__: m.__version__ for m, v in pinned.items() if m.__version__ != v}
    if wrong:
        sys.exit(f"error: make_zoo.py needs the pinned versions; found {wrong}")


def tidy(model, name):
    """Deterministic bytes: no random graph name, sorted opset imports, no doc strings."""
    model.graph.name = name
    model.doc_string = ""
    model.graph.doc_string = ""
    opsets = sorted(model.opset_import, key=lambda o: o.domain)
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    return model


def tensor(name, array):
    array = np.asarray(array)
    if array.dtype == object:
        datatype, data = "BYTES", [str(x) for x in array.ravel()]
    elif array.dtype == np.float32:
        datatype, data = "FP32", [float(x) for x in array.ravel()]
    elif array.dtype == np.float64:
        datatype, data = "FP64", [float(x) for x in array.ravel()]
    elif array.dtype == np.int64:
        datatype, data = "INT64", [int(x) for x in array.ravel()]
    elif array.dtype == np.int32:
        datatype, data = "INT32", [int(x) for x in array.ravel()]
    else:
        raise ValueError(f"{name}: unexpected dtype {array.dtype}")
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def save(name, model, feeds):
    """Writes NAME.onnx and NAME.json (rows and ONNX Runtime's answers)."""
    path = ZOO / f"{name}.onnx"
    path.write_bytes(tidy(model, name).SerializeToString())
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    answers = session.run(None, feeds)
    outputs = []
    for meta, value in zip(session.get_outputs(), answers):
        if isinstance(value, list):  # ZipMap: one {label: p} per row -> [N, classes] in label order
            labels = list(value[0].keys())
            value = np.array([[row[label] for label in labels] for row in value], dtype=np.float32)
        outputs.append(tensor(meta.name, value))
    inputs = [tensor(name, array) for name, array in feeds.items()]
    (ZOO / f"{name}.json").write_text(json.dumps({"inputs": inputs, "outputs": outputs}, indent=1) + "\n")
    print(f"{name:40s} {[n.op_type for n in model.graph.node if n.domain == 'ai.onnx.ml']}")


def main():
    check_versions()
    import lightgbm
    import onnxmltools
    import xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType as MlFloat

    x, y = make_classification(n_samples=300, n_features=FEATURES, n_informative=4, n_classes=3,
                               random_state=0)
    x = x.astype(np.float32)
    xr, yr = make_regression(n_samples=300, n_features=FEATURES, noise=5.0, random_state=0)
    xr = xr.astype(np.float32)
    rows, rows_r = x[:ROWS], xr[:ROWS]

    classifiers = {
        "logistic_regression": LogisticRegression(max_iter=500),
        "random_forest_classifier": RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0),
        "extra_trees_classifier": ExtraTreesClassifier(n_estimators=10, max_depth=5, random_state=0),
        "gradient_boosting_classifier": GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0),
        "kneighbors_classifier": KNeighborsClassifier(n_neighbors=5),
        "mlp_classifier": MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0),
        "svc": SVC(probability=True, random_state=0),
    }
    for name, model in classifiers.items():
        model.fit(x, y)
        for zipmap in (False, True):
            onx = to_onnx(model, x[:1], target_opset=OPSET, options={id(model): {"zipmap": zipmap}})
            save(f"{name}{'_zipmap' if zipmap else ''}", onx, {"X": rows})
    svc = LinearSVC(random_state=0).fit(x, y)
    save("linear_svc", to_onnx(svc, x[:1], target_opset=OPSET), {"X": rows})

    regressors = {
        "random_forest_regressor": RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0),
        "extra_trees_regressor": ExtraTreesRegressor(n_estimators=10, max_depth=5, random_state=0),
        "gradient_boosting_regressor": GradientBoostingRegressor(n_estimators=10, max_depth=3, random_state=0),
    }
    for name, model in regressors.items():
        model.fit(xr, yr)
        save(name, to_onnx(model, xr[:1], target_opset=OPSET), {"X": rows_r})

    # A mixed-type pipeline: imputed and scaled numbers, one-hot strings, one input per column.
    rng = np.random.default_rng(0)
    frame = pandas.DataFrame({
        "a": rng.normal(size=300).astype(np.float32),
        "b": rng.normal(size=300).astype(np.float32),
        "colour": rng.choice(["red", "green", "blue"], size=300),
    })
    frame.loc[::17, "a"] = np.nan
    target = (frame["b"] + (frame["colour"] == "red")).gt(0.3).map({True: "yes", False: "no"})
    pipeline = Pipeline([
        ("prepare", ColumnTransformer([
            ("numbers", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), ["a", "b"]),
            ("strings", OneHotEncoder(handle_unknown="ignore"), ["colour"]),
        ])),
        ("classify", LogisticRegression()),
    ]).fit(frame, target)
    types = [("a", FloatTensorType([None, 1])), ("b", FloatTensorType([None, 1])),
             ("colour", StringTensorType([None, 1]))]
    clean = frame.iloc[1:ROWS + 1]
    feeds = {"a": clean[["a"]].to_numpy(np.float32), "b": clean[["b"]].to_numpy(np.float32),
             "colour": clean[["colour"]].to_numpy().astype(object)}
    for zipmap in (False, True):
        onx = convert_sklearn(pipeline, initial_types=types, target_opset=OPSET,
                              options={id(pipeline.steps[-1][1]): {"zipmap": zipmap}})
        save(f"pipeline_impute_scale_onehot{'_zipmap' if zipmap else ''}", onx, feeds)

    ml_types = [("input", MlFloat([None, FEATURES]))]
    xgb_clf = xgboost.XGBClassifier(n_estimators=10, max_depth=3, random_state=0).fit(x, y)
    save("xgboost_classifier", onnxmltools.convert_xgboost(xgb_clf, initial_types=ml_types, target_opset=15),
         {"input": rows})
    xgb_reg = xgboost.XGBRegressor(n_estimators=10, max_depth=3, random_state=0).fit(xr, yr)
    save("xgboost_regressor", onnxmltools.convert_xgboost(xgb_reg, initial_types=ml_types, target_opset=15),
         {"input": rows_r})
    lgb_clf = lightgbm.LGBMClassifier(n_estimators=10, num_leaves=8, random_state=0, verbose=-1).fit(x, y)
    for zipmap in (False, True):
        onx = onnxmltools.convert_lightgbm(lgb_clf, initial_types=ml_types, target_opset=15, zipmap=zipmap)
        save(f"lightgbm_classifier{'_zipmap' if zipmap else ''}", onx, {"input": rows})
    lgb_reg = lightgbm.LGBMRegressor(n_estimators=10, num_leaves=8, random_state=0, verbose=-1).fit(xr, yr)
    save("lightgbm_regressor", onnxmltools.convert_lightgbm(lgb_reg, initial_types=ml_types, target_opset=15),
         {"input": rows_r})


if __name__ == "__main__":
    main()
