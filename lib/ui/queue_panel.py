"""The live queue in the sidebar of every page: the signed-in user's unfinished jobs with status,
phase, progress and elapsed time, and Cancel behind a confirmation that says what it costs."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import streamlit as st

from lib import live_queue
from lib.runpod import RunPodError
from lib.ui import deps, widgets

if TYPE_CHECKING:
    from lib.services import Services

# The panel is drawn before the page runs, so a job the page sends appears at the next refresh; a job
# that ends leaves the queue at most this long after the console has seen it end (bench/bench_live.py).
REFRESH = "500ms"
# With only LoRA trainings in flight (they run for many minutes, often hours, with a tab left open):
# seeing one end 2 s late costs nothing, and four refreshes a second in every open tab for hours would.
TRAINING_REFRESH = "2s"
# With nothing of the user's in flight it looks for a job just sent by this page or another tab: often
# enough that a new job shows within seconds, rarely enough that an idle console costs next to
# nothing (bench/bench_idle.py; a refresh is one small store query).
IDLE_REFRESH = "5s"


# The job whose Cancel… was pressed, while its confirmation is open. The dialog is opened by the page's
# full run, outside the refreshing panel, and the panel's timer waits meanwhile: a dialog opened inside
# the panel was removed again by the panel's next timed run (the click seemed to do nothing).
CONFIRMING = "queue.confirming"


def _forget_confirmation() -> None:
    st.session_state.pop(CONFIRMING, None)


@st.dialog("Cancel this job?", on_dismiss=_forget_confirmation)
def confirm_cancel(svc: Services, user, local_id: str) -> None:
    record = svc.store.get(local_id)
    entry = live_queue.entry(record, datetime.now(UTC))
    st.text(f"{entry.what} — {entry.status.lower()}, {entry.phase}, {entry.elapsed} so far")
    for line in live_queue.cancel_consequences(record):
        st.text(f"• {line}")
    keep, cancel = st.columns(2)
    if keep.button("Keep it running", key="queue.keep", width="stretch"):
        _forget_confirmation()
        st.rerun()
    if cancel.button("Cancel the job", type="primary", key="queue.cancel_ok", width="stretch",
                     disabled=record.is_final):
        try:
            svc.tracker.cancel(local_id, user.email)
        except (RunPodError, PermissionError) as exc:
            widgets.show_error(exc, "cancel the job")
            return
        _forget_confirmation()
        deps.toast_and_rerun(f"Cancel sent for {entry.what}")


# The timer the panel was drawn with (see _timer). A panel that finds the user's jobs want another runs
# the page once more, which sets the timer anew: a finished job leaves no fast timer running behind it
# (an idle tab costs next to nothing), and a job sent from another tab gets one.
TIMER = "queue.timer"


def _timer(entries: list[live_queue.QueueEntry]) -> str:
    if not entries:
        return IDLE_REFRESH
    return TRAINING_REFRESH if all(e.is_training for e in entries) else REFRESH


def _panel(svc: Services, user) -> None:
    entries = live_queue.unfinished(svc.store, user.email)
    st.markdown("**My queue**")
    if not entries:
        st.caption("Nothing queued or running.")
    for entry in entries:
        with st.container(border=True, key=f"queue.job.{entry.local_id}"):
            st.text(f"{entry.what}\n{entry.status} · {entry.elapsed}")
            st.caption(entry.phase)
            if entry.progress is not None:
                st.progress(entry.progress)
            if user.can("cancel") and st.button("Cancel…", key=f"queue.cancel.{entry.local_id}",
                                                icon=":material/cancel:"):
                st.session_state[CONFIRMING] = entry.local_id
                st.rerun()
    if _timer(entries) != st.session_state.get(TIMER) and not st.session_state.get(CONFIRMING):
        st.rerun()


def sidebar(svc: Services, user) -> None:
    """Draw the queue in the sidebar; it refreshes itself."""
    confirming = st.session_state.get(CONFIRMING)
    timer = st.session_state[TIMER] = _timer(live_queue.unfinished(svc.store, user.email))
    with st.sidebar:
        st.fragment(run_every=None if confirming else timer)(_panel)(svc, user)
    if confirming:
        confirm_cancel(svc, user, confirming)
