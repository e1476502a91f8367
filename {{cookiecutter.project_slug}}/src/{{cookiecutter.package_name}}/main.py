"""The page script Streamlit reruns on every interaction: page config and navigation."""

import streamlit as st

from {{ cookiecutter.package_name }}.pages import activity, dashboard

st.set_page_config(page_title="{{ cookiecutter.project_name }}", page_icon=":material/insights:", layout="wide")

navigation = st.navigation(
    [
        st.Page(dashboard.render, title="Sales", icon=":material/monitoring:", default=True),
        st.Page(activity.render, title="Activity", icon=":material/history:", url_path="activity"),
    ]
)
navigation.run()
