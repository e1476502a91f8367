"""The metrics endpoints on a real server: served to a direct scrape, refused through a proxy.

The headers below are what the edges in front of the app add: Caddy (compose),
Envoy-based Gateway API implementations, ingress-nginx and cloud load balancers.
"""

from __future__ import annotations

import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .postgres_cluster import free_port
from .test_server import start_server, wait_healthy

INTERNAL = ("/metrics", "/_stcore/metrics")
CLIENT, HOST = "203.0.113.7", "app.example.com"
GATEWAY_HEADERS = {
    "caddy": {"X-Forwarded-For": CLIENT, "X-Forwarded-Proto": "https", "X-Forwarded-Host": HOST},
    "envoy": {"X-Forwarded-For": CLIENT, "X-Forwarded-Proto": "https", "X-Envoy-External-Address": CLIENT},
    "nginx": {"X-Real-IP": CLIENT, "X-Forwarded-For": CLIENT, "X-Forwarded-Host": HOST},
    "rfc7239": {"Forwarded": f"for={CLIENT};proto=https;host={HOST}"},
    "cloud-lb": {"Via": "1.1 google"},
}


def status(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port, log_path = free_port(), tmp_path_factory.mktemp("guard-log") / "server.log"
    with log_path.open("w") as log:
        process = start_server(port, tmp_path_factory.mktemp("guard-data"), log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process, Path(log_path))
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


@pytest.mark.parametrize("path", INTERNAL)
def test_a_direct_scrape_is_served(server: str, path: str) -> None:
    assert status(f"{server}{path}") == 200


@pytest.mark.parametrize("edge", sorted(GATEWAY_HEADERS))
@pytest.mark.parametrize("path", [*INTERNAL, "/metrics/", "//_stcore/metrics", "/METRICS"])
def test_a_forwarded_request_is_refused(server: str, path: str, edge: str) -> None:
    assert status(f"{server}{path}", GATEWAY_HEADERS[edge]) == 404


@pytest.mark.parametrize("path", ["/", "/_stcore/health", "/_stcore/host-config"])
def test_the_public_paths_still_answer_through_a_proxy(server: str, path: str) -> None:
    assert status(f"{server}{path}", GATEWAY_HEADERS["caddy"]) == 200
