"""Live job views shared by the Generate, Gallery and Special pages."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import streamlit as st

from lib import inference as inf
from lib.ui import pictures
from lib.ui.job_errors import job_line
from lib.ui.refresh import refresh_while, stop_refreshing_when
from lib.ui.widgets import STATUS_ICONS

if TYPE_CHECKING:
    from lib.services import Services


def show_problems(title: str, problems) -> None:
    st.error(title + "\n" + "\n".join(f"- {p}" for p in problems), icon=":material/block:")


def feedback(result: inf.SubmitResult, duplicate: str) -> None:
    for error in result.errors:
        st.error(error, icon=":material/error:")
    if result.duplicate:
        st.info(duplicate, icon=":material/info:")


def job_list(svc: Services, user, state_key: str) -> None:
    """Status lines and results of the jobs in session_state[state_key], refreshed while running."""
    views = inf.job_views(svc.store, st.session_state.get(state_key, []))
    for view in views:
        job_line(view.line, view.error, icon=STATUS_ICONS.get(view.record.status, ""),
                 key=f"{state_key}.{view.record.local_id}", svc=svc, user=user, local_id=view.record.local_id)
    images = [i for v in views for i in v.images]
    if images:
        pictures.show(svc, [i.path for i in images], [i.name for i in images], width=256)
    unfinished = any(not v.record.is_final for v in views)
    if unfinished and st.button("Cancel unfinished", key=f"{state_key}.cancel", icon=":material/cancel:"):
        st.toast(f"Cancel sent for {inf.cancel_unfinished(svc, st.session_state[state_key], user.email)} job(s)")
    stop_refreshing_when(not unfinished, state_key)


def live_fragment(svc: Services, state_key: str, render: Callable[[str], None]) -> None:
    """Run `render(state_key)` as a fragment that refreshes often while a job is unfinished."""
    active = any(not v.record.is_final for v in inf.job_views(svc.store, st.session_state.get(state_key, [])))
    refresh_while(active, state_key, render, state_key)
