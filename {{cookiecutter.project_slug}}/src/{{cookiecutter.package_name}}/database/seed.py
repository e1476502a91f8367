"""Deterministic demo data, so every fresh install shows the same dashboard."""

from __future__ import annotations

import random
from datetime import date, timedelta

from sqlalchemy import Connection, func, insert, select

from .schema import sales

REGIONS = ("North", "South", "East", "West")
PRODUCTS = {"Starter": 49.0, "Team": 199.0, "Enterprise": 999.0}
FIRST_DAY = date(2025, 1, 1)
DAYS = 365


def demo_sales_rows() -> list[dict[str, object]]:
    rng = random.Random(2025)
    rows: list[dict[str, object]] = []
    for offset in range(DAYS):
        day = FIRST_DAY + timedelta(days=offset)
        weekday_factor = 0.6 if day.weekday() >= 5 else 1.0
        for region in REGIONS:
            for product, price in PRODUCTS.items():
                units = max(0, round(rng.gauss(20, 6) * weekday_factor * (1 + offset / DAYS)))
                rows.append(
                    {
                        "day": day,
                        "region": region,
                        "product": product,
                        "units": units,
                        "revenue": round(units * price, 2),
                    }
                )
    return rows


def seed_demo_data(connection: Connection) -> int:
    """Insert the demo rows unless the table already has data; returns rows inserted."""
    if connection.scalar(select(func.count()).select_from(sales)):
        return 0
    rows = demo_sales_rows()
    connection.execute(insert(sales), rows)
    return len(rows)
