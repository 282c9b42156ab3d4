import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_overview_shows_three_endpoints_with_live_health(console_page):
    page = console_page
    expect(page.get_by_text("Local simulator")).to_be_visible()
    for name in ("console-image", "console-training", "console-special"):
        expect(page.get_by_role("heading", name=name)).to_be_visible()
    expect(page.get_by_text("In queue").first).to_be_visible()
    expect(page.get_by_text("Spend today (estimated)")).to_be_visible()


def test_jobs_page_lists_history(console_page, wait_idle):
    page = console_page
    page.get_by_test_id("stSidebarNav").get_by_text("Jobs").click()
    wait_idle(page)
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    expect(page.get_by_text("jobs").first).to_be_visible()
