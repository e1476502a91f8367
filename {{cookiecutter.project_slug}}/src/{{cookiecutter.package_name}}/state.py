"""Guarded `st.session_state` access: initialise once per session, never on every rerun.

State that belongs to one page (its filters, a frame it built) is created with
`init_page_state` and dropped when the user moves to another page (`enter_page`, called
by main.py before each page runs), so a session holds one page's state, not every page's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

import streamlit as st

T = TypeVar("T")
PAGE_KEYS = "_page_state_keys"  # keys created by init_page_state on the current page
CURRENT_PAGE = "_current_page"


def init_state(key: str, factory: Callable[[], T]) -> T:
    """The session's value for `key`, created by `factory` only the first time."""
    if key not in st.session_state:
        st.session_state[key] = factory()
    value: T = st.session_state[key]
    return value


def init_page_state(key: str, factory: Callable[[], T]) -> T:
    """Like `init_state`, for state that is dropped when the user navigates to another page."""
    init_state(PAGE_KEYS, set[str]).add(key)
    return init_state(key, factory)


def enter_page(page: str) -> list[str]:
    """Before a page runs: after a page change, drop the previous page's state; returns its keys."""
    if st.session_state.get(CURRENT_PAGE) == page:
        return []
    st.session_state[CURRENT_PAGE] = page
    dropped = sorted(st.session_state.get(PAGE_KEYS, ()))
    for key in dropped:
        st.session_state.pop(key, None)
    st.session_state[PAGE_KEYS] = set()
    return dropped


def user_email() -> str | None:
    """The signed-in user's e-mail (Streamlit's OIDC login), or None without a login."""
    email = st.user.get("email")  # typed as any claim's value: str, bool, tokens
    return email if st.user.get("is_logged_in") and isinstance(email, str) else None


def session_id() -> str:
    """A random id for this browser session, used to group its audit-log entries."""
    return init_state("session_id", lambda: uuid.uuid4().hex)
