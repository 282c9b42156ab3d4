"""Jobs: every job the console ever submitted, from the local store."""
import streamlit as st

from lib import overview, resend
from lib.auth import require
from lib.jobstate import WORKER_FAILED, JobState
from lib.runpod import RunPodError
from lib.ui import dates, deps, pictures, resend_view, widgets
from lib.ui.job_errors import job_line

deps.require_gate()
services = deps.services()
user = deps.current_user()
store = services.store

st.title("Jobs")

f1, f2, f3, f4 = st.columns(4)
role = f1.selectbox("Endpoint", ["all", *services.config.endpoints], key="jobs.role")
status = f2.multiselect("Status", [s.value for s in JobState if s is not JobState.PENDING],
                        format_func=widgets.status_words, key="jobs.status")
who = f3.selectbox("Who", ["anyone", *store.users()], key="jobs.who")
window = dates.day_range_window("Dates (UTC)", key="jobs.dates", last_days=8, where=f4)
if window is None:
    st.stop()

records = store.summaries(
    role=None if role == "all" else role, status=status or None,
    user=None if who == "anyone" else who, since=window[0], until=window[1], limit=1000)

st.caption(f"{len(records)} jobs")
table = st.dataframe(overview.jobs_table(records), hide_index=True, width="stretch",
                     on_select="rerun", selection_mode="single-row", key="jobs.table", column_config=widgets.JOB_TABLE_COLUMNS,
                     column_order=widgets.JOB_TABLE_ORDER)
picked = table.selection.rows if table and table.selection else []
if not picked:
    st.caption("Select a job to see its details.")
    st.stop()

record = store.get(records[picked[0]].local_id)
st.subheader(f"{widgets.STATUS_ICONS.get(record.status, '')} {widgets.status_words(record.status)} · "
             f"{record.kind} job `{record.local_id}`")
failed = record.status in WORKER_FAILED
job_line(overview.status_line(record), overview.failure_view(record) if failed else None, key="jobs.job")
widgets.dev_worker_note(record)
if record.simulated:
    st.caption("Simulated history (the local simulator's demo traffic), not a job that ran.")
a, b, c, d = st.columns(4)
a.metric("Queue (delayTime)", f"{(record.delay_ms or 0) / 1000:.1f} s")
b.metric("Run (executionTime)", f"{(record.execution_ms or 0) / 1000:.1f} s")
c.metric("Cost", f"${record.cost_usd or 0:.4f}")
d.metric("Retries", record.retries or 0)

cancel_col, retry_col = st.columns(2)
if record.is_active and cancel_col.button("Cancel job", icon=":material/cancel:"):
    try:
        require(user, "cancel")
        services.tracker.cancel(record.local_id, user.email)
        deps.toast_and_rerun("Cancel sent to RunPod")
    except (RunPodError, PermissionError) as exc:
        widgets.show_error(exc, "cancel the job")
retry_verdict = resend.before_retry(record, services.volume) if record.status in WORKER_FAILED else None
if retry_verdict is not None and not retry_verdict.ok:
    resend_view.show_refusal(retry_verdict, record, "jobs.retry")
elif retry_verdict is not None and retry_col.button("Retry on RunPod", icon=":material/replay:"):
    try:
        require(user, "retry")
        services.tracker.retry(record.local_id, user.email)
        deps.toast_and_rerun("Job re-queued under the same id")
    except (RunPodError, PermissionError, ValueError) as exc:
        widgets.show_error(exc, "retry the job")

outputs = store.outputs(record.local_id)
images = [o for o in outputs if o.mime.startswith("image/")]
if images:
    pictures.show(services, [o.path for o in images], [o.name for o in images], width=256)
# Drawn when asked for: a job's timeline, and its 4 KB workflow as JSON, are sent and drawn only once opened.
widgets.lazy_expander("Timeline", "jobs.timeline", lambda: st.dataframe(
    [{"when": h.at, "status": h.status, "worker": h.worker_id or "—", "note": h.note or ""}
     for h in store.history(record.local_id)], hide_index=True, width="stretch"))
widgets.lazy_expander("Inputs and raw output (for debugging)", "jobs.raw", lambda: st.json(
    overview.for_display({"input": record.input, "meta": record.meta, "output": record.output}), expanded=False))
