"""Running the real app.py in AppTest: the console the pages see, and opening one page as a user."""
from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lib.auth import LOCAL_OPERATOR, User
from lib.config import Settings
from lib.services import Services, build_services
from lib.ui import deps

APP = str(Path(__file__).resolve().parents[2] / "app.py")
DEFAULT_PAGE = "pages/overview.py"


def open_app_page(page: str = DEFAULT_PAGE, *, user: User | None = None, timeout: float = 30) -> AppTest:
    """app.py run as `user` (default: the local operator a loopback console gets), then switched to `page`."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.session_state["auth.user"] = user or LOCAL_OPERATOR
    at.run()
    assert not at.exception, at.exception
    if page != DEFAULT_PAGE:
        # AppTest runs a switched-to page on its own, without app.py's chrome around it.
        at.switch_page(page).run()
        assert not at.exception, f"{page}: {at.exception}"
    return at


class PagesConsole:
    """Builds the console the pages see from `Settings` (the last one built is served); closes all."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.monkeypatch = monkeypatch
        self.started: list[Services] = []

    def __call__(self, settings: Settings) -> Services:
        services = build_services(settings, start_tracker=False)
        self.started.append(services)
        st.cache_resource.clear()
        st.cache_data.clear()
        self.monkeypatch.setattr(deps, "_build", lambda: services)
        return services

    def close(self) -> None:
        st.cache_resource.clear()
        st.cache_data.clear()
        for services in self.started:
            services.close()
