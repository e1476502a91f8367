"""Sign-in, the allow-list and the admin-only System page (st.login / st.user).

No identity provider runs in the tests: AppTest seeds `st.user`, which is what
Streamlit fills from the provider's token after a real login.
"""

from dataclasses import replace

import pytest

from {{ cookiecutter.package_name }}.auth import email_is_verified, is_admin, is_allowed
from {{ cookiecutter.package_name }}.settings import get_settings, load_settings

from .conftest import main_app

ADMIN = {"is_logged_in": True, "email": "admin@example.com", "email_verified": True, "name": "Ada Admin"}
OUTSIDER = {"is_logged_in": True, "email": "mallory@evil.test", "email_verified": True, "name": "Mallory"}


@pytest.mark.parametrize(
    ("email", "allowed"),
    [
        ("ana@example.com", True),
        ("ANA@Example.COM", True),
        ("guest@partner.org", True),  # listed by address
        ("other@partner.org", False),
        ("ana@example.com.evil.test", False),
        ("", False),
    ],
)
def test_allow_list(email: str, allowed: bool) -> None:
    settings = load_settings(
        {"AUTH_ALLOWED_DOMAINS": "example.com", "AUTH_ALLOWED_EMAILS": "guest@partner.org"}
    )
    assert is_allowed(email, True, settings) is allowed


def test_empty_allow_list_admits_every_signed_in_user() -> None:
    settings = replace(get_settings(), auth_allowed_domains=frozenset(), auth_allowed_emails=frozenset())
    assert is_allowed("anyone@anywhere.test", True, settings)
    assert is_allowed("anyone@anywhere.test", False, settings)  # nothing to compare the address with


@pytest.mark.parametrize("claims", [{"email_verified": False}, {}, {"email_verified": "false"}])
def test_an_unverified_address_passes_no_allow_list(claims: dict[str, object]) -> None:
    settings = load_settings({"AUTH_ALLOWED_DOMAINS": "example.com", "AUTH_ADMIN_EMAILS": "ana@example.com"})
    verified = email_is_verified(claims, settings)
    assert not verified  # a missing claim counts as unverified
    assert not is_allowed("ana@example.com", verified, settings)
    assert not is_admin("ana@example.com", verified, settings)


def test_the_verified_claim_can_be_named_for_entra_id() -> None:
    settings = load_settings({"AUTH_EMAIL_VERIFIED_CLAIM": "xms_edov"})
    assert email_is_verified({"xms_edov": True}, settings)
    assert not email_is_verified({"email_verified": True}, settings)


def test_admins_come_from_the_admin_list() -> None:
    settings = load_settings({"AUTH_ADMIN_EMAILS": "Admin@Example.com, ops@example.com"})
    assert is_admin("admin@example.com", True, settings)
    assert is_admin("ops@example.com", True, settings)
    assert not is_admin("ana@example.com", True, settings)


def test_partial_oidc_configuration_fails_fast() -> None:
    from {{ cookiecutter.package_name }}.settings import SettingsError

    with pytest.raises(SettingsError, match="OIDC login is partly configured; also set AUTH_COOKIE_SECRET"):
        load_settings({"AUTH_CLIENT_ID": "id", "AUTH_REDIRECT_URI": "http://localhost:8501/oauth2callback"})


def test_oidc_settings_become_streamlit_auth_secrets() -> None:
    names = ("REDIRECT_URI", "COOKIE_SECRET", "CLIENT_ID", "CLIENT_SECRET", "SERVER_METADATA_URL")
    settings = load_settings({f"AUTH_{name}": name.lower() for name in names})
    assert settings.oidc == {name.lower(): name.lower() for name in names}


def test_signed_out_visitors_see_only_the_login_prompt() -> None:
    app = main_app(user={"is_logged_in": False}).run()
    assert not app.exception
    assert [title.value for title in app.title] == ["Sign in"]
    assert [button.label for button in app.button] == ["Log in"]
    assert not app.metric  # no data leaked


def test_allowed_user_sees_the_dashboard() -> None:
    app = main_app().run()
    assert not app.exception
    assert app.title[0].value == "Sales"
    assert "Signed in as analyst@example.com" in [caption.value for caption in app.sidebar.caption]


def test_user_outside_the_allow_list_is_turned_away() -> None:
    app = main_app(user=OUTSIDER).run()
    assert not app.exception
    assert "not allowed" in app.error[0].value
    assert not app.title and not app.metric


def test_an_unverified_address_is_turned_away() -> None:
    app = main_app(user={**OUTSIDER, "email": "ana@example.com", "email_verified": False}).run()
    assert not app.exception
    assert "not verified" in app.error[0].value
    assert not app.title and not app.metric


def test_actions_are_logged_with_the_user_email() -> None:
    from sqlalchemy import select

    from {{ cookiecutter.package_name }}.database.engines import get_database
    from {{ cookiecutter.package_name }}.database.schema import activity_log

    app = main_app().run()
    app.button[0].click().run()  # "Apply filters"
    with get_database().read(fresh=True) as connection:
        emails = connection.execute(select(activity_log.c.user_email)).scalars().all()
    assert emails == ["analyst@example.com"]


def _pages_for(user: dict[str, object]) -> None:
    import streamlit as st

    from {{ cookiecutter.package_name }}.auth import require_user
    from {{ cookiecutter.package_name }}.navigation import app_pages
    from {{ cookiecutter.package_name }}.settings import get_settings

    signed_in = require_user(get_settings())
    st.text(", ".join(page.title for page in app_pages(show_system_page=signed_in.is_admin)))


@pytest.mark.parametrize(("user", "pages"), [(ADMIN, "Sales, Activity, System"), (None, "Sales, Activity")])
def test_only_admins_get_the_system_page(user: dict[str, object] | None, pages: str) -> None:
    from streamlit.testing.v1 import AppTest

    from .conftest import ANALYST

    app = AppTest.from_function(_pages_for, args=(user or ANALYST,))
    app.user = dict(user or ANALYST)
    app.run()
    assert not app.exception, app.exception
    assert app.text[0].value == pages
