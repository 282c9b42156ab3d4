"""Reference-image generation on the ``special`` endpoint: IP-Adapter on SDXL (ComfyUI_IPAdapter_plus).

A staff member uploads a reference — a picture whose style to borrow, or a portrait whose face to
keep — writes a prompt, optionally picks an SDXL character LoRA, and sets how strongly (weight) and
during which part of the sampling (start/end, fractions of the steps) the reference acts. Each image
is its own job with consecutive seeds. Three modes:

* ``style`` — IPAdapterUnifiedLoader preset "PLUS (high strength)", weight type "style transfer";
* ``face`` — preset "PLUS FACE (portraits)", weight type "linear";
* ``faceid`` — IPAdapterUnifiedLoaderFaceID "FACEID PLUS V2" + IPAdapterFaceID: needs InsightFace in
  the worker image (templates/reference_faceid_sdxl.json says what to bake).
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lib.special.common import (
    ROLE,
    PlannedJob,
    SpecialInputError,
    Started,
    Upload,
    job_error,
    job_payload,
    preflight_and_submit,
    tag,
    with_one_image,
)
from lib.special.sheets import PanelView
from lib.workflows.payload import PROMPT_MAX_CHARS
from lib.workflows.templates import load_template

if TYPE_CHECKING:
    from lib.services import Services

KIND = "reference"
MAX_IMAGES = 8
WEIGHT_RANGE = (0.0, 2.0)  # inside both nodes' ranges (IPAdapterAdvanced −1…5, IPAdapterFaceID −1…3)
APPLY_NODES = ("IPAdapterAdvanced", "IPAdapterFaceID")
LOADER_NODES = ("IPAdapterUnifiedLoader", "IPAdapterUnifiedLoaderFaceID")

FACEID_LICENCE = ("FaceID uses InsightFace's buffalo_l face models and IP-Adapter-FaceID weights, both released "
                  "for non-commercial research only.")


@dataclass(frozen=True)
class ReferenceMode:
    label: str
    template: str
    preset: str
    weight_type: str
    licence: str | None = None


MODES = {
    "style": ReferenceMode("Style of the reference picture", "reference_ipadapter_sdxl", "PLUS (high strength)",
                           "style transfer"),
    "face": ReferenceMode("Face of the reference portrait", "reference_ipadapter_sdxl", "PLUS FACE (portraits)",
                          "linear"),
    "faceid": ReferenceMode("Face identity (FaceID, needs InsightFace on the worker)", "reference_faceid_sdxl",
                            "FACEID PLUS V2", "linear", FACEID_LICENCE),
}


@dataclass(frozen=True)
class ReferenceRequest:
    prompt: str
    reference: Upload = field(repr=False)
    mode: str = "style"
    weight: float = 0.8
    start_at: float = 0.0
    end_at: float = 1.0
    seed: int = 0
    count: int = 1
    negative_prompt: str = ""
    lora_name: str | None = None
    lora_strength: float = 1.0


@dataclass(frozen=True)
class ReferencePlan:
    batch_id: str
    jobs: tuple[PlannedJob, ...]
    notes: tuple[str, ...]
    licence: str | None


def _problems(request: ReferenceRequest) -> list[str]:
    problems = []
    if request.mode not in MODES:
        problems.append(f"unknown reference mode {request.mode!r} (choose {', '.join(MODES)})")
    if not request.prompt.strip():
        problems.append("the prompt is empty: describe the image you want")
    elif len(request.prompt) > PROMPT_MAX_CHARS:
        problems.append(f"the prompt is {len(request.prompt)} characters long; keep it under {PROMPT_MAX_CHARS}")
    if not WEIGHT_RANGE[0] <= request.weight <= WEIGHT_RANGE[1]:
        problems.append(f"reference weight {request.weight:g} is out of range: use {WEIGHT_RANGE[0]:g} to "
                        f"{WEIGHT_RANGE[1]:g}")
    if not 0.0 <= request.start_at < request.end_at <= 1.0:
        problems.append(f"the reference acts from {request.start_at:g} to {request.end_at:g} of the steps: "
                        f"start must be below end, both between 0 and 1")
    if not 1 <= request.count <= MAX_IMAGES:
        problems.append(f"make 1 to {MAX_IMAGES} images at a time, not {request.count}")
    return problems


def _with_reference_settings(template, request: ReferenceRequest, mode: ReferenceMode):
    workflow = copy.deepcopy(dict(template.workflow))
    for node in workflow.values():
        if node["class_type"] in LOADER_NODES:
            node["inputs"]["preset"] = mode.preset
        elif node["class_type"] in APPLY_NODES:
            node["inputs"].update(weight=float(request.weight), start_at=float(request.start_at),
                                  end_at=float(request.end_at), weight_type=mode.weight_type)
    return dataclasses.replace(template, workflow=workflow)


def plan_reference(request: ReferenceRequest, *, batch_id: str) -> ReferencePlan:
    """One job per image; raises SpecialInputError listing every problem with the inputs."""
    problems = _problems(request)
    if problems:
        raise SpecialInputError(problems)
    mode = MODES[request.mode]
    with_reference, encoded, reference = with_one_image(load_template(mode.template), request.reference, "reference")
    filled = _with_reference_settings(with_reference, request, mode)
    jobs = []
    for i in range(request.count):
        seed = request.seed + i
        params = {"prompt": request.prompt, "negative_prompt": request.negative_prompt, "seed": seed,
                  "lora_name": request.lora_name or None, "lora_strength": request.lora_strength}
        payload = job_payload(filled, params, job_tag=tag(batch_id, str(i + 1)), images={encoded.name: encoded.data})
        jobs.append(PlannedJob(
            kind=KIND, label=f"seed {seed}", input=payload["input"], idempotency_key=f"{KIND}:{batch_id}:{i}",
            meta={"batch": batch_id, "mode": request.mode, "weight": request.weight, "start_at": request.start_at,
                  "end_at": request.end_at, "seed": seed, "prompt": request.prompt.strip(),
                  "lora": request.lora_name, "reference_name": request.reference.name, "template": mode.template}))
    notes = tuple(dict.fromkeys([*reference.warnings, *encoded.notes]))
    return ReferencePlan(batch_id, tuple(jobs), notes, mode.licence)


ReferenceStart = Started


def start_reference(svc: Services, *, user: str, request: ReferenceRequest, batch_id: str) -> Started:
    """Plan, preflight (SDXL checkpoint and LoRA on the volume) and submit every image of a request."""
    plan = plan_reference(request, batch_id=batch_id)
    return Started(plan, preflight_and_submit(svc, plan.jobs, user=user, group=batch_id))


def reference_results(store, batch_id: str) -> list[PanelView]:
    """Every image job of a reference request, in seed order, from the local store (no API call)."""
    records = sorted(store.list(role=ROLE, kind=KIND, group=batch_id), key=lambda r: r.meta.get("seed", 0))
    views = []
    for record in records:
        outputs = [o for o in store.outputs(record.local_id) if o.mime.startswith("image/")]
        seed = record.meta.get("seed")
        views.append(PanelView(f"seed{seed}", f"seed {seed}", record.status, record.local_id,
                               outputs[0].path if outputs else None, job_error(record)))
    return views
