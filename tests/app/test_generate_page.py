"""AppTest: the Generate and Gallery pages through app.py on the in-process simulator
(`open_page` and `console` from conftest.py)."""
from __future__ import annotations

import io
import json
import re
import uuid
from pathlib import Path

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

from lib import inference as inf
from lib.auth import LOCAL_OPERATOR
from lib.ui import presses
from lib.workflows import load_template, save_custom_template, suggest_param_map

ZIT = "Z-Image Turbo + LoRA"


def fill_form(at: AppTest, prompt: str, *, lora="ava_v1.safetensors", seed: int | None = None) -> AppTest:
    at.selectbox(key="gen.model").set_value(ZIT)
    at.text_area(key="gen.prompt").input(prompt)
    at.selectbox(key="gen.lora").set_value(lora)
    if seed is not None:
        at.radio(key="gen.seed_mode").set_value("fixed")
        at.number_input(key="gen.seed").set_value(seed)
    return at.run()


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_form_shows_presets_limits_and_blocks_an_empty_prompt(open_page):
    at = open_page("pages/generate.py")
    assert {"FLUX.1-dev + LoRA", "SDXL base 1.0 + LoRA", ZIT} <= set(at.selectbox(key="gen.model").options)
    assert not at.error   # nothing is wrong before the user did anything: a hint, not an error
    assert at.info[0].value == "Type a prompt to generate."
    assert at.button(key="gen.go").disabled
    at.selectbox(key="gen.model").set_value("SDXL base 1.0 + LoRA").run()
    assert at.text_area(key="gen.negative.sdxl_lora").value.startswith("lowres")
    at.selectbox(key="gen.model").set_value(ZIT).run()
    assert not [t for t in at.text_area if t.key and t.key.startswith("gen.negative")]
    assert at.slider(key="gen.steps.z_image_turbo_lora").value == 8
    assert "ava_v1.safetensors" in at.selectbox(key="gen.lora").options


def test_four_images_with_zimage_and_a_lora_and_no_double_submit(open_page, console, monkeypatch):
    prompt = f"ava_tok on a harbour {uuid.uuid4().hex[:6]}"
    at = fill_form(open_page("pages/generate.py"), prompt)
    assert "Preflight passed" in at.success[0].value
    at.button(key="gen.go").click().run()
    assert not at.exception and not at.error
    ids = at.session_state["gen.batch"]
    assert len(ids) == 4
    records = console.tracker.wait_for(ids, timeout_s=60)
    assert [r.status for r in records] == ["COMPLETED"] * 4
    assert len({r.meta["seed"] for r in records}) == 4
    assert {r.meta["lora"] for r in records} == {"ava_v1.safetensors"}
    assert {r.meta["character"] for r in records} == {"ava"}
    at.run()
    assert sum(len(img.value) for img in at.image) == 4
    # The status icon is drawn (a Markdown element), not printed as ":material/…" text.
    done = [m.value for m in at.markdown if "done on worker" in m.value]
    assert len(done) == 4 and all(v.startswith(":material/check_circle: done on worker") for v in done)
    assert not any(":material/" in t.value for t in at.text)
    # A random seed: a deliberate second press (after the double-click window) is a new batch ...
    monkeypatch.setattr(presses, "DOUBLE_CLICK_S", 0.0)
    at.button(key="gen.go").click().run()
    second = at.session_state["gen.batch"]
    assert set(second).isdisjoint(ids) and len(sent_with(console, prompt)) == 8
    # ... while the second click of a double click sends nothing new.
    monkeypatch.setattr(presses, "DOUBLE_CLICK_S", 600.0)
    at.button(key="gen.go").click().run()
    assert at.session_state["gen.batch"] == second
    assert "double click" in at.info[0].value
    assert len(sent_with(console, prompt)) == 8


def sent_with(console, prompt: str) -> list:
    return [r for r in console.store.list(role="image", kind="generate", limit=5000) if r.meta.get("prompt") == prompt]


def test_preflight_blocks_a_misplaced_model(open_page, console):
    graph = dict(load_template("z_image_turbo_lora").workflow)
    graph["1"] = {"class_type": "UNETLoader",
                  "inputs": {"unet_name": "flux1-schnell.safetensors", "weight_dtype": "default"}}
    name = f"Schnell misplaced {uuid.uuid4().hex[:4]}"
    save_custom_template(inf.templates_dir(console.data_dir), name, graph, suggest_param_map(graph))
    at = open_page("pages/generate.py")
    at.selectbox(key="gen.model").set_value(name)
    at.text_area(key="gen.prompt").input("x").run()
    message = at.error[0].value
    assert "models/diffusion_models/flux1-schnell.safetensors" in message
    assert "Move it to models/unet/flux1-schnell.safetensors" in message
    assert at.button(key="gen.go").disabled


def test_worker_failure_is_shown_with_node_and_reason(open_page, console):
    planned = inf.plan_images(load_template("z_image_turbo_lora"),
                              {"prompt": "x", "lora_name": "deleted_since_preflight.safetensors"},
                              count=1, random_seed=True)
    result = inf.submit(console, planned, user_email=LOCAL_OPERATOR.email, request_key=uuid.uuid4().hex,
                        kind=inf.KIND_GENERATE)
    console.tracker.wait_for(result.local_ids, timeout_s=60)
    at = open_page("pages/generate.py")
    at.session_state["gen.batch"] = result.local_ids
    at.run()
    shown = re.sub(r"\\(.)", r"\1", "\n".join(e.value for e in at.error))   # worker text is escaped Markdown
    assert "Node 4 (LoraLoaderModelOnly) lora_name: 'deleted_since_preflight.safetensors' is not on the worker" in shown
    assert "available: ava_v1.safetensors" in shown


def test_grid_of_two_strengths_by_three_seeds(open_page, console):
    at = fill_form(open_page("pages/generate.py"), "ava_tok grid portrait")
    assert at.selectbox(key="grid.x").value == "lora_strength" and at.selectbox(key="grid.y").value == "seed"
    at.text_area(key="grid.x.values").input("0.6, 1.0")
    at.text_area(key="grid.y.values").input("11, 22, 33")
    at.button(key="grid.go").click().run()
    assert not at.exception and not at.error
    grid_id = at.session_state["grid.id"]
    state = inf.grid_state(console, grid_id)
    assert len(state.views) == 6
    console.tracker.wait_for([v.record.local_id for v in state.views], timeout_s=60)
    at.run()
    state = inf.grid_state(console, grid_id)
    assert state.done and state.counts == {"COMPLETED": 6}
    assert {(v.record.meta["grid"]["x_value"], v.record.meta["seed"]) for v in state.views} == {
        (s, seed) for s in (0.6, 1.0) for seed in (11, 22, 33)}
    download = at.get("download_button")[0]
    assert not download.proto.disabled
    grid = Image.open(console.data_dir / "grids" / f"{grid_id}.png")
    assert grid.width > 2 * 240 and grid.height > 3 * 240
    assert json.loads((console.data_dir / "grids" / f"{grid_id}.json").read_text())["x"]["values"] == [0.6, 1.0]


def test_grid_with_bad_values_explains_why(open_page):
    at = fill_form(open_page("pages/generate.py"), "grid")
    at.text_area(key="grid.x.values").input("0.6, strong")
    at.text_area(key="grid.y.values").input("1")
    at.button(key="grid.go").click().run()
    assert "must be numbers" in at.error[0].value


def test_own_workflow_ui_format_is_refused_and_api_format_is_saved(open_page, console):
    at = open_page("pages/generate.py")
    ui = {"nodes": [{"id": 1, "type": "KSampler"}], "links": []}
    at.file_uploader(key="own.file").upload("ui.json", json.dumps(ui).encode(), "application/json").run()
    assert "UI format" in at.error[-1].value and "Export (API)" in at.error[-1].value
    api = load_template("sdxl_lora").workflow
    api["3"]["inputs"]["text"] = "ava_tok, a saved prompt"
    at.file_uploader(key="own.file").upload("api.json", json.dumps(api).encode(), "application/json").run()
    assert at.selectbox(key="own.map.prompt").value.startswith("3 · CLIPTextEncode · text")
    assert at.selectbox(key="own.map.lora_name").value.startswith("2 · LoraLoader · lora_name")
    name = f"Own SDXL {uuid.uuid4().hex[:4]}"
    at.text_input(key="own.name").input(name)
    at.button(key="own.save").click().run()
    assert any("now in the Model preset list" in s.value for s in at.success)
    assert console.store.audit_entries(action="workflow.save", limit=1)[0].detail["title"] == name
    # At once, without another rerun: listed, selected, and its prompts filled in from the workflow.
    assert name in at.selectbox(key="gen.model").options and at.selectbox(key="gen.model").value == name
    assert at.text_area(key="gen.prompt").value == "ava_tok, a saved prompt"


def test_viewer_cannot_submit(open_page, users):
    at = fill_form(open_page("pages/generate.py", user=users["viewer"]), "x")
    assert at.button(key="gen.go").disabled and at.button(key="grid.go").disabled


def test_gallery_rerun_gives_the_identical_picture_and_vary_seed_a_new_one(open_page, console):
    prompt = f"gallery check {uuid.uuid4().hex[:6]}"
    planned = inf.plan_images(load_template("z_image_turbo_lora"),
                              {"prompt": prompt, "seed": 777, "lora_name": "ava_v1.safetensors"},
                              count=1, random_seed=False)
    original = inf.submit(console, planned, user_email=LOCAL_OPERATOR.email, request_key=uuid.uuid4().hex,
                          kind=inf.KIND_GENERATE).records[0]
    console.tracker.wait_for([original.local_id], timeout_s=60)
    at = open_page("pages/gallery.py")
    assert "ava" in at.selectbox(key="gal.character").options
    uid = f"{original.local_id}.{console.store.outputs(original.local_id)[0].name}"
    at.button(key=f"gal.rerun.{uid}").click().run()
    assert not at.exception and not at.error
    (rerun_id,) = at.session_state["gal.sent"]
    at.button(key=f"gal.vary.{uid}").click().run()
    (vary_id,) = at.session_state["gal.sent"]
    rerun, varied = console.tracker.wait_for([rerun_id, vary_id], timeout_s=60)
    assert rerun.kind == "rerun" and rerun.meta["rerun_of"] == original.local_id
    old_tag, new_tag = original.meta["job_tag"], rerun.meta["job_tag"]
    assert json.dumps(rerun.input, sort_keys=True) == json.dumps(original.input, sort_keys=True).replace(old_tag, new_tag)
    first, again, other = (pixels(console.store.outputs(r.local_id)[0].path) for r in (original, rerun, varied))
    assert np.array_equal(first, again)
    assert varied.meta["seed"] != 777 and not np.array_equal(first, other)
    at.selectbox(key="gal.character").set_value("ava").run()
    captions = [c for img in at.image for c in img.captions]
    assert any("seed 777" in c for c in captions)
    assert at.get("download_button")
    png = io.BytesIO(console.store.outputs(original.local_id)[0].path.read_bytes())
    assert Image.open(png).format == "PNG"
