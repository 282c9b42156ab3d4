"""Image generation behind the Generate and Gallery pages: batches, grids, status, gallery, re-runs.

Every job is planned here (template + parameters → worker-comfyui payload with a job-unique tag),
preflighted against the volume, then submitted through the tracker, which records it before
sending and stores its images. Each job's metadata (model, prompt, seed, LoRA and strength, tag,
grid cell) goes with it into the store, so the gallery and re-runs never depend on RunPod's
30-minute result retention.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from lib.auth import Forbidden
from lib.devworkers import model_source
from lib.grid import GridAxis, GridCell, GridError, compose_grid, format_value, plan_grid
from lib.jobstate import WORKER_FAILED, JobState
from lib.overview import failure_view, status_line
from lib.runpod import RunPodError
from lib.store import JobRecord, OutputFile, StoreUnavailable
from lib.tracker import SubmitRefused
from lib.volume import Volume
from lib.workflows import (
    PARAM_NAMES,
    ParamError,
    PreflightReport,
    Template,
    TemplateError,
    WorkerErrorView,
    build_payload,
    list_templates,
    load_template,
    new_seed,
    preflight_many,
    resolve_params,
    retag_payload,
    suggest_param_map,
)
from lib.workflows.graph import is_link
from lib.workflows.inputs import ImageInput, image_inputs, stored_input_images
from lib.workflows.preflight import INPUT_IMAGE, preflight

if TYPE_CHECKING:
    from lib.services import Services

ROLE = "image"
KIND_GENERATE, KIND_GRID, KIND_RERUN = "generate", "grid", "rerun"
KINDS = (KIND_GENERATE, KIND_GRID, KIND_RERUN)
MAX_BATCH = 16
LORA_EXTENSIONS = (".safetensors", ".ckpt", ".pt")

# Rough sampling speed on a 24 GB Ada card, seconds per step per megapixel, plus fixed overhead
# (reference §4: FLUX.1-dev ≈1.7 it/s at 1 MP on an RTX 4090; Z-Image Turbo a few seconds per
# image; SDXL has no sourced figure and sits between). Only used for the cost estimate shown
# before submitting; the real cost comes from RunPod's executionTime.
_SPEED = {"flux": (0.55, 2.0), "z-image": (0.19, 1.0), "sdxl": (0.12, 1.5)}


def templates_dir(data_dir: Path) -> Path:
    """Where staff-made templates are kept (under CONSOLE_DATA)."""
    return Path(data_dir) / "templates"


def image_templates(data_dir: Path) -> list[Template]:
    return list_templates(templates_dir(data_dir), role=ROLE)


def loras_on_volume(volume: Volume, query: str = "") -> list[str]:
    """LoRA files in models/loras/ as the worker names them (relative paths), filtered by `query`."""
    needle = query.strip().lower()
    names = []
    for obj in volume.list("models/loras/"):
        name = obj.key[len("models/loras/"):]
        if name.lower().endswith(LORA_EXTENSIONS) and needle in name.lower():
            names.append(name)
    return sorted(names)


def character_of(lora_name: str | None) -> str | None:
    """The character a LoRA belongs to, by the naming convention <character>_<version>."""
    if not lora_name:
        return None
    stem = PurePosixPath(lora_name).stem
    return re.split(r"[_\-. ]", stem, maxsplit=1)[0].lower() or None


def new_tag() -> str:
    return "img" + uuid.uuid4().hex[:12]


def estimate_cost(config, template: Template, params: Mapping) -> float | None:
    """USD for one job at the image endpoint's price, from typical sampling speed (estimate)."""
    rate, overhead = _SPEED.get(template.family, _SPEED["sdxl"])
    megapixels = int(params.get("width", 1024)) * int(params.get("height", 1024)) / 1e6
    seconds = overhead + rate * int(params.get("steps", 20)) * megapixels * int(params.get("batch_size", 1))
    try:
        return round(math.ceil(seconds) * config.price_per_second(ROLE), 6)
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True)
class PlannedJob:
    job_tag: str
    params: dict
    input: dict
    meta: dict

    @property
    def payload(self) -> dict:
        return {"input": self.input}


def _meta(template: Template, values: Mapping, tag: str, **extra) -> dict:
    return {
        "template": template.name, "model": template.title, "family": template.family,
        "character": character_of(values.get("lora_name")), "lora": values.get("lora_name"),
        "lora_strength": values.get("lora_strength"), "prompt": values.get("prompt"),
        "negative_prompt": values.get("negative_prompt"), "seed": values.get("seed"),
        "steps": values.get("steps"), "guidance": values.get("guidance"),
        "sampler": values.get("sampler_name"), "scheduler": values.get("scheduler"),
        "width": values.get("width"), "height": values.get("height"),
        "batch_size": values.get("batch_size"), "job_tag": tag, "params": dict(values), **extra,
    }


def plan_job(template: Template, params: Mapping, images: Mapping[str, bytes] | None = None, **meta) -> PlannedJob:
    """One job; `images` maps the file names the graph's LoadImage nodes read to the bytes to send
    (see lib.workflows.inputs.prepare_input_images)."""
    tag = new_tag()
    values = resolve_params(template, params)
    payload = build_payload(template, params, job_tag=tag, images=images)
    if images:
        meta["input_images"] = sorted(images)
    return PlannedJob(tag, values, payload["input"], _meta(template, values, tag, **meta))


def plan_images(template: Template, params: Mapping, *, count: int, random_seed: bool,
                images: Mapping[str, bytes] | None = None) -> list[PlannedJob]:
    """`count` jobs of one image set each: random seeds, or consecutive ones from the fixed seed."""
    if not 1 <= count <= MAX_BATCH:
        raise ParamError(f"number of images must be 1 to {MAX_BATCH}, not {count}")
    first = None if random_seed else params.get("seed")
    seeds = [new_seed() for _ in range(count)] if first is None else [int(first) + i for i in range(count)]
    return [plan_job(template, {**params, "seed": seed}, images) for seed in seeds]


def check(planned: Sequence[PlannedJob], volume: Volume) -> PreflightReport:
    return preflight_many([job.payload for job in planned], volume)


@dataclass
class SubmitResult:
    records: list[JobRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    duplicate: bool = False  # this request key was used before: nothing new was sent

    @property
    def local_ids(self) -> list[str]:
        return [r.local_id for r in self.records]


def submit(svc: Services, planned: Sequence[PlannedJob], *, user_email: str, request_key: str, kind: str,
           group: str | None = None) -> SubmitResult:
    """Record and send each planned job under `<request_key>-<i>`; a repeated key sends nothing."""
    result = SubmitResult()
    for i, job in enumerate(planned):
        key = f"{request_key}-{i}"
        existing = svc.store.find_by_key(key)
        if existing is not None:
            result.duplicate = True
            result.records.append(existing)
            continue
        try:
            template = load_template(job.meta["template"], templates_dir(svc.data_dir))
            estimate = estimate_cost(svc.config, template, job.params)
        except TemplateError:
            estimate = None  # a re-run of a template deleted since: no estimate, the run still works
        try:
            record = svc.tracker.submit(ROLE, job.input, kind=kind, user=user_email, idempotency_key=key,
                                        meta=job.meta, group=group, est_cost_usd=estimate)
        except SubmitRefused as exc:
            result.records.append(exc.record)
            result.errors.append(f"RunPod refused the job: {exc}")
            continue
        except Forbidden as exc:
            result.errors.append(str(exc))
            break
        except RunPodError as exc:
            result.errors.append(f"Could not reach RunPod: {exc}")
            break
        except StoreUnavailable as exc:  # the console's own disk, not RunPod: say so, keep the rest unsent
            result.errors.append(f"Could not record the job in the console's store: {exc}")
            break
        result.records.append(record)
    return result


@dataclass(frozen=True)
class JobView:
    record: JobRecord
    line: str
    images: list[OutputFile]
    error: WorkerErrorView | None


def job_views(store, local_ids: Sequence[str]) -> list[JobView]:
    views = []
    for local_id in local_ids:
        record = store.get(local_id)
        error = failure_view(record) if record.status in WORKER_FAILED else None
        images = [o for o in store.outputs(local_id) if o.mime.startswith("image/")]
        views.append(JobView(record, status_line(record), images, error))
    return views


def cancel_unfinished(svc: Services, local_ids: Sequence[str], user_email: str) -> int:
    count = 0
    for view in job_views(svc.store, local_ids):
        if not view.record.is_final:
            svc.tracker.cancel(view.record.local_id, user_email)
            count += 1
    return count


# ---- grids ------------------------------------------------------------------------------------

def parse_axis_values(param: str, raw: str | Sequence) -> list:
    """Axis values from the form: a list (LoRA files) or text separated by commas or new lines
    (one prompt per line)."""
    if not isinstance(raw, str):
        return list(raw)
    parts = raw.splitlines() if param == "prompt" else re.split(r"[,\s]+", raw)
    parts = [p.strip() for p in parts if p.strip()]
    try:
        if param in ("seed", "steps"):
            return [int(p) for p in parts]
        if param in ("lora_strength", "guidance"):
            return [float(p) for p in parts]
    except ValueError as exc:
        raise GridError(f"{param.replace('_', ' ')} values must be numbers separated by commas ({exc})") from None
    return parts


def _grids_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "grids"


def plan_grid_jobs(template: Template, x_axis: GridAxis, y_axis: GridAxis, base_params: Mapping,
                   grid_id: str | None = None, images: Mapping[str, bytes] | None = None,
                   ) -> tuple[str, list[tuple[GridCell, PlannedJob]]]:
    """A grid id and one planned job per cell, all at one fixed seed unless Seed is an axis."""
    for axis in (x_axis, y_axis):
        if axis.param != "prompt" and not template.supports(axis.param):
            raise GridError(f"{template.title} has no {axis.title} setting to compare: choose another axis")
    base = dict(base_params)
    if base.get("seed") is None and "seed" not in (x_axis.param, y_axis.param):
        base["seed"] = new_seed()
    grid_id = grid_id or "grid-" + uuid.uuid4().hex[:10]
    cells = plan_grid(x_axis, y_axis, base)
    planned = [(cell, plan_job(template, cell.params, images, grid={
        "id": grid_id, "row": cell.row, "col": cell.col, "x": x_axis.param, "y": y_axis.param,
        "x_value": cell.x_value, "y_value": cell.y_value})) for cell in cells]
    return grid_id, planned


def submit_grid(svc: Services, grid_id: str, template: Template, x_axis: GridAxis, y_axis: GridAxis,
                planned: Sequence[tuple[GridCell, PlannedJob]], *, user_email: str,
                request_key: str) -> SubmitResult:
    result = submit(svc, [job for _, job in planned], user_email=user_email, request_key=request_key,
                    kind=KIND_GRID, group=grid_id)
    path = _grids_dir(svc.data_dir) / f"{grid_id}.json"
    if len(result.records) == len(planned) and not path.exists():
        spec = {"id": grid_id, "template": template.name, "model": template.title,
                "x": {"param": x_axis.param, "title": x_axis.title, "values": list(x_axis.values)},
                "y": {"param": y_axis.param, "title": y_axis.title, "values": list(y_axis.values)},
                "cells": [{"row": c.row, "col": c.col, "local_id": r.local_id, "params": j.params}
                          for (c, j), r in zip(planned, result.records, strict=True)],
                "user": user_email, "created_at": datetime.now().astimezone().isoformat()}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return result


@dataclass(frozen=True)
class GridStart:
    report: PreflightReport
    result: SubmitResult | None  # None: preflight blocked it, nothing was sent

    @property
    def grid_id(self) -> str | None:
        return self.result.records[0].group if self.result and self.result.records else None


def start_grid(svc: Services, template: Template, axes: Mapping[str, tuple[str, str | Sequence[Any]]],
               params: Mapping, *, user_email: str, request_key: str,
               images: Mapping[str, bytes] | None = None) -> GridStart:
    """Plan the grid from the form's axes {"x": (param, raw values), "y": ...}, preflight every
    cell, and submit them all only if nothing is missing. Raises GridError / ParamError."""
    x, y = (GridAxis(param, parse_axis_values(param, raw)) for param, raw in (axes["x"], axes["y"]))
    # The same request again (a rerun, or a retry after an interrupted submit) continues that grid.
    sent = svc.store.find_by_key(f"{request_key}-0")
    grid_id, planned = plan_grid_jobs(template, x, y, params, sent.group if sent else None, images)
    report = check([job for _, job in planned], model_source(svc, ROLE))
    if not report.ok:
        return GridStart(report, None)
    return GridStart(report, submit_grid(svc, grid_id, template, x, y, planned, user_email=user_email,
                                         request_key=request_key))


@dataclass(frozen=True)
class GridState:
    spec: dict
    views: list[JobView]

    @property
    def done(self) -> bool:
        """Every cell final, and each completed one has its image stored (or a note why not)."""
        return all(v.record.is_final and (v.images or v.record.status != JobState.COMPLETED or v.record.error)
                   for v in self.views)

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for view in self.views:
            counts[view.record.status] = counts.get(view.record.status, 0) + 1
        return counts

    @property
    def summary(self) -> str:
        cells = ", ".join(f"{n} {s.lower().replace('_', ' ')}" for s, n in sorted(self.counts.items()))
        return f"{self.spec['y']['title']} × {self.spec['x']['title']} — {self.spec['model']}: {cells}"


def grid_state(svc: Services, grid_id: str) -> GridState:
    path = _grids_dir(svc.data_dir) / f"{grid_id}.json"
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeyError(f"no grid {grid_id!r} in the console's history") from None
    return GridState(spec, job_views(svc.store, [c["local_id"] for c in spec["cells"]]))


def grid_png(svc: Services, state: GridState) -> bytes:
    """The labelled grid as it stands (unfinished cells grey); kept next to its spec once done."""
    spec = state.spec
    x_values, y_values = spec["x"]["values"], spec["y"]["values"]
    cells: list[tuple[GridCell, bytes | str | None]] = []
    for cell, view in zip(spec["cells"], state.views, strict=True):
        grid_cell = GridCell(x_values[cell["col"]], y_values[cell["row"]], cell["params"], cell["row"], cell["col"])
        if view.images:
            cells.append((grid_cell, view.images[0].path.read_bytes()))
        else:
            status = view.record.status.replace("_", " ").lower()
            cells.append((grid_cell, f"{status}: {view.error.summary}" if view.error else status))
    png = compose_grid(cells, spec["x"]["title"], spec["y"]["title"], x_values, y_values)
    if state.done:
        (_grids_dir(svc.data_dir) / f"{spec['id']}.png").write_bytes(png)
    return png


# ---- gallery, re-run, vary seed -----------------------------------------------------------------

@dataclass(frozen=True)
class GalleryItem:
    record: JobRecord
    output: OutputFile

    @property
    def meta(self) -> dict:
        return self.record.meta

    @property
    def caption(self) -> str:
        m = self.meta
        lora = f"{format_value(m.get('lora'))} @ {m.get('lora_strength')}" if m.get("lora") else "no LoRA"
        return f"{m.get('model', '?')} · seed {m.get('seed')} · {lora}"

    @property
    def details(self) -> str:
        r, m = self.record, self.meta
        cost = f"${r.cost_usd:.4f}" if r.cost_usd is not None else "cost pending"
        return (f"{m.get('prompt', '')}\n\n{m.get('width')}×{m.get('height')}, {m.get('steps')} steps, "
                f"guidance {m.get('guidance')} · endpoint {r.endpoint_id} · worker {r.worker_id or '?'} · "
                f"queued {_seconds(r.delay_ms)}, ran {_seconds(r.execution_ms)} · {cost} · "
                f"{r.created_at:%Y-%m-%d %H:%M} by {r.user}")


def _seconds(ms: int | None) -> str:
    return f"{(ms or 0) / 1000:.1f} s"


def rerun(svc: Services, local_id: str, *, user_email: str, request_key: str) -> SubmitResult:
    """Send the stored payload again, byte-identical except the job tag (output prefix, input names)."""
    record = svc.store.get(local_id)
    old_tag = record.meta.get("job_tag")
    if not old_tag or not isinstance(record.input, dict):
        raise ParamError("only images made on the Generate page can be re-run here")
    tag = new_tag()
    job_input = retag_payload({"input": record.input}, old_tag=old_tag, new_tag=tag)["input"]
    meta = {**record.meta, "job_tag": tag, "rerun_of": local_id}
    meta.pop("grid", None)
    job = PlannedJob(tag, dict(record.meta.get("params") or {}), job_input, meta)
    return submit(svc, [job], user_email=user_email, request_key=request_key, kind=KIND_RERUN)


def vary_seed(svc: Services, local_id: str, *, user_email: str, request_key: str) -> SubmitResult:
    """The same settings with a new random seed (built again from the template)."""
    record = svc.store.get(local_id)
    params = record.meta.get("params")
    if not params:
        raise ParamError("only images made on the Generate page can be varied here")
    template = load_template(record.meta["template"], templates_dir(svc.data_dir))
    images = stored_input_images(record.input or {}, record.meta.get("job_tag", "")) or None
    job = plan_job(template, {**params, "seed": new_seed()}, images, varied_from=local_id)
    return submit(svc, [job], user_email=user_email, request_key=request_key, kind=KIND_GENERATE)


# ---- own workflows --------------------------------------------------------------------------------

UNMAPPED = "(not used)"


@dataclass(frozen=True)
class MappingForm:
    """What the "own workflow" mapper offers: every literal node input, and a first guess per field."""

    options: dict[str, list[str]]      # label → [node id, input name]
    guesses: dict[str, str]            # form field → label (or UNMAPPED)
    suggested: dict[str, list[list[str]]]

    @property
    def labels(self) -> list[str]:
        return [UNMAPPED, *self.options]

    def param_map(self, chosen: Mapping[str, str]) -> dict[str, list[list[str]]]:
        """The template's parameter map from the labels picked per field. A field left at its guess
        keeps every target of the guess (LoRA strength feeds strength_model and strength_clip)."""
        mapping = {"filename_prefix": self.suggested.get("filename_prefix", [])}
        for param, label in chosen.items():
            if label == UNMAPPED:
                continue
            extra = self.suggested.get(param, [])[1:] if label == self.guesses.get(param) else []
            mapping[param] = [self.options[label], *extra]
        return mapping


def mapping_form(workflow: Mapping) -> MappingForm:
    options = {}
    for node_id, node in workflow.items():
        for name, value in (node.get("inputs") or {}).items():
            if not is_link(value):  # links cannot take a form value
                options[f"{node_id} · {node['class_type']} · {name} = {str(value)[:30]}"] = [node_id, name]
    suggested = suggest_param_map(workflow)
    by_target = {tuple(target): label for label, target in options.items()}
    guesses = {p: by_target.get(tuple(suggested[p][0]), UNMAPPED) if p in suggested else UNMAPPED
               for p in PARAM_NAMES if p != "filename_prefix"}
    return MappingForm(options, guesses, suggested)



def input_images_of(template: Template) -> list[ImageInput]:
    """The uploads a template's LoadImage nodes need (none for the built-in presets)."""
    return image_inputs(template.workflow)


def images_digest(images: Mapping[str, bytes] | None) -> str:
    """A short fingerprint of the input images, so a request with other images is a new request."""
    digest = hashlib.sha256()
    for name, data in sorted((images or {}).items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class OwnWorkflowCheck:
    problems: list[str]              # model files missing or misplaced on the volume
    image_inputs: list[ImageInput]   # asked for by the form when generating, not needed to save

    @property
    def image_note(self) -> str | None:
        if not self.image_inputs:
            return None
        names = ", ".join(i.name for i in self.image_inputs)
        return (f"This workflow reads {len(self.image_inputs)} input image(s) ({names}): once saved, the "
                f"form asks for one upload each and sends them with every job.")


def check_own_workflow(workflow: Mapping, volume: Volume) -> OwnWorkflowCheck:
    """Preflight of an uploaded graph before saving: its LoadImage files come later, from the form."""
    report = preflight(workflow, volume)
    return OwnWorkflowCheck([p.message for p in report.problems if p.kind != INPUT_IMAGE], image_inputs(workflow))


@dataclass(frozen=True)
class OpenedWorkflow:
    """A stored job's graph exactly as it was sent, opened in the Own workflow tab."""

    local_id: str
    label: str
    workflow_json: str


def sent_workflow(svc: Services, local_id: str) -> OpenedWorkflow:
    """The graph a stored job sent (the console keeps it: real worker PNGs carry no workflow)."""
    record = svc.store.get(local_id)
    workflow = (record.input or {}).get("workflow") if isinstance(record.input, dict) else None
    if not isinstance(workflow, dict):
        raise ParamError("this job kept no ComfyUI workflow to open")
    label = f"{record.meta.get('model', 'job')} · seed {record.meta.get('seed')} · {record.created_at:%Y-%m-%d %H:%M}"
    return OpenedWorkflow(local_id, label, json.dumps(workflow, indent=2, ensure_ascii=False))
