"""Face swap on the ``special`` endpoint: a source face onto one or more target photos with ReActor.

Each target photo is its own job (template ``faceswap_reactor``, worker-contracts §2.6), so several
targets run in parallel on as many workers as the endpoint allows and one bad photo never holds up
the others. Both images travel in ``input.images`` under job-unique names, because worker-comfyui
leaves uploads in ComfyUI's ``input/`` folder on a warm worker (§1.2).
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lib.images import decode_base64_image
from lib.jobstate import FINAL
from lib.special.common import (
    ROLE,
    PlannedJob,
    SpecialInputError,
    SubmitOutcome,
    Upload,
    check_uploads,
    fit_for_job,
    image_entries,
    job_error,
    preflight_and_submit,
    tag,
    with_load_images,
)
from lib.workflows.graph import OUTPUT_NODE, structure_problems
from lib.workflows.templates import load_template

if TYPE_CHECKING:
    from lib.services import Services

TEMPLATE = "faceswap_reactor"
KIND = "faceswap"
NODE_CLASS = "ReActorFaceSwap"
MAX_TARGETS = 20

FACE_MODEL_LICENCE = (
    "Face swap runs InsightFace's inswapper_128 (the swap model) and buffalo_l (face detection and "
    "analysis). InsightFace releases both for non-commercial research only: do not use the results "
    "commercially without a licence from InsightFace.")

# Choices offered in the form. They must match files baked into the special endpoint's image
# (ReActor reads models/insightface and models/facerestore_models from ComfyUI's own models folder,
# not from the network volume); the restorer file names are ReActor's usual downloads.
SWAP_MODELS = {"inswapper_128.onnx": "inswapper 128 (InsightFace)"}
DETECTORS = {
    "retinaface_resnet50": "RetinaFace ResNet-50 (most accurate)",
    "retinaface_mobile0.25": "RetinaFace MobileNet (faster)",
    "YOLOv5l": "YOLOv5 large",
    "YOLOv5n": "YOLOv5 nano (fastest)",
}
RESTORE_MODELS = {
    "none": "No restoration",
    "codeformer-v0.1.0.pth": "CodeFormer (natural, adjustable)",
    "GFPGANv1.4.pth": "GFPGAN 1.4 (smoother skin)",
    "GPEN-BFR-512.onnx": "GPEN 512",
}
GENDERS = {"no": "any face", "female": "only women's faces", "male": "only men's faces"}


def parse_face_indices(text: str | int, what: str) -> list[int]:
    """``"0"`` or ``"0,2"`` → [0, 2] (ReActor's face numbers); ValueError naming ``what`` otherwise."""
    parts = [p.strip() for p in str(text).strip().strip(",").split(",")]
    if not parts or any(not p.isdigit() for p in parts):
        raise ValueError(f"{what} must be face numbers separated by commas, like \"0\" or \"0,1\" "
                         f"(0 = the largest face), not {text!r}")
    return [int(p) for p in parts]


def describe_faces(indices: str) -> str:
    """'0' → 'the largest face'; '0,2' → 'the largest and the 3rd largest faces'."""
    numbers = parse_face_indices(indices, "faces")
    words = ["the largest" if n == 0 else f"the {_ordinal(n + 1)} largest" for n in numbers]
    if len(words) == 1:
        return f"{words[0]} face"
    return f"{', '.join(words[:-1])} and {words[-1]} faces"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass(frozen=True)
class FaceSwapOptions:
    """ReActor's options in the form's terms; faces are numbered 0 = largest, as ReActor does."""

    source_faces: str = "0"
    target_faces: str = "0"
    restore_model: str = "codeformer-v0.1.0.pth"
    restore_visibility: float = 1.0
    codeformer_weight: float = 0.5
    source_gender: str = "no"
    target_gender: str = "no"
    detector: str = "retinaface_resnet50"
    swap_model: str = "inswapper_128.onnx"

    def problems(self) -> list[str]:
        problems: list[str] = []
        counts = {}
        for label, value in (("which face of the source photo", self.source_faces),
                             ("which faces of each target photo", self.target_faces)):
            try:
                counts[label] = len(parse_face_indices(value, label))
            except ValueError as exc:
                problems.append(str(exc))
        source_n = counts.get("which face of the source photo")
        target_n = counts.get("which faces of each target photo")
        if source_n and target_n and source_n not in (1, target_n):
            problems.append(f"{source_n} source faces were chosen for {target_n} target faces: choose one "
                            f"source face for all of them, or exactly one per target face")
        for value, allowed, label in ((self.restore_model, RESTORE_MODELS, "face restoration"),
                                      (self.detector, DETECTORS, "face detector"),
                                      (self.swap_model, SWAP_MODELS, "swap model"),
                                      (self.source_gender, GENDERS, "source gender filter"),
                                      (self.target_gender, GENDERS, "target gender filter")):
            if value not in allowed:
                problems.append(f"{label} {value!r} is not available (choose one of {', '.join(allowed)})")
        if not 0.1 <= float(self.restore_visibility) <= 1.0:
            problems.append(f"restoration strength {self.restore_visibility} is out of range: use 0.1 to 1")
        if not 0.0 <= float(self.codeformer_weight) <= 1.0:
            problems.append(f"CodeFormer fidelity {self.codeformer_weight} is out of range: use 0 to 1")
        return problems

    def reactor_inputs(self) -> dict[str, object]:
        """The widget values of the ReActorFaceSwap node (input names of worker-contracts §2.6)."""
        return {
            "enabled": True,
            "swap_model": self.swap_model,
            "facedetection": self.detector,
            "face_restore_model": self.restore_model,
            "face_restore_visibility": float(self.restore_visibility),
            "codeformer_weight": float(self.codeformer_weight),
            "detect_gender_input": self.target_gender,
            "detect_gender_source": self.source_gender,
            "input_faces_index": ",".join(str(n) for n in parse_face_indices(self.target_faces, "target")),
            "source_faces_index": ",".join(str(n) for n in parse_face_indices(self.source_faces, "source")),
            "console_log_level": 1,
        }

    def summary(self) -> str:
        """The options in one plain sentence, for the job list and the results."""
        text = (f"{describe_faces(self.source_faces)} of the source photo onto "
                f"{describe_faces(self.target_faces)} of each target")
        if self.restore_model == "none":
            text += ", no face restoration"
        else:
            restorer = RESTORE_MODELS[self.restore_model].split(" (")[0]
            text += f", restored with {restorer} at {round(float(self.restore_visibility) * 100)} %"
            if self.restore_model.startswith("codeformer"):
                text += f" (fidelity {float(self.codeformer_weight):g})"
        genders = [f"{who}: {GENDERS[g]}" for who, g in (("source", self.source_gender),
                                                         ("target", self.target_gender)) if g != "no"]
        if genders:
            text += "; " + ", ".join(genders)
        return text


@dataclass(frozen=True)
class FaceSwapPlan:
    batch_id: str
    jobs: tuple[PlannedJob, ...]
    notes: tuple[str, ...]
    licence: str = FACE_MODEL_LICENCE


def plan_faceswap(source: Upload, targets: Sequence[Upload], options: FaceSwapOptions, *,
                  batch_id: str, character: str | None = None) -> FaceSwapPlan:
    """One job per target photo; raises SpecialInputError listing every problem with the inputs."""
    problems = options.problems()
    if not targets:
        problems.append("add at least one target photo (the photo whose face gets replaced)")
    elif len(targets) > MAX_TARGETS:
        problems.append(f"{len(targets)} target photos were given; send at most {MAX_TARGETS} at a time")
    if problems:
        raise SpecialInputError(problems)
    checked = check_uploads([("source", source)] + [(f"target{i}", t) for i, t in enumerate(targets)])
    template = load_template(TEMPLATE)
    face = checked["source"]
    jobs: list[PlannedJob] = []
    notes: list[str] = list(face.warnings)
    for i, target_upload in enumerate(targets):
        target = checked[f"target{i}"]
        job_tag = tag(batch_id, f"t{i + 1}")
        encoded = fit_for_job({f"{job_tag}_face": face, f"{job_tag}_target": target}, template.workflow)
        enc_face, enc_target = encoded[f"{job_tag}_face"], encoded[f"{job_tag}_target"]
        filled = with_load_images(template, {"face.png": enc_face.name, "target.png": enc_target.name})
        workflow = copy.deepcopy(dict(filled.workflow))
        for node in workflow.values():
            if node["class_type"] == NODE_CLASS:
                node["inputs"].update(options.reactor_inputs())
            elif node["class_type"] == OUTPUT_NODE:
                node["inputs"]["filename_prefix"] = job_tag
        broken = structure_problems(workflow)
        if broken:
            raise SpecialInputError(broken)
        job_notes = tuple(dict.fromkeys(list(target.warnings) + list(enc_face.notes) + list(enc_target.notes)))
        notes.extend(job_notes)
        jobs.append(PlannedJob(
            kind=KIND, label=target_upload.name,
            input={"workflow": workflow, "images": image_entries(encoded)},
            idempotency_key=f"{KIND}:{batch_id}:{i}",
            meta={"batch": batch_id, "character": character, "source_name": source.name,
                  "target_name": target_upload.name, "source_image": enc_face.name,
                  "target_image": enc_target.name, "options": asdict(options),
                  "summary": options.summary(), "notes": list(job_notes)},
            notes=job_notes))
    return FaceSwapPlan(batch_id, tuple(jobs), tuple(dict.fromkeys(notes)))


@dataclass(frozen=True)
class FaceSwapStart:
    plan: FaceSwapPlan
    outcome: SubmitOutcome


def start_faceswap(svc: Services, *, user: str, source: Upload, targets: Sequence[Upload],
                   options: FaceSwapOptions, batch_id: str, character: str | None = None) -> FaceSwapStart:
    """Plan, preflight and submit a face-swap batch; raises SpecialInputError before sending anything."""
    plan = plan_faceswap(source, targets, options, batch_id=batch_id, character=character)
    outcome = preflight_and_submit(svc, plan.jobs, user=user, group=batch_id)
    return FaceSwapStart(plan, outcome)


@dataclass(frozen=True)
class SwapView:
    """One target of a batch as the results panel shows it: before, after (when done), what happened."""

    local_id: str
    target_name: str
    status: str
    before: bytes | None = field(repr=False)
    after: Path | None
    warnings: tuple[str, ...]
    error: str | None
    summary: str

    @property
    def finished(self) -> bool:
        return self.status in FINAL


def batch_results(store, batch_id: str) -> list[SwapView]:
    """Every job of a face-swap batch, in target order, from the local store (no API call)."""
    records = store.list(role=ROLE, kind=KIND, group=batch_id)
    records.sort(key=lambda r: _target_number(r.idempotency_key))
    views = []
    for record in records:
        outputs = [o for o in store.outputs(record.local_id) if o.mime.startswith("image/")]
        error = job_error(record)
        views.append(SwapView(
            local_id=record.local_id, target_name=str(record.meta.get("target_name", "")),
            status=record.status, before=_input_image(record.input, record.meta.get("target_image")),
            after=outputs[0].path if outputs else None, warnings=tuple(worker_warnings(record.output)),
            error=error, summary=str(record.meta.get("summary", ""))))
    return views


def worker_warnings(output: object) -> list[str]:
    """worker-comfyui's non-fatal ``output.errors`` (e.g. "no face detected"), as plain strings."""
    if isinstance(output, dict) and isinstance(output.get("errors"), list):
        return [str(e) for e in output["errors"]]
    return []


def _target_number(key: str | None) -> int:
    try:
        return int(str(key).rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


def _input_image(job_input: object, name: object) -> bytes | None:
    if not isinstance(job_input, dict) or not name:
        return None
    for entry in job_input.get("images") or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return decode_base64_image(str(entry.get("image", "")))
    return None
