"""Face swap & character sheets in Chromium: scikit-image's astronaut as the face onto two target photos
(one with a face, one without), before/after side by side; then a labelled character sheet."""
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect
from skimage import data as skdata

from tests.e2e.ui import choose, open_page, screenshot

pytestmark = pytest.mark.e2e
expect.set_options(timeout=15_000)   # a Streamlit run on two busy cores can take a few seconds



def save_png(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path, "PNG")
    return path


def pixels(page, img) -> np.ndarray:
    """The picture an <img> shows, fetched the way the browser did."""
    body = page.request.get(img.get_attribute("src")).body()
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"), dtype=np.int16)


def uploader(page, label: str):
    return page.get_by_test_id("stFileUploader").filter(has_text=label).locator("input[type=file]")


def test_face_swap_onto_two_targets_then_a_character_sheet(console_page, wait_idle, tmp_path):
    page = console_page
    open_page(page, wait_idle, "Face swap & sheets", "Face swap & character sheets")
    expect(page.get_by_text("non-commercial research only")).to_be_visible()

    face = save_png(tmp_path / "astronaut.png", skdata.astronaut())
    # A different photo with a face: the astronaut mirrored and framed smaller on a coffee-cup background.
    street = skdata.coffee().copy()
    street[40:340, 240:540] = np.asarray(Image.fromarray(skdata.astronaut()[:, ::-1]).resize((300, 300)))
    with_face = save_png(tmp_path / "street.png", street)
    no_face = save_png(tmp_path / "cat.png", skdata.chelsea())
    uploader(page, "Source face").set_input_files(face)
    expect(page.get_by_text("astronaut.png")).to_be_visible()
    uploader(page, "Target photos").set_input_files([with_face, no_face])
    expect(page.get_by_text("cat.png")).to_be_visible()
    wait_idle(page)
    swap = page.get_by_role("button", name="Swap faces")
    expect(swap).to_be_enabled()
    swap.click()

    panel = page.get_by_role("tabpanel", name="Face swap")
    expect(panel.get_by_text("street.png · completed")).to_be_visible(timeout=30_000)
    expect(panel.get_by_text("cat.png · completed")).to_be_visible(timeout=30_000)
    expect(panel.get_by_test_id("stImageCaption").filter(has_text="Before")).to_have_count(2)
    expect(panel.get_by_test_id("stImageCaption").filter(has_text="After")).to_have_count(2)
    expect(panel.get_by_text("no face was detected in the target image")).to_be_visible()
    # Results only (Before / After), not the previews of the uploaded photos with their faces boxed.
    images = panel.get_by_test_id("stImageContainer").filter(has_text=re.compile(r"^(Before|After)$")).get_by_role("img")
    before, after = pixels(page, images.nth(0)), pixels(page, images.nth(1))
    assert before.shape == after.shape
    changed = np.abs(after - before).max(axis=2) > 40
    assert changed.sum() > 500  # the face was replaced ...
    assert not changed[:, :200].any() and not changed[360:].any()  # ... and the rest left alone
    assert np.array_equal(pixels(page, images.nth(2)), pixels(page, images.nth(3)))  # no face: unchanged
    screenshot(page, wait_idle, "special.png")

    page.get_by_role("tab", name="Character sheet").click()
    choose(page, "Character LoRA (models/loras/)", "ava_v1.safetensors")
    expect(page.get_by_label("Trigger word the LoRA was trained with")).to_have_value("ava")
    page.get_by_role("button", name="Generate sheet").click()
    sheet_panel = page.get_by_role("tabpanel", name="Character sheet")
    expect(sheet_panel.get_by_text("9 of 9 panels ready")).to_be_visible(timeout=60_000)
    expect(sheet_panel.get_by_text("Ava — character sheet")).to_be_visible()
    expect(sheet_panel.get_by_role("button", name="Download sheet (PNG)")).to_be_enabled()
    for label in ("Front", "Three-quarter", "Profile", "Back", "Smiling"):
        expect(sheet_panel.get_by_test_id("stImageCaption").filter(has_text=label)).to_have_count(1)
    sheet = sheet_panel.get_by_test_id("stImageContainer").filter(has_text="character sheet").get_by_role("img")
    width, height = sheet.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert width > 1000 and height > 700, (width, height)
