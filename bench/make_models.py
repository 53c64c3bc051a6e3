"""The benchmark's two models, made with fixed seeds into bench/work: `light` (LogisticRegression,
20 features) and `heavy` (RandomForest, 200 trees, depth 12, 30 features); each as a joblib file
for the Flask baseline, an ONNX file, and warden repositories forcing each backend, plus one
(`models-drift`) whose manifests carry a training baseline, so drift monitoring's cost per
request is measured against the same server without it. Also `forest` (RandomForest, 200 trees,
depth 14, 30 features, fitted on 20,000 rows: a 16.5 MB graph) in `models-forest-onnxruntime`
and `models-forest-tract` only, for bench/forest.py (memory per worker, tract against ONNX
Runtime on a large forest)."""

import pathlib

import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType

WORK = pathlib.Path(__file__).resolve().parent / "work"
MODELS = {
    "light": (20, LogisticRegression(max_iter=500)),
    "heavy": (30, RandomForestClassifier(n_estimators=200, max_depth=12, random_state=0, n_jobs=1)),
}

def baseline(x, y):
    """`[baseline]` as `warden init --data` writes it: nearest-rank deciles and bin shares per
    feature, class frequencies for the target."""
    lines = []
    for i in range(x.shape[1]):
        values = np.sort(x[:, i].astype(float))
        last = len(values) - 1
        quantiles = [float(values[(k * last + 5) // 10]) for k in range(11)]
        edges = np.unique(quantiles[1:10])
        counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
        shares = [round(int(c) / len(values), 6) for c in counts]
        lines.append(f"[baseline.f{i}]\nquantiles = {quantiles}\nshares = {shares}\n")
    classes, counts = np.unique(y, return_counts=True)
    frequencies = "".join(f'"{c}" = {n / len(y):.6f}\n' for c, n in zip(classes, counts))
    lines.append(f'[baseline.y]\nrole = "target"\n\n[baseline.y.frequencies]\n{frequencies}')
    return "\n".join(lines)


def write_repository(repository, name, backend, features, onx, capacity=1024, extra=""):
    """A warden repository entry: the graph as version 1 and a manifest forcing `backend`."""
    outputs = [o.name for o in onx.graph.output]
    folder = WORK / repository / name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    (folder / "1" / "model.onnx").write_bytes(onx.SerializeToString())
    feature_tables = "".join(f'[[features]]\nname = "f{i}"\ntype = "float"\n\n' for i in range(features))
    example = "".join(f"f{i} = 0.0\n" for i in range(features))
    (folder / "warden.toml").write_text(
        f'backend = "{backend}"\n\n{feature_tables}'
        f'[[outputs]]\nname = "{outputs[0]}"\nkind = "label"\nlabels = ["0", "1"]\n\n'
        f'[[outputs]]\nname = "{outputs[1]}"\nkind = "probability"\nlabels = ["0", "1"]\n\n'
        f"[batching]\nmax_batch_size = 64\nqueue_capacity = {capacity}\n\n[example]\n{example}" + extra)


for name, (features, model) in MODELS.items():
    x, y = make_classification(n_samples=2000, n_features=features, n_informative=10, random_state=0)
    x = x.astype(np.float32)
    model.fit(x, y)
    WORK.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, WORK / f"{name}.joblib")
    onx = convert_sklearn(model, initial_types=[("float_input", FloatTensorType([None, features]))],
                          target_opset={"": 17, "ai.onnx.ml": 3}, options={id(model): {"zipmap": False}})
    (WORK / f"{name}.onnx").write_bytes(onx.SerializeToString())
    outputs = [o.name for o in onx.graph.output]
    for backend, repository, capacity in (("onnxruntime", "models-onnxruntime", 1024),
                                          ("tract", "models-tract", 1024),
                                          ("onnxruntime", "models-overload", 16),
                                          ("onnxruntime", "models-drift", 1024)):
        write_repository(repository, name, backend, features, onx, capacity,
                         "\n" + baseline(x, y) if repository == "models-drift" else "")
    print(name, "features", features, "outputs", outputs)


x, y = make_classification(n_samples=20000, n_features=30, n_informative=15, random_state=1)
x = x.astype(np.float32)
forest = RandomForestClassifier(n_estimators=200, max_depth=14, random_state=0, n_jobs=2).fit(x, y)
onx = convert_sklearn(forest, initial_types=[("float_input", FloatTensorType([None, 30]))],
                      target_opset={"": 17, "ai.onnx.ml": 3}, options={id(forest): {"zipmap": False}})
for backend in ("onnxruntime", "tract"):
    write_repository(f"models-forest-{backend}", "forest", backend, 30, onx)
print("forest", "bytes", len(onx.SerializeToString()))
