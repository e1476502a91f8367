"""Guarded `st.session_state` access: initialise once per session, never on every rerun."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

import streamlit as st

T = TypeVar("T")


def init_state(key: str, factory: Callable[[], T]) -> T:
    """The session's value for `key`, created by `factory` only the first time."""
    if key not in st.session_state:
        st.session_state[key] = factory()
    value: T = st.session_state[key]
    return value


def user_email() -> str | None:
    """The signed-in user's e-mail (Streamlit's OIDC login), or None without a login."""
    email = st.user.get("email")  # typed as any claim's value: str, bool, tokens
    return email if st.user.get("is_logged_in") and isinstance(email, str) else None


def session_id() -> str:
    """A random id for this browser session, used to group its audit-log entries."""
    return init_state("session_id", lambda: uuid.uuid4().hex)
