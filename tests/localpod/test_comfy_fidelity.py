"""The simulated worker answers like worker-comfyui 5.8.5 in front of ComfyUI 0.3.64.

Error shapes per kind against reference worker-contracts §1.9 and ComfyUI's validate_prompt, and a
sample of graphs that real ComfyUI accepts: every template, ComfyUI's FLUX example with
SamplerCustomAdvanced, img2img, ControlNet, IP-Adapter and the core nodes §1.9 names.
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib.localpod.comfy.nodes import Server, node_classes, scan_volume, volume_folder
from lib.localpod.comfy.validation import validate_prompt
from lib.localpod.handlers import COMPLETED, FAILED, JobContext, execute, handler_for

TEMPLATES = Path(__file__).resolve().parents[2] / "lib" / "workflows" / "templates"
ZIMAGE = json.loads((TEMPLATES / "z_image_turbo_lora.json").read_text())["workflow"]


@pytest.fixture(autouse=True)
def _no_bucket(monkeypatch):
    monkeypatch.delenv("BUCKET_ENDPOINT_URL", raising=False)


def png_data_uri(size=(64, 48), colour=(200, 120, 40)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def with_models(volume: Path, workflow: dict) -> None:
    """Put every model file the graph names into the folder the worker reads it from."""
    for node in workflow.values():
        for name, value in node.get("inputs", {}).items():
            folder = volume_folder(node["class_type"], name)
            if folder and isinstance(value, str) and value != "pixel_space":
                path = volume / "models" / folder / value
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"weights")


def job_input(workflow: dict) -> dict:
    names = {node["inputs"]["image"] for node in workflow.values() if node["class_type"] == "LoadImage"}
    return {"workflow": workflow, "images": [{"name": name, "image": png_data_uri()} for name in sorted(names)]}


def run(volume: Path, workflow_or_input: dict, role: str = "image"):
    payload = workflow_or_input if "workflow" in workflow_or_input else job_input(workflow_or_input)
    ctx = JobContext("job-1", f"{role}-sim01", role, "w1", volume, 0.0)
    return execute(handler_for(role), {"id": "job-1", "input": payload}, ctx)


def images_of(outcome) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(i["data"]))) for i in outcome.output["images"]]


def rejection(volume: Path, workflow: dict, role: str = "image", uploaded=frozenset()) -> dict:
    server = Server(node_classes(role == "special"), scan_volume(volume), frozenset(uploaded))
    good, body = validate_prompt(workflow, server)
    assert good == [] and body is not None
    return json.loads(json.dumps(body))


# --------------------------------------------------------------------------------------- errors


def test_unknown_class_reads_like_the_real_worker(tmp_path):
    outcome = run(tmp_path, {"1": {"class_type": "NoSuchNode", "inputs": {}}})
    assert outcome.status == FAILED
    assert outcome.error == (
        'Cannot execute because node NoSuchNode does not exist.. Raw response: {"error": {"type": '
        '"invalid_prompt", "message": "Cannot execute because node NoSuchNode does not exist.", "details": '
        '"Node ID \'#1\'", "extra_info": {}}, "node_errors": {}}')


def test_custom_nodes_exist_only_on_the_special_image():
    assert "ReActorFaceSwap" not in node_classes(False) and "IPAdapter" not in node_classes(False)
    assert {"ReActorFaceSwap", "ApplyPulidFlux", "IPAdapter"} <= set(node_classes(True))
    assert len(node_classes(True)) == 535


def test_missing_checkpoint_on_an_empty_volume(tmp_path):
    graph = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "nope.safetensors"}},
             "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
             "8": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["4", 2]}},
             "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}}}
    lines = run(tmp_path, graph).error.split("\n")
    assert lines[0] == "Workflow validation failed:"
    assert lines[1].startswith("• Node 4 (errors): [{'type': 'value_not_in_list', 'message': 'Value not in "
                               "list', 'details': \"ckpt_name: 'nope.safetensors' not in []\", 'extra_info': "
                               "{'input_name': 'ckpt_name', ")
    assert lines[2:] == ["• Node 4 (dependent_outputs): ['9']", "• Node 4 (class_type): CheckpointLoaderSimple",
                         "", "No checkpoint models appear to be available. Please check your model installation."]
    (tmp_path / "models" / "checkpoints").mkdir(parents=True)
    (tmp_path / "models" / "checkpoints" / "sd_xl_base_1.0.safetensors").write_bytes(b"w")
    assert run(tmp_path, graph).error.endswith(
        "• Node 4 (class_type): CheckpointLoaderSimple\n\nAvailable checkpoint models: sd_xl_base_1.0.safetensors")


def test_errors_on_several_nodes_in_comfyuis_order(tmp_path):
    with_models(tmp_path, ZIMAGE)
    for missing in ("unet/z_image_turbo_bf16.safetensors", "clip/qwen_3_4b.safetensors"):
        (tmp_path / "models" / missing).unlink()
    body = rejection(tmp_path, ZIMAGE)
    assert list(body["node_errors"]) == ["2", "1"]   # the CLIPLoader's error before the UNETLoader's
    assert body["node_errors"]["1"]["class_type"] == "UNETLoader"
    assert body["node_errors"]["1"]["dependent_outputs"] == ["11"]
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert body["error"]["details"] == ""   # the output itself is invalid only because of its inputs


@pytest.mark.parametrize("node, name, value, listed", [
    ("9", "sampler_name", "euler_magic", None),
    ("9", "scheduler", "fast", ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta",
                                "normal", "linear_quadratic", "kl_optimal"]),
    ("1", "weight_dtype", "fp4", ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]),
])
def test_values_outside_non_model_lists(tmp_path, node, name, value, listed):
    graph = json.loads(json.dumps(ZIMAGE))
    with_models(tmp_path, graph)
    graph[node]["inputs"][name] = value
    reason = rejection(tmp_path, graph)["node_errors"][node]["errors"][0]
    assert reason["type"] == "value_not_in_list" and reason["message"] == "Value not in list"
    if listed is None:    # lists longer than 20 are not sent back
        options = node_classes(False)["KSampler"].input("sampler_name").choices
        assert reason["details"] == f"{name}: '{value}' not in (list of length {len(options)})"
        assert reason["extra_info"] == {"input_name": name, "input_config": None, "received_value": value}
    else:
        assert reason["details"] == f"{name}: '{value}' not in {listed}"
        assert reason["extra_info"]["input_config"][0] == listed


def test_clip_loader_type_is_checked(tmp_path):
    graph = json.loads(json.dumps(ZIMAGE))
    with_models(tmp_path, graph)
    graph["2"]["inputs"]["type"] = "qwen3"
    reason = rejection(tmp_path, graph)["node_errors"]["2"]["errors"][0]
    assert reason["details"].startswith("type: 'qwen3' not in ['stable_diffusion', 'stable_cascade', 'sd3'")


def test_numbers_outside_min_and_max(tmp_path):
    graph = json.loads(json.dumps(ZIMAGE))
    with_models(tmp_path, graph)
    graph["9"]["inputs"]["steps"] = 0
    graph["8"]["inputs"]["width"] = 99999
    errors = rejection(tmp_path, graph)["node_errors"]
    assert errors["9"]["errors"] == [{"type": "value_smaller_than_min", "message": "Value 0 smaller than min of 1",
                                      "details": "steps", "extra_info": {
                                          "input_name": "steps", "received_value": 0,
                                          "input_config": errors["9"]["errors"][0]["extra_info"]["input_config"]}}]
    assert errors["8"]["errors"][0]["message"] == "Value 99999 bigger than max of 16384"
    assert errors["9"]["errors"][0]["extra_info"]["input_config"][0] == "INT"


def test_required_input_missing_and_bad_number(tmp_path):
    graph = json.loads(json.dumps(ZIMAGE))
    with_models(tmp_path, graph)
    del graph["9"]["inputs"]["cfg"]
    graph["9"]["inputs"]["seed"] = "lucky"
    reasons = rejection(tmp_path, graph)["node_errors"]["9"]["errors"]
    assert reasons[0]["type"] == "invalid_input_type"
    assert reasons[0]["message"] == "Failed to convert an input value to a INT value"
    assert reasons[0]["details"] == "seed, lucky, invalid literal for int() with base 10: 'lucky'"
    assert reasons[1] == {"type": "required_input_missing", "message": "Required input is missing",
                          "details": "cfg", "extra_info": {"input_name": "cfg"}}


def test_link_of_the_wrong_type_is_a_return_type_mismatch(tmp_path):
    graph = json.loads(json.dumps(ZIMAGE))
    with_models(tmp_path, graph)
    graph["9"]["inputs"]["model"] = ["8", 0]     # a LATENT into MODEL
    body = rejection(tmp_path, graph)
    reason = body["node_errors"]["9"]["errors"][0]
    assert reason["type"] == "return_type_mismatch"
    assert reason["extra_info"]["received_type"] == "LATENT" and reason["extra_info"]["linked_node"] == ["8", 0]
    assert f"{reason['message']}: {reason['details']}" == (
        "Return type mismatch between linked nodes: model, received_type(LATENT) mismatch input_type(MODEL)")
    outcome = run(tmp_path, graph)   # the handler answers; it does not crash
    assert outcome.status == FAILED and "return_type_mismatch" in outcome.error


def test_links_to_missing_nodes_and_slots(tmp_path):
    graph = json.loads(json.dumps(ZIMAGE))
    with_models(tmp_path, graph)
    graph["10"]["inputs"]["vae"] = ["99", 0]          # VAEDecode, upstream of the output
    graph["11"]["inputs"]["images"] = ["10", 5]        # the output's own link, to a slot that is not there
    body = rejection(tmp_path, graph)
    reason = body["node_errors"]["11"]["errors"][0]
    assert (reason["type"], reason["message"], reason["details"]) == (
        "exception_during_validation", "Exception when validating node", "tuple index out of range")
    assert reason["extra_info"]["exception_type"] == "IndexError"
    graph["11"]["inputs"]["images"] = ["10", 0]
    body = rejection(tmp_path, graph)
    reason = body["node_errors"]["10"]["errors"][0]
    assert (reason["type"], reason["details"]) == ("exception_during_inner_validation", "'99'")
    assert reason["extra_info"]["exception_type"] == "KeyError"
    assert reason["extra_info"]["input_name"] == "images" and reason["extra_info"]["linked_node"] == ["10", 0]


def test_no_output_node(tmp_path):
    outcome = run(tmp_path, {"1": {"class_type": "EmptyImage", "inputs": {
        "width": 8, "height": 8, "batch_size": 1, "color": 0}}})
    assert outcome.error == ('Prompt has no outputs. Raw response: {"error": {"type": "prompt_no_outputs", '
                             '"message": "Prompt has no outputs", "details": "", "extra_info": {}}, '
                             '"node_errors": {}}')


def test_load_image_name_must_be_uploaded(tmp_path):
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "missing.png"}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
    reason = rejection(tmp_path, graph)["node_errors"]["1"]["errors"][0]
    assert (reason["type"], reason["details"]) == ("custom_validation_failed", "image - Invalid image file: missing.png")


def test_failure_while_running_keeps_details_in_the_output(tmp_path):
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "broken.png"}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
    payload = {"workflow": graph, "images": [{"name": "broken.png", "image": base64.b64encode(b"no png").decode()}]}
    outcome = run(tmp_path, payload)
    assert outcome.status == FAILED and outcome.error == "Job processing failed"
    assert outcome.output == {"details": [(
        "Workflow execution error: Node Type: LoadImage, Node ID: 1, Message: cannot identify image file "
        "'/comfyui/input/broken.png'")]}


# --------------------------------------------------------------------------------------- valid graphs


@pytest.mark.parametrize("template", sorted(p.stem for p in TEMPLATES.glob("*.json")))
def test_every_template_completes(tmp_path, template):
    spec = json.loads((TEMPLATES / f"{template}.json").read_text())
    with_models(tmp_path, spec["workflow"])
    outcome = run(tmp_path, spec["workflow"], role=spec["role"])
    assert outcome.status == COMPLETED, outcome.error
    assert images_of(outcome)


FLUX_CUSTOM_ADVANCED = {   # ComfyUI's own FLUX example (flux_dev_example), API format
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox in the snow", "clip": ["11", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["10", 0]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    "10": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
    "11": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "t5xxl_fp16.safetensors",
                                                      "clip_name2": "clip_l.safetensors", "type": "flux"}},
    "12": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}},
    "13": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["25", 0], "guider": ["22", 0],
                                                             "sampler": ["16", 0], "sigmas": ["17", 0],
                                                             "latent_image": ["27", 0]}},
    "16": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
    "17": {"class_type": "BasicScheduler", "inputs": {"scheduler": "simple", "steps": 20, "denoise": 1,
                                                      "model": ["30", 0]}},
    "22": {"class_type": "BasicGuider", "inputs": {"model": ["30", 0], "conditioning": ["26", 0]}},
    "25": {"class_type": "RandomNoise", "inputs": {"noise_seed": 219670278747233}},
    "26": {"class_type": "FluxGuidance", "inputs": {"guidance": 3.5, "conditioning": ["6", 0]}},
    "27": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 768, "height": 512, "batch_size": 1}},
    "30": {"class_type": "ModelSamplingFlux", "inputs": {"max_shift": 1.15, "base_shift": 0.5, "width": 768,
                                                         "height": 512, "model": ["12", 0]}},
}


def test_flux_example_with_sampler_custom_advanced(tmp_path):
    with_models(tmp_path, FLUX_CUSTOM_ADVANCED)
    outcome = run(tmp_path, FLUX_CUSTOM_ADVANCED)
    assert outcome.status == COMPLETED, outcome.error
    [image] = images_of(outcome)
    assert image.size == (768, 512)
    assert image.text == {}     # --disable-metadata: no workflow text chunk


def test_img2img_controlnet_and_core_nodes(tmp_path):
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
        "3": {"class_type": "VAEEncode", "inputs": {"pixels": ["2", 0], "vae": ["1", 2]}},
        "4": {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "a watercolour harbour"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"text": ["4", 0], "clip": ["1", 1]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "7": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "canny_sdxl.safetensors"}},
        "8": {"class_type": "Canny", "inputs": {"image": ["2", 0], "low_threshold": 0.4, "high_threshold": 0.8}},
        "9": {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": ["5", 0], "negative": ["6", 0], "control_net": ["7", 0], "image": ["8", 0],
            "strength": 0.8, "start_percent": 0.0, "end_percent": 1.0}},
        "10": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "seed": 1, "steps": 4, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
            "positive": ["9", 0], "negative": ["9", 1], "latent_image": ["3", 0], "denoise": 0.6}},
        "11": {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["1", 2]}},
        "12": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "img2img"}},
        "13": {"class_type": "EmptyImage", "inputs": {"width": 320, "height": 200, "batch_size": 2, "color": 0}},
        "14": {"class_type": "ImageBlur", "inputs": {"image": ["13", 0], "blur_radius": 2, "sigma": 1.0}},
        "15": {"class_type": "SaveImage", "inputs": {"images": ["14", 0], "filename_prefix": "blank"}},
    }
    with_models(tmp_path, graph)
    outcome = run(tmp_path, graph)
    assert outcome.status == COMPLETED, outcome.error
    sizes = [image.size for image in images_of(outcome)]
    assert sizes == [(64, 48), (320, 200), (320, 200)]   # img2img keeps the photo's size


def test_ip_adapter_graph_on_the_special_image(tmp_path):
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "2": {"class_type": "IPAdapterUnifiedLoader", "inputs": {"model": ["1", 0], "preset": "PLUS FACE (portraits)"}},
        "3": {"class_type": "LoadImage", "inputs": {"image": "face.png"}},
        "4": {"class_type": "IPAdapter", "inputs": {"model": ["2", 0], "ipadapter": ["2", 1], "image": ["3", 0],
                                                    "weight": 0.8, "start_at": 0.0, "end_at": 1.0,
                                                    "weight_type": "standard"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"text": "portrait", "clip": ["1", 1]}},
        "6": {"class_type": "EmptyLatentImage", "inputs": {"width": 832, "height": 1216, "batch_size": 1}},
        "7": {"class_type": "KSampler", "inputs": {
            "model": ["4", 0], "seed": 3, "steps": 4, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
            "positive": ["5", 0], "negative": ["5", 0], "latent_image": ["6", 0], "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["1", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "ipa"}},
    }
    with_models(tmp_path, graph)
    assert "does not exist" in run(tmp_path, graph, role="image").error   # not on the stock image
    outcome = run(tmp_path, graph, role="special")
    assert outcome.status == COMPLETED, outcome.error
    assert [image.size for image in images_of(outcome)] == [(832, 1216)]


def test_pictures_follow_the_sizes_the_graph_asks_for(tmp_path):
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 640, "height": 384, "batch_size": 1}},
        "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 2]}},   # nothing sampled
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "blank"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["1", 1]}},
        "6": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "seed": 5, "steps": 2, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
            "positive": ["5", 0], "negative": ["5", 0], "latent_image": ["2", 0], "denoise": 1.0}},
        "7": {"class_type": "LatentUpscale", "inputs": {"samples": ["6", 0], "upscale_method": "bilinear",
                                                        "width": 800, "height": 608, "crop": "disabled"}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["1", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "upscaled"}},
    }
    with_models(tmp_path, graph)
    outcome = run(tmp_path, graph)
    assert outcome.status == COMPLETED, outcome.error
    assert [image.size for image in images_of(outcome)] == [(640, 384), (800, 608)]


def test_outputs_that_validate_run_when_others_do_not(tmp_path):
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 16, "batch_size": 1, "color": 255}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "good"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},      # no filename_prefix
    }
    outcome = run(tmp_path, graph)
    assert outcome.status == COMPLETED
    assert [i["filename"] for i in outcome.output["images"]] == ["good_00001_.png"]


def test_an_inverted_image_has_comfyuis_pixels(tmp_path):
    """LoadImage → ImageInvert → SaveImage gives ComfyUI's file: float32 maths, truncated to 8 bits."""
    levels = np.arange(256, dtype=np.uint8)
    photo = np.stack([np.tile(levels, (4, 1))] * 3, axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, "PNG")
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "levels.png"}},
             "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
             "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "job1"}}}
    payload = {"workflow": graph, "images": [{"name": "levels.png",
                                              "image": base64.b64encode(buffer.getvalue()).decode()}]}
    outcome = run(tmp_path, payload)
    assert [i["filename"] for i in outcome.output["images"]] == ["job1_00001_.png"]
    [image] = images_of(outcome)
    row = np.asarray(image)[0, :, 0]
    assert row[0] == 255 and row[255] == 0
    assert row[65] == 189          # 255 − 65 = 190, but ComfyUI's float32 arithmetic truncates to 189
    assert image.text == {}
