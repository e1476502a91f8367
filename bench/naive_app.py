"""The baseline: the same dashboard written the way the seed article's "BAD" examples are.

Do not fix this file. It is what the benchmark compares the generated app against:

- a new `psycopg2.connect()` at the top of the script, so every rerun opens (and,
  like the article's example, never closes) a connection to the database;
- every query runs uncached on every rerun;
- the filters are plain widgets, not a form, so every change reruns the script;
- it talks to "the database" (DATABASE_URL, the primary) and ignores the replica.

It shows the same pages as the generated app (Sales, Activity) from the same `sales`
table and writes the same `activity_log` rows ("apply_filters", "refresh_data").
Run it with `streamlit run bench/naive_app.py` and DATABASE_URL set.
"""

import json
import os
import uuid
from datetime import timedelta

import pandas as pd
import psycopg2
import streamlit as st

# The app's URL is written for SQLAlchemy; psycopg2 wants a plain libpq URL.
DSN = os.environ["DATABASE_URL"].replace("postgresql+psycopg2://", "postgresql://")

st.set_page_config(page_title="Sales (naive)", layout="wide")

# BAD: This runs on every rerun
conn = psycopg2.connect(DSN)
cursor = conn.cursor()

if "sid" not in st.session_state:
    st.session_state.sid = uuid.uuid4().hex


def log_action(action, context, note=None):
    cursor.execute(
        "INSERT INTO activity_log (session_id, action, widget_context, note) VALUES (%s, %s, %s, %s)",
        (st.session_state.sid, action, json.dumps(context), note),
    )
    conn.commit()


def sales_page():
    st.title("Sales")
    cursor.execute("SELECT min(day), max(day) FROM sales")
    first, last = cursor.fetchone()
    cursor.execute("SELECT DISTINCT region FROM sales ORDER BY region")
    regions = [row[0] for row in cursor.fetchall()]

    period = st.date_input("Period", value=(last - timedelta(days=89), last), min_value=first, max_value=last)
    chosen = st.multiselect("Regions", regions, default=regions)
    if len(period) != 2 or not chosen:
        st.warning("Pick a period and at least one region.")
        return
    context = {"start": period[0].isoformat(), "end": period[1].isoformat(), "regions": sorted(chosen)}
    if st.button("Apply filters", type="primary"):
        log_action("apply_filters", context)
    if st.button("Refresh data"):
        log_action("refresh_data", context)

    cursor.execute(
        "SELECT day, region, sum(units) AS units, sum(revenue) AS revenue FROM sales"
        " WHERE day BETWEEN %s AND %s AND region = ANY(%s)"
        " GROUP BY day, region ORDER BY day, region",
        (period[0], period[1], sorted(chosen)),
    )
    frame = pd.DataFrame(cursor.fetchall(), columns=["day", "region", "units", "revenue"])
    if frame.empty:
        st.info("No sales match these filters.")
        return
    frame = frame.astype({"units": "int64", "revenue": "float64"})
    total_revenue = frame["revenue"].sum()
    kpis = st.columns(3)
    kpis[0].metric("Revenue", f"{total_revenue:,.0f}")
    kpis[1].metric("Units sold", f"{int(frame['units'].sum()):,}")
    kpis[2].metric("Revenue per day", f"{total_revenue / max(frame['day'].nunique(), 1):,.0f}")
    st.subheader("Revenue per day")
    st.line_chart(frame.pivot_table(index="day", columns="region", values="revenue", aggfunc="sum"))
    st.subheader("Revenue per region")
    st.bar_chart(frame.groupby("region")["revenue"].sum())


def activity_page():
    st.title("Activity log")
    note = st.text_area("Add a note to the log", max_chars=2000)
    if st.button("Save note") and note.strip():
        log_action("note", {"length": len(note)}, note=note)
    only_mine = st.toggle("Only this session")
    query = "SELECT created_at, action, widget_context, note, session_id FROM activity_log"
    if only_mine:
        cursor.execute(query + " WHERE session_id = %s ORDER BY id DESC LIMIT 50", (st.session_state.sid,))
    else:
        cursor.execute(query + " ORDER BY id DESC LIMIT 50")
    rows = cursor.fetchall()
    frame = pd.DataFrame(rows, columns=["created_at", "action", "widget_context", "note", "session_id"])
    frame["widget_context"] = frame["widget_context"].map(json.dumps)
    st.dataframe(frame, hide_index=True)


page = st.navigation(
    [
        st.Page(sales_page, title="Sales", default=True),
        st.Page(activity_page, title="Activity", url_path="activity"),
    ]
)
page.run()
