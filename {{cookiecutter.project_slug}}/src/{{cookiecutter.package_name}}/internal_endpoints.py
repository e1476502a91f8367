"""Keep the metrics endpoints off the public route, whatever proxy sits in front.

Prometheus scrapes `/metrics` and `/_stcore/metrics` straight from each container or
pod on port 8501. A browser's request arrives through a reverse proxy, gateway or
load balancer, and every one of them (Caddy, Envoy-based Gateway API implementations,
NGINX, cloud load balancers) adds a forwarding header. So a request for an internal
endpoint that carries one is answered 404, and nothing in the proxy's own
configuration has to remember to block these paths.
"""

from __future__ import annotations

import re

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

INTERNAL_PATHS = ("/metrics", "/_stcore/metrics")
FORWARDING_HEADERS = frozenset(
    {b"forwarded", b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"x-real-ip", b"via"}
)


def is_internal(path: str) -> bool:
    path = re.sub(r"/{2,}", "/", path).rstrip("/").lower()
    return any(path == internal or path.startswith(f"{internal}/") for internal in INTERNAL_PATHS)


def is_forwarded(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name.lower() in FORWARDING_HEADERS for name, _ in headers)


class InternalEndpointGuard:
    """ASGI middleware: 404 for internal paths on requests that came through a proxy."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_internal(scope["path"]) and is_forwarded(scope["headers"]):
            await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)
