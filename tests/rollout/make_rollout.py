"""Makes the rollout fixtures: several versions of one model to serve side by side (canary and
shadow traffic, disagreement between versions), each model folder with its manifest, test rows
and ONNX Runtime's (Python API) answers on them.

    approval/   a 3-class classifier (features amount, tenure; labels approve, review, reject)
      1/model.onnx   DecisionTreeClassifier on a simple rule of amount and tenure
      2/model.onnx   the same, trained on labels where "reject" became "review" for amount > 800:
                     it disagrees with version 1 (almost) only on amount > 800
      3/model.onnx   "slow": version 1's graph plus a branch of MatMuls that depends on the input
                     (so nothing folds it at load), ~40-50 ms a run on one core whatever the number
                     of rows; its outputs are bit-identical to version 1's
      4/model.onnx   "faulty": version 1's graph, with NaN probabilities for rows with
                     amount > 900 (other rows and every label as version 1)
      warden.toml    features, outputs and an example row; no [versions.N] sha256, no baseline
      rows.json      2,000 test rows, [{"amount": a, "tenure": t}, ...]
      expected.json  versions 1 and 2 on those rows (label index, probabilities), the confusion
                     of version-1 labels (rows) by version-2 labels (columns), the agreement
    price/      a regressor pair (features size, rooms; one output `variable`, [N, 1] float)
      1/model.onnx   LinearRegression
      2/model.onnx   LinearRegression trained on targets 5% higher where size > 200
      warden.toml, rows.json (500 rows), expected.json (both versions' answers)

Every graph takes one float tensor `input` [N, 2] (the features in manifest order). The
classifiers answer `label` int64 [N] (the class index 0, 1, 2; the manifest maps it to a name)
and `probabilities` float [N, 3]. Answers are ONNX Runtime's on the rows cast to float32, as the
server casts them; a float in the JSON is the float32 value, exactly.

Deterministic (pinned packages, fixed seeds, no variable bytes in the graphs). The script checks
what it makes and stops with an error if a version is not what it claims to be (bit-identity of
3 and 4 with 1, the slow version's time). Run from the repository root:

    .venv/bin/python tests/rollout/make_rollout.py
"""

import hashlib
import json
import pathlib
import sys
import time
import warnings

PINNED = {
    "sklearn": "1.9.1",
    "skl2onnx": "1.20.0",
    "onnx": "1.19.1",
    "onnxruntime": "1.23.2",
}

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime  # noqa: E402
import skl2onnx  # noqa: E402
import sklearn  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from skl2onnx import convert_sklearn  # noqa: E402
from skl2onnx.common.data_types import FloatTensorType  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402

warnings.filterwarnings("ignore")
HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
OPSET = {"": 17, "ai.onnx.ml": 3}  # as tests/zoo and examples/make_models.py
LABELS = ["approve", "review", "reject"]
APPROVAL_ROWS = 2000
PRICE_ROWS = 500
# The slow branch: a chain of SLOW_MATMULS products of SLOW_SIZE x SLOW_SIZE float matrices
# (~3 ms each on one AMD EPYC core with ONNX Runtime 1.23), made at run time from scalars.
SLOW_SIZE = 512
SLOW_MATMULS = 14
SLOW_MS = (20.0, 150.0)  # the median single-row run must take this long on one thread
FAULTY_ABOVE = 900.0  # version 4 answers NaN probabilities for amount > this


def check_versions():
    found = {name: sys.modules[name].__version__ for name in PINNED}
    wrong = {n: v for n, v in found.items() if v != PINNED[n]}
    if wrong:
        listed = ", ".join(f"{n} {v} (pinned {PINNED[n]})" for n, v in wrong.items())
        sys.exit(f"error: make_rollout.py needs the pinned packages, found {listed}; "
                 "the models would not be byte-identical. Run scripts/python-env dev")


def fail(message):
    sys.exit(f"error: make_rollout.py: {message}")


def tidy(model, name):
    """Deterministic bytes: no random graph name, sorted opset imports, no doc strings."""
    model.producer_version = skl2onnx.__version__
    model.graph.name = name
    model.doc_string = ""
    model.graph.doc_string = ""
    opsets = sorted(model.opset_import, key=lambda o: o.domain)
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    return model


def write_model(model, path):
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"{path.relative_to(REPO)}  {path.stat().st_size} bytes  sha256 {digest}")


def session(path, threads=1):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def describe(sess):
    inputs = [(i.name, i.type, i.shape) for i in sess.get_inputs()]
    outputs = [(o.name, o.type, o.shape) for o in sess.get_outputs()]
    print(f"  inputs {inputs}\n  outputs {outputs}")


def compact(value, indent=""):
    """JSON with each row (an object or list of scalars) on one line: a diff shows which rows
    changed."""
    inner = indent + " "
    nested = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    if not any(isinstance(v, (dict, list)) for v in nested):
        return json.dumps(value, separators=(", ", ": "))
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {compact(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    return "[\n" + ",\n".join(inner + compact(v, inner) for v in value) + "\n" + indent + "]"


def write_json(path, value):
    text = compact(value)
    if json.loads(text) != value:
        fail(f"{path}: the JSON does not read back")
    path.write_text(text + "\n")
    print(f"{path.relative_to(REPO)}  {path.stat().st_size} bytes")


def bits(array):
    """The bytes of a float32 array, to compare NaN-exactly and sign-of-zero-exactly."""
    return np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)


def float_list(array):
    return [float(x) for x in np.asarray(array, dtype=np.float32).ravel()]


def rewire(model, output, suffix):
    """Renames graph output `output` inside the graph to `output` + suffix (the producing node's
    output and every consumer), so new nodes can read it and produce `output` afresh."""
    inner = output + suffix
    for node in model.graph.node:
        for i, name in enumerate(node.output):
            if name == output:
                node.output[i] = inner
        for i, name in enumerate(node.input):
            if name == output:
                node.input[i] = inner
    return inner


def constant(model, name, array):
    model.graph.initializer.append(numpy_helper.from_array(np.asarray(array), name))
    return name


# ---------------------------------------------------------------------------------- approval


def approval_truth(amount, tenure):
    """The rule behind the labels: review with short tenure; otherwise approve below 400,
    review below 700, reject above."""
    return np.where(tenure < 2, 1, np.where(amount < 400, 0, np.where(amount < 700, 1, 2)))


def approval_training():
    rng = np.random.default_rng(0)
    n = 3000
    amount = rng.uniform(0, 1000, n)
    tenure = rng.uniform(0, 20, n)
    y1 = approval_truth(amount, tenure)
    noise = np.random.default_rng(1)  # 5% of the labels drawn at random: probabilities not 0/1
    flip = noise.random(n) < 0.05
    y1[flip] = noise.integers(0, 3, flip.sum())
    y2 = y1.copy()
    y2[(amount > 800) & (y2 == 2)] = 1  # version 2: "reject" becomes "review" above 800
    x = np.c_[amount, tenure].astype(np.float32)
    return x, y1.astype(np.int64), y2.astype(np.int64)


def approval_rows():
    rng = np.random.default_rng(2)
    amount = np.round(rng.uniform(0, 1000, APPROVAL_ROWS), 2)
    tenure = np.round(rng.uniform(0, 20, APPROVAL_ROWS), 2)
    rows = [{"amount": float(a), "tenure": float(t)} for a, t in zip(amount, tenure)]
    return rows, np.c_[amount, tenure].astype(np.float32)


def export_classifier(clf, name):
    onx = convert_sklearn(clf, initial_types=[("input", FloatTensorType([None, 2]))],
                          options={id(clf): {"zipmap": False}}, target_opset=OPSET)
    names = [o.name for o in onx.graph.output]
    if names != ["label", "probabilities"]:
        fail(f"{name}: skl2onnx named the outputs {names}")
    return tidy(onx, name)


def add_slow_branch(model):
    """Version 1's graph plus a branch that costs SLOW_MATMULS products of SLOW_SIZE-square
    matrices per run whatever the rows, with `probabilities` bit-identical:

        s  = ReduceSum(input)                      [1, 1], depends on the input: not folded
        m0 = Expand((Tanh(s) + 2) / SIZE, [SIZE, SIZE])     every entry in [1, 3] / SIZE
        mk = MatMul(mk-1, w),  w = Expand(1 / SIZE, [SIZE, SIZE])   stays equal to m0: no
                                                   overflow, no subnormals
        b  = ReduceSum(mK)                         [1, 1]
        probabilities = Where(IsNaN(b), p, p)      both branches p: the same bits, whatever b
    """
    g = model.graph
    p = rewire(model, "probabilities", "_of_tree")
    inv = constant(model, "slow_inverse_size", np.array(1.0 / SLOW_SIZE, dtype=np.float32))
    two = constant(model, "slow_two", np.array(2.0, dtype=np.float32))
    shape = constant(model, "slow_shape", np.array([SLOW_SIZE, SLOW_SIZE], dtype=np.int64))
    nodes = [
        helper.make_node("ReduceSum", ["input"], ["slow_sum"], name="slow_sum", keepdims=1),
        helper.make_node("Tanh", ["slow_sum"], ["slow_tanh"], name="slow_tanh"),
        helper.make_node("Add", ["slow_tanh", two], ["slow_positive"], name="slow_positive"),
        helper.make_node("Mul", ["slow_positive", inv], ["slow_entry"], name="slow_entry"),
        helper.make_node("Expand", ["slow_entry", shape], ["slow_m0"], name="slow_m0"),
        helper.make_node("Expand", [inv, shape], ["slow_w"], name="slow_w"),
    ]
    for k in range(1, SLOW_MATMULS + 1):
        nodes.append(helper.make_node("MatMul", [f"slow_m{k - 1}", "slow_w"], [f"slow_m{k}"],
                                      name=f"slow_matmul_{k}"))
    nodes += [
        helper.make_node("ReduceSum", [f"slow_m{SLOW_MATMULS}"], ["slow_total"], name="slow_total",
                         keepdims=1),
        helper.make_node("IsNaN", ["slow_total"], ["slow_is_nan"], name="slow_is_nan"),
        helper.make_node("Where", ["slow_is_nan", p, p], ["probabilities"], name="slow_where"),
    ]
    g.node.extend(nodes)
    return model


def add_faulty_branch(model):
    """Version 1's graph with probabilities = Where(input[:, 0:1] > 900, NaN, p): NaN in every
    column of a row whose amount is above 900, p's bits elsewhere; `label` untouched."""
    p = rewire(model, "probabilities", "_of_tree")
    nodes = [
        helper.make_node("Slice", ["input", constant(model, "faulty_starts", np.array([0], np.int64)),
                                   constant(model, "faulty_ends", np.array([1], np.int64)),
                                   constant(model, "faulty_axes", np.array([1], np.int64))],
                         ["faulty_amount"], name="faulty_amount"),
        helper.make_node("Greater", ["faulty_amount",
                                     constant(model, "faulty_limit", np.array(FAULTY_ABOVE, np.float32))],
                         ["faulty_rows"], name="faulty_rows"),
        helper.make_node("Where", ["faulty_rows", constant(model, "faulty_nan", np.array(np.nan, np.float32)), p],
                         ["probabilities"], name="faulty_where"),
    ]
    model.graph.node.extend(nodes)
    return model


def time_single_row(sess, x, runs=20):
    feeds = {"input": x[:1]}
    sess.run(None, feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def approval_manifest():
    labels = ", ".join(f'"{label}"' for label in LABELS)
    return f"""\
# The contract of model `approval`, the rollout fixtures' classifier (written by
# tests/rollout/make_rollout.py). Versions 1 to 4 share it; see tests/rollout/README.md.
# No [versions.N] sha256 and no baseline: the tests add what they need.

[[features]]
name = "amount"
type = "float"
min = 0
max = 1000

[[features]]
name = "tenure"
type = "float"
min = 0
max = 20

[[outputs]]
name = "label"
kind = "label"
labels = [{labels}]

[[outputs]]
name = "probabilities"
kind = "probability"
labels = [{labels}]

[example]
amount = 250.0
tenure = 5.0
"""


def make_approval():
    folder = HERE / "approval"
    x, y1, y2 = approval_training()
    shares = np.bincount(y1, minlength=3)
    print(f"approval training: {len(x)} rows, labels {dict(zip(LABELS, map(int, shares)))} (version 1)")
    if shares.min() < 0.2 * len(x):
        fail(f"a class is under-represented in training: {shares}")
    clf1 = DecisionTreeClassifier(max_depth=4, random_state=0).fit(x, y1)
    clf2 = DecisionTreeClassifier(max_depth=4, random_state=0).fit(x, y2)
    for clf in (clf1, clf2):
        if list(clf.classes_) != [0, 1, 2]:
            fail(f"classes {clf.classes_}, want [0, 1, 2]")

    v1 = export_classifier(clf1, "approval")
    v2 = export_classifier(clf2, "approval")
    v3 = add_slow_branch(export_classifier(clf1, "approval"))
    v4 = add_faulty_branch(export_classifier(clf1, "approval"))
    paths = {}
    for version, model in enumerate((v1, v2, v3, v4), start=1):
        paths[version] = folder / str(version) / "model.onnx"
        write_model(model, paths[version])

    rows, xs = approval_rows()
    sessions = {v: session(p) for v, p in paths.items()}
    describe(sessions[1])
    for v in (3, 4):
        outputs = [(o.name, o.type, o.shape) for o in sessions[v].get_outputs()]
        if outputs != [(o.name, o.type, o.shape) for o in sessions[1].get_outputs()]:
            fail(f"version {v}'s outputs {outputs} are not version 1's")
    answers = {v: sessions[v].run(["label", "probabilities"], {"input": xs}) for v in paths}

    # Versions 1 and 2 are the trees scikit-learn trained.
    for v, clf in ((1, clf1), (2, clf2)):
        labels, probabilities = answers[v]
        if labels.dtype != np.int64 or probabilities.dtype != np.float32 or probabilities.shape != (len(xs), 3):
            fail(f"version {v}: label {labels.dtype}, probabilities {probabilities.dtype} {probabilities.shape}")
        if not np.array_equal(labels, clf.predict(xs)):
            fail(f"version {v}: labels differ from scikit-learn")
        np.testing.assert_allclose(probabilities, clf.predict_proba(xs), atol=1e-6)

    # Version 3: bit-identical to version 1, on all rows at once and row by row.
    def same(a, b):
        return np.array_equal(a[0], b[0]) and np.array_equal(bits(a[1]), bits(b[1]))

    if not same(answers[3], answers[1]):
        fail("version 3 (slow) does not answer version 1's bits")
    for i in range(0, len(xs), 97):
        feeds = {"input": xs[i:i + 1]}
        if not same(sessions[3].run(None, feeds), sessions[1].run(None, feeds)):
            fail(f"version 3 (slow) does not answer version 1's bits on row {i}")

    # Version 4: NaN probabilities exactly where amount > 900, version 1's bits elsewhere.
    faulty = xs[:, 0] > np.float32(FAULTY_ABOVE)
    labels4, p4 = answers[4]
    if not np.array_equal(labels4, answers[1][0]):
        fail("version 4 (faulty) changed a label")
    if not np.isnan(p4[faulty]).all() or np.isnan(p4[~faulty]).any():
        fail("version 4 (faulty) has NaN probabilities outside amount > 900, or not all NaN above")
    if not np.array_equal(bits(p4[~faulty]), bits(answers[1][1][~faulty])):
        fail("version 4 (faulty) changed the probabilities of a row with amount <= 900")
    print(f"  version 4 (faulty): NaN probabilities on {int(faulty.sum())} of {len(xs)} rows (amount > 900)")

    # The example row: finite answers from every version.
    example = np.array([[250.0, 5.0]], dtype=np.float32)
    for v, s in sessions.items():
        label, probabilities = s.run(["label", "probabilities"], {"input": example})
        if not np.isfinite(probabilities).all():
            fail(f"version {v} answers the example row with {probabilities}")
    print(f"  example row (amount 250, tenure 5): {LABELS[int(label[0])]} {probabilities[0].tolist()}"
          " on every version")

    # Version 3 is slow: one row, one thread, median of 20 runs.
    slow = time_single_row(sessions[3], xs)
    fast = time_single_row(sessions[1], xs)
    batch_start = time.perf_counter()
    sessions[3].run(None, {"input": xs})
    batch = 1000 * (time.perf_counter() - batch_start)
    print(f"  version 3 (slow): one row {slow:.1f} ms (median of 20, one thread; version 1: "
          f"{fast:.3f} ms), {len(xs)} rows {batch:.1f} ms")
    if not SLOW_MS[0] <= slow <= SLOW_MS[1]:
        fail(f"version 3 takes {slow:.1f} ms a row, want {SLOW_MS[0]}..{SLOW_MS[1]}")
    two = time_single_row(session(paths[3], threads=2), xs)
    print(f"  version 3 (slow): one row {two:.1f} ms with two threads")

    # Versions 1 and 2 compared.
    l1, l2 = answers[1][0], answers[2][0]
    confusion = np.zeros((3, 3), dtype=np.int64)
    np.add.at(confusion, (l1, l2), 1)
    agree = int((l1 == l2).sum())
    differ = l1 != l2
    outside = int((differ & (xs[:, 0] <= 800)).sum())
    print(f"  versions 1 and 2 disagree on {int(differ.sum())} of {len(xs)} rows "
          f"({outside} of them with amount <= 800); confusion (rows v1, columns v2) {confusion.tolist()}")
    if not 100 <= differ.sum() <= 600:
        fail(f"{differ.sum()} rows disagree, want a few hundred")
    print(f"  version 1 labels on the rows: {dict(zip(LABELS, map(int, np.bincount(l1, minlength=3))))}")

    write_json(folder / "rows.json", rows)
    expected = {
        "about": "ONNX Runtime 1.23.2 on rows.json cast to float32. label: the class index "
                 "(labels[i]); probabilities: float32 values, columns in labels order. "
                 "confusion[i][j]: rows version 1 labels i and version 2 labels j. "
                 "Version 3 answers version 1's bits; version 4 answers version 1's labels, "
                 "and version 1's probabilities except NaN in every column where "
                 "float32(amount) > 900 (faulty_rows lists those row indices).",
        "labels": LABELS,
        "rows": len(xs),
        "versions": {
            str(v): {"label": [int(i) for i in answers[v][0]],
                     "probabilities": [float_list(row) for row in answers[v][1]]}
            for v in (1, 2)
        },
        "confusion": confusion.tolist(),
        "agreement": agree,
        "disagreement": len(xs) - agree,
        "faulty_rows": [int(i) for i in np.flatnonzero(faulty)],
    }
    write_json(folder / "expected.json", expected)
    (folder / "warden.toml").write_text(approval_manifest())
    print(f"{(folder / 'warden.toml').relative_to(REPO)}")


# ------------------------------------------------------------------------------------- price


def price_manifest():
    return """\
# The contract of model `price`, the rollout fixtures' regressor pair (written by
# tests/rollout/make_rollout.py); see tests/rollout/README.md.
# No [versions.N] sha256 and no baseline: the tests add what they need.

[[features]]
name = "size"
type = "float"
min = 10
max = 300

[[features]]
name = "rooms"
type = "float"
min = 1
max = 10

[[outputs]]
name = "variable"
kind = "score"

[example]
size = 100.0
rooms = 3.0
"""


def make_price():
    folder = HERE / "price"
    rng = np.random.default_rng(10)
    n = 1000
    size = rng.uniform(10, 300, n)
    rooms = rng.integers(1, 11, n).astype(np.float64)
    target = 40.0 + 2.5 * size + 8.0 * rooms + rng.normal(0, 10, n)  # thousands
    target2 = np.where(size > 200, target * 1.05, target)
    x = np.c_[size, rooms].astype(np.float32)
    paths = {}
    for version, y in ((1, target), (2, target2)):
        model = LinearRegression().fit(x, y)
        onx = tidy(convert_sklearn(model, initial_types=[("input", FloatTensorType([None, 2]))],
                                   target_opset=OPSET), "price")
        names = [o.name for o in onx.graph.output]
        if names != ["variable"]:
            fail(f"price {version}: outputs {names}")
        paths[version] = folder / str(version) / "model.onnx"
        write_model(onx, paths[version])
        print(f"  version {version}: price = {model.intercept_:.3f} + {model.coef_[0]:.4f} size "
              f"+ {model.coef_[1]:.4f} rooms")

    rng = np.random.default_rng(11)
    size = np.round(rng.uniform(10, 300, PRICE_ROWS), 2)
    rooms = rng.integers(1, 11, PRICE_ROWS).astype(np.float64)
    rows = [{"size": float(s), "rooms": float(r)} for s, r in zip(size, rooms)]
    xs = np.c_[size, rooms].astype(np.float32)
    sessions = {v: session(p) for v, p in paths.items()}
    describe(sessions[1])
    answers = {}
    for v, s in sessions.items():
        (value,) = s.run(["variable"], {"input": xs})
        if value.dtype != np.float32 or value.shape != (len(xs), 1) or not np.isfinite(value).all():
            fail(f"price {v}: variable {value.dtype} {value.shape}")
        answers[v] = value
        (example,) = s.run(["variable"], {"input": np.array([[100.0, 3.0]], np.float32)})
        print(f"  version {v}: example (size 100, rooms 3) {float(example[0, 0]):.4f}")
    relative = np.abs(answers[2] - answers[1]) / np.abs(answers[1])
    print(f"  versions 1 and 2 differ by {relative.min():.4f}..{relative.max():.4f} (relative), "
          f"mean {relative.mean():.4f}")

    write_json(folder / "rows.json", rows)
    write_json(folder / "expected.json", {
        "about": "ONNX Runtime 1.23.2 on rows.json cast to float32: output `variable` is float32 "
                 "[N, 1]; here one value per row.",
        "rows": len(xs),
        "versions": {str(v): {"variable": float_list(answers[v])} for v in (1, 2)},
    })
    (folder / "warden.toml").write_text(price_manifest())
    print(f"{(folder / 'warden.toml').relative_to(REPO)}")


def main():
    check_versions()
    make_approval()
    make_price()


if __name__ == "__main__":
    main()
