"""The operations page: hidden by default, and showing live figures when enabled."""

from streamlit.testing.v1 import AppTest

from {{ cookiecutter.package_name }}.memory import start_memory_monitoring
from {{ cookiecutter.package_name }}.settings import get_settings

from .conftest import main_app


def _page_titles(show_system_page: bool) -> None:
    import streamlit as st

    from {{ cookiecutter.package_name }}.navigation import app_pages

    st.text(", ".join(page.title for page in app_pages(show_system_page)))


def test_system_page_is_hidden_unless_enabled() -> None:
    hidden = AppTest.from_function(_page_titles, args=(False,)).run()
    shown = AppTest.from_function(_page_titles, args=(True,)).run()
    assert hidden.text[0].value == "Sales, Activity"
    assert shown.text[0].value == "Sales, Activity, System"


def _system_page() -> None:
    from {{ cookiecutter.package_name }}.pages import system

    system.render()


def test_system_page_shows_memory_pools_and_caches() -> None:
    start_memory_monitoring(get_settings())
    main_app().run()  # fills caches and the pool
    app = AppTest.from_function(_system_page, default_timeout=30).run()
    assert not app.exception, app.exception
    assert app.title[0].value == "System"
    subheaders = [header.value for header in app.subheader]
    assert subheaders == ["Memory", "Database pools", "Cache hit rates", "Memory guard"]
    bars = [bar.proto.text for bar in app.get("progress")]
    assert any("MiB resident" in text for text in bars), bars
    assert any(text.startswith("primary:") for text in bars), bars
    loaders = set(app.dataframe[0].value["loader"])
    assert {"daily_sales", "region_names", "sales_date_bounds"} <= loaders
