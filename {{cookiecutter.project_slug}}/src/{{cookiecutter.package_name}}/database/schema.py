"""Tables of the app. Alembic migrations in `migrations/versions` create them."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

sales = Table(
    "sales",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("day", Date, nullable=False),
    Column("region", String(32), nullable=False),
    Column("product", String(64), nullable=False),
    Column("units", Integer, nullable=False),
    Column("revenue", Numeric(12, 2, asdecimal=False), nullable=False),
    Index("ix_sales_day_region", "day", "region"),
)

# Who did what with which filters: survives refreshes and restarts, unlike session_state.
activity_log = Table(
    "activity_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("session_id", String(64), nullable=False, index=True),
    Column("user_email", String(320)),
    Column("action", String(64), nullable=False),
    Column("widget_context", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    Column("note", Text),
    Column(
        "created_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=func.now(),
        index=True,
    ),
)
