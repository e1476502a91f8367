"""The page script Streamlit reruns on every interaction: page config and navigation."""

import time

import streamlit as st

from {{ cookiecutter.package_name }}.database.errors import DatabaseBusyError, DatabaseUnavailableError
from {{ cookiecutter.package_name }}.metrics import SCRIPT_RUN_DURATION
from {{ cookiecutter.package_name }}.pages import activity, dashboard, system
from {{ cookiecutter.package_name }}.settings import get_settings

st.set_page_config(page_title="{{ cookiecutter.project_name }}", page_icon=":material/insights:", layout="wide")

pages = [
    st.Page(dashboard.render, title="Sales", icon=":material/monitoring:", default=True),
    st.Page(activity.render, title="Activity", icon=":material/history:", url_path="activity"),
]
if get_settings().show_system_page:
    pages.append(st.Page(system.render, title="System", icon=":material/memory:", url_path="system"))
page = st.navigation(pages)

started = time.perf_counter()
try:
    page.run()
except DatabaseBusyError:
    st.error("The database is busy, try again in a moment.", icon=":material/hourglass_top:")
except DatabaseUnavailableError:
    st.error("The database cannot be reached, try again in a moment.", icon=":material/cloud_off:")
finally:
    SCRIPT_RUN_DURATION.labels(page.title).observe(time.perf_counter() - started)
