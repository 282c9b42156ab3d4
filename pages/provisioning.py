"""Provisioning (operators): console.toml as the declaration — plan against RunPod, apply, models, records."""
import streamlit as st

from lib.config import ConfigError
from lib.provisioning.declaration import DeclarationError
from lib.provisioning.plan import usd_change
from lib.provisioning.service import Provisioning
from lib.runpod import RunPodError
from lib.ui import deps, widgets
from lib.ui.provisioning_views import models_tab, open_dialog

deps.require_gate()
services = deps.services()
user = deps.current_user()
prov = Provisioning(services)
st.title("Provisioning")
st.caption(f"`{prov.path}` declares the network volume and the endpoints. The plan compares it with what "
           f"{services.backend_label} runs; apply creates what is missing and changes what differs. Nothing is "
           "deleted unless you ask for it below, by name.")
if not user.can("apply"):
    st.warning("Provisioning is for operators.")
    st.stop()

try:
    decl = prov.declaration()
except (ConfigError, DeclarationError) as exc:
    st.error("console.toml cannot be provisioned as written:\n\n"
             + "\n".join(f"- {p}" for p in getattr(exc, "problems", [str(exc)])))
    st.stop()
for note in decl.notes:
    st.info(note, icon=":material/info:")
if prov.config_outdated():
    st.info("console.toml changed since the console started; the other pages still use the old file.")
    if st.button("Reload the console with console.toml", key="prov.reload"):
        deps.reload_services()
        st.rerun()
try:
    live = prov.live()
except RunPodError as exc:
    widgets.show_error(exc, "read the endpoints and network volumes")
    st.stop()
plan = prov.plan(decl, live)
backend = services.backend_label[0].upper() + services.backend_label[1:]

tab_plan, tab_models, tab_docs = st.tabs(["Plan & apply", "Models on the volume", "Documentation"])
with tab_plan:
    result = st.session_state.get("prov.result")
    if result:
        (st.success if result["ok"] else st.error)(result["message"])
        if result["steps"]:
            st.dataframe(result["steps"], hide_index=True, width="stretch")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("To create", len(plan.to_create))
    c2.metric("To change", len(plan.to_change))
    c3.metric("Unchanged", len(plan.unchanged))
    c4.metric("Monthly cost of the change", usd_change(plan.monthly_cost_delta_usd),
              help="Min (active) workers run 24/7: active price × 730 h × change in min workers; "
                   "plus the storage of a new or larger volume.")
    if plan.rows():
        st.dataframe(plan.rows(), hide_index=True, width="stretch")
    else:
        st.success(f"{backend} matches console.toml.", icon=":material/check_circle:")
    for r in plan.resources:
        for note in r.notes:
            st.caption(f"{r.label}: {note}")
    if plan.has_work and st.button("Apply…", type="primary", key="prov.apply"):
        st.session_state["prov.dialog"] = ("apply", plan.rows())   # what the operator saw and confirms
    if plan.unmanaged:
        st.subheader("On RunPod but not in console.toml")
        st.caption("Apply never touches these. Deleting an endpoint stops its workers and loses its queued jobs.")
        st.dataframe([{"kind": u.kind, "name": u.name, "id": u.id, "details": u.detail} for u in plan.unmanaged],
                     hide_index=True, width="stretch")
        endpoints = {u.id: u.name for u in plan.unmanaged if u.kind == "endpoint"}
        if endpoints:
            gone = st.selectbox("Endpoint", list(endpoints), format_func=lambda i: f"{endpoints[i]} ({i})",
                                key="prov.unmanaged")
            if st.button("Delete…", key="prov.delete"):
                st.session_state["prov.dialog"] = ("delete", gone, endpoints[gone])

with tab_models:
    models_tab(prov, decl, user)

with tab_docs:
    record = prov.documentation(decl, live, plan)
    st.download_button("Download as Markdown", record, file_name="serverless-configuration.md",
                       mime="text/markdown", key="prov.download")
    st.markdown(record)

open_dialog(prov, plan, decl, user)
