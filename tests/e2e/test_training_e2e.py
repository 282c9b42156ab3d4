"""Training sets and LoRA training in Chromium, from upload to promote: a set of 20 generated photos plus
one that fails the checks and is removed, a saved version, a 1,000-step run followed live, three
checkpoints compared in a grid on Generate, one promoted and then offered in Generate's LoRA list."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps
from playwright.sync_api import expect
from skimage import data as skdata

from tests.e2e.ui import choose, open_page, screenshot, scroll_to, settle

pytestmark = pytest.mark.e2e
expect.set_options(timeout=15_000)   # a Streamlit run on two busy cores can take a few seconds

NAME, TRIGGER = "e2echar", "e2etok"


def fill(page, label: str, value: str) -> None:
    field = page.get_by_role("spinbutton", name=label)
    field.fill(value)
    field.press("Enter")
    expect(field).to_have_value(value)


def row(table, text: str):
    """The row of an st.dataframe (a canvas, mirrored in a hidden table for assistive technology) that
    has a cell reading exactly `text`."""
    return table.locator("tr").filter(has=table.page.get_by_text(text, exact=True))


def photo(seed: int) -> Image.Image:
    """A sharp 1024-px photo with one face: the astronaut, framed differently on a different background
    each time, so no two photos are near duplicates."""
    rng = np.random.default_rng(seed)
    canvas = Image.new("RGB", (1024, 1024), tuple(int(v) for v in rng.integers(40, 220, 3)))
    draw = ImageDraw.Draw(canvas)
    for _ in range(14):
        x, y = (int(v) for v in rng.integers(0, 1024, 2))
        w, h = (int(v) for v in rng.integers(60, 400, 2))
        draw.rectangle((x, y, x + w, y + h), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    side = int(rng.integers(560, 760))
    person = Image.fromarray(skdata.astronaut()).resize((side, side), Image.LANCZOS)
    if seed % 2:
        person = ImageOps.mirror(person)
    canvas.paste(person, tuple(int(v) for v in rng.integers(0, 1024 - side, 2)))
    return canvas


def training_photos(folder: Path) -> list[Path]:
    files = []
    for i in range(20):
        files.append(folder / f"{NAME}{i:02d}.jpg")
        photo(i).save(files[-1], "JPEG", quality=90)
        files.append(folder / f"{NAME}{i:02d}.txt")
        files[-1].write_text(f"{TRIGGER}, portrait photo")
    files.append(folder / "thumbnail.jpg")   # 400 px: below the 512-px minimum, blocks training
    photo(99).resize((400, 400)).save(files[-1], "JPEG", quality=90)
    files.append(folder / "thumbnail.txt")
    files[-1].write_text(f"{TRIGGER}, small portrait")
    return files


def test_training_set_to_promoted_lora(console_page, wait_idle, tmp_path):
    page = console_page
    open_page(page, wait_idle, "Training sets", "Training sets")
    choose(page, "Training set", "➕ New training set")
    page.get_by_role("textbox", name="Name", exact=True).fill(NAME)
    page.get_by_role("textbox", name="Trigger word").fill(TRIGGER)
    page.get_by_role("button", name="Create set").click()
    expect(page.get_by_role("combobox", name="Training set")).to_have_value(NAME)
    wait_idle(page)

    page.get_by_test_id("stFileUploader").locator("input[type=file]").set_input_files(training_photos(tmp_path))
    page.get_by_role("button", name="Add to the set").click()
    expect(page.get_by_text(f"Trigger word {TRIGGER} · 21 images")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("21 images: 1 blocking problem(s), 0 warning(s)")).to_be_visible()
    findings = page.get_by_test_id("stTable").filter(has_text="finding")
    expect(findings.get_by_text("thumbnail.jpg is 400×400; the short side must be at least 512 px.")).to_be_visible()
    expect(page.get_by_text("thumbnail.jpg ✖ too small")).to_be_visible()
    wait_idle(page)

    # Tick "remove" on the failing photo, the captions table's last row, with the keyboard: the grid is a
    # canvas, so a click is the way into it.
    captions = page.get_by_test_id("stDataFrame").first
    captions.locator(".dvn-scroller").click(position={"x": 30, "y": 52})
    page.keyboard.press("Control+ArrowDown")
    page.keyboard.press(" ")
    expect(row(captions, "thumbnail.jpg").locator("td").first).to_have_text("true")
    page.get_by_role("button", name="Apply table edits").click()
    expect(page.get_by_text(f"Trigger word {TRIGGER} · 20 images")).to_be_visible()
    expect(page.get_by_text("20 images, no problems found")).to_be_visible()
    expect(page.get_by_text("thumbnail.jpg")).to_have_count(0)
    page.get_by_role("textbox", name="What changed (optional)").fill("first set")
    page.get_by_role("button", name="Save as new version").click()
    expect(page.get_by_role("combobox", name="Version")).to_have_value("v1")
    expect(page.get_by_text("editing v1")).to_be_visible()
    screenshot(page, wait_idle, "datasets.png")

    open_page(page, wait_idle, "LoRA training", "LoRA training")
    choose(page, "Training set", NAME)
    expect(page.get_by_text(f"{NAME} v1: 20 images, no problems found — ready to train.")).to_be_visible()
    choose(page, "Base model", "Z-Image Turbo (with training adapter)")
    expect(page.get_by_text("The training adapter keeps Turbo's 8-step behaviour")).to_be_visible()
    steps = page.get_by_role("spinbutton", name="Steps")
    for _ in range(3):
        fill(page, "Steps", "1000")   # a new field: each base model has its own
        wait_idle(page)
        # Seen once in ~20 CI runs: the field went back to the preset's 3000 after the rerun that took
        # 1000 (suspected: the sidebar queue's timed fragment rerun racing it). A person sees the number
        # change back before pressing Start; so does the test, and types it again.
        if steps.input_value() == "1000":
            break
    expect(page.get_by_test_id("stMetric").filter(has_text="Estimated cost")).to_contain_text("$")
    page.get_by_role("button", name="Start training").click()

    expect(page.get_by_text("step 1000 / 1000")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Completed ·")).to_be_visible()
    expect(page.get_by_test_id("stProgress")).to_be_visible()
    expect(page.locator(".js-plotly-plot")).to_have_count(1)   # the loss curve
    # Samples side by side: the last two rounds (750, 1000) for each of the two prompts; one opens large.
    expect(page.get_by_test_id("stImageCaption").filter(has_text="step 1000")).to_have_count(2)
    expect(page.get_by_test_id("stImageCaption").filter(has_text="step 750")).to_have_count(2)
    page.get_by_role("button", name="🔍").first.click()
    expect(page.get_by_role("dialog").get_by_text("Sample image")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    checkpoints = page.get_by_test_id("stDataFrame").filter(has_text="sha256")
    for step in (250, 500, 750, 1000):
        expect(checkpoints.get_by_text(str(step), exact=True)).to_be_attached()
    screenshot(page, wait_idle, "training.png")

    page.get_by_role("button", name="Compare in a grid").click()
    expect(page.get_by_text("3 checkpoints are ready")).to_be_visible()

    open_page(page, wait_idle, "Generate", "Generate images")
    choose(page, "Model preset", "Z-Image Turbo + LoRA")
    expect(page.get_by_text("Tongyi-MAI Z-Image Turbo")).to_be_visible()
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill(f"{TRIGGER}, portrait photo, soft window light")
    prompt.press("Control+Enter")
    expect(page.get_by_text("Preflight passed")).to_be_visible()
    page.get_by_role("tab", name="Comparison grid").click()
    expect(page.get_by_role("combobox", name="Columns (X)")).to_have_value("LoRA")
    chosen = page.get_by_test_id("stMultiSelect").filter(has_text="LoRA files")
    for step in (500, 750):
        expect(chosen).to_contain_text(f"{NAME}_{step:09d}.safetensors")
    expect(chosen).to_contain_text(f"{NAME}.safetensors")
    choose(page, "Rows (Y)", "LoRA strength")
    strengths = page.get_by_label("LoRA strength — values separated by commas")
    expect(strengths).to_be_visible()
    strengths.fill("0.8, 1.0")
    strengths.press("Control+Enter")
    wait_idle(page)
    page.get_by_role("button", name="Build grid").click()
    expect(page.get_by_role("button", name="Download grid (PNG)")).to_be_enabled(timeout=30_000)
    expect(page.get_by_text("LoRA strength × LoRA — Z-Image Turbo + LoRA: 6 completed")).to_be_visible()

    open_page(page, wait_idle, "LoRA training", "LoRA training")
    choose(page, "Training set", NAME)
    expect(page.get_by_text("step 1000 / 1000")).to_be_visible()
    choose(page, "Checkpoint to promote", "750")
    expect(page.get_by_role("textbox", name="As version")).to_have_value("v1")
    page.get_by_role("button", name="Promote").click()
    expect(page.get_by_text(f"Promoted step 750 to models/loras/{NAME}_v1.safetensors")).to_be_visible()

    # Straight after promoting, as staff would: the new LoRA must be offered at once.
    open_page(page, wait_idle, "Generate", "Generate images")
    lora = page.get_by_role("combobox", name="Character LoRA")
    settle(page)
    scroll_to(page, lora)
    lora.fill(f"{NAME}_v1")
    expect(page.get_by_role("option", name=f"{NAME}_v1.safetensors · Z-Image", exact=True)).to_be_visible()
