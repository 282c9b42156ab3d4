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

import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import werkzeug.serving
from oidc_provider_mock import User, app as oidc_app

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
PEOPLE = {"viewer": "vera.viewer@partner.example", "staff": "sam.staff@example.com",
          "operator": "olga.ops@example.com"}
NAMES = {"viewer": "Vera Viewer", "staff": "Sam Staff", "operator": "Olga Ops"}


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
    config_text = re.sub(r"(?m)^time_scale = .*$", "time_scale = 0.005",
                         (ROOT / "console.toml").read_text(encoding="utf-8"))
    access = (f'[access]\noperators = ["{PEOPLE["operator"]}"]\nstaff = ["{PEOPLE["staff"]}"]\n'
              f'viewers = ["@partner.example"]\n\n')
    # Replace the repo's [access] table (up to the next table or comment block) or add one.
    config_text, found = re.subn(r"(?ms)^\[access\]\n.*?(?=^\[|^#|\Z)", lambda _: access, config_text)
    if not found:
        config_text += "\n" + access
    (home / "console.toml").write_text(config_text, encoding="utf-8")
    port = _free_port()
    streamlit_dir = home / ".streamlit"
    streamlit_dir.mkdir()
    (streamlit_dir / "secrets.toml").write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        'client_id = "serverless-console"\n'
        f'client_secret = "{secrets.token_urlsafe(16)}"\n'
        f'server_metadata_url = "{oidc_provider}/.well-known/openid-configuration"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env.update(CONSOLE_DATA=str(data), CONSOLE_CONFIG=str(home / "console.toml"), PYTHONPATH=str(ROOT))
    log_path = home / "streamlit.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", "--global.developmentMode", "false"],
        cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).text == "ok":
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        proc.terminate()
        raise RuntimeError("streamlit did not start: " + log_path.read_text()[-3000:])
    yield Console(url=url, data_dir=data, log=log_path)
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
