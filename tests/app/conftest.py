"""AppTest fixtures: the real app.py against one in-process simulator per test session.

`open_page("pages/jobs.py")` returns an AppTest already switched to that page and run.
`console` is the Services object the pages see (store, tracker, client, volume, localpod).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import streamlit as st

from lib.auth import User
from lib.config import Secret, Settings
from lib.form_state import FormState
from lib.services import build_services
from lib.ui import deps
from tests.support.pages import open_app_page

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def console(tmp_path_factory):
    data = tmp_path_factory.mktemp("console-data")
    config_text = (ROOT / "console.toml").read_text()
    config_text = re.sub(r"(?m)^time_scale = .*$", "time_scale = 0.002", config_text)
    config_text = re.sub(r"(?m)^operators = \[\]$", 'operators = ["ops@example.com"]', config_text)
    config_text = re.sub(r"(?m)^staff = \[\]$", 'staff = ["staff@example.com"]', config_text)
    config_text = re.sub(r"(?m)^viewers = \[\]$", 'viewers = ["viewer@example.com"]', config_text)
    config_path = data / "console.toml"
    config_path.write_text(config_text)
    settings = Settings(api_key=Secret(""), config_path=config_path, data_dir=data)
    services = build_services(settings)
    yield services
    services.close()


@pytest.fixture(autouse=True)
def _use_console(console, monkeypatch):
    st.cache_resource.clear()
    st.cache_data.clear()
    monkeypatch.setattr(deps, "_build", lambda: console)
    FormState(console.data_dir).clear()   # each test starts from empty forms, as a new user would
    yield
    st.cache_data.clear()


VIEWER = User("viewer@example.com", "viewer")
STAFF = User("staff@example.com", "staff")
OPERATOR = User("ops@example.com", "operator")


@pytest.fixture
def users():
    """Signed-in people of each role, as listed in the test console.toml's [access]."""
    return {"viewer": VIEWER, "staff": STAFF, "operator": OPERATOR}


@pytest.fixture
def open_page():
    return open_app_page
