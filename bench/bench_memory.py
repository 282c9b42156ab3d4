"""Memory benchmark (issue 18, goal 5): the console's RSS with 10 open tabs and a year of history
stays < 500 MB.

Starts the console the README's way on the given CONSOLE_DATA (make it with bench/make_history.py),
opens 10 tabs in Chromium (one per page: Overview, Jobs, Endpoints, Models, Costs, Generate, Gallery,
Face swap & sheets, Training sets, LoRA training) and keeps them open for --minutes; every
--reload-s one tab is reloaded in turn (a new session, as a person coming back to it). RSS of the
console's process tree is sampled every 10 s. Prints:

    memory_rss_start_mb (after all tabs opened)  memory_rss_end_mb  memory_rss_max_mb
    memory_rss_slope_mb_per_min (second half)  memory_minutes  memory_tabs

    python bench/bench_memory.py --data bench/out/history [--minutes 10] [--reload-s 30]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench_soak import slope_per_min
from harness import PAGES, ROOT, browser, console, emit, load_average, tree_rss_mb, wait_idle
from playwright.sync_api import sync_playwright

TABS = ["", "jobs", "endpoints", "models", "costs", "generate", "gallery", "special", "datasets", "training"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "out" / "history")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--reload-s", type=float, default=30)
    args = parser.parse_args()
    with console(args.data, log_name="memory.log") as (url, process), sync_playwright() as pw:
        chromium = browser(pw)
        context = chromium.new_context()
        tabs = []
        for path in TABS:
            tab = context.new_page()
            tab.goto(f"{url}/{path}")
            tab.get_by_role("heading", name=PAGES[path], exact=True).first.wait_for(timeout=180_000)
            wait_idle(tab)
            tabs.append(tab)
        t0 = time.monotonic()
        samples = [(0.0, tree_rss_mb(process))]
        next_reload, turn = t0 + args.reload_s, 0
        while time.monotonic() - t0 < args.minutes * 60:
            time.sleep(10)
            if time.monotonic() >= next_reload:
                tab = tabs[turn % len(tabs)]
                tab.reload()
                tab.get_by_role("heading", name=PAGES[TABS[turn % len(tabs)]], exact=True).first.wait_for(timeout=180_000)
                turn += 1
                next_reload += args.reload_s
            samples.append((time.monotonic() - t0, tree_rss_mb(process)))
            print(f"# {samples[-1][0] / 60:.1f} min: {samples[-1][1]:.1f} MB", file=sys.stderr, flush=True)
        chromium.close()
    duration = samples[-1][0]
    emit("memory_tabs", len(TABS))
    emit("memory_minutes", duration / 60)
    emit("memory_reloads", turn)
    emit("memory_rss_start_mb", samples[0][1])
    emit("memory_rss_end_mb", samples[-1][1])
    emit("memory_rss_max_mb", max(m for _, m in samples))
    emit("memory_rss_slope_mb_per_min", slope_per_min([s for s in samples if s[0] >= duration / 2]))
    emit("memory_load_avg_1m", load_average())


if __name__ == "__main__":
    main()
