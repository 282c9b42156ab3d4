"""Endpoints: live health, declared vs live settings (drift, apply), cold starts, purge and warm-up."""
import streamlit as st

from lib import devworkers
from lib.charts.ops import cold_starts_figure, percentiles_figure, worker_timeline_figure
from lib.ops import actions
from lib.ops.actions import EndpointSeries
from lib.ui import deps, endpoint_dialogs, persist, widgets
from lib.ui.safe_text import escaped

deps.require_gate()
services = deps.services()
user = deps.current_user()
operator = user.can("apply")
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


def percentiles() -> None:
    st.dataframe(actions.percentiles_table(view.stats), hide_index=True, column_config={
        c: st.column_config.NumberColumn(format="%.1f") for c in ("p50 s", "p90 s", "p98 s")})


def series() -> EndpointSeries:
    return actions.endpoint_series(services, role, days=days)


# The page opens on the percentiles table: a Plotly chart was 0.09 s of every visit's 0.29 s in the browser
# (bench/bench_pages.py), so a chart is drawn when its tab is chosen, one at a time.
widgets.lazy_tabs({
    "Percentiles": percentiles,
    "Cold starts": lambda: st.plotly_chart(cold_starts_figure(series().cold_per_day), key="endpoints.cold"),
    "Queue delay": lambda: st.plotly_chart(percentiles_figure(series().delay_per_day), key="endpoints.delay"),
    "Workers (24 h)": lambda: st.plotly_chart(
        worker_timeline_figure(series().workers, title="Workers by state (last 24 h)"), key="endpoints.workers"),
}, key="endpoints.history")

st.subheader("Settings")
if view.drift is None:
    st.info(f"Live settings unavailable: {escaped(view.live_error)}")
else:
    st.dataframe(actions.settings_table(view.drift), hide_index=True, width="stretch")
    if view.drift.in_sync:
        st.success("The live endpoint matches console.toml.")
    else:
        st.warning(f"{len(view.drift.items)} setting(s) differ from console.toml.")

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
        except endpoint_dialogs.ERRORS as exc:
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
endpoint_dialogs.open_dialog(services, role, user, view.label)
