"""Small shared pieces of page chrome."""
from __future__ import annotations

import streamlit as st

from lib.auth import Forbidden
from lib.runpod import RunPodError

# Material icons (Streamlit's own font), not emoji: Debian ships no emoji font, so emoji showed as
# empty boxes. An icon never stands alone: every use puts the status in words beside it.
STATUS_ICONS = {
    "PENDING": ":material/schedule_send:", "IN_QUEUE": ":material/hourglass_top:",
    "IN_PROGRESS": ":material/progress_activity:", "COMPLETED": ":material/check_circle:",
    "FAILED": ":material/error:", "CANCELLED": ":material/cancel:", "TIMED_OUT": ":material/timer_off:",
    "SUBMIT_FAILED": ":material/block:", "UNKNOWN": ":material/help:", "EXPIRED": ":material/delete_history:",
}


def status_words(status: str) -> str:
    """'Timed out' for TIMED_OUT: the status as a person reads it (and a screen reader says it)."""
    return status.replace("_", " ").capitalize()


def backend_banner(services) -> None:
    if services.simulated:
        st.info(f"**Local simulator** — no RunPod key is set, so every job runs on localpod "
                f"(cold starts compressed ×{services.config.simulator.time_scale:g}). "
                "Historic traffic and billing are simulated.", icon=":material/science:")
    else:
        st.success("Connected to **RunPod** — jobs run on real GPUs and cost money.",
                   icon=":material/cloud:")


def show_error(exc: Exception, doing: str) -> None:
    """A clear message naming what failed and what to do; never a traceback."""
    if isinstance(exc, Forbidden):
        st.error(str(exc), icon=":material/lock:")
    elif isinstance(exc, RunPodError):
        st.error(f"Could not {doing}: {exc}", icon=":material/error:")
    else:
        st.error(f"Could not {doing}: {exc}", icon=":material/error:")
