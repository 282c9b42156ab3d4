"""Every page, visited in Chromium by a signed-in viewer, staff member and operator: each renders
without an exception, and the Admin pages are listed for operators only."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

ADMIN_PAGES = {"Audit", "Provisioning", "Connection check"}


@pytest.mark.parametrize("role", ["viewer", "staff", "operator"])
def test_every_page_renders_for_the_role(page, sign_in, wait_idle, role):
    sign_in(page, role)
    nav = page.get_by_test_id("stSidebarNav")
    # a link's text is its material icon's name, then the page title
    titles = [t.strip().splitlines()[-1].strip() for t in nav.get_by_role("link").all_inner_texts()]
    assert {"Overview", "Jobs", "Generate", "Costs"} <= set(titles)
    if role == "operator":
        assert ADMIN_PAGES <= set(titles)
    else:
        assert not ADMIN_PAGES & set(titles)
    for title in titles:
        link = nav.get_by_role("link", name=title, exact=True)
        target = link.get_attribute("href")
        link.click()
        page.wait_for_url(target)
        wait_idle(page)
        expect(page.get_by_test_id("stException")).to_have_count(0)
        expect(page.get_by_text("Signed in as", exact=False).first).to_be_visible()
