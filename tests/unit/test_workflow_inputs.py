"""Own workflows with LoadImage nodes: one upload per file name, validated by content, fitted under /run."""
from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from lib import inference as inf
from lib.images import RUN_BODY_LIMIT, body_bytes
from lib.volume import LocalVolume
from lib.workflows import ParamError, parse_uploaded_workflow, retag_payload, save_custom_template, suggest_param_map
from lib.workflows.inputs import image_inputs, prepare_input_images, stored_input_images
from lib.workflows.preflight import _check_images
from tests.support.fakes import png

ROOT = Path(__file__).resolve().parents[2]
IMG2IMG = ROOT / "docs" / "workflows" / "sdxl_img2img_api.json"


@pytest.fixture
def img2img(tmp_path):
    workflow = parse_uploaded_workflow(IMG2IMG.read_bytes())
    return save_custom_template(tmp_path, "Watercolour img2img", workflow, suggest_param_map(workflow))


def test_each_loadimage_file_name_is_one_upload_titled_from_the_graph(img2img):
    wanted = image_inputs(img2img.workflow)
    assert [(w.name, w.node_ids, w.title) for w in wanted] == [("start.png", ("2",), "Start picture")]
    twice = {**img2img.workflow, "20": {"class_type": "LoadImage", "inputs": {"image": "start.png"}},
             "21": {"class_type": "LoadImage", "inputs": {"image": "mask.png"}}}
    assert [(w.name, w.node_ids, w.title) for w in image_inputs(twice)] == [
        ("start.png", ("2", "20"), "Start picture"), ("mask.png", ("21",), "Input image")]


def test_missing_and_non_image_uploads_are_named_together(img2img):
    two = {**img2img.workflow, "21": {"class_type": "LoadImage", "inputs": {"image": "mask.png"}}}
    with pytest.raises(ParamError) as caught:
        prepare_input_images(two, {"start.png": ("notes.png", b"just some text, not a picture")})
    first, second = caught.value.problems
    assert first.startswith("Start picture: notes.png:") and "PNG, JPEG or WEBP" in first
    assert second == "Input image (LoadImage node 21 reads mask.png) needs an image: upload a PNG, JPEG or WEBP file"


def test_an_upload_that_fits_is_sent_byte_for_byte_so_an_alpha_mask_survives(img2img):
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[16:48, 16:48, 3] = 0  # the inpainting mask ComfyUI's LoadImage reads from alpha
    data = png(rgba)
    prepared = prepare_input_images(img2img.workflow, {"start.png": ("masked.png", data)})
    assert prepared.images == {"start.png": data} and prepared.notes == ()


def test_an_upload_too_big_for_run_is_re_encoded_to_fit(img2img):
    noise = np.random.default_rng(1).integers(0, 256, (2600, 2600, 3), dtype=np.uint8)
    data = png(noise)
    assert len(data) > RUN_BODY_LIMIT * 3 // 4
    prepared = prepare_input_images(img2img.workflow, {"start.png": ("noise.png", data)})
    assert prepared.images["start.png"] != data
    assert any("re-encoded" in n for n in prepared.notes)
    job = inf.plan_job(img2img, {"prompt": "watercolour", "seed": 3}, prepared.images)
    assert body_bytes(job.payload) < RUN_BODY_LIMIT


def test_planned_job_sends_the_image_under_the_name_its_loadimage_reads(img2img):
    data = png(np.full((40, 30, 3), 200, np.uint8))
    job = inf.plan_job(img2img, {"prompt": "watercolour", "seed": 3}, {"start.png": data})
    (entry,) = job.input["images"]
    assert entry["name"] == f"{job.job_tag}_start.png" == job.input["workflow"]["2"]["inputs"]["image"]
    assert base64.b64decode(entry["image"]) == data
    assert job.meta["input_images"] == ["start.png"]
    assert _check_images(job.input["workflow"], job.input["images"]) == []
    # A re-run sends the same image again under its new tag, and vary-seed finds it by the graph's name.
    again = retag_payload(job.payload, old_tag=job.job_tag, new_tag="img000000000001")["input"]
    assert again["images"][0]["image"] == entry["image"] and again["images"][0]["name"] == "img000000000001_start.png"
    assert stored_input_images(job.input, job.job_tag) == {"start.png": data}


def test_a_loadimage_without_an_upload_fails_preflight_but_not_the_check_before_saving(img2img, tmp_path):
    volume = LocalVolume(tmp_path / "volume")
    volume.write("models/checkpoints/sd_xl_base_1.0.safetensors", b"x")
    job = inf.plan_job(img2img, {"prompt": "watercolour", "seed": 3})
    problems = _check_images(job.input["workflow"], job.input.get("images", []))
    assert len(problems) == 1 and "is not among the images sent" in problems[0].message
    check = inf.check_own_workflow(img2img.workflow, volume)
    assert check.problems == [] and [w.name for w in check.image_inputs] == ["start.png"]
    assert "reads 1 input image(s) (start.png)" in check.image_note


def test_images_digest_changes_with_the_pictures():
    assert inf.images_digest(None) == inf.images_digest({})
    assert inf.images_digest({"a.png": b"1"}) != inf.images_digest({"a.png": b"2"})


def test_a_sampler_from_a_custom_node_stays_fixed_in_a_saved_workflow(tmp_path):
    workflow = parse_uploaded_workflow(IMG2IMG.read_bytes())
    workflow["7"]["inputs"]["sampler_name"] = "custom_sampler_from_a_node"
    saved = save_custom_template(tmp_path, "Custom sampler", workflow, suggest_param_map(workflow))
    assert not saved.supports("sampler_name") and saved.supports("scheduler")
    job = inf.plan_job(saved, {"prompt": "x", "seed": 1}, {"start.png": png(np.zeros((8, 8, 3), np.uint8))})
    assert job.input["workflow"]["7"]["inputs"]["sampler_name"] == "custom_sampler_from_a_node"


def test_comfyui_mask_editor_and_spaced_names_become_plain_file_names_when_saved(tmp_path):
    workflow = parse_uploaded_workflow(IMG2IMG.read_bytes())
    workflow["2"]["inputs"]["image"] = "clipspace/clipspace-mask-1234.png [input]"
    workflow["20"] = {"class_type": "LoadImage", "inputs": {"image": "my photo (1).png"}}
    workflow["21"] = {"class_type": "LoadImage", "inputs": {"image": "my_photo-1-.png"}}
    saved = save_custom_template(tmp_path, "Masked", workflow, suggest_param_map(workflow))
    assert [w.name for w in image_inputs(saved.workflow)] == [
        "clipspace-clipspace-mask-1234.png", "my-photo-1-.png", "my_photo-1-.png"]
    assert workflow["2"]["inputs"]["image"] == "clipspace/clipspace-mask-1234.png [input]"  # upload untouched
    picture = png(np.zeros((8, 8, 3), np.uint8))
    job = inf.plan_job(saved, {"prompt": "x", "seed": 1}, {w.name: picture for w in image_inputs(saved.workflow)})
    assert sorted(e["name"] for e in job.input["images"]) == sorted(
        f"{job.job_tag}_{n}" for n in ("clipspace-clipspace-mask-1234.png", "my-photo-1-.png", "my_photo-1-.png"))
