"""Templates, payload building (checked against worker-comfyui's input schema), own-workflow uploads."""
from __future__ import annotations

import base64
import json

import pytest

from lib.workflows import (
    ParamError,
    TemplateError,
    WorkflowError,
    build_payload,
    list_templates,
    load_template,
    models_in_workflow,
    new_seed,
    parse_uploaded_workflow,
    resolve_params,
    retag_payload,
    save_custom_template,
    size_presets,
    suggest_param_map,
)
from lib.workflows.graph import is_link
from lib.workflows.templates import repoint_model

IMAGE_TEMPLATES = ("flux_dev_lora", "sdxl_lora", "z_image_turbo_lora")
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def assert_worker_comfyui_input(payload: dict) -> None:
    """worker-comfyui ≥ 5 job body (reference §1.2 / §2.1), field by field."""
    assert set(payload) == {"input"}
    body = payload["input"]
    assert set(body) <= {"workflow", "images", "comfy_org_api_key"}
    workflow = body["workflow"]
    assert isinstance(workflow, dict) and workflow
    for node_id, node in workflow.items():
        assert isinstance(node_id, str)
        assert set(node) <= {"class_type", "inputs", "_meta"}
        assert isinstance(node["class_type"], str) and node["class_type"]
        assert isinstance(node["inputs"], dict)
        for value in node["inputs"].values():
            if isinstance(value, list):
                assert is_link(value) and value[0] in workflow, (node_id, value)
    saves = [n for n in workflow.values() if n["class_type"] == "SaveImage"]
    assert saves and all(isinstance(n["inputs"]["filename_prefix"], str) for n in saves)
    for image in body.get("images", []):
        assert set(image) == {"name", "image"}
        base64.b64decode(image["image"], validate=True)
    json.dumps(payload, allow_nan=False)


def base_params(**extra):
    return {"prompt": "ava_tok on a harbour at golden hour", "seed": 42, **extra}


def test_builtin_image_templates_load_with_their_contract():
    templates = {t.name: t for t in list_templates(role="image")}
    assert set(IMAGE_TEMPLATES) <= set(templates)
    flux, sdxl, zit = (templates[n] for n in IMAGE_TEMPLATES)
    assert (flux.family, sdxl.family, zit.family) == ("flux", "sdxl", "z-image")
    assert (flux.limits.size_multiple, sdxl.limits.size_multiple, zit.limits.size_multiple) == (16, 8, 16)
    assert {t.limits.max_side for t in (flux, sdxl, zit)} == {2048}
    assert sdxl.uses_negative and not flux.uses_negative and not zit.uses_negative
    assert "community conventions" in sdxl.notes
    assert [r.path for r in zit.required_models] == [
        "models/unet/z_image_turbo_bf16.safetensors", "models/clip/qwen_3_4b.safetensors",
        "models/vae/ae.safetensors"]
    assert "models/unet/flux1-dev.safetensors" in [r.path for r in flux.required_models]
    # Z-Image exactly as reference §2.4.
    nodes = zit.workflow
    assert nodes["1"]["inputs"] == {"unet_name": "z_image_turbo_bf16.safetensors", "weight_dtype": "default"}
    assert nodes["2"]["inputs"]["type"] == "lumina2"
    assert nodes["5"]["class_type"] == "ModelSamplingAuraFlow" and nodes["5"]["inputs"]["shift"] == 3
    assert nodes["7"]["class_type"] == "ConditioningZeroOut"
    sampler = nodes["9"]["inputs"]
    assert (sampler["sampler_name"], sampler["scheduler"], sampler["steps"], sampler["cfg"]) == (
        "res_multistep", "simple", 8, 1.0)
    assert flux.workflow["1"]["inputs"]["weight_dtype"] == "fp8_e4m3fn"
    assert flux.workflow["2"]["inputs"]["type"] == "flux"
    assert (sdxl.workflow["6"]["inputs"]["sampler_name"], sdxl.workflow["6"]["inputs"]["scheduler"]) == (
        "dpmpp_2m", "karras")


def test_required_models_agree_with_the_loaders_in_each_graph():
    for name in IMAGE_TEMPLATES:
        template = load_template(name)
        refs = {(r.node_id, r.input_name): r.expected_path for r in models_in_workflow(template.workflow)}
        for required in template.required_models:
            assert refs[(required.node_id, required.input_name)] == required.path


@pytest.mark.parametrize("name", IMAGE_TEMPLATES)
def test_payload_with_lora_fills_every_mapped_input(name):
    template = load_template(name)
    params = base_params(lora_name="chars/ava_v1.safetensors", lora_strength=0.75, steps=12,
                         width=768, height=1152, batch_size=2)
    if template.uses_negative:
        params["negative_prompt"] = "blurry"
    payload = build_payload(template, params, job_tag="job-abc123")
    assert_worker_comfyui_input(payload)
    workflow = payload["input"]["workflow"]
    expected = {**resolve_params(template, params)}
    for key, targets in template.params.items():
        if key == "filename_prefix":
            continue
        for node_id, input_name in targets:
            assert workflow[node_id]["inputs"][input_name] == expected[key], (key, node_id)
    saves = [n for n in workflow.values() if n["class_type"] == "SaveImage"]
    assert [n["inputs"]["filename_prefix"] for n in saves] == ["job-abc123"]
    assert "images" not in payload["input"]


@pytest.mark.parametrize("name", IMAGE_TEMPLATES)
def test_payload_without_lora_drops_the_loader_and_relinks(name):
    template = load_template(name)
    payload = build_payload(template, base_params(), job_tag="t1")
    assert_worker_comfyui_input(payload)
    workflow = payload["input"]["workflow"]
    assert not [n for n in workflow.values() if n["class_type"].startswith("LoraLoader")]
    dropped = set(template.without_lora)
    assert dropped and not dropped & set(workflow)
    loader = next(nid for nid, n in workflow.items()
                  if n["class_type"] in ("UNETLoader", "CheckpointLoaderSimple"))
    lora = next(iter(dropped))
    fed_by_lora = [(nid, k) for nid, n in template.workflow.items() for k, v in n["inputs"].items()
                   if v == [lora, 0]]
    assert fed_by_lora and all(workflow[nid]["inputs"][k] == [loader, 0] for nid, k in fed_by_lora)
    if name == "sdxl_lora":  # the CLIP output of LoraLoader is re-linked to the checkpoint's CLIP
        assert workflow["3"]["inputs"]["clip"] == ["1", 1]
        assert workflow["4"]["inputs"]["clip"] == ["1", 1]


def test_payload_is_byte_identical_apart_from_the_job_tag():
    template = load_template("flux_dev_lora")
    params = base_params(lora_name="ava_v1.safetensors")
    first = json.dumps(build_payload(template, params, job_tag="aaa"), sort_keys=True)
    again = json.dumps(build_payload(template, params, job_tag="aaa"), sort_keys=True)
    other = json.dumps(build_payload(template, params, job_tag="bbb"), sort_keys=True)
    assert first == again
    assert first.replace('"aaa"', '"bbb"') == other


def test_retag_payload_changes_only_prefixes_and_input_names():
    template = load_template("z_image_turbo_lora")
    original = build_payload(template, base_params(), job_tag="old-1")
    original["input"]["workflow"]["20"] = {"class_type": "LoadImage", "inputs": {"image": "old-1_face.png"}}
    original["input"]["images"] = [{"name": "old-1_face.png", "image": base64.b64encode(PNG_1PX).decode()}]
    rerun = retag_payload(original, old_tag="old-1", new_tag="new-2")
    expected = json.loads(json.dumps(original).replace("old-1", "new-2"))
    assert rerun == expected
    assert original["input"]["workflow"]["11"]["inputs"]["filename_prefix"] == "old-1"  # not mutated


def test_input_images_are_sent_base64_under_job_unique_names():
    template = load_template("z_image_turbo_lora")
    graph = dict(template.workflow)
    graph["20"] = {"class_type": "LoadImage", "inputs": {"image": "face.png"}}
    custom = type(template)(**{**template.__dict__, "workflow": graph})
    payload = build_payload(custom, base_params(), job_tag="j9", images={"face.png": PNG_1PX})
    assert_worker_comfyui_input(payload)
    assert payload["input"]["images"] == [{"name": "j9_face.png",
                                           "image": base64.b64encode(PNG_1PX).decode()}]
    assert payload["input"]["workflow"]["20"]["inputs"]["image"] == "j9_face.png"
    with pytest.raises(ParamError, match="plain file name"):
        build_payload(custom, base_params(), job_tag="j9", images={"../x.png": PNG_1PX})


def test_several_save_nodes_get_distinct_prefixes():
    template = load_template("sdxl_lora")
    graph = dict(template.workflow)
    graph["9"] = {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "x"}}
    custom = type(template)(**{**template.__dict__, "workflow": graph})
    workflow = build_payload(custom, base_params(), job_tag="k1")["input"]["workflow"]
    assert (workflow["8"]["inputs"]["filename_prefix"], workflow["9"]["inputs"]["filename_prefix"]) == (
        "k1_8", "k1_9")


@pytest.mark.parametrize("params, message", [
    ({"prompt": "   ", "seed": 1}, "the prompt is empty"),
    ({"prompt": "x"}, "no seed"),
    ({"prompt": "x", "seed": -1}, "seed -1 is out of range"),
    ({"prompt": "x", "seed": 1, "width": 1000}, "width 1000 is not a multiple of 16"),
    ({"prompt": "x", "seed": 1, "height": 4096}, "height 4096 is larger than 2048"),
    ({"prompt": "x", "seed": 1, "width": 64}, "width 64 is smaller than 256"),
    ({"prompt": "x", "seed": 1, "steps": 0}, "steps 0 is out of range: use 1 to 30"),
    ({"prompt": "x", "seed": 1, "steps": 2.5}, "steps must be a whole number"),
    ({"prompt": "x", "seed": 1, "guidance": 9}, "guidance 9.0 is out of range"),
    ({"prompt": "x", "seed": 1, "lora_name": "a.safetensors", "lora_strength": 3}, "LoRA strength 3.0"),
    ({"prompt": "x", "seed": 1, "lora_name": "/runpod-volume/models/loras/a.safetensors"}, "not a path"),
    ({"prompt": "x", "seed": 1, "negative_prompt": "ugly"}, "does not take a negative prompt"),
    ({"prompt": "x", "seed": 1, "filename_prefix": "p"}, "set from the job tag"),
    ({"prompt": "x", "seed": 1, "colour": "red"}, "unknown parameter"),
])
def test_bad_parameters_are_refused_with_a_clear_message(params, message):
    with pytest.raises(ParamError) as err:
        build_payload(load_template("z_image_turbo_lora"), params, job_tag="t")
    assert message in str(err.value)


def test_every_problem_is_reported_at_once_and_sdxl_allows_multiples_of_8():
    with pytest.raises(ParamError) as err:
        resolve_params(load_template("flux_dev_lora"), {"prompt": "", "seed": 1, "width": 1000, "steps": 99})
    assert len(err.value.problems) == 3
    assert resolve_params(load_template("sdxl_lora"), base_params(width=1000, height=1256))["width"] == 1000


def test_job_tag_must_be_safe_for_a_file_prefix():
    with pytest.raises(ValueError, match="job tag"):
        build_payload(load_template("sdxl_lora"), base_params(), job_tag="../evil")


def test_new_seed_is_a_valid_seed():
    seeds = {new_seed() for _ in range(20)}
    assert len(seeds) > 1 and all(0 <= s < 2**32 for s in seeds)


def test_size_presets_stay_on_the_template_grid():
    for name in IMAGE_TEMPLATES:
        template = load_template(name)
        presets = size_presets(template)
        assert presets[0].width == presets[0].height == 1024
        for preset in presets:
            assert preset.width % template.limits.size_multiple == 0
            assert preset.height % template.limits.size_multiple == 0
            assert 0.8e6 < preset.width * preset.height < 1.2e6
            resolve_params(template, base_params(width=preset.width, height=preset.height))


# ---- own workflows --------------------------------------------------------------------------

def test_upload_not_json_is_refused():
    with pytest.raises(WorkflowError, match="not valid JSON .line 1"):
        parse_uploaded_workflow(b"{nodes: 1")
    with pytest.raises(WorkflowError, match="not text"):
        parse_uploaded_workflow(b"\xff\xfe\x00garbage")
    with pytest.raises(WorkflowError, match="empty"):
        parse_uploaded_workflow(b"  ")


def test_upload_in_ui_format_says_how_to_export_the_api_format():
    ui = {"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}], "links": [[1, 4, 0, 3, 0, "MODEL"]]}
    with pytest.raises(WorkflowError) as err:
        parse_uploaded_workflow(json.dumps(ui).encode())
    assert "UI format" in str(err.value) and "Export (API)" in str(err.value)


def test_upload_structure_problems_are_all_listed():
    graph = {
        "1": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["7", 0]}},
        "2": {"inputs": {}},
        "3": {"class_type": "PreviewImage"},
    }
    with pytest.raises(WorkflowError) as err:
        parse_uploaded_workflow(json.dumps(graph).encode())
    assert err.value.problems == ["node 2 has no class_type", "node 3 (PreviewImage) has no inputs object"]
    graph["2"]["class_type"] = "VAEDecode"
    graph["3"]["inputs"] = {"images": ["2", 0]}
    with pytest.raises(WorkflowError) as err:
        parse_uploaded_workflow(json.dumps(graph).encode())
    assert err.value.problems == [
        "node 1 (CLIPTextEncode) input 'clip' links to node 7, which is not in the workflow",
        "the workflow only has PreviewImage nodes; worker-comfyui skips preview images, so replace them "
        "with SaveImage"]


def test_upload_accepts_a_runpod_request_body_and_a_prompt_body():
    graph = dict(load_template("sdxl_lora").workflow)
    for wrapped in ({"input": {"workflow": graph}}, {"prompt": graph, "client_id": "x"}, graph):
        assert parse_uploaded_workflow(json.dumps(wrapped).encode("utf-8-sig")) == graph


@pytest.mark.parametrize("name", IMAGE_TEMPLATES)
def test_suggest_param_map_recovers_the_builtin_maps(name):
    template = load_template(name)
    suggested = suggest_param_map(template.workflow)
    declared = {k: [list(t) for t in v] for k, v in template.params.items()}
    assert suggested == declared


def test_models_in_workflow_maps_each_loader_to_the_scanned_folder():
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl.safetensors"}},
        "2": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux.safetensors", "weight_dtype": "default"}},
        "3": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "t5.safetensors", "clip_name2": "l.safetensors"}},
        "4": {"class_type": "VAELoader", "inputs": {"vae_name": "taesd"}},
        "5": {"class_type": "LoraLoader", "inputs": {"lora_name": "a/b.safetensors"}},
        "6": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "cn.safetensors"}},
        "7": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x.pth"}},
        "8": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "vit.safetensors"}},
        "9": {"class_type": "CLIPLoader", "inputs": {"clip_name": ["10", 0]}},
    }
    refs = [(r.node_id, r.input_name, r.folder, r.expected_path) for r in models_in_workflow(graph)]
    assert refs == [
        ("1", "ckpt_name", "checkpoints", "models/checkpoints/sd_xl.safetensors"),
        ("2", "unet_name", "unet", "models/unet/flux.safetensors"),
        ("3", "clip_name1", "clip", "models/clip/t5.safetensors"),
        ("3", "clip_name2", "clip", "models/clip/l.safetensors"),
        ("5", "lora_name", "loras", "models/loras/a/b.safetensors"),
        ("6", "control_net_name", "controlnet", "models/controlnet/cn.safetensors"),
        ("7", "model_name", "upscale_models", "models/upscale_models/4x.pth"),
        ("8", "clip_name", "clip_vision", "models/clip_vision/vit.safetensors"),
    ]


def test_saved_custom_template_is_listed_and_builds_payloads(tmp_path):
    graph = parse_uploaded_workflow(json.dumps(load_template("sdxl_lora").workflow).encode())
    mapping = suggest_param_map(graph)
    saved = save_custom_template(tmp_path / "templates", "Ava SDXL test", graph, mapping)
    assert saved.name == "ava_sdxl_test" and not saved.builtin and saved.family == "custom"
    assert saved.uses_negative and saved.limits.size_multiple == 8
    assert saved.without_lora == {"2": {0: "model", 1: "clip"}}
    assert [r.path for r in saved.required_models] == ["models/checkpoints/sd_xl_base_1.0.safetensors"]
    listed = list_templates(tmp_path / "templates", role="image")
    assert listed[-1].name == "ava_sdxl_test"
    assert load_template("ava_sdxl_test", tmp_path / "templates").title == "Ava SDXL test"
    payload = build_payload(saved, base_params(), job_tag="c1")
    assert_worker_comfyui_input(payload)
    assert "2" not in payload["input"]["workflow"]
    with pytest.raises(TemplateError, match="already exists"):
        save_custom_template(tmp_path / "templates", "Ava SDXL test", graph, mapping)
    assert save_custom_template(tmp_path / "templates", "Ava SDXL test", graph, mapping, overwrite=True)


def test_a_moved_model_is_repointed_in_saved_workflows_within_its_folder_only(tmp_path):
    graph = parse_uploaded_workflow(json.dumps(load_template("sdxl_lora").workflow).encode())
    store = tmp_path / "templates"
    save_custom_template(store, "Uses the base", graph, suggest_param_map(graph))
    old = "models/checkpoints/sd_xl_base_1.0.safetensors"
    # Another folder: the checkpoint loader could not read it there, so nothing is changed.
    assert repoint_model(store, old, "models/loras/sd_xl_base_1.0.safetensors") == []
    assert repoint_model(store, old, "models/checkpoints/sdxl/base.safetensors") == ["Uses the base"]
    saved = load_template("uses_the_base", store)
    assert [r.path for r in saved.required_models] == ["models/checkpoints/sdxl/base.safetensors"]
    assert [r.expected_path for r in models_in_workflow(saved.workflow)
            if r.folder == "checkpoints"] == ["models/checkpoints/sdxl/base.safetensors"]
    assert repoint_model(store, old, "models/checkpoints/again.safetensors") == []   # no longer named there
    assert repoint_model(tmp_path / "no-templates-yet", old, "models/checkpoints/x.safetensors") == []


def test_custom_template_names_and_maps_are_checked(tmp_path):
    graph = dict(load_template("sdxl_lora").workflow)
    mapping = suggest_param_map(graph)
    with pytest.raises(TemplateError, match="built-in"):
        save_custom_template(tmp_path, "SDXL lora", graph, mapping)
    with pytest.raises(TemplateError, match="name"):
        save_custom_template(tmp_path, " !! ", graph, mapping)
    with pytest.raises(TemplateError, match="map the prompt"):
        save_custom_template(tmp_path, "no prompt", graph, {"seed": [["6", "seed"]]})
    with pytest.raises(TemplateError, match="node 6 input 'sed'"):
        save_custom_template(tmp_path, "typo", graph, {**mapping, "seed": [["6", "sed"]]})
    assert list(tmp_path.iterdir()) == []


def test_a_broken_template_file_is_reported_with_its_path(tmp_path):
    (tmp_path / "bad.json").write_text('{"format": 1, "name": "bad"}')
    with pytest.raises(TemplateError, match="bad.json: malformed template"):
        list_templates(tmp_path)


def test_sampler_and_scheduler_are_form_fields_checked_against_ksampler():
    from lib.workflows import ParamError, build_payload, load_template
    template = load_template("flux_dev_lora")
    body = build_payload(template, {"prompt": "x", "seed": 1, "sampler_name": "dpmpp_2m", "scheduler": "beta"},
                         job_tag="t1")["input"]["workflow"]["9"]["inputs"]
    assert (body["sampler_name"], body["scheduler"]) == ("dpmpp_2m", "beta")
    defaults = build_payload(template, {"prompt": "x", "seed": 1}, job_tag="t1")["input"]["workflow"]["9"]["inputs"]
    assert (defaults["sampler_name"], defaults["scheduler"]) == ("euler", "simple")
    with pytest.raises(ParamError, match="sampler 'warp' is not one ComfyUI's KSampler offers"):
        build_payload(template, {"prompt": "x", "seed": 1, "sampler_name": "warp"}, job_tag="t1")
