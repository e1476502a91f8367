"""Sign-in through Streamlit's built-in OIDC (`st.login`), an allow-list and admins.

The identity provider proves who the user is; the allow-list (AUTH_ALLOWED_DOMAINS,
AUTH_ALLOWED_EMAILS) decides who may use the app, and AUTH_ADMIN_EMAILS who may see
the System page. Both lists empty means every signed-in user of the provider.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from .settings import Settings


@dataclass(frozen=True)
class User:
    email: str
    is_admin: bool


def is_allowed(email: str, settings: Settings) -> bool:
    email = email.lower()
    if not settings.auth_allowed_domains and not settings.auth_allowed_emails:
        return True
    domain = email.rpartition("@")[2]
    return domain in settings.auth_allowed_domains or email in settings.auth_allowed_emails


def is_admin(email: str, settings: Settings) -> bool:
    return email.lower() in settings.auth_admin_emails


def require_user(settings: Settings) -> User:
    """The signed-in, allowed user; otherwise show the login prompt and stop the rerun."""
    if not st.user.get("is_logged_in"):
        st.title("Sign in")
        st.write("This app is for signed-in users only.")
        st.button("Log in", type="primary", on_click=st.login)
        st.stop()
    email = str(st.user.get("email") or "")
    if not email or not is_allowed(email, settings):
        st.error(f"{email or 'This account'} is not allowed to use this app. Ask an admin for access.")
        st.button("Log out", on_click=st.logout)
        st.stop()
    with st.sidebar:
        st.caption(f"Signed in as {email}")
        st.button("Log out", on_click=st.logout)
    return User(email=email, is_admin=is_admin(email, settings))
