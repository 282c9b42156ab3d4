"""What face swaps and character sheets share: uploads, planned jobs, preflight and submission."""
from __future__ import annotations

import copy
import dataclasses
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lib.errors import ConsoleError
from lib.images import (
    BodyTooLarge,
    CheckedImage,
    EncodedImage,
    ImageError,
    body_bytes,
    fit_images,
    load_image,
)
from lib.jobstate import FINAL, JobState
from lib.workflows.payload import ParamError, build_payload
from lib.workflows.templates import Template

if TYPE_CHECKING:
    from lib.services import Services

ROLE = "special"

# Rough GPU seconds per job, for the cost estimate recorded at submission (an RTX 4090-class worker).
# FLUX.1-dev needs ≈12 s for 20 steps at 1024² on a 4090 (worker-contracts §4.2) plus decoding and
# saving; a ReActor swap has no published timing (could not confirm) — a few seconds is assumed.
# An SDXL image of 28 steps at 1 MP with IP-Adapter: the image endpoint's SDXL estimate plus the
# reference encoding, ≈6 s (an assumption in the same order, no sourced figure).
TYPICAL_SECONDS = {"faceswap": 5.0, "sheet_panel": 15.0, "reference": 6.0}

_TAG_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


class SpecialInputError(ConsoleError, ValueError):
    """The user's inputs cannot make a job; ``problems`` holds one complete sentence per problem."""



@dataclass(frozen=True)
class Upload:
    """An uploaded file as the page received it: the user's file name and its bytes."""

    name: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class PlannedJob:
    """One /run input, ready to submit; ``notes`` are things the user should know (downscaling...)."""

    kind: str
    label: str
    input: dict = field(repr=False)
    idempotency_key: str
    meta: dict
    notes: tuple[str, ...] = ()

    @property
    def body_bytes(self) -> int:
        return body_bytes({"input": self.input})


@dataclass(frozen=True)
class SubmitOutcome:
    """What happened to each planned job: recorded (and sent, or in an unknown state) or refused."""

    records: list = field(default_factory=list)   # lib.store.JobRecord per job, refused ones included
    refused: list[str] = field(default_factory=list)
    already_sent: int = 0                          # jobs found recorded under the same key: not resent

    @property
    def local_ids(self) -> list[str]:
        return [r.local_id for r in self.records]


@dataclass(frozen=True)
class Started:
    """A plan (face swap, sheet, reference images) and what happened when its jobs were submitted."""

    plan: object
    outcome: SubmitOutcome


def job_error(record) -> str | None:
    """One readable sentence for a job that ended without success, or that finished with a problem
    (outputs that could not be kept); None while it runs and when all went well."""
    from lib.workflows.worker_errors import describe_job_error

    if record.status not in FINAL or (record.status == JobState.COMPLETED and not record.error):
        return None
    if not record.error:
        return record.status.lower().replace("_", " ")
    # A failed run's node errors travel in output.details (worker-contracts §1.3), next to `error`.
    return describe_job_error(record.error, record.output).summary


def new_batch_id(prefix: str) -> str:
    """A short id for one submission (a face-swap batch or a sheet) that is safe in file names."""
    return f"{prefix}{secrets.token_hex(4)}"


def tag(*parts: str) -> str:
    """A job tag (output prefix, image-name prefix) from parts; worker-comfyui needs file-name-safe text."""
    text = "_".join(_TAG_SAFE.sub("-", p).strip("-_") for p in parts if p)
    return text[:80] or "job"


def check_uploads(uploads: Iterable[tuple[str, Upload]]) -> dict[str, CheckedImage]:
    """Validate every (role label, upload) and raise one SpecialInputError listing every bad file."""
    checked: dict[str, CheckedImage] = {}
    problems: list[str] = []
    for label, upload in uploads:
        try:
            checked[label] = load_image(upload.name, upload.data)
        except ImageError as exc:
            problems.append(str(exc))
    if problems:
        raise SpecialInputError(problems)
    return checked


def with_load_images(template: Template, names: Mapping[str, str]) -> Template:
    """A copy of ``template`` whose LoadImage nodes read the given file names ({old name: new name})."""
    workflow = copy.deepcopy(dict(template.workflow))
    missing = set(names)
    for node in workflow.values():
        if node.get("class_type") == "LoadImage" and node["inputs"].get("image") in names:
            missing.discard(node["inputs"]["image"])
            node["inputs"]["image"] = names[node["inputs"]["image"]]
    if missing:
        raise ValueError(f"template {template.name} has no LoadImage node reading {sorted(missing)}")
    return dataclasses.replace(template, workflow=workflow)


def fit_for_job(images: Mapping[str, CheckedImage], workflow: Mapping) -> dict[str, EncodedImage]:
    """Encode a job's images so its /run body stays under RunPod's 10 MB limit (see lib.images)."""
    reserved = body_bytes({"input": {"workflow": workflow, "images": []}})
    try:
        return fit_images(images, reserved_bytes=reserved)
    except BodyTooLarge as exc:
        raise SpecialInputError([str(exc)]) from None


def with_one_image(template: Template, upload: Upload, stem: str) -> tuple[Template, EncodedImage, CheckedImage]:
    """``template`` reading one uploaded image (its LoadImage of ``<stem>.png``), the image encoded to fit the
    job, and the checked upload (its warnings)."""
    checked = check_uploads([("reference", upload)])["reference"]
    encoded = fit_for_job({stem: checked}, template.workflow)[stem]
    return with_load_images(template, {f"{stem}.png": encoded.name}), encoded, checked


def job_payload(template: Template, params: Mapping, *, job_tag: str, images: Mapping[str, bytes] | None) -> dict:
    """The /run body for one job (lib.workflows.payload); a parameter problem becomes a SpecialInputError."""
    try:
        return build_payload(template, params, job_tag=job_tag, images=images)
    except ParamError as exc:
        raise SpecialInputError(exc.problems) from None


def image_entries(encoded: Mapping[str, EncodedImage]) -> list[dict[str, str]]:
    return [enc.as_input() for enc in encoded.values()]


def preflight_jobs(jobs: Sequence[PlannedJob], volume) -> list[str]:
    """Problems the worker would hit (missing models, images, body size), checked before any GPU time."""
    from lib.workflows.preflight import (
        preflight,  # needs lib.volume; keep planning importable without it
    )

    problems: list[str] = []
    seen: set[str] = set()
    for job in jobs:
        report = preflight({"input": job.input}, volume)
        for problem in report.problems:
            if problem.message not in seen:
                seen.add(problem.message)
                problems.append(problem.message)
    return problems


def estimated_cost(config, kind: str) -> float | None:
    """USD for one job of this kind at the special endpoint's price, or None without a price."""
    try:
        return round(config.price_per_second(ROLE) * TYPICAL_SECONDS[kind], 6)
    except (KeyError, ValueError):
        return None


def submit_jobs(tracker, jobs: Sequence[PlannedJob], *, user: str, group: str,
                config=None) -> SubmitOutcome:
    """Submit every planned job through the tracker (recorded first, then /run); parallel on RunPod.

    A job RunPod refused is reported in ``refused`` and does not stop the others; resubmitting the
    same plan (a rerun, a double click) returns the existing records and sends nothing.
    """
    from lib.tracker import SubmitRefused

    records, refused, already_sent = [], [], 0
    for job in jobs:
        if tracker.store.find_by_key(job.idempotency_key) is not None:
            already_sent += 1
        try:
            record = tracker.submit(ROLE, job.input, kind=job.kind, user=user,
                                    idempotency_key=job.idempotency_key, meta=job.meta, group=group,
                                    est_cost_usd=estimated_cost(config, job.kind) if config else None)
        except SubmitRefused as exc:
            refused.append(f"{job.label}: {exc}")
            records.append(exc.record)
            continue
        records.append(record)
    return SubmitOutcome(records, refused, already_sent)


def preflight_and_submit(svc: Services, jobs, *, user: str, group: str) -> SubmitOutcome:
    """Preflight every job against the volume, then submit them all; nothing is sent if one fails."""
    from lib.devworkers import model_source  # needs lib.volume, like preflight_jobs

    problems = preflight_jobs(jobs, model_source(svc, ROLE))
    if problems:
        raise SpecialInputError(problems)
    return submit_jobs(svc.tracker, jobs, user=user, group=group, config=svc.config)
