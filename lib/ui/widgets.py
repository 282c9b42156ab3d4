"""Small shared pieces of page chrome."""
from __future__ import annotations

import streamlit as st

from lib.auth import Forbidden
from lib.devworkers import DEV, routes
from lib.runpod import RunPodError

STATUS_ICONS = {
    "PENDING": "⏳", "IN_QUEUE": "🕒", "IN_PROGRESS": "⚙️", "COMPLETED": "✅", "FAILED": "❌",
    "CANCELLED": "🚫", "TIMED_OUT": "⌛", "SUBMIT_FAILED": "⛔", "UNKNOWN": "❓", "EXPIRED": "🗑️",
}


def backend_banner(services) -> None:
    where = routes(services)
    if any(route.target == DEV for route in where):
        st.info("Where jobs go:  \n" + "  \n".join(f"**{r.role}** → {r.target} `{r.where}`" for r in where),
                icon=":material/developer_mode:")
    elif services.simulated:
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
