"""Hole 2 (high): DNS rebinding. A website whose name resolves to 127.0.0.1 reached a console without
sign-in as its local operator (Streamlit accepts a WebSocket whose Origin matches its Host). Chromium's
--host-resolver-rules plays the rebound name; the console must answer only to the names it was
started for and say what to do."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.console_server import CHROMIUM, CHROMIUM_ARGS
from tests.e2e_oidc.steps import audit_entries

pytestmark = pytest.mark.e2e

REBOUND = "rebind.example.test"
STARTUP_MS = 90_000


@pytest.fixture
def rebound_page(browser_type):
    browser = browser_type.launch(executable_path=CHROMIUM,
                                  args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1"])
    page = browser.new_page()
    page.set_default_timeout(30_000)
    yield page
    browser.close()


@pytest.mark.parametrize("path", ["/endpoints", "/"])
def test_a_rebound_name_gets_a_refusal_not_the_console(rebound_page, fresh_console, wait_idle, path):
    console = fresh_console()
    page = rebound_page
    page.goto(console.url.replace("127.0.0.1", REBOUND) + path)
    expect(page.get_by_text("answers only to the names it was started for")).to_be_visible(timeout=STARTUP_MS)
    wait_idle(page)
    expect(page.get_by_text(f"{REBOUND}:{console.url.rsplit(':', 1)[1]}", exact=True)).to_be_visible()
    expect(page.get_by_text("Page not found")).to_have_count(0)
    expect(page.get_by_role("heading", name="Endpoints")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("Purge"))).to_have_count(0)
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
    assert audit_entries(console) == []


def test_the_console_still_answers_to_its_own_address(page, fresh_console):
    console = fresh_console()
    page.goto(console.url + "/endpoints")
    expect(page.get_by_role("heading", name="Endpoints")).to_be_visible(timeout=STARTUP_MS)
