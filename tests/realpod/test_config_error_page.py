"""A wrong console.toml is one page that says where and what to write, with nothing else to open."""
from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lib.config import Secret, Settings
from lib.services import build_services
from lib.ui import deps

ROOT = Path(__file__).resolve().parents[2]
CANARY = "rpa_CANARY_7F3C9D2E41B84A6F9E0D5C1B2A3F4E5D"


def texts(at: AppTest) -> str:
    parts = [e.value for e in at.code] + [e.value for e in at.markdown] + [e.value for e in at.title]
    return "\n".join(str(p) for p in parts)


@pytest.fixture
def app_with_config(tmp_path, monkeypatch):
    def _open(text: str) -> AppTest:
        path = tmp_path / "console.toml"
        path.write_text(text, encoding="utf-8")
        settings = Settings(api_key=Secret(""), config_path=path, data_dir=tmp_path / "data")
        st.cache_resource.clear()
        monkeypatch.setattr(deps, "_build", lambda: build_services(settings, start_tracker=False))
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
        at.run()
        return at
    yield _open
    st.cache_resource.clear()


@pytest.mark.parametrize("text, says, fix", [
    ('[volume]\nid = "v"\n[endpoints.image]\nid = "x"\nworkers_mx = 2\n',
     ("line 5", "unknown key 'workers_mx'", "did you mean 'workers_max'"), "replace workers_mx with workers_max"),
    ('[volume]\nid = "v"\n[endpoints.imgae]\nid = "x"\n', ("line 3", "did you mean 'image'"), "replace imgae"),
    ('[volume]\nid = "v"\n[endpoints.image]\nid = "x\n', ("not valid TOML", "line 4"), "fix the syntax"),
    ('[volume]\nid = "v"\n[endpoints.image]\nid = "x"\nworkers_max = "3"\n', ("line 5", "whole number"),
     "workers_max = 3"),
    (f'[volume]\nid = "v"\napi_key = "{CANARY}"\n[endpoints.image]\nid = "x"\n',
     ("line 3", "looks like a secret"), "RUNPOD_API_KEY"),
])
def test_a_config_mistake_is_one_clear_page(app_with_config, text, says, fix):
    at = app_with_config(text)
    assert not at.exception, "a configuration mistake is not a crash"
    shown = texts(at)
    assert "console.toml needs a fix" in shown
    for fragment in says:
        assert fragment in shown, f"{fragment!r} not on the page:\n{shown}"
    assert fix in shown
    assert "Configuration reference" in shown or any("Configuration reference" in e.label for e in at.expander)
    assert CANARY not in shown and CANARY[4:20] not in shown
    # Nothing but this page is routed: the sidebar has no navigation to pages that cannot work.
    assert not at.sidebar.button and not [p for p in at.sidebar.markdown]


def test_a_missing_file_says_how_to_make_one(app_with_config, tmp_path, monkeypatch):
    settings = Settings(api_key=Secret(""), config_path=tmp_path / "absent.toml", data_dir=tmp_path / "d")
    st.cache_resource.clear()
    monkeypatch.setattr(deps, "_build", lambda: build_services(settings, start_tracker=False))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception
    shown = texts(at)
    assert "not found (set CONSOLE_CONFIG)" in shown and "minimal file is in the README" in shown
