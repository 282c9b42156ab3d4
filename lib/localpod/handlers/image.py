"""Simulated worker-comfyui (≥ 5.x, stock `base` image) for the `image` role.

It follows the real worker's contract closely enough that the console cannot tell them apart
(reference worker-contracts §1.2, §1.3, §1.9; the wording below is copied from worker-comfyui's
handler.py and ComfyUI's /prompt validation):

* input is an object or a JSON string; `workflow` is required; `images` is a list of {name, image};
* the graph is validated like ComfyUI's /prompt: an unknown class_type fails with "Cannot execute
  because node X does not exist.. Raw response: {...}"; a model file that is not in its folder under
  <volume>/models/<folder>/ fails with "Workflow validation failed: • Node N (errors):
  [{'type': 'value_not_in_list', ...}]" listing what is available; a LoadImage name not sent in
  `images` fails validation too. Only the folders of the stock extra_model_paths.yaml are scanned
  (models/unet and models/clip, never models/diffusion_models or models/text_encoders), and the
  `base` image bakes no model of its own;
* sampling takes simulated time from steps × megapixels × batch per model family — Z-Image Turbo
  fastest, then SDXL, FLUX.1-dev slowest (reference §4) — spent with ctx.sleep and reported with
  ctx.progress({"step", "total"}); a batch too large for a 24 GB card fails like a CUDA OOM;
* every SaveImage yields one PNG per batch item, named "<prefix>_<counter:05>_.png", with procedural
  art that is a pure function of (model, seed, prompt, LoRA and strength, size, batch index) and the
  prompt and parameters printed on it; a LoRA tints and patterns the picture in proportion to its
  strength, so strength grids visibly differ. The PNG carries the workflow as ComfyUI's "prompt"
  text chunk.

Bucket output: like the real worker, when the worker's environment has BUCKET_ENDPOINT_URL set
(for the simulator: the environment of the process running localpod) images are not returned as
base64 but "uploaded" — written to <volume>/outputs/<job id>/<filename> — and returned as
{"type": "s3_url", "data": "file:///…"}; the console's output fetcher reads file:// URLs only
inside the simulator's volume.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import math
import os
import textwrap
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import (
    Image,
    ImageDraw,
    ImageFont,
    ImageOps,
    PngImagePlugin,
    UnidentifiedImageError,
)

from lib.localpod.comfy.nodes import is_link
from lib.localpod.handlers import JobContext, register

COMFY_INPUT_DIR = "/comfyui/input"
MODEL_EXTENSIONS = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
# Folders of worker-comfyui's src/extra_model_paths.yaml (reference §1.7).
SCANNED_FOLDERS = ("checkpoints", "clip", "clip_vision", "configs", "controlnet", "embeddings",
                   "loras", "upscale_models", "vae", "unet")
OUTPUT_CLASSES = {"SaveImage": "output", "PreviewImage": "temp"}
# Model-file inputs → the folder under <volume>/models/ where the stock worker finds their files
# (its extra_model_paths.yaml maps unet and clip, ComfyUI's legacy names; reference §1.7).
VOLUME_FOLDER_OF_INPUT = {"ckpt_name": "checkpoints", "unet_name": "unet", "clip_name": "clip",
                          "clip_name1": "clip", "clip_name2": "clip", "clip_name3": "clip",
                          "vae_name": "vae", "lora_name": "loras", "control_net_name": "controlnet"}
VOLUME_FOLDER_OF_CLASS_INPUT = {("UpscaleModelLoader", "model_name"): "upscale_models",
                                ("CLIPVisionLoader", "clip_name"): "clip_vision"}

# Core ComfyUI nodes the simulated server knows, with their required inputs (None: not checked).
# Anything else is treated like a custom node that is not installed, as on the stock image.
NODE_INPUTS: dict[str, tuple[str, ...] | None] = {
    "CheckpointLoaderSimple": ("ckpt_name",),
    "UNETLoader": ("unet_name", "weight_dtype"),
    "CLIPLoader": ("clip_name", "type"),
    "DualCLIPLoader": ("clip_name1", "clip_name2", "type"),
    "TripleCLIPLoader": ("clip_name1", "clip_name2", "clip_name3"),
    "VAELoader": ("vae_name",),
    "LoraLoader": ("model", "clip", "lora_name", "strength_model", "strength_clip"),
    "LoraLoaderModelOnly": ("model", "lora_name", "strength_model"),
    "CLIPTextEncode": ("text", "clip"),
    "ConditioningZeroOut": ("conditioning",),
    "ConditioningCombine": ("conditioning_1", "conditioning_2"),
    "FluxGuidance": ("conditioning", "guidance"),
    "ModelSamplingAuraFlow": ("model", "shift"),
    "EmptyLatentImage": ("width", "height", "batch_size"),
    "EmptySD3LatentImage": ("width", "height", "batch_size"),
    "KSampler": ("model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive",
                 "negative", "latent_image", "denoise"),
    "KSamplerAdvanced": ("model", "add_noise", "noise_seed", "steps", "cfg", "sampler_name",
                         "scheduler", "positive", "negative", "latent_image", "start_at_step",
                         "end_at_step", "return_with_leftover_noise"),
    "VAEDecode": ("samples", "vae"),
    "VAEEncode": ("pixels", "vae"),
    "SaveImage": ("images", "filename_prefix"),
    "PreviewImage": ("images",),
    "LoadImage": ("image",),
    "ImageInvert": ("image",),
    "ImageScale": ("image", "upscale_method", "width", "height", "crop"),
    "ControlNetLoader": ("control_net_name",),
    "ControlNetApplyAdvanced": ("positive", "negative", "control_net", "image", "strength",
                                "start_percent", "end_percent"),
    "UpscaleModelLoader": ("model_name",),
    "ImageUpscaleWithModel": ("upscale_model", "image"),
    "CLIPVisionLoader": ("clip_name",),
    "CLIPVisionEncode": ("clip_vision", "image", "crop"),
    "CLIPSetLastLayer": ("clip", "stop_at_clip_layer"),
    "ModelSamplingFlux": None, "ModelSamplingSD3": None, "ConditioningConcat": None,
    "ConditioningSetTimestepRange": None, "ConditioningAverage": None, "CLIPTextEncodeSDXL": None,
    "CLIPTextEncodeFlux": None, "LatentUpscale": None, "LatentUpscaleBy": None,
    "RepeatLatentBatch": None, "SetLatentNoiseMask": None, "VAEDecodeTiled": None,
    "ImageScaleBy": None, "ImageCrop": None, "ImageBatch": None, "ImageBlur": None,
    "ImageSharpen": None, "StyleModelLoader": None, "StyleModelApply": None,
}

# (class, input) → (min, max), ComfyUI's widget limits.
NUMBER_LIMITS: dict[tuple[str, str], tuple[float, float]] = {
    ("KSampler", "seed"): (0, 0xFFFFFFFFFFFFFFFF), ("KSampler", "steps"): (1, 10000),
    ("KSampler", "cfg"): (0.0, 100.0), ("KSampler", "denoise"): (0.0, 1.0),
    ("EmptyLatentImage", "width"): (16, 16384), ("EmptyLatentImage", "height"): (16, 16384),
    ("EmptyLatentImage", "batch_size"): (1, 4096),
    ("EmptySD3LatentImage", "width"): (16, 16384), ("EmptySD3LatentImage", "height"): (16, 16384),
    ("EmptySD3LatentImage", "batch_size"): (1, 4096),
    ("LoraLoader", "strength_model"): (-100.0, 100.0), ("LoraLoader", "strength_clip"): (-100.0, 100.0),
    ("LoraLoaderModelOnly", "strength_model"): (-100.0, 100.0),
    ("FluxGuidance", "guidance"): (0.0, 100.0),
}


@dataclass(frozen=True)
class Family:
    name: str
    fixed_s: float       # text encoding, VAE decode, model bookkeeping per sampler run
    step_mp_s: float     # seconds per sampling step per megapixel of latent (whole batch)
    max_batch_mp: float  # beyond this the simulated 24 GB GPU runs out of memory


# Orders of magnitude from reference §4: FLUX.1-dev ≈1.7 it/s at 1 MP on an RTX 4090 (≈12 s for
# 20 steps); Z-Image Turbo is "sub-second" on an H800 with 8 steps, a few seconds on a 4090-class
# card; SDXL sits between (no sourced figure, so its rate is an assumption kept in that order).
FAMILIES = {
    "z-image": Family("z-image", 0.4, 0.19, 10.0),
    "sdxl": Family("sdxl", 0.6, 0.12, 12.0),
    "flux": Family("flux", 1.0, 0.55, 8.5),
}
JOB_OVERHEAD_S = 0.3  # queueing on ComfyUI, websocket, history and image fetch
PROGRESS_UPDATES = 4

# ComfyUI numbers files after those already in its output folder, which lives as long as the
# worker: (simulator volume, worker id, prefix) → last number used.
_counters: dict[tuple[str, str, str], int] = {}
_counters_lock = threading.Lock()


class _Rejected(Exception):
    """ComfyUI answered /prompt with 400; the message is what worker-comfyui puts in `error`."""


class _ExecutionError(Exception):
    def __init__(self, node_id: str, node_type: str, message: str):
        super().__init__(f"Node Type: {node_type}, Node ID: {node_id}, Message: {message}")


@dataclass(frozen=True)
class _Model:
    name: str
    family: str
    loras: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class _Cond:
    text: str
    guidance: float | None = None


@dataclass(frozen=True)
class _Latent:
    width: int
    height: int
    batch: int


@dataclass(frozen=True)
class _Sampled:
    model: _Model
    positive: _Cond
    latent: _Latent
    seed: int
    steps: int
    cfg: float
    sampler: str
    scheduler: str


@register("image")
def handle(job: dict, ctx: JobContext):
    validated, error = _validate_input(job.get("input"))
    if error:
        return {"error": error}
    workflow, images = validated
    uploaded, upload_errors = _upload(images or [])
    if upload_errors:
        return {"error": "Failed to upload one or more input images", "details": upload_errors}
    try:
        outputs = _queue(workflow, uploaded, ctx.volume_dir)
    except _Rejected as exc:
        return {"error": str(exc)}
    ctx.sleep(JOB_OVERHEAD_S)
    run = _Run(workflow, uploaded, ctx)
    saved: list[tuple[str, bytes]] = []
    errors: list[str] = []
    try:
        for node_id in outputs:
            saved += run.output(node_id)
    except _ExecutionError as exc:
        errors.append(f"Workflow execution error: {exc}")
    return _result(saved, errors, ctx)


def _validate_input(job_input) -> tuple[tuple[dict, list | None] | None, str | None]:
    if job_input is None:
        return None, "Please provide input"
    if isinstance(job_input, str):
        try:
            job_input = json.loads(job_input)
        except json.JSONDecodeError:
            return None, "Invalid JSON format in input"
    if not isinstance(job_input, dict):
        # worker-comfyui calls .get() here and crashes; the SDK then reports the exception.
        raise AttributeError(f"'{type(job_input).__name__}' object has no attribute 'get'")
    workflow = job_input.get("workflow")
    if workflow is None:
        return None, "Missing 'workflow' parameter"
    images = job_input.get("images")
    if images is not None:
        if not isinstance(images, list) or not all(
                isinstance(image, dict) and "name" in image and "image" in image for image in images):
            return None, "'images' must be a list of objects with 'name' and 'image' keys"
    return (workflow, images), None


def _upload(images: list[dict]) -> tuple[dict[str, bytes], list[str]]:
    uploaded, errors = {}, []
    for image in images:
        name, data = str(image["name"]), str(image["image"])
        if "," in data:
            data = data.split(",", 1)[1]
        try:
            uploaded[name] = base64.b64decode(data)
        except (binascii.Error, ValueError) as exc:
            errors.append(f"Error decoding base64 for {name}: {exc}")
    return uploaded, errors


# ---------------------------------------------------------------------------------------------
# /prompt validation, as ComfyUI does it, and worker-comfyui's rendering of the 400 answer


def _model_lists(volume_dir: Path) -> dict[str, list[str]]:
    lists = {}
    for folder in SCANNED_FOLDERS:
        base = Path(volume_dir) / "models" / folder
        names = []
        if base.is_dir():
            for path in base.rglob("*"):
                if path.is_file() and path.suffix.lower() in MODEL_EXTENSIONS:
                    names.append(path.relative_to(base).as_posix())
        lists[folder] = sorted(names)
    return lists


def _bad_request(error: dict, node_errors: dict) -> dict:
    return {"error": error, "node_errors": node_errors}


def _invalid_prompt(message: str, node_id: str) -> dict:
    return _bad_request({"type": "invalid_prompt", "message": message,
                         "details": f"Node ID '#{node_id}'", "extra_info": {}}, {})


def _validate_prompt(workflow: dict, uploaded: dict[str, bytes],
                     models: dict[str, list[str]]) -> tuple[list[str], dict | None]:
    """(outputs that validated, 400 body or None) — ComfyUI's execution.validate_prompt."""
    for node_id, node in workflow.items():
        if not isinstance(node, dict) or "class_type" not in node:
            return [], _invalid_prompt("Cannot execute because a node is missing the class_type property.",
                                       node_id)
        if node["class_type"] not in NODE_INPUTS:
            return [], _invalid_prompt(f"Cannot execute because node {node['class_type']} does not exist.",
                                       node_id)
    outputs = [nid for nid, node in workflow.items() if node["class_type"] in OUTPUT_CLASSES]
    if not outputs:
        return [], _bad_request({"type": "prompt_no_outputs", "message": "Prompt has no outputs",
                                 "details": "", "extra_info": {}}, {})
    validated: dict[str, tuple[bool, list]] = {}
    good, errors, node_errors = [], [], {}
    for output in outputs:
        valid, reasons = _validate_node(workflow, output, validated, uploaded, models)
        if valid:
            good.append(output)
            continue
        errors.append((output, reasons))
        # ComfyUI attaches every failing node seen so far to this output, with its reasons.
        for node_id, (ok, node_reasons) in validated.items():
            if not ok and node_reasons:
                if node_id not in node_errors:
                    node_errors[node_id] = {"errors": node_reasons, "dependent_outputs": [],
                                            "class_type": workflow[node_id]["class_type"]}
                node_errors[node_id]["dependent_outputs"].append(output)
    if not good:
        details = "\n".join(f"{e['message']}: {e['details']}" for _, reasons in errors for e in reasons)
        return [], _bad_request({"type": "prompt_outputs_failed_validation",
                                 "message": "Prompt outputs failed validation", "details": details,
                                 "extra_info": {}}, node_errors)
    return good, None


def _validate_node(workflow: dict, node_id: str, validated: dict, uploaded: dict[str, bytes],
                   models: dict[str, list[str]]) -> tuple[bool, list]:
    if node_id in validated:
        return validated[node_id]
    node = workflow[node_id]
    class_type = node["class_type"]
    inputs = node.get("inputs") or {}
    valid, reasons = True, []
    for name in NODE_INPUTS[class_type] or ():
        if name not in inputs:
            reasons.append({"type": "required_input_missing", "message": "Required input is missing",
                            "details": name, "extra_info": {"input_name": name}})
            valid = False
    for name, value in inputs.items():
        if is_link(value):
            source = value[0]
            if source not in workflow:
                # ComfyUI looks the source up unguarded; the KeyError becomes this reason.
                reasons.append({"type": "exception_during_validation",
                                "message": "Exception when validating node", "details": repr(source),
                                "extra_info": {"exception_type": "KeyError", "traceback": []}})
                valid = False
                continue
            ok, _ = _validate_node(workflow, source, validated, uploaded, models)
            valid = valid and ok
            continue
        folder = VOLUME_FOLDER_OF_CLASS_INPUT.get((class_type, name)) or (
            VOLUME_FOLDER_OF_INPUT.get(name) if "Loader" in class_type else None)
        if folder:
            options = models.get(folder, [])
            if class_type == "VAELoader":
                options = options + ["pixel_space"]
            if value not in options:
                long_list = len(options) > 20
                reasons.append({
                    "type": "value_not_in_list", "message": "Value not in list",
                    "details": f"{name}: '{value}' not in "
                               f"{f'(list of length {len(options)})' if long_list else str(options)}",
                    "extra_info": {"input_name": name, "input_config": None if long_list else (options, {}),
                                   "received_value": value}})
                valid = False
            continue
        if class_type == "LoadImage" and name == "image" and value not in uploaded:
            reasons.append({"type": "custom_validation_failed", "message": "Custom validation failed for node",
                            "details": f"image - Invalid image file: {value}", "extra_info": {}})
            valid = False
            continue
        limits = NUMBER_LIMITS.get((class_type, name))
        if limits:
            reason = _number_reason(name, value, limits)
            if reason:
                reasons.append(reason)
                valid = False
    validated[node_id] = (valid, reasons)
    return valid, reasons


def _number_reason(name: str, value, limits: tuple[float, float]) -> dict | None:
    lo, hi = limits
    kind = "INT" if isinstance(lo, int) else "FLOAT"
    try:
        number = int(value) if kind == "INT" else float(value)
    except (TypeError, ValueError) as exc:
        return {"type": "invalid_input_type",
                "message": f"Failed to convert an input value to a {kind} value",
                "details": f"{name}, {value}, {exc}",
                "extra_info": {"input_name": name, "received_value": value, "exception_message": str(exc)}}
    extra = {"input_name": name, "input_config": None, "received_value": value}
    if number < lo:
        return {"type": "value_smaller_than_min", "message": f"Value {number} smaller than min of {lo}",
                "details": name, "extra_info": extra}
    if number > hi:
        return {"type": "value_bigger_than_max", "message": f"Value {number} bigger than max of {hi}",
                "details": name, "extra_info": extra}
    return None


def _queue(workflow, uploaded: dict[str, bytes], volume_dir: Path) -> list[str]:
    """worker-comfyui's queue_workflow: POST /prompt, and a 400 rendered into its error text."""
    if not isinstance(workflow, dict):
        # ComfyUI's validate_prompt crashes on a non-object prompt (HTTP 500); the worker reports it so.
        raise _Rejected("HTTP communication error with ComfyUI: 500 Server Error: Internal Server Error "
                        "for url: http://127.0.0.1:8188/prompt")
    models = _model_lists(volume_dir)
    good, rejection = _validate_prompt(workflow, uploaded, models)
    if rejection is None:
        return good
    error_info = rejection["error"]
    message = error_info.get("message", "Workflow validation failed")
    if error_info.get("type") == "prompt_outputs_failed_validation":
        message = "Workflow validation failed"
    details = []
    for node_id, node_error in rejection["node_errors"].items():
        for kind, value in node_error.items():
            details.append(f"Node {node_id} ({kind}): {value}")
    if not details:
        raise _Rejected(f"{message}. Raw response: {json.dumps(rejection)}")
    text = f"{message}:\n" + "\n".join(f"• {detail}" for detail in details)
    if any("not in list" in d and "ckpt_name" in d for d in details):
        if models["checkpoints"]:
            text += f"\n\nAvailable checkpoint models: {', '.join(models['checkpoints'])}"
        else:
            text += "\n\nNo checkpoint models appear to be available. Please check your model installation."
    raise _Rejected(text)


# ---------------------------------------------------------------------------------------------
# Execution


def _family(model_name: str, class_type: str) -> str:
    lowered = model_name.lower()
    if "z_image" in lowered or "z-image" in lowered or "zimage" in lowered:
        return "z-image"
    if "flux" in lowered:
        return "flux"
    return "sdxl" if class_type == "CheckpointLoaderSimple" else "flux"


class _Run:
    """Evaluates the graph node by node (memoised), spending simulated time in samplers."""

    def __init__(self, workflow: dict, uploaded: dict[str, bytes], ctx: JobContext):
        self.workflow = workflow
        self.uploaded = uploaded
        self.ctx = ctx
        self.cache: dict[str, tuple] = {}

    def value(self, link: list):
        node_id, index = link
        if node_id not in self.cache:
            self.cache[node_id] = self.execute(node_id)
        results = self.cache[node_id]
        return results[index] if index < len(results) else results[0]

    def arg(self, node_id: str, name: str, default=None):
        value = (self.workflow[node_id].get("inputs") or {}).get(name, default)
        return self.value(value) if is_link(value) else value

    def output(self, node_id: str) -> list[tuple[str, bytes]]:
        node = self.workflow[node_id]
        images = self.arg(node_id, "images")
        if OUTPUT_CLASSES[node["class_type"]] == "temp":
            return []  # worker-comfyui skips PreviewImage results
        prefix = str(self.arg(node_id, "filename_prefix", "ComfyUI"))
        subfolder, _, base = prefix.rpartition("/")
        files = []
        for image in images:
            with _counters_lock:
                key = (str(self.ctx.volume_dir), self.ctx.worker_id, prefix)
                _counters[key] = _counters.get(key, 0) + 1
                counter = _counters[key]
            files.append((f"{base}_{counter:05}_.png", _png(image, self.workflow)))
        return files

    def execute(self, node_id: str) -> tuple:
        node = self.workflow[node_id]
        ct = node["class_type"]
        if ct == "CheckpointLoaderSimple":
            name = self.arg(node_id, "ckpt_name")
            return (_Model(name, _family(name, ct)), "clip", "vae")
        if ct == "UNETLoader":
            name = self.arg(node_id, "unet_name")
            return (_Model(name, _family(name, ct)),)
        if ct in ("LoraLoader", "LoraLoaderModelOnly"):
            model = self.arg(node_id, "model")
            lora = (self.arg(node_id, "lora_name"), float(self.arg(node_id, "strength_model")))
            if isinstance(model, _Model):
                model = replace(model, loras=model.loras + (lora,))
            return (model, self.arg(node_id, "clip") if ct == "LoraLoader" else None)
        if ct == "CLIPTextEncode":
            return (_Cond(str(self.arg(node_id, "text"))),)
        if ct == "FluxGuidance":
            return (replace(self.arg(node_id, "conditioning"), guidance=float(self.arg(node_id, "guidance"))),)
        if ct == "ConditioningZeroOut":
            return (_Cond(""),)
        if ct == "ConditioningCombine":
            first, second = self.arg(node_id, "conditioning_1"), self.arg(node_id, "conditioning_2")
            return (_Cond(" | ".join(t for t in (first.text, second.text) if t), first.guidance),)
        if ct in ("EmptyLatentImage", "EmptySD3LatentImage"):
            return (_Latent(int(self.arg(node_id, "width")), int(self.arg(node_id, "height")),
                            int(self.arg(node_id, "batch_size"))),)
        if ct in ("KSampler", "KSamplerAdvanced"):
            return (self.sample(node_id),)
        if ct == "VAEDecode":
            samples = self.arg(node_id, "samples")
            if isinstance(samples, _Sampled):
                return (_decode(samples),)
            return (samples,)
        if ct == "LoadImage":
            name = self.arg(node_id, "image")
            try:
                image = ImageOps.exif_transpose(Image.open(io.BytesIO(self.uploaded[name]))).convert("RGB")
            except (UnidentifiedImageError, OSError):
                raise _ExecutionError(node_id, ct, f"cannot identify image file "
                                                   f"'{COMFY_INPUT_DIR}/{name}'") from None
            return ([image], None)
        if ct == "ImageInvert":
            return ([ImageOps.invert(im) for im in self.arg(node_id, "image")],)
        if ct == "ImageScale":
            size = (int(self.arg(node_id, "width")), int(self.arg(node_id, "height")))
            return ([im.resize(size, Image.Resampling.BICUBIC) for im in self.arg(node_id, "image")],)
        # Other known nodes pass their first linked input through (MODEL, CLIP, IMAGE alike).
        for value in (node.get("inputs") or {}).values():
            if is_link(value):
                return (self.value(value),)
        return (None,)

    def sample(self, node_id: str) -> _Sampled:
        ct = self.workflow[node_id]["class_type"]
        model = self.arg(node_id, "model")
        if not isinstance(model, _Model):
            model = _Model("unknown model", "sdxl")
        latent = self.arg(node_id, "latent_image")
        if not isinstance(latent, _Latent):
            latent = _Latent(1024, 1024, 1)  # img2img from a decoded image: size unknown here
        positive = self.arg(node_id, "positive")
        seed = int(self.arg(node_id, "noise_seed" if ct == "KSamplerAdvanced" else "seed"))
        steps = int(self.arg(node_id, "steps"))
        family = FAMILIES[model.family]
        megapixels = latent.width * latent.height * latent.batch / 1e6
        if megapixels > family.max_batch_mp:
            # ComfyUI's wording for a torch OOM (execution.py appends these tips).
            self.ctx.sleep(family.fixed_s)
            raise _ExecutionError(node_id, ct, (
                f"CUDA out of memory. Tried to allocate {megapixels * 0.9:.2f} GiB. GPU 0 has a total "
                f"capacity of 23.55 GiB of which 1.12 GiB is free.\nThis error means you ran out of "
                f"memory on your GPU.\n\nTIPS: If the workflow worked before you might have "
                f"accidentally set the batch_size to a large number."))
        seconds = family.fixed_s + family.step_mp_s * steps * megapixels
        updates = max(1, min(PROGRESS_UPDATES, steps))
        for i in range(1, updates + 1):
            self.ctx.sleep(seconds / updates)
            self.ctx.progress({"step": round(steps * i / updates), "total": steps})
        return _Sampled(model, positive if isinstance(positive, _Cond) else _Cond(""), latent, seed,
                        steps, float(self.arg(node_id, "cfg")), str(self.arg(node_id, "sampler_name")),
                        str(self.arg(node_id, "scheduler")))


def _result(saved: list[tuple[str, bytes]], errors: list[str], ctx: JobContext) -> dict:
    images = []
    bucket = os.environ.get("BUCKET_ENDPOINT_URL")
    for filename, data in saved:
        if bucket:
            folder = ctx.volume_dir / "outputs" / ctx.job_id
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / filename
            path.write_bytes(data)
            images.append({"filename": filename, "type": "s3_url", "data": path.resolve().as_uri()})
        else:
            images.append({"filename": filename, "type": "base64",
                           "data": base64.b64encode(data).decode("ascii")})
    if not images and errors:
        return {"error": "Job processing failed", "details": errors}
    result: dict = {}
    if images:
        result["images"] = images
    if errors:
        result["errors"] = errors
    if not images:
        result.update(status="success_no_images", images=[])
    return result


# ---------------------------------------------------------------------------------------------
# Procedural "generated" pictures


def _seed_of(*parts) -> int:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _decode(s: _Sampled) -> list[Image.Image]:
    return [_picture(s, index) for index in range(s.latent.batch)]


def _vivid(rng: np.random.Generator) -> np.ndarray:
    """A saturated colour: a random hue at high saturation and brightness."""
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0.55, 0.9), rng.uniform(0.6, 0.95)
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6) % 6
    return (val - val * sat * np.clip(np.minimum(k, 4 - k), 0, 1)).astype(np.float32)


def _picture(s: _Sampled, index: int) -> Image.Image:
    width, height = s.latent.width, s.latent.height
    scale = 256 / max(width, height)
    sw, sh = max(8, round(width * scale)), max(8, round(height * scale))
    rng = np.random.default_rng(_seed_of(s.model.name, s.seed, s.positive.text, width, height, index))
    ys, xs = np.mgrid[0:sh, 0:sw].astype(np.float32)
    xs, ys = xs / max(sw, sh), ys / max(sw, sh)
    angle = rng.uniform(0, 2 * math.pi)
    t = np.clip((xs * math.cos(angle) + ys * math.sin(angle)) * 0.8 + 0.4, 0, 1)[..., None]
    art = _vivid(rng) * 0.55 * (1 - t) + _vivid(rng) * 0.55 * t
    for _ in range(7):
        cx, cy = rng.uniform(0, sw / max(sw, sh)), rng.uniform(0, sh / max(sw, sh))
        radius = rng.uniform(0.05, 0.22)
        glow = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * radius**2))[..., None]
        art = art * (1 - 0.85 * glow) + _vivid(rng) * 0.85 * glow
    for name, strength in s.model.loras:
        if strength:
            art = _lora_motif(art, xs, ys, name, strength)
    pixels = (np.clip(art, 0, 1) * 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    _caption(image, s, index)
    return image


def _lora_motif(art: np.ndarray, xs: np.ndarray, ys: np.ndarray, name: str, strength: float) -> np.ndarray:
    """The LoRA's "character": a disc in its own colour with rings around it, larger, denser and
    more opaque as the strength grows (a negative strength inverts the colour)."""
    rng = np.random.default_rng(_seed_of("lora", name))
    colour = _vivid(rng)
    if strength < 0:
        colour = 1 - colour
    amount = min(abs(strength), 2.0) / 2.0
    cx, cy = rng.uniform(0.35, 0.65, 2)
    distance = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)[..., None]
    radius = 0.08 + 0.08 * amount
    disc = np.clip((radius - distance) / 0.015, 0, 1)
    frequency = rng.uniform(6, 9) * (0.6 + amount)
    rings = (0.5 + 0.5 * np.cos((distance - radius) * frequency * 2 * math.pi)) * np.exp(-distance * 2.5)
    art = art * (1 - 0.3 * amount) + colour * 0.3 * amount
    art = art * (1 - 0.7 * amount * rings) + colour * 0.7 * amount * rings
    return art * (1 - (0.2 + 0.7 * amount) * disc) + colour * (0.2 + 0.7 * amount) * disc


def _caption(image: Image.Image, s: _Sampled, index: int) -> None:
    width, height = image.size
    size = max(11, min(width, height) // 40)
    font = ImageFont.load_default(size=size)
    chars = max(20, int(width / (size * 0.55)))
    lines = textwrap.wrap(s.positive.text or "(empty prompt)", chars)[:4]
    guidance = f" · guidance {s.positive.guidance:g}" if s.positive.guidance is not None else ""
    lines.append(f"{Path(s.model.name).stem} · seed {s.seed}"
                 + (f" #{index + 1}/{s.latent.batch}" if s.latent.batch > 1 else "")
                 + f" · {s.steps} steps · cfg {s.cfg:g}{guidance} · {width}x{height}")
    lines += [f"LoRA {Path(name).stem} @ {strength:g}" for name, strength in s.model.loras] or ["no LoRA"]
    line_height = int(size * 1.3)
    panel = min(height, line_height * len(lines) + size)
    box = (0, height - panel, width, height)
    # Darken only the caption strip, then write on it.
    image.paste(Image.blend(image.crop(box), Image.new("RGB", (width, panel)), 0.6), box)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((size // 2, height - panel + size // 2 + i * line_height), line, font=font, fill=(255, 255, 255))


def _png(image: Image.Image, workflow: dict) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(workflow))  # as ComfyUI's SaveImage does
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=info, compress_level=4)
    return buffer.getvalue()
