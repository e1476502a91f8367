"""The generated deploy/ folder: kustomize builds, schema validation and the production rules.

Everything runs offline: `kubectl kustomize` renders each target, `kubernetes-validate
--strict` checks the core kinds against the Kubernetes OpenAPI schemas, and the
custom resources (CloudNativePG, Prometheus Operator) are checked against the small
schemas in tests/schemas/. The structural tests then read the rendered objects the
way the cluster would: probes, security context, resources, the database URLs after
Kubernetes' $(VAR) expansion, sticky sessions, autoscaling and monitoring wiring.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from .conftest import run
from .tooling import find_tool, render_project

SLUG = "streamlit-dashboard"
CLUSTER = f"{SLUG}-db"
TARGETS = ["deploy", "deploy/base", "deploy/overlays/dev", "deploy/overlays/prod"]
# Targets that deploy production: `deploy/` is the prod overlay, and base is what it patches.
PRODUCTION = ["deploy", "deploy/base", "deploy/overlays/prod"]
HEALTH_PATH = "/_stcore/health"
READY_PATH = "/ready"  # 503 while the app sheds load: new sessions go to other pods
APP_PORT = 8501
CORE_API_VERSIONS = {"v1", "apps/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1"}
# Oldest Kubernetes the manifests promise to work with, and kubernetes-validate's newest.
KUBERNETES_VERSIONS = ["1.30.0", None]
SCHEMA_DIR = Path(__file__).parent / "schemas"
QUANTITY_RE = re.compile(r"^(\d+)(Mi|Gi|m)?$")

Doc = dict[str, Any]


@dataclass
class Render:
    project: Path
    memory_mib: int
    builds: dict[str, list[Doc]]


@pytest.fixture(scope="module", params=["1024", "512"], ids=lambda memory: f"memory_limit_mib={memory}")
def render(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Render:
    """A project rendered with include_kubernetes=yes, and `kubectl kustomize` of every target."""
    kubectl = find_tool("kubectl")
    project = render_project(tmp_path_factory.mktemp("k8s"), memory_limit_mib=request.param)
    builds = {
        target: [
            doc for doc in yaml.safe_load_all(run([kubectl, "kustomize", target], project).stdout) if doc
        ]
        for target in TARGETS
    }
    return Render(project, int(request.param), builds)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default render, for the tests that need no tools."""
    return render_project(tmp_path_factory.mktemp("k8s-files"))


def find(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    matches = [doc for doc in docs if doc["kind"] == kind and name in (None, doc["metadata"]["name"])]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def kinds(docs: list[Doc]) -> set[str]:
    return {doc["kind"] for doc in docs}


def app_container(deployment: Doc) -> Doc:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(container for container in containers if container["name"] == "app")


def mebibytes(quantity: str) -> int:
    match = QUANTITY_RE.match(str(quantity))
    assert match and match.group(2) in {"Mi", "Gi"}, f"memory quantity {quantity!r} should be in Mi or Gi"
    return int(match.group(1)) * (1024 if match.group(2) == "Gi" else 1)


def millicores(quantity: str) -> int:
    match = QUANTITY_RE.match(str(quantity))
    assert match and match.group(2) in {None, "m"}, f"cpu quantity {quantity!r}"
    return int(match.group(1)) * (1 if match.group(2) == "m" else 1000)


def container_port(deployment: Doc, port: int | str) -> int:
    """A probe's or Service's port, resolved through the container's named ports."""
    if isinstance(port, int):
        return port
    ports = {p["name"]: p["containerPort"] for p in app_container(deployment).get("ports", [])}
    assert port in ports, f"named port {port!r} is not declared on the container"
    return ports[port]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def secret_data(secret: Doc) -> dict[str, str]:
    data = {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}
    return {**data, **secret.get("stringData", {})}


def container_environment(docs: list[Doc], deployment: Doc) -> dict[str, str]:
    """The app container's environment as the kubelet builds it.

    envFrom first, then `env` in order; `$(NAME)` expands only names defined before
    it (a later or unknown name stays literally `$(NAME)`, which is what this catches).
    """
    container = app_container(deployment)
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        environment.update(find(docs, "ConfigMap", ref)["data"])
    for variable in container.get("env", []):
        name = variable["name"]
        if "value" in variable:
            environment[name] = re.sub(
                r"\$\((\w+)\)", lambda m: environment.get(m.group(1), m.group(0)), variable["value"]
            )
            continue
        source = variable["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            data = secret_data(find(docs, "Secret", ref["name"]))
            assert ref["key"] in data, f"{name}: Secret {ref['name']} has no key {ref['key']}"
            environment[name] = data[ref["key"]]
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            environment[name] = find(docs, "ConfigMap", ref["name"])["data"][ref["key"]]
        elif "resourceFieldRef" in source:
            ref = source["resourceFieldRef"]
            assert ref["resource"] == "limits.memory" and ref.get("divisor") == "1Mi", ref
            target = next(
                c
                for c in deployment["spec"]["template"]["spec"]["containers"]
                if c["name"] == ref["containerName"]
            )
            environment[name] = str(mebibytes(target["resources"]["limits"]["memory"]))
        else:
            pytest.fail(f"{name}: unexpected valueFrom {source}")
    return environment


# --- Builds and schemas --------------------------------------------------------------------


def test_every_target_builds_and_deploy_is_the_prod_overlay(render: Render) -> None:
    for target, docs in render.builds.items():
        assert docs, f"{target} rendered nothing"
        identities = [(doc["apiVersion"], doc["kind"], doc["metadata"]["name"]) for doc in docs]
        assert len(identities) == len(set(identities)), f"{target} has duplicate objects"
    assert render.builds["deploy"] == render.builds["deploy/overlays/prod"]
    core = {"ConfigMap", "Secret", "Deployment", "Service", "NetworkPolicy"}
    core |= {"PodDisruptionBudget", "HorizontalPodAutoscaler"}
    expected = core | {"HTTPRoute", "Cluster", "ServiceMonitor", "PodMonitor", "PrometheusRule"}
    # The prod overlay's PgBouncer (poolers.yaml) and backups (backups.yaml).
    prod_only = {"Pooler", "ObjectStore", "ScheduledBackup"}
    for target in PRODUCTION:
        extra = prod_only if target != "deploy/base" else set()
        assert kinds(render.builds[target]) == expected | extra, target
    assert kinds(render.builds["deploy/overlays/dev"]) == expected - {"HorizontalPodAutoscaler"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS, ids=lambda v: f"kubernetes={v or 'newest'}")
def test_core_kinds_pass_strict_schema_validation(
    render: Render, tmp_path: Path, version: str | None
) -> None:
    validate = find_tool("kubernetes-validate")
    for target, docs in render.builds.items():
        core = [doc for doc in docs if doc["apiVersion"] in CORE_API_VERSIONS]
        assert core, target
        manifest = tmp_path / f"{target.replace('/', '_')}.yaml"
        manifest.write_text(yaml.safe_dump_all(core))
        command = [validate, "--strict", "--quiet", *(["-k", version] if version else []), str(manifest)]
        run(command, tmp_path)


def crd_schema(doc: Doc) -> dict[str, Any]:
    group_version = doc["apiVersion"].replace("/", "_")
    path = SCHEMA_DIR / f"{group_version}_{doc['kind']}.json"
    assert path.is_file(), f"no schema for {doc['apiVersion']} {doc['kind']}: add {path.name}"
    return json.loads(path.read_text())


def test_custom_resources_match_their_schemas(render: Render) -> None:
    for target, docs in render.builds.items():
        for doc in docs:
            if doc["apiVersion"] in CORE_API_VERSIONS:
                continue
            schema = crd_schema(doc)
            errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=str)
            assert not errors, f"{target}: {doc['kind']} {doc['metadata']['name']}: " + "; ".join(
                f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in errors
            )


MISTAKES: list[tuple[str, str, Any]] = [
    ("Cluster", "spec.instances", "2"),
    ("Cluster", "spec.postgresql.parameters.max_connections", 100),
    ("Cluster", "spec.instance", 2),
    ("Cluster", "spec.bootstrap.initdb.secret", "db-credentials"),
    ("ServiceMonitor", "spec.endpoints.0.path", "metrics"),
    ("ServiceMonitor", "spec.endpoints.0.interval", "30 seconds"),
    ("PodMonitor", "spec.podMetricsEndpoints.0.portNumber", 9187),
    ("PrometheusRule", "spec.groups.0.rules.0.for", "5 minutes"),
    ("PrometheusRule", "spec.groups.0.rules.0.labels.severity", 1),
    ("PrometheusRule", "apiVersion", "monitoring.coreos.com/v1beta1"),
    ("HTTPRoute", "spec.rules.0.sessionPersistence.type", "cookie"),
    ("HTTPRoute", "spec.rules.0.timeouts.request", "1 hour"),
    ("HTTPRoute", "spec.rules.0.backendRef", []),
    ("Cluster", "spec.plugins.0.isWALArchiver", "true"),
    ("ScheduledBackup", "spec.schedule", "0 3 * * *"),  # a CronJob schedule: CNPG wants seconds first
    ("ScheduledBackup", "spec.method", "barmanCloud"),
    ("ObjectStore", "spec.retentionPolicy", "30 days"),
    ("ObjectStore", "spec.configuration.s3Credentials.accessKeyId", "AKIA..."),
]


@pytest.mark.parametrize(("kind", "path", "value"), MISTAKES, ids=lambda v: str(v))
def test_crd_schemas_reject_typical_mistakes(render: Render, kind: str, path: str, value: Any) -> None:
    # The first of its kind (prod has two PrometheusRules: the app's and the backups').
    doc = copy.deepcopy(next(doc for doc in render.builds["deploy"] if doc["kind"] == kind))
    schema = crd_schema(doc)
    *parents, last = path.split(".")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[last] = value
    assert not jsonschema.Draft202012Validator(schema).is_valid(doc), f"{kind} {path}={value!r}"


# --- The app Deployment --------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_app_pods_are_bounded_probed_and_locked_down(render: Render, target: str) -> None:
    docs = render.builds[target]
    deployment = find(docs, "Deployment", SLUG)
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == SLUG and labels["app.kubernetes.io/component"] == "web"
    assert matches(deployment["spec"]["selector"]["matchLabels"], labels)

    for container in pod["containers"] + pod.get("initContainers", []):
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"].get(bound, {})), (container["name"], bound)
        assert mebibytes(container["resources"]["requests"]["memory"]) <= mebibytes(
            container["resources"]["limits"]["memory"]
        )

    app = app_container(deployment)
    limits, requests = app["resources"]["limits"], app["resources"]["requests"]
    assert limits["memory"] == f"{render.memory_mib}Mi", (
        "the memory limit must be the memory_limit_mib answer"
    )
    assert mebibytes(requests["memory"]) < render.memory_mib
    assert millicores(requests["cpu"]) <= millicores(limits["cpu"])
    assert container_port(deployment, "http") == APP_PORT

    # Liveness stays on health: a pod shedding load is busy, not broken, and must not restart.
    for probe, path in (
        ("startupProbe", HEALTH_PATH),
        ("readinessProbe", READY_PATH),
        ("livenessProbe", HEALTH_PATH),
    ):
        check = app[probe]["httpGet"]
        assert check["path"] == path, probe
        assert container_port(deployment, check["port"]) == APP_PORT, probe
    # Migrations run before the server answers: the startup probe must allow for them.
    startup = app["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    security = app["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security.get("runAsUser", 10001) == 10001
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["seccompProfile"]["type"] == "RuntimeDefault"

    # With a read-only root, Streamlit can write only to these emptyDirs.
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in app["volumeMounts"]}
    for path in ("/tmp", "/home/app/.streamlit"):
        assert path in mounts, f"no volume at {path}"
        assert "emptyDir" in volumes[mounts[path]], path
    environment = container_environment(docs, deployment)
    assert environment["HOME"] == "/home/app"
    assert environment["DATA_DIR"].startswith("/tmp/")
    assert environment["APP_ENV"] == "production"
    assert environment["MEMORY_LIMIT_MIB"] == str(render.memory_mib)

    assert 5 <= pod["terminationGracePeriodSeconds"] <= 120
    assert pod["topologySpreadConstraints"]
    for constraint in pod["topologySpreadConstraints"]:
        assert matches(constraint["labelSelector"]["matchLabels"], labels)
    # Service links would inject <SERVICE>_PORT variables, which Streamlit reads as
    # STREAMLIT_* options when the Service name starts with "streamlit".
    assert pod["enableServiceLinks"] is False
    assert pod["automountServiceAccountToken"] is False


def test_images_come_from_the_overlays(render: Render) -> None:
    def image(target: str) -> str:
        return app_container(find(render.builds[target], "Deployment"))["image"]

    assert image("deploy/overlays/dev") == f"{SLUG}:latest"
    assert image("deploy") == image("deploy/overlays/prod")
    name, _, tag = image("deploy").rpartition(":")
    assert name.endswith(f"/{SLUG}") and tag and tag != "latest", "production should pin a tag"


# --- Database ------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_database_urls_reach_the_cnpg_services_with_the_generated_login(render: Render, target: str) -> None:
    docs = render.builds[target]
    cluster = find(docs, "Cluster", CLUSTER)
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    # The Cluster names the Secret directly, and kustomize does not rewrite names
    # inside custom resources: the generated Secret must keep exactly that name.
    secret = find(docs, "Secret", initdb["secret"]["name"])
    assert secret["type"] == "kubernetes.io/basic-auth"
    login = secret_data(secret)
    assert login["username"] == initdb["owner"]
    local = dict(
        line.split("=", 1)
        for line in (render.project / "deploy/base/secrets.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert login == local, "the Secret must carry the generated deploy/base/secrets.env"

    environment = container_environment(docs, find(docs, "Deployment", SLUG))
    instances = cluster["spec"]["instances"]
    # The app builds its URLs from these parts (settings.py); a $(VAR)-assembled URL would
    # reach the app literally under runtimes that do not expand it (podman kube play).
    assert not {"DATABASE_URL", "DATABASE_REPLICA_URL"} & set(environment)
    assert not [value for value in environment.values() if "$(" in value], environment
    # Through CloudNativePG's Poolers where the target has them, else the Cluster's Services.
    poolers = {doc["spec"]["type"]: doc["metadata"]["name"] for doc in docs if doc["kind"] == "Pooler"}
    expected = {
        "DB_HOST": poolers.get("rw", f"{CLUSTER}-rw"),
        # -ro has no endpoints without a replica; -r reaches any instance.
        "DB_REPLICA_HOST": poolers.get("ro", f"{CLUSTER}-ro" if instances > 1 else f"{CLUSTER}-r"),
        "DB_PORT": "5432",
        "DB_NAME": initdb["database"],
        "DB_USER": login["username"],
        "DB_PASSWORD": login["password"],
    }
    assert {name: environment.get(name) for name in expected} == expected
    if poolers:  # migrations lock on a session of their own, past the transaction pooler
        assert (environment["DB_DIRECT_HOST"], environment["DB_TRANSACTION_POOLING"]) == (
            f"{CLUSTER}-rw",
            "true",
        )
    if target in PRODUCTION:
        assert instances == 2, "production runs a primary and a streaming replica"


@pytest.mark.parametrize("target", TARGETS)
def test_connection_budget_fits_the_database(render: Render, target: str) -> None:
    docs = render.builds[target]
    cluster = find(docs, "Cluster", CLUSTER)
    deployment = find(docs, "Deployment", SLUG)
    environment = container_environment(docs, deployment)
    per_engine = int(environment["DB_POOL_SIZE"]) + int(environment["DB_MAX_OVERFLOW"])
    hpa = [doc for doc in docs if doc["kind"] == "HorizontalPodAutoscaler"]
    pods = hpa[0]["spec"]["maxReplicas"] if hpa else deployment["spec"].get("replicas", 1)
    # With a replica, each instance serves one engine's pool; a single instance serves both.
    engines_per_instance = 1 if cluster["spec"]["instances"] > 1 else 2
    max_connections = int(cluster["spec"]["postgresql"]["parameters"]["max_connections"])
    assert pods * per_engine * engines_per_instance <= 0.9 * max_connections
    # The app's own start-up check counts the same pods.
    assert int(environment["APP_INSTANCES"]) == pods


# --- Traffic -------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_sessions_stick_to_one_pod_and_only_the_app_port_is_open(render: Render, target: str) -> None:
    docs = render.builds[target]
    deployment = find(docs, "Deployment", SLUG)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = find(docs, "Service", SLUG)
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    assert matches(service["spec"]["selector"], pod_labels)
    service_ports = {port["name"]: port for port in service["spec"]["ports"]}
    assert container_port(deployment, service_ports["http"]["targetPort"]) == APP_PORT

    # The Gateway API route (the Ingress component is checked in tests/test_edge.py).
    route = find(docs, "HTTPRoute", SLUG)["spec"]
    assert route["hostnames"] and route["parentRefs"][0]["kind"] == "Gateway"
    ports_by_number = {port["port"]: port for port in service_ports.values()}
    for rule in route["rules"]:
        assert rule["sessionPersistence"]["type"] == "Cookie"
        assert rule["timeouts"]["request"] == "0s", "a request timeout would cut the websocket"
        for backend in rule["backendRefs"]:
            assert backend["name"] == SLUG and backend["port"] in ports_by_number

    policy = find(docs, "NetworkPolicy", SLUG)["spec"]
    assert matches(policy["podSelector"]["matchLabels"], pod_labels)
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert [port["port"] for rule in policy["ingress"] for port in rule["ports"]] == [APP_PORT]
    egress = {
        (port["port"], port.get("protocol", "TCP")): rule.get("to")
        for rule in policy["egress"]
        for port in rule["ports"]
    }
    assert {(53, "UDP"), (53, "TCP"), (5432, "TCP")} == set(egress)
    assert egress[(5432, "TCP")] == [{"podSelector": {"matchLabels": {"cnpg.io/cluster": CLUSTER}}}]


def test_production_scales_and_survives_disruption_and_dev_stays_small(render: Render) -> None:
    for target in PRODUCTION:
        docs = render.builds[target]
        deployment = find(docs, "Deployment", SLUG)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        hpa = find(docs, "HorizontalPodAutoscaler", SLUG)
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": SLUG}
        assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        # The HPA owns the replica count; a fixed one would be reset on every apply.
        assert "replicas" not in deployment["spec"]
        pdb = find(docs, "PodDisruptionBudget", SLUG)
        assert matches(pdb["spec"]["selector"]["matchLabels"], labels)
        assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable") == 1
    prod = render.builds["deploy/overlays/prod"]
    route = find(prod, "HTTPRoute", SLUG)
    assert route["spec"]["parentRefs"][0]["sectionName"] == "https", "production serves TLS"

    dev = render.builds["deploy/overlays/dev"]
    deployment = find(dev, "Deployment", SLUG)
    assert deployment["spec"]["replicas"] == 1
    assert find(dev, "Cluster", CLUSTER)["spec"]["instances"] == 1
    assert container_environment(dev, deployment)["LOG_LEVEL"] == "debug"
    # Demo sales rows in dev only: production starts with the schema and no made-up data.
    assert container_environment(dev, deployment)["SEED_DEMO_DATA"] == "true"
    assert container_environment(prod, find(prod, "Deployment", SLUG))["SEED_DEMO_DATA"] == "false"
    dev_cpu = app_container(deployment)["resources"]["requests"]["cpu"]
    prod_cpu = app_container(find(prod, "Deployment", SLUG))["resources"]["requests"]["cpu"]
    assert millicores(dev_cpu) < millicores(prod_cpu)
    namespaces = {
        target: {doc["metadata"].get("namespace") for doc in render.builds[target]} for target in TARGETS
    }
    assert namespaces["deploy/overlays/prod"] == {SLUG}
    assert namespaces["deploy/overlays/dev"] == {f"{SLUG}-dev"}


# --- Monitoring ----------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_prometheus_scrapes_the_app_and_the_database(render: Render, target: str) -> None:
    docs = render.builds[target]
    service = find(docs, "Service", SLUG)
    monitor = find(docs, "ServiceMonitor", SLUG)["spec"]
    assert matches(monitor["selector"]["matchLabels"], service["metadata"]["labels"])
    service_ports = {port["name"] for port in service["spec"]["ports"]}
    scraped = set()
    for endpoint in monitor["endpoints"]:
        assert endpoint["port"] in service_ports
        jobs = [r["replacement"] for r in endpoint.get("relabelings", []) if r.get("targetLabel") == "job"]
        scraped.add((endpoint["path"], *jobs))
    # The same job names as monitoring/prometheus.yml, so alerts and dashboards match.
    assert scraped == {("/metrics", "app"), ("/_stcore/metrics", "streamlit")}

    pod_monitor = find(docs, "PodMonitor", CLUSTER)["spec"]
    assert pod_monitor["selector"]["matchLabels"] == {"cnpg.io/cluster": CLUSTER}
    assert [endpoint["port"] for endpoint in pod_monitor["podMetricsEndpoints"]] == ["metrics"]


@pytest.mark.parametrize("target", TARGETS)
def test_prometheus_rule_carries_exactly_the_alerts_file(render: Render, target: str) -> None:
    alerts = yaml.safe_load((render.project / "monitoring/alerts.yml").read_text())
    rule = find(render.builds[target], "PrometheusRule", SLUG)
    assert rule["spec"]["groups"] == alerts["groups"], (
        "deploy/base/prometheusrule.yaml and monitoring/alerts.yml disagree: edit both together"
    )


# --- Local secrets -------------------------------------------------------------------------


def test_db_credentials_come_from_a_gitignored_generated_file(project: Path) -> None:
    base = project / "deploy" / "base"
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    (generator,) = kustomization["secretGenerator"]
    assert generator["envs"] == ["secrets.env"]

    def entries(path: Path) -> dict[str, str]:
        lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
        return dict(line.split("=", 1) for line in lines)

    example, local = entries(base / "secrets.env.example"), entries(base / "secrets.env")
    assert set(example) == set(local) == {"username", "password"}
    # The committed example holds a placeholder; the hook replaced it with a fresh value.
    assert re.fullmatch(r"change-me-[a-z0-9-]+", example["password"])
    assert "change-me" not in local["password"] and len(local["password"]) >= 24
    assert re.fullmatch(r"[A-Za-z0-9_-]+", local["password"]), "the password is used inside URLs"
    assert local["username"] == example["username"]
    assert (base / "secrets.env").stat().st_mode & 0o077 == 0

    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    ignored = subprocess.run(
        ["git", "check-ignore", "deploy/base/secrets.env", "deploy/base/secrets.env.example"],
        cwd=project,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert ignored == ["deploy/base/secrets.env"]
