"""A tool people live in (issue 19), in Chromium: forms keep their values across navigation and reload,
one live queue in the sidebar of every page with a confirmed Cancel, and the Gallery's "Just sent" line
updates by itself.

The console here runs simulated time at 0.1 (a 90 s cold start takes 9 s), slow enough to see a job
queued and running, fast enough for a test."""
import json
import re
import sqlite3

import pytest
from playwright.sync_api import expect

from tests.console_server import fast_config_text, running_console
from tests.e2e.ui import choose, open_page, safetensors_file

pytestmark = pytest.mark.e2e
expect.set_options(timeout=15_000)   # a Streamlit run on two busy cores can take a few seconds

PROMPT = "ava_tok, portrait in a greenhouse, living e2e"


@pytest.fixture(scope="module")
def console_data(tmp_path_factory):
    data = tmp_path_factory.mktemp("living-data")
    (data / "console.toml").write_text(fast_config_text(time_scale=0.1))
    return data


@pytest.fixture(scope="module")
def console_url(console_data):
    with running_console(data=console_data, config=console_data / "console.toml") as url:
        yield url


def fill_generate_form(page, count: str) -> None:
    choose(page, "Model preset", "Z-Image Turbo + LoRA")
    choose(page, "Character LoRA", "ava_v1.safetensors")
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill(PROMPT)
    prompt.press("Control+Enter")
    number = page.get_by_label("Number of images (one job each)")
    number.fill(count)
    number.press("Enter")
    expect(page.get_by_text("Preflight passed")).to_be_visible()


def expect_generate_form(page, count: str) -> None:
    expect(page.get_by_role("combobox", name="Model preset")).to_have_value("Z-Image Turbo + LoRA")
    expect(page.get_by_role("combobox", name="Character LoRA")).to_have_value("ava_v1.safetensors")
    expect(page.get_by_label("Prompt", exact=True)).to_have_value(PROMPT)
    expect(page.get_by_label("Number of images (one job each)")).to_have_value(count)


# Counts the script runs (the page's and its fragments') from now on, in window.__runs.
COUNT_RUNS = """() => {
  const app = document.querySelector("[data-testid='stApp']");
  window.__runs = 0;
  new MutationObserver(records => {
    for (const r of records) if (r.oldValue === "running") window.__runs += 1;
  }).observe(app, {attributes: true, attributeOldValue: true, attributeFilter: ["data-test-script-state"]});
}"""


def queue(page):
    return page.get_by_test_id("stSidebar")


def metric(page, label: str):
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")


def test_endpoint_live_counters_follow_a_cold_start_by_themselves(console_page, wait_idle):
    # First in this module: no image worker has run yet, so the warm-up job meets a cold start.
    page = console_page
    open_page(page, wait_idle, "Endpoints", "Endpoints")
    page.get_by_role("button", name="Warm up: send a minimal job").click()
    expect(page.get_by_text("Warm-up job")).to_be_visible()
    # No click or reload from here on: the tiles follow the worker from cold start to idle.
    expect(metric(page, "Initializing")).to_have_text("1", timeout=20_000)
    expect(metric(page, "Initializing")).to_have_text("0", timeout=60_000)


def test_generate_keeps_its_form_across_pages_and_a_reload(console_page, wait_idle):
    page = console_page
    open_page(page, wait_idle, "Generate", "Generate images")
    fill_generate_form(page, "2")
    wait_idle(page)

    open_page(page, wait_idle, "Gallery", "Gallery")
    open_page(page, wait_idle, "Generate", "Generate images")
    expect_generate_form(page, "2")

    page.reload()
    expect(page.get_by_role("heading", name="Generate images", exact=True)).to_be_visible()
    wait_idle(page)
    expect_generate_form(page, "2")


def test_one_live_queue_on_every_page_with_a_confirmed_cancel(console_page, wait_idle):
    page = console_page
    open_page(page, wait_idle, "LoRA training", "LoRA training")
    page.get_by_role("button", name="Start training").click()
    entry = queue(page).get_by_text("LoRA training · ava")
    expect(entry).to_have_count(1)

    # The queue is the same on another page and after a reload: it is read from the job store.
    open_page(page, wait_idle, "Jobs", "Jobs")
    expect(entry).to_have_count(1)
    page.reload()
    expect(queue(page).get_by_text("LoRA training · ava")).to_have_count(1)

    # Closed without an answer, the confirmation does not come back on the next page.
    queue(page).get_by_role("button", name="Cancel…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Cancel this job?")).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    open_page(page, wait_idle, "Gallery", "Gallery")
    page.wait_for_timeout(1_500)
    expect(dialog).to_have_count(0)
    expect(entry).to_have_count(1)

    queue(page).get_by_role("button", name="Cancel…").click()
    expect(dialog.get_by_text("Cancel this job?")).to_be_visible()
    # An open confirmation stays open through the queue's refreshes (every 2 s with only a training in flight).
    page.wait_for_timeout(2_500)
    expect(dialog.get_by_text("Cancel this job?")).to_be_visible()
    # What it loses: nothing while queued; the steps since the last checkpoint once it runs.
    expect(dialog.get_by_text(re.compile("nothing is lost|Training stops at step"))).to_be_visible()
    dialog.get_by_role("button", name="Cancel the job").click()
    expect(page.get_by_text("Cancel sent for LoRA training · ava")).to_be_visible()
    expect(queue(page).get_by_text("Nothing queued or running.")).to_be_visible(timeout=30_000)


def test_generate_hints_first_sends_once_per_double_click_and_again_per_press(console_page, wait_idle,
                                                                              console_data):
    page = console_page
    open_page(page, wait_idle, "Generate", "Generate images")
    expect(page.get_by_text("Type a prompt to generate.")).to_be_visible()
    expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
    fill_generate_form(page, "1")
    wait_idle(page)
    generate = page.get_by_role("button", name="Generate", exact=True)
    generate.dblclick()
    expect(page.get_by_text("queued for").or_(page.get_by_text("done on worker")).first).to_be_visible()
    wait_idle(page)
    page.wait_for_timeout(2_500)   # past the double-click window: the next press is deliberate
    assert jobs_sent(console_data, PROMPT) == 1
    generate.click()
    wait_for(lambda: jobs_sent(console_data, PROMPT) == 2, page)
    expect(page.get_by_text("done on worker")).to_have_count(1, timeout=60_000)   # for the Gallery tests


def wait_for(condition, page, timeout_ms: int = 15_000) -> None:
    for _ in range(timeout_ms // 250):
        if condition():
            return
        page.wait_for_timeout(250)
    assert condition()


def jobs_sent(data, prompt: str) -> int:
    with sqlite3.connect(data / "console.sqlite") as db:
        rows = db.execute("SELECT meta_json FROM jobs WHERE kind = 'generate'").fetchall()
    return sum(1 for (meta,) in rows if json.loads(meta).get("prompt") == prompt)


def test_gallery_just_sent_updates_by_itself(console_page, wait_idle):
    page = console_page
    open_page(page, wait_idle, "Gallery", "Gallery")
    page.get_by_role("button", name="Re-run").first.click()
    expect(page.get_by_role("heading", name="Just sent")).to_be_visible()
    # Above the pictures, where it is seen without scrolling past the whole grid.
    heading = page.get_by_role("heading", name="Just sent").bounding_box()
    assert heading["y"] < page.get_by_role("button", name="Re-run").first.bounding_box()["y"]
    expect(page.get_by_text("done on worker")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("queued for")).to_have_count(0)


def test_rerun_of_an_image_whose_lora_was_renamed_is_not_sent_and_opens_in_generate(console_page, wait_idle,
                                                                                     console_data):
    page = console_page
    loras = console_data / "localpod" / "volume" / "models" / "loras"
    open_page(page, wait_idle, "Gallery", "Gallery")
    expect(page.get_by_role("button", name="Re-run").first).to_be_enabled()
    (loras / "ava_v1.safetensors").rename(loras / "ava_v1_renamed.safetensors")
    try:
        page.get_by_role("button", name="Re-run").first.click()
        expect(page.get_by_role("heading", name="Not sent")).to_be_visible()
        expect(page.get_by_text("It would fail on the worker.")).to_be_visible()
        expect(page.get_by_text("ava_v1.safetensors").first).to_be_visible()
        expect(page.get_by_role("heading", name="Just sent")).to_have_count(0)
        page.get_by_role("button", name="Open in Generate").click()
        expect(page.get_by_role("heading", name="Generate images", exact=True)).to_be_visible()
        expect(page.get_by_role("combobox", name="Model preset")).to_have_value("Z-Image Turbo + LoRA")
        expect(page.get_by_label("Prompt", exact=True)).to_have_value(PROMPT)
    finally:
        (loras / "ava_v1_renamed.safetensors").rename(loras / "ava_v1.safetensors")


def test_an_upload_is_checked_and_a_lora_for_another_base_is_flagged_in_generate(console_page, wait_idle,
                                                                                 tmp_path):
    page = console_page
    open_page(page, wait_idle, "Models", "Models")
    page.get_by_role("tab", name="Upload").click()
    # Model files are named by their path on the console machine and streamed, never held in memory.
    path = page.get_by_role("textbox", name="Model file on the console machine")
    broken = tmp_path / "broken.safetensors"
    broken.write_text("<!DOCTYPE html><html>sign in to download</html>")
    path.fill(str(broken))
    path.press("Enter")
    upload = page.get_by_test_id("stBaseButton-primary").filter(has_text="Upload")
    expect(upload).to_be_enabled()
    upload.click()
    expect(page.get_by_text("Not uploaded: broken.safetensors is a web page")).to_be_visible()

    path.fill(str(safetensors_file(tmp_path / "zed_v1.safetensors", 4096)))
    path.press("Enter")
    wait_idle(page)
    choose(page, "Base model it was trained for", "Z-Image")
    upload.click()
    expect(page.get_by_text("safetensors · 4.1 kB · 1 tensors · U8 ×1")).to_be_visible()

    open_page(page, wait_idle, "Generate", "Generate images")
    choose(page, "Model preset", "FLUX.1-dev + LoRA")
    choose(page, "Character LoRA", "zed_v1.safetensors · Z-Image")
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill("zed_tok portrait")
    prompt.press("Control+Enter")
    expect(page.get_by_text("zed_v1.safetensors was trained for Z-Image (stated on upload)")).to_be_visible()
    expect(page.get_by_text("Show training candidates (_candidates/)")).to_be_visible()


def test_the_demo_set_is_ready_and_the_gallery_filters_by_kind(console_page, wait_idle):
    page = console_page
    open_page(page, wait_idle, "Training sets", "Training sets")
    expect(page.get_by_text("16 images, no problems found")).to_be_visible()
    open_page(page, wait_idle, "LoRA training", "LoRA training")
    expect(page.get_by_text("Not ready to train")).to_have_count(0)
    open_page(page, wait_idle, "Gallery", "Gallery")
    kind = page.get_by_role("combobox", name="Kind")
    expect(page.get_by_test_id("stMultiSelect").filter(has_text="Face swaps")).to_be_visible()
    page.get_by_test_id("stMultiSelect").get_by_role("button", name="Clear all").click()
    kind.click()
    page.get_by_role("option", name="Face swaps").click()
    page.keyboard.press("Escape")
    expect(page.get_by_text("No images here yet.")).to_be_visible()


def test_the_queue_slows_down_once_the_last_job_ends_while_another_page_is_open(console_page, wait_idle):
    """The queue looks twice a second while a job of the user's is in flight, and every 5 s otherwise: a job
    that ends while a page without a live view is open leaves no fast timer behind (an idle tab costs CPU)."""
    page = console_page
    open_page(page, wait_idle, "Generate", "Generate images")
    fill_generate_form(page, "5")   # five jobs, one after another: still in flight when the Jobs page opens
    wait_idle(page)
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(page.get_by_text("queued for").or_(page.get_by_text("done on worker")).first).to_be_visible()
    open_page(page, wait_idle, "Jobs", "Jobs")
    expect(queue(page).get_by_test_id("stText").filter(has_text=re.compile("^Image")).first).to_be_visible()
    expect(queue(page).get_by_text("Nothing queued or running.")).to_be_visible(timeout=60_000)
    wait_idle(page)
    page.evaluate(COUNT_RUNS)
    page.wait_for_timeout(3_000)
    assert page.evaluate("window.__runs") <= 1
