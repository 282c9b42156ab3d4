"""Flags on the network volume: files the workers will not find, stray LoRAs, duplicates, dead weight.

Folder rules come from worker-comfyui's src/extra_model_paths.yaml (reference worker-contracts §1.7):
with base_path /runpod-volume the stock worker scans exactly models/<folder>/ for the folders in
SCANNED_FOLDERS. models/diffusion_models/ and models/text_encoders/ are NOT scanned (ComfyUI maps
the legacy names unet → diffusion_models and clip → text_encoders, so those files belong in
models/unet/ and models/clip/), and a wrong root (checkpoints/ at the volume root, or the
comfyui/models/ subtree some docs mention) is invisible too.
"""
from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from lib.ops.usage import MODEL_EXTENSIONS, matches
from lib.ops.volume_index import IndexedFile
from lib.severity import ERROR, INFO, RANK, WARNING

SCANNED_FOLDERS = frozenset({"checkpoints", "clip", "clip_vision", "configs", "controlnet", "embeddings",
                             "loras", "upscale_models", "vae", "unet"})
# Folders ComfyUI knows under a new name that the stock yaml does not register: where the file must go.
RENAMED_FOLDERS = {"diffusion_models": "unet", "text_encoders": "clip"}
# Model folder names: at the volume root instead of under models/ they are the "wrong root" mistake.
_KNOWN_MODEL_FOLDERS = SCANNED_FOLDERS | set(RENAMED_FOLDERS)
_WRONG_ROOTS = ("comfyui/models/", "workspace/models/", "runpod-volume/models/")

LARGE_BYTES = 1_000_000_000
UNUSED_DAYS = 30
# Files whose content must be read to compare them and that are bigger than this are reported as
# "possible duplicates" instead: downloading several GB from the S3 API to hash them is not worth it.
MAX_HASH_BYTES = 2 * 1024**3

# Copies the console makes on purpose, never flagged as duplicates: training outputs (loras/) and the
# checkpoints staged from them for a grid (models/loras/_candidates/) — so a promoted copy in
# models/loras/ has no twin left to be flagged with — and the demo photos (demo/) and the training
# sets built from photos (datasets/).
CONSOLE_COPIES = ("loras/", "models/loras/_candidates/", "demo/", "datasets/")

_MD5 = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Flag:
    kind: str           # unscanned_folder | unmapped_folder | wrong_root | lora_outside | lora_not_promoted
                        # | duplicate | possible_duplicate | large_unused
    severity: str       # error | warning | info
    key: str
    message: str
    move_to: str | None = None                 # where the file must go, when there is one right place
    related: tuple[str, ...] = field(default=())  # the other files of a duplicate group


def _is_model_file(key: str) -> bool:
    return key.lower().endswith(MODEL_EXTENSIONS)


def _is_lora(key: str) -> bool:
    # Only weight files count: samples, captions and logs under loras/ are training artefacts, not LoRAs.
    if not _is_model_file(key):
        return False
    return key.startswith("loras/") or "lora" in key.lower()


def placement_flag(key: str) -> Flag | None:
    """The one placement problem of a file, most specific first, or None when it sits where it should."""
    parts = key.split("/")
    name = parts[-1]
    if _is_lora(key) and not key.startswith("models/loras/"):
        # Training writes checkpoints to loras/<name>/<run>/ (DESIGN.md); they are promoted by copy later.
        if parts[0] == "loras" and len(parts) == 4:
            return Flag("lora_not_promoted", INFO, key,
                        f"{name} is a training output that has not been promoted yet; promote it to "
                        f"models/loras/ (Training page) to use it in image jobs.")
        return Flag("lora_outside", WARNING, key,
                    f"{name} looks like a LoRA but sits outside models/loras/, where the worker looks for "
                    f"LoRAs; move it to models/loras/{name}.", move_to=f"models/loras/{name}")
    lowered = key.lower()
    for root in _WRONG_ROOTS:
        if lowered.startswith(root) and len(parts) >= 4:
            folder = RENAMED_FOLDERS.get(parts[2], parts[2])
            target = "models/" + "/".join([folder, *parts[3:]])
            return Flag("wrong_root", ERROR, key,
                        f"{key} is under {key[:len(root)]}, which the worker never reads; model folders live "
                        f"directly under the volume root at models/. Move it to {target}.", move_to=target)
    if parts[0] in _KNOWN_MODEL_FOLDERS and len(parts) >= 2 and _is_model_file(key):
        folder = RENAMED_FOLDERS.get(parts[0], parts[0])
        target = "models/" + "/".join([folder, *parts[1:]])
        return Flag("wrong_root", ERROR, key,
                    f"{key} is at the volume root; the worker only reads models/<folder>/. Move it to "
                    f"{target}.", move_to=target)
    if parts[0] == "models" and len(parts) == 2 and _is_model_file(key):
        return Flag("unscanned_folder", ERROR, key,
                    f"{name} sits directly in models/, which no loader reads; move it into the folder of its "
                    f"loader, e.g. models/checkpoints/ or models/unet/.")
    if parts[0] == "models" and len(parts) >= 3:
        folder = parts[1]
        if folder in RENAMED_FOLDERS:
            target = "models/" + "/".join([RENAMED_FOLDERS[folder], *parts[2:]])
            return Flag("unscanned_folder", ERROR, key,
                        f"The stock worker does not scan models/{folder}/, so {name} is invisible to it; "
                        f"move it to {target} (ComfyUI reads {RENAMED_FOLDERS[folder]}/ for the same "
                        f"loaders).", move_to=target)
        if folder not in SCANNED_FOLDERS and _is_model_file(key):
            return Flag("unmapped_folder", WARNING, key,
                        f"models/{folder}/ is not in the stock worker's extra_model_paths.yaml, so {name} is "
                        f"only found by a custom image that bakes it in or maps the folder.")
    return None


def placement_flags(files: Iterable[IndexedFile]) -> list[Flag]:
    return [f for f in (placement_flag(file.key) for file in files) if f is not None]


def large_unused_flags(files: Iterable[IndexedFile], referenced: Iterable[str], *, now: datetime,
                       large_bytes: int = LARGE_BYTES, unused_days: int = UNUSED_DAYS) -> list[Flag]:
    """Big files no template or recent job references and that were not written recently either.

    `referenced` holds file names as templates and jobs of the last `unused_days` name them
    (UsageIndex.referenced_names()). A file uploaded within that window is not "unused for 30 days" yet.
    """
    by_base: dict[str, list[str]] = {}
    for name in referenced:
        by_base.setdefault(name.rsplit("/", 1)[-1], []).append(name)
    cutoff = now - timedelta(days=unused_days)
    flags = []
    for file in files:
        if file.size <= large_bytes or file.modified > cutoff:
            continue
        if any(matches(file.key, name) for name in by_base.get(file.name, ())):
            continue
        flags.append(Flag("large_unused", INFO, file.key,
                          f"{file.name} ({file.size / 1e9:.1f} GB) has not been used by any template or job in "
                          f"{unused_days} days; delete it if nothing needs it (the volume is billed per GB)."))
    return flags


def local_md5(volume, key: str) -> str:
    """MD5 of a file's content (S3's ETag for single-part uploads), streamed through the Volume."""
    digest = hashlib.md5(usedforsecurity=False)
    with tempfile.TemporaryDirectory(prefix="console-hash-") as tmp:
        path = volume.download(key, Path(tmp) / "blob")
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _plain_md5(etag: str | None) -> str | None:
    # Multipart ETags ("<md5 of md5s>-<parts>") are not content hashes; quotes come from some S3 servers.
    value = (etag or "").strip('"').lower()
    return value if _MD5.match(value) else None


def duplicate_flags(groups: Iterable[list[IndexedFile]], *, volume=None,
                    hasher: Callable[[str], str] | None = None,
                    max_hash_bytes: int = MAX_HASH_BYTES) -> list[Flag]:
    """Duplicates among same-size groups (VolumeIndex.same_size_groups()).

    Plain-MD5 ETags are compared as they are; only files without one are read and hashed (MD5, so the
    result compares with the others' ETags). Identical multipart ETags at the same size are taken as
    identical content.
    """
    if hasher is None and volume is not None:
        def hasher(key: str) -> str:
            return local_md5(volume, key)
    flags: list[Flag] = []
    for group in groups:
        group = [f for f in group if not f.key.startswith(CONSOLE_COPIES)]
        if len(group) < 2:
            continue
        by_digest: dict[str, list[str]] = {}
        unknown: list[str] = []
        for file in group:
            digest = _plain_md5(file.etag)
            if digest is None and file.etag and _same_multipart(file, group):
                digest = "multipart:" + file.etag.strip('"')
            if digest is None and hasher is not None and file.size <= max_hash_bytes:
                digest = hasher(file.key)
            if digest is None:
                unknown.append(file.key)
            else:
                by_digest.setdefault(digest, []).append(file.key)
        for keys in by_digest.values():
            if len(keys) > 1:
                flags.extend(_dup(k, keys, "duplicate", WARNING,
                                  "has the same size and content as") for k in keys)
        if unknown:
            others = unknown + [k for keys in by_digest.values() for k in keys]
            flags.extend(_dup(k, others, "possible_duplicate", INFO,
                              "has the same size (content not compared) as") for k in unknown)
    return flags


def _same_multipart(file: IndexedFile, group: list[IndexedFile]) -> bool:
    return sum(1 for f in group if f.etag == file.etag) > 1


def _dup(key: str, keys: list[str], kind: str, severity: str, phrase: str) -> Flag:
    others = tuple(k for k in keys if k != key)
    shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
    return Flag(kind, severity, key, f"{key.rsplit('/', 1)[-1]} {phrase} {shown}.", related=others)


def all_flags(index, *, referenced: Iterable[str], now: datetime, volume=None,
              hasher: Callable[[str], str] | None = None) -> list[Flag]:
    """Every flag for a VolumeIndex, errors first."""
    files = list(index.files())
    flags = placement_flags(files)
    flags += duplicate_flags(index.same_size_groups(), volume=volume, hasher=hasher)
    flags += large_unused_flags(files, referenced, now=now)
    return sorted(flags, key=lambda f: (RANK[f.severity], f.kind, f.key))
