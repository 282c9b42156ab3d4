"""Hole 1 (critical): a page URL opened before anyone opened "/" ran the page without the sign-in gate,
as the local operator, under Streamlit's file-name navigation. Each case starts its own console and
makes the page URL its very first request."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e_oidc.steps import audit_entries
from tests.security.conftest import NAV_RECORDER, raw_names_shown

pytestmark = pytest.mark.e2e

# A fresh console builds its services (simulator, demo history) on its first request.
STARTUP_MS = 90_000
HEADINGS = {"/endpoints": "Endpoints", "/audit": "Audit trail", "/provisioning": "Provisioning"}


def open_first(page, url: str) -> None:
    page.set_default_timeout(30_000)
    page.add_init_script(NAV_RECORDER)
    page.goto(url)


@pytest.mark.parametrize("path", list(HEADINGS))
def test_with_sign_in_a_first_page_request_gets_only_the_sign_in(page, fresh_console, wait_idle, path):
    console = fresh_console(sign_in=True)
    open_first(page, console.url + path)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=STARTUP_MS)
    wait_idle(page)
    expect(page.get_by_role("heading", name=HEADINGS[path])).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("Purge"))).to_have_count(0)
    expect(page.get_by_text("Local operator")).to_have_count(0)
    assert raw_names_shown(page) == set()
    assert audit_entries(console) == []


@pytest.mark.parametrize("path", list(HEADINGS))
def test_without_sign_in_a_first_page_request_passes_the_loopback_gate(page, fresh_console, wait_idle, path):
    console = fresh_console()
    open_first(page, console.url + path)
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("Signed in as Local operator (operator)")).to_be_visible(timeout=STARTUP_MS)
    expect(page.get_by_role("heading", name=HEADINGS[path])).to_be_visible()
    wait_idle(page)
    expect(page.get_by_test_id("stSidebarNav").get_by_role("link", name="Overview", exact=True)).to_be_visible()
    assert raw_names_shown(page) == set()


@pytest.mark.parametrize("path", list(HEADINGS))
def test_without_sign_in_a_first_page_request_off_127_0_0_1_is_refused(page, fresh_console, wait_idle, path):
    console = fresh_console(address="127.0.0.2")
    open_first(page, console.url + path)
    expect(page.get_by_text("only runs for a local operator on 127.0.0.1")).to_be_visible(timeout=STARTUP_MS)
    wait_idle(page)
    expect(page.get_by_role("heading", name=HEADINGS[path])).to_have_count(0)
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
    assert raw_names_shown(page) == set()
