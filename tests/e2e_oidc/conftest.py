"""OpenID Connect sign-in end to end: a real OIDC provider (the `oidc-provider-mock` package) on
127.0.0.1, the real console (`streamlit run app.py`) configured for it through
.streamlit/secrets.toml [auth], and Debian's Chromium driven by Playwright.

Streamlit reads secrets from the working directory's .streamlit/, so the console is started with
cwd = a temporary folder holding .streamlit/secrets.toml; CONSOLE_CONFIG points at a copy of the
repo's console.toml with an [access] table mapping the three test people to roles. The provider
knows them as predefined users, so signing in is one click on the provider's page.

Fixtures:
- `people`         role -> e-mail of the person signed in with that role.
- `oidc_provider`  base URL of the provider.
- `console`        Console(url, data_dir, log): the running console.
- `sign_in(page, role)`  opens the console in `page`, signs in through the provider as that
                   role's person and returns once the console shows the signed-in user.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.console_server import CHROMIUM, CHROMIUM_ARGS, running_console
from tests.console_server import wait_idle as _wait_idle
from tests.e2e_oidc.steps import NAMES, PEOPLE, running_oidc_provider, write_oidc_home
from tests.support.ports import free_port


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def people() -> dict[str, str]:
    return dict(PEOPLE)


@pytest.fixture(scope="session")
def oidc_provider():
    with running_oidc_provider() as url:
        yield url


@dataclass(frozen=True)
class Console:
    url: str
    data_dir: Path
    log: Path


@pytest.fixture(scope="session")
def console(tmp_path_factory, oidc_provider):
    home = tmp_path_factory.mktemp("oidc-console")
    port = free_port()
    config = write_oidc_home(home, port, oidc_provider)
    # Streamlit reads .streamlit/secrets.toml from its working directory: start it in `home`.
    with running_console(data=home / "data", config=config, port=port, cwd=home) as url:
        yield Console(url=url, data_dir=home / "data", log=home / "data" / "streamlit.log")


@pytest.fixture
def wait_idle():
    return _wait_idle


@pytest.fixture
def sign_in(console, oidc_provider):
    def _sign_in(page, role: str):
        page.set_default_timeout(30_000)
        page.goto(console.url)
        _wait_idle(page)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{oidc_provider}/oauth2/authorize**")
        page.get_by_role("button", name=PEOPLE[role], exact=True).click()
        page.wait_for_url(f"{console.url}/**")
        _wait_idle(page)
        page.get_by_test_id("stSidebar").get_by_text(f"Signed in as {NAMES[role]} ({role})").wait_for()
        return page
    return _sign_in
