"""Telling a double click from a deliberate second press of a submit button.

Streamlit reruns the page for each click, so both clicks of a double click reach the page; the
request key (deps.idempotency_key) makes the store send one job for both. A form whose result differs
on every press (a random seed) gets a new key on a press that comes after the double-click window."""
from __future__ import annotations

import time

import streamlit as st

from lib.ui import deps

DOUBLE_CLICK_S = 2.0  # a second press within this time of the previous one is the same request


def press_key(scope: str, form_values: object, *, repeatable: bool) -> str:
    """The request key of this press; `repeatable` forms get a fresh one per deliberate press."""
    now = time.monotonic()
    last = st.session_state.get(f"press.{scope}")
    if repeatable and last is not None and now - last > DOUBLE_CLICK_S:
        deps.new_request(scope)
    st.session_state[f"press.{scope}"] = now
    return deps.idempotency_key(scope, form_values)
