"""Serverless Console — router only: page config, sign-in gate, navigation, backend banner."""
import streamlit as st

from lib.ui import deps, widgets

st.set_page_config(page_title="Serverless Console", page_icon=":material/bolt:", layout="wide")

services = deps.services()
user = deps.sign_in_gate(services)

PAGES = {
    "Run": [
        st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("pages/jobs.py", title="Jobs", icon=":material/list_alt:"),
    ],
}

navigation = st.navigation(PAGES)
widgets.backend_banner(services)
st.sidebar.caption(f"Signed in as **{user.label}** ({user.role})")
if deps.auth_configured():
    st.sidebar.button("Sign out", on_click=st.logout)
else:
    st.sidebar.caption("No sign-in configured: single local operator on 127.0.0.1.")
navigation.run()
