"""The data API for pages: cached reads from the replica, transactional writes to the primary.

Read helpers are `st.cache_data` functions (through `cached_loader`, which also counts
hits and misses) keyed only by hashable arguments (dates, strings, tuples) and bounded
by a TTL and a maximum number of entries: a rerun storm costs one query per distinct
filter per TTL window, for all sessions together.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, cast

import pandas as pd
from sqlalchemy import func, insert, select

from .caching import cached_loader
from .database.engines import get_database
from .database.schema import activity_log, sales
from .settings import get_settings

_settings = get_settings()
CACHE = {"ttl": _settings.cache_ttl_s, "max_entries": _settings.cache_max_entries}
# The activity log changes with every write; keep its window short.
ACTIVITY_CACHE = {"ttl": min(30, _settings.cache_ttl_s), "max_entries": _settings.cache_max_entries}


@cached_loader(**CACHE)
def sales_date_bounds() -> tuple[date, date]:
    with get_database().read() as connection:
        first, last = connection.execute(select(func.min(sales.c.day), func.max(sales.c.day))).one()
    today = date.today()
    return (cast(date | None, first) or today, cast(date | None, last) or today)  # NULL: no rows yet


@cached_loader(**CACHE)
def region_names() -> tuple[str, ...]:
    with get_database().read() as connection:
        rows = connection.execute(select(sales.c.region).distinct().order_by(sales.c.region))
        return tuple(rows.scalars())


@cached_loader(**CACHE)
def daily_sales(start: date, end: date) -> pd.DataFrame:
    """Units and revenue per day and region over the period, for every region.

    Keyed by the period alone: the frame is at most days x regions rows, and the
    dashboard picks regions from it in memory, so changing regions never costs a query.
    """
    query = (
        select(
            sales.c.day,
            sales.c.region,
            func.sum(sales.c.units).label("units"),
            func.sum(sales.c.revenue).label("revenue"),
        )
        .where(sales.c.day.between(start, end))
        .group_by(sales.c.day, sales.c.region)
        .order_by(sales.c.day, sales.c.region)
    )
    with get_database().read() as connection:
        rows = connection.execute(query).mappings().all()
    frame = pd.DataFrame(rows, columns=["day", "region", "units", "revenue"])
    return frame.astype({"units": "int64", "revenue": "float64"})


@cached_loader(**ACTIVITY_CACHE)
def recent_activity(limit: int, session_id: str | None = None) -> pd.DataFrame:
    query = (
        select(
            activity_log.c.created_at,
            activity_log.c.action,
            activity_log.c.widget_context,
            activity_log.c.note,
            activity_log.c.session_id,
        )
        .order_by(activity_log.c.id.desc())
        .limit(limit)
    )
    if session_id is not None:
        query = query.where(activity_log.c.session_id == session_id)
    # From the primary: a user who just saved a note must see it, whatever the replica lag.
    with get_database().read(fresh=True) as connection:
        rows = connection.execute(query).mappings().all()
    return pd.DataFrame(rows, columns=["created_at", "action", "widget_context", "note", "session_id"])


def record_activity(
    session_id: str,
    action: str,
    widget_context: Mapping[str, Any],
    *,
    note: str | None = None,
    user_email: str | None = None,
) -> None:
    """Append one user action to the audit log, on the primary, in its own transaction."""
    with get_database().write() as connection:
        connection.execute(
            insert(activity_log).values(
                session_id=session_id,
                user_email=user_email,
                action=action,
                widget_context=dict(widget_context),
                note=note,
            )
        )
    recent_activity.clear()  # readers should see their own write straight away
