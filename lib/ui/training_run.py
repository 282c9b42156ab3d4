"""The LoRA training page's run panel: status and progress, the trainer's log tail, the loss, the sample
images (compared side by side by step and opened large on demand), the checkpoints, and the actions on a
finished run (resume, compare in a grid, promote)."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pandas as pd
import streamlit as st

from lib import lora_base
from lib.auth import Forbidden
from lib.inference import image_templates
from lib.jobstate import JobState
from lib.ops.actions import format_bytes
from lib.runpod import RunPodError
from lib.training import service
from lib.training.charts import loss_figure
from lib.training.config import ConfigProblem, new_run_id
from lib.training.runs import RunError, Sample, format_duration, next_version
from lib.ui import deps, queue_panel, widgets
from lib.ui.refresh import stop_refreshing_when
from lib.ui.safe_text import escaped
from lib.volume import VolumeError

SAMPLE_WIDTH = 220
def log_tail(lines: Sequence[str], *, expanded: bool = False) -> None:
    """The worker's last trainer lines, as text (they come from the trainer, never Markdown)."""
    with st.expander(f"Trainer log — last {len(lines)} lines", expanded=expanded, icon=":material/terminal:"):
        st.code("\n".join(lines), language="text")


@st.dialog("Sample image", width="large")
def _zoom(image: bytes, step: int, prompt: str) -> None:
    st.image(image, width="stretch")
    st.caption(f"step {step}")
    st.text(prompt)


def _prompts(by_step: Mapping[int, Sequence[Sample]]) -> list[str]:
    seen: dict[str, None] = {}
    for samples in by_step.values():
        for s in samples:
            seen.setdefault(s.prompt, None)
    return list(seen)


def sample_comparison(by_step: Mapping[int, Sequence[Sample]], read: Callable[[str], bytes], key: str) -> None:
    """One row per sample prompt, one column per chosen step; any image opens large."""
    steps = sorted(by_step)
    # Keyed by the newest round: while a run goes on, each new round of samples comes into view
    # (a keyed widget would otherwise keep the default it had when only step 0 existed).
    chosen = st.multiselect("Compare samples from steps", steps, steps[-2:], key=f"{key}.steps.{steps[-1]}",
                            help="Pick the steps to see side by side; 🔍 opens an image large.")
    if not chosen:
        st.caption("Choose at least one step to see its samples.")
        return
    chosen = sorted(chosen)
    for row, prompt in enumerate(_prompts(by_step)):
        st.caption(escaped(prompt) if prompt else "(no prompt)")
        for col, step in zip(st.columns(len(chosen)), chosen, strict=True):
            sample = next((s for s in by_step[step] if s.prompt == prompt), None)
            if sample is None:
                col.caption(f"step {step}: no image")
                continue
            image = read(sample.key)
            col.image(image, width=SAMPLE_WIDTH, caption=f"step {step}")
            if col.button("🔍", key=f"{key}.zoom.{row}.{step}", help="Open large"):
                _zoom(image, step, prompt)


@st.cache_data(max_entries=300, show_spinner=False)
def _volume_file(_svc, key: str) -> bytes:   # run outputs never change once written
    return _svc.volume.read(key)


def run_panel(svc, user, local_id: str) -> None:
    """One run: status, progress, log, loss, samples, checkpoints; cancel, and once final the actions."""
    record = svc.store.get(local_id)
    stop_refreshing_when(record.is_final, "tr")
    view = service.view(svc, record)
    st.write(f"{widgets.STATUS_ICONS.get(record.status, '')} **{record.status.replace('_', ' ').title()}**"
             f" · {record.input['output_path'] if record.input else ''}")
    loss = f" · loss {view.loss:.4f}" if view.loss is not None else ""
    eta = f" · ETA {format_duration(view.eta_s)}" if record.is_active and view.eta_s is not None else ""
    phase = f" · {view.phase}" if record.is_active and view.phase else ""
    st.progress(view.fraction, text=f"step {view.step} / {view.total_steps or '?'}{loss}{eta}{phase}")
    widgets.dev_worker_note(record)
    if view.error:
        st.error(escaped(view.error), icon=":material/error:")
    if view.log_tail:
        log_tail(view.log_tail, expanded=record.status == JobState.FAILED)
    if view.loss_series:
        st.plotly_chart(loss_figure(view.loss_series, [c.step for c in view.checkpoints], view.total_steps),
                        key=f"tr.loss.{local_id}")
    if view.samples:
        sample_comparison(view.samples_by_step(), lambda key: _volume_file(svc, key), key=f"tr.samples.{local_id}")
    if view.checkpoints:
        st.dataframe(pd.DataFrame([{"step": c.step, "file": c.file_name, "size": format_bytes(c.size or 0),
                                    "sha256": (c.sha256 or "")[:12]} for c in view.checkpoints]),
                     hide_index=True, width="stretch")
    if record.is_active and st.button("Cancel run…", icon=":material/cancel:", key=f"tr.cancel.{local_id}"):
        queue_panel.confirm_cancel(svc, user, local_id)
    if record.is_final and view.checkpoints:
        _actions(svc, user, record, view)   # a cancelled run's checkpoints are real files on the volume too


def _actions(svc, user, record, view) -> None:
    """Resume, compare checkpoints in a grid, promote one."""
    resume_at = service.resumable_from(svc, record)
    if resume_at and st.button(f"Resume from step {resume_at.step}", icon=":material/play_arrow:",
                               key=f"tr.resume.{record.local_id}", disabled=not user.can("train")):
        try:
            resumed = service.resume(svc, user, record, run_id=new_run_id(),
                                     request_key=deps.idempotency_key("resume", [record.local_id, resume_at.step]))
            st.session_state["tr.run"] = resumed.local_id
            # the whole page: the runs list gains the new run
            deps.toast_and_rerun(f"Resuming from step {resume_at.step} as a new run")
        except (RunError, ConfigProblem, Forbidden, RunPodError, VolumeError) as exc:
            widgets.show_error(exc, "resume the run")
    steps = [c.step for c in view.checkpoints]
    left, right = st.columns(2)
    chosen = left.multiselect("Checkpoints to compare", steps, steps[-3:], key=f"tr.cmp.{record.local_id}")
    if left.button("Compare in a grid", icon=":material/grid_view:", disabled=not chosen):
        try:
            staged = service.compare(svc, user, record, chosen)
            st.session_state["grid.lora_candidates"] = [c.lora_name for c in staged]
            if preset := lora_base.preset_title_for_run(record.meta, image_templates(svc.data_dir)):
                st.session_state["gen.model"] = preset   # the grid runs on the model the run trained
            left.success(f"{len(staged)} checkpoints are ready: open **Generate → Comparison grid** and "
                         f"choose LoRA as an axis (preset: {preset or 'choose one'}).", icon=":material/grid_view:")
        except (RunError, Forbidden, VolumeError) as exc:
            widgets.show_error(exc, "prepare the comparison")
    if not user.can("promote"):
        right.caption("Promoting a checkpoint to models/loras/ needs the operator role.")
        return
    step = right.selectbox("Checkpoint to promote", steps[::-1], key=f"tr.promote.{record.local_id}")
    label = right.text_input("As version", next_version(svc.volume, record.meta["character"]),
                             key=f"tr.promote_v.{record.local_id}")
    if right.button("Promote", icon=":material/publish:"):
        try:
            done = service.promote(svc, user, record, step, label)
            right.success(f"Promoted step {step} to `{done.target}` — pick **{done.lora_name}** on the "
                          f"Generate page.", icon=":material/check_circle:")
        except (RunError, Forbidden, VolumeError) as exc:
            widgets.show_error(exc, "promote the checkpoint")
