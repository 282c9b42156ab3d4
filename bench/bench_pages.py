"""Page benchmark (issue 18, goal 2): every page's first render < 1 s and repeat < 0.3 s with a
year of history (make it with bench/make_history.py).

Starts the console the README's way on the given CONSOLE_DATA, then per page, in Chromium:
  first_in_session — a new Streamlit session (a new tab at the console's address, or at Connection
           check for the Overview) opens the page through the sidebar, its first visit in that
           browser session: time from the click until the page's title is shown and the script is idle
           (data-test-script-state). This is the issue's "first visit per browser session" (its own
           figures, 0.2 s for some pages, are below what loading any Streamlit page in a tab costs);
  first  — a new Streamlit session opens the page's URL in a new tab of a browser that has opened
           the console before (its HTTP cache holds Streamlit's scripts, as a staff member's does):
           time from navigation until the page's title is shown and the script is idle;
  first_cold_cache — the same in a fresh browser profile (Streamlit's ~5 MB of scripts fetched
           and compiled first);
  repeat — in that same session, from another page, the page is opened again through the
           sidebar: time from the click until its heading is shown and that run has finished;
  *_drawn — the same until the browser has drawn every chart, table and image of it (the script's idle
           state comes first: Plotly's script, fetched and run for a tab's first chart, comes after).
The floor is the same "first" for a one-line Streamlit app (st.title) served the same way: what
any Streamlit page costs in this browser on this machine, before the console does anything. The
shell floor is the console's navigation and sidebar with nothing in the pages, measured as the pages
are (first from a page's own URL, then repeat): what the console's pages cost before their content.
With the machine shared, wall time depends on the load; the console's own CPU seconds for each
(its process tree, measured around the same interval) are printed beside it.
Each is repeated --runs times (new session each run) and the median printed. Before measuring,
every page is opened once (the console's first start-up and caches are not what is measured).

    python bench/bench_pages.py --data bench/out/history [--runs 5] [--pages costs,jobs]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx
from harness import PAGES, ROOT, browser, console, emit, free_port, load_average, median, tree_cpu_s
from playwright.sync_api import sync_playwright

from tests.e2e.ui import settle

NAV_TITLES = {"": "Overview", "generate": "Generate", "special": "Face swap & sheets", "audit": "Audit"}
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
# The script's idle state comes before the browser has drawn what the run sent: charts and tables draw after
# it, Plotly's script is fetched and run on a tab's first chart, images load. A page is drawn once every chart,
# table and image on it is (the browser tests' settle), and the browser has been idle after a frame. Waiting
# for that also keeps one measurement's drawing out of the next one's time.
IDLE_AFTER_A_FRAME = "() => new Promise(done => requestAnimationFrame(() => requestIdleCallback(() => done(), {timeout: 5000})))"


def drawn(page) -> None:
    settle(page)
    page.evaluate(IDLE_AFTER_A_FRAME)


def pause() -> None:
    """Before each timed step: the tab or browser the bench closed a moment ago is still being torn down (its
    processes exit, memory is freed), and a person does not click the instant a page is drawn either."""
    time.sleep(0.5)


def open_page(context, url: str, title: str) -> tuple[object, float]:
    page = context.new_page()
    pause()
    started = time.perf_counter()
    page.goto(url)
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=120_000)
    page.wait_for_selector(IDLE, timeout=120_000)
    seconds = time.perf_counter() - started
    drawn(page)
    return page, seconds


def unfold(nav) -> None:
    more = nav.get_by_text(re.compile(r"^View \d+ more$"))
    if more.count():  # Streamlit folds a long navigation after ten entries (again after each page)
        more.click()


def through_sidebar(page, title: str, heading: str) -> tuple[float, float]:
    """Open a page of this session through the sidebar: seconds from the click until its heading is shown
    and that run has finished, and until the browser has drawn it. The navigation is unfolded before the
    clock starts: a person sees the whole list."""
    nav = page.get_by_test_id("stSidebarNav")
    unfold(nav)
    pause()
    started = time.perf_counter()
    nav.get_by_text(title, exact=True).click()
    # The heading is drawn by the new page's run; once it is there, that run is the one to wait out.
    page.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=120_000)
    page.wait_for_selector(IDLE, timeout=120_000)
    idle = time.perf_counter() - started
    drawn(page)
    return idle, time.perf_counter() - started


def reopen(page, title: str, heading: str) -> tuple[float, float]:
    """From another page of the same session, open the page again through the sidebar."""
    away, away_heading = ("Jobs", "Jobs") if title != "Jobs" else ("Overview", "Overview")
    through_sidebar(page, away, away_heading)
    return through_sidebar(page, title, heading)


@contextmanager
def served(app_text: str) -> Iterator[str]:
    """A Streamlit app of this text, served with run.sh's server flags and the console's .streamlit/config.toml
    (theme, toolbar) on a free port; yields its URL."""
    with tempfile.TemporaryDirectory(prefix="floor-") as folder:
        app = Path(folder) / "app.py"
        app.write_text(app_text)
        port = free_port()
        server = subprocess.Popen([str(ROOT / ".venv" / "bin" / "python"), "-m", "streamlit", "run", str(app),
                                   "--server.port", str(port), "--server.headless", "true",
                                   "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
                                   "--runner.postScriptGC", "false"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ), cwd=ROOT)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    if httpx.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=20)


def streamlit_floor(chromium, runs: int) -> tuple[float, float]:
    """(first, first_cold_cache) of a one-line Streamlit app."""
    with served('import streamlit as st\nst.title("Hello")\n') as url:
        cached = chromium.new_context()
        open_page(cached, url, "Hello")[0].close()
        warm, cold = [], []
        for _ in range(runs):
            page, seconds = open_page(cached, url, "Hello")
            warm.append(seconds)
            page.close()
            context = chromium.new_context()
            cold.append(open_page(context, url, "Hello")[1])
            context.close()
        cached.close()
        return median(warm), median(cold)


# The console's shell with nothing in it: the same navigation (13 pages in 3 sections, with icons) and the
# sidebar's banner and sign-in line; each page only its title.
SHELL_APP = """import streamlit as st
titles = {"Operate": ["Overview", "Jobs", "Endpoints", "Models", "Costs"],
          "Create": ["Generate", "Gallery", "Face swap & sheets", "Training sets", "LoRA training"],
          "Admin": ["Audit", "Provisioning", "Connection check"]}
def page(title):
    def draw():
        st.title(title)
    draw.__name__ = title.split()[0].lower()   # Streamlit tells pages given as functions apart by their names
    return st.Page(draw, title=title, url_path=draw.__name__, icon=":material/dashboard:", default=title == "Overview")
st.set_option("client.showSidebarNavigation", True)   # as lib/ui/deps.navigation, under the console's config.toml
navigation = st.navigation({section: [page(t) for t in names] for section, names in titles.items()}, expanded=True)
st.sidebar.info("**Local simulator**: no RunPod key is set.", icon=":material/science:")
st.sidebar.caption("Signed in as **local operator** (operator)")
navigation.run()
"""


def shell_floor(chromium, runs: int) -> tuple[float, float, float]:
    """(first_in_session, first, repeat) of a page of SHELL_APP, measured as the console's pages are: opened
    through the sidebar from a new tab at /; its own URL opened in a new tab (Streamlit's frontend tries a
    page's path as its base URL first: a 404 and a 100 ms backoff that the one-line app at / does not pay);
    then opened again through the sidebar."""
    with served(SHELL_APP) as url:
        context = chromium.new_context()
        open_page(context, f"{url}/connection", "Connection check")[0].close()
        sessions, firsts, repeats = [], [], []
        for _ in range(runs):
            page = open_page(context, url, "Overview")[0]
            sessions.append(through_sidebar(page, "Connection check", "Connection check")[0])
            page.close()
            page, seconds = open_page(context, f"{url}/connection", "Connection check")
            firsts.append(seconds)
            repeats.append(reopen(page, "Connection check", "Connection check")[0])
            page.close()
        context.close()
        return median(sessions), median(firsts), median(repeats)


def timed(figures: dict[str, list[float]], process, measure: str, step: Callable[[], tuple]):
    """Run a timed step, which returns (seconds to idle, seconds to drawn) or (page, seconds to idle): record
    its figures and the console's CPU seconds meanwhile under `measure`; return the page, if it gave one."""
    cpu = tree_cpu_s(process)
    first, second = step()
    figures[f"{measure}_console_cpu_s"].append(tree_cpu_s(process) - cpu)
    if isinstance(first, float):
        figures[f"{measure}_s"].append(first)
        figures[f"{measure}_drawn_s"].append(second)
        return None
    figures[f"{measure}_s"].append(second)
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "out" / "history")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pages", default=",".join(p or "overview" for p in PAGES))
    args = parser.parse_args()
    wanted = [("" if p == "overview" else p) for p in args.pages.split(",")]
    with console(args.data, log_name="pages.log") as (url, process), sync_playwright() as pw:
        chromium = browser(pw)
        cached = chromium.new_context()   # the staff member's browser: it has opened the console before
        for path in wanted:  # first start-up of the console and its background indexes
            open_page(cached, f"{url}/{path}", PAGES[path])[0].close()
        worst: dict[str, float] = defaultdict(float)
        loads = []
        for path in wanted:
            figures: dict[str, list[float]] = defaultdict(list)

            landing, landing_title = ("connection", PAGES["connection"]) if path == "" else ("", PAGES[""])
            title = NAV_TITLES.get(path, PAGES[path])
            for _ in range(args.runs):
                page = open_page(cached, f"{url}/{landing}", landing_title)[0]
                timed(figures, process, "first_in_session", partial(through_sidebar, page, title, PAGES[path]))
                page.close()
                page = timed(figures, process, "first", partial(open_page, cached, f"{url}/{path}", PAGES[path]))
                timed(figures, process, "repeat", partial(reopen, page, title, PAGES[path]))
                page.close()
                context = chromium.new_context()
                figures["first_cold_cache_s"].append(open_page(context, f"{url}/{path}", PAGES[path])[1])
                context.close()
                loads.append(load_average())
            for measure, values in figures.items():
                emit(f"page_{path or 'overview'}_{measure}", median(values))
            for measure in ("first_in_session_s", "first_s", "repeat_s"):
                worst[measure] = max(worst[measure], median(figures[measure]))
        for measure, seconds in worst.items():
            emit(f"pages_worst_{measure}", seconds)
        floor_first, floor_cold = streamlit_floor(chromium, args.runs)
        emit("pages_streamlit_floor_first_s", floor_first)
        emit("pages_streamlit_floor_first_cold_cache_s", floor_cold)
        shell_session, shell_first, shell_repeat = shell_floor(chromium, args.runs)
        emit("pages_shell_floor_first_in_session_s", shell_session)
        emit("pages_shell_floor_first_s", shell_first)
        emit("pages_shell_floor_repeat_s", shell_repeat)
        emit("pages_load_avg_1m", median(loads))
        chromium.close()


if __name__ == "__main__":
    main()
