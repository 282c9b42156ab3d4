"""Live job views shared by the Generate, Gallery and Special pages."""
from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from lib import inference as inf
from lib.ui.job_errors import job_line
from lib.ui.widgets import STATUS_ICONS

# While a job the page shows is unfinished its view reruns this often: the tracker stores a
# result within a few hundred ms of RunPod finishing, and a 1 s refresh added 0.5 s on average
# (bench/bench_live.py). A rerun of a job list costs ~20 ms of CPU; with nothing active the timer
# is off.
ACTIVE_REFRESH = "250ms"


def show_problems(title: str, problems) -> None:
    st.error(title + "\n" + "\n".join(f"- {p}" for p in problems), icon=":material/block:")


def feedback(result: inf.SubmitResult, duplicate: str) -> None:
    for error in result.errors:
        st.error(error, icon=":material/error:")
    if result.duplicate:
        st.info(duplicate, icon=":material/info:")


def job_list(svc, user, state_key: str) -> None:
    """Status lines and results of the jobs in session_state[state_key], refreshed while running."""
    views = inf.job_views(svc.store, st.session_state.get(state_key, []))
    for view in views:
        job_line(f"{STATUS_ICONS.get(view.record.status, '')} {view.line}", view.error,
                 key=f"{state_key}.{view.record.local_id}", svc=svc, user=user, local_id=view.record.local_id)
    images = [i for v in views for i in v.images]
    if images:
        st.image([str(i.path) for i in images], caption=[i.name for i in images], width=256)
    if any(not v.record.is_final for v in views):
        if st.button("Cancel unfinished", key=f"{state_key}.cancel", icon=":material/cancel:"):
            st.toast(f"Cancel sent for {inf.cancel_unfinished(svc, st.session_state[state_key], user.email)} job(s)")
    elif st.session_state.pop(f"{state_key}.polling", False):
        st.rerun()  # everything finished: one full run stops the timer


def live_fragment(svc, state_key: str, render: Callable[[str], None]) -> None:
    """Run `render(state_key)` as a fragment that refreshes often while a job is unfinished."""
    active = any(not v.record.is_final for v in inf.job_views(svc.store, st.session_state.get(state_key, [])))
    st.session_state[f"{state_key}.polling"] = active
    st.fragment(run_every=ACTIVE_REFRESH if active else None)(render)(state_key)
