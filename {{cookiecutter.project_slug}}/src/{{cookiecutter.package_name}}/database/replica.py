"""Routing of reads to the replica, with fallback to the primary while it is unhealthy.

The replica is checked at most every DB_REPLICA_RECHECK_S seconds, in a background
thread, so a rerun never waits on a health check: it reads from wherever the last
check (or the last failed connection) said.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from ..metrics import REPLICA_FALLBACKS

log = logging.getLogger(__name__)

# Seconds the replica is behind; 0 when it has replayed everything it received, so an
# idle primary does not look like lag.
LAG_QUERY = text(
    "SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
    " ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END"
)


class ReplicaRouter:
    def __init__(self, primary: Engine, replica: Engine, max_lag_s: float, recheck_s: float) -> None:
        self.primary = primary
        self.replica = replica
        self._max_lag_s = max_lag_s
        self._recheck_s = recheck_s
        self._healthy = True
        self._checked_at = time.monotonic()
        self._checking = threading.Lock()
        self._transition = threading.Lock()  # one log line and one count per incident

    @property
    def healthy(self) -> bool:
        return self._healthy

    def reader(self) -> Engine:
        """The engine for the next read: the replica unless it is down or lagging."""
        due = time.monotonic() - self._checked_at >= self._recheck_s
        if due and self._checking.acquire(blocking=False):
            threading.Thread(target=self._check_in_background, name="replica-check", daemon=True).start()
        return self.replica if self._healthy else self.primary

    def _check_in_background(self) -> None:
        try:
            self._check()
        finally:
            self._checked_at = time.monotonic()
            self._checking.release()

    def mark_down(self, reason: str) -> None:
        """Send reads to the primary until the next successful check."""
        self._checked_at = time.monotonic()
        with self._transition:
            if self._healthy:
                self._healthy = False
                REPLICA_FALLBACKS.inc()
                log.warning("replica unhealthy, reading from primary reason=%s", reason)

    def _check(self) -> None:
        try:
            with self.replica.connect() as connection:
                lag = float(connection.scalar(LAG_QUERY) or 0)
        except PoolTimeoutError:
            return  # busy is not down: keep the current routing
        except SQLAlchemyError as error:
            self.mark_down(type(error).__name__)
            return
        if lag > self._max_lag_s:
            self.mark_down(f"lag={lag:.1f}s")
            return
        with self._transition:
            if not self._healthy:
                self._healthy = True
                log.info("replica healthy again, reading from replica lag=%.1fs", lag)
