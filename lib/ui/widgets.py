"""Small shared pieces of page chrome."""
from __future__ import annotations

import streamlit as st

from lib.auth import Forbidden
from lib.errors import ConsoleError

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
        st.error(str(exc), icon=":material/lock:")
    elif isinstance(exc, ConsoleError) and len(exc.problems) > 1:
        st.error(f"Could not {doing}:\n" + "\n".join(f"- {p}" for p in exc.problems)
                 + (f"\n\n{exc.what_to_do}" if exc.what_to_do else ""), icon=":material/error:")
    else:
        what_to_do = f" {exc.what_to_do}" if isinstance(exc, ConsoleError) and exc.what_to_do else ""
        st.error(f"Could not {doing}: {exc}{what_to_do}", icon=":material/error:")
