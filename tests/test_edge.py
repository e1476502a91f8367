"""The edge of the generated stack: Caddy in front of two app containers over HTTPS, and
the Kubernetes routes, with the metrics endpoints kept off every public path.

Offline: the compose file publishes ports only on the proxy, `make up` stops on a bad
SITE_ADDRESS or a missing .env, the HTTPRoute (default) and the ingress-nginx
component render and match their schemas. With podman: the Caddyfile validates in a
stand-in of `caddy:2` built from Debian's caddy package, then the stack runs with
`APP_INSTANCES=2` (compose's `deploy.replicas`, which podman-compose honours like
`--scale app=2`) behind that proxy, and the test trusts the proxy's local CA, read
from its data volume. `pytest -s` prints the figures.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from cookiecutter.main import cookiecutter

from bench.driver import CYCLE, Session

from . import images
from .conftest import BIN_DIR, TEMPLATE_DIR, free_port, run
from .test_containers import container_ip, env_file, metric, wait_healthy
from .test_kubernetes import crd_schema
from .tooling import find_tool

APP_PORT = 8501
COOKIE = "st_route"  # lb_policy cookie in docker/caddy/Caddyfile
INTERNAL = ("/metrics", "/_stcore/metrics")
SESSIONS = 10
INTERACTIONS = 12


def report(label: str, value: str) -> None:
    print(f"\n[edge] {label}: {value}", flush=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("edge")
    context = {"python_version": images.PYTHON_VERSION}
    return Path(cookiecutter(str(TEMPLATE_DIR), no_input=True, extra_context=context, output_dir=str(output)))


# --- Offline ---------------------------------------------------------------------------------


def test_only_the_proxy_publishes_ports_and_nothing_blocks_scaling(project: Path) -> None:
    services: dict[str, Any] = yaml.safe_load((project / "compose.yaml").read_text())["services"]
    assert "ports" not in services["app"], "the app is reached through the proxy only"
    assert services["app"]["deploy"]["replicas"] == "${APP_INSTANCES:-1}"
    assert not [name for name, service in services.items() if "container_name" in service]
    public = {
        name: ports
        for name, service in services.items()
        for ports in [[port for port in service.get("ports", []) if not port.startswith("127.0.0.1:")]]
        if ports
    }
    assert public == {
        "proxy": ["${HTTP_PORT:-80}:80", "${HTTPS_PORT:-443}:443", "${HTTPS_PORT:-443}:443/udp"]
    }
    proxy = services["proxy"]
    assert proxy["image"] == "${CADDY_IMAGE:-caddy:2}"
    assert re.fullmatch(r"\$\{SITE_ADDRESS\?[^}]+\}", proxy["environment"]["SITE_ADDRESS"])
    assert env_file(project)["SITE_ADDRESS"] == "localhost"


@pytest.mark.parametrize(
    ("site", "expected"),
    [
        ("https://app.example.com", "SITE_ADDRESS='https://app.example.com' is not a host name"),
        ("app.example.com/path", "SITE_ADDRESS='app.example.com/path' is not a host name"),
        ("my app", "SITE_ADDRESS='my app' is not a host name"),
    ],
)
def test_make_up_stops_on_a_bad_site_address_with_one_line(project: Path, site: str, expected: str) -> None:
    result = subprocess.run(
        ["make", "up", "COMPOSE=false"], cwd=project, env={**os.environ, "SITE_ADDRESS": site},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if not line.startswith("make")]
    assert lines == [f"{expected}: set it in .env to localhost or a domain such as app.example.com "
                     "(no scheme, port, path or spaces)"]  # fmt: skip


def test_make_up_without_env_file_says_how_to_make_one(project: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(project, tmp_path / "copy")
    (copy / ".env").unlink()
    result = subprocess.run(
        ["make", "up", "COMPOSE=false"], cwd=copy, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert ".env is missing: cp .env.example .env" in result.stderr


# --- Offline: the Kubernetes routes ---------------------------------------------------------


def kustomize(project: Path, target: str) -> list[dict[str, Any]]:
    output = run([find_tool("kubectl"), "kustomize", target], project).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


@pytest.fixture(scope="module")
def routes(project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """`deploy/` and the dev overlay as shipped, and again with the ingress-nginx component
    added to the overlay the way its kustomization.yaml says."""
    with_ingress = Path(shutil.copytree(project / "deploy", tmp_path_factory.mktemp("ingress") / "deploy"))
    for overlay in ("prod", "dev"):
        kustomization = with_ingress / "overlays" / overlay / "kustomization.yaml"
        kustomization.write_text(
            kustomization.read_text() + "components:\n  - ../../components/ingress-nginx\n"
        )
    return {
        "gateway": kustomize(project, "deploy"),
        "gateway-dev": kustomize(project, "deploy/overlays/dev"),
        "ingress": kustomize(with_ingress, "."),
        "ingress-dev": kustomize(with_ingress, "overlays/dev"),
    }


def public_backends(docs: list[dict[str, Any]]) -> list[tuple[str, int | str]]:
    """(Service, port) of every rule that takes traffic from outside, HTTPRoute or Ingress."""
    backends: list[tuple[str, int | str]] = []
    for doc in docs:
        if doc["kind"] == "HTTPRoute":
            backends += [
                (ref["name"], ref["port"]) for rule in doc["spec"]["rules"] for ref in rule["backendRefs"]
            ]
        elif doc["kind"] == "Ingress":
            for rule in doc["spec"]["rules"]:
                for path in rule["http"]["paths"]:
                    service = path["backend"]["service"]
                    backends.append(
                        (service["name"], service["port"].get("number") or service["port"]["name"])
                    )
    return backends


@pytest.mark.parametrize("variant", ["gateway", "gateway-dev", "ingress", "ingress-dev"])
def test_public_routes_reach_metrics_only_through_the_guard(
    project: Path, routes: dict[str, list[dict[str, Any]]], variant: str, tmp_path: Path
) -> None:
    docs = routes[variant]
    kinds = {doc["kind"] for doc in docs}
    assert ("HTTPRoute" in kinds, "Ingress" in kinds) == (
        variant.startswith("gateway"),
        variant.startswith("ingress"),
    )
    for doc in docs:
        if doc["kind"] == "HTTPRoute":
            errors = list(jsonschema.Draft202012Validator(crd_schema(doc)).iter_errors(doc))
            assert not errors, [error.message for error in errors]
        if doc["kind"] == "Ingress":
            manifest = tmp_path / "ingress.yaml"
            manifest.write_text(yaml.safe_dump(doc))
            run([find_tool("kubernetes-validate"), "--strict", "--quiet", str(manifest)], tmp_path)
            # No controller snippets: the guard holds behind any implementation.
            assert not [key for key in doc["metadata"].get("annotations", {}) if "snippet" in key]
            tls_hosts = [host for entry in doc["spec"].get("tls", []) for host in entry["hosts"]]
            assert tls_hosts == ([] if variant.endswith("dev") else [doc["spec"]["rules"][0]["host"]])
    # Every public rule ends on the app container's port 8501, where the guard runs.
    services = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "Service"}
    deployment = next(doc for doc in docs if doc["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container_ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    backends = public_backends(docs)
    assert backends
    for service_name, port in backends:
        service_port = next(
            p for p in services[service_name]["spec"]["ports"] if port in (p["port"], p["name"])
        )
        assert container_ports[service_port["targetPort"]] == APP_PORT
    serve = next(project.glob("src/*/serve.py")).read_text()
    # The guard is the first middleware, so nothing after it can answer a proxied metrics request.
    assert re.search(r"middleware=\[\s*(#.*\s*)*Middleware\(InternalEndpointGuard\)", serve)
    # Prometheus scrapes the pods directly on that port, with no forwarding headers.
    monitor = next(doc for doc in docs if doc["kind"] == "ServiceMonitor")
    assert {endpoint["path"] for endpoint in monitor["spec"]["endpoints"]} == set(INTERNAL)


# --- podman: the stand-in proxy ----------------------------------------------------------------


@pytest.fixture(scope="module")
def caddy_image() -> str:
    images.require_podman()
    return images.stand_in("caddy")


@pytest.mark.parametrize("site", ["localhost", "app.example.com"])
def test_caddyfile_validates(project: Path, caddy_image: str, site: str) -> None:
    caddyfile = project / "docker/caddy/Caddyfile"
    result = images.podman(
        "run", "--rm", "-e", f"SITE_ADDRESS={site}", "-v", f"{caddyfile}:/etc/caddy/Caddyfile:ro",
        caddy_image, "caddy", "validate", "--config", "/etc/caddy/Caddyfile",
    )  # fmt: skip
    assert "Valid configuration" in result.stdout + result.stderr


def response_headers(config: dict[str, Any], host: str) -> dict[str, list[str]]:
    """Headers the adapted (JSON) Caddy config sets on `host`'s responses, with their matchers' hosts."""
    found: dict[str, list[str]] = {}
    for server in config["apps"]["http"]["servers"].values():
        for route in server["routes"]:
            if host not in route["match"][0]["host"]:
                continue
            for sub in route["handle"][0]["routes"]:
                for handler in sub["handle"]:
                    excluded = [m["not"][0]["host"] for m in sub.get("match", []) if "not" in m]
                    if handler["handler"] == "headers" and not any(host in hosts for hosts in excluded):
                        found.update(handler["response"].get("set", {}))
    return found


@pytest.mark.parametrize(("site", "hsts"), [("app.example.com", True), ("localhost", False)])
def test_hsts_only_for_a_domain(project: Path, caddy_image: str, site: str, hsts: bool) -> None:
    """HSTS on localhost would stick in the browser for every port (`make run`'s http://localhost:8501)."""
    caddyfile = project / "docker/caddy/Caddyfile"
    adapted = images.podman(
        "run", "--rm", "-e", f"SITE_ADDRESS={site}", "-v", f"{caddyfile}:/etc/caddy/Caddyfile:ro",
        caddy_image, "caddy", "adapt", "--config", "/etc/caddy/Caddyfile",
    )  # fmt: skip
    headers = response_headers(json.loads(adapted.stdout), site)
    assert ("Strict-Transport-Security" in headers) is hsts
    if hsts:
        assert int(re.search(r"max-age=(\d+)", headers["Strict-Transport-Security"][0]).group(1)) >= 15552000
    assert headers["X-Content-Type-Options"] == ["nosniff"]


# --- podman-compose: the stack behind the proxy ----------------------------------------------


@dataclass
class Stack:
    project: Path
    name: str
    env: dict[str, str]
    ca: Path
    apps: dict[str, str] = field(default_factory=dict)  # container name -> IP on the compose network

    @property
    def base(self) -> str:
        return f"https://localhost:{self.env['HTTPS_PORT']}"

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def container(self, service: str) -> str:
        return containers(self.name)[service][0]

    def route(self, cookie: str) -> str:
        """The container a Caddy affinity cookie points at: HMAC-SHA256 of its dial address."""
        owners = {
            hmac.new(b"", f"{ip}:{APP_PORT}".encode(), hashlib.sha256).hexdigest(): name
            for name, ip in self.apps.items()
        }
        assert cookie in owners, f"cookie {cookie} matches no app container {self.apps}"
        return owners[cookie]


def containers(project_name: str) -> dict[str, list[str]]:
    listing = images.podman(
        "ps", "--all", "--filter", f"label=io.podman.compose.project={project_name}", "--format", "json"
    ).stdout
    found: dict[str, list[str]] = {}
    for item in json.loads(listing or "[]"):
        found.setdefault(item["Labels"]["com.docker.compose.service"], []).append(item["Names"][0])
    return {service: sorted(names) for service, names in found.items()}


def fetch(stack: Stack, path: str, cookie: str | None = None) -> tuple[int, dict[str, str], str]:
    """One HTTPS request through the proxy, verified against its local CA; no redirects followed."""
    port = int(stack.env["HTTPS_PORT"])
    connection = http.client.HTTPSConnection("localhost", port, context=stack.tls(), timeout=10)
    try:
        connection.request("GET", path, headers={"Cookie": f"{COOKIE}={cookie}"} if cookie else {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        connection.close()


def affinity_cookie(headers: dict[str, str]) -> str:
    found = re.search(rf"{COOKIE}=([0-9a-f]+)", headers.get("set-cookie", ""))
    assert found, f"no {COOKIE} cookie in {headers}"
    return found.group(1)


def proxy_memory(stack: Stack) -> str:
    stats = images.podman("stats", "--no-stream", "--format", "json", stack.container("proxy")).stdout
    return str(json.loads(stats)[0]["mem_usage"])


def cookie_for(stack: Stack, container: str) -> str:
    """An affinity cookie the proxy handed out for `container` (its choice is random)."""
    for _ in range(50):
        cookie = affinity_cookie(fetch(stack, "/")[1])
        if stack.route(cookie) == container:
            return cookie
    pytest.fail(f"the proxy never picked {container}")


def direct(ip: str, path: str) -> str:
    with urllib.request.urlopen(f"http://{ip}:{APP_PORT}{path}", timeout=5) as response:
        return response.read().decode()


def active_sessions(stack: Stack) -> dict[str, int]:
    """Read straight from each running container, as Prometheus does."""
    counts = {}
    for name, ip in stack.apps.items():
        try:
            counts[name] = int(metric(direct(ip, "/_stcore/metrics"), "active_sessions") or 0)
        except OSError:
            counts[name] = 0  # stopped
    return counts


def build_app_image(project: Path, base: str) -> str:
    tag = f"localhost/st-prod-test/{project.name}:edge-{uuid.uuid4().hex[:8]}"
    images.podman(
        "build", *images.BUILD_FLAGS, "--build-arg", f"PYTHON_IMAGE={base}", "-t", tag, str(project)
    )
    return tag


@pytest.fixture(scope="module")
def stack(project: Path, caddy_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    podman_compose = shutil.which("podman-compose", path=f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}")
    assert podman_compose, "podman-compose is missing (tests/requirements.txt)"
    base = images.python_base()
    app_image = build_app_image(project, base)
    name = f"stprodedge{uuid.uuid4().hex[:8]}"
    env = {
        "PYTHON_IMAGE": base,
        "APP_IMAGE": app_image,
        "POSTGRES_IMAGE": images.stand_in("postgres"),
        "PROMETHEUS_IMAGE": images.stand_in("prometheus"),
        "CADDY_IMAGE": caddy_image,
        "APP_INSTANCES": "2",
        "APP_NOFILE": images.compose_nofile(),
        "SITE_ADDRESS": "localhost",
        **{
            key: str(free_port())
            for key in ("HTTP_PORT", "HTTPS_PORT", "POSTGRES_PRIMARY_PORT", "POSTGRES_REPLICA_PORT")
        },
        "PROMETHEUS_PORT": str(free_port()),
    }
    compose = [podman_compose, "-p", name]
    stack = Stack(project, name, env, tmp_path_factory.mktemp("edge-ca") / "root.crt")
    try:
        started = time.monotonic()
        # One tier at a time, each healthy before the next: podman before 4.6 ignores
        # `condition: service_healthy`, and no systemd runs healthchecks on their own here.
        for tier in (["db-primary"], ["db-replica"], ["app", "prometheus"], ["proxy"]):
            run([*compose, "up", "--detach", "--no-deps", *tier], cwd=project, timeout=300, **env)
            for service in tier:
                for container in containers(name)[service]:
                    wait_healthy(container, timeout=180)
        stack.apps = {container: container_ip(container) for container in containers(name)["app"]}
        assert len(stack.apps) == 2, f"APP_INSTANCES=2 gave {stack.apps}"
        # Caddy makes its CA and the localhost certificate at start.
        proxy = stack.container("proxy")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            crt = subprocess.run(
                ["podman", "exec", proxy, "cat", "/data/caddy/pki/authorities/local/root.crt"],
                capture_output=True, text=True,
            )  # fmt: skip
            if crt.returncode == 0 and "BEGIN CERTIFICATE" in crt.stdout:
                stack.ca.write_text(crt.stdout)
                try:
                    if fetch(stack, "/_stcore/health")[0] == 200:
                        break
                except OSError:
                    pass
            time.sleep(0.5)
        else:
            pytest.fail("no healthy answer through the proxy within 60 s")
        report(
            "stack up to healthy through the proxy (2 app containers)", f"{time.monotonic() - started:.1f} s"
        )
        yield stack
    finally:
        subprocess.run(
            [*compose, "down", "--volumes"], cwd=project, env={**os.environ, **env}, capture_output=True
        )
        for names in containers(name).values():
            for container in names:
                subprocess.run(["podman", "rm", "--force", container], capture_output=True)
        subprocess.run(["podman", "rmi", "--force", app_image], capture_output=True)


def test_https_with_the_local_ca_security_headers_and_a_redirect(stack: Stack) -> None:
    status, headers, body = fetch(stack, "/")
    assert status == 200 and '<div id="root">' in body
    assert "strict-transport-security" not in headers  # localhost: see test_hsts_only_for_a_domain
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
    # Same-origin frames (Streamlit's components) may render; no other site may frame the app.
    assert headers["content-security-policy"] == "frame-ancestors 'self'"
    assert headers["x-frame-options"] == "SAMEORIGIN"
    assert "server" not in headers
    plain = http.client.HTTPConnection("localhost", int(stack.env["HTTP_PORT"]), timeout=10)
    plain.request("GET", "/some/page?x=1")
    response = plain.getresponse()
    assert response.status == 308
    assert response.getheader("Location") == "https://localhost/some/page?x=1"
    plain.close()
    report("proxy container memory (idle)", proxy_memory(stack))


@pytest.mark.parametrize("path", [*INTERNAL, "/metrics/", "/_stcore/metrics?x=1"])
def test_metrics_are_not_served_through_the_proxy(stack: Stack, path: str) -> None:
    status, _, body = fetch(stack, path)
    assert status == 404 and "process_resident_memory_bytes" not in body and "active_sessions" not in body


def test_metrics_are_served_directly_and_prometheus_scrapes_every_container(stack: Stack) -> None:
    for ip in stack.apps.values():
        assert metric(direct(ip, "/metrics"), "process_resident_memory_bytes")
        assert "active_sessions" in direct(ip, "/_stcore/metrics")
        # The same port a gateway or Ingress targets, with the header it adds: refused by the app.
        for path in INTERNAL:
            forwarded = urllib.request.Request(
                f"http://{ip}:{APP_PORT}{path}", headers={"X-Forwarded-For": "1.2.3.4"}
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(forwarded, timeout=5)
            assert refused.value.code == 404
    expected = {(job, f"{ip}:{APP_PORT}") for job in ("app", "streamlit") for ip in stack.apps.values()}
    url = f"http://127.0.0.1:{stack.env['PROMETHEUS_PORT']}/api/v1/targets"
    deadline, up = time.monotonic() + 90, set()
    while time.monotonic() < deadline and not expected <= up:
        with urllib.request.urlopen(url, timeout=5) as response:
            targets = json.loads(response.read())["data"]["activeTargets"]
        up = {(t["labels"]["job"], t["labels"]["instance"]) for t in targets if t["health"] == "up"}
        time.sleep(1)
    assert expected <= up, f"Prometheus targets up: {sorted(up)}"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def test_proxy_added_latency_per_rerun(stack: Stack) -> None:
    """Figures only: one session through Caddy and one direct to the same container, taking
    turns (the same interaction on each), so both see the same load at the same moment."""
    name, ip = next(iter(stack.apps.items()))
    cookie = f"{COOKIE}={cookie_for(stack, name)}"

    async def turns() -> tuple[list[float], list[float]]:
        proxied = Session(0, 0, 0, base_url=stack.base, ssl=stack.tls(), cookie=cookie)
        plain = Session(APP_PORT, 1, 0, base_url=f"http://{ip}:{APP_PORT}")
        latencies: tuple[list[float], list[float]] = ([], [])
        for session in (proxied, plain):
            await session.open()
        for index in range(100):
            for session, values in zip((proxied, plain), latencies, strict=True):
                latency = await session.act(CYCLE[index % len(CYCLE)])
                if latency is not None:
                    values.append(latency)
        for session in (proxied, plain):
            await session.close()
        return latencies

    proxied, plain = asyncio.run(turns())
    for label, values in (("through Caddy (HTTPS)", proxied), ("direct (HTTP)", plain)):
        p50, p95 = percentile(values, 0.5) * 1000, percentile(values, 0.95) * 1000
        report(f"rerun latency {label}", f"p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(values)} reruns")
    added = [(a - b) * 1000 for a, b in zip(proxied, plain, strict=True)]
    report("proxy added latency per rerun (paired)", f"median {statistics.median(added):.1f} ms")


# --- The last test: it stops an app container -------------------------------------------------


@dataclass
class User:
    number: int
    cookie: str
    container: str
    session: Session | None = None
    attempts: int = 0
    interactions: int = 0
    after_stop: int = 0  # interactions that went through after the container was stopped
    reconnects: int = 0
    errors: list[str] = field(default_factory=list)


async def act_or_closed(session: Session, kind: str) -> bool:
    """One interaction; False when the websocket closed under it (its container went away)."""
    action = asyncio.ensure_future(session.act(kind))
    closed = asyncio.ensure_future(session.websocket.wait_closed())
    done, _ = await asyncio.wait({action, closed}, return_when=asyncio.FIRST_COMPLETED)
    if action in done:
        closed.cancel()
        try:
            action.result()
            return True
        except Exception:
            if session.websocket.state.name != "CLOSED":
                raise
            return False
    action.cancel()
    await asyncio.gather(action, return_exceptions=True)
    return False


def test_sessions_stick_to_one_container_and_survive_losing_one(stack: Stack) -> None:
    tls = stack.tls()

    def connect(user: User) -> Session:
        cookie = f"{COOKIE}={user.cookie}"
        return Session(0, user.number, user.number, base_url=stack.base, ssl=tls, cookie=cookie)

    # Each browser loads the page (the proxy picks a container and sets the cookie), then
    # opens its websocket with that cookie, like a tab does.
    users = []
    for number in range(SESSIONS):
        status, headers, _ = fetch(stack, "/")
        assert status == 200
        cookie = affinity_cookie(headers)
        users.append(User(number, cookie, stack.route(cookie)))
    placed = Counter(user.container for user in users)
    # Caddy 2.6 picks a new browser's container at random: all 10 on one is a 1-in-512 event.
    assert len(placed) == 2, f"the proxy sent all {SESSIONS} browsers to one container: {placed}"
    by_cookie = {name: placed[name] for name in stack.apps}

    async def open_all() -> None:
        for user in users:
            user.session = connect(user)
        await asyncio.gather(*(user.session.open() for user in users if user.session))

    async def close_all() -> None:
        await asyncio.gather(*(user.session.close() for user in users if user.session))

    victim = min(placed, key=lambda name: (placed[name], name))
    survivor = next(name for name in stack.apps if name != victim)
    first = {user.number: user.container for user in users}

    stopped = asyncio.Event()

    async def use(user: User) -> None:
        """Interact until the stop is over and three more interactions went through."""
        assert user.session is not None
        while user.attempts < INTERACTIONS or not stopped.is_set() or user.after_stop < 3:
            await asyncio.sleep(0.3 + 0.05 * (user.number % 4))
            user.attempts += 1
            if await act_or_closed(user.session, CYCLE[user.attempts % len(CYCLE)]):
                user.interactions += 1
                user.after_stop += stopped.is_set()
                continue
            # The tab reconnects with its old cookie: Caddy finds no live container for it,
            # picks one and sets a new cookie on the upgrade; Streamlit starts a fresh session.
            user.reconnects += 1
            await user.session.close()
            user.session = connect(user)
            await user.session.open()
            set_cookie = "; ".join(user.session.websocket.response.headers.get_all("Set-Cookie"))
            user.cookie = affinity_cookie({"set-cookie": set_cookie})
            user.container = stack.route(user.cookie)

    async def run_with_stop() -> float:
        tasks = [asyncio.ensure_future(use(user)) for user in users]
        await asyncio.sleep(1.5)
        started = time.monotonic()
        await asyncio.get_running_loop().run_in_executor(None, images.podman, "stop", "--time", "10", victim)
        stopped.set()
        for user, result in zip(users, await asyncio.gather(*tasks, return_exceptions=True), strict=True):
            if isinstance(result, BaseException):
                user.errors.append(f"{type(result).__name__}: {result}")
        return time.monotonic() - started

    async def scenario() -> tuple[float, dict[str, int]]:
        await open_all()
        assert active_sessions(stack) == by_cookie, "a websocket reached another container than its cookie"
        # A reload: a new websocket with the same cookie lands on the same container again.
        await close_all()
        await open_all()
        assert active_sessions(stack) == by_cookie
        report("sessions per container before the stop", json.dumps(by_cookie))
        stop_s = await run_with_stop()
        after = active_sessions(stack)
        report(f"proxy container memory with {SESSIONS} open websockets", proxy_memory(stack))
        await close_all()
        return stop_s, after

    stop_s, after = asyncio.run(scenario())
    report("stop of one app container mid-run, until its sessions moved", f"{stop_s:.1f} s")
    report("sessions per container after the stop", json.dumps(after))
    for user in users:
        assert not user.errors, f"session {user.number}: {user.errors}"
        assert user.interactions + user.reconnects == user.attempts, user
        assert user.container == survivor, f"session {user.number} is still routed to {user.container}"
        # The stopped container's sessions reconnected once; the others never noticed.
        assert user.reconnects == (1 if first[user.number] == victim else 0), user
    assert after == {victim: 0, survivor: SESSIONS}
    # New browsers reach only the survivor: the stopped container left the proxy's pool.
    fresh = [affinity_cookie(fetch(stack, "/")[1]) for _ in range(10)]
    assert {stack.route(cookie) for cookie in fresh} == {survivor}
