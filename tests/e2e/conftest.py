"""Playwright against the real console: `streamlit run app.py` on a free loopback port, on its own
in-process simulator, driven by Debian's Chromium (never a downloaded browser)."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM,
            "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run"]}


@pytest.fixture(scope="session")
def console_url(tmp_path_factory):
    data = tmp_path_factory.mktemp("e2e-data")
    config_text = (ROOT / "console.toml").read_text()
    config_text = re.sub(r"(?m)^time_scale = .*$", "time_scale = 0.005", config_text)
    (data / "console.toml").write_text(config_text)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env.update(CONSOLE_DATA=str(data), CONSOLE_CONFIG=str(data / "console.toml"))
    log = open(data / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port),
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
         "--global.developmentMode", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).text == "ok":
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    else:
        proc.terminate()
        raise RuntimeError("streamlit did not start: " + (data / "streamlit.log").read_text()[-2000:])
    if proc.poll() is not None:
        raise RuntimeError("streamlit exited: " + (data / "streamlit.log").read_text()[-2000:])
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _wait_idle(page) -> None:
    """Streamlit is idle: connected and not running a script."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=60_000)


@pytest.fixture
def wait_idle():
    return _wait_idle


@pytest.fixture
def console_page(page, console_url):
    """A browser tab on the console's Overview, with every run finished."""
    page.set_default_timeout(30_000)
    page.goto(console_url)
    _wait_idle(page)
    return page
