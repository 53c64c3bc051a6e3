"""/metrics read by the Prometheus project's own parser (prometheus_client), with counters
asserted to move by exactly the known requests sent between two scrapes."""

import json
import math
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from warden_process import MODELS, Warden

IRIS_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.fixture(scope="module")
def warden():
    server = Warden([str(MODELS)])
    yield server
    server.stop()


def call(warden, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(warden.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def scrape(warden):
    """Every sample as {(name, sorted labels): value}, parsed by prometheus_client."""
    status, headers, body = call(warden, "GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        assert family.name.startswith("warden_"), family.name
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_move_by_exactly_the_requests_sent(warden):
    before = scrape(warden)
    for _ in range(3):
        status, _, _ = call(warden, "POST", "/v1/models/iris:predict", {"instances": [IRIS_ROW]})
        assert status == 200
    # Two requests each with a type error (a string for a number).
    for _ in range(2):
        status, _, _ = call(warden, "POST", "/v1/models/iris:predict",
                            {"instances": [dict(IRIS_ROW, sepal_length="5.1")]})
        assert status == 400
    # One V2 request, and one for a model that does not exist.
    v2 = {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
    status, _, body = call(warden, "POST", "/v2/models/iris/infer", v2)
    assert status == 200, body
    status, _, _ = call(warden, "POST", "/v2/models/nope/infer", v2)
    assert status == 404
    after = scrape(warden)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    row_route = "/v1/models/{model_action}"
    http = {"protocol": "http"}
    assert delta("warden_requests_total", model="iris", version="1", route=row_route, code="200", **http) == 3
    assert delta("warden_requests_total", model="iris", version="1", route=row_route, code="400", **http) == 2
    assert delta("warden_requests_total", model="iris", version="1", route="/v2/models/{model}/infer",
                 code="200", **http) == 1
    assert delta("warden_requests_total", model="", version="", route="/v2/models/{model}/infer",
                 code="404", **http) == 1
    assert delta("warden_errors_total", code="invalid_input", type="type_error") == 2
    assert delta("warden_errors_total", code="model_not_found", type="") == 1
    # Histograms: one observation per answered inference (3 row + 1 V2).
    for histogram, labels in [("warden_request_duration_seconds", http), ("warden_queue_wait_seconds", {}),
                              ("warden_inference_seconds", {}), ("warden_batch_rows", {})]:
        assert delta(f"{histogram}_count", model="iris", version="1", **labels) == 4, histogram
        assert value(after, f"{histogram}_bucket", model="iris", version="1", le="+Inf", **labels) == \
            value(after, f"{histogram}_count", model="iris", version="1", **labels)
    assert delta("warden_batch_rows_sum", model="iris", version="1") >= 4
    assert delta("warden_request_duration_seconds_sum", model="iris", version="1", **http) > 0


def test_state_gauges_describe_what_is_served(warden):
    samples = scrape(warden)
    for model in ["iris", "credit"]:
        assert value(samples, "warden_model_ready", model=model) == 1
        assert value(samples, "warden_model_loaded_version", model=model) == 1
        assert value(samples, "warden_model_loads_total", model=model) == 1
        assert (("warden_queue_depth", (("model", model), ("version", "1")))) in samples
    assert value(samples, "warden_build_info", version=next(
        dict(labels)["version"] for (name, labels) in samples if name == "warden_build_info")) == 1
    assert not any(math.isnan(v) for v in samples.values())
