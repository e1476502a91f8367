"""Load shedding at the door: a readiness path, and a busy page instead of a new session.

While the memory guard sheds load, or when one more session's file descriptors would
eat into the reserve kept for probes, a new browser gets a small 503 page that retries
by itself, and `/ready` answers 503 so Kubernetes (readinessProbe) and the proxy send
new sessions to other replicas. Sessions already connected keep working: their reruns
and their reconnects (a websocket that names its existing session) pass through.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .limits import room_for_a_session
from .memory import memory_guard
from .metrics import SESSIONS_REFUSED

RETRY_AFTER_S = 10
BUSY_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{RETRY_AFTER_S}">
<title>Busy</title></head>
<body style="font-family: sans-serif; margin: 4rem auto; max-width: 32rem">
<h1>Busy, please retry</h1>
<p>This server is at capacity. The page retries by itself in {RETRY_AFTER_S} seconds.</p>
</body></html>
""".encode()
BUSY_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"retry-after", str(RETRY_AFTER_S).encode()),
    (b"cache-control", b"no-store"),
]
# Requests that are not a browser opening the app: assets, probes, metrics, the API.
NOT_PAGES = ("/_stcore/", "/static/", "/media/", "/component/", "/app/static/", "/metrics", "/ready")


_connected = 0  # websockets open now; the server's one event loop updates it


def connected_sessions() -> int:
    return _connected


def refusal_reason(*, new_session: bool = True) -> str | None:
    """Why a new session would be turned away now, or None when it is welcome."""
    guard = memory_guard()
    if new_session and guard is not None and guard.shedding:
        return "memory"
    if not room_for_a_session():
        return "descriptors"
    return None


def _is_page(scope: Scope) -> bool:
    path: str = scope["path"]
    last = path.rsplit("/", 1)[-1]
    return scope["method"] in ("GET", "HEAD") and "." not in last and not path.startswith(NOT_PAGES)


def _is_reconnect(scope: Scope) -> bool:
    """Streamlit's browser names its existing session in the third subprotocol entry."""
    offered = dict(scope["headers"]).get(b"sec-websocket-protocol", b"").split(b",")
    return len(offered) >= 3 and bool(offered[2].strip())


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        global _connected
        if scope["type"] == "websocket" and scope["path"].endswith("/_stcore/stream"):
            reason = refusal_reason(new_session=not _is_reconnect(scope))
            if reason:
                SESSIONS_REFUSED.labels(reason).inc()
                await _refuse_websocket(scope, receive, send)
                return
            _connected += 1
            try:
                await self.app(scope, receive, send)
            finally:
                _connected -= 1
            return
        elif scope["type"] == "http" and _is_page(scope):
            reason = refusal_reason()
            if reason:
                SESSIONS_REFUSED.labels(reason).inc()
                await _busy_page(send)
                return
        await self.app(scope, receive, send)


async def _busy_page(send: Send) -> None:
    await send({"type": "http.response.start", "status": 503, "headers": BUSY_HEADERS})
    await send({"type": "http.response.body", "body": BUSY_PAGE})


async def _refuse_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    if "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": 503, "headers": BUSY_HEADERS})
        await send({"type": "websocket.http.response.body", "body": BUSY_PAGE})
    else:  # servers without the denial-response extension answer 403
        await send({"type": "websocket.close", "code": 1013})  # "try again later"


async def _ready(_request: Request) -> Response:
    reason = refusal_reason()
    if reason:
        headers = {"Retry-After": str(RETRY_AFTER_S)}
        return PlainTextResponse(f"busy: {reason}\n", status_code=503, headers=headers)
    return PlainTextResponse("ready\n")


def ready_route() -> Route:
    return Route("/ready", _ready, methods=["GET", "HEAD"])
