"""The data layer against the embedded SQLite database."""

from datetime import date

from sqlalchemy import func, inspect, select

from {{ cookiecutter.package_name }}.database.engines import get_database
from {{ cookiecutter.package_name }}.database.migrate import upgrade
from {{ cookiecutter.package_name }}.database.schema import activity_log, sales
from {{ cookiecutter.package_name }}.database.seed import DAYS, PRODUCTS, REGIONS, seed_demo_data
from {{ cookiecutter.package_name }}.queries import daily_sales, recent_activity, record_activity, region_names

HOSTILE = ["O'Brien", 'say "hi"', "1; DROP TABLE sales; --", "Zürich ✓ 東京", "x" * 10_000]


def test_migrations_create_the_schema_and_are_idempotent() -> None:
    database = get_database()
    upgrade(database.primary, with_demo_data=True)  # second run: nothing to do
    tables = set(inspect(database.primary).get_table_names())
    assert {"sales", "activity_log", "alembic_version"} <= tables


def test_demo_data_is_seeded_once() -> None:
    database = get_database()
    with database.write() as connection:
        assert seed_demo_data(connection) == 0
        rows = connection.scalar(select(func.count()).select_from(sales))
    assert rows == DAYS * len(REGIONS) * len(PRODUCTS)


def test_daily_sales_covers_the_period_for_every_region() -> None:
    start, end = date(2025, 3, 1), date(2025, 3, 31)
    frame = daily_sales(start, end)
    assert set(frame["region"]) == set(REGIONS)
    assert frame["day"].min() == start and frame["day"].max() == end
    assert len(frame) == 31 * len(REGIONS)  # one row per day and region
    with get_database().read() as connection:
        expected = connection.scalar(select(func.sum(sales.c.revenue)).where(sales.c.day.between(start, end)))
    assert abs(frame["revenue"].sum() - expected) < 0.01


def test_region_names_come_from_the_data() -> None:
    assert region_names() == tuple(sorted(REGIONS))


def test_activity_round_trips_hostile_text_unchanged() -> None:
    for text in HOSTILE:
        record_activity("session-1", "note", {"text": text, "n": 1}, note=text)
    frame = recent_activity(50, "session-1")
    assert sorted(frame["note"]) == sorted(HOSTILE)
    assert sorted(context["text"] for context in frame["widget_context"]) == sorted(HOSTILE)
    with get_database().read() as connection:
        assert connection.scalar(select(func.count()).select_from(sales)) > 0  # still there


def test_recent_activity_filters_by_session() -> None:
    record_activity("mine", "refresh_data", {})
    record_activity("theirs", "refresh_data", {})
    assert list(recent_activity(10, "mine")["session_id"]) == ["mine"]
    assert set(recent_activity(10)["session_id"]) == {"mine", "theirs"}


def test_writes_are_visible_to_the_next_read() -> None:
    assert recent_activity(10).empty
    record_activity("s", "apply_filters", {"regions": ["East"]})
    assert list(recent_activity(10)["action"]) == ["apply_filters"]
    with get_database().read(fresh=True) as connection:
        assert connection.scalar(select(func.count()).select_from(activity_log)) == 1
