"""Open-file limit: raise the soft RLIMIT_NOFILE at start, and tell whether one more session fits.

Streamlit 1.67 holds 4 descriptors per session (the websocket, plus an event loop's
epoll and socket pair). Container runtimes start processes with a soft limit of 1024
(containerd 2, Docker 29) however high the hard limit is, which caps a container at
about 250 sessions; past that, accept() fails and health checks hang with the
sessions. Go's runtime raises the soft limit to the hard one at start; Python does not.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

FDS_PER_SESSION = 4
# Kept free for health, readiness and metrics requests, database connections and logs.
RESERVED_FDS = 64
OPEN_FILES = Path("/proc/self/fd")


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft limit to the hard limit; returns (soft before, soft after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft >= hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):  # a hard limit above the kernel's nr_open: keep what we have
        return soft, soft
    return soft, hard


def open_file_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_file_count() -> int:
    """Descriptors open in this process (0 where /proc is missing: nothing to guard then)."""
    try:
        return len(os.listdir(OPEN_FILES))
    except OSError:
        return 0


def room_for_a_session() -> bool:
    """Whether a new session's descriptors fit while keeping the reserve free."""
    return open_file_count() + FDS_PER_SESSION + RESERVED_FDS <= open_file_limit()
