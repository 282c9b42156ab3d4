"""Shared steps of the sign-in browser tests: the OpenID provider and a console home configured for it,
reading the audit trail, opening pages, typing a prompt."""
from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import werkzeug.serving
from oidc_provider_mock import User
from oidc_provider_mock import app as oidc_app

from lib.store import JobStore
from tests.console_server import fast_config_text
from tests.support.waiting import wait_until

PEOPLE = {"viewer": "vera.viewer@partner.example", "staff": "sam.staff@example.com",
          "operator": "olga.ops@example.com"}
NAMES = {"viewer": "Vera Viewer", "staff": "Sam Staff", "operator": "Olga Ops"}


@contextmanager
def running_oidc_provider() -> Iterator[str]:
    """A real OpenID provider on loopback that knows PEOPLE (verified e-mail addresses); yields its URL."""
    users = [User(sub=email, claims={"email": email, "email_verified": True, "name": NAMES[role]})
             for role, email in PEOPLE.items()]
    server = werkzeug.serving.make_server("127.0.0.1", 0, oidc_app(user_claims=users), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                              name="oidc-provider")
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        assert httpx.get(f"{url}/.well-known/openid-configuration", timeout=5).json()["issuer"] == url
        yield url
    finally:
        server.shutdown()
        thread.join(5)


def write_oidc_home(home: Path, port: int, provider: str) -> Path:
    """A console working directory `home` with .streamlit/secrets.toml [auth] for `provider`, a data
    folder `home/data` and console.toml whose [access] gives PEOPLE their roles; returns console.toml."""
    (home / "data").mkdir(exist_ok=True)
    access = (f'[access]\noperators = ["{PEOPLE["operator"]}"]\nstaff = ["{PEOPLE["staff"]}"]\n'
              f'viewers = ["@partner.example"]\n\n')
    # Replace the repo's [access] table (up to the next table or comment block) or add one.
    config_text, found = re.subn(r"(?ms)^\[access\]\n.*?(?=^\[|^#|\Z)", lambda _: access, fast_config_text())
    if not found:
        config_text += "\n" + access
    config = home / "console.toml"
    config.write_text(config_text, encoding="utf-8")
    streamlit_dir = home / ".streamlit"
    streamlit_dir.mkdir(exist_ok=True)
    (streamlit_dir / "secrets.toml").write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        'client_id = "serverless-console"\n'
        f'client_secret = "{secrets.token_urlsafe(16)}"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n', encoding="utf-8")
    return config


def audit_entries(console, **filters):
    store = JobStore(console.data_dir)
    try:
        return store.audit_entries(**filters)
    finally:
        store.close()


def wait_for_audit(console, timeout_s: float = 20, **filters):
    return wait_until(lambda: audit_entries(console, **filters), timeout_s, what=f"an audit entry {filters}",
                      interval_s=0.2)


def open_page(page, title: str, wait_idle) -> None:
    link = page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True)
    target = link.get_attribute("href")
    link.click()
    page.wait_for_url(target)
    wait_idle(page)


def type_prompt(page, text: str, wait_idle) -> None:
    prompt = page.get_by_label("Prompt")
    prompt.fill(text)
    prompt.blur()  # Streamlit applies a text area's value when it loses focus
    wait_idle(page)
