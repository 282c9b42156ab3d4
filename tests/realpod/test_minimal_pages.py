"""The console started with a minimal console.toml against a doc-exact RunPod stand-in: every page
renders, a role left out says how to add it, and nothing crashes."""
from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lib.auth import LOCAL_OPERATOR
from lib.config import Settings
from lib.services import build_services
from lib.ui import deps
from tests.realpod.conftest import minimal_config

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["pages/overview.py", "pages/jobs.py", "pages/endpoints.py", "pages/models.py", "pages/costs.py",
         "pages/generate.py", "pages/gallery.py", "pages/special.py", "pages/datasets.py", "pages/training.py",
         "pages/audit.py", "pages/provisioning.py", "pages/connection.py"]
ROLE_PAGES = {"image": "pages/generate.py", "special": "pages/special.py", "training": "pages/training.py"}


def everything_shown(at: AppTest) -> str:
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success",
                 "code", "text", "metric"):
        for element in getattr(at, kind):
            parts.append(str(getattr(element, "value", "")) + " " + str(getattr(element, "label", "")))
    return "\n".join(parts)


@pytest.fixture
def start_console(standin, write_config, tmp_path, monkeypatch):
    started = []

    def _start(text: str):
        env = {**standin.console_env(), "CONSOLE_CONFIG": str(write_config(text)),
               "CONSOLE_DATA": str(tmp_path / "data")}
        services = build_services(Settings.from_env(env), start_tracker=False)
        started.append(services)
        st.cache_resource.clear()
        st.cache_data.clear()
        monkeypatch.setattr(deps, "_build", lambda: services)
        return services
    yield _start
    st.cache_resource.clear()
    st.cache_data.clear()
    for services in started:
        services.close()


@pytest.fixture(params=[("image", "training", "special"), ("image",)], ids=["all-roles", "image-only"])
def console(request, start_console):
    return request.param, start_console(minimal_config(request.param))


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["auth.user"] = LOCAL_OPERATOR
    at.run()
    assert not at.exception, at.exception
    if page != "pages/overview.py":
        at.switch_page(page).run()
    return at


def test_every_page_renders_with_a_minimal_file(console):
    roles, _ = console
    for page in PAGES:
        at = open_page(page)
        assert not at.exception, f"{page}: {at.exception}"
        shown = everything_shown(at)
        assert "Traceback" not in shown, page
    for role, page in ROLE_PAGES.items():
        shown = everything_shown(open_page(page))
        if role in roles:
            assert "is not configured" not in shown, page
        else:
            assert f"The {role} endpoint is not configured" in shown, page
            assert f"[endpoints.{role}]" in shown, f"{page} says how to add it"


def test_overview_shows_the_live_queues(console):
    roles, _ = console
    at = open_page("pages/overview.py")
    queues = {m.label: m.value for m in at.metric if m.label == "In queue"}
    assert queues, everything_shown(at)
    values = [m.value for m in at.metric if m.label == "In queue"]
    assert "3" in values  # the stand-in's image endpoint has 3 waiting jobs
    assert len(values) == len(roles)


def test_a_pool_without_a_price_is_a_warning_on_costs(start_console):
    start_console(minimal_config(("image",)) + 'gpu_pools = ["ADA_32_PRO"]\n')
    at = open_page("pages/costs.py")
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert any("No price for pool ADA_32_PRO: costs for the image endpoint are not estimated" in w
               for w in warnings), warnings
