"""Training sets: create a set, add photos, caption them, check readiness, save a new version."""
import time

import pandas as pd
import streamlit as st

from lib import previews
from lib.auth import Forbidden, require
from lib.draft_store import DraftStore
from lib.training.datasets import DatasetError, TrainingSets
from lib.training.uploads import UploadRejected, read_files
from lib.ui import configured, deps, persist, uploads, widgets
from lib.ui.safe_text import escaped
from lib.upload_limits import TRAINING_SET
from lib.volume import VolumeError

deps.require_gate()
svc = deps.services()
user = deps.current_user()
sets = TrainingSets(svc.volume)
NEW = "➕ New training set"

st.title("Training sets")
persist.remember("ds.set", "ds.version")
st.caption("15–50 varied photos of one character, each with a caption that contains the trigger word.")
configured.require_volume(svc, "Training sets")
for key in ("ds.set", "ds.version"):   # selections requested by the previous run (after create / save)
    if f"{key}.next" in st.session_state:
        st.session_state[key] = st.session_state.pop(f"{key}.next")

names = [s.name for s in sets.list()]
choice = st.selectbox("Training set", [*names, NEW], key="ds.set")
if choice == NEW:
    with st.form("ds.create"):
        st.caption("Name: 2–48 lower-case letters, digits, '-' or '_', starting with a letter or digit (e.g. "
                   "ava-studio). Trigger word: one token of 2–40 letters, digits, '-' or '_' (e.g. ava_tok).")
        name = st.text_input("Name", placeholder="ava", help="lower-case letters, digits, - and _")
        trigger = st.text_input("Trigger word", placeholder="ava_tok",
                                help="a made-up token the LoRA learns to mean this character")
        if st.form_submit_button("Create set", type="primary"):
            try:
                require(user, "dataset")
                st.session_state["ds.set.next"] = sets.create(name, trigger, user.email).name
                svc.store.audit(user.email, "dataset.create", f"datasets/{name}", {"trigger_word": trigger})
                st.rerun()
            except (DatasetError, Forbidden, VolumeError) as exc:
                widgets.show_error(exc, "create the training set")
    st.stop()

training_set = sets.get(choice)
versions = list(reversed(training_set.versions))
version = st.selectbox("Version", versions, key="ds.version") if versions else None
drafts = DraftStore(svc.data_dir)
if st.session_state.get("ds.draft_of") != (choice, version):
    kept = drafts.load(user.email, choice)   # unsaved changes from before a reload or another tab
    restored = kept if kept is not None and kept.version == version else None
    st.session_state.update({"ds.draft": restored.draft if restored else sets.draft(choice, version),
                             "ds.draft_of": (choice, version), "ds.dirty": restored is not None,
                             "ds.gen": st.session_state.get("ds.gen", 0) + 1})
    if restored:
        st.toast(f"Restored your unsaved changes from {time.strftime('%H:%M', time.localtime(restored.saved_at))}")
draft, gen = st.session_state["ds.draft"], st.session_state["ds.gen"]


def changed(message: str) -> None:
    drafts.keep(user.email, choice, version, draft)   # survives a reload until saved or discarded
    st.session_state["ds.dirty"] = True
    st.session_state["ds.gen"] += 1   # new widget keys: tables and uploaders show the draft afresh
    deps.toast_and_rerun(message)


st.caption(f"Trigger word **{escaped(draft.trigger_word)}** · {len(draft.images)} images · "
           + (f"editing {version}" if version else "no saved version yet")
           + (" · **unsaved changes**" if st.session_state["ds.dirty"] else ""))
if st.session_state["ds.dirty"] and st.button("Discard unsaved changes", icon=":material/undo:"):
    drafts.forget(user.email, choice)
    st.session_state.pop("ds.draft_of", None)
    st.rerun()

files = uploads.file_uploader(TRAINING_SET, "Add photos (JPEG, PNG, WebP) with same-name .txt captions, or a .zip "
                              "of them", type=["jpg", "jpeg", "png", "webp", "txt", "zip"], accept_multiple_files=True,
                              key=f"ds.upload.{gen}")
if files and st.button("Add to the set", icon=":material/add_photo_alternate:"):
    try:
        result = read_files([(f.name, f.getvalue()) for f in files])
    except UploadRejected as exc:
        st.error(f"{escaped(exc.summary)}:\n" + "\n".join(f"- {escaped(o)}" for o in exc.offenders),
                 icon=":material/block:")
    else:
        added = draft.add(result)
        changed(f"Added {len(added)} image(s)" + "".join(f" — {n}" for n in result.notes))

report = draft.readiness()
if draft.images:
    with st.expander(f"Photos ({len(draft.images)})", expanded=True):
        st.image([i.thumbnail(svc.volume, previews.folder(svc.data_dir)) for i in draft.images], width=150,
                 caption=[f"{i.name} {report.badge(i.name)}" for i in draft.images])

    st.subheader("Captions")
    table = pd.DataFrame(draft.caption_rows())
    table.insert(0, "remove", False)
    edited = st.data_editor(table, hide_index=True, width="stretch", key=f"ds.captions.{gen}",
                            disabled=["image", "has_trigger", "size"],
                            column_config={"caption": st.column_config.TextColumn("caption", width="large"),
                                           "remove": st.column_config.CheckboxColumn("remove", width="small")})
    a, b = st.columns(2)
    if a.button("Apply table edits", icon=":material/edit_note:"):
        count = draft.set_captions(dict(zip(edited["image"], edited["caption"], strict=False)))
        doomed = list(edited.loc[edited["remove"], "image"])
        draft.remove(doomed)
        changed(f"{count} caption(s) changed, {len(doomed)} image(s) removed")
    if b.button(f"Insert “{draft.trigger_word}” where missing", icon=":material/sell:"):
        changed(f"Trigger word added to {draft.insert_trigger()} caption(s)")
    f1, f2, f3 = st.columns([2, 2, 1])
    find = f1.text_input("Find in captions", key=f"ds.find.{gen}")
    replace = f2.text_input("Replace with", key=f"ds.replace.{gen}")
    whole = f3.checkbox("Whole words", value=True, key=f"ds.whole.{gen}")
    if st.button("Replace in all captions", disabled=not find):
        changed(f"{draft.find_replace(find, replace, whole_word=whole)} replacement(s)")

st.subheader("Readiness")
(st.success if not report.findings else st.warning if not report.errors else st.error)(report.summary())
if report.findings:
    widgets.text_table(report.rows())
warning_keys = {f.key for f in report.warnings}
if warning_keys:
    ack = st.checkbox(f"I have reviewed the {len(warning_keys)} warning(s); train with them",
                      value=warning_keys <= draft.acknowledged, key=f"ds.ack.{gen}")
    if ack != (warning_keys <= draft.acknowledged):
        draft.acknowledged = set(warning_keys) if ack else set()
        st.session_state["ds.dirty"] = True
if report.errors:
    st.caption("Blocking problems (✖) must be fixed before this set can be trained.")

note = st.text_input("What changed (optional)", key=f"ds.note.{gen}")
if st.button("Save as new version", type="primary", icon=":material/save:", disabled=not draft.images):
    try:
        require(user, "dataset")
        saved = sets.save(draft, user.email, note)
    except (DatasetError, Forbidden, VolumeError) as exc:
        widgets.show_error(exc, "save the training set")
    else:
        svc.store.audit(user.email, "dataset.save", f"datasets/{choice}/{saved.version}",
                        {"images": len(draft.images), "note": note})
        drafts.forget(user.email, choice)
        st.session_state.update({"ds.version.next": saved.version, "ds.draft_of": (choice, saved.version),
                                 "ds.dirty": False})
        deps.toast_and_rerun(f"Saved {choice} {saved.version}")
