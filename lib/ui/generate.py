"""Pieces of the Generate page: input images for a preset that reads them, the preflight of the form,
the comparison grid's axes and picture, and the live view of a batch."""
from __future__ import annotations

import json

import streamlit as st

from lib import inference as inf
from lib.devworkers import model_source
from lib.grid import AXIS_TITLES, GRID_PARAMS
from lib.ui import live as live_view
from lib.ui import lora_picker, uploads
from lib.ui.live import show_problems
from lib.upload_limits import IMAGE
from lib.workflows import ParamError
from lib.workflows.inputs import prepare_input_images
from lib.workflows.samplers import CHOICES
from lib.workflows.templates import Template


@st.cache_data(ttl=10, show_spinner=False)
def _checked(_svc, payloads_json: str):
    return inf.preflight_many(json.loads(payloads_json), model_source(_svc, "image"))


def input_images(template: Template) -> tuple[dict | None, list[str]]:
    """One upload per input image the preset reads: the prepared images (None when it reads none) and
    the problems with them."""
    images, problems = None, []
    if wanted := inf.input_images_of(template):
        st.caption("This workflow reads input images: upload one for each (sent with every job, kept for re-runs).")
        image_cols = st.columns(min(3, len(wanted)))
        files = {w.name: uploads.file_uploader(IMAGE, w.label, where=image_cols[i % 3],
                                               type=["png", "jpg", "jpeg", "webp"],
                                               key=f"gen.image.{template.name}.{w.name}")
                 for i, w in enumerate(wanted)}
        try:
            prepared = prepare_input_images(template.workflow, {n: (f.name, f.getvalue()) for n, f in files.items() if f})
            images = prepared.images
            for note in prepared.notes:
                st.info(note, icon=":material/info:")
        except ParamError as exc:
            problems = exc.problems
    return images, problems


def preflight(svc, template: Template, params: dict, images, image_problems: list[str]):
    """The form checked as one job against the volume (shown); the report, or None when it cannot be
    checked yet (no prompt, or a problem with the values)."""
    report = None
    if not params["prompt"].strip():
        st.info("Type a prompt to generate.", icon=":material/edit:")  # a hint: nothing is wrong yet
    else:
        try:
            if image_problems:
                raise ParamError(image_problems)
            preview = inf.plan_images(template, {**params, "seed": params["seed"] or 0}, count=1,
                                      random_seed=False, images=images)
            report = _checked(svc, json.dumps([j.payload for j in preview]))
        except ParamError as exc:
            show_problems("Fix these before generating:", exc.problems)
    if report is not None and not report.ok:
        show_problems(report.summary, [p.message for p in report.problems])
    elif report is not None:
        (st.warning if report.not_checked else st.success)(report.summary, icon=":material/check_circle:")
        lora_picker.warn_on_mismatch(svc, template.family, params.get("lora_name"))
    return report


def batch_results(svc, user, state_key: str) -> None:
    """The jobs in session_state[state_key], refreshed while one runs."""
    def render(key: str) -> None:
        live_view.job_list(svc, user, key)

    live_view.live_fragment(svc, state_key, render)


def grid_axes(loras: list[str]) -> dict[str, tuple[str, str | list[str]]]:
    """The grid's two axes: a parameter each, with its values."""
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
    return axes


@st.cache_data(max_entries=4, show_spinner=False)
def _grid_picture(_svc, grid_id: str, statuses: tuple) -> bytes:  # composed again only when a cell changes
    return inf.grid_png(_svc, inf.grid_state(_svc, grid_id))


def grid_results(svc) -> None:
    """The grid built last, refreshed while a cell runs; downloadable once done."""
    def grid_view(state_key: str) -> None:
        state = inf.grid_state(svc, st.session_state["grid.id"])
        png = _grid_picture(svc, state.spec["id"], tuple((v.record.status, len(v.images)) for v in state.views))
        st.image(png, caption=state.summary)
        st.download_button("Download grid (PNG)", png, f"{state.spec['id']}.png", "image/png", disabled=not state.done)

    if st.session_state.get("grid.id"):
        live_view.live_fragment(svc, "grid.jobs", grid_view)
