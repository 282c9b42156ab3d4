"""AppTest: the Training sets and LoRA training pages on the in-process simulator.

The pages run on their own (AppTest.from_file), with the session's console from conftest.py, so
these tests do not depend on the router's page list.
"""
from __future__ import annotations

import io
import itertools
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from lib.auth import LOCAL_OPERATOR, User
from lib.training import service
from lib.training.config import build_config, dataset_path, default_params, output_path
from lib.training.datasets import TrainingSets
from lib.training.uploads import read_files
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
_names = itertools.count(1)


@pytest.fixture
def open_page():
    def _open(page: str, *, user=None) -> AppTest:
        at = AppTest.from_file(str(ROOT / page), default_timeout=30)
        at.session_state["auth.user"] = user or LOCAL_OPERATOR
        at.run()
        assert not at.exception, at.exception
        return at
    return _open


def photo(seed: int, size: int = 600) -> bytes:
    image = Image.new("RGB", (size, size), (seed * 53 % 255, 120, seed * 29 % 255))
    draw = ImageDraw.Draw(image)
    for i in range(12):
        draw.rectangle((i * 40 + seed, i * 30, i * 40 + 90 + seed, i * 30 + 60), fill=(i * 20, seed * 7 % 255, 90))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92)
    return out.getvalue()


def make_set(console, *, captions: str | None = "apptok portrait", acknowledge: bool = False) -> str:
    """A saved v1 with three 600-px photos (warnings only: few images, low resolution, no face)."""
    name = f"apptest-{next(_names)}"
    sets = TrainingSets(console.volume)
    sets.create(name, "apptok", user="kim@example.com")
    draft = sets.draft(name)
    files = [(f"p{i}.jpg", photo(i + 3 * len(name))) for i in range(3)]
    if captions:
        files += [(f"p{i}.txt", captions.encode()) for i in range(3)]
    draft.add(read_files(files))
    if acknowledge:
        draft.acknowledged = {f.key for f in draft.readiness().warnings}
    sets.save(draft, user="kim@example.com")
    return name


# --- Training sets page -------------------------------------------------------------------------


def test_create_a_training_set(open_page, console):
    at = open_page("pages/datasets.py")
    at.selectbox(key="ds.set").set_value("➕ New training set").run()
    at.text_input[0].input("apptest-new")
    at.text_input[1].input("newtok")
    at.button[0].click().run()
    assert not at.exception
    assert at.selectbox(key="ds.set").value == "apptest-new"
    assert TrainingSets(console.volume).get("apptest-new").trigger_word == "newtok"


def test_invalid_set_names_get_a_clear_message(open_page):
    at = open_page("pages/datasets.py")
    at.selectbox(key="ds.set").set_value("➕ New training set").run()
    at.text_input[0].input("Bad Name!")
    at.text_input[1].input("tok")
    at.button[0].click().run()
    assert any("set name must be" in e.value for e in at.error)


def test_fix_captions_acknowledge_warnings_and_save_a_new_version(open_page, console):
    name = make_set(console, captions="a portrait")
    at = open_page("pages/datasets.py")
    at.selectbox(key="ds.set").set_value(name).run()
    assert not at.exception
    assert "no problems" not in at.warning[0].value
    findings = at.table[-1].value      # the readiness findings, a table whose sentences wrap
    assert any("does not contain the trigger word" in f for f in findings["finding"])

    insert = next(b for b in at.button if b.label.startswith("Insert"))
    insert.click().run()
    findings = at.table[-1].value
    assert not any("does not contain the trigger word" in f for f in findings["finding"])

    ack = next(c for c in at.checkbox if c.label.startswith("I have reviewed"))
    ack.check().run()
    save = next(b for b in at.button if b.label == "Save as new version")
    save.click().run()
    assert not at.exception
    sets = TrainingSets(console.volume)
    assert sets.versions(name) == ["v1", "v2"]
    manifest = sets.manifest(name, "v2")
    assert manifest.parent == "v1" and manifest.acknowledged
    assert console.volume.read(f"datasets/{name}/v2/p0.txt") == b"apptok, a portrait"
    assert at.selectbox(key="ds.version").value == "v2"


def test_find_and_replace_across_captions(open_page, console):
    name = make_set(console, captions="apptok woman in red")
    at = open_page("pages/datasets.py")
    at.selectbox(key="ds.set").set_value(name).run()
    find = next(t for t in at.text_input if t.label == "Find in captions")
    find.input("red")
    next(t for t in at.text_input if t.label == "Replace with").input("blue").run()
    next(b for b in at.button if b.label == "Replace in all captions").click().run()
    assert at.session_state["ds.draft"].captions()["p0.jpg"] == "apptok woman in blue"


# --- LoRA training page -------------------------------------------------------------------------


def test_a_set_with_open_warnings_cannot_be_trained(open_page, console):
    name = make_set(console)
    at = open_page("pages/training.py")
    at.selectbox(key="tr.set").set_value(name).run()
    assert any("not acknowledged" in e.value for e in at.error)
    start = next(b for b in at.button if b.label == "Start training")
    assert start.disabled


def test_expert_yaml_is_validated(open_page, console):
    name = make_set(console, acknowledge=True)
    at = open_page("pages/training.py")
    at.selectbox(key="tr.set").set_value(name).run()
    assert not at.code, "the YAML is drawn only once its section is opened"
    at.session_state["tr.config"] = True   # the user opens "AI Toolkit config (YAML)"
    at.run()
    assert "sampler: flowmatch" in at.code[0].value
    at.toggle(key="tr.expert").set_value(True).run()
    editor = at.text_area[1]
    editor.input(editor.value.replace("sampler: flowmatch", "sampler: ddpm")).run()
    assert any("must match train.noise_scheduler" in e.value for e in at.error)
    at.session_state["tr.config"] = False   # closed again: the edit still counts
    at.run()
    assert any("must match train.noise_scheduler" in e.value for e in at.error)
    assert next(b for b in at.button if b.label == "Start training").disabled


def test_the_run_folder_is_named_from_when_training_starts_and_a_double_click_sends_once(open_page, console):
    name = make_set(console, acknowledge=True)
    at = open_page("pages/training.py")
    at.selectbox(key="tr.set").set_value(name).run()
    time.sleep(1.1)   # the form has been open a while before Start is pressed
    pressed_at = datetime.now(UTC).replace(microsecond=0)
    start = next(b for b in at.button if b.label == "Start training")
    start.click().run()
    start.click().run()   # the same form again: the same request, not a second run
    runs = [r for r in console.store.list(role="training") if r.meta.get("character") == name]
    assert len(runs) == 1
    started = datetime.strptime(runs[0].meta["run_id"][4:19], "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
    assert started >= pressed_at
    assert runs[0].input["output_path"].endswith(f"/loras/{name}/{runs[0].meta['run_id']}")
    assert runs[0].input["config"]["config"]["process"][0]["training_folder"] == runs[0].input["output_path"]


def test_train_watch_compare_and_promote(open_page, console):
    name = make_set(console, acknowledge=True)
    at = open_page("pages/training.py")
    at.selectbox(key="tr.set").set_value(name).run()
    at.selectbox(key="tr.preset").set_value("zimage-turbo").run()
    at.number_input(key="tr.steps.zimage-turbo").set_value(200).run()
    at.number_input(key="tr.save_every").set_value(50).run()
    at.number_input(key="tr.sample_every").set_value(100).run()
    assert any(m.label == "Estimated cost" and m.value.startswith("$") for m in at.metric)
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception

    record = next(r for r in console.store.list(role="training") if r.meta.get("character") == name)
    assert record.meta["dataset_version"] == "v1" and record.input["dataset_path"].endswith(f"/{name}/v1")
    console.tracker.wait_for([record.local_id], timeout_s=60)
    assert console.store.get(record.local_id).status == "COMPLETED", console.store.get(record.local_id).error

    at.run()
    assert not at.exception
    assert at.selectbox(key="tr.pick").value == record.local_id
    table = at.dataframe[-1].value
    assert list(table["step"]) == [50, 100, 150, 200]
    assert len(at.get("plotly_chart")) == 1
    # Samples side by side: the last two rounds by default, any round can be added, any image opened large.
    compare = at.multiselect(key=f"tr.samples.{record.local_id}.steps.200")
    assert compare.value == [100, 200] and compare.options == ["0", "100", "200"]
    compare.set_value([0, 100, 200]).run()
    assert sum(b.label == "🔍" for b in at.button) == 6          # two prompts × three steps
    next(b for b in at.button if b.label == "🔍").click().run()
    assert not at.exception

    next(b for b in at.button if b.label == "Compare in a grid").click().run()
    candidates = at.session_state["grid.lora_candidates"]
    assert [c.rsplit("/", 1)[-1] for c in candidates] == [f"{name}_000000100.safetensors",
                                                          f"{name}_000000150.safetensors", f"{name}.safetensors"]
    assert all(console.volume.exists(f"models/loras/{c}") for c in candidates)

    at.selectbox(key=f"tr.promote.{record.local_id}").set_value(150).run()
    next(b for b in at.button if b.label == "Promote").click().run()
    assert not at.exception
    assert console.volume.exists(f"models/loras/{name}_v1.safetensors")
    audit = console.store.audit_entries(action="promote")
    assert any(e.target == record.local_id for e in audit)


def launch_run(console, preset: str, run: str, steps: int):
    """A run of `steps` steps on a fresh set, saving a checkpoint every 50 steps."""
    name = make_set(console, acknowledge=True)
    params = replace(default_params(preset), steps=steps, save_every=50, sample_every=100)
    config = build_config(name=name, trigger_word="apptok", dataset_path=dataset_path(name, "v1"),
                          training_folder=output_path(name, f"run-{run}"), params=params)
    return service.launch(console, LOCAL_OPERATOR, set_name=name, version="v1", preset_key=preset,
                          config=config, run_id=f"run-{run}", request_key=f"{name}-{run}")


def test_staff_can_compare_but_not_promote(open_page, console):
    record = launch_run(console, "sdxl", "staff", steps=100)
    console.tracker.wait_for([record.local_id], timeout_s=60)

    at = open_page("pages/training.py", user=User("staff@example.com", "staff"))
    at.selectbox(key="tr.pick").set_value(record.local_id).run()
    assert not at.exception
    assert any(b.label == "Compare in a grid" for b in at.button)
    assert not any(b.label == "Promote" for b in at.button)
    assert any("needs the operator role" in c.value for c in at.caption)


def test_a_cancelled_run_keeps_its_curve_checkpoints_and_can_resume(open_page, console):
    record = launch_run(console, "zimage-turbo", "stop", steps=20000)
    wait_until(lambda: len((console.store.get(record.local_id).progress or {}).get("checkpoints") or []) >= 2,
               timeout_s=60, what="two checkpoints", interval_s=0.1)
    console.tracker.cancel(record.local_id, LOCAL_OPERATOR.email)
    console.tracker.wait_for([record.local_id], timeout_s=60)
    assert console.store.get(record.local_id).status == "CANCELLED"

    at = open_page("pages/training.py")
    at.selectbox(key="tr.pick").set_value(record.local_id).run()
    assert not at.exception
    assert any(e.value.startswith("Cancelled at step ") and e.value.endswith(" of 20000") for e in at.error)
    assert any(x.label.startswith("Trainer log") for x in at.expander)
    assert len(at.get("plotly_chart")) == 1
    assert any(b.label == "Promote" for b in at.button)
    resume = next(b for b in at.button if b.label.startswith("Resume from step "))
    step = int(resume.label.rsplit(" ", 1)[-1])
    resume.click().run()
    assert not at.exception
    resumed = next(r for r in console.store.list(role="training") if r.meta.get("resumed_from"))
    assert resumed.input["resume_from"].endswith(f"_{step:09d}.safetensors")
    assert resumed.meta["start_step"] == step and resumed.input["output_path"] != record.input["output_path"]
    console.tracker.cancel(resumed.local_id, LOCAL_OPERATOR.email)
