"""Audit: who did what, when, with what estimated cost (operators only)."""
from datetime import date, datetime, time, timedelta, timezone

import streamlit as st

from lib import audit
from lib.ui import deps, widgets

deps.require_gate()
services = deps.services()
user = deps.current_user()

st.title("Audit trail")
try:
    services.authorize(user.email, "audit")
except PermissionError as exc:
    widgets.show_error(exc, "open the audit trail")
    st.stop()

c1, c2, c3 = st.columns(3)
who = c1.text_input("Who (e-mail)", key="audit.who").strip() or None
action = c2.selectbox("Action", ["any", *services.store.audit_actions()], key="audit.action")
since = c3.date_input("Since", date.today() - timedelta(days=30), key="audit.since")

entries = services.store.audit_entries(
    user=who, action=None if action == "any" else action,
    since=datetime.combine(since, time.min, timezone.utc) if since else None, limit=5000)
st.caption(f"{len(entries)} entries")
st.dataframe(audit.audit_frame(entries), hide_index=True, width="stretch")
st.download_button("Download CSV", audit.audit_csv(entries), file_name="audit.csv", mime="text/csv",
                   icon=":material/download:", on_click="ignore")
