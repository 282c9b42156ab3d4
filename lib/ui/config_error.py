"""The one page shown when console.toml (or a setting) stops the console from starting."""
from __future__ import annotations

from typing import NoReturn

import streamlit as st

from lib.config import ConfigError, Settings
from lib.config_help import describe, reference_section
from lib.services import Services
from lib.ui import deps
from lib.volume import VolumeError


def services_or_explain() -> Services:
    """The shared services, or — when the configuration is wrong — the page that says how to fix
    it, served alone so that no page that needs the configuration can be opened."""
    try:
        return deps.services()
    except ConfigError as exc:
        _only(lambda: _config_page(exc))
    except VolumeError as exc:  # real RunPod without an S3 key, or an unusable S3 setting
        _only(lambda: _settings_page(exc))


def _only(render) -> NoReturn:
    # Served through st.navigation even alone: an app that stops before calling it makes Streamlit
    # serve every file in pages/ by its URL.
    st.navigation([st.Page(render, title="Configuration problem", url_path="configuration", default=True)],
                  position="hidden").run()
    st.stop()


def _config_page(exc: ConfigError) -> None:
    problem = describe(exc, Settings.from_env().config_path)
    st.title("console.toml needs a fix")
    st.write("The console has not started: nothing runs with a half-read configuration.")
    where = f"{problem.file}, line {problem.line}" if problem.line else problem.file
    st.markdown("**File**")
    st.code(where, language=None)
    st.markdown("**What is wrong**")
    st.code(problem.what, language=None, wrap_lines=True)
    if problem.fix:
        st.markdown("**What to write instead**")
        st.code(problem.fix, language="toml" if problem.fix_is_toml else None, wrap_lines=True)
    _reference_and_retry()


def _settings_page(exc: VolumeError) -> None:
    st.title("A setting is missing")
    st.write("The console has not started.")
    st.code(str(exc), language=None, wrap_lines=True)
    _reference_and_retry()


def _reference_and_retry() -> None:
    st.button("Check again", icon=":material/refresh:", type="primary")
    reference = reference_section()
    st.caption("The full reference is README.md → “Configuration reference”.")
    if reference:
        with st.expander("Configuration reference (from README.md)", expanded=False):
            st.markdown(reference)
