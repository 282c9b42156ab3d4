"""Input images end to end in Chromium on the simulator: an own img2img workflow with an uploaded start
picture, a pose-guided character sheet (ControlNet, the console's OpenPose skeletons) and a generation
from a reference image (IP-Adapter)."""
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect
from skimage import data as skdata

from tests.console_server import fast_config_text, running_console
from tests.e2e.ui import choose, open_page, screenshot

pytestmark = pytest.mark.e2e
expect.set_options(timeout=15_000)   # a Streamlit run on two busy cores can take a few seconds

ROOT = Path(__file__).resolve().parents[2]
IMG2IMG = ROOT / "docs" / "workflows" / "sdxl_img2img_api.json"
CONTROLNET = "models/controlnet/FLUX.1-dev-ControlNet-Union-Pro.safetensors"


@pytest.fixture(scope="module")
def console_data(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("special-modes")


@pytest.fixture(scope="module")
def console_url(console_data):
    (console_data / "console.toml").write_text(fast_config_text())
    with running_console(data=console_data, config=console_data / "console.toml") as url:
        yield url


def save_png(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path, "PNG")
    return path


def uploader(page, label: str):
    return page.get_by_test_id("stFileUploader").filter(has_text=label).locator("input[type=file]")


def shown_pixels(page, img) -> np.ndarray:
    body = page.request.get(img.get_attribute("src")).body()
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def test_own_img2img_workflow_with_an_uploaded_picture(console_page, wait_idle, tmp_path):
    page = console_page
    open_page(page, wait_idle, "Generate", "Generate images")
    page.get_by_role("tab", name="Own workflow").click()
    uploader(page, "Export (API)").set_input_files(IMG2IMG)
    expect(page.get_by_text("reads 1 input image(s) (start.png)")).to_be_visible()
    page.get_by_label("Save as").fill("Watercolour img2img")
    page.get_by_label("Save as").press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Save workflow").click()
    expect(page.get_by_text("now in the Model preset list")).to_be_visible()
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill("a watercolour of a coffee cup")
    prompt.press("Control+Enter")  # the next run lists the saved workflow among the presets
    wait_idle(page)

    choose(page, "Model preset", "Watercolour img2img")
    # .first: while the form reruns Streamlit may briefly keep the previous run's copy of the list
    expect(page.get_by_text("needs an image: upload a PNG, JPEG or WEBP file").first).to_be_visible()
    uploader(page, "Start picture (LoadImage node 2 reads start.png)").set_input_files(
        save_png(tmp_path / "coffee.png", skdata.coffee()))
    wait_idle(page)   # the upload's run is over: no second copy of the form is still on the page
    count = page.get_by_label("Number of images (one job each)")
    count.fill("1")
    count.press("Enter")
    expect(page.get_by_text("Preflight passed")).to_be_visible()
    wait_idle(page)
    page.get_by_role("button", name="Generate", exact=True).click()
    panel = page.get_by_role("tabpanel", name="Images")
    expect(panel.get_by_test_id("stImageContainer")).to_have_count(1, timeout=30_000)
    expect(panel.get_by_text("done on worker")).to_have_count(1)
    screenshot(page, wait_idle, "own-workflow-img2img.png")


def test_pose_guided_character_sheet(console_page, wait_idle, console_data):
    volume = console_data / "localpod" / "volume"
    (volume / CONTROLNET).parent.mkdir(parents=True, exist_ok=True)
    (volume / CONTROLNET).write_bytes(b"simulated FLUX union ControlNet")
    page = console_page
    open_page(page, wait_idle, "Face swap & sheets", "Face swap & character sheets")
    page.get_by_role("tab", name="Character sheet").click()
    choose(page, "Character LoRA (models/loras/)", "ava_v1.safetensors")
    page.get_by_text("Guide every panel with a pose image").click()
    sheet_panel = page.get_by_role("tabpanel", name="Character sheet")
    expect(sheet_panel.get_by_test_id("stImageCaption").filter(has_text="drawn pose")).to_have_count(9)
    skeleton = shown_pixels(page, sheet_panel.get_by_test_id("stImageContainer").first.get_by_role("img"))
    assert (skeleton.max(axis=2) == 0).mean() > 0.8 and (skeleton == [255, 85, 0]).all(axis=2).any()
    wait_idle(page)
    page.get_by_role("button", name="Generate sheet").click()
    expect(sheet_panel.get_by_text("9 of 9 panels ready")).to_be_visible(timeout=60_000)
    expect(sheet_panel.get_by_text("Ava — character sheet")).to_be_visible()
    expect(sheet_panel.get_by_role("button", name="Download sheet (PNG)")).to_be_enabled()
    screenshot(page, wait_idle, "special-pose-sheet.png")


def test_generation_from_a_reference_image(console_page, wait_idle, tmp_path):
    page = console_page
    open_page(page, wait_idle, "Face swap & sheets", "Face swap & character sheets")
    page.get_by_role("tab", name="Reference image").click()
    panel = page.get_by_role("tabpanel", name="Reference image")
    expect(panel.get_by_role("button", name="Generate with reference")).to_be_disabled()
    uploader(page, "Reference image").set_input_files(save_png(tmp_path / "astronaut.png", skdata.astronaut()))
    expect(panel.get_by_test_id("stImageCaption").filter(has_text="Reference")).to_have_count(1)
    prompt = panel.get_by_label("Prompt", exact=True)
    prompt.fill("a portrait in a sunlit garden")
    prompt.press("Control+Enter")
    wait_idle(page)
    panel.get_by_role("button", name="Generate with reference").click()
    expect(panel.get_by_text("seed 77 · completed")).to_be_visible(timeout=30_000)
    expect(panel.get_by_text("seed 78 · completed")).to_be_visible(timeout=30_000)
    expect(panel.get_by_test_id("stImageCaption").filter(has_text="seed 7")).to_have_count(2)
    screenshot(page, wait_idle, "special-reference.png")
