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

from ..logs import configure_logging
from ..settings import SettingsError, get_settings
from .engines import create_migration_engine, masked
from .upgrade import upgrade

log = logging.getLogger(f"{__package__}.migrate")  # __name__ is "__main__" under `python -m`


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo-data", action="store_true", help="insert demo rows if empty")
    args = parser.parse_args()
    try:
        settings = get_settings()
    except SettingsError as error:
        sys.exit(f"{{ cookiecutter.project_slug }}: invalid configuration: {error}")
    configure_logging(settings.log_level)
    engine = create_migration_engine(settings)
    try:
        upgrade(engine, with_demo_data=args.demo_data or settings.seed_demo_data)
    finally:
        engine.dispose()
    log.info("migrations applied database=%s", masked(engine.url))


if __name__ == "__main__":
    main()
