"""Small shared pieces of page chrome."""
from __future__ import annotations

import streamlit as st

from lib.auth import Forbidden
from lib.ui.safe_text import escaped

STATUS_ICONS = {
    "PENDING": "⏳", "IN_QUEUE": "🕒", "IN_PROGRESS": "⚙️", "COMPLETED": "✅", "FAILED": "❌",
    "CANCELLED": "🚫", "TIMED_OUT": "⌛", "SUBMIT_FAILED": "⛔", "UNKNOWN": "❓", "EXPIRED": "🗑️",
}


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
        st.error(escaped(exc), icon=":material/lock:")
    else:  # what failed may quote a worker, RunPod or a file name: shown as text, never Markdown
        st.error(f"Could not {escaped(doing)}: {escaped(exc)}", icon=":material/error:")
