"""`st.cache_data` loaders that also count their hits and misses.

Streamlit does not report whether a call was answered by the cache; the loader's
body only runs on a miss, so a flag set there (per thread: each rerun runs in its
own) tells the two apart.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

import streamlit as st

from .metrics import CACHE_REQUESTS

P = ParamSpec("P")
R = TypeVar("R")
_current = threading.local()


class CachedLoader(Generic[P, R]):
    def __init__(self, function: Callable[P, R], *, ttl: float, max_entries: int) -> None:
        self.name = function.__name__
        for result in ("hit", "miss"):  # exported as 0 from the start, so rates work at once
            CACHE_REQUESTS.labels(self.name, result)

        @functools.wraps(function)
        def load(*args: P.args, **kwargs: P.kwargs) -> R:
            _current.missed = True
            return function(*args, **kwargs)

        self._cached: Any = st.cache_data(ttl=ttl, max_entries=max_entries, show_spinner=False)(load)
        functools.update_wrapper(self, function)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        _current.missed = False
        result: R = self._cached(*args, **kwargs)
        CACHE_REQUESTS.labels(self.name, "miss" if _current.missed else "hit").inc()
        return result

    def clear(self) -> None:
        """Drop every cached result of this loader, for all sessions."""
        self._cached.clear()


def cached_loader(*, ttl: float, max_entries: int) -> Callable[[Callable[P, R]], CachedLoader[P, R]]:
    """Like `@st.cache_data(ttl=..., max_entries=...)`, plus hit/miss counting."""

    def decorate(function: Callable[P, R]) -> CachedLoader[P, R]:
        return CachedLoader(function, ttl=ttl, max_entries=max_entries)

    return decorate
