"""Completion → screen benchmark (issue 18, goal 3): from the moment the simulated RunPod finishes
a job to the moment its image is drawn in Chromium, on the Generate page.

Starts the console the README's way on a fresh data folder (simulator at the repository's time
scale), opens Generate, picks Z-Image Turbo + LoRA with one image per job, and sends --jobs jobs
one after another (after one warm-up job that takes the cold start). For each, the page records
(Date.now(), in the browser) when an image it had not shown before has loaded; the simulator's
own `finished_at` of that job (from its state file, same clock) is the completion. Prints:

    live_generate_p50_s  live_generate_p95_s  live_generate_max_s  live_jobs
    live_tracker_seen_p50_s / _p95_s (completion → the console's store has it: the tracker's share)

    python bench/bench_live.py [--jobs 50] [--data bench/out/live]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
from pathlib import Path

from harness import ROOT, WATCH_RUNS, browser, console, emit, load_average, percentile, wait_idle
from playwright.sync_api import expect, sync_playwright

from tests.e2e.ui import choose, open_page

ALREADY = "These settings were already sent"
WATCH_NEW_IMAGE = """() => {
  window.__seen = new Set([...document.images].map(i => i.src));
  window.__newImageAt = null;
  const look = () => {
    for (const img of document.querySelectorAll("[data-testid=stImageContainer] img")) {
      if (!window.__seen.has(img.src) && img.complete && img.naturalWidth > 0) {
        window.__newImageAt = Date.now();
        return;
      }
    }
    requestAnimationFrame(look);
  };
  requestAnimationFrame(look);
}"""


def send_one(page, tries: int = 3) -> float:
    """Send one job and return the epoch second its image was drawn. A "New batch" click that
    raced with the previous batch's last refresh leaves the form's request unchanged, so the
    console (rightly) sends nothing: press it again and retry."""
    for _ in range(tries):
        if page.get_by_role("button", name="New batch").count():
            page.evaluate(WATCH_RUNS)
            page.get_by_role("button", name="New batch").click()
            page.wait_for_function("window.__runsFinished >= 1", timeout=60_000, polling=50)
            wait_idle(page)
        page.evaluate(WATCH_NEW_IMAGE)
        page.get_by_role("button", name="Generate", exact=True).click()
        page.wait_for_function(f"window.__newImageAt !== null || document.body.innerText.includes({ALREADY!r})",
                               timeout=120_000, polling=50)
        shown = page.evaluate("window.__newImageAt")
        if shown is not None:
            return shown / 1000
    raise RuntimeError("the console kept refusing the job as already sent")


def finished_at(data: Path) -> tuple[list[float], list[float]]:
    """Per Generate job, in the order sent: the simulator's completion time, and when the console's
    store recorded it final (the tracker's share of the lag)."""
    console_db = sqlite3.connect(data / "console.sqlite")
    rows = console_db.execute("SELECT runpod_id, finished_at FROM jobs WHERE kind='generate'"
                              " AND simulated=0 ORDER BY created_at").fetchall()
    sim_db = sqlite3.connect(data / "localpod" / "localpod.sqlite")
    done = {}
    for job_id, text in sim_db.execute("SELECT id, data FROM jobs"):
        done[job_id] = json.loads(text).get("finished_at")
    return [done[r[0]] for r in rows], [r[1] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "out" / "live")
    args = parser.parse_args()
    shutil.rmtree(args.data, ignore_errors=True)
    shown: list[float] = []
    with console(args.data, log_name="live.log") as (url, _process), sync_playwright() as pw:
        chromium = browser(pw)
        page = chromium.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        wait_idle(page)
        open_page(page, wait_idle, "Generate", "Generate images")
        choose(page, "Model preset", "Z-Image Turbo + LoRA")
        choose(page, "Character LoRA", "ava_v1.safetensors")
        count = page.get_by_label("Number of images (one job each)")
        count.fill("1")
        count.press("Enter")
        prompt = page.get_by_label("Prompt", exact=True)
        prompt.fill("ava_tok, portrait on a harbour at golden hour, bench")
        prompt.press("Control+Enter")
        expect(page.get_by_text("Preflight passed")).to_be_visible(timeout=60_000)
        wait_idle(page)
        send_one(page)  # warm-up: the cold start
        loads = []
        for _ in range(args.jobs):
            shown.append(send_one(page))
            loads.append(load_average())
        chromium.close()
    completed, recorded = (times[1:] for times in finished_at(args.data))
    lags = [s - c for s, c in zip(shown, completed, strict=False)]
    tracker_lags = [r - c for r, c in zip(recorded, completed, strict=False)]
    emit("live_jobs", len(lags))
    emit("live_generate_p50_s", percentile(lags, 50))
    emit("live_generate_p95_s", percentile(lags, 95))
    emit("live_generate_max_s", max(lags))
    emit("live_tracker_seen_p50_s", percentile(tracker_lags, 50))
    emit("live_tracker_seen_p95_s", percentile(tracker_lags, 95))
    emit("live_load_avg_1m", sorted(loads)[len(loads) // 2])


if __name__ == "__main__":
    main()
