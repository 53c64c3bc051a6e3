"""Every YAML document under deploy/kubernetes and deploy/kserve, validated offline and strictly,
and the contract between those manifests and warden.

- Kubernetes' own kinds: `kubernetes-validate` (its bundled API schemas) in strict mode, so an
  unknown field fails as it does on a real API server, against the oldest Kubernetes the
  manifests target (1.30: the preStop `sleep` action is on by default from there) and the
  newest the pinned package knows.
- Custom resources (KServe's ClusterServingRuntime and InferenceService, the Prometheus
  Operator's ServiceMonitor): `jsonschema` against the CRDs' openAPIV3Schema checked in under
  fixtures/ (each names its repository, path and commit), made strict the way the API server's
  field validation is (an unknown field is an error unless the schema preserves unknown
  fields), and their metadata against Kubernetes' ObjectMeta.
- The blocks commented out as `# [alternative: NAME]` ... `# [end]` are uncommented and
  validated too, so the documented alternatives cannot rot.
- Negative cases prove the validators strict: a misspelled field and a wrongly typed value
  must fail.
- The contract: probes on warden's documented routes and on the container port, that port
  equal to WARDEN_PORT, the Service and the scrapers pointed at it, every WARDEN_* variable a
  documented setting, a non-root read-only container, the grace period above warden's.

No network is used (a fixture refuses any connection), and nothing here needs a cluster.
"""

import copy
import functools
import importlib.resources
import json
import pathlib
import re
import socket

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

ROOT = pathlib.Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
KSERVE = ROOT / "deploy" / "kserve"
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
README = (ROOT / "README.md").read_text()

# The oldest Kubernetes these manifests are for, and the newest schema the pinned
# kubernetes-validate bundles.
KUBERNETES_VERSIONS = ("1.30", "1.37")
CRD_FIXTURES = [
    FIXTURES / "kserve" / "clusterservingruntime-v1alpha1.json",
    FIXTURES / "kserve" / "inferenceservice-v1beta1.json",
    FIXTURES / "prometheus-operator" / "servicemonitor-v1.json",
]
KUSTOMIZATION = ("kustomize.config.k8s.io/v1beta1", "Kustomization")
# warden's shutdown grace when WARDEN_SHUTDOWN_GRACE_MS is not set (README's settings table).
DEFAULT_SHUTDOWN_GRACE_S = 10


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Validation must never fetch a schema: any connection attempt fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# --- loading ------------------------------------------------------------------------------


def manifest_files():
    return sorted(KUBERNETES.glob("*.yaml")) + sorted(KSERVE.glob("*.yaml"))


def load_documents(path):
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def load_one(path):
    (doc,) = load_documents(path)
    return doc


def documents():
    """(file, document) for every YAML document under deploy/kubernetes and deploy/kserve."""
    return [(path, doc) for path in manifest_files() for doc in load_documents(path)]


def rel(path):
    return str(path.relative_to(ROOT))


def kind_of(doc):
    return doc.get("apiVersion"), doc.get("kind")


# --- validators ---------------------------------------------------------------------------


def validate_builtin(doc, version):
    """Raises kubernetes_validate.ValidationError when `doc` breaks Kubernetes' schema."""
    kubernetes_validate.validate(doc, version, strict=True)


def strict_schema(node):
    """The schema with unknown fields refused, as the API server's strict field validation
    (kubectl's default) does for custom resources: every object schema that lists properties
    and neither declares additionalProperties nor preserves unknown fields gets
    additionalProperties false."""
    if isinstance(node, list):
        return [strict_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: strict_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = strict_schema(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = strict_schema(value)
        else:
            out[key] = value
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validators():
    """{(apiVersion, kind): (validator, fixture source)} from the checked-in CRD schemas."""
    validators = {}
    for path in CRD_FIXTURES:
        fixture = json.loads(path.read_text())
        schema = strict_schema(fixture["openAPIV3Schema"])
        # A CRD's schema cannot constrain these two; the API server routes on them.
        schema["properties"]["apiVersion"] = {"const": f"{fixture['group']}/{fixture['version']}"}
        schema["properties"]["kind"] = {"const": fixture["kind"]}
        schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind"})
        validator_class = jsonschema.validators.validator_for({}, default=jsonschema.Draft7Validator)
        validator_class.check_schema(schema)
        validators[(f"{fixture['group']}/{fixture['version']}", fixture["kind"])] = (
            validator_class(schema), fixture["source"])
    return validators


@functools.cache
def object_meta_validator(version):
    """Kubernetes' ObjectMeta (strict) from kubernetes-validate's bundled definitions: a custom
    resource's metadata is checked by the API server, not by its CRD."""
    schemas = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    definitions = json.loads((schemas / f"v{version}.0-local-strict" / "_definitions.json").read_text())
    registry = Resource.from_contents(definitions) @ Registry()
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://kubernetes.io/api/custom-resource-metadata",
        "$ref": "/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    }
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_custom(doc):
    """Raises jsonschema.ValidationError when `doc` breaks its CRD's schema or ObjectMeta."""
    validator, _ = crd_validators()[kind_of(doc)]
    validator.validate(doc)
    object_meta_validator(KUBERNETES_VERSIONS[-1]).validate(doc.get("metadata", {}))


def validate_any(doc, version=KUBERNETES_VERSIONS[-1]):
    if kind_of(doc) in crd_validators():
        validate_custom(doc)
    else:
        validate_builtin(doc, version)


# --- every document -----------------------------------------------------------------------


def test_every_document_has_a_validator_and_files_hold_one_object():
    kinds = []
    for path in manifest_files():
        docs = load_documents(path)
        assert len(docs) == 1, f"{rel(path)}: one object per file, found {len(docs)}"
        doc = docs[0]
        kinds.append(kind_of(doc))
        if kind_of(doc) == KUSTOMIZATION or kind_of(doc) in crd_validators():
            continue
        # A kind kubernetes-validate has no schema for would only be warned about: refuse it.
        try:
            validate_builtin(doc, KUBERNETES_VERSIONS[0])
        except kubernetes_validate.ValidationError:
            pass  # reported by test_builtin_kinds
        except kubernetes_validate.utils.SchemaNotFoundError as err:
            pytest.fail(f"{rel(path)}: {err.message}")
    expected = {
        ("apps/v1", "Deployment"), ("v1", "Service"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"),
        ("monitoring.coreos.com/v1", "ServiceMonitor"), KUSTOMIZATION,
        ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"),
        ("serving.kserve.io/v1beta1", "InferenceService"),
    }
    assert expected <= set(kinds)


BUILTIN = [(path, doc) for path, doc in documents()
           if kind_of(doc) != KUSTOMIZATION and kind_of(doc) not in crd_validators()]
CUSTOM = [(path, doc) for path, doc in documents() if kind_of(doc) in crd_validators()]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path,doc", BUILTIN, ids=[rel(p) for p, _ in BUILTIN])
def test_builtin_kinds(path, doc, version):
    try:
        validate_builtin(doc, version)
    except kubernetes_validate.ValidationError as err:
        location = ".".join(str(part) for part in err.path)
        pytest.fail(f"{rel(path)} against Kubernetes {version}: {location}: {err.message}")


@pytest.mark.parametrize("path,doc", CUSTOM, ids=[rel(p) for p, _ in CUSTOM])
def test_custom_resources(path, doc):
    try:
        validate_custom(doc)
    except jsonschema.ValidationError as err:
        location = ".".join(str(part) for part in err.absolute_path)
        _, source = crd_validators()[kind_of(doc)]
        pytest.fail(f"{rel(path)} against {source['path']}@{source['commit'][:12]}: "
                    f"{location}: {err.message}")


def test_crd_fixtures_name_their_source():
    for path in CRD_FIXTURES:
        source = json.loads(path.read_text())["source"]
        assert source["repository"].startswith("https://github.com/"), path
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]), path
        assert source["path"].endswith(".yaml"), path


# --- the commented alternatives -----------------------------------------------------------

ALTERNATIVE = re.compile(r"^(\s*)# \[alternative: ([\w-]+)\][^\n]*\n((?:\1#[^\n]*\n)*?)\1# \[end\]\n",
                         re.MULTILINE)


def alternatives(path):
    """{name: the YAML between `# [alternative: name]` and `# [end]`, uncommented}; the lines
    before the first one starting with `# -` are prose."""
    found = {}
    for match in ALTERNATIVE.finditer(path.read_text()):
        indent, name, body = match.groups()
        lines = [line[len(indent) + 2:] for line in body.splitlines()]
        start = next(i for i, line in enumerate(lines) if line.startswith("- "))
        found[name] = yaml.safe_load("\n".join(lines[start:]))
    return found


def test_commented_alternatives_validate():
    deployment = load_one(KUBERNETES / "deployment.yaml")
    found = alternatives(KUBERNETES / "deployment.yaml")
    assert set(found) == {"pvc", "image"}
    for name, volumes in found.items():
        doc = copy.deepcopy(deployment)
        pod = doc["spec"]["template"]["spec"]
        (volume,) = volumes
        assert volume["name"] == "models", name
        pod["volumes"] = [volume if v["name"] == "models" else v for v in pod["volumes"]]
        del pod["initContainers"]  # both alternatives replace the copy
        validate_builtin(doc, KUBERNETES_VERSIONS[-1])

    hpa = load_one(KUBERNETES / "hpa.yaml")
    found = alternatives(KUBERNETES / "hpa.yaml")
    assert set(found) == {"queue-depth"}
    (metric,) = found["queue-depth"]
    assert metric["pods"]["metric"]["name"] == "warden_queue_depth"
    for version in KUBERNETES_VERSIONS:
        doc = copy.deepcopy(hpa)
        doc["spec"]["metrics"].append(metric)
        validate_builtin(doc, version)


# --- the validators are strict ------------------------------------------------------------


def deployment_container(doc):
    return doc["spec"]["template"]["spec"]["containers"][0]


# Each breaks the document one way and returns where the validator must report it.
CONTAINER = ["spec", "template", "spec", "containers", 0]


def misspelled_probe(doc):
    probe = deployment_container(doc)["livenessProbe"]
    probe["httpGett"] = probe.pop("httpGet")
    return CONTAINER + ["livenessProbe"]


def quoted_port(doc):
    deployment_container(doc)["ports"][0]["containerPort"] = "8080"
    return CONTAINER + ["ports", 0, "containerPort"]


def misplaced_field(doc):
    # A pod-level field on the container: valid YAML, a valid name, the wrong place.
    deployment_container(doc)["terminationGracePeriodSeconds"] = 30
    return CONTAINER


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("break_it", [misspelled_probe, quoted_port, misplaced_field])
def test_broken_deployment_is_refused(break_it, version):
    doc = load_one(KUBERNETES / "deployment.yaml")
    validate_builtin(doc, version)
    where = break_it(doc)
    with pytest.raises(kubernetes_validate.ValidationError) as refused:
        validate_builtin(doc, version)
    assert list(refused.value.path) == where, refused.value.message


def isvc_storage_uri_case(doc):
    model = doc["spec"]["predictor"]["model"]
    model["storageURI"] = model.pop("storageUri")
    return ["spec", "predictor", "model"]


def isvc_replicas_quoted(doc):
    doc["spec"]["predictor"]["minReplicas"] = "2"
    return ["spec", "predictor", "minReplicas"]


def isvc_annotation_singular(doc):
    doc["metadata"]["annotation"] = doc["metadata"].pop("annotations")
    return []  # ObjectMeta is validated on its own


def runtime_autoselect_case(doc):
    model_format = doc["spec"]["supportedModelFormats"][0]
    model_format["autoselect"] = model_format.pop("autoSelect")
    return ["spec", "supportedModelFormats", 0]


def runtime_probe_typo(doc):
    probe = doc["spec"]["containers"][0]["readinessProbe"]
    probe["httpget"] = probe.pop("httpGet")
    return ["spec", "containers", 0, "readinessProbe"]


def runtime_pod_security_context(doc):
    # Valid on a Pod, but a ServingRuntime's CRD has no pod-level securityContext.
    doc["spec"]["securityContext"] = {"runAsNonRoot": True}
    return ["spec"]


def servicemonitor_endpoint_typo(doc):
    doc["spec"]["endpoints"][0]["interval_seconds"] = 15
    return ["spec", "endpoints", 0]


def servicemonitor_interval_number(doc):
    doc["spec"]["endpoints"][0]["interval"] = 15
    return ["spec", "endpoints", 0, "interval"]


BROKEN_CUSTOM = [
    (KSERVE / "inferenceservice.yaml", isvc_storage_uri_case),
    (KSERVE / "inferenceservice.yaml", isvc_replicas_quoted),
    (KSERVE / "inferenceservice.yaml", isvc_annotation_singular),
    (KSERVE / "clusterservingruntime.yaml", runtime_autoselect_case),
    (KSERVE / "clusterservingruntime.yaml", runtime_probe_typo),
    (KSERVE / "clusterservingruntime.yaml", runtime_pod_security_context),
    (KUBERNETES / "servicemonitor.yaml", servicemonitor_endpoint_typo),
    (KUBERNETES / "servicemonitor.yaml", servicemonitor_interval_number),
]


@pytest.mark.parametrize("path,break_it", BROKEN_CUSTOM,
                         ids=[f.__name__ for _, f in BROKEN_CUSTOM])
def test_broken_custom_resource_is_refused(path, break_it):
    doc = load_one(path)
    validate_custom(doc)
    where = break_it(doc)
    with pytest.raises(jsonschema.ValidationError) as refused:
        validate_custom(doc)
    assert list(refused.value.absolute_path) == where, refused.value.message


# --- the contract with warden -------------------------------------------------------------


def env_of(container):
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


def port_number(container, port):
    """A probe's or Service's port (a name or a number) as the container's port number."""
    numbers = {p["containerPort"] for p in container["ports"]}
    if isinstance(port, int):
        assert port in numbers, f"port {port} is not a container port {sorted(numbers)}"
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return number


def documented_route(path):
    return f"| `GET {path}` |" in README


def check_warden_container(container, pod_security=None):
    """The container-level contract, shared by the Deployment and the serving runtime."""
    env = env_of(container)
    port, *grpc = container["ports"]
    assert port["containerPort"] == int(env["WARDEN_PORT"]), "container port != WARDEN_PORT"
    assert env["WARDEN_HOST"] == "0.0.0.0", "warden must listen on every interface in a pod"
    # A second port is the gRPC listener's, and WARDEN_GRPC_PORT says which.
    assert [p["containerPort"] for p in grpc] == ([int(env["WARDEN_GRPC_PORT"])] if grpc else []), \
        "container gRPC port != WARDEN_GRPC_PORT"

    probes = {
        "startupProbe": "/v2/health/ready",
        "livenessProbe": "/v2/health/live",
        "readinessProbe": "/v2/health/ready",
    }
    for name, route in probes.items():
        probe = container[name]
        assert probe["httpGet"]["path"] == route, name
        assert documented_route(route), f"{route} is not in README's API table"
        assert port_number(container, probe["httpGet"]["port"]) == port["containerPort"], name
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, \
        "the startup probe should allow large models minutes to load"

    # Every WARDEN_* variable is a documented setting (a typo would be silently ignored).
    for name in env:
        if name.startswith("WARDEN_"):
            assert f"`{name}`" in README, f"{name} is not in README's settings table"

    security = {**(pod_security or {}), **container["securityContext"]}
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 65534
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["seccompProfile"]["type"] == "RuntimeDefault"

    resources = container["resources"]
    for kind in ("cpu", "memory"):
        assert kind in resources["requests"] and kind in resources["limits"], kind
    cpu_limit = str(resources["limits"]["cpu"])
    assert re.fullmatch(r"[1-9][0-9]*", cpu_limit), \
        f"CPU limit {cpu_limit!r}: warden's workers are the limit rounded down, use whole CPUs"
    return env


def shutdown_grace_s(env):
    return int(env.get("WARDEN_SHUTDOWN_GRACE_MS", DEFAULT_SHUTDOWN_GRACE_S * 1000)) / 1000


def test_deployment_contract():
    deployment = load_one(KUBERNETES / "deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = check_warden_container(container, pod["securityContext"])

    assert container["args"] == ["serve"], "the repository should come from WARDEN_MODELS"
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == env["WARDEN_MODELS"]]
    assert mount.get("readOnly") is True
    assert mount["name"] in {v["name"] for v in pod["volumes"]}
    assert container["resources"]["requests"] == container["resources"]["limits"], \
        "requests == limits: Guaranteed QoS, and HPA utilization relative to warden's CPUs"

    # The Pod Security Standard "restricted" for every container, the init container too.
    for other in pod["initContainers"] + pod["containers"]:
        security = {**pod["securityContext"], **other["securityContext"]}
        assert security["runAsNonRoot"] is True and security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert security["seccompProfile"]["type"] == "RuntimeDefault"
    # The init container fills the volume warden reads.
    assert any(m["name"] == mount["name"] for m in pod["initContainers"][0]["volumeMounts"])

    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + shutdown_grace_s(env), \
        "the kubelet would SIGKILL warden while it still drains"
    # Service links would inject WARDEN_PORT=tcp://... for the Service named warden.
    assert pod["enableServiceLinks"] is False
    # The HPA owns the replica count.
    assert "replicas" not in deployment["spec"]

    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == container["ports"][0]["containerPort"]
    assert documented_route(annotations["prometheus.io/path"])


def test_service_hpa_pdb_and_servicemonitor_point_at_the_deployment():
    deployment = load_one(KUBERNETES / "deployment.yaml")
    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    pod_labels = template["metadata"]["labels"]

    def selects_pods(selector):
        return selector.items() <= pod_labels.items()

    assert selects_pods(deployment["spec"]["selector"]["matchLabels"])

    service = load_one(KUBERNETES / "service.yaml")
    assert selects_pods(service["spec"]["selector"])
    port, grpc = service["spec"]["ports"]
    assert (port["name"], port["port"]) == ("http", 80)
    assert port_number(container, port["targetPort"]) == 8080 == int(env_of(container)["WARDEN_PORT"])
    assert (grpc["name"], grpc["port"], grpc["appProtocol"]) == ("grpc", 8001, "kubernetes.io/h2c")
    assert port_number(container, grpc["targetPort"]) == 8001 == int(env_of(container)["WARDEN_GRPC_PORT"])

    hpa = load_one(KUBERNETES / "hpa.yaml")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1", "Deployment", deployment["metadata"]["name"])
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"} == {"cpu"}
    assert hpa["spec"]["minReplicas"] >= 2, "one replica left by the PDB must remain"

    pdb = load_one(KUBERNETES / "pdb.yaml")
    assert selects_pods(pdb["spec"]["selector"]["matchLabels"])

    monitor = load_one(KUBERNETES / "servicemonitor.yaml")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == port["name"]
    assert documented_route(endpoint["path"])

    # The queue-depth scaling documented in README.md is on a metric warden exports.
    assert "| `warden_queue_depth` | gauge |" in README
    assert "warden_queue_depth" in (KUBERNETES / "README.md").read_text()


def test_kustomization_lists_the_core_files():
    kustomization = load_one(KUBERNETES / "kustomization.yaml")
    assert kind_of(kustomization) == KUSTOMIZATION
    assert set(kustomization) == {"apiVersion", "kind", "resources"}
    core = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml", "servicemonitor.yaml"}
    assert sorted(kustomization["resources"]) == sorted(core)
    assert "servicemonitor.yaml" not in kustomization["resources"], "it needs the operator's CRD"


def test_kserve_contract():
    runtime = load_one(KSERVE / "clusterservingruntime.yaml")
    isvc = load_one(KSERVE / "inferenceservice.yaml")
    spec = runtime["spec"]

    # KServe merges predictor.model into the runtime container of exactly this name.
    (container,) = spec["containers"]
    assert container["name"] == "kserve-container"
    env = check_warden_container(container)
    # The storage initializer's mount; the storageUri folder is a warden repository.
    assert container["args"] == ["serve", "/mnt/models"]
    assert container["ports"][0]["name"] in {"http1", "h2c"}, "the port names Knative accepts"
    assert spec["annotations"]["prometheus.kserve.io/port"] == env["WARDEN_PORT"]
    assert documented_route(spec["annotations"]["prometheus.kserve.io/path"])

    assert spec["protocolVersions"] == ["v2"]
    formats = {f["name"]: f for f in spec["supportedModelFormats"]}
    assert formats["onnx"]["autoSelect"] is True
    assert formats["sklearn"]["autoSelect"] is False
    # KServe's webhook refuses one runtime giving one auto-selected format two priorities.
    for name in formats:
        priorities = {f.get("priority") for f in spec["supportedModelFormats"]
                      if f["name"] == name and f.get("autoSelect")}
        assert len(priorities) <= 1, name

    predictor = isvc["spec"]["predictor"]
    model = predictor["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] in formats
    # KServe's default protocol is v1, which this runtime does not declare.
    assert model["protocolVersion"] in spec["protocolVersions"]
    assert model["storageUri"]
    assert predictor["terminationGracePeriodSeconds"] > shutdown_grace_s(env)
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] in {
        "RawDeployment", "Standard", "Serverless", "Knative"}
    if predictor.get("annotations", {}).get("prometheus.io/port"):
        assert predictor["annotations"]["prometheus.io/port"] == env["WARDEN_PORT"]
