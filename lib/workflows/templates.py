"""Workflow templates: a ComfyUI API graph plus the metadata the console needs to fill it in.

Built-in templates live next to this module in templates/*.json; staff-made ones ("own workflows")
are saved as the same JSON format into a folder under CONSOLE_DATA that the caller passes in.
"""
from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.errors import ConsoleError
from lib.workflows.graph import (
    LORA_PASSTHROUGH,
    WorkflowError,
    models_in_workflow,
    plain_image_names,
    structure_problems,
)
from lib.workflows.samplers import CHOICES

BUILTIN_DIR = Path(__file__).parent / "templates"
FORMAT = 1

PARAM_NAMES = ("prompt", "negative_prompt", "seed", "steps", "guidance", "sampler_name", "scheduler", "width",
               "height", "batch_size", "lora_name", "lora_strength", "filename_prefix")

# Limits for staff-made templates, where nothing is known about the model behind the graph.
_CUSTOM_LIMITS = {"min_side": 256, "max_side": 2048, "steps": [1, 150], "guidance": [0.0, 30.0],
                  "lora_strength": [-2.0, 2.0], "batch_size": [1, 4]}


class TemplateError(ConsoleError, ValueError):
    """A template file is missing or malformed, or a new one cannot be saved; the message says why."""


@dataclass(frozen=True)
class Limits:
    size_multiple: int
    min_side: int
    max_side: int
    steps: tuple[int, int]
    guidance: tuple[float, float]
    lora_strength: tuple[float, float]
    batch_size: tuple[int, int]


@dataclass(frozen=True)
class RequiredModel:
    node_id: str
    input_name: str
    path: str  # volume key, e.g. models/unet/flux1-dev.safetensors


@dataclass(frozen=True)
class SizePreset:
    label: str
    width: int
    height: int


@dataclass(frozen=True)
class Template:
    name: str
    title: str
    description: str
    notes: str
    role: str
    family: str
    uses_negative: bool
    defaults: Mapping[str, Any]
    limits: Limits
    params: Mapping[str, tuple[tuple[str, str], ...]]
    without_lora: Mapping[str, Mapping[int, str]]
    required_models: tuple[RequiredModel, ...]
    workflow: Mapping[str, dict] = field(repr=False)
    builtin: bool = True
    source: Path | None = None

    def supports(self, param: str) -> bool:
        return param in self.params

    @property
    def lora_optional(self) -> bool:
        """True when the graph can run without a LoRA (the loader node is removed and re-linked)."""
        return "lora_name" not in self.params or bool(self.without_lora)

    def to_json(self) -> dict:
        return {
            "format": FORMAT, "name": self.name, "title": self.title, "description": self.description,
            "notes": self.notes, "role": self.role, "family": self.family,
            "uses_negative": self.uses_negative, "defaults": dict(self.defaults),
            "limits": {"size_multiple": self.limits.size_multiple, "min_side": self.limits.min_side,
                       "max_side": self.limits.max_side, "steps": list(self.limits.steps),
                       "guidance": list(self.limits.guidance),
                       "lora_strength": list(self.limits.lora_strength),
                       "batch_size": list(self.limits.batch_size)},
            "params": {k: [list(t) for t in v] for k, v in self.params.items()},
            "without_lora": {n: {str(i): name for i, name in m.items()}
                             for n, m in self.without_lora.items()},
            "required_models": [{"node": r.node_id, "input": r.input_name, "path": r.path}
                                for r in self.required_models],
            "workflow": copy.deepcopy(dict(self.workflow)),
        }


def parse_template(data: Mapping, *, builtin: bool, source: Path | None = None) -> Template:
    where = str(source or data.get("name") or "template")
    try:
        if data.get("format") != FORMAT:
            raise TemplateError(f"{where}: unknown template format {data.get('format')!r} (expected {FORMAT})")
        workflow = data["workflow"]
        problems = structure_problems(workflow)
        if problems:
            raise TemplateError(f"{where}: " + "; ".join(problems))
        lim = data["limits"]
        limits = Limits(int(lim["size_multiple"]), int(lim["min_side"]), int(lim["max_side"]),
                        _pair(lim["steps"], int), _pair(lim["guidance"], float),
                        _pair(lim["lora_strength"], float), _pair(lim["batch_size"], int))
        params: dict[str, tuple[tuple[str, str], ...]] = {}
        for key, targets in data["params"].items():
            if key not in PARAM_NAMES:
                raise TemplateError(f"{where}: unknown parameter {key!r} (known: {', '.join(PARAM_NAMES)})")
            params[key] = tuple((str(n), str(i)) for n, i in targets)
            for node_id, input_name in params[key]:
                if input_name not in workflow.get(node_id, {}).get("inputs", {}):
                    raise TemplateError(f"{where}: parameter {key!r} points at node {node_id} input "
                                        f"{input_name!r}, which the workflow does not have")
        without_lora = {str(n): {int(i): str(name) for i, name in m.items()}
                        for n, m in (data.get("without_lora") or {}).items()}
        for node_id in without_lora:
            if node_id not in workflow:
                raise TemplateError(f"{where}: without_lora names node {node_id}, which is not in the workflow")
        required = tuple(RequiredModel(str(r["node"]), str(r["input"]), str(r["path"]))
                         for r in data.get("required_models", ()))
        return Template(
            name=str(data["name"]), title=str(data["title"]), description=str(data.get("description", "")),
            notes=str(data.get("notes", "")), role=str(data.get("role", "image")),
            family=str(data.get("family", "custom")), uses_negative=bool(data.get("uses_negative")),
            defaults=dict(data.get("defaults") or {}), limits=limits, params=params,
            without_lora=without_lora, required_models=required, workflow=workflow,
            builtin=builtin, source=source)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, TemplateError):
            raise
        raise TemplateError(f"{where}: malformed template ({type(exc).__name__}: {exc})") from None


def _pair(value, kind) -> tuple:
    lo, hi = value
    return kind(lo), kind(hi)


def _read(path: Path, builtin: bool) -> Template:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise TemplateError(f"template {path} is not valid JSON: {exc}") from None
    return parse_template(data, builtin=builtin, source=path)


def list_templates(custom_dir: Path | None = None, *, role: str | None = None) -> list[Template]:
    """Built-in templates first (in file-name order), then staff-made ones from `custom_dir`;
    only those of endpoint `role` when given."""
    found = [_read(p, True) for p in sorted(BUILTIN_DIR.glob("*.json"))]
    if custom_dir is not None and Path(custom_dir).is_dir():
        found += [_read(p, False) for p in sorted(Path(custom_dir).glob("*.json"))]
    return [t for t in found if role is None or t.role == role]


def load_template(name: str, custom_dir: Path | None = None) -> Template:
    for template in list_templates(custom_dir):
        if template.name == name:
            return template
    known = ", ".join(t.name for t in list_templates(custom_dir))
    raise TemplateError(f"no workflow template named {name!r} (available: {known})")


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    return slug[:60]


def save_custom_template(store_dir: Path, name: str, workflow: Mapping,
                         param_map: Mapping[str, list], *, description: str = "",
                         overwrite: bool = False) -> Template:
    """Save an uploaded API workflow with its parameter mapping as a named template in `store_dir`."""
    title = name.strip()
    slug = _slug(title)
    if not slug:
        raise TemplateError("give the workflow a name with at least one letter or digit")
    if any(t.name == slug for t in list_templates()):
        raise TemplateError(f"{title!r} is the name of a built-in template; choose another name")
    problems = structure_problems(workflow)
    if problems:
        raise WorkflowError(problems)
    unknown = [k for k in param_map if k not in PARAM_NAMES]
    if unknown:
        raise TemplateError(f"unknown form field(s) {', '.join(unknown)} (known: {', '.join(PARAM_NAMES)})")
    if not param_map.get("prompt"):
        raise TemplateError("map the prompt to a node input (usually a CLIPTextEncode text) before saving")
    params = {k: [[str(n), str(i)] for n, i in v] for k, v in param_map.items() if v}
    without_lora: dict[str, dict[str, str]] = {}
    lora_nodes = {n for n, _ in params.get("lora_name", [])}
    for node_id in lora_nodes:
        passthrough = LORA_PASSTHROUGH.get(workflow.get(node_id, {}).get("class_type", ""))
        if passthrough:
            without_lora[node_id] = {str(i): name for i, name in passthrough.items()}
    defaults: dict[str, object] = {}
    for key in ("prompt", "negative_prompt", "steps", "guidance", "sampler_name", "scheduler", "width", "height",
                "batch_size", "lora_strength"):
        if params.get(key):
            node_id, input_name = params[key][0]
            value = workflow.get(node_id, {}).get("inputs", {}).get(input_name)
            if value is not None and not isinstance(value, list):
                defaults[key] = value
    for key, allowed in CHOICES.items():
        # A sampler that a custom node added to KSampler's list stays fixed in the graph: the form and
        # grids only offer the core choices, and would refuse it.
        if key in params and defaults.get(key) not in allowed:
            params.pop(key)
            defaults.pop(key, None)
    uses_sd3_latent = any(workflow.get(n, {}).get("class_type") == "EmptySD3LatentImage"
                          for n, _ in params.get("width", []))
    required = [{"node": r.node_id, "input": r.input_name, "path": r.expected_path}
                for r in models_in_workflow(workflow) if r.node_id not in lora_nodes]
    renamed = copy.deepcopy(dict(workflow))
    plain_image_names(renamed)  # the form's uploads are sent under these names
    data = {
        "format": FORMAT, "name": slug, "title": title, "description": description,
        "notes": "Uploaded by staff from a ComfyUI Export (API) file.", "role": "image",
        "family": "custom", "uses_negative": bool(params.get("negative_prompt")),
        "defaults": defaults,
        "limits": {"size_multiple": 16 if uses_sd3_latent else 8, **_CUSTOM_LIMITS},
        "params": params, "without_lora": without_lora, "required_models": required,
        "workflow": copy.deepcopy(renamed),
    }
    parse_template(data, builtin=False)  # refuse an invalid template before anything is written
    store_dir = Path(store_dir)
    path = store_dir / f"{slug}.json"
    if path.exists() and not overwrite:
        raise TemplateError(f"a saved workflow named {title!r} already exists; choose another name "
                            f"or replace it")
    store_dir.mkdir(parents=True, exist_ok=True)
    _write(path, data)
    return parse_template(data, builtin=False, source=path)


def _write(path: Path, data: Mapping) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)  # atomic: a listing never sees a half-written template


def repoint_model(store_dir: Path, src: str, dst: str) -> list[str]:
    """After volume key `src` moved to `dst`, make the saved workflows in `store_dir` name `dst`; the titles
    of those changed. A loader reads from one models/<folder>, so a node whose file left that folder keeps
    its old name (preflight then says the file is missing) rather than naming a file it cannot load."""
    parts = src.split("/")
    folder = f"{parts[0]}/{parts[1]}/" if len(parts) > 2 else None
    if folder is None or not dst.startswith(folder) or not Path(store_dir).is_dir():
        return []
    changed = []
    for path in sorted(Path(store_dir).glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        workflow = data.get("workflow") or {}
        moved = False
        for ref in models_in_workflow(workflow):
            if ref.expected_path == src:
                workflow[ref.node_id]["inputs"][ref.input_name] = dst[len(folder):]
                moved = True
        for required in data.get("required_models") or []:
            if required.get("path") == src:
                required["path"] = dst
                moved = True
        if moved:
            parse_template(data, builtin=False)
            _write(path, data)
            changed.append(str(data.get("title") or data.get("name")))
    return changed


_RATIOS = (("1:1 square", 1, 1), ("4:5 portrait", 4, 5), ("3:4 portrait", 3, 4),
           ("2:3 portrait", 2, 3), ("9:16 tall", 9, 16), ("5:4 landscape", 5, 4),
           ("4:3 landscape", 4, 3), ("3:2 landscape", 3, 2), ("16:9 wide", 16, 9))


def size_presets(template: Template) -> list[SizePreset]:
    """Sizes by aspect ratio at the template's default pixel count, on its size grid."""
    lim = template.limits
    area = int(template.defaults.get("width", 1024)) * int(template.defaults.get("height", 1024))
    presets = []
    for label, rw, rh in _RATIOS:
        width = math.sqrt(area * rw / rh)
        height = width * rh / rw
        w, h = (min(lim.max_side, max(lim.min_side, round(v / lim.size_multiple) * lim.size_multiple))
                for v in (width, height))
        presets.append(SizePreset(f"{label} · {w}×{h}", w, h))
    return presets
