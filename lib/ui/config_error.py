"""The one page shown when console.toml (or a setting) stops the console from starting."""
from __future__ import annotations

from functools import partial
from typing import NoReturn

import streamlit as st

from lib.config import ConfigError
from lib.config_help import describe, reference_section
from lib.services import Services
from lib.ui import deps


def services_or_explain() -> Services:
    """The shared services, or — when the configuration is wrong — the page that says how to fix
    it, served alone so that no page that needs the configuration can be opened."""
    try:
        return deps.services()
    except ConfigError as exc:
        _only(partial(_config_page, exc))


def _only(render) -> NoReturn:
    # Served through st.navigation even alone: an app that stops before calling it makes Streamlit
    # serve every file in pages/ by its URL.
    st.navigation([st.Page(render, title="Configuration problem", url_path="configuration", default=True)],
                  position="hidden").run()
    st.stop()


def _config_page(exc: ConfigError) -> None:
    st.title("console.toml needs a fix")
    st.write("The console has not started: nothing runs with a half-read configuration.")
    if deps.auth_configured() and not st.user.is_logged_in:
        # Who may see the details cannot be decided without the file: only signed-in people see them.
        st.button("Sign in to see what to fix", icon=":material/login:", on_click=st.login, type="primary")
        return
    problem = describe(exc, deps.settings().config_path)
    where = f"{problem.file}, line {problem.line}" if problem.line else problem.file
    st.markdown("**File**")
    st.code(where, language=None)
    st.markdown("**What is wrong**")
    st.code(problem.what, language=None, wrap_lines=True)
    if problem.fix:
        st.markdown("**What to write instead**")
        st.code(problem.fix, language="toml" if problem.fix_is_toml else None, wrap_lines=True)
    st.button("Check again", icon=":material/refresh:", type="primary")
    reference = reference_section()
    st.caption("The full reference is README.md → “Configuration reference”.")
    if reference:
        with st.expander("Configuration reference (from README.md)", expanded=False):
            st.markdown(reference)
