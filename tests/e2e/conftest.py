"""Playwright against the real console: `streamlit run app.py` on a free loopback port, on its own
in-process simulator, driven by Debian's Chromium (never a downloaded browser)."""
from __future__ import annotations

import pytest

from lib.form_state import FormState
from tests.console_server import CHROMIUM, CHROMIUM_ARGS, fast_config_text, running_console
from tests.console_server import wait_idle as _wait_idle


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def console_data(tmp_path_factory):
    data = tmp_path_factory.mktemp("e2e-data")
    (data / "console.toml").write_text(fast_config_text())
    return data


@pytest.fixture(scope="session")
def console_url(console_data):
    with running_console(data=console_data, config=console_data / "console.toml") as url:
        yield url


@pytest.fixture
def wait_idle():
    return _wait_idle


@pytest.fixture
def console_page(page, console_url, console_data):
    """A browser tab on the console's Overview, with every run finished and empty forms."""
    FormState(console_data).clear()   # forms are kept per user: each test starts as a new user would
    page.set_default_timeout(30_000)
    page.goto(console_url)
    _wait_idle(page)
    return page
