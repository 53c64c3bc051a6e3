"""The page at `/` and `/ui/models/{m}` in a real browser: Debian's Chromium, headless, renders
both pages of a server that has answered requests (one model's inputs shifted, so its drift
alerts); the test reads the DOM Chromium built and asserts what a person would read there, and
keeps a screenshot of each page in target/test-artifacts/. Behind auth, the page answers 401
with a Basic challenge (so a browser asks for the token) and renders with the token as the
Basic password, while the API still refuses Basic credentials."""

import base64
import csv
import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest

from warden_process import MODELS, ROOT, Warden

ARTIFACTS = ROOT / "target" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(*args):
    """Runs headless Chromium with a throwaway profile; returns stdout."""
    assert CHROMIUM, "chromium is not installed: scripts/system-deps installs it"
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def render(url, screenshot):
    """The DOM Chromium built for url, and a full-height screenshot of it."""
    dom = chromium("--dump-dom", url)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chromium(f"--screenshot={ARTIFACTS / screenshot}", "--window-size=1280,2400", url)
    png = (ARTIFACTS / screenshot).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000, f"{screenshot}: {len(png)} bytes"
    return dom


def post(url, body, headers=()):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **dict(headers)})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def credit_rows(shift=1.0):
    with (ROOT / "examples" / "data" / "credit.csv").open() as f:
        rows = [{"age": float(r["age"]), "income": float(r["income"]) * shift,
                 "debt_ratio": float(r["debt_ratio"]), "country": r["country"],
                 "employment": r["employment"]} for r in csv.DictReader(f)]
    return [r for r in rows if r["income"] <= 250000.0]


def text_of(dom):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    repository = tmp_path_factory.mktemp("models")
    for name in ("credit", "iris"):
        shutil.copytree(MODELS / name, repository / name)
    server = Warden([str(repository)])
    rows = credit_rows(1.5)
    for start in range(0, len(rows), 50):
        post(f"{server.url}/v1/models/credit:predict", {"instances": rows[start:start + 50]})
    # One refused row: the page counts it under its error code.
    with pytest.raises(urllib.error.HTTPError) as refused:
        post(f"{server.url}/v1/models/credit:predict", {"instances": [dict(rows[0], country=3)]})
    assert refused.value.code == 400
    post(f"{server.url}/v1/models/iris:predict",
         {"instances": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]})
    yield server
    server.stop()


def test_the_index_shows_every_model_its_traffic_and_drift(served):
    dom = render(served.url + "/", "page-index.png")
    text = text_of(dom)
    sha = (MODELS / "credit" / "warden.toml").read_text().split('sha256 = "')[1][:12]
    for row in ('data-model="credit"', 'data-model="iris"'):
        assert row in dom, row
    assert sha in dom, "the credit version's sha256"
    assert "onnxruntime_onnx" in text and "ready" in text
    credit = dom.split('data-model="credit"')[1].split("</tr>")[0]
    # Requests answered, latency percentiles and the worst drift of the first window.
    assert re.search(r"<td>(\d+)</td>", credit), credit
    assert "alert" in credit, credit
    assert re.search(r"\d+\.\d\d / \d+\.\d\d / \d+\.\d\d", credit), credit
    assert "<code>invalid_input</code>: 1" in credit, credit
    # Per feature a drift figure and a chart (an SVG with one bar pair per bin).
    income = dom.split('data-feature="income"')[1].split("</div>")[0]
    assert 'class="alert"' in income and "<svg" in income, income
    assert income.count("<rect") == 2 * 10, income.count("<rect")
    age = dom.split('data-feature="age"')[1].split("</div>")[0]
    assert 'class="ok"' in age, age


def test_the_model_page_shows_its_contract_example_and_drift(served):
    dom = render(served.url + "/ui/models/credit", "page-model-credit.png")
    text = text_of(dom)
    assert "credit version 1" in text
    for feature in ("age", "income", "debt_ratio", "country", "employment"):
        assert f'data-feature="{feature}"' in dom, feature
    assert "DE, FR, GB, IN, US" in text, "the category's values"
    assert "0 … 142" in text, "age's range"
    assert "curl -s http://" in text and "/v1/models/credit:predict" in text
    # The example request on the page is the manifest's example row, and it answers.
    example = json.loads(text.split("-d '")[1].split("'")[0].replace("&quot;", '"'))
    answer = post(f"{served.url}/v1/models/credit:predict", example)
    assert answer["predictions"][0]["label"] in ("approve", "reject")
    assert "Last 5m" in text and "Last 1h" in text
    assert dom.count('data-feature="income"') >= 3, "in the contract and in each window"


def test_behind_auth_the_page_asks_for_basic_credentials_and_renders_with_the_token(tmp_path):
    shutil.copytree(MODELS / "iris", tmp_path / "iris")
    token = "page-token-0123456789"
    server = Warden([str(tmp_path)], env={"WARDEN_AUTH_TOKENS": token})
    try:
        try:
            urllib.request.urlopen(server.url + "/", timeout=10)
            raise AssertionError("the page answered without a token")
        except urllib.error.HTTPError as err:
            assert err.code == 401
            assert err.headers["WWW-Authenticate"].startswith("Basic realm=\"warden\"")
        basic = "Basic " + base64.b64encode(f"me:{token}".encode()).decode()
        request = urllib.request.Request(server.url + "/", headers={"Authorization": basic})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/html")
        # The API itself still wants a bearer token.
        request = urllib.request.Request(server.url + "/v2/models/iris", headers={"Authorization": basic})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
        # A real browser given the credentials renders the page.
        host = server.url.removeprefix("http://")
        dom = chromium("--dump-dom", f"http://me:{token}@{host}/")
        assert 'data-model="iris"' in dom, dom[:500]
    finally:
        server.stop()
