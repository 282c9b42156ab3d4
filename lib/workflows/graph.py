"""ComfyUI API-format graphs: structure checks, links, the model files they name, upload parsing.

An API-format workflow is `{node_id: {"class_type", "inputs", "_meta"?}}`; a link is
`["<source node id>", <output index>]` (reference worker-contracts §2.1).
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from lib.errors import ConsoleError

# Folder (under /runpod-volume/models/) that each loader input reads on the stock worker-comfyui.
# The stock image's extra_model_paths.yaml maps `unet` and `clip` but NOT ComfyUI's newer names
# `diffusion_models` / `text_encoders`: files placed there are invisible (reference §1.7).
LOADER_INPUTS: Mapping[str, Mapping[str, str]] = {
    "CheckpointLoaderSimple": {"ckpt_name": "checkpoints"},
    "UNETLoader": {"unet_name": "unet"},
    "CLIPLoader": {"clip_name": "clip"},
    "DualCLIPLoader": {"clip_name1": "clip", "clip_name2": "clip"},
    "TripleCLIPLoader": {"clip_name1": "clip", "clip_name2": "clip", "clip_name3": "clip"},
    "VAELoader": {"vae_name": "vae"},
    "LoraLoader": {"lora_name": "loras"},
    "LoraLoaderModelOnly": {"lora_name": "loras"},
    "ControlNetLoader": {"control_net_name": "controlnet"},
    "UpscaleModelLoader": {"model_name": "upscale_models"},
    "CLIPVisionLoader": {"clip_name": "clip_vision"},
}

# ComfyUI's own names for the legacy folders the stock worker maps; a file found there is misplaced.
INVISIBLE_ALIASES: Mapping[str, str] = {"unet": "diffusion_models", "clip": "text_encoders"}

# VAELoader offers these built-in approximations that are not files on the volume.
BUILTIN_VAE_NAMES = frozenset({"pixel_space", "taesd", "taesdxl", "taesd3", "taef1"})

LORA_LOADERS = ("LoraLoader", "LoraLoaderModelOnly")
LATENT_NODES = ("EmptyLatentImage", "EmptySD3LatentImage")
SAMPLER_NODES = ("KSampler", "KSamplerAdvanced")
OUTPUT_NODE = "SaveImage"

# When a LoRA loader is removed, each of its outputs is replaced by the link on the input it patches.
LORA_PASSTHROUGH: Mapping[str, Mapping[int, str]] = {
    "LoraLoader": {0: "model", 1: "clip"},
    "LoraLoaderModelOnly": {0: "model"},
}


class WorkflowError(ConsoleError, ValueError):
    """A workflow (uploaded or built) is not a usable ComfyUI API graph; `problems` lists every reason."""



@dataclass(frozen=True)
class ModelRef:
    """One model file a loader node names, and the volume folder the stock worker reads it from."""

    node_id: str
    class_type: str
    input_name: str
    file: str
    folder: str

    @property
    def expected_path(self) -> str:
        return f"models/{self.folder}/{self.file}"


def is_link(value: object) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int) and not isinstance(value[1], bool))


def links(workflow: Mapping) -> Iterator[tuple[str, str, str, int]]:
    """(node_id, input_name, source node id, output index) for every link in the graph."""
    for node_id, node in workflow.items():
        for name, value in (node.get("inputs") or {}).items():
            if is_link(value):
                yield node_id, name, value[0], value[1]


def structure_problems(workflow: object) -> list[str]:
    """Everything that keeps `workflow` from being a runnable API-format graph (empty list = fine)."""
    if not isinstance(workflow, dict):
        return [f"a workflow must be a JSON object of nodes, not {type(workflow).__name__}"]
    if looks_like_ui_format(workflow):
        return [UI_FORMAT_MESSAGE]
    if not workflow:
        return ["the workflow contains no nodes"]
    problems: list[str] = []
    for node_id, node in workflow.items():
        if not isinstance(node, dict):
            problems.append(f"node {node_id} is not an object with class_type and inputs")
            continue
        if not isinstance(node.get("class_type"), str) or not node["class_type"]:
            problems.append(f"node {node_id} has no class_type")
        if not isinstance(node.get("inputs"), dict):
            problems.append(f"node {node_id} ({node.get('class_type', '?')}) has no inputs object")
    if problems:
        return problems
    for node_id, name, source, index in links(workflow):
        if source not in workflow:
            problems.append(f"node {node_id} ({workflow[node_id]['class_type']}) input {name!r} "
                            f"links to node {source}, which is not in the workflow")
        elif index < 0:
            problems.append(f"node {node_id} input {name!r} links to output {index} of node {source}")
    classes = [node["class_type"] for node in workflow.values()]
    if OUTPUT_NODE not in classes:
        if "PreviewImage" in classes:
            problems.append("the workflow only has PreviewImage nodes; worker-comfyui skips preview "
                            "images, so replace them with SaveImage")
        else:
            problems.append("the workflow has no SaveImage node, so the worker would return no image")
    return problems


UI_FORMAT_MESSAGE = ("this is the UI format (it has \"nodes\" and \"links\" lists), which the worker "
                     "cannot run: in ComfyUI use Workflow → Export (API) (or Save (API Format)) and "
                     "upload that file")


def looks_like_ui_format(data: Mapping) -> bool:
    return isinstance(data.get("nodes"), list) and isinstance(data.get("links"), list)


def parse_uploaded_workflow(data: bytes) -> dict:
    """The API-format graph in an uploaded file, or WorkflowError saying exactly what is wrong.

    A RunPod request body (`{"input": {"workflow": ...}}`) or a ComfyUI /prompt body
    (`{"prompt": ...}`) is accepted too and unwrapped, since staff often copy one of those.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise WorkflowError("the file is not text (expected a .json workflow exported from ComfyUI)") from None
    if not text.strip():
        raise WorkflowError("the file is empty")
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkflowError(f"the file is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                            f"{exc.msg})") from None
    if isinstance(parsed, dict):
        inner = parsed.get("input")
        if isinstance(inner, dict) and isinstance(inner.get("workflow"), dict):
            parsed = inner["workflow"]
        elif isinstance(parsed.get("prompt"), dict) and "class_type" not in parsed:
            parsed = parsed["prompt"]
    problems = structure_problems(parsed)
    if problems:
        raise WorkflowError(problems)
    return parsed


def models_in_workflow(workflow: Mapping) -> list[ModelRef]:
    """Every model file named by a known loader node, in node order.

    A name fed by a link (e.g. from a primitive node) cannot be known before the run and is left out.
    """
    refs: list[ModelRef] = []
    for node_id, node in workflow.items():
        spec = LOADER_INPUTS.get(node.get("class_type", ""))
        if not spec:
            continue
        for input_name, folder in spec.items():
            value = (node.get("inputs") or {}).get(input_name)
            if not isinstance(value, str) or not value:
                continue
            if node["class_type"] == "VAELoader" and value in BUILTIN_VAE_NAMES:
                continue
            refs.append(ModelRef(node_id, node["class_type"], input_name, value, folder))
    return refs


def load_image_names(workflow: Mapping) -> list[tuple[str, str]]:
    """(node_id, file name) for every LoadImage node with a literal image name."""
    found = []
    for node_id, node in workflow.items():
        if node.get("class_type") == "LoadImage":
            name = (node.get("inputs") or {}).get("image")
            if isinstance(name, str):
                found.append((node_id, name))
    return found


def upstream(workflow: Mapping, node_id: str, input_name: str, through: tuple[str, ...] = ()) -> str | None:
    """The node feeding `node_id.input_name`, skipping pass-through nodes whose class is in `through`
    (following their first linked input)."""
    value = (workflow.get(node_id, {}).get("inputs") or {}).get(input_name)
    seen = set()
    while is_link(value) and value[0] in workflow and value[0] not in seen:
        source = value[0]
        seen.add(source)
        node = workflow[source]
        if node.get("class_type") not in through:
            return source
        value = next((v for v in (node.get("inputs") or {}).values() if is_link(v)), None)
    return None


_CONDITIONING_PASS = ("FluxGuidance", "ConditioningCombine", "ConditioningConcat",
                      "ConditioningSetTimestepRange", "ControlNetApplyAdvanced")


def suggest_param_map(workflow: Mapping) -> dict[str, list[list[str]]]:
    """A first guess at which node inputs receive the form's fields, for the "own workflow" mapper.

    Only fields it can find are returned; staff confirm or change the guess before saving.
    """
    result: dict[str, list[list[str]]] = {}

    def by_class(*classes: str) -> list[str]:
        return [nid for nid, node in workflow.items() if node.get("class_type") in classes]

    def add(key: str, node_id: str, input_name: str) -> None:
        if input_name in (workflow[node_id].get("inputs") or {}):
            result.setdefault(key, []).append([node_id, input_name])

    samplers = by_class(*SAMPLER_NODES)
    sampler = samplers[0] if samplers else None
    if sampler:
        node = workflow[sampler]
        add("seed", sampler, "noise_seed" if node["class_type"] == "KSamplerAdvanced" else "seed")
        add("steps", sampler, "steps")
        positive = upstream(workflow, sampler, "positive", _CONDITIONING_PASS)
        negative = upstream(workflow, sampler, "negative", _CONDITIONING_PASS)
        if positive and workflow[positive]["class_type"] == "CLIPTextEncode":
            add("prompt", positive, "text")
        # At cfg 1 ComfyUI skips the negative pass entirely (FLUX, Z-Image), so no field for it.
        uses_negative = node["inputs"].get("cfg") != 1
        if (uses_negative and negative and negative != positive
                and workflow[negative]["class_type"] == "CLIPTextEncode"):
            add("negative_prompt", negative, "text")
        latent = upstream(workflow, sampler, "latent_image")
        if latent and workflow[latent]["class_type"] in LATENT_NODES:
            for key in ("width", "height", "batch_size"):
                add(key, latent, key)
    if "prompt" not in result:
        encoders = by_class("CLIPTextEncode")
        if encoders:
            add("prompt", encoders[0], "text")
    guidance = by_class("FluxGuidance")
    if guidance:
        add("guidance", guidance[0], "guidance")
    elif sampler:
        add("guidance", sampler, "cfg")
    if "width" not in result:
        latents = by_class(*LATENT_NODES)
        if latents:
            for key in ("width", "height", "batch_size"):
                add(key, latents[0], key)
    loras = by_class(*LORA_LOADERS)
    if loras:
        add("lora_name", loras[0], "lora_name")
        add("lora_strength", loras[0], "strength_model")
        if workflow[loras[0]]["class_type"] == "LoraLoader":
            add("lora_strength", loras[0], "strength_clip")
    for save in by_class(OUTPUT_NODE):
        add("filename_prefix", save, "filename_prefix")
    return result


def bypass_nodes(workflow: dict, bypass: Mapping[str, Mapping[int, str]]) -> None:
    """Remove the nodes in `bypass` (in place), re-linking every consumer of output i of a removed
    node to whatever fed the input named `bypass[node][i]` — chains of removed nodes included."""

    def replacement(source: str, index: int, depth: int = 0) -> list:
        if source not in bypass:
            return [source, index]
        input_name = bypass[source].get(index)
        fed_by = (workflow[source].get("inputs") or {}).get(input_name) if input_name else None
        if not is_link(fed_by) or depth > len(bypass):
            raise WorkflowError(f"cannot remove node {source}: nothing to re-link its output {index} to")
        return replacement(fed_by[0], fed_by[1], depth + 1)

    for node_id, node in workflow.items():
        if node_id in bypass:
            continue
        inputs = node.get("inputs") or {}
        for name, value in list(inputs.items()):
            if is_link(value) and value[0] in bypass:
                inputs[name] = replacement(value[0], value[1])
    for node_id in bypass:
        workflow.pop(node_id, None)
