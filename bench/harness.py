"""What the browser benchmarks share: the console started the README's way (scripts/run.sh) on a
free loopback port with its own data folder, Chromium through Playwright, and the CPU and memory
of the console's process tree (the console, and the simulator inside it)."""
from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.console_server import CHROMIUM, CHROMIUM_ARGS, fast_config_text, free_port, wait_idle  # noqa: E402,F401

PAGES = {  # url path → the page's heading, every page (the Admin ones for the local operator)
    "": "Overview", "jobs": "Jobs", "endpoints": "Endpoints", "models": "Models", "costs": "Costs",
    "generate": "Generate images", "gallery": "Gallery", "special": "Face swap & character sheets",
    "datasets": "Training sets", "training": "LoRA training", "audit": "Audit trail",
    "provisioning": "Provisioning", "connection": "Connection check",
}


# Counts finished script runs (running → notRunning) from now on, in window.__runsFinished.
# Each change is read from its own mutation record: a run that starts and ends before the observer's
# callback would otherwise be seen as notRunning → notRunning and missed (then the bench waited for
# the sidebar's next 5 s refresh).
WATCH_RUNS = """() => {
  const app = document.querySelector("[data-testid='stApp']");
  window.__runsFinished = 0;
  new MutationObserver((records) => {
    for (const r of records) if (r.oldValue === "running") window.__runsFinished += 1;
  }).observe(app, {attributes: true, attributeOldValue: true, attributeFilter: ["data-test-script-state"]});
}"""


@contextmanager
def console(data: Path, *, config: Path | None = None, env: dict[str, str] | None = None,
            log_name: str = "console.log") -> Iterator[tuple[str, psutil.Process]]:
    """`bash scripts/run.sh` with CONSOLE_DATA=data; yields its URL and its process."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    environment.update(PORT=str(port), CONSOLE_DATA=str(data), **(env or {}))
    if config is not None:
        environment["CONSOLE_CONFIG"] = str(config)
    data.mkdir(parents=True, exist_ok=True)
    log_path = data / log_name
    with open(log_path, "w") as log:
        proc = subprocess.Popen(["bash", "scripts/run.sh"], cwd=ROOT, env=environment, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            raise RuntimeError("console did not start: " + log_path.read_text()[-3000:])
        yield url, psutil.Process(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def tree(process: psutil.Process) -> list[psutil.Process]:
    return [process, *process.children(recursive=True)]


def tree_cpu_s(process: psutil.Process) -> float:
    """User + system CPU seconds of the process and its children so far."""
    total = 0.0
    for p in tree(process):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def tree_rss_mb(process: psutil.Process) -> float:
    total = 0
    for p in tree(process):
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def load_average() -> float:
    return os.getloadavg()[0]


def browser(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def emit(name: str, value) -> None:
    print(f"{name}={value:.3f}" if isinstance(value, float) else f"{name}={value}", flush=True)
