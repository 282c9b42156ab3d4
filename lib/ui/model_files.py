"""The Models page's operations on a volume file: the move/rename and delete dialogs (their state lives in
session_state["models.confirm"] so that they survive the reruns their own buttons cause), and uploading a
model file from the console machine."""
from __future__ import annotations

import streamlit as st

from lib import model_upload, volume_guard
from lib.auth import Forbidden
from lib.lora_base import FAMILIES
from lib.ops import actions
from lib.ops.flags import SCANNED_FOLDERS
from lib.ui import deps, widgets
from lib.ui.safe_text import escaped
from lib.volume import VolumeError


def close_dialog() -> None:
    st.session_state.pop("models.confirm", None)


@st.dialog("Move or rename a file", on_dismiss=close_dialog)
def _move_dialog(services, user, usage, src: str, suggested: str) -> None:
    st.write(f"Move **{escaped(src)}**")
    refs = usage.used_by(src)
    if warning := volume_guard.used_warning(refs, "move"):
        st.warning(escaped(warning), icon=":material/warning:")
    dst = st.text_input("New path", value=suggested, key="models.move_to")
    saved = volume_guard.saved_workflows(refs)
    update = bool(saved) and st.checkbox(f"Update the saved workflow(s) that use it to the new path: {escaped(', '.join(saved))}",
                                         value=True, key="models.move_update")
    if st.button("Move", type="primary", key="models.move_ok"):
        try:
            moved = model_upload.move(services, user.email, src, dst, update_workflows=update)
        except (VolumeError, Forbidden) as exc:
            widgets.show_error(exc, f"move {src}")
            return
        close_dialog()
        deps.toast_and_rerun(volume_guard.moved_message(moved.key, moved.workflows_updated))


@st.dialog("Delete a file", on_dismiss=close_dialog)
def _delete_dialog(services, user, usage, key: str) -> None:
    st.warning(f"Delete **{escaped(key)}** from the network volume? This cannot be undone. "
               + escaped(volume_guard.used_warning(usage.used_by(key), "delete") or ""))
    if st.button("Delete", type="primary", key="models.delete_ok"):
        try:
            actions.delete_model(services, user.email, key)
        except (VolumeError, Forbidden) as exc:
            widgets.show_error(exc, f"delete {key}")
            return
        close_dialog()
        deps.toast_and_rerun(f"Deleted {key}")


def open_dialog(services, user, usage) -> None:
    """The move or delete dialog an operator's press asked for, if any."""
    confirm = st.session_state.get("models.confirm")
    if confirm and user.can("delete"):
        (_move_dialog if confirm[0] == "move" else _delete_dialog)(services, user, usage, *confirm[1:])


def upload_form(services, user) -> None:
    """A model file from the console machine, checked and streamed to a scanned folder of the volume."""
    target = st.selectbox("Folder", sorted(SCANNED_FOLDERS), index=sorted(SCANNED_FOLDERS).index("loras"),
                          key="models.up_folder")
    source = st.text_input("Model file on the console machine (full path)", key="models.up_path",
                           help="Checked, then streamed to the volume in parts; a browser upload would hold "
                                "the whole file in the console's memory.")
    name = st.text_input("Save as (default: the file's name)", key="models.up_name")
    stated = st.selectbox("Base model it was trained for", [None, *FAMILIES], format_func=lambda f: FAMILIES.get(
        f, "not stated (read from the file's metadata if present)"), key="models.up_base") if target == "loras" else None
    if st.button("Upload", type="primary", disabled=not source, key="models.up_go"):
        bar = st.progress(0.0, text="Checking and uploading…")
        try:
            obj, found = model_upload.checked_upload(
                services, user.email, target, source, name, stated_family=stated,
                progress=lambda done, total: bar.progress(done / total if total else 1.0,
                                                          text=f"{done:,} / {total:,} bytes"))
        except model_upload.NotAModel as exc:
            bar.empty()
            st.error(f"Not uploaded: {escaped(exc)}", icon=":material/block:")
        except (VolumeError, Forbidden) as exc:
            widgets.show_error(exc, f"upload {name or source}")
        else:
            st.success(f"Uploaded {escaped(obj.key)} ({actions.format_bytes(obj.size)}): "
                       + escaped("; ".join(found.lines)))
