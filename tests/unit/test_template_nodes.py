"""Every built-in template, and the graphs the special tasks build from them, against real ComfyUI's
node definitions (lib/localpod/comfy/object_info.json, the simulator's copy of the shared reference):
each node class exists, each input is one the class declares, every required input is given, literal
values have the declared type and lie in the declared list or range, and every link joins an output
to an input of the same type."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from lib.special import (
    MODES,
    FaceSwapOptions,
    ReferenceRequest,
    SheetRequest,
    Upload,
    plan_faceswap,
    plan_reference,
    plan_sheet,
)
from lib.workflows import build_payload, list_templates
from lib.workflows.graph import LOADER_INPUTS, is_link
from lib.workflows.samplers import SAMPLERS, SCHEDULERS

OBJECT_INFO = json.loads((Path(__file__).resolve().parents[2] / "lib" / "localpod" / "comfy" / "object_info.json")
                         .read_text(encoding="utf-8"))
# Inputs whose list of allowed values is a folder listing or the uploads on the worker: the snapshot's
# lists are empty (no models), built-in names only (VAELoader) or a placeholder (LoadImage), so only
# that the value is a file name can be checked here.
FILE_LISTS = {("LoadImage", "image")} | {(c, i) for c, inputs in LOADER_INPUTS.items() for i in inputs}


def definition_problems(workflow: dict) -> list[str]:
    problems = []
    for node_id, node in workflow.items():
        class_type = node["class_type"]
        spec = OBJECT_INFO.get(class_type)
        if spec is None:
            problems.append(f"node {node_id}: no node class {class_type}")
            continue
        declared = {**spec["input"].get("required", {}), **spec["input"].get("optional", {})}
        for name in spec["input"].get("required", {}):
            if name not in node["inputs"]:
                problems.append(f"node {node_id} ({class_type}): required input {name!r} missing")
        for name, value in node["inputs"].items():
            if name not in declared:
                problems.append(f"node {node_id} ({class_type}): no input named {name!r}")
                continue
            kind, options = declared[name][0], (declared[name][1] if len(declared[name]) > 1 else {})
            where = f"node {node_id} ({class_type}) {name}"
            if is_link(value):
                source = workflow.get(value[0])
                outputs = OBJECT_INFO.get(source["class_type"], {}).get("output", []) if source else []
                produced = outputs[value[1]] if value[1] < len(outputs) else None
                if isinstance(kind, list) or produced != kind:
                    problems.append(f"{where}: linked to output {value[1]} ({produced}) of node {value[0]}, "
                                    f"wants {kind if not isinstance(kind, list) else 'a literal choice'}")
            elif (class_type, name) in FILE_LISTS:
                if not isinstance(value, str) or not value:
                    problems.append(f"{where}: {value!r} is not a file name")
            elif isinstance(kind, list):
                if value not in kind:
                    problems.append(f"{where}: {value!r} is not one of {kind}")
            elif kind in ("INT", "FLOAT"):
                ok_type = isinstance(value, int) if kind == "INT" else isinstance(value, (int, float))
                if isinstance(value, bool) or not ok_type:
                    problems.append(f"{where}: {value!r} is not {kind}")
                elif not options.get("min", value) <= value <= options.get("max", value):
                    problems.append(f"{where}: {value} outside {options.get('min')}…{options.get('max')}")
            elif kind == "STRING" and not isinstance(value, str):
                problems.append(f"{where}: {value!r} is not a STRING")
            elif kind == "BOOLEAN" and not isinstance(value, bool):
                problems.append(f"{where}: {value!r} is not a BOOLEAN")
            elif kind not in ("STRING", "BOOLEAN"):
                problems.append(f"{where}: a literal {value!r} where a {kind} link is needed")
    return problems


def png(size=(256, 320), colour=(120, 90, 60)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def built(template) -> dict:
    params = {"prompt": "ava", "seed": 1}
    if template.supports("lora_name"):
        params["lora_name"] = "ava_v1.safetensors"
    return build_payload(template, params, job_tag="t1")["input"]["workflow"]


@pytest.mark.parametrize("template", list_templates(), ids=lambda t: t.name)
def test_every_builtin_template_matches_comfyui_definitions(template):
    assert definition_problems(dict(template.workflow)) == []
    if "prompt" in template.params:
        assert definition_problems(built(template)) == []


def test_the_checker_catches_wrong_names_values_and_links():
    graph = {"1": {"class_type": "KSampler", "inputs": {"model": ["2", 0], "seed": -1, "steps": 20, "cfg": 7.0,
                                                        "sampler_name": "warp", "scheduler": "karras",
                                                        "positive": ["2", 1], "negative": ["2", 1],
                                                        "latent_image": ["2", 2], "denoize": 1.0}},
             "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}},
             "3": {"class_type": "IPAdapterMagic", "inputs": {}}}
    problems = " | ".join(definition_problems(graph))
    for expected in ("seed: -1 outside", "'warp' is not one of", "no input named 'denoize'",
                     "required input 'denoise' missing", "positive: linked to output 1 (CLIP)",
                     "latent_image: linked to output 2 (VAE)", "no node class IPAdapterMagic"):
        assert expected in problems


@pytest.mark.parametrize("mode", list(MODES))
def test_reference_graphs_as_sent_match_the_definitions(mode):
    request = ReferenceRequest(prompt="ava in a garden", reference=Upload("ref.png", png()), mode=mode,
                               weight=1.3, start_at=0.2, end_at=0.9, seed=4, count=2,
                               lora_name="ava_sdxl.safetensors")
    for job in plan_reference(request, batch_id="ref1").jobs:
        assert definition_problems(job.input["workflow"]) == []


def test_pose_guided_sheet_graphs_as_sent_match_the_definitions():
    own = {"back": Upload("back.png", png((300, 480), (0, 0, 0)))}
    plan = plan_sheet(SheetRequest(character="Ava", lora_name="ava_v1.safetensors", trigger="ava", seed=2,
                                   pose_guided=True, pose_uploads=own), sheet_id="sh1")
    for job in plan.jobs:
        assert definition_problems(job.input["workflow"]) == []


def test_face_swap_graph_as_sent_matches_the_definitions():
    plan = plan_faceswap(Upload("face.png", png()), [Upload("target.png", png())],
                         FaceSwapOptions(restore_model="GFPGANv1.4.pth"), batch_id="fs1")
    assert definition_problems(plan.jobs[0].input["workflow"]) == []


def test_sampler_and_scheduler_choices_are_ksamplers():
    required = OBJECT_INFO["KSampler"]["input"]["required"]
    assert list(SAMPLERS) == required["sampler_name"][0]
    assert list(SCHEDULERS) == required["scheduler"][0]
