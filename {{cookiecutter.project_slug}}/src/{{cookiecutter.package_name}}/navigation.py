"""Which pages the app shows. The System page is for operators only."""

import streamlit as st

from .pages import activity, dashboard, system


def app_pages(show_system_page: bool) -> list[st.Page]:
    pages = [
        st.Page(dashboard.render, title="Sales", icon=":material/monitoring:", default=True),
        st.Page(activity.render, title="Activity", icon=":material/history:", url_path="activity"),
    ]
    if show_system_page:
        pages.append(st.Page(system.render, title="System", icon=":material/memory:", url_path="system"))
    return pages
