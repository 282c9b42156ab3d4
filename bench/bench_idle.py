"""Idle benchmark (issue 18, goal 1): an idle console with one tab on Overview costs < 2 % of a core.

Starts the console the README's way (`bash scripts/run.sh`, here on a free port with its own data
folder), opens Overview in Chromium, waits until the page is idle and the demo seed is done, then
measures the CPU time of the console's process tree (the console and its in-process simulator) for
`--seconds`. Run once per variant, side by side: `default` (what run.sh does) and `dev` (DEV=1, the
developer's opt-in watcher). Prints name=value lines per variant:

    idle_<variant>_cpu_pct_of_core  idle_<variant>_log_lines_per_s  and the machine's load average

    python bench/bench_idle.py [--seconds 30] [--variants default,dev] [--data bench/out/idle]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from harness import ROOT, browser, console, emit, load_average, tree_cpu_s, wait_idle
from playwright.sync_api import sync_playwright

VARIANT_ENV = {"default": {}, "dev": {"DEV": "1"}}


def measure(variant: str, data: Path, seconds: float) -> None:
    with console(data, env=VARIANT_ENV[variant], log_name=f"idle-{variant}.log") as (url, process), \
            sync_playwright() as pw:
        chromium = browser(pw)
        page = chromium.new_page()
        page.goto(url)
        wait_idle(page)
        page.get_by_text("Recent jobs").wait_for(timeout=120_000)
        time.sleep(5)  # let start-up work (seed import, first health calls) settle
        log_path = data / f"idle-{variant}.log"
        lines_before = log_path.read_text(errors="replace").count("\n")
        load_before = load_average()
        cpu_before, wall_before = tree_cpu_s(process), time.monotonic()
        time.sleep(seconds)
        cpu, wall = tree_cpu_s(process) - cpu_before, time.monotonic() - wall_before
        lines = log_path.read_text(errors="replace").count("\n") - lines_before
        chromium.close()
    emit(f"idle_{variant}_cpu_pct_of_core", 100 * cpu / wall)
    emit(f"idle_{variant}_log_lines_per_s", lines / wall)
    emit(f"idle_{variant}_seconds", wall)
    emit(f"idle_{variant}_load_avg_1m", (load_before + load_average()) / 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--variants", default="default,dev")
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "out" / "idle")
    args = parser.parse_args()
    for variant in args.variants.split(","):
        measure(variant, args.data, args.seconds)


if __name__ == "__main__":
    main()
