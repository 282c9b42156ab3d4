"""The Endpoints page's confirmations: apply settings to the live endpoint, purge the queue, raise min
workers. The open dialog lives in session state so that it survives the reruns its own buttons cause."""
from __future__ import annotations

import streamlit as st

from lib.auth import Forbidden
from lib.ops import actions
from lib.ops.hold_cost import hold_cost
from lib.ops.warmup import WarmupError
from lib.runpod import RunPodError
from lib.ui import deps, widgets

ERRORS = (RunPodError, Forbidden, WarmupError, ValueError)


def close_dialog() -> None:
    st.session_state.pop("endpoints.confirm", None)


@st.dialog("Apply settings to the live endpoint", on_dismiss=close_dialog)
def _apply_dialog(services, role: str, user, changes: dict) -> None:
    try:
        plan = actions.preview_settings(services, role, changes)
    except ERRORS as exc:
        widgets.show_error(exc, "read the live settings")
        return
    if plan.in_sync:
        st.info("The live endpoint already has these settings; nothing to change.")
        return
    st.write("This changes the endpoint on RunPod:")
    st.dataframe(actions.changes_table(plan), hide_index=True)
    if st.button("Apply", type="primary", key="endpoints.apply_ok"):
        try:
            after = actions.apply_settings(services, role, user.email, changes)
        except ERRORS as exc:
            widgets.show_error(exc, "apply the settings")
            return
        close_dialog()
        deps.toast_and_rerun("Applied." if after.in_sync else "Applied; some settings still differ.")


@st.dialog("Purge the queue", on_dismiss=close_dialog)
def _purge_dialog(services, role: str, user, label: str) -> None:
    st.warning(f"Remove every queued job of {label}? Running jobs continue.")
    if st.button("Purge", type="primary", key="endpoints.purge_ok"):
        try:
            result = actions.purge_queue(services, role, user.email)
        except ERRORS as exc:
            widgets.show_error(exc, "purge the queue")
            return
        close_dialog()
        deps.toast_and_rerun(f"Removed {result.removed} queued job(s).")


@st.dialog("Raise min workers", on_dismiss=close_dialog)
def _hold_dialog(services, role: str, user, workers: int, minutes: int) -> None:
    for line in hold_cost(services.config, role, workers=workers, minutes=minutes).lines():
        st.text(line)
    if st.button("Raise min workers", type="primary", key="endpoints.hold_ok"):
        try:
            hold = actions.hold_warm(services, role, user.email, workers=workers, minutes=minutes)
        except ERRORS as exc:
            widgets.show_error(exc, "raise min workers")
            return
        close_dialog()
        deps.toast_and_rerun(f"Min workers {hold.raised_min} until {hold.until:%H:%M} UTC, "
                             f"then back to {hold.previous_min}.")


def open_dialog(services, role: str, user, label: str) -> None:
    """The confirmation an operator's press asked for on this endpoint, if any."""
    confirm = st.session_state.get("endpoints.confirm")
    if not (confirm and user.can("apply") and confirm[1] == role):
        return
    if confirm[0] == "apply":
        _apply_dialog(services, role, user, confirm[2])
    elif confirm[0] == "hold":
        _hold_dialog(services, role, user, **confirm[2])
    else:
        _purge_dialog(services, role, user, label)
