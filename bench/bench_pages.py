"""Page benchmark (issue 18, goal 2): every page's first render < 1 s and repeat < 0.3 s with a
year of history (make it with bench/make_history.py).

Starts the console the README's way on the given CONSOLE_DATA, then per page, in Chromium:
  first  — a new browser session opens the page's URL: time from navigation until the page's
           title is shown and Streamlit reports the script idle (data-test-script-state);
  repeat — in that same session, from another page, the page is opened again through the
           sidebar: time from the click until its heading is shown and that run has finished.
With the machine shared, wall time depends on the load; the console's own CPU seconds for each
(its process tree, measured around the same interval) are printed beside it.
Each is repeated --runs times (new session each run) and the median printed. Before measuring,
every page is opened once (the console's first start-up and caches are not what is measured).

    python bench/bench_pages.py --data bench/out/history [--runs 5] [--pages costs,jobs]
"""
from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from harness import PAGES, ROOT, WATCH_RUNS, browser, console, emit, load_average, median, tree_cpu_s
from playwright.sync_api import sync_playwright

NAV_TITLES = {"": "Overview", "generate": "Generate", "special": "Face swap & sheets", "audit": "Audit"}
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def open_page(context, url: str, title: str) -> tuple[object, float]:
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url)
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=120_000)
    page.wait_for_selector(IDLE, timeout=120_000)
    return page, time.perf_counter() - started


def reopen(page, title: str, heading: str) -> float:
    """From another page of the same session, open the page again through the sidebar: seconds
    until its heading is shown and that run has finished."""
    nav = page.get_by_test_id("stSidebarNav")
    more = nav.get_by_text(re.compile(r"^View \d+ more$"))
    if more.count():  # Streamlit folds a long navigation after ten entries
        more.click()
    away = "Jobs" if title != "Jobs" else "Overview"
    page.evaluate(WATCH_RUNS)
    nav.get_by_text(away, exact=True).click()
    page.wait_for_function("window.__runsFinished >= 1", timeout=120_000, polling="raf")
    page.wait_for_selector(IDLE, timeout=120_000)
    page.evaluate(WATCH_RUNS)
    started = time.perf_counter()
    nav.get_by_text(title, exact=True).click()
    page.wait_for_function("window.__runsFinished >= 1", timeout=120_000, polling="raf")
    page.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=120_000)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "out" / "history")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pages", default=",".join(p or "overview" for p in PAGES))
    args = parser.parse_args()
    wanted = [("" if p == "overview" else p) for p in args.pages.split(",")]
    with console(args.data, log_name="pages.log") as (url, process), sync_playwright() as pw:
        chromium = browser(pw)
        warm = chromium.new_context()
        for path in wanted:  # first start-up of the console and its background indexes
            open_page(warm, f"{url}/{path}", PAGES[path])[0].close()
        warm.close()
        worst_first = worst_repeat = 0.0
        loads = []
        for path in wanted:
            firsts, repeats, first_cpu, repeat_cpu = [], [], [], []
            for _ in range(args.runs):
                context = chromium.new_context()
                cpu = tree_cpu_s(process)
                page, seconds = open_page(context, f"{url}/{path}", PAGES[path])
                firsts.append(seconds)
                first_cpu.append(tree_cpu_s(process) - cpu)
                cpu = tree_cpu_s(process)
                repeats.append(reopen(page, NAV_TITLES.get(path, PAGES[path]), PAGES[path]))
                repeat_cpu.append(tree_cpu_s(process) - cpu)
                context.close()
                loads.append(load_average())
            name = path or "overview"
            emit(f"page_{name}_first_s", median(firsts))
            emit(f"page_{name}_repeat_s", median(repeats))
            emit(f"page_{name}_first_console_cpu_s", median(first_cpu))
            emit(f"page_{name}_repeat_console_cpu_s", median(repeat_cpu))
            worst_first = max(worst_first, median(firsts))
            worst_repeat = max(worst_repeat, median(repeats))
        emit("pages_worst_first_s", worst_first)
        emit("pages_worst_repeat_s", worst_repeat)
        emit("pages_load_avg_1m", median(loads))
        chromium.close()


if __name__ == "__main__":
    main()
