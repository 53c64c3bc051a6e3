"""Drift monitoring over the real binary: the credit model's training CSV streamed through the
row API shows no drift; the same rows with `income` × 1.5 alert on `income` and on no other
feature, with one log event per crossing. warden's PSI per feature and for the prediction equals
the figure numpy computes from the same rows and the manifest's baseline within 1e-6, and the
drift gauges parse with prometheus_client and agree with the JSON."""

import csv
import json
import shutil
import tomllib
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from warden_process import MODELS, ROOT, Warden

CSV = ROOT / "examples" / "data" / "credit.csv"
FLOOR = 1e-4  # the share floor warden uses (warden_contract::baseline::SHARE_FLOOR)


def rows():
    with CSV.open() as f:
        out = []
        for record in csv.DictReader(f):
            out.append({
                "age": float(record["age"]), "income": float(record["income"]),
                "debt_ratio": float(record["debt_ratio"]), "country": record["country"],
                "employment": record["employment"],
            })
        return out


def manifest():
    return tomllib.loads((MODELS / "credit" / "warden.toml").read_text())


def call(url, method="GET", body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read()) if "json" in response.headers["Content-Type"] else response.read()


def stream(server, instances):
    """Sends the rows in requests of 50; returns the predicted labels, in order."""
    labels = []
    for start in range(0, len(instances), 50):
        answer = call(f"{server.url}/v1/models/credit:predict", "POST",
                      {"instances": instances[start:start + 50]})
        labels += [p["label"] for p in answer["predictions"]]
    return labels


def psi(expected, counts):
    actual = np.maximum(np.asarray(counts, float) / np.sum(counts), FLOOR)
    expected = np.maximum(np.asarray(expected, float), FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def numpy_psi(baseline, values):
    """PSI of values against a baseline entry, computed from the manifest alone."""
    if "quantiles" in baseline:
        edges = np.unique(np.asarray(baseline["quantiles"][1:10], float))
        counts = np.bincount(np.searchsorted(edges, np.asarray(values, float), side="left"),
                             minlength=len(edges) + 1)
        return psi(baseline["shares"], counts)
    categories = list(baseline["frequencies"])
    counts = [sum(1 for v in values if v == c) for c in categories] + \
             [sum(1 for v in values if v not in categories)]
    return psi([baseline["frequencies"][c] for c in categories] + [0.0], counts)


@pytest.fixture()
def repository(tmp_path):
    shutil.copytree(MODELS / "credit", tmp_path / "credit")
    return tmp_path


def drift_events(server):
    events = []
    for line in server.seen:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if str(event.get("message", "")).startswith("drift:"):
            events.append(event)
    return events


def check_against_numpy(report, instances, labels):
    baseline = manifest()["baseline"]
    for window in report["windows"]:
        assert window["rows"] == len(instances), window["window"]
        for feature in window["features"]:
            values = [row[feature["name"]] for row in instances]
            expected = numpy_psi(baseline[feature["name"]], values)
            assert abs(feature["psi"] - expected) < 1e-6, (feature["name"], feature["psi"], expected)
        prediction = window["prediction"]
        assert prediction["rows"] == len(labels)
        expected = numpy_psi(baseline["decision"], labels)
        assert abs(prediction["psi"] - expected) < 1e-6, (prediction["psi"], expected)


def test_the_training_data_shows_no_drift_and_the_figures_are_numpys(repository):
    server = Warden([str(repository)])
    try:
        instances = rows()
        labels = stream(server, instances)
        report = call(f"{server.url}/v1/models/credit/drift")
        assert report["monitored"] is True
        assert [w["window"] for w in report["windows"]] == ["5m", "1h"]
        check_against_numpy(report, instances, labels)
        for window in report["windows"]:
            for feature in window["features"]:
                assert feature["status"] == "ok", feature
                assert feature["psi"] < 0.1, feature
            assert window["prediction"]["status"] == "ok", window["prediction"]
        # The versioned path answers the same figures.
        versioned = call(f"{server.url}/v1/models/credit/versions/1/drift")
        assert [f["psi"] for f in versioned["windows"][0]["features"]] == \
               [f["psi"] for f in report["windows"][0]["features"]]
    finally:
        server.stop()
    assert drift_events(server) == [], "no crossing, no event"


def test_income_times_one_and_a_half_alerts_on_income_only(repository):
    server = Warden([str(repository)])
    try:
        most = manifest()["features"][1]["max"]
        # Shifted rows still inside the contract's range (the rest would be refused).
        instances = [dict(row, income=row["income"] * 1.5) for row in rows()
                     if row["income"] * 1.5 <= most]
        assert len(instances) > 500
        labels = stream(server, instances)
        report = call(f"{server.url}/v1/models/credit/drift")
        check_against_numpy(report, instances, labels)
        for window in report["windows"]:
            statuses = {f["name"]: f["status"] for f in window["features"]}
            assert statuses.pop("income") == "alert", window
            assert set(statuses.values()) == {"ok"}, statuses
        # A second look and more traffic do not repeat the event: one per crossing.
        stream(server, instances[:100])
        call(f"{server.url}/v1/models/credit/drift")
        metrics = call(f"{server.url}/metrics").decode()
    finally:
        server.stop()
    income = [e for e in drift_events(server) if e.get("column") == "income"]
    assert sorted(e["window"] for e in income) == ["1h", "5m"], income
    assert all(e["level"] == "WARN" and e["to"] == "alert" for e in income), income
    others = [e for e in drift_events(server) if e.get("column") not in ("income", "decision")]
    assert others == [], others

    samples = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            samples[(sample.name, sample.labels.get("feature"), sample.labels.get("window"))] = sample.value
    assert samples[("warden_drift_status", "income", "5m")] == 2
    assert samples[("warden_drift_status", "age", "5m")] == 0
    assert samples[("warden_drift_psi", "income", "5m")] > 0.25
    assert samples[("warden_drift_window_rows", None, "5m")] == len(instances) + 100
    assert ("warden_prediction_drift_psi", None, "1h") in samples


def test_a_model_without_baseline_says_it_is_not_monitored(tmp_path):
    shutil.copytree(MODELS / "iris", tmp_path / "iris")
    text = (tmp_path / "iris" / "warden.toml").read_text()
    (tmp_path / "iris" / "warden.toml").write_text(text.split("[baseline")[0])
    server = Warden([str(tmp_path)])
    try:
        report = call(f"{server.url}/v1/models/iris/drift")
    finally:
        server.stop()
    assert report["monitored"] is False
    assert "warden init --data" in report["reason"]


def test_an_integer_class_index_is_counted_as_its_label(tmp_path):
    # iris's graph answers the class index (int64); the row API and the monitor read it as the
    # declared label, so the training rows' predictions match the target's frequencies.
    shutil.copytree(MODELS / "iris", tmp_path / "iris")
    server = Warden([str(tmp_path)])
    try:
        with (ROOT / "examples" / "data" / "iris.csv").open() as f:
            instances = [{k: float(v) for k, v in r.items() if k != "species"} for r in csv.DictReader(f)]
        labels = []
        for start in range(0, len(instances), 50):
            answer = call(f"{server.url}/v1/models/iris:predict", "POST",
                          {"instances": instances[start:start + 50]})
            labels += [p["label"] for p in answer["predictions"]]
        report = call(f"{server.url}/v1/models/iris/drift")
    finally:
        server.stop()
    prediction = report["windows"][0]["prediction"]
    baseline = tomllib.loads((MODELS / "iris" / "warden.toml").read_text())["baseline"]
    assert prediction["bins"] == ["setosa", "versicolor", "virginica", "(other)"]
    assert prediction["served"][3] == 0.0, prediction
    assert abs(prediction["psi"] - numpy_psi(baseline["species"], labels)) < 1e-6
    assert prediction["status"] == "ok", prediction
