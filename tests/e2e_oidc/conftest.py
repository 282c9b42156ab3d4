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

import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import werkzeug.serving
from oidc_provider_mock import User, app as oidc_app

from tests.console_server import CHROMIUM, CHROMIUM_ARGS, fast_config_text, running_console
from tests.console_server import wait_idle as _wait_idle
from tests.support.ports import free_port

PEOPLE = {"viewer": "vera.viewer@partner.example", "staff": "sam.staff@example.com",
          "operator": "olga.ops@example.com"}
NAMES = {"viewer": "Vera Viewer", "staff": "Sam Staff", "operator": "Olga Ops"}


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def people() -> dict[str, str]:
    return dict(PEOPLE)


@pytest.fixture(scope="session")
def oidc_provider():
    users = [User(sub=email, claims={"email": email, "email_verified": True, "name": NAMES[role]})
             for role, email in PEOPLE.items()]
    server = werkzeug.serving.make_server("127.0.0.1", 0, oidc_app(user_claims=users), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                              name="oidc-provider")
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    assert httpx.get(f"{url}/.well-known/openid-configuration", timeout=5).json()["issuer"] == url
    yield url
    server.shutdown()
    thread.join(5)


@dataclass(frozen=True)
class Console:
    url: str
    data_dir: Path
    log: Path


@pytest.fixture(scope="session")
def console(tmp_path_factory, oidc_provider):
    home = tmp_path_factory.mktemp("oidc-console")
    data = home / "data"
    data.mkdir()
    config_text = fast_config_text()
    access = (f'[access]\noperators = ["{PEOPLE["operator"]}"]\nstaff = ["{PEOPLE["staff"]}"]\n'
              f'viewers = ["@partner.example"]\n\n')
    # Replace the repo's [access] table (up to the next table or comment block) or add one.
    config_text, found = re.subn(r"(?ms)^\[access\]\n.*?(?=^\[|^#|\Z)", lambda _: access, config_text)
    if not found:
        config_text += "\n" + access
    (home / "console.toml").write_text(config_text, encoding="utf-8")
    port = free_port()
    streamlit_dir = home / ".streamlit"
    streamlit_dir.mkdir()
    (streamlit_dir / "secrets.toml").write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        'client_id = "serverless-console"\n'
        f'client_secret = "{secrets.token_urlsafe(16)}"\n'
        f'server_metadata_url = "{oidc_provider}/.well-known/openid-configuration"\n', encoding="utf-8")
    # Streamlit reads .streamlit/secrets.toml from its working directory: start it in `home`.
    with running_console(data=data, config=home / "console.toml", port=port, cwd=home) as url:
        yield Console(url=url, data_dir=data, log=data / "streamlit.log")


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
