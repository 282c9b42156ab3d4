"""Hole 6 (low), second half: an internal console makes no request to the internet on its own — no
favicon or fonts from an outside host, no external-IP lookup, no usage statistics. The browser records
every request while visiting every page; any host that is not loopback fails the test."""
from __future__ import annotations

import ipaddress
import tomllib
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.console_server import ROOT

pytestmark = pytest.mark.e2e

STARTUP_MS = 90_000


def is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "chrome", "chrome-extension"):
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def test_streamlit_is_told_not_to_phone_home():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["browser"]["gatherUsageStats"] is False
    assert config["server"]["address"] == "127.0.0.1"  # a named address: no external-IP lookup at start


def test_every_page_loads_with_requests_to_loopback_only(page, fresh_console, wait_idle):
    console = fresh_console()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.set_default_timeout(60_000)
    page.goto(console.url)
    nav = page.get_by_test_id("stSidebarNav")
    expect(nav).to_be_visible(timeout=STARTUP_MS)
    wait_idle(page)
    pages = [link.get_attribute("href") for link in nav.get_by_role("link").all()]
    assert len(pages) >= 12
    for href in pages:
        page.goto(href)
        expect(page.get_by_role("heading").first).to_be_visible()
        wait_idle(page)
    outside = sorted({url for url in requested if not is_loopback(url)})
    assert outside == []
    assert any("/_stcore/" in url or url.endswith("/") for url in requested)
