"""The real console as browser tests drive it: `streamlit run app.py` on a free loopback port, with
its own data folder and a copy of console.toml that compresses simulated time."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def fast_config_text(time_scale: float = 0.005) -> str:
    """The repository's console.toml with simulated time compressed for tests."""
    return re.sub(r"(?m)^time_scale = .*$", f"time_scale = {time_scale}",
                  (ROOT / "console.toml").read_text(encoding="utf-8"))


@contextmanager
def running_console(*, data: Path, config: Path, port: int | None = None, cwd: Path = ROOT,
                    env: dict[str, str] | None = None, address: str = "127.0.0.1") -> Iterator[str]:
    """Start the console (no RunPod key: on its in-process simulator) on `address` and yield its URL."""
    port = port or free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    environment.update(CONSOLE_DATA=str(data), CONSOLE_CONFIG=str(config), PYTHONPATH=str(ROOT),
                       **(env or {}))
    log_path = data / "streamlit.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
             "--server.address", address, "--server.port", str(port),
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
             "--global.developmentMode", "false"],
            cwd=cwd, env=environment, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://{address}:{port}"
        try:
            _wait_healthy(proc, url, log_path)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_healthy(proc: subprocess.Popen, url: str, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).text == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("streamlit did not start: " + log_path.read_text()[-3000:])


def wait_idle(page) -> None:
    """Streamlit is idle: connected and not running a script."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=60_000)
