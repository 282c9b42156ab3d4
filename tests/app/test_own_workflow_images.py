"""AppTest: own workflows that read input images (img2img), their re-runs, and opening a Gallery image's
workflow in the Own workflow tab — through app.py on the in-process simulator (conftest.py)."""
from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

from PIL import Image

from lib import inference as inf
from lib.auth import LOCAL_OPERATOR
from lib.workflows import parse_uploaded_workflow, save_custom_template, suggest_param_map

ROOT = Path(__file__).resolve().parents[2]
IMG2IMG = ROOT / "docs" / "workflows" / "sdxl_img2img_api.json"


def png(colour=(30, 140, 200), size=(96, 128)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def saved_img2img(console):
    workflow = parse_uploaded_workflow(IMG2IMG.read_bytes())
    return save_custom_template(inf.templates_dir(console.data_dir), f"img2img {uuid.uuid4().hex[:6]}", workflow,
                                suggest_param_map(workflow))


def test_img2img_preset_asks_for_its_image_sends_it_and_a_rerun_sends_it_again(open_page, console):
    template = saved_img2img(console)
    at = open_page("pages/generate.py")
    at.selectbox(key="gen.model").set_value(template.title)
    at.text_area(key="gen.prompt").input("a watercolour of the harbour").run()
    key = f"gen.image.{template.name}.start.png"
    assert "Start picture (LoadImage node 2 reads start.png)" in at.file_uploader(key=key).label
    assert any("Start picture (LoadImage node 2 reads start.png) needs an image" in e.value for e in at.error)
    assert at.button(key="gen.go").disabled
    at.file_uploader(key=key).set_value(("notes.png", b"plain text", "image/png")).run()
    assert any("notes.png" in e.value for e in at.error) and at.button(key="gen.go").disabled
    picture = png()
    at.file_uploader(key=key).set_value(("harbour.png", picture, "image/png")).run()
    assert "Preflight passed" in at.success[0].value
    at.number_input(key="gen.count").set_value(1)
    at.button(key="gen.go").click().run()
    assert not at.exception
    (local_id,) = at.session_state["gen.batch"]
    (record,) = console.tracker.wait_for([local_id], timeout_s=60)
    (entry,) = record.input["images"]
    assert entry["name"] == record.input["workflow"]["2"]["inputs"]["image"] == f"{record.meta['job_tag']}_start.png"
    assert record.meta["input_images"] == ["start.png"]
    assert record.status == "COMPLETED", record.error

    again = inf.rerun(console, local_id, user_email=LOCAL_OPERATOR.email, request_key=uuid.uuid4().hex).records[0]
    assert again.input["images"][0]["image"] == entry["image"]
    varied = inf.vary_seed(console, local_id, user_email=LOCAL_OPERATOR.email, request_key=uuid.uuid4().hex).records[0]
    assert varied.input["images"][0]["image"] == entry["image"] and varied.meta["seed"] != record.meta["seed"]


def test_gallery_opens_an_images_workflow_as_sent_in_own_workflow(open_page, console):
    planned = inf.plan_images(inf.load_template("sdxl_lora"), {"prompt": f"open me {uuid.uuid4().hex[:6]}",
                                                               "seed": 31, "sampler_name": "euler"},
                              count=1, random_seed=False)
    record = inf.submit(console, planned, user_email=LOCAL_OPERATOR.email, request_key=uuid.uuid4().hex,
                        kind=inf.KIND_GENERATE).records[0]
    console.tracker.wait_for([record.local_id], timeout_s=60)
    at = open_page("pages/gallery.py")
    uid = f"{record.local_id}.{console.store.outputs(record.local_id)[0].name}"
    at.button(key=f"gal.open.{uid}").click().run()
    assert not at.exception
    opened = at.session_state["own.opened"]
    assert json.loads(opened.workflow_json) == console.store.get(record.local_id).input["workflow"]
    at.switch_page("pages/generate.py").run()
    assert any("open in the **Own workflow** tab" in i.value for i in at.info)
    assert at.selectbox(key="own.map.prompt").value.startswith("3 · CLIPTextEncode · text")
    assert at.selectbox(key="own.map.sampler_name").value.startswith("6 · KSampler · sampler_name = euler")
    assert not at.button(key="own.save").disabled
    at.button(key="own.close").click().run()
    assert "own.opened" not in at.session_state
    assert not [box for box in at.selectbox if box.key and box.key.startswith("own.map.")]
