"""Apply Alembic migrations, and the demo data if asked to.

Run before the app starts: `make migrate` locally, the container entrypoint in
Docker and Kubernetes. The app itself only migrates the embedded SQLite file.
Demo rows go into an empty `sales` table with `--demo-data` or SEED_DEMO_DATA=true
(docker compose and the dev overlay set it; production leaves it off).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from .seed import seed_demo_data

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Several pods may start at once; on PostgreSQL they take turns on this lock.
MIGRATION_LOCK_ID = 7_215_305
log = logging.getLogger(__name__)


def upgrade(engine: Engine, *, with_demo_data: bool) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        if with_demo_data:
            inserted = seed_demo_data(connection)
            if inserted:
                log.info("seeded demo data rows=%d", inserted)


def main() -> None:
    from ..logs import configure_logging
    from ..settings import SettingsError, get_settings
    from .engines import create_primary_engine, masked

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo-data", action="store_true", help="insert demo rows if empty")
    args = parser.parse_args()
    try:
        settings = get_settings()
    except SettingsError as error:
        sys.exit(f"{{ cookiecutter.project_slug }}: invalid configuration: {error}")
    configure_logging(settings.log_level)
    engine = create_primary_engine(settings)
    try:
        upgrade(engine, with_demo_data=args.demo_data or settings.seed_demo_data)
    finally:
        engine.dispose()
    log.info("migrations applied database=%s", masked(engine.url))


if __name__ == "__main__":
    main()
