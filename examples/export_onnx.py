"""Exports a scikit-learn model (a Pipeline over a pandas DataFrame, or a bare estimator) to an
ONNX file warden serves, and checks the file answers as the model does.

    from export_onnx import export
    export(model, X_train, "model.onnx")     # X_train: the feature columns the model was fit on

or, for a model saved with joblib (your own file: loading a pickle runs its code):

    python examples/export_onnx.py model.joblib train.csv --target y --out model.onnx

The recipe (the README's "Exporting a scikit-learn pipeline" shows the same lines):
- one [N, 1] input per column, named like it, typed from the DataFrame: float columns float32,
  integer columns int64, the rest strings (a float64 input, what `to_onnx(model, X[:1])` declares
  for a float64 column, makes a float64 TreeEnsembleRegressor or ZipMap, which ONNX Runtime
  rejects);
- ZipMap off for a classifier, so its probabilities are a plain [N, classes] tensor;
- opset 17 with ai.onnx.ml 3, which ONNX Runtime 1.17+ and tract both run.
"""

import argparse
import pathlib

import numpy as np
import onnxruntime
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
from sklearn.base import is_classifier

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def tensor_type(dtype):
    """The skl2onnx input type of one DataFrame column."""
    if dtype.kind == "f":
        return FloatTensorType([None, 1])
    if dtype.kind in "iu":
        return Int64TensorType([None, 1])
    if dtype.kind in "OUS":  # object, str, pandas string and category
        return StringTensorType([None, 1])
    raise TypeError(f"no ONNX input type for a {dtype} column: cast it to float, int or str")


def export(model, X, path):
    """Converts `model`, fit on the DataFrame `X`, checks it answers as `model` does on the rows
    of `X`, and only then writes it to `path`."""
    onx = to_onnx(
        model,
        initial_types=[(column, tensor_type(X[column].dtype)) for column in X.columns],
        options={"zipmap": False} if is_classifier(model) else None,
        target_opset=TARGET_OPSET,
    )
    data = onx.SerializeToString()
    check(data, model, X)
    pathlib.Path(path).write_bytes(data)
    return path


def feeds(X):
    """The rows of `X` as ONNX Runtime inputs, typed as `tensor_type` declares them."""
    def column(c):
        kind = X[c].dtype.kind
        if kind == "f":
            return X[[c]].to_numpy(np.float32)
        if kind in "iu":
            return X[[c]].to_numpy(np.int64)
        return X[[c]].astype(str).to_numpy()
    return {c: column(c) for c in X.columns}


def check(onnx_bytes, model, X):
    """ONNX Runtime must load the graph and agree with scikit-learn on every row of `X`: the same
    labels, and probabilities (classifier) or values (regressor) equal to float32 precision."""
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    answers = session.run(None, feeds(X))
    expected = model.predict(X)
    if is_classifier(model):
        compare("labels", answers[0], expected, exact=True)
        if hasattr(model, "predict_proba"):
            compare("probabilities", answers[1], model.predict_proba(X))
    else:
        compare("values", answers[0].reshape(expected.shape), expected)


def compare(what, got, expected, exact=False):
    same = got == expected if exact else np.isclose(got, expected, rtol=1e-4, atol=1e-5)
    rows = np.flatnonzero(~same.reshape(len(same), -1).all(axis=1))
    if len(rows):
        raise ValueError(
            f"ONNX Runtime's {what} differ from scikit-learn's in {len(rows)} of {len(same)} rows "
            f"(the first: row {rows[0]}). The graph computes in float32, so a row that lands on a "
            "tree's split after float32 arithmetic (a scaler in front of the trees, usually) can "
            "take the other branch; trees need no scaling: pass their numeric columns through")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a model saved with joblib.dump (loading it runs its code: only your own)")
    parser.add_argument("data", help="the training data as CSV, with the target column")
    parser.add_argument("--target", required=True, help="the target column, left out of the inputs")
    parser.add_argument("--out", default="model.onnx")
    args = parser.parse_args()

    import joblib
    import pandas

    model = joblib.load(args.model)
    X = pandas.read_csv(args.data).drop(columns=[args.target])
    export(model, X, args.out)
    print(f"wrote {args.out}: ONNX Runtime answers as the model does on {len(X)} rows of {args.data}")


if __name__ == "__main__":
    main()
