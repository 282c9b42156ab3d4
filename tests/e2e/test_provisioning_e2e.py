"""Playwright: a new operator on a fresh simulator with nothing created sees on Overview that the
endpoints are not created yet, plans console.toml, applies it, finds the endpoints on Overview and
Endpoints, sees a one-line plan after editing max workers, and uploads a missing model.

The console here has a simulator of its own that starts empty (LOCALPOD_EMPTY=1, read by
lib/services.py), so this file starts its own `streamlit run app.py` like tests/e2e/conftest.py does.
"""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.console_server import fast_config_text, running_console

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def empty_console(tmp_path_factory):
    """(url, console.toml path) of a console whose simulator starts with no endpoint and no volume."""
    data = tmp_path_factory.mktemp("e2e-provisioning")
    config = data / "console.toml"
    config.write_text(fast_config_text())
    with running_console(data=data, config=config, env={"LOCALPOD_EMPTY": "1"}) as url:
        yield url, config


def metric(page, label: str):
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")


def test_plan_apply_and_upload_on_a_fresh_account(empty_console, page, wait_idle, tmp_path):
    url, config = empty_console
    page.set_default_timeout(60_000)
    page.goto(url)
    wait_idle(page)
    expect(page.get_by_text("Not created yet — see Provisioning")).to_have_count(3)
    page.get_by_test_id("stSidebarNav").get_by_text("Provisioning").click()
    wait_idle(page)
    expect(page.get_by_role("heading", name="Provisioning")).to_be_visible()
    expect(metric(page, "To create")).to_have_text("4")
    expect(metric(page, "Monthly cost of the change")).to_have_text("+$14.00")

    page.get_by_role("button", name="Apply…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("These steps run in this order")).to_be_visible()
    dialog.get_by_role("button", name="Apply", exact=True).click()
    expect(page.get_by_text("Applied.")).to_be_visible()
    wait_idle(page)
    expect(metric(page, "Unchanged")).to_have_text("4")
    expect(metric(page, "To create")).to_have_text("0")
    assert 'id = "image-sim01"' not in config.read_text()          # the new ids are in the file

    page.get_by_test_id("stSidebarNav").get_by_text("Overview").click()
    wait_idle(page)
    for name in ("console-image", "console-training", "console-special"):
        expect(page.get_by_role("heading", name=name)).to_be_visible()
    expect(page.get_by_text("In queue").first).to_be_visible()
    expect(page.get_by_text("Health unavailable")).to_have_count(0)
    page.get_by_test_id("stSidebarNav").get_by_text("Endpoints").click()
    wait_idle(page)
    expect(page.get_by_text("The live endpoint matches console.toml.")).to_be_visible()

    config.write_text(config.read_text().replace("workers_max = 3", "workers_max = 5", 1))
    page.goto(f"{url}/provisioning")
    wait_idle(page)
    expect(metric(page, "To change")).to_have_text("1")
    expect(metric(page, "Unchanged")).to_have_text("3")
    expect(page.get_by_text("console.toml changed since the console started")).to_be_visible()

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "z_image_turbo_bf16.safetensors").write_bytes(b"weights" * 4096)
    page.get_by_role("tab", name="Models on the volume").click()
    expect(page.get_by_text("Upload missing models from a folder")).to_be_visible()
    page.get_by_role("textbox", name="Folder on the console machine").fill(str(folder))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_text("Uploaded 1 file(s).")).to_be_visible()
    expect(page.get_by_text("Not found in that folder:")).to_be_visible()
