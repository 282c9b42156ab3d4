"""Models: the network volume — browse, search, "used by", flags; upload, move, delete (operators)."""
import streamlit as st

from lib import model_upload
from lib.charts.ops import folder_sizes_figure
from lib.ops import actions
from lib.ops.volume_index import SORTS
from lib.ui import deps, model_files, persist, widgets
from lib.ui.safe_text import escaped

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
flagged_files = actions.volume_flags(services, usage)
by_key, flag_view = flagged_files.by_key, flagged_files.view
a, b, c, d = st.columns(4)
a.metric("Files", f"{len(index):,}")
b.metric("Total size", actions.format_bytes(index.total_bytes))
c.metric("Flagged files", f"{flag_view.problem_files:,}")
if d.button("Re-list the volume", icon=":material/refresh:"):
    actions.model_files(services).refresh()
    st.rerun()


def browse() -> None:
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

    # The files listed above, not every match: 5,000 paths were sent with every run (0.2 s of each visit).
    chosen = st.selectbox("File details", [f.key for f in result.items], index=None, key="models.file",
                          placeholder="Choose a file listed above to see what uses it",
                          help="Search or turn the page to list another file.")
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
    if chosen and operator:
        m, x = st.columns(2)
        if m.button("Move / rename…", key="models.move"):
            st.session_state["models.confirm"] = (
                "move", chosen, next((f.move_to for f in by_key.get(chosen, []) if f.move_to), chosen))
        if x.button("Delete…", key="models.delete"):
            st.session_state["models.confirm"] = ("delete", chosen)


def flagged() -> None:
    for note in flag_view.notes:
        st.info(note, icon=":material/info:")
    if flag_view.problems:
        st.dataframe(actions.flags_table(flag_view.problems), hide_index=True, width="stretch")
        if flag_view.problem_count > len(flag_view.problems):
            st.caption(f"The first {len(flag_view.problems):,} of {flag_view.problem_count:,}, errors first.")
        fixable = [f for f in flag_view.problems if f.move_to]
        if operator and fixable:
            fix = st.selectbox("Fix a misplaced file", [f.key for f in fixable], key="models.fix")
            if st.button("Move it where the worker looks…", key="models.fix_go"):
                st.session_state["models.confirm"] = ("move", fix, next(f.move_to for f in fixable if f.key == fix))
    else:
        st.success("Every file is where the worker looks for it.")


def upload() -> None:
    if not operator:
        st.info("Only operators can upload model files.")
    else:
        model_files.upload_form(services, user)


# One tab at a time: the others' tables (up to 1,000 flags) are not sent on every visit, and the folder chart
# (Plotly: 0.05 s of every redraw, and its 0.75 s script run in a browser tab's first chart) is drawn only
# when asked for. No count in the Flags label: the open tab is remembered by its label ("Flagged files"
# above says how many).
widgets.lazy_tabs({"Browse": browse, "Flags": flagged, "Folder sizes": lambda: st.plotly_chart(
    folder_sizes_figure(index.totals()), key="models.sizes"), "Upload": upload}, key="models.tab")

model_files.open_dialog(services, user, usage)
