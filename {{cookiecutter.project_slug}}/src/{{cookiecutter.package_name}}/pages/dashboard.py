"""Sales dashboard: filters in a form, data from cached loaders, an explicit refresh."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from ..queries import daily_sales, record_activity, region_names, sales_date_bounds
from ..state import init_page_state, session_id, user_email

DEFAULT_PERIOD_DAYS = 90
# Fixed Vega-Lite specs over the loader's long-format frame: the browser aggregates, and
# a rerun costs ~3 ms per chart instead of ~50 ms for st.line_chart's generated spec.
REVENUE_PER_DAY = {
    "mark": {"type": "line", "tooltip": True},
    "encoding": {
        "x": {"field": "day", "type": "temporal", "title": None},
        "y": {"field": "revenue", "type": "quantitative", "aggregate": "sum", "title": "Revenue"},
        "color": {"field": "region", "type": "nominal", "title": "Region"},
    },
}
REVENUE_PER_REGION = {
    "mark": {"type": "bar", "tooltip": True},
    "encoding": {
        "x": {"field": "region", "type": "nominal", "title": None, "axis": {"labelAngle": 0}},
        "y": {"field": "revenue", "type": "quantitative", "aggregate": "sum", "title": "Revenue"},
    },
}


@dataclass(frozen=True)
class SalesFilters:
    """What the user asked to see. Frozen and built of hashable parts: a cache key."""

    start: date
    end: date
    regions: tuple[str, ...]

    @classmethod
    def default(cls, bounds: tuple[date, date], regions: tuple[str, ...]) -> SalesFilters:
        first, last = bounds
        return cls(max(first, last - timedelta(days=DEFAULT_PERIOD_DAYS - 1)), last, regions)

    def as_context(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "regions": list(self.regions),
        }


def _filter_form(
    current: SalesFilters, bounds: tuple[date, date], all_regions: tuple[str, ...]
) -> SalesFilters | None:
    """Widgets inside a form do not rerun the script until the user submits."""
    with st.form("sales_filter_form"):
        period = st.date_input(
            "Period",
            value=(current.start, current.end),
            min_value=bounds[0],
            max_value=bounds[1],
        )
        regions = st.multiselect("Regions", all_regions, default=list(current.regions))
        if not st.form_submit_button("Apply filters", type="primary"):
            return None
    if not isinstance(period, tuple) or len(period) != 2:
        st.warning("Pick both a start and an end date.")
        return None
    if not regions:
        st.warning("Pick at least one region.")
        return None
    return SalesFilters(period[0], period[1], tuple(sorted(regions)))


def _charts(frame: pd.DataFrame) -> None:
    total_revenue = frame["revenue"].sum()
    total_units = int(frame["units"].sum())
    days = frame["day"].nunique()
    kpis = st.columns(3)
    kpis[0].metric("Revenue", f"{total_revenue:,.0f}")
    kpis[1].metric("Units sold", f"{total_units:,}")
    kpis[2].metric("Revenue per day", f"{total_revenue / max(days, 1):,.0f}")
    st.subheader("Revenue per day")
    st.vega_lite_chart(frame, REVENUE_PER_DAY)
    st.subheader("Revenue per region")
    st.vega_lite_chart(frame, REVENUE_PER_REGION)


def render() -> None:
    st.title("Sales")
    bounds = sales_date_bounds()
    all_regions = region_names()
    filters: SalesFilters = init_page_state(
        "dashboard_filters", lambda: SalesFilters.default(bounds, all_regions)
    )

    submitted = _filter_form(filters, bounds, all_regions)
    if submitted is not None:
        st.session_state["dashboard_filters"] = filters = submitted
        record_activity(session_id(), "apply_filters", filters.as_context(), user_email=user_email())

    if st.button("Refresh data", help="Reload from the database instead of the cache"):
        daily_sales.clear()  # only this loader: other pages keep their cache
        record_activity(session_id(), "refresh_data", filters.as_context(), user_email=user_email())

    period = daily_sales(filters.start, filters.end)
    frame = period[period["region"].isin(filters.regions)]
    if frame.empty:
        st.info("No sales match these filters.")
        return
    _charts(frame)
