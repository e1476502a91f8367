"""ASGI entry point, served by `python -m {{ cookiecutter.package_name }}` (or `streamlit run` on this file).

Settings are validated here, at process start, so a bad deployment stops with one
readable line instead of serving pages that fail on first use.
"""

import sys
from pathlib import Path

import streamlit as st

from {{ cookiecutter.package_name }}.logs import configure_logging
from {{ cookiecutter.package_name }}.metrics import metrics_route
from {{ cookiecutter.package_name }}.settings import SettingsError, get_settings

try:
    settings = get_settings()
except SettingsError as error:
    sys.exit(f"{{ cookiecutter.project_slug }}: invalid configuration: {error}")

configure_logging(settings.log_level)

app = st.App(Path(__file__).with_name("main.py"), routes=[metrics_route()])
