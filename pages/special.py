"""Special tasks: face swap (ReActor) and character sheets, on the special endpoint."""
import streamlit as st

from lib import special as sp
from lib.devworkers import model_source
from lib.inference import loras_on_volume
from lib.ui import configured, deps, persist, widgets
from lib.ui.face_previews import face_previews

svc = deps.services()
user = deps.current_user()
can_submit = user.can("submit")
FACES = [str(n) for n in range(5)]


@st.cache_data(ttl=60, show_spinner=False)
def volume_loras(volume_version: int) -> list[str]:  # a change made by the console re-lists at once
    return loras_on_volume(model_source(svc, "special"))


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
        st.error("Nothing was sent:\n" + "\n".join(f"- {p}" for p in exc.problems), icon=":material/block:")
        return
    except Exception as exc:  # Forbidden, RunPodError, VolumeError: a clear message, no traceback
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


def live(render, scope: str, active: bool) -> None:
    """Refresh `render` every second while jobs run; `render` stops the timer when they finish."""
    st.session_state[f"{scope}.polling"] = active
    st.fragment(run_every="1s" if active else None)(render)()


def stop_polling_when(finished: bool, scope: str) -> None:
    if finished and st.session_state.pop(f"{scope}.polling", False):
        st.rerun()  # one full run redraws the page without the timer


st.title("Face swap & character sheets")
configured.require_endpoint(svc, "special", "face swap and character sheets")
persist.remember("fs.restore", "fs.visibility", "fs.fidelity", "fs.gender.", "sh.")
swap_tab, sheet_tab = st.tabs(["Face swap", "Character sheet"])

with swap_tab:
    st.warning(sp.FACE_MODEL_LICENCE, icon=":material/gavel:")
    left, right = st.columns(2)
    source = left.file_uploader("Source face: the face to put in (PNG, JPEG or WEBP)", key="fs.source")
    targets = right.file_uploader("Target photos: one job per photo", accept_multiple_files=True, key="fs.targets")
    face_previews([source] if source else [], left)
    face_previews(targets or [], right)
    with st.expander("Options", icon=":material/tune:"):
        a, b = st.columns(2)
        source_face = a.selectbox("Which face of the source photo", FACES, format_func=sp.describe_faces,
                                  key="fs.source_face")
        target_faces = b.multiselect("Which faces of each target photo", FACES, default=["0"],
                                     format_func=sp.describe_faces, key="fs.target_faces")
        restore = a.selectbox("Face restoration after the swap", list(sp.RESTORE_MODELS), index=1,
                              format_func=sp.RESTORE_MODELS.get, key="fs.restore")
        visibility = b.slider("Restoration strength", 0.1, 1.0, 1.0, 0.05, key="fs.visibility",
                              disabled=restore == "none")
        fidelity = a.slider("CodeFormer: keep the original look (1) or smooth more (0)", 0.0, 1.0, 0.5, 0.05,
                            key="fs.fidelity", disabled=not restore.startswith("codeformer"))
        genders = [b.selectbox(label, list(sp.GENDERS), format_func=sp.GENDERS.get, key=f"fs.gender.{who}")
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
            st.markdown(f"{widgets.STATUS_ICONS.get(view.status, '')} **{view.target_name}** · "
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
        stop_polling_when(all(v.finished for v in views), "fs")

    if st.session_state.get("fs.batch"):
        live(swap_results, "fs", any(not v.finished for v in sp.batch_results(svc.store, st.session_state["fs.batch"])))

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
                            format_func=sp.LABELS.get, key="sh.panels")
    reference = st.file_uploader("Reference face (optional): keeps the face's identity in every panel that "
                                 "shows it", key="sh.reference")
    seed = int(st.number_input("Seed (the same for every panel)", 0, 2**32 - 1, 1234, key="sh.seed"))
    st.caption(sp.REFERENCE_LICENCE if reference else "FLUX.1-dev, used for every panel, is non-commercial.")
    if buttons("Generate sheet", "sh", bool(lora and panels)):
        request = sp.SheetRequest(character=character, lora_name=lora, trigger=trigger, seed=seed, details=details,
                                  panels=tuple(panels), reference=upload(reference) if reference else None)
        sheet = "sheet" + deps.idempotency_key("sh", [lora, character, trigger, details, panels, seed,
                                                      reference.file_id if reference else None])[:12]
        start("sh", sheet, lambda: sp.start_sheet(svc, user=user.email, request=request, sheet_id=sheet))

    def sheet_view() -> None:
        result = sp.sheet_result(svc.store, svc.data_dir, st.session_state["sh.batch"])
        progress = result.progress
        st.progress(progress.done / max(1, len(progress.panels)),
                    text=f"{progress.done} of {len(progress.panels)} panels ready")
        for panel in progress.failed:
            st.error(f"{panel.label}: {panel.error}", icon=":material/error:")
        if result.png:
            st.image(result.png, caption=f"{progress.character} — character sheet", width="stretch")
            st.download_button("Download sheet (PNG)", result.png, file_name=f"{progress.sheet_id}.png",
                               mime="image/png", on_click="ignore", key="sh.download")
        if result.path:
            st.caption(f"Sheet kept at {result.path}; every panel is kept with its job (Jobs page).")
        done = [p for p in progress.panels if p.image]
        if done:
            st.image([str(p.image) for p in done], caption=[p.label for p in done], width=160)
        stop_polling_when(progress.finished, "sh")

    if st.session_state.get("sh.batch"):
        live(sheet_view, "sh", not sp.sheet_progress(svc.store, st.session_state["sh.batch"]).finished)
