"""Training sets on the network volume: create, edit as a draft, save each edit as a new version.

Layout (what the worker reads as /runpod-volume/datasets/<name>/<version>):

    datasets/<name>/set.json                      name, trigger word, who created it and when
    datasets/<name>/v1/ava_001.jpg + ava_001.txt  images and same-stem captions (AI Toolkit's layout)
    datasets/<name>/v1/manifest.json              files with hashes and measurements, who, when, parent

A version is complete once its manifest exists (written last), and is never changed afterwards:
a training run records the version it used, so the images behind a LoRA can always be found.
"""
from __future__ import annotations

import builtins
import hashlib
import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from lib import previews
from lib.errors import ConsoleError
from lib.training.images import ANALYSIS_VERSION, ImageInfo, load_image, make_thumbnail
from lib.training.readiness import ReadinessReport, check_set, has_trigger
from lib.training.uploads import UploadResult
from lib.volume import Volume, VolumeError, VolumeNotFound

ROOT = "datasets"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,47}$")
TRIGGER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,39}$")
VERSION_RE = re.compile(r"^v(\d+)$")
MANIFEST = "manifest.json"
SET_FILE = "set.json"


class DatasetError(ConsoleError, ValueError):
    """A training-set operation cannot be done; the message says why and what to do."""


def validate_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME_RE.match(name):
        raise DatasetError("A set name must be 2–48 characters: lower-case letters, digits, '-' or '_', "
                           "starting with a letter or digit (e.g. 'ava' or 'ava-studio').")
    return name


def validate_trigger(word: str) -> str:
    word = (word or "").strip()
    if not TRIGGER_RE.match(word):
        raise DatasetError("The trigger word must be one token of 2–40 letters, digits, '-' or '_' "
                           "(e.g. 'ava_tok'); pick something the base model does not already know.")
    return word


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class TrainingSet:
    name: str
    trigger_word: str
    created_by: str
    created_at: str
    versions: tuple[str, ...] = ()

    @property
    def latest(self) -> str | None:
        return self.versions[-1] if self.versions else None


@dataclass(frozen=True)
class ManifestFile:
    image: str
    caption_file: str | None
    info: ImageInfo
    caption_sha256: str | None = None


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    trigger_word: str
    parent: str | None
    created_by: str
    created_at: str
    files: tuple[ManifestFile, ...]
    acknowledged: tuple[str, ...] = ()     # warning keys someone accepted for this version
    note: str = ""

    def to_dict(self) -> dict:
        return {
            "name": self.name, "version": self.version, "trigger_word": self.trigger_word,
            "parent": self.parent, "created_by": self.created_by, "created_at": self.created_at,
            "note": self.note, "acknowledged_warnings": list(self.acknowledged),
            "image_count": len(self.files),
            "files": [{"image": f.image, "caption_file": f.caption_file, "caption_sha256": f.caption_sha256,
                       **f.info.to_dict()} for f in self.files],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Manifest:
        files = tuple(ManifestFile(image=f["image"], caption_file=f.get("caption_file"),
                                   caption_sha256=f.get("caption_sha256"), info=ImageInfo.from_dict(f))
                      for f in data.get("files", []))
        return cls(name=data["name"], version=data["version"], trigger_word=data["trigger_word"],
                   parent=data.get("parent"), created_by=data.get("created_by", ""),
                   created_at=data.get("created_at", ""), files=files,
                   acknowledged=tuple(data.get("acknowledged_warnings", [])), note=data.get("note", ""))


@dataclass
class DraftImage:
    name: str                  # file name in the version folder
    data: bytes | None         # None: unchanged since `origin` and not loaded
    info: ImageInfo
    caption: str | None = None
    origin: str | None = None  # volume key of the same bytes in an earlier version

    thumb: bytes | None = field(default=None, repr=False)

    def _bytes(self, volume: Volume) -> bytes:
        if self.data is not None:
            return self.data
        if self.origin is None:
            raise DatasetError(f"{self.name} has neither data nor a source on the volume")
        return volume.read(self.origin)

    def read(self, volume: Volume) -> bytes:
        self.data = self._bytes(volume)
        return self.data

    def thumbnail(self, volume: Volume, cache: Path) -> bytes:
        """A small JPEG for previews, made once per photo and kept in `cache` (lib/previews.py); kept
        here instead of the full image of a saved version, so an open draft does not hold every original
        in memory."""
        if self.thumb is None:
            self.thumb = previews.thumbnail(self.info.sha256, lambda: make_thumbnail(self._bytes(volume)), cache)
        return self.thumb


def _safe_stem(raw: str) -> str:
    stem = posixpath.splitext(posixpath.basename(raw.replace("\\", "/")))[0]
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_-")[:60]
    return stem or "image"


@dataclass
class DatasetDraft:
    """An editable copy of a version (or of a new set); only `TrainingSets.save` writes it."""

    name: str
    trigger_word: str
    images: list[DraftImage] = field(default_factory=list)
    parent: str | None = None
    acknowledged: set[str] = field(default_factory=set)

    def _index(self, name: str) -> DraftImage:
        for image in self.images:
            if image.name == name:
                return image
        raise DatasetError(f"{name} is not in this training set")

    def add(self, upload: UploadResult) -> list[str]:
        """Add accepted uploads; names are made file-system safe and unique. Returns the new names."""
        taken = {posixpath.splitext(i.name)[0] for i in self.images}
        added = []
        for item in upload.images:
            stem = _safe_stem(item.stem)
            candidate, n = stem, 2
            while candidate in taken:
                candidate, n = f"{stem}_{n}", n + 1
            taken.add(candidate)
            name = candidate + item.image.extension
            self.images.append(DraftImage(name=name, data=item.image.data, info=item.image.info,
                                          caption=item.caption))
            added.append(name)
        return added

    def remove(self, names: Iterable[str]) -> None:
        doomed = set(names)
        unknown = doomed - {i.name for i in self.images}
        if unknown:
            raise DatasetError(f"not in this training set: {', '.join(sorted(unknown))}")
        self.images = [i for i in self.images if i.name not in doomed]

    def captions(self) -> dict[str, str | None]:
        return {i.name: i.caption for i in self.images}

    def set_captions(self, captions: Mapping[str, str | None]) -> int:
        """Apply edited captions (e.g. from the caption table); returns how many changed."""
        changed = 0
        for name, caption in captions.items():
            image = self._index(name)
            caption = " ".join(caption.split()) if caption else None
            if caption != image.caption:
                image.caption = caption
                changed += 1
        return changed

    def insert_trigger(self, *, names: Iterable[str] | None = None) -> int:
        """Put the trigger word in front of every caption that lacks it (empty captions get the
        trigger word alone); returns how many captions changed."""
        chosen = set(names) if names is not None else None
        changed = 0
        for image in self.images:
            if chosen is not None and image.name not in chosen:
                continue
            caption = image.caption or ""
            if not has_trigger(caption, self.trigger_word):
                image.caption = f"{self.trigger_word}, {caption}" if caption.strip() else self.trigger_word
                changed += 1
        return changed

    def find_replace(self, find: str, replace: str, *, case_sensitive: bool = False,
                     whole_word: bool = False) -> int:
        """Replace text across all captions; returns the number of replacements made."""
        if not find:
            raise DatasetError("Enter the text to find.")
        pattern = re.escape(find)
        if whole_word:
            pattern = rf"(?<!\w){pattern}(?!\w)"
        regex = re.compile(pattern, 0 if case_sensitive else re.IGNORECASE)
        total = 0
        for image in self.images:
            if not image.caption:
                continue
            new, count = regex.subn(lambda _m: replace, image.caption)
            if count:
                image.caption = " ".join(new.split()) or None
                total += count
        return total

    def caption_rows(self) -> list[dict]:
        """Rows for an editable caption table."""
        return [{"image": i.name, "caption": i.caption or "",
                 "has_trigger": bool(i.caption and has_trigger(i.caption, self.trigger_word)),
                 "size": f"{i.info.width}×{i.info.height}"} for i in self.images]

    def readiness(self) -> ReadinessReport:
        return check_set({i.name: i.info for i in self.images}, self.captions(), self.trigger_word)


class TrainingSets:
    """Training sets stored on a Volume."""

    def __init__(self, volume: Volume):
        self.volume = volume

    def _set_prefix(self, name: str) -> str:
        return f"{ROOT}/{validate_name(name)}/"

    def create(self, name: str, trigger_word: str, user: str) -> TrainingSet:
        name, trigger_word = validate_name(name), validate_trigger(trigger_word)
        key = f"{ROOT}/{name}/{SET_FILE}"
        if self.volume.exists(key):
            raise DatasetError(f"A training set named {name!r} already exists; open it or choose another name.")
        info = {"name": name, "trigger_word": trigger_word, "created_by": user, "created_at": _now()}
        self.volume.write(key, json.dumps(info, indent=2).encode())
        return TrainingSet(name=name, trigger_word=trigger_word, created_by=user, created_at=info["created_at"])

    def list(self) -> list[TrainingSet]:
        dirs, _ = self.volume.list_dir(f"{ROOT}/")
        out = []
        for prefix in dirs:
            name = prefix.rstrip("/").rsplit("/", 1)[-1]
            if NAME_RE.match(name) and self.volume.exists(f"{prefix}{SET_FILE}"):
                out.append(self.get(name))
        return out

    def get(self, name: str) -> TrainingSet:
        prefix = self._set_prefix(name)
        try:
            info = json.loads(self.volume.read(prefix + SET_FILE))
        except VolumeNotFound:
            raise DatasetError(f"There is no training set named {name!r}.") from None
        return TrainingSet(name=info["name"], trigger_word=info["trigger_word"],
                           created_by=info.get("created_by", ""), created_at=info.get("created_at", ""),
                           versions=tuple(self.versions(name)))

    # In this class `list` names the method above, so annotations spell out builtins.list.
    def _version_dirs(self, name: str) -> builtins.list[tuple[int, str]]:
        dirs, _ = self.volume.list_dir(self._set_prefix(name))
        found = []
        for prefix in dirs:
            m = VERSION_RE.match(prefix.rstrip("/").rsplit("/", 1)[-1])
            if m:
                found.append((int(m.group(1)), f"v{m.group(1)}"))
        return sorted(found)

    def versions(self, name: str) -> builtins.list[str]:
        """Complete versions (with a manifest), oldest first."""
        prefix = self._set_prefix(name)
        return [v for _, v in self._version_dirs(name) if self.volume.exists(f"{prefix}{v}/{MANIFEST}")]

    def manifest(self, name: str, version: str) -> Manifest:
        try:
            return Manifest.from_dict(json.loads(self.volume.read(f"{self._set_prefix(name)}{version}/{MANIFEST}")))
        except VolumeNotFound:
            raise DatasetError(f"Training set {name!r} has no version {version!r}.") from None

    def draft(self, name: str, version: str | None = None) -> DatasetDraft:
        """An editable draft of `version` (default: the latest; an empty draft for a new set)."""
        ts = self.get(name)
        version = version or ts.latest
        if version is None:
            return DatasetDraft(name=ts.name, trigger_word=ts.trigger_word)
        manifest = self.manifest(name, version)
        prefix = f"{self._set_prefix(name)}{version}/"
        images = []
        for f in manifest.files:
            origin = prefix + f.image
            caption = None
            if f.caption_file:
                caption = self.volume.read(prefix + f.caption_file).decode("utf-8")
            info, data = f.info, None
            if info.analysis_version != ANALYSIS_VERSION:
                data = self.volume.read(origin)
                info = load_image(data, f.image).info
            images.append(DraftImage(name=f.image, data=data, info=info, caption=caption, origin=origin))
        return DatasetDraft(name=ts.name, trigger_word=manifest.trigger_word, images=images,
                            parent=version, acknowledged=set(manifest.acknowledged))

    def image_bytes(self, name: str, version: str, image: str) -> bytes:
        return self.volume.read(f"{self._set_prefix(name)}{version}/{image}")

    def _unchanged(self, draft: DatasetDraft) -> bool:
        if draft.parent is None:
            return False
        parent = self.manifest(draft.name, draft.parent)
        old = {(f.image, f.info.sha256, f.caption_sha256) for f in parent.files}
        new = {(i.name, i.info.sha256, _caption_sha(i.caption)) for i in draft.images}
        return old == new and parent.trigger_word == draft.trigger_word and \
            set(parent.acknowledged) == set(draft.acknowledged)

    def save(self, draft: DatasetDraft, user: str, note: str = "") -> Manifest:
        """Write the draft as the next version; the manifest goes last, so a failed save leaves
        only an incomplete folder that is never listed as a version."""
        name = validate_name(draft.name)
        trigger = validate_trigger(draft.trigger_word)
        if not draft.images:
            raise DatasetError("Add images before saving: an empty training set cannot be saved.")
        if self._unchanged(draft):
            raise DatasetError(f"Nothing changed since {draft.parent}; there is nothing to save.")
        existing = self._version_dirs(name)
        number = existing[-1][0] + 1 if existing else 1
        version = f"v{number}"
        prefix = f"{self._set_prefix(name)}{version}/"
        written: list[str] = []
        files = []
        try:
            for image in draft.images:
                key = prefix + image.name
                if image.data is None and image.origin:
                    self.volume.copy(image.origin, key)
                else:
                    self.volume.write(key, image.read(self.volume))
                written.append(key)
                caption_file = None
                if image.caption:
                    caption_file = posixpath.splitext(image.name)[0] + ".txt"
                    self.volume.write(prefix + caption_file, image.caption.encode("utf-8"))
                    written.append(prefix + caption_file)
                files.append(ManifestFile(image=image.name, caption_file=caption_file, info=image.info,
                                          caption_sha256=_caption_sha(image.caption)))
            manifest = Manifest(name=name, version=version, trigger_word=trigger, parent=draft.parent,
                                created_by=user, created_at=_now(), files=tuple(files),
                                acknowledged=tuple(sorted(draft.acknowledged)), note=note)
            self.volume.write(prefix + MANIFEST, json.dumps(manifest.to_dict(), indent=2).encode())
        except VolumeError:
            for key in written:
                try:
                    self.volume.delete(key)
                except VolumeError:
                    pass  # the version has no manifest, so it is never listed; leftovers are harmless
            raise
        # Keep working on what was saved: the draft is now that version.
        draft.parent = version
        for image in draft.images:
            image.origin = prefix + image.name
        return manifest


def _caption_sha(caption: str | None) -> str | None:
    return hashlib.sha256(caption.encode("utf-8")).hexdigest() if caption else None
