"""Overview: live health of every endpoint, recent jobs, spend today."""
import streamlit as st

from lib import overview
from lib.ops import actions
from lib.ui import deps, widgets
from lib.ui.safe_text import escaped

deps.require_gate()
services = deps.services()

st.title("Overview")
widgets.tracking_health(services.tracker.health())


@st.fragment(run_every="5s")
def live_health() -> None:
    rows = overview.endpoint_health(services)
    columns = st.columns(len(rows))
    for column, row in zip(columns, rows, strict=False):
        with column.container(border=True):
            st.subheader(row.label)
            st.caption(f"{row.role} endpoint · `{row.endpoint_id}`")
            if row.dev_worker:
                if row.problem:
                    st.warning(f"Worker under development — {row.problem}", icon=":material/link_off:")
                else:
                    st.success("Worker under development — reachable.", icon=":material/developer_mode:")
                st.caption("A dev worker has no RunPod queue or health to show.")
                continue
            if row.missing:
                st.info("Not created yet — see Provisioning.", icon=":material/construction:")
                continue
            if row.health is None:
                st.error(f"Health unavailable: {escaped(row.problem)}")
                continue
            jobs, workers = row.health.jobs, row.health.workers
            a, b = st.columns(2)
            a.metric("In queue", jobs.in_queue)
            b.metric("Running", jobs.in_progress)
            a.metric("Workers ready", workers.idle + workers.ready + workers.running)
            b.metric("Initializing", workers.initializing)
            st.caption(f"idle {workers.idle} · running {workers.running} · throttled {workers.throttled}"
                       f" · unhealthy {workers.unhealthy} · completed {jobs.completed} · failed {jobs.failed}")


live_health()

feed = actions.alert_feed(services)
if feed.firing:
    for alert in feed.firing:
        st.warning(f"**{alert.name}** — {alert.message}", icon=":material/notifications_active:")


def alert_history() -> None:
    if feed.history:
        st.dataframe(actions.alerts_table(feed.history), hide_index=True, width="stretch")
    else:
        st.caption("No alert has fired yet. Rules live in console.toml ([[alerts]]).")


widgets.lazy_expander(f"Alerts: {len(feed.firing)} firing · history", "overview.alerts", alert_history)

left, right = st.columns([3, 1])
with right:
    st.metric("Spend today (estimated)", f"${overview.spend_today(services.store):,.2f}")
with left:
    st.subheader("Recent jobs")
    recent = services.store.list(limit=15)   # full records: a damaged row met here is reported (tracking health)
    if recent:
        st.dataframe(overview.jobs_table(recent, compact=True), hide_index=True, width="stretch",
                     column_config=widgets.JOB_TABLE_COLUMNS)
    else:
        st.caption("No jobs yet.")
