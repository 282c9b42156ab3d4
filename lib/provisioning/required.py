"""The model files each endpoint needs on the network volume, and whether they are there.

Image and special endpoints: every workflow template declares its files (`required_models`, volume
keys such as models/unet/flux1-dev.safetensors). Training: each AI Toolkit preset names Hugging Face
repositories (model.name_or_path, model.assistant_lora_path); the trainer's HF_HOME is on the volume
(workers/lora_trainer/Dockerfile), so each repository is a folder of the volume's Hugging Face cache,
.cache/huggingface/hub/models--<org>--<name>/, downloaded by the first run if it is not there.

A file that is not where the workflows load it from but whose name sits elsewhere on the volume is
"misplaced" (typically models/diffusion_models/ instead of models/unet/, which the stock worker
never scans — reference worker-contracts §1.7).
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lib.errors import ConsoleError
from lib.ops.flags import placement_flag
from lib.training.config import PRESETS
from lib.workflows.templates import list_templates

HF_HUB = ".cache/huggingface/hub/"
PRESENT, MISSING, MISPLACED = "present", "missing", "misplaced"
FILE, FOLDER = "file", "folder"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
MAX_LOCAL_ENTRIES = 50_000                 # a scan of a local folder stops here


class LocalFolderError(ConsoleError, ValueError):
    """The local folder cannot be used as a source; the message says why."""


@dataclass(frozen=True)
class Requirement:
    path: str                   # volume key of a file, or a folder prefix ending in "/"
    kind: str                   # file | folder
    roles: tuple[str, ...]
    used_by: tuple[str, ...]    # template titles and preset labels

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ModelState:
    requirement: Requirement
    status: str                 # present | missing | misplaced
    size: int | None = None
    found_at: tuple[str, ...] = ()
    advice: str = ""


def hf_repos(model: Mapping) -> list[str]:
    """Hugging Face repositories an AI Toolkit model block loads (not local paths)."""
    repos = []
    name = model.get("name_or_path")
    if isinstance(name, str) and _REPO_ID.match(name):
        repos.append(name)
    assistant = model.get("assistant_lora_path")
    if isinstance(assistant, str) and not assistant.startswith("/") and assistant.count("/") >= 2:
        repos.append("/".join(assistant.split("/")[:2]))
    return repos


def hf_cache_folder(repo: str) -> str:
    org, name = repo.split("/", 1)
    return f"{HF_HUB}models--{org}--{name}/"


def requirements(custom_dir: Path | None = None) -> list[Requirement]:
    """Every required file or folder once, with every endpoint role and template/preset using it."""
    found: dict[tuple[str, str], tuple[set[str], list[str]]] = {}

    def need(path: str, kind: str, role: str, user: str) -> None:
        roles, users = found.setdefault((path, kind), (set(), []))
        roles.add(role)
        if user not in users:
            users.append(user)

    for template in list_templates(custom_dir):
        for model in template.required_models:
            need(model.path, FILE, template.role, template.title or template.name)
    for preset in PRESETS.values():
        for repo in hf_repos(preset.model):
            need(hf_cache_folder(repo), FOLDER, "training", preset.label)
    return [Requirement(path, kind, tuple(sorted(roles)), tuple(users))
            for (path, kind), (roles, users) in sorted(found.items())]


def check(reqs: Iterable[Requirement], files: Mapping[str, int]) -> list[ModelState]:
    """Each requirement's state, given every file on the volume (key -> size)."""
    by_name: dict[str, list[str]] = {}
    for key in files:
        by_name.setdefault(key.rsplit("/", 1)[-1], []).append(key)
    states = []
    for req in reqs:
        if req.kind == FOLDER:
            inside = [k for k in files if k.startswith(req.path)]
            if inside:
                states.append(ModelState(req, PRESENT, sum(files[k] for k in inside)))
            else:
                states.append(ModelState(req, MISSING, advice=(
                    "the first training run with this preset downloads it into the volume's Hugging Face "
                    "cache (gated models need the endpoint's HF_TOKEN secret); or upload a local cache "
                    f"folder {req.name}")))
            continue
        if req.path in files:
            states.append(ModelState(req, PRESENT, files[req.path]))
            continue
        elsewhere = tuple(sorted(by_name.get(req.name, ())))
        if elsewhere:
            flag = placement_flag(elsewhere[0])
            if flag is not None and flag.move_to == req.path:
                advice = flag.message
            else:
                advice = (f"{req.name} is at {elsewhere[0]}, but the workflows load it from {req.path}; move it "
                          f"there on the Models page")
            states.append(ModelState(req, MISPLACED, files[elsewhere[0]], elsewhere, advice))
        else:
            states.append(ModelState(req, MISSING, advice="upload it from a local folder"))
    return states


def missing(states: Iterable[ModelState]) -> tuple[list[str], list[str]]:
    """Missing paths, and of those the files: Hugging Face folders usually come with the first training run."""
    gone = {s.requirement.path: s.requirement.kind for s in states if s.status == MISSING}
    return sorted(gone), sorted(p for p, kind in gone.items() if kind == FILE)


def for_role(states: Iterable[ModelState], role: str) -> list[ModelState]:
    return [s for s in states if role in s.requirement.roles]


@dataclass(frozen=True)
class LocalFolder:
    root: Path
    files: Mapping[str, tuple[Path, ...]]      # file name -> paths, shortest first
    folders: Mapping[str, tuple[Path, ...]]    # folder name -> paths


def scan_local(folder: str | Path) -> LocalFolder:
    """One walk of a folder on the console machine (symbolic links to files are followed)."""
    root = Path(folder).expanduser()
    if not str(folder).strip():
        raise LocalFolderError("give the path of a folder on the console machine")
    if not root.is_dir():
        raise LocalFolderError(f"{root} is not a folder on the console machine")
    files: dict[str, list[Path]] = {}
    folders: dict[str, list[Path]] = {}
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        seen += len(dirnames) + len(filenames)
        if seen > MAX_LOCAL_ENTRIES:
            raise LocalFolderError(f"{root} holds more than {MAX_LOCAL_ENTRIES:,} files and folders; point at the "
                                   f"folder that holds the model files")
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in dirnames:
            folders.setdefault(name, []).append(Path(dirpath) / name)
        for name in filenames:
            files.setdefault(name, []).append(Path(dirpath) / name)

    def ordered(paths: list[Path]) -> tuple[Path, ...]:
        return tuple(sorted(paths, key=lambda p: (len(p.parts), str(p))))
    return LocalFolder(root, {k: ordered(v) for k, v in files.items()},
                       {k: ordered(v) for k, v in folders.items()})


def sources(req: Requirement, local: LocalFolder) -> list[tuple[Path, str]]:
    """(local file, volume key) pairs that would put this requirement on the volume; [] if not found."""
    if req.kind == FILE:
        candidates = [p for p in local.files.get(req.name, ()) if p.is_file()]
        if not candidates:
            return []
        # A copy of the volume's layout (…/models/unet/x) wins over a loose file of the same name.
        exact = [p for p in candidates if p.as_posix().endswith("/" + req.path)]
        return [((exact or candidates)[0], req.path)]
    for folder in local.folders.get(req.name, ()):
        pairs = []
        # refs/ and snapshots/ are the cache as readers use it; blobs/ holds the same bytes again
        # behind the snapshot links, and links do not survive the S3 API.
        for part in ("refs", "snapshots"):
            for dirpath, _, filenames in os.walk(folder / part, followlinks=True):
                for name in sorted(filenames):
                    path = Path(dirpath) / name
                    if path.is_file():
                        pairs.append((path, req.path + path.relative_to(folder).as_posix()))
        if pairs:
            return sorted(pairs, key=lambda pair: pair[1])
    return []


def readiness_rows(states: Iterable[ModelState], role: str) -> list[dict]:
    """One row per model an endpoint needs, for a table: where it goes, its state, what to do."""
    return [{"model": s.requirement.path, "state": s.status,
             "size": f"{s.size / 1e6:,.1f} MB" if s.size is not None else "",
             "used by": ", ".join(s.requirement.used_by), "what to do": s.advice}
            for s in for_role(states, role)]
