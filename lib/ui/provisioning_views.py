"""Pieces of the Provisioning page: the apply and delete dialogs, and the "Models on the volume" tab
(readiness per endpoint, uploading the missing models from a folder)."""
from __future__ import annotations

import streamlit as st

from lib.auth import Forbidden
from lib.provisioning.declaration import DeclarationError
from lib.provisioning.plan import usd_change
from lib.provisioning.required import LocalFolderError, missing, readiness_rows
from lib.provisioning.upload import UploadProgress
from lib.runpod import RunPodError
from lib.ui import deps, widgets
from lib.ui.safe_text import escaped
from lib.volume import VolumeError

ERRORS = (RunPodError, Forbidden, VolumeError, LocalFolderError, ValueError, OSError)


def close_dialog() -> None:
    st.session_state.pop("prov.dialog", None)


@st.dialog("Apply console.toml", width="large", on_dismiss=close_dialog)
def _apply_dialog(prov, plan, decl, user, shown: list[dict]) -> None:
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
def _delete_dialog(prov, decl, user, endpoint_id: str, name: str) -> None:
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


def open_dialog(prov, plan, decl, user) -> None:
    """The dialog an Apply… or Delete… press asked for, if any (kept in session_state["prov.dialog"])."""
    dialog = st.session_state.get("prov.dialog")
    if dialog and dialog[0] == "apply":
        _apply_dialog(prov, plan, decl, user, dialog[1])
    elif dialog and dialog[0] == "delete":
        _delete_dialog(prov, decl, user, dialog[1], dialog[2])


def _upload_form(prov, user, absent: list[str], files: list[str]) -> None:
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


def models_tab(prov, decl, user) -> None:
    """What each endpoint needs on the volume and whether it is there; the missing ones can be uploaded."""
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
        _upload_form(prov, user, absent, files)
    if "prov.uploaded" in st.session_state:
        count, not_found = st.session_state.pop("prov.uploaded")
        st.success(f"Uploaded {count} file(s).")
        if not_found:
            st.warning("Not found in that folder: " + ", ".join(not_found))
