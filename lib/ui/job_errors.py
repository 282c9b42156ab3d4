"""A job's status line in a page; when it failed, the readable explanation once, a Retry where it
helps, and the worker's raw text one click away.

For a failed job the status line (lib.overview.status_line) already carries the readable summary,
so it heads the error box and is not repeated. Worker text is shown literally, never as Markdown.
"""
from __future__ import annotations

import streamlit as st

from lib.auth import require
from lib.runpod import RunPodError
from lib.ui import deps
from lib.ui.safe_text import escaped
from lib.ui.widgets import show_error
from lib.workflows.worker_errors import WorkerErrorView


def job_line(line: str, view: WorkerErrorView | None, *, key: str, svc=None, user=None,
             local_id: str | None = None, icon: str = "") -> None:
    """`line` as text after the status `icon` (a Material icon, drawn only by a Markdown element), or, for
    a failed job (`view`), as the head of its error box."""
    if view is None:
        st.markdown(f"{icon} {escaped(line)}".strip())
        return
    st.error(escaped("\n\n".join([line, *view.lines])), icon=":material/error:")
    if view.retryable and svc is not None and local_id and st.button(
            "Retry", key=f"{key}.retry", icon=":material/replay:", help="Run the same job again on RunPod"):
        try:
            require(user, "retry")
            svc.tracker.retry(local_id, user.email)
            deps.toast_and_rerun("Job re-queued under the same id")
        except (RunPodError, PermissionError, ValueError) as exc:
            show_error(exc, "retry the job")
    if view.raw:
        with st.expander("The worker's message (raw, for debugging)"):
            st.code(view.raw, language=None)
