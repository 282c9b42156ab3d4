"""Sign in through the local OpenID provider as staff (can generate, cannot purge) and as an
operator (can apply scaling); the Audit trail, in the store and on the Audit page, records it."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e_oidc.steps import audit_entries, open_page, type_prompt, wait_for_audit

pytestmark = pytest.mark.e2e


def test_staff_can_generate_but_not_purge(page, sign_in, console, people, wait_idle):
    sign_in(page, "staff")
    open_page(page, "Generate", wait_idle)
    type_prompt(page, "ava_tok portrait, golden hour", wait_idle)
    generate = page.get_by_role("button", name="Generate", exact=True)
    expect(generate).to_be_enabled()
    generate.click()
    wait_idle(page)
    submitted = wait_for_audit(console, user=people["staff"], action="submit")
    assert submitted and all(e.detail["role"] == "image" for e in submitted)
    open_page(page, "Endpoints", wait_idle)
    expect(page.get_by_text("Purge and warm-up are for operators.")).to_be_visible()
    expect(page.get_by_role("button", name="Purge queue…")).to_have_count(0)
    expect(page.get_by_test_id("stSidebarNav").get_by_text("Audit", exact=True)).to_have_count(0)


def test_operator_can_apply_scaling_and_sees_it_in_the_audit(page, sign_in, console, people, wait_idle):
    sign_in(page, "operator")
    open_page(page, "Endpoints", wait_idle)
    page.get_by_label("Max workers").fill("5")
    page.get_by_role("button", name="Apply…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("This changes the endpoint on RunPod:")).to_be_visible()
    dialog.get_by_role("button", name="Apply", exact=True).click()
    wait_idle(page)
    applied = wait_for_audit(console, user=people["operator"], action="endpoint.apply")
    assert applied[0].target == "image-sim01"

    open_page(page, "Audit", wait_idle)
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    table = page.get_by_test_id("stDataFrame")
    expect(table).to_be_visible()
    stored = audit_entries(console)
    expect(page.get_by_text(f"{len(stored)} entries")).to_be_visible()
    assert {e.user for e in stored} >= {people["operator"]}
