"""Pages through Streamlit's AppTest: real reruns, real caches, real database."""

from datetime import date

from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from {{ cookiecutter.package_name }}.database.engines import get_database
from {{ cookiecutter.package_name }}.database.schema import activity_log, sales
from {{ cookiecutter.package_name }}.database.seed import REGIONS

from .conftest import QueryLog, run_app

SALES_QUERY = "sum(sales.units)"  # only daily_sales() aggregates units
REGIONS_QUERY = "SELECT DISTINCT sales.region"


def activity_rows() -> list[tuple[str, dict]]:
    # From the primary: the audit row was just written, a replica may not have replayed it yet.
    with get_database().read(fresh=True) as connection:
        query = select(activity_log.c.action, activity_log.c.widget_context).order_by(activity_log.c.id)
        return [(row.action, row.widget_context) for row in connection.execute(query)]


def _activity_page() -> None:
    from {{ cookiecutter.package_name }}.pages import activity

    activity.render()


def test_dashboard_renders_kpis_and_charts() -> None:
    app = run_app()
    assert app.title[0].value == "Sales"
    assert [metric.label for metric in app.metric] == ["Revenue", "Units sold", "Revenue per day"]
    assert len(app.get("vega_lite_chart")) == 2
    assert app.session_state["dashboard_filters"].end == date(2025, 12, 31)


def test_second_run_is_served_from_the_cache(query_log: QueryLog) -> None:
    app = run_app()
    assert query_log.count(SALES_QUERY) == 1
    app.run()
    run_app()  # a second session with the same filters
    assert query_log.count(SALES_QUERY) == 1


def revenue_in_database(start: date, end: date, regions: list[str]) -> float:
    in_filters = sales.c.day.between(start, end), sales.c.region.in_(regions)
    query = select(func.sum(sales.c.revenue)).where(*in_filters)
    with get_database().read() as connection:
        return float(connection.scalar(query))


def test_form_submit_applies_filters_and_logs_the_action(query_log: QueryLog) -> None:
    app = run_app()
    app.multiselect[0].set_value(["North"]).run()  # not submitted: nothing applied
    assert len(app.session_state["dashboard_filters"].regions) == 4
    app.multiselect[0].set_value(["North"])
    app.button[0].click().run()  # "Apply filters" submits the form
    assert not app.exception
    filters = app.session_state["dashboard_filters"]
    assert filters.regions == ("North",)
    assert app.metric[0].value == f"{revenue_in_database(filters.start, filters.end, ['North']):,.0f}"
    assert query_log.count(SALES_QUERY) == 1  # same period: regions are picked in memory
    action, context = activity_rows()[-1]
    assert action == "apply_filters"
    assert context["regions"] == ["North"]


def test_a_new_period_costs_one_query(query_log: QueryLog) -> None:
    app = run_app()
    may = (date(2025, 5, 1), date(2025, 5, 31))
    app.date_input[0].set_value(may)
    app.button[0].click().run()
    assert not app.exception
    assert query_log.count(SALES_QUERY) == 2
    assert app.metric[0].value == f"{revenue_in_database(*may, list(REGIONS)):,.0f}"


def test_session_state_survives_reruns() -> None:
    app = run_app()
    app.multiselect[0].set_value(["East", "South"])
    app.button[0].click().run()
    session = app.session_state["session_id"]  # created by the first audit-log write
    app.run()
    app.run()
    assert app.session_state["session_id"] == session
    assert app.session_state["dashboard_filters"].regions == ("East", "South")


def test_refresh_clears_exactly_the_sales_cache(query_log: QueryLog) -> None:
    app = run_app()
    regions_before = query_log.count(REGIONS_QUERY)
    refresh = next(button for button in app.button if button.label == "Refresh data")
    refresh.click().run()
    assert not app.exception
    assert query_log.count(SALES_QUERY) == 2
    assert query_log.count(REGIONS_QUERY) == regions_before  # other loaders keep their cache
    assert activity_rows()[-1][0] == "refresh_data"


def test_activity_page_saves_and_lists_a_note() -> None:
    app = AppTest.from_function(_activity_page, default_timeout=30).run()
    assert app.title[0].value == "Activity log"
    app.text_area[0].input("Checked the March numbers")
    app.button[0].click().run()
    assert not app.exception
    assert app.success[0].value == "Note saved."
    table = app.dataframe[0].value
    assert "Checked the March numbers" in set(table["note"])


HOSTILE_INPUTS = [
    "Robert'); DROP TABLE activity_log; --",
    '" OR 1=1 --',
    "\\x00 \\n <script>alert(1)</script>",
    "Zürich ✓ 東京 🚀",
    "x" * 2000,  # the text area's limit
]


def test_hostile_text_is_stored_verbatim_and_breaks_nothing() -> None:
    with get_database().read() as connection:
        sales_rows = connection.scalar(select(func.count()).select_from(sales))
    for text in HOSTILE_INPUTS:
        app = AppTest.from_function(_activity_page, default_timeout=30).run()
        app.text_area[0].input(text)
        app.button[0].click().run()
        assert not app.exception, app.exception
        assert app.success[0].value == "Note saved."
        assert text in set(app.dataframe[0].value["note"])
    with get_database().read(fresh=True) as connection:  # the notes were just written
        assert connection.scalar(select(func.count()).select_from(sales)) == sales_rows
        notes = connection.execute(select(activity_log.c.note).where(activity_log.c.action == "note"))
        assert sorted(notes.scalars()) == sorted(HOSTILE_INPUTS)
