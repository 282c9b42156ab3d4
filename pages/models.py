"""Models: the network volume — browse, search, "used by", flags; upload, move, delete (operators)."""
import streamlit as st

from lib import model_upload, volume_guard
from lib.auth import Forbidden
from lib.charts.ops import folder_sizes_figure
from lib.lora_base import FAMILIES
from lib.ops import actions
from lib.ops.flags import SCANNED_FOLDERS
from lib.ops.volume_index import SORTS
from lib.ui import deps, persist, widgets
from lib.ui.safe_text import escaped
from lib.volume import VolumeError

deps.require_gate()
services = deps.services()
user = deps.current_user()
operator = user.can("delete")
st.title("Models")
persist.remember("models.query", "models.folder", "models.sort")
st.caption("Files on the shared network volume (workers see it at `/runpod-volume`): models in "
           "`models/<folder>/`, training sets in `datasets/`, trained LoRAs in `loras/`.")

state = actions.volume_state(services, folder=st.session_state.get("models.folder"))
if state.error:
    st.error(f"The volume could not be listed: {escaped(state.error)}")
if state.index is None:
    st.info("Indexing the volume… showing the first files meanwhile.", icon=":material/hourglass_top:")
    st.dataframe(actions.files_table(state.first, {}), hide_index=True, width="stretch")
    st.button("Refresh", key="models.wait")
    st.stop()

index = state.index
usage = actions.usage_index(services)
flags = actions.model_files(services).flags(usage)
by_key = actions.flags_by_key(flags)
a, b, c, d = st.columns(4)
a.metric("Files", f"{len(index):,}")
b.metric("Total size", actions.format_bytes(index.total_bytes))
c.metric("Flagged files", len(by_key))
if d.button("Re-list the volume", icon=":material/refresh:"):
    actions.model_files(services).refresh()
    st.rerun()

browse, flagged, upload = st.tabs(["Browse", f"Flags ({len(flags)})", "Upload"])

with browse:
    f1, f2, f3, f4 = st.columns([3, 2, 1, 1])
    query = f1.text_input("Search by name or path", key="models.query", placeholder="e.g. ava")
    folder = f2.selectbox("Folder", ["All folders", *index.folders()], key="models.folder")
    sort = f3.selectbox("Sort by", SORTS, key="models.sort")
    newest_first = f4.toggle("Descending", key="models.desc")
    in_folder = None if folder == "All folders" else folder
    result = index.search(query, folder=in_folder, sort=sort, descending=newest_first,
                          page=max(0, st.session_state.get("models.page", 1) - 1))
    st.session_state["models.page"] = result.page + 1  # a narrower search may have fewer pages
    st.dataframe(actions.files_table(result.items, by_key).drop(columns=["bytes"]), hide_index=True,
                 width="stretch", column_config={"modified": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")})
    st.number_input(f"Page (of {result.pages}, {result.total:,} files)", min_value=1, max_value=result.pages,
                    key="models.page")

    every_match = index.search(query, folder=in_folder, sort=sort, descending=newest_first,
                               page_size=max(1, min(result.total, 5000))).items   # not only this page
    chosen = st.selectbox("File details", [f.key for f in every_match], index=None, key="models.file",
                          placeholder="Choose a file to see what uses it")
    if chosen:
        for flag in by_key.get(chosen, []):
            (st.error if flag.severity == "error" else st.warning if flag.severity == "warning" else st.info)(
                flag.message)
        for line in model_upload.ModelNotes(services.data_dir).get(chosen):
            st.caption(line)
        refs = usage.used_by(chosen)
        if refs:
            st.dataframe(actions.used_by_table(refs), hide_index=True, width="stretch")
        else:
            st.caption("No template and no job of the last 30 days uses this file.")


def close_dialog() -> None:
    st.session_state.pop("models.confirm", None)


# The open dialog lives in session state so that it survives the reruns its own buttons cause.
@st.dialog("Move or rename a file", on_dismiss=close_dialog)
def move_dialog(src: str, suggested: str) -> None:
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
def delete_dialog(key: str) -> None:
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


with browse:
    if chosen and operator:
        m, x = st.columns(2)
        if m.button("Move / rename…", key="models.move"):
            st.session_state["models.confirm"] = (
                "move", chosen, next((f.move_to for f in by_key.get(chosen, []) if f.move_to), chosen))
        if x.button("Delete…", key="models.delete"):
            st.session_state["models.confirm"] = ("delete", chosen)
    st.plotly_chart(folder_sizes_figure(index.totals()), key="models.sizes")

with flagged:
    if flags:
        st.dataframe(actions.flags_table(flags), hide_index=True, width="stretch")
        fixable = [f for f in flags if f.move_to]
        if operator and fixable:
            fix = st.selectbox("Fix a misplaced file", [f.key for f in fixable], key="models.fix")
            if st.button("Move it where the worker looks…", key="models.fix_go"):
                st.session_state["models.confirm"] = ("move", fix, next(f.move_to for f in fixable if f.key == fix))
    else:
        st.success("Every file is where the worker looks for it.")

with upload:
    if not operator:
        st.info("Only operators can upload model files.")
    else:
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

confirm = st.session_state.get("models.confirm")
if confirm and operator:
    (move_dialog if confirm[0] == "move" else delete_dialog)(*confirm[1:])
