"""Which templates and recent jobs reference a model file ("used by").

Workflows name model files relative to their folder ("ava_v1.safetensors", or "sub/x.safetensors"
for a file in a sub-folder; reference worker-contracts §1.7), and training configs may carry
absolute worker paths (/runpod-volume/...). So references are collected generically: every string
anywhere in a template's workflow or a job's input that ends in a model-file extension.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft", ".gguf", ".onnx")
# Where workers and pods see the volume (reference §4): stripped so the rest is a volume key.
_MOUNTS = ("/runpod-volume/", "/workspace/")


@dataclass(frozen=True)
class Reference:
    """One place that names a model file."""

    kind: str       # "template" | "job"
    id: str         # template name or job local id
    label: str      # what a person reads: template name, or "<role> job <id> (<kind>)"
    where: str      # "node 4 · lora_name" for workflows, a dotted path otherwise
    name: str       # the file name as written there
    builtin: bool = False   # a template shipped with the console (its file cannot be edited here)


def is_model_name(value: str) -> bool:
    return value.lower().endswith(MODEL_EXTENSIONS)


def _normalise(name: str) -> str:
    name = name.strip().replace("\\", "/")
    for mount in _MOUNTS:
        if name.startswith(mount):
            return name[len(mount):]
    return name.lstrip("/")


def names_in(payload: object) -> Iterator[tuple[str, str]]:
    """(where, file name) for every model-file string in a workflow or job input."""
    if isinstance(payload, Mapping) and _looks_like_workflow(payload):
        for node_id, node in payload.items():
            for field, value in (node.get("inputs") or {}).items():
                if isinstance(value, str) and is_model_name(value):
                    yield f"node {node_id} · {field}", value
        return
    yield from _walk(payload, "")


def _looks_like_workflow(payload: Mapping) -> bool:
    return bool(payload) and all(isinstance(v, Mapping) and "class_type" in v for v in payload.values())


def _walk(value: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        if is_model_name(value):
            yield path or "(value)", value
    elif isinstance(value, Mapping):
        if _looks_like_workflow(value):
            for where, name in names_in(value):
                yield f"{path} {where}".strip(), name
            return
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")


def matches(key: str, name: str) -> bool:
    """Does a reference `name` point at volume `key`? Bare names match any folder; paths must agree."""
    ref = _normalise(name)
    return bool(ref) and (key == ref or key.endswith("/" + ref))


def _get(record: object, field: str, default=None):
    if isinstance(record, Mapping):
        return record.get(field, default)
    return getattr(record, field, default)


class UsageIndex:
    """Answers "who references this file?" for one set of templates and recent jobs."""

    def __init__(self, templates: Iterable[Mapping] = (), jobs: Iterable[object] = ()):
        self._by_base: dict[str, list[Reference]] = {}
        for template in templates:
            tname = str(template.get("name", "unnamed template"))
            for where, name in names_in(template.get("workflow") or {}):
                self._add(Reference("template", tname, tname, where, name, bool(template.get("builtin"))))
        for job in jobs:
            job_id = str(_get(job, "local_id") or _get(job, "id") or "?")
            label = f"{_get(job, 'role', 'job')} job {job_id}"
            if _get(job, "kind"):
                label += f" ({_get(job, 'kind')})"
            for where, name in names_in(_get(job, "input") or {}):
                self._add(Reference("job", job_id, label, where, name))

    def _add(self, ref: Reference) -> None:
        base = _normalise(ref.name).rsplit("/", 1)[-1]
        self._by_base.setdefault(base, []).append(ref)

    def used_by(self, key: str) -> list[Reference]:
        """References to the file at volume key, templates first; one entry per (kind, id, where)."""
        base = key.rsplit("/", 1)[-1]
        seen, found = set(), []
        for ref in self._by_base.get(base, []):
            ident = (ref.kind, ref.id, ref.where)
            if ident not in seen and matches(key, ref.name):
                seen.add(ident)
                found.append(ref)
        return sorted(found, key=lambda r: (r.kind != "template", r.label, r.where))

    def is_used(self, key: str) -> bool:
        return any(matches(key, ref.name) for ref in self._by_base.get(key.rsplit("/", 1)[-1], []))

    def referenced_names(self) -> set[str]:
        """Every referenced file name, normalised (for flags.large_unused)."""
        return {_normalise(ref.name) for refs in self._by_base.values() for ref in refs}
