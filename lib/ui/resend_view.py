"""A refused re-run, vary seed or retry: why it was not sent, and a way to fix it in Generate."""
from __future__ import annotations

import streamlit as st

from lib import resend
from lib.store import JobRecord


def open_in_generate(record: JobRecord) -> None:
    st.session_state.update(resend.generate_form(record))
    st.switch_page("pages/generate.py")


def show_refusal(verdict: resend.ResendVerdict, record: JobRecord, key: str) -> None:
    st.error(verdict.summary + "".join(f"\n- {p}" for p in verdict.problems), icon=":material/block:")
    if verdict.can_open_in_generate and st.button("Open in Generate", key=f"{key}.open",
                                                  icon=":material/open_in_new:"):
        open_in_generate(record)
