"""Pages of an endpoint role the team left out of console.toml say so, and how to add it."""
from __future__ import annotations

import streamlit as st

from lib.config import endpoint_snippet


def require_endpoint(services, role: str, what: str) -> None:
    """Stop the page with a note when console.toml declares no [endpoints.<role>]."""
    if services.config.has(role):
        return
    st.info(f"The {role} endpoint is not configured, so {what} is not available in this console.",
            icon=":material/construction:")
    st.markdown(f"To add it, put these lines in `{services.settings.config_path}` and restart the console "
                "(README → Configuration reference):")
    st.code(endpoint_snippet(role), language="toml")
    st.stop()
