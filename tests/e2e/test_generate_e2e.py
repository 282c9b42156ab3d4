"""Generate and Gallery in Chromium: Z-Image Turbo with a character LoRA, four images, a 2×3 comparison
grid (LoRA strength × seed), and the images in the Gallery."""

import pytest
from playwright.sync_api import expect

from tests.e2e.ui import choose, open_page, screenshot

pytestmark = pytest.mark.e2e
expect.set_options(timeout=15_000)   # a Streamlit run on two busy cores can take a few seconds

PROMPT = "ava_tok, portrait on a harbour at golden hour, e2e"


def test_generate_four_images_a_grid_and_see_them_in_the_gallery(console_page, wait_idle):
    page = console_page
    open_page(page, wait_idle, "Generate", "Generate images")
    choose(page, "Model preset", "Z-Image Turbo + LoRA")
    expect(page.get_by_text("Tongyi-MAI Z-Image Turbo")).to_be_visible()
    choose(page, "Character LoRA", "ava_v1.safetensors")
    page.get_by_text("fixed", exact=True).click()
    seed = page.get_by_label("Fixed seed")
    seed.fill("4242")
    seed.press("Enter")
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill(PROMPT)
    prompt.press("Control+Enter")
    expect(page.get_by_text("Preflight passed")).to_be_visible()
    wait_idle(page)

    page.get_by_role("button", name="Generate", exact=True).click()
    results = page.get_by_test_id("stImageContainer")
    expect(results).to_have_count(4, timeout=30_000)
    expect(page.get_by_text("done on worker")).to_have_count(4)
    expect(page.get_by_role("button", name="Cancel unfinished")).to_have_count(0)
    wait_idle(page)
    screenshot(page, wait_idle, "generate.png")

    page.get_by_role("tab", name="Comparison grid").click()
    page.get_by_label("LoRA strength — values separated by commas").fill("0.6, 1.0")
    seeds = page.get_by_label("Seed — values separated by commas")
    seeds.fill("11, 22, 33")
    seeds.press("Control+Enter")
    wait_idle(page)
    page.get_by_role("button", name="Build grid").click()
    expect(page.get_by_role("button", name="Download grid (PNG)")).to_be_enabled(timeout=30_000)
    expect(page.get_by_text("Seed × LoRA strength — Z-Image Turbo + LoRA: 6 completed")).to_be_visible()
    grid = page.get_by_role("tabpanel", name="Comparison grid").get_by_role("img")
    # One composed picture: two columns and three rows of cells beside a label column.
    width, height = grid.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert width > 2 * 240 and height > 3 * 240, (width, height)
    assert height > width

    open_page(page, wait_idle, "Gallery", "Gallery")
    choose(page, "Character / LoRA", "ava")
    for value in (4242, 4243, 4244, 4245, 11, 22, 33):
        expect(page.get_by_test_id("stImageCaption").filter(has_text=f"seed {value} · ava_v1")).not_to_have_count(0)
    expect(page.get_by_role("button", name="Re-run").first).to_be_enabled()
    screenshot(page, wait_idle, "gallery.png")
