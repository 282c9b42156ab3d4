"""Endpoints: live health, declared vs live settings (drift, apply), cold starts, purge and warm-up."""
import streamlit as st

from lib import devworkers
from lib.auth import Forbidden
from lib.charts.ops import cold_starts_figure, percentiles_figure, worker_timeline_figure
from lib.ops import actions
from lib.ops.hold_cost import hold_cost
from lib.ops.warmup import WarmupError
from lib.runpod import RunPodError
from lib.ui import deps, persist, widgets
from lib.ui.safe_text import escaped

deps.require_gate()
services = deps.services()
user = deps.current_user()
operator = user.can("apply")
ERRORS = (RunPodError, Forbidden, WarmupError, ValueError)
st.title("Endpoints")
persist.remember("endpoints.role", "endpoints.days")

roles = list(services.config.endpoints)
role = st.segmented_control("Endpoint", roles, default=roles[0], key="endpoints.role") or roles[0]
days = st.select_slider("History", [1, 7, 14, 30], value=7, key="endpoints.days", format_func=lambda d: f"{d} d")
if services.config.endpoint(role).is_dev_worker:
    st.info(f"**{role}** goes to a worker under development: {devworkers.reachability(services, role).detail}. "
            f"Nothing to show or change here: {devworkers.NO_OPERATIONS}.", icon=":material/developer_mode:")
    st.stop()
view = actions.endpoint_overview(services, role, days=days)
st.caption(f"**{view.label}** · `{view.endpoint_id}`")
for alert in view.firing:
    st.warning(alert.text(), icon=":material/notifications_active:")


@st.fragment(run_every="5s")
def live_health() -> None:
    health, problem = actions.live_health(services, role)
    if health is None:
        st.error(f"Health unavailable: {escaped(problem)}")
        return
    for col, (label, value) in zip(st.columns(6), actions.health_metrics(health), strict=False):
        col.metric(label, value)


live_health()
for col, (label, value, hint) in zip(st.columns(4), actions.stats_metrics(view.stats), strict=False):
    col.metric(label, value, help=hint)
st.dataframe(actions.percentiles_table(view.stats), hide_index=True,
             column_config={c: st.column_config.NumberColumn(format="%.1f") for c in ("p50 s", "p90 s", "p98 s")})
series = actions.endpoint_series(services, role, days=days)
left, right = st.columns(2)
left.plotly_chart(cold_starts_figure(series.cold_per_day), key="endpoints.cold")
right.plotly_chart(percentiles_figure(series.delay_per_day), key="endpoints.delay")
st.plotly_chart(worker_timeline_figure(series.workers, title="Workers by state (last 24 h)"), key="endpoints.workers")

st.subheader("Settings")
if view.drift is None:
    st.info(f"Live settings unavailable: {escaped(view.live_error)}")
else:
    st.dataframe(actions.settings_table(view.drift), hide_index=True, width="stretch")
    if view.drift.in_sync:
        st.success("The live endpoint matches console.toml.")
    else:
        st.warning(f"{len(view.drift.items)} setting(s) differ from console.toml.")


def close_dialog() -> None:
    st.session_state.pop("endpoints.confirm", None)


# The open dialog lives in session state so that it survives the reruns its own buttons cause.
@st.dialog("Apply settings to the live endpoint", on_dismiss=close_dialog)
def apply_dialog(changes: dict) -> None:
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
def purge_dialog() -> None:
    st.warning(f"Remove every queued job of {view.label}? Running jobs continue.")
    if st.button("Purge", type="primary", key="endpoints.purge_ok"):
        try:
            result = actions.purge_queue(services, role, user.email)
        except ERRORS as exc:
            widgets.show_error(exc, "purge the queue")
            return
        close_dialog()
        deps.toast_and_rerun(f"Removed {result.removed} queued job(s).")


@st.dialog("Raise min workers", on_dismiss=close_dialog)
def hold_dialog(workers: int, minutes: int) -> None:
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


if view.drift is not None and operator:
    # The worker counts and the idle timeout are whole numbers in console.toml.
    declared = {r.field: r.declared for r in view.drift.rows if isinstance(r.declared, int)}
    with st.form(f"endpoints.edit.{role}"):
        st.caption("Apply sends console.toml's settings to the live endpoint; edit a value here to change "
                   "the live endpoint only (console.toml stays as it is).")
        e1, e2, e3 = st.columns(3)
        wmin = e1.number_input("Min workers", 0, 100, int(declared["workers_min"]), key=f"endpoints.min.{role}")
        wmax = e2.number_input("Max workers", 1, 100, int(declared["workers_max"]), key=f"endpoints.max.{role}")
        idle = e3.number_input("Idle timeout (s)", 1, 3600, int(declared["idle_timeout_s"]),
                               key=f"endpoints.idle.{role}")
        if st.form_submit_button("Apply…"):
            st.session_state["endpoints.confirm"] = (
                "apply", role, {"workers_min": wmin, "workers_max": wmax, "idle_timeout_s": idle})

st.subheader("Actions")
if not operator:
    st.info("Purge and warm-up are for operators.")
else:
    p, w = st.columns(2)
    if p.button("Purge queue…", key="endpoints.purge"):
        st.session_state["endpoints.confirm"] = ("purge", role)
    if role != "training" and w.button("Warm up: send a minimal job", key="endpoints.warm_job"):
        try:
            job = actions.send_warmup(services, role, user.email,
                                      idempotency_key=deps.idempotency_key("endpoints.warmup", role))
            deps.new_request("endpoints.warmup")
            st.success(f"Warm-up job {job.local_id} sent.")
        except ERRORS as exc:
            widgets.show_error(exc, "send the warm-up job")
    with st.form("endpoints.hold"):
        h1, h2 = st.columns(2)
        workers = h1.number_input("Keep this many workers warm", 1, 20, 1, key="endpoints.hold_n")
        minutes = h2.number_input("for minutes", 1, 480, 30, key="endpoints.hold_m")
        if st.form_submit_button("Raise min workers…"):
            st.session_state["endpoints.confirm"] = ("hold", role, {"workers": workers, "minutes": minutes})
for hold in view.holds:
    st.caption(f"Warm hold by {hold.user}: min workers {hold.raised_min} until {hold.until:%Y-%m-%d %H:%M} UTC"
               f" (then {hold.previous_min}).")
confirm = st.session_state.get("endpoints.confirm")
if confirm and operator and confirm[1] == role and confirm[0] == "apply":
    apply_dialog(confirm[2])
elif confirm and operator and confirm[1] == role and confirm[0] == "hold":
    hold_dialog(**confirm[2])
elif confirm and operator and confirm[1] == role:
    purge_dialog()
