"""Alembic environment: uses the caller's connection, or the configured primary."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from {{ cookiecutter.package_name }}.database.engines import create_primary_engine
from {{ cookiecutter.package_name }}.database.schema import metadata
from {{ cookiecutter.package_name }}.settings import get_settings


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # lets ALTER TABLE migrations run on SQLite too
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:  # the `alembic` command line
    engine = create_primary_engine(get_settings())
    with engine.begin() as own_connection:
        run_migrations(own_connection)
    engine.dispose()
