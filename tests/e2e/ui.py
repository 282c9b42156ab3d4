"""Shared Playwright steps for the console's browser tests: waits for a settled layout, picks options
by typing like a user, and takes full-page screenshots into docs/screenshots/."""
import os
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[2]
# A test run leaves the committed pictures alone; UPDATE_SCREENSHOTS=1 refreshes docs/ on purpose.
DOCS = ROOT / "docs" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else ROOT / "test-results"
SHOTS = DOCS / "screenshots"


def open_page(page, wait_idle, title: str, heading: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    wait_idle(page)
    settle(page)


def settle(page) -> None:
    """Every lazily loaded element (metrics, charts, tables) and image is drawn, so the layout no longer
    shifts: a shift scrolls the page, and a scroll closes an open drop-down list."""
    page.wait_for_function("""() => {
        const shown = id => [...document.querySelectorAll(`[data-testid=${id}]`)].filter(e => e.checkVisibility());
        return !document.querySelector("[data-testid=stSkeletonElement], [data-testid=stSkeleton]")
            && shown("stPlotlyChart").every(e => e.querySelector(".js-plotly-plot"))
            && shown("stDataFrame").every(e => e.querySelector("canvas"))
            && [...document.images].every(i => i.complete);
    }""")


def scroll_to(page, locator) -> None:
    """Bring it to the middle of the screen and let the scroll event pass: a drop-down list that opens
    during a scroll closes, and one at the bottom edge opens off screen."""
    locator.evaluate("e => e.scrollIntoView({block: 'center'})")
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


def choose(page, label: str, option: str) -> None:
    box = page.get_by_role("combobox", name=label)
    if box.input_value() == option:
        return
    for attempt in range(3):
        settle(page)
        scroll_to(page, box)
        box.fill(option)  # type to search, as a user would in a long list
        if box.get_attribute("aria-expanded") != "true":
            box.press("ArrowDown")   # the list closed meanwhile (a scroll, a rerun): open it again
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=10_000)
            break
        except PlaywrightTimeoutError:
            # A rerun that lands meanwhile (the page answering the previous step) redraws the page and the
            # list closes under the pointer; a person opens it again.
            if attempt == 2:
                raise
    expect(box).to_have_value(option)


def screenshot(page, wait_idle, name: str) -> None:
    """The whole page, 1400 px wide: Streamlit scrolls inside stMain, so the viewport grows to its height."""
    wait_idle(page)
    size = page.viewport_size
    page.set_viewport_size({"width": 1400, "height": size["height"]})
    settle(page)
    page.mouse.move(0, 0)
    height = page.get_by_test_id("stMain").evaluate("e => e.scrollHeight")
    page.set_viewport_size({"width": 1400, "height": height})
    page.wait_for_function("h => document.querySelector('[data-testid=stMain]').clientHeight >= h", arg=height)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))
    page.set_viewport_size(size)


def safetensors_file(path: Path, total_bytes: int, metadata: dict | None = None) -> Path:
    """A valid safetensors file of exactly `total_bytes` (one U8 tensor filling the data section): the
    console refuses an upload named .safetensors whose header does not parse."""
    import json
    import struct
    for data in range(total_bytes, 0, -1):
        header = {"weight": {"dtype": "U8", "shape": [data], "data_offsets": [0, data]}}
        if metadata:
            header["__metadata__"] = metadata
        text = json.dumps(header).encode()
        if 8 + len(text) + data == total_bytes:
            path.write_bytes(struct.pack("<Q", len(text)) + text + b"\0" * data)
            return path
    raise ValueError(f"no safetensors file of {total_bytes} bytes")
