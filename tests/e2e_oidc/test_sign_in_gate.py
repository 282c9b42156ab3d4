"""The sign-in gate without a browser (AppTest): [auth] in secrets must turn OpenID Connect sign-in on.

Streamlit hands nested secrets tables over as AttrDict, a Mapping that is not a dict.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import streamlit as st
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from lib.config import Secret, Settings
from lib.services import build_services
from lib.ui import deps

ROOT = Path(__file__).resolve().parents[2]
AUTH = {"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "cookie_secret": "not-a-real-secret",
        "client_id": "serverless-console", "client_secret": "not-a-real-secret",
        "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}


@pytest.fixture(scope="module")
def quiet_console(tmp_path_factory):
    data = tmp_path_factory.mktemp("gate")
    config = data / "console.toml"
    text = re.sub(r"(?m)^time_scale = .*$", "time_scale = 0.002", (ROOT / "console.toml").read_text(encoding="utf-8"))
    # The repo's [access] table (up to the next table or comment block) becomes one operator.
    text = re.sub(r"(?ms)^\[access\]\n.*?(?=^\[|^#|\Z)", "", text)
    config.write_text(text + '\n[access]\noperators = ["olga.ops@example.com"]\n', encoding="utf-8")
    services = build_services(Settings(api_key=Secret(""), config_path=config, data_dir=data), start_tracker=False)
    yield services
    services.close()


@pytest.fixture
def app(quiet_console, monkeypatch):
    st.cache_resource.clear()
    monkeypatch.setattr(deps, "_build", lambda: quiet_console)
    yield AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    st.cache_resource.clear()


def test_auth_in_secrets_asks_for_sign_in_instead_of_letting_a_local_operator_in(app):
    """FINDING: lib/ui/deps.py checks isinstance(secrets["auth"], dict); Streamlit's AttrDict is not
    a dict, so a console configured for OpenID Connect lets everyone on loopback in as operator."""
    app.secrets["auth"] = AUTH
    app.user = {"is_logged_in": False}
    app.run()
    assert not app.exception
    assert [b.label for b in app.button] == ["Sign in"]
    assert not any("Signed in as" in c.value for c in app.sidebar.caption)


def test_a_signed_in_person_gets_the_role_from_console_toml(app):
    app.secrets["auth"] = AUTH
    app.user = {"is_logged_in": True, "email": "Olga.Ops@example.com", "name": "Olga Ops"}
    app.run()
    assert not app.exception
    assert any("Signed in as **Olga Ops** (operator)" in c.value for c in app.sidebar.caption)
    assert "Sign out" in [b.label for b in app.sidebar.button]


def test_a_signed_in_stranger_is_refused(app):
    app.secrets["auth"] = AUTH
    app.user = {"is_logged_in": True, "email": "eve@elsewhere.example", "name": "Eve"}
    app.run()
    assert not app.exception
    assert any("This account is not allowed in this console" in e.value for e in app.error)
    assert [t.value for t in app.text] == ["eve@elsewhere.example"]  # as text: it comes from the provider
    assert [b.label for b in app.button] == ["Sign out"]


def test_without_auth_a_loopback_console_is_the_local_operator(app):
    previous = st_config.get_option("server.address")
    st_config.set_option("server.address", "127.0.0.1")
    try:
        app.run()
    finally:
        st_config.set_option("server.address", previous)
    assert not app.exception
    assert any("Local operator" in c.value for c in app.sidebar.caption)


def test_a_provider_identity_named_like_the_local_operator_is_refused(app):
    """FINDING: lib/access.py made local-operator@localhost an operator whatever [access] said, so an
    identity provider that lets a user pick that address granted operator."""
    app.secrets["auth"] = AUTH
    app.user = {"is_logged_in": True, "email": "local-operator@localhost", "email_verified": True,
                "name": "Mallory"}
    app.run()
    assert not app.exception
    assert any("This account is not allowed in this console" in e.value for e in app.error)
    assert not any("Signed in as" in c.value for c in app.sidebar.caption)


def test_an_unverified_email_is_refused(app):
    """FINDING: email_verified was never checked: anyone who could register olga.ops@example.com at
    the provider, unverified, was the operator."""
    app.secrets["auth"] = AUTH
    app.user = {"is_logged_in": True, "email": "olga.ops@example.com", "email_verified": False, "name": "Olga?"}
    app.run()
    assert not app.exception
    assert any("not verified" in e.value for e in app.error)
    assert not any("Signed in as" in c.value for c in app.sidebar.caption)


def test_someone_removed_from_access_is_refused_at_the_next_click_without_a_restart(app, quiet_console):
    """FINDING: [access] was read once at start: removing someone took effect only after a restart."""
    app.secrets["auth"] = AUTH
    app.user = {"is_logged_in": True, "email": "olga.ops@example.com", "email_verified": True, "name": "Olga Ops"}
    app.run()
    assert any("Signed in as **Olga Ops** (operator)" in c.value for c in app.sidebar.caption)
    path = quiet_console.config.path
    before = path.read_text(encoding="utf-8")
    try:
        path.write_text(before.replace('operators = ["olga.ops@example.com"]', 'operators = ["ops@example.com"]'),
                        encoding="utf-8")
        app.run()
        assert any("This account is not allowed in this console" in e.value for e in app.error)
        assert not any("Signed in as" in c.value for c in app.sidebar.caption)
    finally:
        path.write_text(before, encoding="utf-8")
