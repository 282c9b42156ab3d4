"""LoRA training: pick a ready training set, a base model and parameters, launch, follow the run,
compare checkpoints and promote the best one."""
import zlib

import streamlit as st

from lib.errors import ConsoleError
from lib.runpod import RunPodError
from lib.training import service
from lib.training.config import (
    PRESETS,
    RUN_NAMED_AT_START,
    TrainingParams,
    build_config,
    dataset_path,
    estimate,
    output_path,
    parse_yaml,
    to_yaml,
    validate_config,
)
from lib.training.datasets import TrainingSets
from lib.training.runs import format_duration
from lib.ui import configured, deps, persist, presses, training_run, widgets
from lib.ui.refresh import refresh_while
from lib.ui.safe_text import escaped

deps.require_gate()
svc = deps.services()
user = deps.current_user()
sets = TrainingSets(svc.volume)

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
    generated = to_yaml(config)

    def expert_yaml() -> str | None:
        """The YAML the user edited, None while they have not chosen to edit it."""
        if st.toggle("Edit the YAML myself (changing the form above resets it)", key="tr.expert"):
            return st.text_area("config.yaml", generated, height=420, key=f"tr.yaml.{zlib.crc32(generated.encode())}")
        st.code(generated, language="yaml")
        return None

    # Drawn once opened, then for as long as the user edits it: the highlighted YAML took 0.2 s of every visit in
    # the browser, for a section most never open.
    edited = widgets.lazy_expander("AI Toolkit config (YAML) — for experts", "tr.config", expert_yaml,
                                   keep_drawing=st.session_state.get("tr.expert", False))
    if edited is not None:
        problems = validate_config(edited, dataset_path=ds, training_folder=out)
        config = None if problems else parse_yaml(edited)
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

refresh_while(svc.store.get(picked).is_active, "tr", training_run.run_panel, svc, user, picked, every="2s")
