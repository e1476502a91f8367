"""Sign-in end to end: a real OpenID Connect provider, the real server, headless Chromium.

oidc-provider-mock serves a provider with a login form on a free port; the app is served
with `python -m {{ cookiecutter.package_name }}`, configured as README.md tells users, both
ways: the [auth] section of `.streamlit/secrets.toml` and the AUTH_* variables. Nothing of
Streamlit, Authlib or HTTP is mocked.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from sqlalchemy import select

from {{ cookiecutter.package_name }}.auth import SIGN_IN_FAILED_MESSAGE
from {{ cookiecutter.package_name }}.database.engines import get_database
from {{ cookiecutter.package_name }}.database.schema import activity_log

from .login_support import CHROMIUM_ARGS, TLS, Provider, Server, chromium
from .postgres_cluster import free_port

ANALYST, ADMIN = "analyst@example.com", "admin@example.com"  # conftest.py allows example.com
OUTSIDER, UNVERIFIED = "mallory@evil.test", "unverified@example.com"
WAIT_MS = 60_000  # generous: CI machines are shared and slow


@pytest.fixture(scope="module", autouse=True)
def chromium_path() -> str:
    return chromium()  # checked first: without a browser, skip before starting servers


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with Provider.running() as running:
        for email in (ANALYST, ADMIN, OUTSIDER):
            running.set_user(email, email_verified=True)
        running.set_user(UNVERIFIED, email_verified=False)
        yield running


@pytest.fixture(scope="module", params=["secrets.toml", "environment"])
def app(
    request: pytest.FixtureRequest, provider: Provider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    get_database()  # the embedded database is migrated before the server shares it
    port = free_port()
    server = Server.start(tmp_path_factory.mktemp("app"), request.param, provider.auth_secrets(port), port)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLS:
    return TLS.make(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def browser(chromium_path: str, tls: TLS) -> Iterator[Browser]:
    # Chromium trusts the test certificate's key by its hash, not every certificate.
    args = [*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={tls.spki_sha256}"]
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path, args=args)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    fresh = browser.new_context()  # no cookies from another test's sign-in
    yield fresh
    fresh.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def expect_prompt(page: Page) -> None:
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.get_by_test_id("stMetric")).to_have_count(0)
    expect(page.get_by_role("heading", name="Sales")).to_have_count(0)


def sign_in(page: Page, app: Server, email: str) -> float:
    """Log in from the prompt through the provider's form; the seconds the round trip took."""
    page.goto(app.url)
    log_in = page.get_by_role("button", name="Log in")
    log_in.wait_for(timeout=WAIT_MS)
    started = time.perf_counter()
    log_in.click()
    page.locator("input[name=sub]").fill(email)  # the provider's own login form
    page.get_by_role("button", name="Authorize", exact=True).click()
    page.wait_for_url(f"{app.url}/**", timeout=WAIT_MS)
    expect(page.get_by_test_id("stAlert").or_(page.get_by_role("heading", name="Sales"))).to_be_visible(
        timeout=WAIT_MS
    )
    return time.perf_counter() - started


def audited_emails() -> list[str | None]:
    with get_database().read(fresh=True) as connection:
        return list(connection.execute(select(activity_log.c.user_email)).scalars())


def test_a_signed_out_visitor_sees_only_the_prompt_and_runs_no_query(app: Server, page: Page) -> None:
    before = app.queries_run()
    page.goto(app.url)
    expect_prompt(page)
    page.wait_for_timeout(1_000)  # the script run has ended; nothing queued behind it
    print(f"\nqueries run for a signed-out visitor: {app.queries_run() - before}")
    assert app.queries_run() == before


def test_an_allowed_user_signs_in_and_their_first_action_carries_their_email(app: Server, page: Page) -> None:
    seconds = sign_in(page, app, ANALYST)
    print(f"\nsign-in round trip (Log in -> provider form -> signed-in Sales page): {seconds:.2f} s")
    expect(page.get_by_role("heading", name="Sales")).to_be_visible()
    expect(page.get_by_test_id("stMetric")).to_have_count(3, timeout=WAIT_MS)
    expect(page.get_by_text(f"Signed in as {ANALYST}")).to_be_visible()
    expect(page.get_by_role("link", name="System")).to_have_count(0)

    page.get_by_role("button", name="Apply filters").click()
    deadline = time.monotonic() + 10
    while not audited_emails() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert audited_emails() == [ANALYST]


def test_a_non_admin_gets_no_system_page_even_by_url(app: Server, page: Page) -> None:
    sign_in(page, app, ANALYST)
    page.goto(f"{app.url}/system")
    expect(page.get_by_role("heading", name="Sales")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_role("heading", name="System")).to_have_count(0)


def test_an_admin_sees_the_system_page(app: Server, page: Page) -> None:
    sign_in(page, app, ADMIN)
    expect(page.get_by_role("link", name="System")).to_be_visible(timeout=WAIT_MS)
    page.goto(f"{app.url}/system")
    expect(page.get_by_role("heading", name="System")).to_be_visible(timeout=WAIT_MS)


@pytest.mark.parametrize(("email", "reason"), [(OUTSIDER, "is not allowed"), (UNVERIFIED, "is not verified")])
def test_outsiders_and_unverified_addresses_are_refused_without_a_query(
    app: Server, page: Page, email: str, reason: str
) -> None:
    before = app.queries_run()
    sign_in(page, app, email)
    expect(page.get_by_text(f"{email} {reason}")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_test_id("stMetric")).to_have_count(0)
    expect(page.get_by_role("heading", name="Sales")).to_have_count(0)
    page.wait_for_timeout(1_000)
    assert app.queries_run() == before


def test_log_out_ends_the_session_and_nothing_comes_back(
    app: Server, page: Page, context: BrowserContext
) -> None:
    sign_in(page, app, ANALYST)
    expect(page.get_by_test_id("stMetric")).to_have_count(3, timeout=WAIT_MS)
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/oauth2/end_session**", timeout=WAIT_MS)  # the provider's own page
    assert not [cookie for cookie in context.cookies() if cookie["name"].startswith("_streamlit_user")]

    page.goto(app.url)  # the provider's end-session page does not send the browser back
    expect_prompt(page)
    page.go_back()  # the provider's page
    page.go_back()  # the signed-in dashboard, as the browser remembers it
    expect_prompt(page)
    page.reload()
    expect_prompt(page)


def test_the_auth_cookie_is_http_only(app: Server, page: Page, context: BrowserContext) -> None:
    sign_in(page, app, ANALYST)
    cookies = [cookie for cookie in context.cookies() if cookie["name"].startswith("_streamlit_user")]
    assert cookies and all(cookie["httpOnly"] for cookie in cookies)


def test_the_auth_cookie_is_secure_over_https(
    provider: Provider, tls: TLS, page: Page, context: BrowserContext, tmp_path: Path
) -> None:
    port = free_port()
    server = Server.start(tmp_path, "environment", provider.auth_secrets(port, "https"), port, tls)
    try:
        sign_in(page, server, ANALYST)
        expect(page.get_by_text(f"Signed in as {ANALYST}")).to_be_visible()
    finally:
        server.stop()
    cookies = [cookie for cookie in context.cookies() if cookie["name"].startswith("_streamlit_user")]
    assert cookies and all(cookie["httpOnly"] and cookie["secure"] for cookie in cookies), cookies


def test_declining_at_the_provider_shows_the_message(app: Server, page: Page) -> None:
    page.goto(app.url)
    page.get_by_role("button", name="Log in").click(timeout=WAIT_MS)
    page.locator("button[value=deny]").click(timeout=WAIT_MS)  # the provider's "Deny" button
    expect(page.get_by_text(SIGN_IN_FAILED_MESSAGE)).to_be_visible(timeout=WAIT_MS)
    expect_prompt(page)
    assert "sign_in_failed step=callback provider_error=access_denied" in app.log.read_text()


@pytest.mark.parametrize("fault", ["unreachable provider", "wrong metadata URL", "wrong client secret"])
def test_a_misconfigured_provider_gives_one_message_and_a_useful_log_line(
    provider: Provider, page: Page, tmp_path: Path, fault: str
) -> None:
    port = free_port()
    auth = provider.auth_secrets(port)
    if fault == "wrong client secret":
        auth["client_secret"] = "wrong-" + auth["client_secret"]
        expected_log = "sign_in_failed step=token_exchange"
    elif fault == "wrong metadata URL":
        auth["server_metadata_url"] = f"{provider.url}/realms/typo/.well-known/openid-configuration"
        expected_log = f"sign_in_failed step=login problem='{auth['server_metadata_url']} answered HTTP 404'"
    else:
        auth["server_metadata_url"] = f"http://localhost:{free_port()}/.well-known/openid-configuration"
        expected_log = f"sign_in_failed step=login problem='{auth['server_metadata_url']} cannot be fetched"
    server = Server.start(tmp_path, "environment", auth, port)
    try:
        page.goto(server.url)
        page.get_by_role("button", name="Log in").click(timeout=WAIT_MS)
        if fault == "wrong client secret":
            page.locator("input[name=sub]").fill(ANALYST)
            page.get_by_role("button", name="Authorize", exact=True).click()
        expect(page.get_by_test_id("stAlert")).to_have_count(1, timeout=WAIT_MS)
        expect(page.get_by_text(SIGN_IN_FAILED_MESSAGE)).to_be_visible()
        expect_prompt(page)
        assert server.get("/_stcore/health") == (200, "ok")
    finally:
        server.stop()
    log = server.log.read_text()
    assert expected_log in log, log
    assert auth["client_secret"] not in log and auth["cookie_secret"] not in log
