"""Pieces of the special tasks page (face swap, character sheets, reference images): the face-swap options,
the submit buttons, starting a batch, and each task's results, refreshed while its jobs run."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from lib import previews
from lib import special as sp
from lib.errors import ConsoleError
from lib.runpod import RunPodError
from lib.ui import deps, pictures, widgets
from lib.ui.refresh import refresh_while, stop_refreshing_when
from lib.ui.safe_text import escaped

FACES = [str(n) for n in range(5)]


@st.cache_data(show_spinner=False)
def drawn_pose(panel_key: str) -> bytes:
    return sp.drawn_pose(panel_key)


def upload(file) -> sp.Upload:
    return sp.Upload(file.name, file.getvalue())


def buttons(label: str, scope: str, ready: bool, can_submit: bool) -> bool:
    """The submit button, and "Start over" (a new request key) once something was sent."""
    go, again = st.columns([1, 4])
    if st.session_state.get(f"{scope}.batch") and again.button("Start over", key=f"{scope}.new"):
        deps.new_request(scope)
        st.session_state.pop(f"{scope}.batch")
        st.rerun()
    return go.button(label, type="primary", disabled=not (ready and can_submit), key=f"{scope}.go")


def start(scope: str, batch_id: str, launch: Callable[[], Any]) -> None:
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


# The face swap's options and their values before anyone chooses (the widgets' defaults, and what a closed
# "Options" section stands for).
FACESWAP_DEFAULTS: dict[str, Any] = {
    "fs.source_face": FACES[0], "fs.target_faces": ["0"], "fs.restore": list(sp.RESTORE_MODELS)[1],
    "fs.visibility": 1.0, "fs.fidelity": 0.5, "fs.gender.source": list(sp.GENDERS)[0],
    "fs.gender.target": list(sp.GENDERS)[0]}


def _faceswap_widgets() -> None:
    a, b = st.columns(2)
    default = FACESWAP_DEFAULTS
    a.selectbox("Which face of the source photo", FACES, index=FACES.index(default["fs.source_face"]),
                format_func=sp.describe_faces, key="fs.source_face")
    b.multiselect("Which faces of each target photo", FACES, default=default["fs.target_faces"],
                  format_func=sp.describe_faces, key="fs.target_faces")
    restore = a.selectbox("Face restoration after the swap", list(sp.RESTORE_MODELS),
                          index=list(sp.RESTORE_MODELS).index(default["fs.restore"]),
                          format_func=lambda model: sp.RESTORE_MODELS[model], key="fs.restore")
    b.slider("Restoration strength", 0.1, 1.0, default["fs.visibility"], 0.05, key="fs.visibility",
             disabled=restore == "none")
    a.slider("CodeFormer: keep the original look (1) or smooth more (0)", 0.0, 1.0, default["fs.fidelity"], 0.05,
             key="fs.fidelity", disabled=not restore.startswith("codeformer"))
    for who, label in (("source", "Source faces to use"), ("target", "Target faces to replace")):
        b.selectbox(label, list(sp.GENDERS), index=list(sp.GENDERS).index(default[f"fs.gender.{who}"]),
                    format_func=lambda gender: sp.GENDERS[gender], key=f"fs.gender.{who}")


def faceswap_options() -> tuple[sp.FaceSwapOptions, bool]:
    """The face swap's "Options" section (which faces, restoration, genders): the options, and whether a
    target face is chosen. Its seven widgets are drawn only while it is open (they took the browser 0.06 s of
    every visit); closed, the options are the ones last chosen (the page remembers them) or the defaults."""
    widgets.lazy_expander("Options", "fs.options", _faceswap_widgets, icon=":material/tune:")
    value = {key: st.session_state.get(key, default) for key, default in FACESWAP_DEFAULTS.items()}
    options = sp.FaceSwapOptions(source_faces=value["fs.source_face"],
                                 target_faces=",".join(sorted(value["fs.target_faces"])) or "0",
                                 restore_model=value["fs.restore"], restore_visibility=value["fs.visibility"],
                                 codeformer_weight=value["fs.fidelity"], source_gender=value["fs.gender.source"],
                                 target_gender=value["fs.gender.target"])
    return options, bool(value["fs.target_faces"])


def _live_batch(scope: str, views: Callable[[str], Sequence], draw: Callable[[Sequence], None]) -> None:
    """Once a batch of `scope` was sent: draw its views, refreshed while any of its jobs runs."""
    if not st.session_state.get(f"{scope}.batch"):
        return

    def render() -> None:
        current = views(st.session_state[f"{scope}.batch"])
        draw(current)
        stop_refreshing_when(all(v.finished for v in current), scope)

    refresh_while(any(not v.finished for v in views(st.session_state[f"{scope}.batch"])), scope, render)


def _draw_swaps(svc, views: Sequence[sp.SwapView]) -> None:
    for view in views:
        st.markdown(f"{widgets.STATUS_ICONS.get(view.status, '')} **{escaped(view.target_name)}** · "
                    f"{view.status.replace('_', ' ').lower()}")
        before, after = st.columns(2)
        if view.before:
            before.image(view.before, caption="Before", width="stretch")
        if view.after:
            with after:
                pictures.show(svc, [view.after], ["After"], width="stretch", stretched_to=previews.HALF_WIDTH)
            after.download_button("Download", view.after.read_bytes(), view.after.name, "image/png",
                                  key=f"fs.dl.{view.after.name}", icon=":material/download:", on_click="ignore")
        for warning in view.warnings:
            st.warning(warning, icon=":material/warning:")
        if view.error:
            st.error(view.error, icon=":material/error:")


def swap_results(svc) -> None:
    """Before and after for every target photo of the face-swap batch sent last."""
    _live_batch("fs", lambda batch: sp.batch_results(svc.store, batch), lambda views: _draw_swaps(svc, views))


def _draw_references(svc, views: Sequence[sp.PanelView]) -> None:
    cols = st.columns(4)
    for i, view in enumerate(views):
        with cols[i % 4]:
            st.caption(f"{widgets.STATUS_ICONS.get(view.status, '')} {view.label} · "
                       f"{view.status.replace('_', ' ').lower()}")
            if view.image:
                pictures.show(svc, [view.image], [view.label], width="stretch")
            if view.error:
                st.error(view.error, icon=":material/error:")


def reference_results(svc) -> None:
    """Every image of the reference request sent last."""
    _live_batch("ref", lambda batch: sp.reference_results(svc.store, batch), lambda views: _draw_references(svc, views))


def sheet_results(svc) -> None:
    """The character sheet sent last: progress, failed panels, the sheet so far and each panel."""
    if not st.session_state.get("sh.batch"):
        return

    def render() -> None:
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
        done = [(p.image, p.label) for p in progress.panels if p.image]
        if done:
            pictures.show(svc, [image for image, _ in done], [label for _, label in done], width=160)
        stop_refreshing_when(progress.finished, "sh")

    refresh_while(not sp.sheet_progress(svc.store, st.session_state["sh.batch"]).finished, "sh", render)
