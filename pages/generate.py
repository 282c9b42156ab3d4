"""Generate: images with a model preset and a character LoRA, X/Y comparison grids, own workflows."""
import streamlit as st

from lib import inference as inf
from lib.grid import GridError
from lib.ui import configured, deps, lora_picker, persist, preset_box, presses, widgets
from lib.ui import generate as gen
from lib.ui.live import feedback, show_problems
from lib.ui.own_workflow import own_workflow
from lib.volume import VolumeError
from lib.workflows import ParamError, size_presets

deps.require_gate()
svc = deps.services()
user = deps.current_user()
NO_LORA = "(no LoRA)"

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
    loras = lora_picker.volume_loras(svc, "image")
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
images, image_problems = gen.input_images(template)

images_tab, grid_tab, own_tab = st.tabs(["Images", "Comparison grid", "Own workflow"])
with images_tab:
    count = int(st.number_input("Number of images (one job each)", 1, inf.MAX_BATCH, 4, key="gen.count"))
    report = gen.preflight(svc, template, params, images, image_problems)
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
        gen.batch_results(svc, user, "gen.batch")

with grid_tab:
    st.caption("Every cell uses the settings above at one fixed seed (unless Seed is an axis).")
    axes = gen.grid_axes(loras)
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
    gen.grid_results(svc)

with own_tab:
    own_workflow(svc, user, can_submit)
