"""Simulated worker-comfyui with ReActor and PuLID-Flux baked in, for the `special` role.

It is the `image` role's simulated worker (lib/localpod/handlers/image.py: input checks, ComfyUI's
/prompt validation and wording, the graph runner, the procedural renderer and the output format)
plus the custom nodes the special endpoint's image bakes in:

* ``ReActorFaceSwap`` really swaps faces, on the CPU, with lib.localpod.comfy.faceswap_cv (OpenCV Haar detection
  and seamless cloning). When no face is found it returns the target unchanged, as ReActor does, and
  says so in worker-comfyui's non-fatal ``output.errors`` list (ReActor itself only logs it); see
  lib.localpod.comfy.faceswap_cv for why. Face restoration and gender filters are not simulated: the restorer is a
  no-op here and a gender filter other than "no" adds a warning that it was ignored.
* ``PulidFluxModelLoader``, ``PulidFluxInsightFaceLoader``, ``PulidFluxEvaClipLoader`` and
  ``ApplyPulidFlux`` (reference-guided character sheets) pass the model through; the decoded panel
  carries a thumbnail of the reference face so a demo shows which face guided it.

Custom-node inputs are validated here (required inputs, list values against the models "baked" into
this simulated image) and reported in ComfyUI's "Workflow validation failed" wording; the rest of the
graph goes through the image handler's validator with each custom node standing in as a core node
whose own inputs that validator does not check, so links, LoadImage names and volume models are
checked exactly as for the image role. An unknown class gets the image handler's text.
"""
from __future__ import annotations

import copy
import json

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lib.localpod.comfy.faceswap_cv import swap_faces
from lib.localpod.comfy.nodes import is_link, node_classes
from lib.localpod.handlers import JobContext, register

# The stock worker's simulation is reused as is; its helpers are module-private because only the
# simulated workers use them.
from lib.localpod.handlers import image as comfy

# Required inputs of the baked custom nodes (INPUT_TYPES "required" of Gourieff/ComfyUI-ReActor
# nodes.py and balazik/ComfyUI-PuLID-Flux pulidflux.py; worker-contracts §2.6).
CUSTOM_NODES: dict[str, tuple[str, ...]] = {
    "ReActorFaceSwap": ("enabled", "input_image", "swap_model", "facedetection", "face_restore_model",
                        "face_restore_visibility", "codeformer_weight", "detect_gender_input",
                        "detect_gender_source", "input_faces_index", "source_faces_index",
                        "console_log_level"),
    "PulidFluxModelLoader": ("pulid_file",),
    "PulidFluxInsightFaceLoader": ("provider",),
    "PulidFluxEvaClipLoader": (),
    "ApplyPulidFlux": ("model", "pulid_flux", "eva_clip", "face_analysis", "image", "weight", "start_at",
                       "end_at"),
}
# What the simulated image has baked in: the lists in the custom nodes' definitions.
CHOICES: dict[tuple[str, str], list] = {
    (cls, spec.name): spec.choices
    for cls in CUSTOM_NODES for spec in node_classes(custom_nodes=True)[cls].inputs if spec.choices is not None
}
# A core node the image handler knows but whose inputs it does not check (NODE_INPUTS value None);
# custom nodes take its class only while the rest of the graph is validated.
STAND_IN = "ImageBatch"
# Simulated GPU seconds of one swap: face analysis and the 128 px swap are quick, restoration less so
# (no published ReActor timing: an assumption of the right order).
SWAP_FIXED_S = 0.8
SWAP_PER_MP_S = 0.3
RESTORE_S = 0.7
THUMBNAIL = 0.22  # reference-face thumbnail, as a share of the panel's shorter side


@register("special")
def handle(job: dict, ctx: JobContext):
    validated, error = comfy._validate_input(job.get("input"))
    if error:
        return {"error": error}
    workflow, images = validated
    uploaded, upload_errors = comfy._upload(images or [])
    if upload_errors:
        return {"error": "Failed to upload one or more input images", "details": upload_errors}
    try:
        _check_custom_nodes(workflow)
        outputs = comfy._queue(_as_stock(workflow), uploaded, ctx.volume_dir)
    except comfy._Rejected as exc:
        return {"error": str(exc)}
    ctx.sleep(comfy.JOB_OVERHEAD_S)
    run = _SpecialRun(workflow, uploaded, ctx)
    saved: list[tuple[str, bytes]] = []
    errors: list[str] = []
    try:
        for node_id in outputs:
            saved += run.output(node_id)
    except comfy._ExecutionError as exc:
        errors.append(f"Workflow execution error: {exc}")
    return comfy._result(saved, run.warnings + errors, ctx)


def _nodes(workflow) -> list[tuple[str, dict]]:
    if not isinstance(workflow, dict):
        return []
    return [(nid, node) for nid, node in workflow.items() if isinstance(node, dict) and "class_type" in node]


def _check_custom_nodes(workflow) -> None:
    """Unknown classes, then the custom nodes' own inputs; raises comfy._Rejected with ComfyUI's text."""
    for node_id, node in _nodes(workflow):
        ct = node["class_type"]
        if ct not in comfy.NODE_INPUTS and ct not in CUSTOM_NODES:
            rejection = comfy._invalid_prompt(f"Cannot execute because node {ct} does not exist.", node_id)
            raise comfy._Rejected(f"Cannot execute because node {ct} does not exist.. "
                                  f"Raw response: {json.dumps(rejection)}")
    failing: dict[str, list[dict]] = {}
    for node_id, node in _nodes(workflow):
        ct = node["class_type"]
        if ct not in CUSTOM_NODES:
            continue
        inputs = node.get("inputs") or {}
        reasons = [{"type": "required_input_missing", "message": "Required input is missing",
                    "details": name, "extra_info": {"input_name": name}}
                   for name in CUSTOM_NODES[ct] if name not in inputs]
        for name, value in inputs.items():
            options = CHOICES.get((ct, name))
            if options is not None and not is_link(value) and value not in options:
                reasons.append({"type": "value_not_in_list", "message": "Value not in list",
                                "details": f"{name}: '{value}' not in {options}",
                                "extra_info": {"input_name": name, "input_config": (options, {}),
                                               "received_value": value}})
        if reasons:
            failing[node_id] = reasons
    if not failing:
        return
    outputs = [nid for nid, node in _nodes(workflow) if node["class_type"] in comfy.OUTPUT_CLASSES]
    lines = []
    for node_id, reasons in failing.items():
        dependent = [out for out in outputs if node_id in _upstream(workflow, out)]
        lines += [f"Node {node_id} (errors): {reasons}", f"Node {node_id} (dependent_outputs): {dependent}",
                  f"Node {node_id} (class_type): {workflow[node_id]['class_type']}"]
    raise comfy._Rejected("Workflow validation failed:\n" + "\n".join(f"• {line}" for line in lines))


def _upstream(workflow: dict, node_id: str) -> set[str]:
    seen, stack = set(), [node_id]
    while stack:
        current = stack.pop()
        if current in seen or current not in workflow:
            continue
        seen.add(current)
        stack += [v[0] for v in (workflow[current].get("inputs") or {}).values() if is_link(v)]
    return seen


def _as_stock(workflow):
    """The graph the image handler's validator sees: custom nodes replaced by the stand-in class."""
    if not isinstance(workflow, dict):
        return workflow
    stock = copy.deepcopy(workflow)
    for _, node in _nodes(stock):
        if node["class_type"] in CUSTOM_NODES:
            node["class_type"] = STAND_IN
    return stock


class _SpecialRun(comfy._Run):
    """The image handler's graph runner plus the custom nodes of the special image."""

    def __init__(self, workflow: dict, uploaded: dict[str, bytes], ctx: JobContext):
        super().__init__(workflow, uploaded, ctx)
        self.warnings: list[str] = []
        self.reference: Image.Image | None = None

    def execute(self, node_id: str) -> tuple:
        ct = self.workflow[node_id]["class_type"]
        if ct == "ReActorFaceSwap":
            return self.reactor(node_id)
        if ct in ("PulidFluxModelLoader", "PulidFluxInsightFaceLoader", "PulidFluxEvaClipLoader"):
            return (ct,)
        if ct == "ApplyPulidFlux":
            faces = self.arg(node_id, "image")
            self.reference = faces[0] if faces else None
            return (self.arg(node_id, "model"), faces)
        result = super().execute(node_id)
        if ct == "VAEDecode" and self.reference is not None:
            return ([_with_reference(im, self.reference) for im in result[0]],)
        return result

    def reactor(self, node_id: str) -> tuple:
        targets = self.arg(node_id, "input_image")
        if not self.arg(node_id, "enabled", True):
            return (targets, None, targets)
        where = f"ReActorFaceSwap (node {node_id})"
        sources = self.arg(node_id, "source_image")
        if not sources:
            self.warnings.append(f"{where}: no source image is connected; the target is returned unchanged")
            return (targets, None, targets)
        for field in ("detect_gender_input", "detect_gender_source"):
            if self.arg(node_id, field, "no") != "no":
                self.warnings.append(f"{where}: the simulator cannot tell faces' gender; "
                                     f"{field} = {self.arg(node_id, field)!r} was ignored")
        restore = self.arg(node_id, "face_restore_model", "none") != "none"
        source = np.asarray(sources[0].convert("RGB"))
        swapped = []
        for i, target in enumerate(targets):
            megapixels = target.width * target.height / 1e6
            self.ctx.sleep(SWAP_FIXED_S + SWAP_PER_MP_S * megapixels)
            try:
                result = swap_faces(source, np.asarray(target.convert("RGB")),
                                    source_faces_index=self.arg(node_id, "source_faces_index", "0"),
                                    input_faces_index=self.arg(node_id, "input_faces_index", "0"))
            except ValueError as exc:
                raise comfy._ExecutionError(node_id, "ReActorFaceSwap", str(exc)) from None
            if restore and result.swapped:
                self.ctx.sleep(RESTORE_S * len(result.swapped))
            self.warnings += [f"{where}: {warning}" for warning in result.warnings]
            swapped.append(Image.fromarray(result.image))
            self.ctx.progress({"step": i + 1, "total": len(targets)})
        return (swapped, None, targets)


def _with_reference(panel: Image.Image, face: Image.Image) -> Image.Image:
    """The panel with the reference face inset top-right, framed and labelled."""
    out = panel.copy()
    side = max(24, round(min(out.size) * THUMBNAIL))
    thumb = face.convert("RGB").copy()
    thumb.thumbnail((side, side), Image.Resampling.LANCZOS)
    x, y = out.width - thumb.width - side // 8, side // 8
    draw = ImageDraw.Draw(out)
    draw.rectangle((x - 3, y - 3, x + thumb.width + 2, y + thumb.height + 2), fill=(255, 255, 255))
    out.paste(thumb, (x, y))
    size = max(10, side // 8)
    draw.text((x, y + thumb.height + 4), "reference face", font=ImageFont.load_default(size=size),
              fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    return out
