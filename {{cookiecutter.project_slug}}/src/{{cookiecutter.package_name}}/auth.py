"""Sign-in through Streamlit's built-in OIDC (`st.login`), an allow-list and admins.

The identity provider proves who the user is; the allow-list (AUTH_ALLOWED_DOMAINS,
AUTH_ALLOWED_EMAILS) decides who may use the app, and AUTH_ADMIN_EMAILS who may see
the System page. Both lists empty means every signed-in user of the provider.

An e-mail address grants nothing unless the provider vouches for it: many providers
let anyone type any address into a profile. So with an allow-list set, a sign-in is
refused unless its verified claim (AUTH_EMAIL_VERIFIED_CLAIM, default `email_verified`)
is true, and admin rights always need it. A provider that omits the claim counts as
unverified (fail closed): Microsoft Entra ID sends no `email_verified`; add its
optional `xms_edov` claim and set AUTH_EMAIL_VERIFIED_CLAIM=xms_edov.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import streamlit as st

from .settings import Settings

# sign_in_routes.py sends the browser to /?sign_in=failed when the provider round trip failed.
SIGN_IN_FAILED_PARAM = "sign_in"
SIGN_IN_FAILED_MESSAGE = (
    "Sign-in did not complete: the sign-in provider could not be reached or refused this app. "
    "Try again in a few minutes; if it keeps failing, tell the app's admins."
)


@dataclass(frozen=True)
class User:
    email: str
    is_admin: bool


def email_is_verified(claims: Mapping[str, object], settings: Settings) -> bool:
    value = claims.get(settings.auth_email_verified_claim)
    return value is True or str(value).lower() == "true"  # some providers send the string


def is_allowed(email: str, verified: bool, settings: Settings) -> bool:
    email = email.lower()
    if not settings.auth_allowed_domains and not settings.auth_allowed_emails:
        return True
    domain = email.rpartition("@")[2]
    listed = domain in settings.auth_allowed_domains or email in settings.auth_allowed_emails
    return listed and verified


def is_admin(email: str, verified: bool, settings: Settings) -> bool:
    return verified and email.lower() in settings.auth_admin_emails


def _refuse(message: str) -> None:
    st.error(message)
    st.button("Log out", on_click=st.logout)
    st.stop()


def require_user(settings: Settings) -> User:
    """The signed-in, allowed user; otherwise show the login prompt and stop the rerun."""
    if not st.user.get("is_logged_in"):
        st.title("Sign in")
        if st.query_params.get(SIGN_IN_FAILED_PARAM) == "failed":
            st.error(SIGN_IN_FAILED_MESSAGE)
        st.write("This app is for signed-in users only.")
        st.button("Log in", type="primary", on_click=st.login)
        st.stop()
    email = str(st.user.get("email") or "")
    verified = email_is_verified(st.user, settings)
    if email and is_allowed(email, True, settings) and not is_allowed(email, verified, settings):
        _refuse(f"{email} is not verified by your sign-in provider. Verify it there, then log in again.")
    if not email or not is_allowed(email, verified, settings):
        _refuse(f"{email or 'This account'} is not allowed to use this app. Ask an admin for access.")
    with st.sidebar:
        st.caption(f"Signed in as {email}")
        st.button("Log out", on_click=st.logout)
    return User(email=email, is_admin=is_admin(email, verified, settings))
