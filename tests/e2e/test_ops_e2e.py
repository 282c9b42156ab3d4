"""Operations in Chromium: Models (find a LoRA, what used it, the misplaced-file flag, upload with
progress), Endpoints (cold-start percentiles, max workers changed through a confirmed "apply"), and the
screenshots of the Operate pages for the README and docs/screenshots/."""
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.ui import DOCS, choose, open_page, safetensors_file, screenshot, settle

pytestmark = pytest.mark.e2e
expect.set_options(timeout=15_000)   # a Streamlit run on two busy cores can take a few seconds



def cell(table, text: str, exact: bool = True):
    """A cell of an st.dataframe: it draws on a canvas and mirrors its visible rows in a hidden
    table for assistive technology, which is what this reads."""
    return table.locator("td").filter(has=table.page.get_by_text(text, exact=exact))


def row(table, text: str):
    """The row that has a cell reading exactly `text`."""
    return table.locator("tr").filter(has=table.page.get_by_text(text, exact=True))


def test_models_find_a_lora_see_its_use_the_misplaced_flag_and_upload(console_page, wait_idle, tmp_path):
    page = console_page
    # Something to be "used by": one image with ava_v2, made the way staff make it.
    open_page(page, wait_idle, "Generate", "Generate images")
    choose(page, "Model preset", "Z-Image Turbo + LoRA")
    expect(page.get_by_text("Tongyi-MAI Z-Image Turbo")).to_be_visible()
    choose(page, "Character LoRA", "ava_v2.safetensors")
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill("ava_tok, ops check")
    prompt.press("Control+Enter")
    expect(page.get_by_text("Preflight passed")).to_be_visible()
    count = page.get_by_role("spinbutton", name="Number of images")
    count.fill("1")
    count.press("Enter")
    expect(count).to_have_value("1")
    wait_idle(page)
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(page.get_by_text("done on worker")).to_have_count(1, timeout=30_000)

    open_page(page, wait_idle, "Models", "Models")
    flagged = page.get_by_test_id("stMetric").filter(has_text="Flagged files").get_by_test_id("stMetricValue")
    expect(flagged).to_have_text(re.compile(r"^[1-9]\d*$"))
    search = page.get_by_role("textbox", name="Search by name or path")
    search.fill("ava_v")
    search.press("Enter")
    files = page.get_by_test_id("stDataFrame").first
    expect(cell(files, "ava_v2.safetensors")).to_have_count(1)
    expect(cell(files, "ava_v1.safetensors")).to_have_count(1)
    expect(cell(files, "milo_v1.safetensors")).to_have_count(0)
    expect(page.get_by_text("(of 1, 2 files)")).to_be_visible()
    choose(page, "File details", "models/loras/ava_v2.safetensors")
    used_by = page.get_by_test_id("stDataFrame").filter(has_text="used by")
    expect(cell(used_by, "(generate)", exact=False)).to_have_count(1)
    expect(cell(used_by, "image job", exact=False)).to_have_count(1)
    screenshot(page, wait_idle, "models.png")

    page.get_by_role("tab", name="Flags").click()
    flags = page.get_by_test_id("stDataFrame").filter(has_text="problem")
    trap = row(flags, "models/diffusion_models/flux1-schnell.safetensors")
    expect(trap).to_contain_text("The stock worker does not scan models/diffusion_models/")
    choose(page, "Fix a misplaced file", "models/diffusion_models/flux1-schnell.safetensors")
    page.get_by_role("button", name="Move it where the worker looks…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("textbox", name="New path")).to_have_value("models/unet/flux1-schnell.safetensors")
    page.keyboard.press("Escape")   # seen, not moved: the seeded trap stays for the other flows
    expect(dialog).to_have_count(0)

    page.get_by_role("tab", name="Upload").click()
    model = safetensors_file(tmp_path / "e2e_upload.safetensors", 65_536)
    path = page.get_by_role("textbox", name="Model file on the console machine")
    path.fill(str(model))
    path.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_text("Uploaded models/loras/e2e_upload.safetensors (65.5 kB): safetensors")).to_be_visible()
    expect(page.get_by_test_id("stProgress").filter(has_text="65,536 / 65,536 bytes")).to_be_visible()

    page.get_by_role("tab", name="Browse").click()
    search.fill("e2e_upload")
    search.press("Enter")
    expect(cell(files, "e2e_upload.safetensors")).to_have_count(1)


def apply_max_workers(page, wait_idle, value: str) -> None:
    """Edit Max workers, press Apply…, read the change in the confirmation dialog and confirm it."""
    form = page.get_by_test_id("stForm")
    form.get_by_role("spinbutton", name="Max workers").fill(value)
    form.get_by_role("button", name="Apply…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="Apply settings to the live endpoint")).to_be_visible()
    expect(cell(dialog, "Max workers")).to_have_count(1)
    expect(cell(dialog, value)).not_to_have_count(0)
    dialog.get_by_role("button", name="Apply", exact=True).click()
    expect(dialog).to_have_count(0)
    wait_idle(page)


def test_endpoints_cold_starts_and_max_workers_through_apply(console_page, wait_idle):
    page = console_page
    open_page(page, wait_idle, "Endpoints", "Endpoints")
    expect(page.get_by_text("console-image ·")).to_be_visible()
    cold = page.get_by_test_id("stMetric").filter(has_text="Hit a cold start")
    expect(cold.get_by_test_id("stMetricValue")).to_have_text(re.compile(r"^\d+%$"))
    percentiles = page.get_by_test_id("stDataFrame").filter(has_text="p98 s")
    for column in ("p50 s", "p90 s", "p98 s"):
        expect(percentiles.locator("th").filter(has_text=column)).to_have_count(1)
    cold_starts = row(percentiles, "delayTime of cold starts").locator("td")
    expect(cold_starts).to_have_count(5)
    p50, p90, p98, jobs = (float(v) for v in cold_starts.all_inner_texts()[1:])
    assert 0 < p50 <= p90 <= p98 and jobs > 0
    screenshot(page, wait_idle, "endpoints.png")
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(0)   # a chart is drawn when its tab is chosen
    page.get_by_role("tab", name="Cold starts").click()
    expect(page.get_by_test_id("stPlotlyChart").locator(".js-plotly-plot")).to_have_count(1)
    expect(page.get_by_text("Cold starts per day")).to_be_visible()
    wait_idle(page)

    settings = page.get_by_test_id("stDataFrame").filter(has_text="console.toml")
    max_workers = row(settings, "Max workers").locator("td")
    expect(max_workers).to_have_count(4)
    declared = max_workers.nth(1).inner_text()
    expect(max_workers).to_have_text(["Max workers", declared, declared, ""])
    raised = str(int(declared) + 2)
    apply_max_workers(page, wait_idle, raised)
    expect(max_workers).to_have_text(["Max workers", declared, raised, "⚠️ differs"])
    expect(page.get_by_text("1 setting(s) differ from console.toml.")).to_be_visible()

    apply_max_workers(page, wait_idle, declared)   # back to what console.toml declares
    expect(page.get_by_text("The live endpoint matches console.toml.")).to_be_visible()
    expect(max_workers).to_have_text(["Max workers", declared, declared, ""])


def test_operate_pages_render_and_are_photographed(console_page, wait_idle):
    page = console_page
    page.set_viewport_size({"width": 1400, "height": 900})
    settle(page)
    expect(page.get_by_role("heading", name="console-special")).to_be_visible()
    expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
    page.mouse.move(0, 0)
    DOCS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS / "screenshot.png"))   # the README's picture: the first screen as is
    screenshot(page, wait_idle, "overview.png")
    for title, heading in (("Jobs", "Jobs"), ("Audit", "Audit trail")):
        open_page(page, wait_idle, title, heading)
        expect(page.get_by_test_id("stException")).to_have_count(0)
        expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
        screenshot(page, wait_idle, f"{title.lower()}.png")
