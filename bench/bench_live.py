"""Completion → screen benchmark (issue 18, goal 3): from the moment the simulated RunPod finishes
a job to the moment the console shows it in Chromium, on four views (--pages, default all):

    generate  Generate: Z-Image Turbo + LoRA, one image per job — the new image is drawn
    gallery   Gallery: "Vary seed" on the newest picture, shown under "Just sent" — the new image is drawn
    special   Face swap & sheets: one face swap per round (scikit-image's astronaut onto a mirrored
              copy of itself) — the "After" image is drawn
    queue     "My queue" in the sidebar: one FLUX.1-dev job at 50 steps (≈1.5 s in the simulator, long
              enough to still run when the next page opens) sent from Generate, then the Jobs page is
              opened, as a user goes elsewhere while a job runs — the job's entry leaves the queue

Starts the console the README's way on a fresh data folder (simulator at the repository's time
scale). Per view, one warm-up round (it takes the cold start) and then --jobs rounds, one job each,
one after another. In each round the page records (Date.now(), in the browser) when the awaited
change is drawn; the simulator's own `finished_at` of the job the round sent (from its state file,
same clock) is the completion. A round that sent nothing to measure (the page refused a repeat, or
a queue job ended before the Jobs page drew it) is sent again. Prints:

    per view  live_<view>_p50_s / _p95_s / _max_s, live_<view>_tracker_seen_p50_s (completion → the
              console's store has it: the tracker's share) and live_<view>_resent (rounds sent again)
    then      live_jobs (per view), live_tracker_seen_p50_s / _p95_s (every measured job),
              live_load_avg_1m

    python bench/bench_live.py [--jobs 50] [--pages generate,gallery,special,queue] [--data bench/out/live]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from harness import ROOT, WATCH_RUNS, browser, console, emit, load_average, percentile, wait_idle
from PIL import Image
from playwright.sync_api import expect, sync_playwright
from skimage import data as skdata

from tests.e2e.ui import choose, open_page, settle

VIEWS = ("generate", "gallery", "special", "queue")
# What the console says instead of sending: Generate's duplicate notes (random / fixed seed), and Face
# swap's when the same request comes again (a "Start over" that did not reach the page).
REFUSED = ["That was a double click", "These settings were already sent", "These jobs were already sent"]
QUEUE_PAGE = ("Jobs", "Jobs", "jobs")  # (navigation title, heading, url path): a page with no live view

# Resolves once the page has run no script for `ms` (longer than the live views' 250 ms timer): the
# run after a finished job is over, so its redraws are not taken for this round's, nor does a click
# land in it (a click during that run can be lost).
QUIET = """ms => new Promise(done => {
  const app = document.querySelector("[data-testid=stApp]");
  let last = Date.now();
  const observer = new MutationObserver(() => { last = Date.now(); });
  observer.observe(app, {attributes: true, attributeFilter: ["data-test-script-state"]});
  const look = () => {
    if (app.getAttribute("data-test-script-state") !== "notRunning") last = Date.now();
    if (Date.now() - last >= ms) { observer.disconnect(); done(); } else setTimeout(look, 20);
  };
  look();
})"""
# Each watcher sets window.__shownAt to Date.now() on the first frame that shows what it waits for; a
# newer watcher (window.__watch) retires the older ones.
#
# A loaded image whose URL was not on the page when the watcher started; with `caption`, only an image
# so captioned; with `within`, only one inside the element that CSS selector finds.
WATCH_NEW_IMAGE = """({caption, within}) => {
  const me = window.__watch = (window.__watch || 0) + 1;
  const seen = new Set([...document.images].map(i => i.src));
  const captioned = img => img.closest("[data-testid=stImageContainer]").innerText.trim() === caption;
  const inside = img => [...document.querySelectorAll(within)].some(box => box.contains(img));
  const wanted = img => (caption === undefined || captioned(img)) && (within === undefined || inside(img));
  const look = () => {
    if (window.__watch !== me) return;
    for (const img of document.querySelectorAll("[data-testid=stImageContainer] img")) {
      if (!seen.has(img.src) && img.complete && img.naturalWidth > 0 && wanted(img)) {
        window.__shownAt = Date.now();
        return;
      }
    }
    requestAnimationFrame(look);
  };
  requestAnimationFrame(look);
}"""
# No entry left in "My queue", after one was drawn on the page at `path` (its run finished): the entry
# leaves by the queue's own refresh, not by the page that sent the job.
WATCH_QUEUE_LEAVES = """(path) => {
  const me = window.__watch = (window.__watch || 0) + 1;
  const app = document.querySelector("[data-testid=stApp]");
  window.__queueSeen = false;
  const look = () => {
    if (window.__watch !== me) return;
    const here = location.pathname.replace(/\\/$/, "").endsWith("/" + path);
    const entry = document.querySelector("[data-testid=stSidebar] [class*='st-key-queue-job-']");
    if (here && entry && app.getAttribute("data-test-script-state") === "notRunning") {
      window.__queueSeen = true;
    } else if (here && !entry && window.__queueSeen) {
      window.__shownAt = Date.now();
      return;
    }
    requestAnimationFrame(look);
  };
  requestAnimationFrame(look);
}"""


class Bench:
    """One browser page on the console, and its job store to tell which job a round sent."""

    def __init__(self, page, data: Path):
        self.page = page
        self.data = data
        self.store = sqlite3.connect(data / "console.sqlite")
        self.resent = 0   # rounds sent again

    def job_since(self, since: float) -> str | None:
        """RunPod's id of the newest job sent to it since `since` (epoch s), if any."""
        row = self.store.execute("SELECT runpod_id FROM jobs WHERE simulated=0 AND created_at > ?"
                                 " AND runpod_id IS NOT NULL ORDER BY created_at DESC LIMIT 1", (since,)).fetchone()
        return row[0] if row else None

    def refused(self) -> bool:
        return self.page.evaluate("texts => texts.some(t => document.body.innerText.includes(t))", REFUSED)

    def measure(self, watch: str, arg, send: Callable[[], None], prepare: Callable[[], None] = lambda: None,
                tries: int = 5) -> tuple[str, float]:
        """The shared round: `prepare` the page, start `watch` (see WATCH_*), `send` one job, and return
        RunPod's id of that job and the epoch second the watcher saw the change drawn. A round that sent
        nothing (REFUSED on the page, or `send` gave up: window.__retry) is prepared and sent again."""
        for _ in range(tries):
            self.quiet()
            prepare()
            self.quiet()
            since = time.time()
            self.page.evaluate("() => { window.__shownAt = null; window.__retry = false; }")
            self.page.evaluate(watch, arg)
            send()
            self.page.wait_for_function(
                "texts => window.__shownAt !== null || window.__retry"
                " || texts.some(t => document.body.innerText.includes(t))",
                arg=REFUSED, timeout=120_000, polling=50)
            shown, job = self.page.evaluate("window.__shownAt"), self.job_since(since)
            if shown is not None and job is not None:
                return job, shown / 1000
            self.resent += 1
        raise RuntimeError(f"{tries} rounds in a row sent nothing that could be measured")

    def quiet(self) -> None:
        self.page.evaluate(QUIET, 400)

    def press(self, name: str) -> None:
        self.page.get_by_role("button", name=name, exact=True).first.click()

    def rerun_after(self, name: str) -> None:
        """Press a button whose run redraws the page, and wait until that run has finished."""
        if self.page.get_by_role("button", name=name, exact=True).count():
            self.page.evaluate(WATCH_RUNS)
            self.press(name)
            self.page.wait_for_function("window.__runsFinished >= 1", timeout=60_000, polling=50)
            wait_idle(self.page)

    def open(self, title: str, heading: str) -> None:
        open_page(self.page, wait_idle, title, heading)

    # Generate, and the pages that start from it.

    def generate_form(self, preset: str, most_steps: bool = False) -> None:
        """Generate set up for one image per job with `preset` (+ the demo LoRA), ready to send."""
        page = self.page
        self.open("Generate", "Generate images")
        choose(page, "Model preset", preset)
        choose(page, "Character LoRA", "ava_v1.safetensors")
        count = page.get_by_label("Number of images (one job each)")
        count.fill("1")
        count.press("Enter")
        if most_steps:   # a Streamlit slider moves by key: End is its maximum
            settle(page)
            slider = page.get_by_role("slider", name="Steps")
            slider.press("End")
            expect(slider).to_have_value(slider.get_attribute("max"))
            wait_idle(page)
        prompt = page.get_by_label("Prompt", exact=True)
        prompt.fill("ava_tok, portrait on a harbour at golden hour, bench")
        prompt.press("Control+Enter")
        expect(page.get_by_text("Preflight passed")).to_be_visible(timeout=60_000)
        wait_idle(page)

    def new_batch(self) -> None:
        """Generate sends the same settings once per request: "New batch" makes the next press a new one."""
        self.rerun_after("New batch")

    def generate_round(self) -> tuple[str, float]:
        return self.measure(WATCH_NEW_IMAGE, {}, lambda: self.press("Generate"), self.new_batch)

    # The four views: each sets its page up and returns its round.

    def generate_view(self) -> Callable[[], tuple[str, float]]:
        self.generate_form("Z-Image Turbo + LoRA")
        return self.generate_round

    def gallery_view(self) -> Callable[[], tuple[str, float]]:
        self.open("Gallery", "Gallery")
        if not self.page.get_by_role("button", name="Vary seed").count():   # nothing to vary yet
            self.generate_form("Z-Image Turbo + LoRA")
            self.generate_round()
            self.open("Gallery", "Gallery")
        # The "Just sent" view above the grid (the grid shows the new picture too, from a later run).
        return lambda: self.measure(WATCH_NEW_IMAGE, {"within": ".st-key-gal-notice"}, lambda: self.press("Vary seed"))

    def special_view(self) -> Callable[[], tuple[str, float]]:
        page = self.page
        self.open("Face swap & sheets", "Face swap & character sheets")
        face, target = self.data / "astronaut.png", self.data / "mirrored.png"
        Image.fromarray(skdata.astronaut()).save(face)
        Image.fromarray(skdata.astronaut()[:, ::-1].copy()).save(target)
        for label, path in (("Source face", face), ("Target photos", target)):
            uploader = page.get_by_test_id("stFileUploader").filter(has_text=label)
            uploader.locator("input[type=file]").set_input_files(path)
            expect(uploader.get_by_text(path.name)).to_be_visible()
            wait_idle(page)
        expect(page.get_by_role("button", name="Swap faces")).to_be_enabled()
        # From the second round on, "Start over" first: a new request for the same photos, whose result may be
        # the very same picture (the same URL), so the watcher starts once the last one is off the page.
        return lambda: self.measure(WATCH_NEW_IMAGE, {"caption": "After"}, lambda: self.press("Swap faces"),
                                    lambda: self.rerun_after("Start over"))

    def queue_view(self) -> Callable[[], tuple[str, float]]:
        self.generate_form("FLUX.1-dev + LoRA", most_steps=True)
        title, heading, path = QUEUE_PAGE

        def back_to_generate() -> None:
            if not self.page.get_by_role("heading", name="Generate images", exact=True).count():
                self.open("Generate", "Generate images")
            self.new_batch()

        def send_then_leave() -> None:
            since = time.time()
            self.press("Generate")
            while self.job_since(since) is None:   # sent: leaving the page now cannot stop its run sending
                if self.refused():
                    return
                self.page.wait_for_timeout(20)
            self.open(title, heading)
            # The job ended before the page drew it in the queue: nothing to see leave; send another.
            self.page.evaluate("() => { if (!window.__queueSeen && window.__shownAt === null) window.__retry = true; }")

        return lambda: self.measure(WATCH_QUEUE_LEAVES, path, send_then_leave, back_to_generate, tries=10)


def finished_at(data: Path, job_ids: list[str]) -> tuple[list[float], list[float]]:
    """Per job: the simulator's completion time, and when the console's store recorded it final."""
    done = {}
    for job_id, text in sqlite3.connect(data / "localpod" / "localpod.sqlite").execute("SELECT id, data FROM jobs"):
        done[job_id] = json.loads(text).get("finished_at")
    recorded = dict(sqlite3.connect(data / "console.sqlite").execute(
        "SELECT runpod_id, finished_at FROM jobs WHERE simulated=0 AND runpod_id IS NOT NULL"))
    return [done[j] for j in job_ids], [recorded[j] for j in job_ids]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50, help="measured jobs per view")
    parser.add_argument("--pages", default=",".join(VIEWS), help=f"comma-separated, of {', '.join(VIEWS)}")
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "out" / "live")
    args = parser.parse_args()
    views = [v.strip() for v in args.pages.split(",") if v.strip()]
    if unknown := set(views) - set(VIEWS):
        parser.error(f"unknown --pages {', '.join(sorted(unknown))}; choose from {', '.join(VIEWS)}")
    shutil.rmtree(args.data, ignore_errors=True)
    rounds: dict[str, list[tuple[str, float]]] = {}
    resent: dict[str, int] = {}
    loads = []
    with console(args.data, log_name="live.log") as (url, _process), sync_playwright() as pw:
        chromium = browser(pw)
        page = chromium.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        wait_idle(page)
        bench = Bench(page, args.data)
        for view in (v for v in VIEWS if v in views):
            one_round = getattr(bench, f"{view}_view")()
            one_round()  # warm-up: the cold start
            bench.resent = 0
            rounds[view] = []
            for _ in range(args.jobs):
                rounds[view].append(one_round())
                loads.append(load_average())
            resent[view] = bench.resent
        chromium.close()
    all_tracker_lags = []
    for view, measured in rounds.items():
        completed, recorded = finished_at(args.data, [job for job, _ in measured])
        lags = [shown - done for (_, shown), done in zip(measured, completed, strict=True)]
        tracker_lags = [r - c for r, c in zip(recorded, completed, strict=True)]
        emit(f"live_{view}_p50_s", percentile(lags, 50))
        emit(f"live_{view}_p95_s", percentile(lags, 95))
        emit(f"live_{view}_max_s", max(lags))
        emit(f"live_{view}_tracker_seen_p50_s", percentile(tracker_lags, 50))
        emit(f"live_{view}_resent", resent[view])
        all_tracker_lags += tracker_lags
    emit("live_jobs", args.jobs)
    emit("live_tracker_seen_p50_s", percentile(all_tracker_lags, 50))
    emit("live_tracker_seen_p95_s", percentile(all_tracker_lags, 95))
    emit("live_load_avg_1m", sorted(loads)[len(loads) // 2])


if __name__ == "__main__":
    main()
