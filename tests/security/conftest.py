"""Security tests: every browser case gets a console of its own, started for it, so the hostile request
is the first one that console ever sees (a console that already served "/" behaves differently).

Fixtures:
- `fresh_console(sign_in=False, address="127.0.0.1")` starts a console and returns a Console; it stops
  when the test ends.
- `nav_recorder` is a script for page.add_init_script that keeps every text the sidebar navigation
  ever showed in window.__navTexts (so a navigation shown for an instant is still caught).
"""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.console_server import CHROMIUM, CHROMIUM_ARGS, ROOT, fast_config_text, running_console
from tests.console_server import wait_idle as _wait_idle
from tests.e2e_oidc.steps import running_oidc_provider, write_oidc_home
from tests.support.ports import free_port

# What Streamlit's file-name routing would show: the stems of app.py and of every page file.
RAW_PAGE_NAMES = {"app", *(p.stem for p in (ROOT / "pages").glob("*.py"))}

NAV_RECORDER = """
window.__navTexts = [];
new MutationObserver(() => {
  document.querySelectorAll("[data-testid='stSidebarNav'] a").forEach(
    (link) => window.__navTexts.push(link.textContent.trim()));
}).observe(document, {childList: true, subtree: true, characterData: true});
"""


@dataclass(frozen=True)
class Console:
    url: str
    data_dir: Path


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture
def wait_idle():
    return _wait_idle


@pytest.fixture(scope="session")
def oidc_provider():
    with running_oidc_provider() as url:
        yield url


@pytest.fixture
def fresh_console(tmp_path, request):
    with ExitStack() as stack:
        def start(*, sign_in: bool = False, address: str = "127.0.0.1") -> Console:
            home = tmp_path / "home"
            home.mkdir()
            port = free_port()
            if sign_in:
                config = write_oidc_home(home, port, request.getfixturevalue("oidc_provider"))
            else:
                (home / "data").mkdir()
                config = home / "console.toml"
                config.write_text(fast_config_text(), encoding="utf-8")
            url = stack.enter_context(running_console(data=home / "data", config=config, port=port, cwd=home,
                                                      address=address))
            return Console(url=url, data_dir=home / "data")
        yield start


def raw_names_shown(page) -> set[str]:
    """Raw file names the sidebar navigation showed at any moment since the page was opened."""
    return set(page.evaluate("window.__navTexts")) & RAW_PAGE_NAMES
