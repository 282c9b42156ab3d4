"""Refreshing part of a page while work runs: a fragment on a timer that one full run switches off."""
from __future__ import annotations

from collections.abc import Callable

import streamlit as st

# While a job runs its view refreshes this often, so a result is on screen soon after RunPod finishes
# (bench/bench_live.py); with nothing running a view does not refresh at all.
ACTIVE_REFRESH = "250ms"


def refresh_while(active: bool, scope: str, render: Callable[..., None], *args, every: str = ACTIVE_REFRESH) -> None:
    """Run `render(*args)` as a fragment that re-runs every `every` while `active`.

    `render` calls `stop_refreshing_when(finished, scope)` on each run."""
    st.session_state[f"{scope}.polling"] = active
    st.fragment(run_every=every if active else None)(render)(*args)


def stop_refreshing_when(finished: bool, scope: str) -> None:
    """Once the work `scope` refreshes for has finished, one full run redraws the page without the timer."""
    if finished and st.session_state.pop(f"{scope}.polling", False):
        st.rerun()
