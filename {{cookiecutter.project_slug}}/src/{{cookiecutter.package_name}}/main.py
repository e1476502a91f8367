"""The page script Streamlit reruns on every interaction: page config and navigation."""

import time

import streamlit as st

{% if cookiecutter.auth == "oidc" -%}
from {{ cookiecutter.package_name }}.auth import require_user
{% endif -%}
from {{ cookiecutter.package_name }}.database.errors import DatabaseBusyError, DatabaseUnavailableError
from {{ cookiecutter.package_name }}.metrics import SCRIPT_RUN_DURATION
from {{ cookiecutter.package_name }}.navigation import app_pages
from {{ cookiecutter.package_name }}.settings import get_settings
from {{ cookiecutter.package_name }}.state import enter_page

st.set_page_config(page_title="{{ cookiecutter.project_name }}", page_icon=":material/insights:", layout="wide")

settings = get_settings()
{%- if cookiecutter.auth == "oidc" %}
user = require_user(settings)  # stops here with a login prompt for everyone else
page = st.navigation(app_pages(show_system_page=user.is_admin))
{%- else %}
page = st.navigation(app_pages(show_system_page=settings.show_system_page))
{%- endif %}

enter_page(page.url_path)  # the previous page's state (filters, frames) is dropped
started = time.perf_counter()
try:
    page.run()
except DatabaseBusyError:
    st.error("The database is busy, try again in a moment.", icon=":material/hourglass_top:")
except DatabaseUnavailableError:
    st.error("The database cannot be reached, try again in a moment.", icon=":material/cloud_off:")
finally:
    SCRIPT_RUN_DURATION.labels(page.title).observe(time.perf_counter() - started)
