"""Special tasks on the special endpoint: face swap (ReActor), character sheets (prompt, reference face or
pose images through ControlNet) and generation from a reference image (IP-Adapter)."""
import streamlit as st

from lib import special as sp
from lib.ui import configured, deps, lora_picker, persist, uploads
from lib.ui.face_previews import face_previews
from lib.ui.special_tasks import (
    buttons,
    drawn_pose,
    faceswap_options,
    reference_results,
    sheet_results,
    start,
    swap_results,
    upload,
)
from lib.upload_limits import IMAGE

deps.require_gate()
svc = deps.services()
user = deps.current_user()
can_submit = user.can("submit")
IMAGE_TYPES = ["png", "jpg", "jpeg", "webp"]
NO_LORA = "(no LoRA)"

st.title("Face swap & character sheets")
configured.require_endpoint(svc, "special", "face swap and character sheets")
configured.require_volume(svc, "Face swap and character sheets")
persist.remember("fs.source_face", "fs.target_faces", "fs.restore", "fs.visibility", "fs.fidelity", "fs.gender.",
                 "sh.")
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
    options, faces_chosen = faceswap_options()
    st.caption(f"Swaps {options.summary()}.")
    if buttons("Swap faces", "fs", bool(source and targets and faces_chosen), can_submit):
        batch = "fs" + deps.idempotency_key("fs", [source.file_id, [t.file_id for t in targets], options])[:12]
        start("fs", batch, lambda: sp.start_faceswap(svc, user=user.email, source=upload(source), options=options,
                                                     targets=[upload(t) for t in targets], batch_id=batch))

    swap_results(svc)

with sheet_tab:
    loras = lora_picker.volume_loras(svc, "special")
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
    if buttons("Generate sheet", "sh", bool(lora and panels), can_submit):
        request = sp.SheetRequest(character=character, lora_name=lora, trigger=trigger, seed=seed, details=details,
                                  panels=tuple(panels), reference=upload(reference) if reference else None,
                                  pose_guided=posed, pose_uploads={k: upload(f) for k, f in own_poses.items()})
        sheet = "sheet" + deps.idempotency_key("sh", [lora, character, trigger, details, panels, seed,
                                                      reference.file_id if reference else None, posed,
                                                      {k: f.file_id for k, f in own_poses.items()}])[:12]
        start("sh", sheet, lambda: sp.start_sheet(svc, user=user.email, request=request, sheet_id=sheet))

    sheet_results(svc)

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
    ref_lora = a.selectbox("SDXL character LoRA (optional)", [NO_LORA, *lora_picker.volume_loras(svc, "special")],
                           key="ref.lora")
    ref_strength = b.slider("LoRA strength", 0.0, 1.5, 1.0, 0.05, key="ref.strength", disabled=ref_lora == NO_LORA)
    ref_seed = int(c.number_input("Seed of the first image", 0, 2**32 - 1, 77, key="ref.seed"))
    if buttons("Generate with reference", "ref", bool(reference_file and prompt.strip()), can_submit):
        ref_request = sp.ReferenceRequest(prompt=prompt, reference=upload(reference_file), mode=mode,
                                          weight=weight, start_at=start_at, end_at=end_at, seed=ref_seed,
                                          count=count, negative_prompt=negative,
                                          lora_name=None if ref_lora == NO_LORA else ref_lora,
                                          lora_strength=ref_strength)
        batch = "ref" + deps.idempotency_key("ref", [reference_file.file_id, prompt, negative, mode, weight, start_at,
                                                     end_at, count, ref_lora, ref_strength, ref_seed])[:12]
        start("ref", batch, lambda: sp.start_reference(svc, user=user.email, request=ref_request, batch_id=batch))

    reference_results(svc)
