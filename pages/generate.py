"""Generate: images with a model preset and a character LoRA, X/Y comparison grids, own workflows."""
import json

import streamlit as st

from lib import inference as inf
from lib.devworkers import model_source
from lib.grid import AXIS_TITLES, GRID_PARAMS, GridError
from lib.inference import loras_on_volume
from lib.ui import configured, deps, lora_picker, persist, preset_box, presses, uploads, widgets
from lib.ui import live as live_view
from lib.ui.live import feedback, show_problems
from lib.ui.safe_text import escaped
from lib.upload_limits import IMAGE, WORKFLOW
from lib.volume import VolumeError
from lib.workflows import (
    ParamError,
    TemplateError,
    WorkflowError,
    parse_uploaded_workflow,
    save_custom_template,
    size_presets,
)
from lib.workflows.inputs import prepare_input_images
from lib.workflows.samplers import CHOICES

deps.require_gate()
svc = deps.services()
user = deps.current_user()
NO_LORA = "(no LoRA)"


@st.cache_data(ttl=60, show_spinner=False)
def volume_loras(volume_version: int) -> list[str]:  # a change made by the console re-lists at once
    return loras_on_volume(model_source(svc, "image"))


@st.cache_data(ttl=10, show_spinner=False)
def checked(payloads_json: str):
    return inf.preflight_many(json.loads(payloads_json), model_source(svc, "image"))


def live(state_key: str) -> None:
    live_view.job_list(svc, user, state_key)


def live_fragment(state_key: str, render=live) -> None:
    live_view.live_fragment(svc, state_key, render)


st.title("Generate images")
configured.require_endpoint(svc, "image", "image generation")
persist.remember("gen.", "grid.", "own.map.", skip=("grid.lora_candidates", "gen.saved"))
if st.session_state.get("own.opened"):
    st.info("A workflow from the Gallery is open in the **Own workflow** tab.", icon=":material/account_tree:")
templates = {t.title: t for t in inf.image_templates(svc.data_dir)}
template = preset_box.model_preset(templates)
st.caption(template.description)
lim, defaults = template.limits, template.defaults
left, right = st.columns([3, 2])
params: dict = {"prompt": left.text_area("Prompt", key="gen.prompt", height=110,
                                         placeholder="ava_tok, portrait on a harbour at golden hour")}
if template.uses_negative:
    params["negative_prompt"] = left.text_area("Negative prompt", defaults.get("negative_prompt", ""),
                                               key=f"gen.negative.{template.name}")
try:
    loras = volume_loras(svc.volume.version)
except VolumeError as exc:
    loras = []
    widgets.show_error(exc, "list the LoRAs in models/loras/")
if template.supports("lora_name"):
    lora = right.selectbox("Character LoRA (models/loras/, type to search)",
                           [NO_LORA, *lora_picker.choices(svc, loras, key="gen", container=right)], key="gen.lora",
                           format_func=lora_picker.label_of(svc))
    params["lora_name"] = None if lora == NO_LORA else lora
    params["lora_strength"] = right.slider("LoRA strength", *lim.lora_strength, float(defaults.get("lora_strength", 1.0)),
                                           0.05, key=f"gen.strength.{template.name}")
presets = {p.label: p for p in size_presets(template)}
size = presets[right.selectbox("Size", list(presets), key=f"gen.size.{template.name}")]
params.update(width=size.width, height=size.height)
a, b, c = st.columns(3)
if template.supports("steps"):
    params["steps"] = a.slider("Steps", *lim.steps, int(defaults.get("steps", lim.steps[0])), key=f"gen.steps.{template.name}")
if template.supports("guidance"):
    params["guidance"] = b.slider("Guidance", *lim.guidance, float(defaults.get("guidance", lim.guidance[0])),
                                  0.1, key=f"gen.guidance.{template.name}")
random_seed = c.radio("Seed", ["random", "fixed"], horizontal=True, key="gen.seed_mode") == "random"
params["seed"] = None if random_seed else int(c.number_input("Fixed seed", 0, 2**32 - 1, 42, key="gen.seed"))
can_submit = user.can("submit")
images, image_problems = None, []
if wanted := inf.input_images_of(template):
    st.caption("This workflow reads input images: upload one for each (sent with every job, kept for re-runs).")
    image_cols = st.columns(min(3, len(wanted)))
    files = {w.name: uploads.file_uploader(IMAGE, w.label, where=image_cols[i % 3], type=["png", "jpg", "jpeg", "webp"],
                                           key=f"gen.image.{template.name}.{w.name}")
             for i, w in enumerate(wanted)}
    try:
        prepared = prepare_input_images(template.workflow, {n: (f.name, f.getvalue()) for n, f in files.items() if f})
        images = prepared.images
        for note in prepared.notes:
            st.info(note, icon=":material/info:")
    except ParamError as exc:
        image_problems = exc.problems

images_tab, grid_tab, own_tab = st.tabs(["Images", "Comparison grid", "Own workflow"])
with images_tab:
    count = int(st.number_input("Number of images (one job each)", 1, inf.MAX_BATCH, 4, key="gen.count"))
    report = None
    if not params["prompt"].strip():
        st.info("Type a prompt to generate.", icon=":material/edit:")  # a hint: nothing is wrong yet
    else:
        try:
            if image_problems:
                raise ParamError(image_problems)
            preview = inf.plan_images(template, {**params, "seed": params["seed"] or 0}, count=1,
                                      random_seed=False, images=images)
            report = checked(json.dumps([j.payload for j in preview]))
        except ParamError as exc:
            show_problems("Fix these before generating:", exc.problems)
    if report is not None and not report.ok:
        show_problems(report.summary, [p.message for p in report.problems])
    elif report is not None:
        (st.warning if report.not_checked else st.success)(report.summary, icon=":material/check_circle:")
        lora_picker.warn_on_mismatch(svc, template.family, params.get("lora_name"))
    if st.button("Generate", type="primary", disabled=not (report and report.ok and can_submit), key="gen.go"):
        # A random seed makes a new batch per deliberate press; a double click still sends once.
        key = presses.press_key("generate", [template.name, params, count, inf.images_digest(images)],
                                repeatable=random_seed)
        result = inf.submit(svc, inf.plan_images(template, params, count=count, random_seed=random_seed, images=images),
                            user_email=user.email, request_key=key, kind=inf.KIND_GENERATE)
        st.session_state["gen.batch"] = result.local_ids
        feedback(result, "That was a double click: the batch was sent once." if random_seed else
                 "These settings were already sent from this page — nothing new was submitted. "
                 "Press **New batch** to send them again.")
    if st.session_state.get("gen.batch"):
        if st.button("New batch", key="gen.new"):
            deps.new_request("generate")
        live_fragment("gen.batch")

with grid_tab:
    st.caption("Every cell uses the settings above at one fixed seed (unless Seed is an axis).")
    gx, gy = st.columns(2)
    axes: dict[str, tuple[str, str | list[str]]] = {}
    # Checkpoints from the training page compare as checkpoint × strength at a fixed seed.
    x_default, y_default = (0, 1) if st.session_state.get("grid.lora_candidates") else (1, 3)
    for col, label, name, default in ((gx, "Columns (X)", "x", x_default), (gy, "Rows (Y)", "y", y_default)):
        param = col.selectbox(label, GRID_PARAMS, default, format_func=lambda axis: AXIS_TITLES[axis], key=f"grid.{name}")
        if param == "lora_name":
            # Checkpoints handed over by "Compare in a grid" on the LoRA training page.
            candidates = [c for c in st.session_state.get("grid.lora_candidates", []) if c in loras]
            axes[name] = (param, col.multiselect("LoRA files", loras, default=candidates,
                                                 key=f"grid.{name}.loras"))
        elif param in CHOICES:
            axes[name] = (param, col.multiselect(AXIS_TITLES[param], CHOICES[param], key=f"grid.{name}.{param}"))
        else:
            hint = "one prompt per line" if param == "prompt" else "values separated by commas"
            axes[name] = (param, col.text_area(f"{AXIS_TITLES[param]} — {hint}", key=f"grid.{name}.values"))
    if st.button("Build grid", type="primary", disabled=not can_submit, key="grid.go"):
        try:
            start = inf.start_grid(svc, template, axes, params, user_email=user.email, images=images,
                                   request_key=deps.idempotency_key("grid", [template.name, params, axes,
                                                                             inf.images_digest(images)]))
        except (GridError, ParamError) as exc:
            show_problems("The grid cannot be built:", getattr(exc, "problems", [str(exc)]))
        else:
            if start.result is None:
                show_problems(start.report.summary, [p.message for p in start.report.problems])
            else:
                feedback(start.result, "This grid was already sent; showing it.")
                st.session_state["grid.id"], st.session_state["grid.jobs"] = start.grid_id, start.result.local_ids

    @st.cache_data(max_entries=4, show_spinner=False)
    def grid_picture(grid_id: str, statuses: tuple) -> bytes:  # composed again only when a cell changes
        return inf.grid_png(svc, inf.grid_state(svc, grid_id))

    def grid_view(state_key: str) -> None:
        state = inf.grid_state(svc, st.session_state["grid.id"])
        png = grid_picture(state.spec["id"], tuple((v.record.status, len(v.images)) for v in state.views))
        st.image(png, caption=state.summary)
        st.download_button("Download grid (PNG)", png, f"{state.spec['id']}.png", "image/png", disabled=not state.done)

    if st.session_state.get("grid.id"):
        live_fragment("grid.jobs", grid_view)

with own_tab:
    upload = uploads.file_uploader(WORKFLOW, "A workflow exported from ComfyUI with Export (API)", type=["json"],
                                   key="own.file")
    # Set by the Gallery.
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
    sent = upload.getvalue() if upload is not None else opened.workflow_json.encode() if opened else None
    if sent is not None:
        try:
            workflow = parse_uploaded_workflow(sent)
        except WorkflowError as exc:
            show_problems("This file cannot be used:", exc.problems)
        else:
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
