"""Provisioning (operators): console.toml as the declaration — plan against RunPod, apply, models, records."""
import streamlit as st

from lib.auth import Forbidden
from lib.config import ConfigError
from lib.provisioning.declaration import DeclarationError
from lib.provisioning.plan import usd_change
from lib.provisioning.required import LocalFolderError, missing, readiness_rows
from lib.provisioning.service import Provisioning
from lib.provisioning.upload import UploadProgress
from lib.runpod import RunPodError
from lib.ui import deps, widgets
from lib.ui.safe_text import escaped
from lib.volume import VolumeError

deps.require_gate()
services = deps.services()
user = deps.current_user()
prov = Provisioning(services)
ERRORS = (RunPodError, Forbidden, VolumeError, LocalFolderError, ValueError, OSError)
st.title("Provisioning")
st.caption(f"`{prov.path}` declares the network volume and the endpoints. The plan compares it with what "
           f"{services.backend_label} runs; apply creates what is missing and changes what differs. Nothing is "
           "deleted unless you ask for it below, by name.")
if not user.can("apply"):
    st.warning("Provisioning is for operators.")
    st.stop()


def close_dialog() -> None:
    st.session_state.pop("prov.dialog", None)


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


@st.dialog("Apply console.toml", width="large", on_dismiss=close_dialog)
def apply_dialog(shown: list[dict]) -> None:
    st.write("These steps run in this order; the first error stops the ones after it.")
    st.markdown("\n".join(f"{i}. {s.title}" + (f" — *{s.status}: {escaped(s.detail)}*" if s.status != "pending" else "")
                          for i, s in enumerate(prov.steps(plan, decl, user.email), 1)))
    st.write(f"Monthly cost of the change: **{usd_change(plan.monthly_cost_delta_usd)}**.")
    if st.button("Apply", type="primary", key="prov.apply_ok"):
        try:
            fresh_decl = prov.declaration()
            fresh = prov.plan(fresh_decl, prov.live())
            if fresh.rows() != shown:
                st.warning("console.toml or RunPod changed since this plan was made; close this and review the "
                           "new plan.")
                return
            outcome = prov.apply(fresh, fresh_decl, user.email)
        except ERRORS + (DeclarationError,) as exc:
            widgets.show_error(exc, "apply console.toml")
            return
        st.session_state["prov.result"] = {"ok": outcome.ok, "steps": outcome.rows(), "message": outcome.message}
        close_dialog()
        if outcome.done and prov.config_outdated():
            deps.reload_services()     # new ids or settings: every page now works on the applied file
        st.rerun()


@st.dialog("Delete an endpoint", on_dismiss=close_dialog)
def delete_dialog(endpoint_id: str, name: str) -> None:
    st.warning(f"**{name}** (`{endpoint_id}`) is not in console.toml. Deleting it stops its workers and loses its "
               "queued jobs; this cannot be undone.")
    typed = st.text_input(f"Type {name} to confirm", key="prov.typed")
    if st.button("Delete", type="primary", key="prov.delete_ok", disabled=typed.strip() != name):
        try:
            done = prov.delete_unmanaged(endpoint_id, typed, user.email, decl)
        except ERRORS as exc:
            widgets.show_error(exc, f"delete {name}")
            return
        st.session_state["prov.result"] = {"ok": True, "steps": [], "message": done.capitalize() + "."}
        close_dialog()
        st.rerun()


with tab_models:
    refresh = st.button("List the volume again", key="prov.models_refresh")
    try:
        states = prov.readiness(refresh=refresh)
    except VolumeError as exc:
        widgets.show_error(exc, "list the network volume")
        states = []
    for d in decl.endpoints:
        st.subheader(f"{d.spec.name} · {d.spec.role}")
        rows = readiness_rows(states, d.spec.role)
        if rows:
            widgets.text_table(rows)   # its "what to do" sentences wrap
        else:
            st.caption("No template or preset of this endpoint needs a model on the volume.")
    absent, files = missing(states)
    if absent:
        with st.form("prov.upload"):
            st.write("Upload missing models from a folder on the console machine (multipart; an interrupted "
                     "upload resumes from its last part).")
            folder = st.text_input("Folder on the console machine", key="prov.folder",
                                   help="Files are found by name anywhere below it; for a Hugging Face cache "
                                        "give its hub/ folder.")
            chosen = st.multiselect("Models to upload", absent, default=files, key="prov.chosen")
            if st.form_submit_button("Upload"):
                bar = st.progress(0.0, text="Starting…")

                def show_progress(p: UploadProgress) -> None:
                    bar.progress(p.done / max(p.total, 1), text=p.text)

                try:
                    done = prov.upload(folder, chosen, user.email, progress=show_progress)
                except ERRORS as exc:
                    widgets.show_error(exc, "upload the models")
                else:
                    st.session_state["prov.uploaded"] = (len(done.files), done.not_found)
                    st.rerun()
    if "prov.uploaded" in st.session_state:
        count, not_found = st.session_state.pop("prov.uploaded")
        st.success(f"Uploaded {count} file(s).")
        if not_found:
            st.warning("Not found in that folder: " + ", ".join(not_found))

with tab_docs:
    record = prov.documentation(decl, live, plan)
    st.download_button("Download as Markdown", record, file_name="serverless-configuration.md",
                       mime="text/markdown", key="prov.download")
    st.markdown(record)

dialog = st.session_state.get("prov.dialog")
if dialog and dialog[0] == "apply":
    apply_dialog(dialog[1])
elif dialog and dialog[0] == "delete":
    delete_dialog(dialog[1], dialog[2])
