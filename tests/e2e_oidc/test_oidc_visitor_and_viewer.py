"""Before and right after signing in through the local OpenID provider: a visitor who is not
signed in reaches no page (not even by typing a page's URL), and a viewer can look but not generate."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e_oidc.steps import audit_entries, open_page, type_prompt

pytestmark = pytest.mark.e2e


def test_unsigned_visitor_sees_only_the_sign_in(page, console, wait_idle):
    page.goto(console.url)
    wait_idle(page)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)


@pytest.mark.parametrize("path", ["/audit", "/generate", "/endpoints"])
def test_unsigned_visitor_cannot_open_a_page_by_its_url(page, console, wait_idle, path):
    """FINDING: when the gate stops the app before st.navigation, Streamlit serves every file in
    pages/ by URL, without app.py and so without the sign-in gate, as the local operator."""
    page.goto(console.url + path)
    wait_idle(page)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.get_by_role("heading", name="Audit trail")).to_have_count(0)
    expect(page.get_by_role("heading", name="Generate images")).to_have_count(0)
    expect(page.get_by_role("heading", name="Endpoints")).to_have_count(0)


def test_viewer_cannot_generate(page, sign_in, console, people, wait_idle):
    sign_in(page, "viewer")
    nav = page.get_by_test_id("stSidebarNav")
    expect(nav.get_by_text("Audit", exact=True)).to_have_count(0)
    open_page(page, "Generate", wait_idle)
    type_prompt(page, "ava_tok on a harbour", wait_idle)
    expect(page.get_by_role("button", name="Generate", exact=True)).to_be_disabled()
    open_page(page, "Endpoints", wait_idle)
    expect(page.get_by_text("Purge and warm-up are for operators.")).to_be_visible()
    assert audit_entries(console, user=people["viewer"]) == []
