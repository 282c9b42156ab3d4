"""Generate's "Own workflow" tab: a workflow exported from ComfyUI (or opened from the Gallery), its
parameters mapped to the form, checked against the volume and saved as a preset."""
from __future__ import annotations

import streamlit as st

from lib import inference as inf
from lib.devworkers import model_source
from lib.ui import preset_box, uploads
from lib.ui.live import show_problems
from lib.ui.safe_text import escaped
from lib.upload_limits import WORKFLOW
from lib.workflows import TemplateError, WorkflowError, parse_uploaded_workflow, save_custom_template


def _opened_from_gallery(upload) -> inf.OpenedWorkflow | None:
    """The workflow the Gallery opened (unless a file is uploaded), with its download and close buttons."""
    opened: inf.OpenedWorkflow | None = st.session_state.get("own.opened") if upload is None else None
    if opened:
        st.info(f"The workflow of {escaped(opened.label)}, exactly as it was sent (from the Gallery).",
                icon=":material/info:")
        download, close = st.columns([3, 1])
        download.download_button("Download it to edit in ComfyUI (API JSON)", opened.workflow_json,
                                 f"workflow-{opened.local_id}.json", "application/json", key="own.download")
        if close.button("Close it", key="own.close"):
            st.session_state.pop("own.opened")
            st.rerun()
    return opened


def own_workflow(svc, user, can_submit: bool) -> None:
    upload = uploads.file_uploader(WORKFLOW, "A workflow exported from ComfyUI with Export (API)", type=["json"],
                                   key="own.file")
    opened = _opened_from_gallery(upload)  # set by the Gallery
    sent = upload.getvalue() if upload is not None else opened.workflow_json.encode() if opened else None
    if sent is None:
        return
    try:
        workflow = parse_uploaded_workflow(sent)
    except WorkflowError as exc:
        show_problems("This file cannot be used:", exc.problems)
        return
    form, cols = inf.mapping_form(workflow), st.columns(3)
    mapping = form.param_map({param: cols[i % 3].selectbox(param, form.labels, form.labels.index(guess),
                                                           key=f"own.map.{param}")
                              for i, (param, guess) in enumerate(form.guesses.items())})
    own_check = inf.check_own_workflow(workflow, model_source(svc, "image"))
    if own_check.problems:
        show_problems("Preflight against the volume:", own_check.problems)
    if own_check.image_note:
        st.caption(own_check.image_note)
    name = st.text_input("Save as", key="own.name", placeholder="e.g. Ava FLUX upscale")
    if st.button("Save workflow", disabled=not can_submit, key="own.save"):
        try:
            saved = save_custom_template(inf.templates_dir(svc.data_dir), name, workflow, mapping)
            svc.store.audit(user.email, "workflow.save", saved.name, {"title": saved.title})
        except (TemplateError, WorkflowError) as exc:
            st.error(str(exc), icon=":material/error:")
        else:
            preset_box.select_saved(saved.title)
