"""`make demo` as a new user runs it, checked in a real browser."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from .conftest import BIN_DIR, TEMPLATE_DIR, free_port

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
INSTALL_TIMEOUT_S = 900


def healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
            return response.read() == b"ok"
    except OSError:
        return False


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("demo-log") / "make-demo.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            ["make", "demo", f"DEMO_DIR={tmp_path_factory.mktemp('demo')}", f"PORT={port}"],
            cwd=TEMPLATE_DIR,
            env={**os.environ, "PATH": f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}"},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so teardown stops make and the server it started
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + INSTALL_TIMEOUT_S
        while not healthy(base):
            assert process.poll() is None, f"make demo exited:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"make demo not serving:\n{log.read_text()[-4000:]}"
            time.sleep(1)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture
def page() -> Iterator[Page]:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser.new_page()
        browser.close()


def expect_no_exception(page: Page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)


def test_demo_dashboard_renders_and_its_form_writes_the_activity_log(
    demo_server: str, page: Page, tmp_path: Path
) -> None:
    page.goto(demo_server)
    expect(page.get_by_role("heading", name="Sales")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("stMetric")).to_have_count(3)
    expect_no_exception(page)

    page.get_by_role("button", name="Apply filters").click()  # a rerun that writes the audit log
    page.wait_for_timeout(2_000)
    expect_no_exception(page)
    expect(page.get_by_test_id("stMetric")).to_have_count(3)

    page.get_by_role("link", name="Activity").click()
    expect(page.get_by_role("heading", name="Activity log")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("stDataFrame")).to_be_visible()
    page.get_by_label("Add a note to the log").fill("Checked in a real browser")
    page.get_by_role("button", name="Save note").click()
    expect(page.get_by_text("Note saved.")).to_be_visible(timeout=30_000)
    expect_no_exception(page)
    page.screenshot(path=tmp_path / "activity.png", full_page=True)
