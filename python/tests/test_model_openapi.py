"""The per-model OpenAPI document (`/v1/models/{m}/openapi.json`): valid OpenAPI 3.1; its row
schema accepts the manifest's example row and refuses each kind of contract violation, as the
server itself does (the same rows answer 400 `invalid_input`); a real answer validates against its response
schema; and datamodel-code-generator turns it into typed pydantic classes that accept the
example and refuse a violation."""

import copy
import importlib.util
import json
import pathlib
import subprocess
import sys
import urllib.error
import urllib.request

import jsonschema
import pydantic
import pytest
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from warden_process import MODELS, Warden


@pytest.fixture(scope="module")
def warden():
    server = Warden([str(MODELS)])
    yield server
    server.stop()


def call(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def validator(document, name):
    """A Draft 2020-12 validator of one component schema, its $refs resolved in the document."""
    registry = Registry().with_resource("urn:doc", Resource.from_contents(document, default_specification=DRAFT202012))
    return jsonschema.Draft202012Validator({"$ref": f"urn:doc#/components/schemas/{name}"}, registry=registry)


@pytest.fixture(scope="module")
def credit(warden):
    status, document = call(f"{warden.url}/v1/models/credit/openapi.json")
    assert status == 200
    return document


def test_the_document_is_valid_openapi_with_a_typed_row(credit):
    validate(credit)
    row = credit["components"]["schemas"]["CreditRow"]
    assert row["required"] == ["age", "income", "debt_ratio", "country", "employment"]
    assert row["additionalProperties"] is False
    assert row["properties"]["age"] == {"type": "number", "minimum": 0, "maximum": 142}
    assert row["properties"]["country"] == {"type": "string", "enum": ["DE", "FR", "GB", "IN", "US"]}
    prediction = credit["components"]["schemas"]["CreditPrediction"]
    assert prediction["properties"]["label"]["enum"] == ["approve", "reject"]
    assert set(prediction["properties"]["probabilities"]["required"]) == {"approve", "reject"}
    assert "/v1/models/credit:predict" in credit["paths"]
    assert "/v1/models/credit/versions/1:predict" in credit["paths"]


VIOLATIONS = {
    "a number sent as a string": {"age": "49.5"},
    "below the minimum": {"age": -1.0},
    "above the maximum": {"income": 1e9},
    "a category outside its values": {"country": "XX"},
    "a category sent as an integer": {"employment": 1},
    "null for a feature that is not nullable": {"debt_ratio": None},
    "an unknown field": {"colour": "red"},
}


def test_the_example_validates_and_each_violation_is_refused_by_schema_and_server(warden, credit):
    rows = validator(credit, "CreditRow")
    example = credit["components"]["schemas"]["CreditRow"]["examples"][0]
    rows.validate(example)
    status, answer = call(f"{warden.url}/v1/models/credit:predict", {"instances": [example]})
    assert status == 200
    validator(credit, "CreditResponse").validate(answer)

    cases = dict(VIOLATIONS)
    missing = copy.deepcopy(example)
    del missing["income"]
    for name, change in cases.items():
        row = dict(example, **change)
        assert not rows.is_valid(row), name
        status, body = call(f"{warden.url}/v1/models/credit:predict", {"instances": [row]})
        assert (status, body["code"]) == (400, "invalid_input"), (name, body)
    assert not rows.is_valid(missing)
    status, body = call(f"{warden.url}/v1/models/credit:predict", {"instances": [missing]})
    assert (status, body["code"]) == (400, "invalid_input")
    # The request's batch bound is the manifest's.
    request = validator(credit, "CreditRequest")
    assert request.is_valid({"instances": [example] * 65})
    assert not request.is_valid({"instances": [example] * 10_001})
    assert not request.is_valid({"instances": []})


def test_an_integer_class_model_and_a_versioned_path(warden):
    status, iris = call(f"{warden.url}/v1/models/iris/versions/1/openapi.json")
    assert status == 200
    validate(iris)
    assert iris["components"]["schemas"]["IrisPrediction"]["properties"]["label"]["enum"] == \
        ["setosa", "versicolor", "virginica"]
    example = iris["components"]["schemas"]["IrisRow"]["examples"][0]
    status, answer = call(f"{warden.url}/v1/models/iris:predict", {"instances": [example]})
    assert status == 200
    validator(iris, "IrisResponse").validate(answer)
    status, body = call(f"{warden.url}/v1/models/nope/openapi.json")
    assert (status, body["code"]) == (404, "model_not_found")


def test_datamodel_code_generator_makes_typed_classes_that_enforce_the_contract(credit, tmp_path):
    source = tmp_path / "credit_openapi.json"
    source.write_text(json.dumps(credit))
    module = tmp_path / "credit_client.py"
    done = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "datamodel-codegen"), "--input", str(source),
         "--input-file-type", "openapi", "--output", str(module),
         "--output-model-type", "pydantic_v2.BaseModel", "--formatters", "builtin"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    spec = importlib.util.spec_from_file_location("credit_client", module)
    client = importlib.util.module_from_spec(spec)
    sys.modules["credit_client"] = client  # pydantic resolves the annotations in it
    spec.loader.exec_module(client)
    example = credit["components"]["schemas"]["CreditRow"]["examples"][0]
    # Strict JSON, as warden reads rows: no string read as a number (pydantic's default would
    # coerce one).
    row = client.CreditRow.model_validate_json(json.dumps(example), strict=True)
    assert row.country.value == example["country"]
    client.CreditRequest.model_validate_json(json.dumps({"instances": [example]}), strict=True)
    for name, change in VIOLATIONS.items():
        with pytest.raises(pydantic.ValidationError):
            client.CreditRow.model_validate_json(json.dumps(dict(example, **change)), strict=True)
            raise AssertionError(f"the generated class accepted {name}")
    prediction = client.CreditPrediction.model_validate(
        {"label": "approve", "probabilities": {"approve": 0.7, "reject": 0.3}})
    assert prediction.label.value == "approve"
    with pytest.raises(pydantic.ValidationError):
        client.CreditPrediction.model_validate({"label": "maybe", "probabilities": {"approve": 1, "reject": 0}})
