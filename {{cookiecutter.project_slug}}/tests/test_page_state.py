"""Per-page state is dropped when the user navigates away (AppTest, real session state)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from .conftest import run_app


def _two_pages() -> None:
    import streamlit as st

    from {{ cookiecutter.package_name }}.state import enter_page, init_page_state, init_state

    page = st.radio("Page", ["report", "other"])
    st.session_state["dropped"] = enter_page(page)
    init_state("kept", lambda: "session-wide")
    if page == "report":
        init_page_state("report_frame", lambda: list(range(100_000)))  # a large per-page object
        init_page_state("report_selection", lambda: ("North",))


def test_leaving_a_page_drops_its_state_and_keeps_the_sessions() -> None:
    app = AppTest.from_function(_two_pages).run()
    assert {"report_frame", "report_selection", "kept"} <= set(app.session_state)
    app.radio[0].set_value("other").run()
    assert app.session_state["dropped"] == ["report_frame", "report_selection"]
    assert "report_frame" not in app.session_state and "report_selection" not in app.session_state
    assert app.session_state["kept"] == "session-wide"
    app.run()  # staying on a page drops nothing
    assert app.session_state["dropped"] == []
    app.radio[0].set_value("report").run()
    assert app.session_state["report_selection"] == ("North",)  # created afresh


def test_the_app_scopes_the_dashboard_filters_to_its_page() -> None:
    app = run_app()
    assert "dashboard_filters" in app.session_state
    assert "dashboard_filters" in app.session_state["_page_state_keys"]
    assert app.session_state["_current_page"] is not None
