"""Generate's Model preset box: a workflow saved on the page is selected at once, and a preset's own
prompt (a saved workflow's) fills an empty prompt box, as its negative prompt does."""
from __future__ import annotations

from collections.abc import Mapping

import streamlit as st

from lib.workflows.templates import Template

SAVED = "gen.saved"


def model_preset(templates: Mapping[str, Template]) -> Template:
    def prefill_prompt() -> None:
        default = str(templates[st.session_state["gen.model"]].defaults.get("prompt") or "")
        if default and not str(st.session_state.get("gen.prompt") or "").strip():
            st.session_state["gen.prompt"] = default

    if st.session_state.get(SAVED) in templates:
        st.session_state["gen.model"] = st.session_state.pop(SAVED)
        prefill_prompt()
        st.success(f"Saved **{st.session_state['gen.model']}** — it is now in the Model preset list, selected.")
    return templates[st.selectbox("Model preset", list(templates), key="gen.model", on_change=prefill_prompt)]


def select_saved(title: str) -> None:
    """Rerun with the workflow just saved as the selected preset."""
    st.session_state[SAVED] = title
    st.rerun()
