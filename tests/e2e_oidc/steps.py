"""Shared steps of the sign-in browser tests: reading the audit trail, opening pages, typing a prompt."""
from __future__ import annotations

from lib.store import JobStore
from tests.support.waiting import wait_until


def audit_entries(console, **filters):
    store = JobStore(console.data_dir)
    try:
        return store.audit_entries(**filters)
    finally:
        store.close()


def wait_for_audit(console, timeout_s: float = 20, **filters):
    return wait_until(lambda: audit_entries(console, **filters), timeout_s, what=f"an audit entry {filters}",
                      interval_s=0.2)


def open_page(page, title: str, wait_idle) -> None:
    link = page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True)
    target = link.get_attribute("href")
    link.click()
    page.wait_for_url(target)
    wait_idle(page)


def type_prompt(page, text: str, wait_idle) -> None:
    prompt = page.get_by_label("Prompt")
    prompt.fill(text)
    prompt.blur()  # Streamlit applies a text area's value when it loses focus
    wait_idle(page)
