"""ASGI entry point, served by `python -m {{ cookiecutter.package_name }}` (or `streamlit run` on this file).

Settings are validated here, at process start, so a bad deployment stops with one
readable line instead of serving pages that fail on first use.
"""

import importlib
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

from {{ cookiecutter.package_name }}.admission import AdmissionMiddleware, connected_sessions, ready_route
from {{ cookiecutter.package_name }}.database.budget import check_connection_budget
from {{ cookiecutter.package_name }}.database.engines import get_database
from {{ cookiecutter.package_name }}.internal_endpoints import InternalEndpointGuard
from {{ cookiecutter.package_name }}.limits import raise_open_file_limit
from {{ cookiecutter.package_name }}.logs import configure_logging
from {{ cookiecutter.package_name }}.memory import freeze_startup_objects, start_memory_monitoring
from {{ cookiecutter.package_name }}.metrics import SCRIPT_ERRORS, metrics_route
from {{ cookiecutter.package_name }}.settings import SettingsError, get_settings
{%- if cookiecutter.auth == "oidc" %}
from {{ cookiecutter.package_name }}.sign_in_routes import SignInRoutes
{%- endif %}
from {{ cookiecutter.package_name }}.tcp import disable_nagle_on_listeners

try:
    settings = get_settings()
except SettingsError as error:
    sys.exit(f"{{ cookiecutter.project_slug }}: invalid configuration: {error}")

configure_logging(settings.log_level)
log = logging.getLogger("{{ cookiecutter.package_name }}.serve")
log.info("startup nofile_soft=%d->%d", *raise_open_file_limit())  # before any session opens a file


@asynccontextmanager
async def lifespan(_app: st.App) -> AsyncIterator[None]:
    # Import every page now: a broken page fails the deployment, not the first user,
    # and the loaders' metrics are exported from the first scrape.
    importlib.import_module("{{ cookiecutter.package_name }}.navigation")
    database = get_database()  # engines (and the embedded database) ready before the first session
    check_connection_budget(database, settings)
    guard = start_memory_monitoring(settings, connected_sessions)
    log.info("startup tcp_nodelay_listeners=%d", disable_nagle_on_listeners())
    freeze_startup_objects()
    yield
    guard.stop()


def count_script_error(error: Exception) -> None:
    """Count and log uncaught page errors; users still see Streamlit's (detail-free) message."""
    SCRIPT_ERRORS.inc()
    log.error("script_error type=%s", type(error).__name__, exc_info=error)


app = st.App(
    Path(__file__).with_name("main.py"),
{%- if cookiecutter.auth == "oidc" %}
    secrets={"auth": settings.oidc} if settings.oidc else None,
{%- endif %}
    routes=[metrics_route(), ready_route()],
    middleware=[
        # /metrics and /_stcore/metrics: served to direct scrapes, 404 through any proxy.
        Middleware(InternalEndpointGuard),
        Middleware(AdmissionMiddleware),  # new sessions wait while memory or descriptors run short
{%- if cookiecutter.auth == "oidc" %}
        Middleware(SignInRoutes),  # Secure auth cookies over https, sign-in failures shown
{%- endif %}
    ],
    lifespan=lifespan,
    on_script_error=count_script_error,
)
