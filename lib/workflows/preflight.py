"""Preflight: catch, before any GPU time is spent, what would make worker-comfyui fail.

Checks (reference worker-contracts §1.2, §1.7, §1.8): every model file a loader names is in the
folder the stock worker scans (`models/<folder>/` on the volume); a file that sits only in an
unscanned place — `models/diffusion_models/`, `models/text_encoders/`, a wrong root such as
`/checkpoints/`, or a training output not yet promoted from `loras/<run>/` — is reported as
misplaced with where it is and where it must go; a missing file gets the closest name in its
folder. Input images named by LoadImage nodes must be in `input.images` and decodable, and the
body must fit RunPod's /run limit. The volume is listed once per prefix.
"""
from __future__ import annotations

import base64
import binascii
import difflib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from PIL import Image, UnidentifiedImageError

from lib.volume import Volume, VolumeError, VolumeNotFound
from lib.workflows.graph import (INVISIBLE_ALIASES, ModelRef, load_image_names, models_in_workflow,
                                 structure_problems)

RUN_BODY_LIMIT = 10_000_000  # bytes, POST /run (reference §1.1)

MISSING, MISPLACED, INPUT_IMAGE, TOO_LARGE, INVALID = (
    "missing", "misplaced", "input_image", "too_large", "invalid")


@dataclass(frozen=True)
class Problem:
    node_id: str | None
    class_type: str | None
    field: str | None
    file: str | None
    expected_path: str | None
    found_at: str | None
    nearest: str | None
    message: str
    kind: str = MISSING


@dataclass(frozen=True)
class ModelsNotChecked:
    """In place of a volume: the model files cannot be checked (a dev worker without models_dir)."""

    reason: str

    def list(self, prefix: str = "", *, page_size: int = 1000):
        return iter(())


@dataclass(frozen=True)
class PreflightReport:
    ok: bool
    problems: list[Problem]
    models: list[ModelRef] = field(default_factory=list)
    body_bytes: int | None = None
    not_checked: str = ""  # why the model files were not checked, when they were not

    @property
    def summary(self) -> str:
        if self.ok and self.not_checked and self.models:
            return f"Preflight could not check the {len(self.models)} model file(s): {self.not_checked}."
        if self.ok:
            return f"Preflight passed: {len(self.models)} model file(s) found where the worker looks."
        return f"Preflight found {len(self.problems)} problem(s); nothing was sent."


class _Listing:
    """Relative file names under volume prefixes, each prefix listed at most once."""

    def __init__(self, volume: Volume):
        self.volume = volume
        self._cache: dict[str, list[str]] = {}
        self._models: dict[str, list[str]] | None = None

    def names(self, prefix: str) -> list[str]:
        if prefix not in self._cache:
            try:
                keys = [obj.key for obj in self.volume.list(prefix)]
            except VolumeNotFound:
                keys = []
            self._cache[prefix] = sorted(k[len(prefix):] for k in keys
                                         if k.startswith(prefix) and not k.endswith("/"))
        return self._cache[prefix]

    def models(self) -> dict[str, list[str]]:
        """models/<folder>/<name> for the whole models tree, from one listing."""
        if self._models is None:
            by_folder: dict[str, list[str]] = {}
            for rel in self.names("models/"):
                folder, _, name = rel.partition("/")
                if name:
                    by_folder.setdefault(folder, []).append(name)
            self._models = by_folder
        return self._models


def _unpack(obj: Mapping) -> tuple[object, list, Mapping | None]:
    """(workflow, input images, full payload or None) from a payload, a job input or a bare graph."""
    if isinstance(obj, Mapping) and isinstance(obj.get("input"), Mapping) and "workflow" in obj["input"]:
        body = obj["input"]
        return body.get("workflow"), list(body.get("images") or []), obj
    if isinstance(obj, Mapping) and "workflow" in obj and isinstance(obj.get("workflow"), Mapping):
        return obj["workflow"], list(obj.get("images") or []), {"input": obj}
    return obj, [], None


def _same_file(rel: str, wanted: str) -> bool:
    return rel == wanted or PurePosixPath(rel).name == PurePosixPath(wanted).name


def _where_else(ref: ModelRef, listing: _Listing, tree: dict[str, list[str]]) -> tuple[str, str] | None:
    """(volume key, reason) of a copy of `ref.file` somewhere the worker does not look."""
    alias = INVISIBLE_ALIASES.get(ref.folder)
    if alias:
        for rel in tree.get(alias, []):
            if _same_file(rel, ref.file):
                return (f"models/{alias}/{rel}",
                        f"models/{alias}/ is not scanned by the stock worker-comfyui image")
    for folder, names in sorted(tree.items()):
        if folder in (ref.folder, alias):
            continue
        for rel in names:
            if _same_file(rel, ref.file):
                return (f"models/{folder}/{rel}",
                        f"a {ref.class_type} only loads from models/{ref.folder}/")
    roots = [f"{ref.folder}/", f"comfyui/models/{ref.folder}/"] + ([f"{alias}/"] if alias else [])
    for root in roots:
        for rel in listing.names(root):
            if _same_file(rel, ref.file):
                if ref.folder == "loras" and root == "loras/":
                    reason = "that is a training output that has not been promoted yet"
                else:
                    reason = "the worker only reads models/<folder>/ directly under the volume root"
                return f"{root}{rel}", reason
    return None


def _check_model(ref: ModelRef, listing: _Listing, tree: dict[str, list[str]]) -> Problem | None:
    names = tree.get(ref.folder, [])
    if ref.file in names:
        return None
    where = f"Node {ref.node_id} ({ref.class_type}) {ref.input_name}: {ref.file!r}"
    elsewhere = _where_else(ref, listing, tree)
    if elsewhere:
        found_at, reason = elsewhere
        return Problem(ref.node_id, ref.class_type, ref.input_name, ref.file, ref.expected_path,
                       found_at, None, f"{where} is at {found_at}, but {reason}. Move it to "
                       f"{ref.expected_path}.", MISPLACED)
    close = difflib.get_close_matches(ref.file, names, n=1, cutoff=0.5)
    nearest = close[0] if close else None
    if nearest:
        hint = f" The closest file in models/{ref.folder}/ is {nearest!r}."
    elif names:
        hint = f" Nothing with a similar name is in models/{ref.folder}/."
    else:
        hint = f" models/{ref.folder}/ is empty."
    return Problem(ref.node_id, ref.class_type, ref.input_name, ref.file, ref.expected_path,
                   None, nearest, f"{where} is not on the volume (expected at {ref.expected_path})."
                   f"{hint} Upload it on the Models page or choose another file.", MISSING)


def _check_images(workflow: Mapping, images: list) -> list[Problem]:
    problems = []
    sent: dict[str, object] = {}
    for entry in images:
        if not isinstance(entry, Mapping) or "name" not in entry or "image" not in entry:
            problems.append(Problem(None, None, "images", None, None, None, None,
                                    "every entry of input.images needs a name and an image", INPUT_IMAGE))
            continue
        sent[str(entry["name"])] = entry["image"]
    for node_id, name in load_image_names(workflow):
        if name not in sent:
            nearest = difflib.get_close_matches(name, list(sent), n=1, cutoff=0.5)
            problems.append(Problem(
                node_id, "LoadImage", "image", name, None, None, nearest[0] if nearest else None,
                f"Node {node_id} (LoadImage) image: {name!r} is not among the images sent with the job"
                + (f" (sent: {', '.join(sorted(sent))})" if sent else " (no images are sent)")
                + ". Attach the image or change the node.", INPUT_IMAGE))
    for name, data in sent.items():
        reason = _image_problem(data)
        if reason:
            problems.append(Problem(None, "LoadImage", "images", name, None, None, None,
                                    f"input image {name!r} {reason}", INPUT_IMAGE))
    return problems


def _image_problem(data: object) -> str | None:
    if not isinstance(data, str) or not data:
        return "has no base64 data"
    payload = data.split(",", 1)[1] if "," in data else data  # the worker keeps what follows the comma
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return "is not valid base64"
    try:
        with Image.open(io.BytesIO(raw)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return "is not a readable image (PNG, JPEG or WEBP expected)"
    return None


def body_size(payload: Mapping) -> int:
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def preflight(payload_or_workflow: Mapping, volume: Volume | ModelsNotChecked) -> PreflightReport:
    """Check a job payload (or a job input, or a bare workflow) against the network volume (or what
    stands for it: a dev worker's models folder; ModelsNotChecked skips the model files and says why)."""
    return _preflight(payload_or_workflow, _Listing(volume))


def preflight_many(payloads: Sequence[Mapping], volume: Volume | ModelsNotChecked) -> PreflightReport:
    """One report for a batch or grid: the volume is listed once for all, each problem kept once."""
    listing = _Listing(volume)
    problems: list[Problem] = []
    models: list[ModelRef] = []
    largest = None
    for payload in payloads:
        report = _preflight(payload, listing)
        problems += [p for p in report.problems if p not in problems]
        models += [m for m in report.models if m not in models]
        if report.body_bytes is not None:
            largest = max(largest or 0, report.body_bytes)
    return PreflightReport(not problems, problems, models, largest, _not_checked(listing))


def _not_checked(listing: _Listing) -> str:
    return listing.volume.reason if isinstance(listing.volume, ModelsNotChecked) else ""


def _preflight(payload_or_workflow: Mapping, listing: _Listing) -> PreflightReport:
    workflow, images, payload = _unpack(payload_or_workflow)
    structural = structure_problems(workflow)
    if structural:
        problems = [Problem(None, None, None, None, None, None, None, text, INVALID) for text in structural]
        return PreflightReport(False, problems)
    refs = models_in_workflow(workflow)
    problems: list[Problem] = []
    if refs and not _not_checked(listing):
        try:
            tree = listing.models()
            problems += [p for p in (_check_model(ref, listing, tree) for ref in refs) if p]
        except VolumeError as exc:
            problems.append(Problem(None, None, None, None, None, None, None,
                                    f"the network volume could not be listed ({exc}); model files "
                                    f"were not checked — try again", INVALID))
    problems += _check_images(workflow, images)
    size = None
    if payload is not None:
        size = body_size(payload)
        if size >= RUN_BODY_LIMIT:
            problems.append(Problem(None, None, None, None, None, None, None,
                                    f"the request is {size / 1e6:.1f} MB, over RunPod's 10 MB limit for "
                                    f"/run: send fewer or smaller input images", TOO_LARGE))
    return PreflightReport(not problems, problems, refs, size, _not_checked(listing))
