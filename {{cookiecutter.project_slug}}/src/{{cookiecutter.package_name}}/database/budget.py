"""Start-up check: do every app instance's pools fit under the database's max_connections?

Each instance opens up to DB_POOL_SIZE + DB_MAX_OVERFLOW connections per engine, the
primary engine on the primary server and the replica engine on the replica. Scaled to
APP_INSTANCES containers or pods (the HPA's maximum), the sum must leave room for
migrations, monitoring and an operator's psql, or the busiest hour ends in
"sorry, too many clients already". One log line per server says whether it fits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from ..settings import Settings
from .engines import Database

# Migrations (one connection), the Postgres exporter, Prometheus checks, a psql session.
HEADROOM = 10
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Budget:
    server: str
    needed: int
    available: int  # max_connections minus the superuser-reserved slots

    @property
    def fits(self) -> bool:
        return self.needed <= self.available


def needed_connections(settings: Settings, engines_on_server: int) -> int:
    per_engine = settings.db_pool_size + settings.db_max_overflow
    return settings.app_instances * per_engine * engines_on_server + HEADROOM


def server_limit(engine: Engine) -> int:
    with engine.connect() as connection:
        max_connections = int(connection.execute(text("show max_connections")).scalar_one())
        reserved = int(connection.execute(text("show superuser_reserved_connections")).scalar_one())
    return max_connections - reserved


def check_connection_budget(database: Database, settings: Settings) -> list[Budget]:
    """Log, per PostgreSQL server, what all instances may open against what it accepts."""
    if settings.db_transaction_pooling:
        # PgBouncer holds the server connections (its default_pool_size per database), so
        # the pods' pools count against its max_client_conn, not against max_connections.
        log.info("connection budget not checked: DB_TRANSACTION_POOLING=true, PgBouncer bounds the servers")
        return []
    engines = {"primary": database.primary, "replica": database.replica}
    servers: dict[tuple[str | None, int | None], list[str]] = {}
    for role, engine in engines.items():
        if engine is not None and engine.dialect.name == "postgresql":
            servers.setdefault((engine.url.host, engine.url.port), []).append(role)
    budgets = []
    for roles in servers.values():
        try:
            available = server_limit(engines[roles[0]])  # type: ignore[arg-type]
        except DBAPIError as error:
            reason = type(error.orig).__name__
            log.warning("connection budget not checked server=%s error=%s", roles[0], reason)
            continue
        budget = Budget("+".join(roles), needed_connections(settings, len(roles)), available)
        budgets.append(budget)
        numbers = (
            f"server={budget.server} needed={budget.needed} available={budget.available} "
            f"(APP_INSTANCES={settings.app_instances} x (DB_POOL_SIZE={settings.db_pool_size} + "
            f"DB_MAX_OVERFLOW={settings.db_max_overflow}) x {len(roles)} engine(s) + {HEADROOM} headroom)"
        )
        if budget.fits:
            log.info("connection budget fits %s", numbers)
        else:
            log.warning(
                "connection budget exceeded %s: lower DB_POOL_SIZE/DB_MAX_OVERFLOW, "
                "or raise max_connections (POSTGRES_MAX_CONNECTIONS), or put PgBouncer in front",
                numbers,
            )
    return budgets
