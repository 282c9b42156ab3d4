"""Refreshing part of a page while work runs: a fragment on a timer that one full run switches off."""
from __future__ import annotations

from collections.abc import Callable

import streamlit as st


def refresh_while(active: bool, scope: str, render: Callable[..., None], *args, every: str = "1s") -> None:
    """Run `render(*args)` as a fragment that re-runs every `every` while `active`.

    `render` calls `stop_refreshing_when(finished, scope)` on each run."""
    st.session_state[f"{scope}.polling"] = active
    st.fragment(run_every=every if active else None)(render)(*args)


def stop_refreshing_when(finished: bool, scope: str) -> None:
    """Once the work `scope` refreshes for has finished, one full run redraws the page without the timer."""
    if finished and st.session_state.pop(f"{scope}.polling", False):
        st.rerun()
