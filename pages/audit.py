"""Audit: who did what, when, with what estimated cost (operators only)."""
from datetime import UTC, date, datetime, time, timedelta

import streamlit as st

from lib import audit
from lib.ui import deps, persist, widgets

deps.require_gate()
services = deps.services()
user = deps.current_user()

st.title("Audit trail")
persist.remember("audit.action", "audit.who")
try:
    services.authorize(user.email, "audit")
except PermissionError as exc:
    widgets.show_error(exc, "open the audit trail")
    st.stop()

c1, c2, c3 = st.columns(3)
who = c1.text_input("Who (e-mail)", key="audit.who").strip() or None
action = c2.selectbox("Action", ["any", *services.store.audit_actions()], key="audit.action",
                      format_func=lambda a: "any" if a == "any" else audit.action_name(a))
since = c3.date_input("Since", date.today() - timedelta(days=30), key="audit.since")

entries = services.store.audit_entries(
    user=who, action=None if action == "any" else action,
    since=datetime.combine(since, time.min, UTC) if since else None, limit=5000)
st.caption(f"{len(entries)} entries")
picked = st.dataframe(audit.audit_frame(entries), hide_index=True, width="stretch", on_select="rerun",
                      selection_mode="single-row", key="audit.table",
                      column_config={"when": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
                                     # last, and cut at the edge: a selected row shows it whole below
                                     "details": st.column_config.TextColumn(width="large"),
                                     "est. cost": st.column_config.TextColumn(width="small")})
rows = picked.selection.rows if picked else []
if rows:
    entry = entries[rows[0]]
    st.caption(f"Details of “{audit.action_name(entry.action)}” by {entry.user} at {entry.at:%Y-%m-%d %H:%M:%S} UTC")
    st.dataframe(audit.detail_frame(entry), hide_index=True, width="stretch")
else:
    st.caption("Select a row to see its details as a table.")
st.download_button("Download CSV", audit.audit_csv(entries), file_name="audit.csv", mime="text/csv",
                   icon=":material/download:", on_click="ignore")
