"""Serverless Console — router only: page config, sign-in gate, navigation, backend banner."""
import streamlit as st

from lib.ui import config_error, deps, queue_panel, widgets

st.set_page_config(page_title="Serverless Console", page_icon=":material/bolt:", layout="wide")

services = config_error.services_or_explain()
user = deps.sign_in_gate(services)

PAGES = {
    "Operate": [
        st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("pages/jobs.py", title="Jobs", icon=":material/list_alt:"),
        st.Page("pages/endpoints.py", title="Endpoints", icon=":material/dns:"),
        st.Page("pages/models.py", title="Models", icon=":material/folder_open:"),
        st.Page("pages/costs.py", title="Costs", icon=":material/payments:"),
    ],
    "Create": [
        st.Page("pages/generate.py", title="Generate", icon=":material/image:"),
        st.Page("pages/gallery.py", title="Gallery", icon=":material/photo_library:"),
        st.Page("pages/special.py", title="Face swap & sheets", icon=":material/face_retouching_natural:"),
        st.Page("pages/datasets.py", title="Training sets", icon=":material/collections:"),
        st.Page("pages/training.py", title="LoRA training", icon=":material/model_training:"),
    ],
}
if user.can("audit"):
    PAGES["Admin"] = [st.Page("pages/audit.py", title="Audit", icon=":material/policy:"),
                      st.Page("pages/provisioning.py", title="Provisioning", icon=":material/deployed_code:"),
                      st.Page("pages/connection.py", title="Connection check", icon=":material/stethoscope:")]

navigation = st.navigation(PAGES, expanded=True)   # every page listed: no "View more" behind the sidebar queue
widgets.backend_banner(services)
st.sidebar.caption(f"Signed in as **{user.label}** ({user.role})")
if deps.auth_configured():
    st.sidebar.button("Sign out", on_click=st.logout)
else:
    st.sidebar.caption("No sign-in configured: single local operator on 127.0.0.1.")
queue_panel.sidebar(services, user)
navigation.run()
