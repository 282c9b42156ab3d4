"""Fill a template with the form's values and produce worker-comfyui's job input.

The result is exactly `{"input": {"workflow": {...}, "images": [{"name", "image"}]}}` (reference
worker-contracts §1.2). Building is deterministic: the same template, parameters and job tag give
the same bytes, which is what makes "re-run" and grids reproducible. The seed is therefore always
an input here; a "random" seed is drawn by the caller with `new_seed()` before building.
"""
from __future__ import annotations

import base64
import copy
import re
import secrets
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath

from lib.errors import ConsoleError
from lib.workflows.graph import (
    OUTPUT_NODE,
    WorkflowError,
    bypass_nodes,
    structure_problems,
)
from lib.workflows.templates import PARAM_NAMES, Template

SEED_MAX = 2**64 - 1  # KSampler's seed widget range in ComfyUI
PROMPT_MAX_CHARS = 4000
_JOB_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")
_IMAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")


class ParamError(ConsoleError, ValueError):
    """The form's values cannot be used with this template; `problems` has one sentence per field."""



def new_seed() -> int:
    """A fresh random seed, drawn before building so the payload records the seed actually used."""
    return secrets.randbelow(2**32)


def _number(value: object, kind: type, label: str, problems: list[str]):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append(f"{label} must be a number, not {value!r}")
        return None
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            problems.append(f"{label} must be a whole number, not {value}")
            return None
        return int(value)
    return float(value)


def _in_range(value, lo, hi, label: str, problems: list[str]) -> None:
    if value is not None and not lo <= value <= hi:
        problems.append(f"{label} {value} is out of range: use {lo} to {hi}")


def resolve_params(template: Template, params: Mapping[str, object]) -> dict[str, object]:
    """Template defaults overlaid with `params`, every value checked against the template's limits.

    Returns one value per parameter the template supports (lora_name None = no LoRA); raises
    ParamError listing every problem at once so the form can show them together.
    """
    problems: list[str] = []
    unknown = sorted(set(params) - set(PARAM_NAMES))
    if unknown:
        problems.append(f"unknown parameter(s) {', '.join(unknown)}")
    if "filename_prefix" in params:
        problems.append("filename_prefix is set from the job tag, not from the form")
    lim = template.limits
    merged = {**template.defaults, **{k: v for k, v in params.items() if v is not None}}
    out: dict[str, object] = {}

    for key in ("negative_prompt", "lora_name"):
        if params.get(key) and not template.supports(key):
            what = "a negative prompt" if key == "negative_prompt" else "a LoRA"
            problems.append(f"{template.title} does not take {what}")

    prompt = merged.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        problems.append("the prompt is empty: describe the image you want")
    elif len(prompt) > PROMPT_MAX_CHARS:
        problems.append(f"the prompt is {len(prompt)} characters long; keep it under {PROMPT_MAX_CHARS}")
    else:
        out["prompt"] = prompt.strip()

    if template.supports("negative_prompt"):
        negative = merged.get("negative_prompt", "")
        if not isinstance(negative, str):
            problems.append("the negative prompt must be text")
        else:
            out["negative_prompt"] = negative.strip()

    seed = params.get("seed")
    if seed is None:
        problems.append("no seed: pick a fixed seed or draw a random one before building the job")
    else:
        seed = _number(seed, int, "seed", problems)
        _in_range(seed, 0, SEED_MAX, "seed", problems)
        out["seed"] = seed

    for key, kind, (lo, hi), label in (("steps", int, lim.steps, "steps"),
                                       ("guidance", float, lim.guidance, "guidance"),
                                       ("batch_size", int, lim.batch_size, "images per job")):
        if template.supports(key):
            value = _number(merged.get(key), kind, label, problems)
            _in_range(value, lo, hi, label, problems)
            out[key] = value

    for key in ("width", "height"):
        if not template.supports(key):
            continue
        value = _number(merged.get(key), int, key, problems)
        if value is None:
            continue
        step = lim.size_multiple
        if value % step:
            lower, upper = value // step * step, (value // step + 1) * step
            problems.append(f"{key} {value} is not a multiple of {step} ({template.title} needs "
                            f"multiples of {step}): use {lower} or {upper}")
        elif value > lim.max_side:
            problems.append(f"{key} {value} is larger than {lim.max_side} pixels, the most this "
                            f"template allows per side")
        elif value < lim.min_side:
            problems.append(f"{key} {value} is smaller than {lim.min_side} pixels")
        out[key] = value

    if template.supports("lora_name"):
        lora = params.get("lora_name") or None
        if lora is not None and not isinstance(lora, str):
            problems.append("the LoRA must be a file name")
            lora = None
        if lora is not None:
            path = PurePosixPath(lora)
            if path.is_absolute() or ".." in path.parts or "\\" in lora or lora.startswith("models/"):
                problems.append(f"LoRA {lora!r}: give the file name inside models/loras/ "
                                f"(e.g. ava_v1.safetensors), not a path")
        if lora is None and not template.lora_optional:
            problems.append(f"{template.title} needs a LoRA: pick one from models/loras/")
        out["lora_name"] = lora
        if template.supports("lora_strength"):
            strength = _number(merged.get("lora_strength", 1.0), float, "LoRA strength", problems)
            _in_range(strength, *lim.lora_strength, "LoRA strength", problems)
            out["lora_strength"] = strength

    if problems:
        raise ParamError(problems)
    return out


def check_job_tag(job_tag: str) -> str:
    if not isinstance(job_tag, str) or not _JOB_TAG.match(job_tag):
        raise ValueError(f"job tag {job_tag!r} must be 1–80 letters, digits, '-' or '_' "
                         f"(it becomes the output file prefix)")
    return job_tag


def _set_prefixes(workflow: dict, job_tag: str) -> None:
    saves = [nid for nid, node in workflow.items() if node.get("class_type") == OUTPUT_NODE]
    for node_id in saves:
        # One SaveImage keeps the bare tag; several get the node id too so their files never collide.
        workflow[node_id]["inputs"]["filename_prefix"] = job_tag if len(saves) == 1 else f"{job_tag}_{node_id}"


def _input_images(workflow: dict, images: Mapping[str, bytes] | Sequence[tuple[str, bytes]],
                  job_tag: str) -> list[dict[str, str]]:
    items = list(images.items()) if isinstance(images, Mapping) else list(images)
    problems = []
    seen: set[str] = set()
    entries = []
    renamed: dict[str, str] = {}
    for name, data in items:
        if not isinstance(name, str) or not _IMAGE_NAME.match(name):
            problems.append(f"input image name {name!r} must be a plain file name (letters, digits, . _ -)")
            continue
        if name in seen:
            problems.append(f"two input images are named {name!r}")
            continue
        if not data:
            problems.append(f"input image {name!r} is empty")
            continue
        seen.add(name)
        # Uploads stay in ComfyUI's input/ folder on a warm worker (reference §1.2): job-unique names.
        unique = f"{job_tag}_{name}"
        renamed[name] = unique
        entries.append({"name": unique, "image": base64.b64encode(bytes(data)).decode("ascii")})
    if problems:
        raise ParamError(problems)
    for node in workflow.values():
        if node.get("class_type") == "LoadImage" and node["inputs"].get("image") in renamed:
            node["inputs"]["image"] = renamed[node["inputs"]["image"]]
    return entries


def build_payload(template: Template, params: Mapping[str, object], *, job_tag: str,
                  images: Mapping[str, bytes] | Sequence[tuple[str, bytes]] | None = None) -> dict:
    """The /run body's `input` wrapped as `{"input": {...}}`, ready for EndpointJobs.run(payload["input"]).

    `images` maps file names used by LoadImage nodes to raw image bytes; they are sent base64-encoded
    under job-unique names. Raises ParamError (form values) or WorkflowError (broken graph).
    """
    check_job_tag(job_tag)
    values = resolve_params(template, params)
    workflow = copy.deepcopy(dict(template.workflow))
    with_lora = values.get("lora_name") is not None
    for key, targets in template.params.items():
        if key == "filename_prefix" or key not in values:
            continue
        if key in ("lora_name", "lora_strength") and not with_lora:
            continue
        for node_id, input_name in targets:
            workflow[node_id]["inputs"][input_name] = values[key]
    if template.supports("lora_name") and not with_lora:
        bypass_nodes(workflow, template.without_lora)
    _set_prefixes(workflow, job_tag)
    body: dict[str, object] = {"workflow": workflow}
    if images:
        body["images"] = _input_images(workflow, images, job_tag)
    problems = structure_problems(workflow)
    if problems:
        raise WorkflowError(problems)
    return {"input": body}


def retag_payload(payload: Mapping, *, old_tag: str, new_tag: str) -> dict:
    """A copy of a stored payload for a re-run: identical except the job tag in output prefixes and
    input image names (so outputs and uploads of the two jobs never collide)."""
    check_job_tag(new_tag)
    new = copy.deepcopy(dict(payload))
    body = new.get("input")
    if not isinstance(body, dict) or not isinstance(body.get("workflow"), dict):
        raise WorkflowError("the stored job has no worker-comfyui workflow to re-run")

    def swap(value: object) -> object:
        if isinstance(value, str) and (value == old_tag or value.startswith(old_tag + "_")):
            return new_tag + value[len(old_tag):]
        return value

    for node in body["workflow"].values():
        inputs = node.get("inputs") or {}
        if node.get("class_type") == OUTPUT_NODE:
            inputs["filename_prefix"] = swap(inputs.get("filename_prefix"))
        elif node.get("class_type") == "LoadImage":
            inputs["image"] = swap(inputs.get("image"))
    for image in body.get("images") or []:
        image["name"] = swap(image.get("name"))
    return new
