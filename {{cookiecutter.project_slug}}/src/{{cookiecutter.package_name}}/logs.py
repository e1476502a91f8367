"""Logging set-up: one `key=value` line per event, on stderr, for any log collector."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


def configure_logging(level: str) -> None:
    package = logging.getLogger(__package__)
    if package.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    package.addHandler(handler)
    package.setLevel(level.upper())
    package.propagate = False
