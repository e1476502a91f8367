"""Middleware around Streamlit's sign-in routes: Secure cookies, and failures made visible.

Streamlit answers a failed provider round trip with a bare "Authentication error" page
(login) or a silent redirect home (callback), and never marks its auth cookies Secure
(a Safari workaround). On /auth/login, /auth/logout and /oauth2callback only, this:
- adds `Secure` to the cookies they set when the redirect URI is https: the browser is
  then on https, whether the app serves TLS itself or sits behind the HTTPS proxy;
- sends a failed sign-in to /?sign_in=failed, where the prompt shows one message, and
  logs one line naming the setting to check. Only URLs and error codes are logged,
  never a secret.
The paths assume the app is served at the root (no `server.baseUrlPath`), as configured.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

import httpx
import streamlit as st
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import SIGN_IN_FAILED_PARAM

log = logging.getLogger(__name__)

LOGIN, LOGOUT, CALLBACK = "/auth/login", "/auth/logout", "/oauth2callback"
FAILED_LOCATION = f"/?{SIGN_IN_FAILED_PARAM}=failed"
USER_COOKIE = b"_streamlit_user="
CREDENTIALS_HINT = (
    "check AUTH_CLIENT_ID and AUTH_CLIENT_SECRET ([auth] client_id, client_secret in "
    ".streamlit/secrets.toml) against the provider's app registration"
)


def _auth_config() -> Mapping[str, Any]:
    """Streamlit's [auth] secrets: from secrets.toml, or the AUTH_* variables via serve.py."""
    try:
        return st.secrets.get("auth") or {}
    except (FileNotFoundError, st.errors.StreamlitSecretNotFoundError):
        return {}


def _secure(header: bytes) -> bytes:
    attributes = [part.strip().lower() for part in header.split(b";")[1:]]
    return header if b"secure" in attributes else header + b"; Secure"


def _signed_in(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the response sets the user cookie (a log-out or a failure only deletes it)."""
    return any(
        name.lower() == b"set-cookie" and value.startswith(USER_COOKIE) and b"max-age=0" not in value.lower()
        for name, value in headers
    )


def _failed(path: str, status: int, headers: list[tuple[bytes, bytes]]) -> bool:
    if path == LOGIN:
        return status >= 400
    return path == CALLBACK and not _signed_in(headers)


async def _metadata_problem(url: str) -> str:
    """What is wrong with the provider's metadata URL, in a few words."""
    if not url:
        return "no server_metadata_url is configured"
    try:
        async with httpx.AsyncClient(timeout=5, follow_redirects=True) as client:
            response = await client.get(url)
    except httpx.HTTPError as error:
        return f"{url} cannot be fetched ({type(error).__name__}: {error})"
    if response.status_code != 200:
        return f"{url} answered HTTP {response.status_code}"
    try:
        response.json()["authorization_endpoint"]
    except (ValueError, KeyError, TypeError):
        return f"{url} is not OpenID Connect metadata (no authorization_endpoint)"
    return f"{url} answers; see Streamlit's warning above for the cause"


async def _log_failure(scope: Scope, config: Mapping[str, Any]) -> None:
    if scope["path"] == LOGIN:
        problem = await _metadata_problem(str(config.get("server_metadata_url", "")))
        log.error(
            "sign_in_failed step=login problem=%r fix=%r",
            problem,
            "check AUTH_SERVER_METADATA_URL ([auth] server_metadata_url) and that the server reaches it",
        )
        return
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    error = re.sub(r"[^A-Za-z0-9_.-]", "", query.get("error", [""])[0])[:64]
    if error:  # e.g. access_denied: the user declined, or is not assigned to the app
        log.error("sign_in_failed step=callback provider_error=%s", error)
    else:  # Streamlit's warning above says whether the token exchange failed or the callback was stale
        log.error("sign_in_failed step=token_exchange fix=%r", CREDENTIALS_HINT)


class SignInRoutes:
    """Pure ASGI middleware (no BaseHTTPMiddleware): websockets and other paths pass straight through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in (LOGIN, LOGOUT, CALLBACK):
            await self.app(scope, receive, send)
            return
        config = _auth_config()
        secure = str(config.get("redirect_uri", "")).startswith("https://")
        started = replaced = False

        async def send_checked(message: Message) -> None:
            nonlocal started, replaced
            if message["type"] == "http.response.start":
                started = True
                headers = [
                    (name, _secure(value) if secure and name.lower() == b"set-cookie" else value)
                    for name, value in message["headers"]
                ]
                if _failed(scope["path"], message["status"], headers):
                    replaced = True
                    await _log_failure(scope, config)
                    headers = [
                        (n, v) for n, v in headers if n.lower() not in (b"location", b"content-length")
                    ]
                    headers += [(b"location", FAILED_LOCATION.encode()), (b"content-length", b"0")]
                    message = {**message, "status": 302}
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and replaced:
                message = {**message, "body": b""}  # drop Streamlit's bare "Authentication error"
            await send(message)

        try:
            await self.app(scope, receive, send_checked)
        except Exception:
            if started:
                raise
            log.exception("sign_in_failed step=%s (Streamlit's auth route raised)", scope["path"])
            await RedirectResponse(FAILED_LOCATION, status_code=302)(scope, receive, send)
