"""Special tasks on the special endpoint: face swap (ReActor), character sheets (prompt, reference face or
pose images through ControlNet) and generation from a reference image (IP-Adapter)."""
import streamlit as st

from lib import special as sp
from lib.devworkers import model_source
from lib.errors import ConsoleError
from lib.inference import loras_on_volume
from lib.runpod import RunPodError
from lib.ui import configured, deps, persist, uploads, widgets
from lib.ui.face_previews import face_previews
from lib.ui.refresh import refresh_while, stop_refreshing_when
from lib.ui.safe_text import escaped
from lib.upload_limits import IMAGE

deps.require_gate()
svc = deps.services()
user = deps.current_user()
can_submit = user.can("submit")
FACES = [str(n) for n in range(5)]
IMAGE_TYPES = ["png", "jpg", "jpeg", "webp"]
NO_LORA = "(no LoRA)"


@st.cache_data(ttl=60, show_spinner=False)
def volume_loras(volume_version: int) -> list[str]:  # a change made by the console re-lists at once
    return loras_on_volume(model_source(svc, "special"))


@st.cache_data(show_spinner=False)
def drawn_pose(panel_key: str) -> bytes:
    return sp.drawn_pose(panel_key)


def upload(file) -> sp.Upload:
    return sp.Upload(file.name, file.getvalue())


def buttons(label: str, scope: str, ready: bool) -> bool:
    """The submit button, and "Start over" (a new request key) once something was sent."""
    go, again = st.columns([1, 4])
    if st.session_state.get(f"{scope}.batch") and again.button("Start over", key=f"{scope}.new"):
        deps.new_request(scope)
        st.session_state.pop(f"{scope}.batch")
        st.rerun()
    return go.button(label, type="primary", disabled=not (ready and can_submit), key=f"{scope}.go")


def start(scope: str, batch_id: str, launch) -> None:
    """Run launch(); remember the batch; show notes, refusals and repeats in plain words."""
    try:
        started = launch()
    except sp.SpecialInputError as exc:
        st.error("Nothing was sent:\n" + "\n".join(f"- {escaped(p)}" for p in exc.problems), icon=":material/block:")
        return
    except (ConsoleError, RunPodError) as exc:  # Forbidden, VolumeError, a refused store write, RunPod
        widgets.show_error(exc, "submit the jobs")
        return
    st.session_state[f"{scope}.batch"] = batch_id
    outcome = started.outcome
    for note in started.plan.notes:
        st.info(note, icon=":material/info:")
    for refusal in outcome.refused:
        st.error(refusal, icon=":material/block:")
    if outcome.already_sent == len(outcome.records):
        st.info("These jobs were already sent; their results are below. “Start over” runs them again.",
                icon=":material/info:")


st.title("Face swap & character sheets")
configured.require_endpoint(svc, "special", "face swap and character sheets")
configured.require_volume(svc, "Face swap and character sheets")
persist.remember("fs.restore", "fs.visibility", "fs.fidelity", "fs.gender.", "sh.")
swap_tab, sheet_tab, reference_tab = st.tabs(["Face swap", "Character sheet", "Reference image"])

with swap_tab:
    st.warning(sp.FACE_MODEL_LICENCE, icon=":material/gavel:")
    left, right = st.columns(2)
    source = uploads.file_uploader(IMAGE, "Source face: the face to put in (PNG, JPEG or WEBP)", key="fs.source",
                                   where=left)
    targets = uploads.file_uploader(IMAGE, "Target photos: one job per photo", accept_multiple_files=True,
                                    key="fs.targets", where=right)
    face_previews([source] if source else [], left)
    face_previews(targets or [], right)
    with st.expander("Options", icon=":material/tune:"):
        a, b = st.columns(2)
        source_face = a.selectbox("Which face of the source photo", FACES, format_func=sp.describe_faces,
                                  key="fs.source_face")
        target_faces = b.multiselect("Which faces of each target photo", FACES, default=["0"],
                                     format_func=sp.describe_faces, key="fs.target_faces")
        restore = a.selectbox("Face restoration after the swap", list(sp.RESTORE_MODELS), index=1,
                              format_func=lambda model: sp.RESTORE_MODELS[model], key="fs.restore")
        visibility = b.slider("Restoration strength", 0.1, 1.0, 1.0, 0.05, key="fs.visibility",
                              disabled=restore == "none")
        fidelity = a.slider("CodeFormer: keep the original look (1) or smooth more (0)", 0.0, 1.0, 0.5, 0.05,
                            key="fs.fidelity", disabled=not restore.startswith("codeformer"))
        genders = [b.selectbox(label, list(sp.GENDERS), format_func=lambda gender: sp.GENDERS[gender], key=f"fs.gender.{who}")
                   for who, label in (("source", "Source faces to use"), ("target", "Target faces to replace"))]
    options = sp.FaceSwapOptions(source_faces=source_face, target_faces=",".join(sorted(target_faces)) or "0",
                                 restore_model=restore, restore_visibility=visibility, codeformer_weight=fidelity,
                                 source_gender=genders[0], target_gender=genders[1])
    st.caption(f"Swaps {options.summary()}.")
    if buttons("Swap faces", "fs", bool(source and targets and target_faces)):
        batch = "fs" + deps.idempotency_key("fs", [source.file_id, [t.file_id for t in targets], options])[:12]
        start("fs", batch, lambda: sp.start_faceswap(svc, user=user.email, source=upload(source), options=options,
                                                     targets=[upload(t) for t in targets], batch_id=batch))

    def swap_results() -> None:
        views = sp.batch_results(svc.store, st.session_state["fs.batch"])
        for view in views:
            st.markdown(f"{widgets.STATUS_ICONS.get(view.status, '')} **{escaped(view.target_name)}** · "
                        f"{view.status.replace('_', ' ').lower()}")
            before, after = st.columns(2)
            if view.before:
                before.image(view.before, caption="Before", width="stretch")
            if view.after:
                after.image(str(view.after), caption="After", width="stretch")
                after.download_button("Download", view.after.read_bytes(), view.after.name, "image/png",
                                      key=f"fs.dl.{view.after.name}", icon=":material/download:", on_click="ignore")
            for warning in view.warnings:
                st.warning(warning, icon=":material/warning:")
            if view.error:
                st.error(view.error, icon=":material/error:")
        stop_refreshing_when(all(v.finished for v in views), "fs")

    if st.session_state.get("fs.batch"):
        refresh_while(any(not v.finished for v in sp.batch_results(svc.store, st.session_state["fs.batch"])),
                      "fs", swap_results)

with sheet_tab:
    loras = volume_loras(svc.volume.version)
    if not loras:
        st.info("No LoRA in models/loras/ on the volume yet: train one, or upload it on the Models page.",
                icon=":material/info:")
    lora = st.selectbox("Character LoRA (models/loras/)", loras, key="sh.lora")
    a, b = st.columns(2)
    guess = sp.default_trigger(lora) if lora else ""
    character = a.text_input("Character name", guess.replace("_", " ").title(), key=f"sh.name.{lora}")
    trigger = b.text_input("Trigger word the LoRA was trained with", guess, key=f"sh.trigger.{lora}")
    details = st.text_input("Look to keep in every panel (optional)", placeholder="red jacket, short black hair",
                            key="sh.details")
    panels = st.multiselect("Panels", [p.key for p in sp.PANELS], default=[p.key for p in sp.PANELS],
                            format_func=lambda panel: sp.LABELS[panel], key="sh.panels")
    reference = uploads.file_uploader(IMAGE, "Reference face (optional): keeps the face's identity in every panel that "
                                 "shows it", key="sh.reference")
    posed = st.toggle("Guide every panel with a pose image (ControlNet, OpenPose skeletons)", key="sh.posed")
    own_poses = {}
    if posed:
        st.caption("The console draws a skeleton for each view and expression; upload your own pose image for a "
                   "panel to use it instead (it is fitted to the panel's size).")
        pose_cols = st.columns(5)
        for i, key in enumerate(panels):
            own = uploads.file_uploader(IMAGE, f"{sp.LABELS[key]} pose", where=pose_cols[i % 5], type=IMAGE_TYPES,
                                        key=f"sh.pose.{key}")
            pose_cols[i % 5].image(own.getvalue() if own else drawn_pose(key), width="stretch",
                                   caption="your pose" if own else "drawn pose")
            if own:
                own_poses[key] = own
    seed = int(st.number_input("Seed (the same for every panel)", 0, 2**32 - 1, 1234, key="sh.seed"))
    st.caption(sp.REFERENCE_LICENCE if reference else "FLUX.1-dev, used for every panel, is non-commercial.")
    if buttons("Generate sheet", "sh", bool(lora and panels)):
        request = sp.SheetRequest(character=character, lora_name=lora, trigger=trigger, seed=seed, details=details,
                                  panels=tuple(panels), reference=upload(reference) if reference else None,
                                  pose_guided=posed, pose_uploads={k: upload(f) for k, f in own_poses.items()})
        sheet = "sheet" + deps.idempotency_key("sh", [lora, character, trigger, details, panels, seed,
                                                      reference.file_id if reference else None, posed,
                                                      {k: f.file_id for k, f in own_poses.items()}])[:12]
        start("sh", sheet, lambda: sp.start_sheet(svc, user=user.email, request=request, sheet_id=sheet))

    def sheet_view() -> None:
        result = sp.sheet_result(svc.store, svc.data_dir, st.session_state["sh.batch"])
        progress = result.progress
        st.progress(progress.done / max(1, len(progress.panels)),
                    text=f"{progress.done} of {len(progress.panels)} panels ready")
        for panel in progress.failed:
            st.error(f"{escaped(panel.label)}: {escaped(panel.error)}", icon=":material/error:")
        if result.png:
            st.image(result.png, caption=f"{progress.character} — character sheet", width="stretch")
            st.download_button("Download sheet (PNG)", result.png, file_name=f"{progress.sheet_id}.png",
                               mime="image/png", on_click="ignore", key="sh.download")
        if result.path:
            st.caption(f"Sheet kept at {result.path}; every panel is kept with its job (Jobs page).")
        done = [p for p in progress.panels if p.image]
        if done:
            st.image([str(p.image) for p in done], caption=[p.label for p in done], width=160)
        stop_refreshing_when(progress.finished, "sh")

    if st.session_state.get("sh.batch"):
        refresh_while(not sp.sheet_progress(svc.store, st.session_state["sh.batch"]).finished, "sh", sheet_view)

with reference_tab:
    st.caption("Generate with SDXL in the style of a picture, or with the face of a portrait (IP-Adapter).")
    mode = st.radio("Take from the reference", list(sp.MODES), format_func=lambda m: sp.MODES[m].label,
                    horizontal=True, key="ref.mode")
    if sp.MODES[mode].licence:
        st.warning(sp.MODES[mode].licence, icon=":material/gavel:")
    left, right = st.columns(2)
    reference_file = uploads.file_uploader(IMAGE, "Reference image (PNG, JPEG or WEBP)", where=left, type=IMAGE_TYPES,
                                           key="ref.image")
    if reference_file:
        left.image(reference_file.getvalue(), caption="Reference", width=220)
    prompt = right.text_area("Prompt", key="ref.prompt", placeholder="ava_tok reading in a café, film photo")
    negative = right.text_input("Negative prompt", "lowres, blurry, watermark, text", key="ref.negative")
    a, b, c = st.columns(3)
    weight = a.slider("Reference weight", 0.0, 2.0, 0.8, 0.05, key="ref.weight")
    start_at, end_at = b.slider("Acts from … to … of the steps", 0.0, 1.0, (0.0, 1.0), 0.05, key="ref.window")
    count = int(c.number_input("Images (one job each)", 1, 8, 2, key="ref.count"))
    ref_lora = a.selectbox("SDXL character LoRA (optional)", [NO_LORA, *volume_loras(svc.volume.version)],
                           key="ref.lora")
    ref_strength = b.slider("LoRA strength", 0.0, 1.5, 1.0, 0.05, key="ref.strength", disabled=ref_lora == NO_LORA)
    ref_seed = int(c.number_input("Seed of the first image", 0, 2**32 - 1, 77, key="ref.seed"))
    if buttons("Generate with reference", "ref", bool(reference_file and prompt.strip())):
        ref_request = sp.ReferenceRequest(prompt=prompt, reference=upload(reference_file), mode=mode,
                                          weight=weight, start_at=start_at, end_at=end_at, seed=ref_seed,
                                          count=count, negative_prompt=negative,
                                          lora_name=None if ref_lora == NO_LORA else ref_lora,
                                          lora_strength=ref_strength)
        batch = "ref" + deps.idempotency_key("ref", [reference_file.file_id, prompt, negative, mode, weight, start_at,
                                                     end_at, count, ref_lora, ref_strength, ref_seed])[:12]
        start("ref", batch, lambda: sp.start_reference(svc, user=user.email, request=ref_request, batch_id=batch))

    def reference_view() -> None:
        views = sp.reference_results(svc.store, st.session_state["ref.batch"])
        cols = st.columns(4)
        for i, view in enumerate(views):
            with cols[i % 4]:
                st.caption(f"{widgets.STATUS_ICONS.get(view.status, '')} {view.label} · "
                           f"{view.status.replace('_', ' ').lower()}")
                if view.image:
                    st.image(str(view.image), caption=view.label, width="stretch")
                if view.error:
                    st.error(view.error, icon=":material/error:")
        stop_refreshing_when(all(v.finished for v in views), "ref")

    if st.session_state.get("ref.batch"):
        refresh_while(any(not v.finished for v in sp.reference_results(svc.store, st.session_state["ref.batch"])),
                      "ref", reference_view)
