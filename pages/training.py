"""LoRA training: pick a ready training set, a base model and parameters, launch, follow the run,
compare checkpoints and promote the best one."""
import zlib

import pandas as pd
import streamlit as st

from lib import lora_base
from lib.auth import Forbidden
from lib.errors import ConsoleError
from lib.inference import image_templates
from lib.jobstate import JobState
from lib.ops.actions import format_bytes
from lib.runpod import RunPodError
from lib.training import service
from lib.training.charts import loss_figure
from lib.training.config import (
    PRESETS,
    RUN_NAMED_AT_START,
    ConfigProblem,
    TrainingParams,
    build_config,
    dataset_path,
    estimate,
    new_run_id,
    output_path,
    parse_yaml,
    to_yaml,
    validate_config,
)
from lib.training.datasets import TrainingSets
from lib.training.runs import RunError, format_duration, next_version
from lib.ui import configured, deps, persist, presses, queue_panel, training_run, widgets
from lib.ui.refresh import refresh_while, stop_refreshing_when
from lib.ui.safe_text import escaped
from lib.volume import VolumeError

deps.require_gate()
svc = deps.services()
user = deps.current_user()
sets = TrainingSets(svc.volume)


@st.cache_data(max_entries=300, show_spinner=False)
def volume_file(key: str) -> bytes:   # run outputs never change once written
    return svc.volume.read(key)


st.title("LoRA training")
configured.require_endpoint(svc, "training", "LoRA training")
configured.require_volume(svc, "LoRA training")
persist.remember("tr.set", "tr.version", "tr.preset", "tr.steps.", "tr.rank.", "tr.alpha.", "tr.lr",
                 "tr.buckets", "tr.save_every", "tr.sample_every", "tr.prompts", "tr.pick")
ready_sets = [s for s in sets.list() if s.versions]
if not ready_sets:
    st.info("No saved training set yet: create one on the Training sets page first.", icon=":material/info:")
    st.stop()
by_name = {s.name: s for s in ready_sets}
c1, c2, c3 = st.columns(3)
name = c1.selectbox("Training set", list(by_name), key="tr.set")
version = c2.selectbox("Version", list(reversed(by_name[name].versions)), key="tr.version")
preset = c3.selectbox("Base model", list(PRESETS), format_func=lambda k: PRESETS[k].label, key="tr.preset")
check = service.check_version(sets, name, version)
if check.ready:
    st.success(f"{escaped(name)} {escaped(version)}: {check.report.summary()} — ready to train.", icon=":material/check_circle:")
else:
    st.error("Not ready to train:\n" + "\n".join(f"- {b}" for b in check.blockers), icon=":material/block:")
if PRESETS[preset].notes:
    st.caption(PRESETS[preset].notes)

p = PRESETS[preset]
a, b, c, d = st.columns(4)
steps = a.number_input("Steps", 100, 20000, p.steps, 100, key=f"tr.steps.{preset}")
rank = b.select_slider("Rank", [4, 8, 16, 32, 64, 128], p.rank, key=f"tr.rank.{preset}")
alpha = c.select_slider("Alpha", [4, 8, 16, 32, 64, 128], p.rank, key=f"tr.alpha.{preset}")
lr = d.select_slider("Learning rate", [5e-5, 1e-4, 2e-4, 4e-4], 1e-4, format_func=lambda v: f"{v:.0e}",
                     key="tr.lr")
a, b, c = st.columns(3)
buckets = a.multiselect("Resolution buckets", [512, 640, 768, 896, 1024, 1280, 1536], [512, 768, 1024],
                        key="tr.buckets")
save_every = b.number_input("Save a checkpoint every", 50, 5000, 250, 50, key="tr.save_every")
sample_every = c.number_input("Sample images every", 50, 5000, 250, 50, key="tr.sample_every")
prompts = st.text_area("Sample prompts (one per line; [trigger] becomes the trigger word)",
                       "[trigger], portrait photo, soft window light\n[trigger], full body, walking in a park",
                       key="tr.prompts")
params = TrainingParams(preset=preset, steps=int(steps), rank=rank, alpha=alpha, lr=lr, resolutions=tuple(buckets),
                        save_every=int(save_every), sample_every=int(sample_every),
                        sample_prompts=tuple(x.strip() for x in prompts.splitlines() if x.strip()))
ds, out = dataset_path(name, version), output_path(name, RUN_NAMED_AT_START)
config, problems = None, params.problems()
if not problems:
    config = build_config(name=name, trigger_word=check.trigger_word, dataset_path=ds, training_folder=out,
                          params=params)
    with st.expander("AI Toolkit config (YAML) — for experts"):
        generated = to_yaml(config)
        if st.toggle("Edit the YAML myself (changing the form above resets it)", key="tr.expert"):
            text = st.text_area("config.yaml", generated, height=420, key=f"tr.yaml.{zlib.crc32(generated.encode())}")
            problems = validate_config(text, dataset_path=ds, training_folder=out)
            config = None if problems else parse_yaml(text)
        else:
            st.code(generated, language="yaml")
if problems or config is None:
    st.error("Fix the config:\n" + "\n".join(f"- {x}" for x in problems), icon=":material/error:")
else:
    est = estimate(config, preset, svc.config)
    e1, e2, e3 = st.columns(3)
    e1.metric("Estimated duration", format_duration(est.total_s),
              help=f"{est.steps} steps × {est.seconds_per_step:g} s + sampling {format_duration(est.sampling_s)}"
                   f" + model load {format_duration(est.startup_s)} + cold start {format_duration(est.cold_start_s)}")
    e2.metric("Estimated cost", f"${est.cost_usd:.2f}", help=f"{est.gpu_pool} at ${est.price_per_s:.5f}/s")
    e3.metric("Job time limit", format_duration(est.execution_timeout_ms / 1000))
if st.button("Start training", type="primary", icon=":material/model_training:",
             disabled=bool(problems) or not check.ready or not user.can("train")) and config is not None:
    try:
        # A double click starts one run; a deliberate press later starts another, in its own folder.
        key = presses.press_key("train", [name, version, preset, config], repeatable=True)
        record = service.launch(svc, user, set_name=name, version=version, preset_key=preset, config=config,
                                request_key=key)
        st.session_state["tr.run"] = record.local_id
    except (ConsoleError, RunPodError) as exc:   # a refused store write too: nothing was sent
        widgets.show_error(exc, "start the training run")

st.divider()
st.subheader("Runs")
runs = service.runs(svc)
if not runs:
    st.caption("No training runs yet.")
    st.stop()
ids = [r.local_id for r in runs]
if st.session_state.get("tr.run") in ids:
    st.session_state["tr.pick"] = st.session_state.pop("tr.run")
labels = {r.local_id: service.run_label(r) for r in runs}
picked = st.selectbox("Run", ids, format_func=lambda local_id: labels[local_id], key="tr.pick")


def run_panel(local_id: str) -> None:
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
        training_run.log_tail(view.log_tail, expanded=record.status == JobState.FAILED)
    if view.loss_series:
        st.plotly_chart(loss_figure(view.loss_series, [c.step for c in view.checkpoints], view.total_steps),
                        key=f"tr.loss.{local_id}")
    if view.samples:
        training_run.sample_comparison(view.samples_by_step(), volume_file, key=f"tr.samples.{local_id}")
    if view.checkpoints:
        st.dataframe(pd.DataFrame([{"step": c.step, "file": c.file_name, "size": format_bytes(c.size or 0),
                                    "sha256": (c.sha256 or "")[:12]} for c in view.checkpoints]),
                     hide_index=True, width="stretch")
    if record.is_active and st.button("Cancel run…", icon=":material/cancel:", key=f"tr.cancel.{local_id}"):
        queue_panel.confirm_cancel(svc, user, local_id)
    if record.is_final and view.checkpoints:
        actions(record, view)   # a cancelled run's checkpoints are real files on the volume too


def actions(record, view) -> None:
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


refresh_while(svc.store.get(picked).is_active, "tr", run_panel, picked, every="2s")
