"""Turn uploaded files or a zip into training images + captions, entirely in memory.

A zip comes from outside and is treated as hostile: first every entry's header is vetted (path
traversal, absolute paths, symlinks, encryption, zip-bomb ratio and sizes, file count, file
types by name) without decompressing anything; only a zip that passes is read, and then every
file's content is checked (real images, nested archives in disguise, text captions). Either
way one bad entry refuses the whole upload with the list of offenders of that stage. Nothing here touches the volume; the caller saves a
new version only from an accepted result.
"""
from __future__ import annotations

import io
import posixpath
import re
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field

from lib.errors import ConsoleError
from lib.training.images import IMAGE_EXTENSIONS, ImageRejected, LoadedImage, load_image

MAX_FILES = 300                          # images + captions in one upload
MAX_TOTAL_UNCOMPRESSED = 1024 ** 3       # 1 GiB across a zip
MAX_ENTRY_BYTES = 40 * 1024 * 1024       # one file inside the zip
MAX_RATIO = 100                          # uncompressed / compressed for one entry
# Tiny entries compress absurdly well (a caption of repeated words) without being a bomb.
RATIO_EXEMPT_BYTES = 64 * 1024
MAX_CAPTION_BYTES = 8 * 1024
CAPTION_EXTENSIONS = (".txt",)
ARCHIVE_EXTENSIONS = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst")
_ARCHIVE_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!", b"BZh", b"\xfd7zXZ")
# Written by macOS Finder and Windows Explorer into almost every zip they make; refusing them
# would refuse nearly every real upload, and they are never read.
_OS_JUNK = ("__MACOSX/",)
_OS_JUNK_NAMES = (".DS_Store", "Thumbs.db", "desktop.ini")
FIX_AND_RETRY = "remove or replace the files below and upload again"


@dataclass(frozen=True)
class Offender:
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


class UploadRejected(ConsoleError, ValueError):
    """The upload was refused as a whole; `offenders` lists every file at fault."""

    def __init__(self, summary: str, offenders: Iterable[Offender]):
        self.summary = summary
        self.offenders = list(offenders)
        detail = "; ".join(str(o) for o in self.offenders[:10])
        more = f" (and {len(self.offenders) - 10} more)" if len(self.offenders) > 10 else ""
        super().__init__(f"{summary}: {detail}{more}" if detail else summary)


@dataclass(frozen=True)
class UploadedImage:
    source: str             # name as uploaded (path inside the zip)
    stem: str               # file stem the caption pairs on
    image: LoadedImage
    caption: str | None


@dataclass(frozen=True)
class UploadResult:
    images: list[UploadedImage]
    notes: list[str] = field(default_factory=list)   # harmless things that were skipped


def _is_junk(name: str) -> bool:
    return name.startswith(_OS_JUNK) or posixpath.basename(name) in _OS_JUNK_NAMES \
        or posixpath.basename(name).startswith("._")


def _unsafe_path_reason(raw: str) -> str | None:
    name = raw.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if any(part == ".." for part in name.split("/")):
        return "path traversal (..)"
    if "\x00" in name:
        return "NUL byte in the name"
    return None


def _classify(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith(IMAGE_EXTENSIONS):
        return "image"
    if lower.endswith(CAPTION_EXTENSIONS):
        return "caption"
    if lower.endswith(ARCHIVE_EXTENSIONS):
        return "archive"
    return None


def _decode_caption(name: str, data: bytes) -> tuple[str | None, Offender | None]:
    if len(data) > MAX_CAPTION_BYTES:
        return None, Offender(name, f"caption larger than {MAX_CAPTION_BYTES // 1024} KB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, Offender(name, "caption is not UTF-8 text")
    if "\x00" in text:
        return None, Offender(name, "caption is not text")
    return " ".join(text.split()), None


def _pair(files: list[tuple[str, bytes]]) -> UploadResult:
    """Decode vetted (name, bytes) pairs; captions pair with images of the same path stem."""
    offenders: list[Offender] = []
    captions: dict[str, str] = {}
    images: list[tuple[str, str, bytes]] = []
    for name, data in files:
        kind = _classify(name)
        stem = posixpath.splitext(name.replace("\\", "/"))[0]
        if kind == "caption":
            text, problem = _decode_caption(name, data)
            if problem:
                offenders.append(problem)
            else:
                captions[stem] = text or ""
        elif kind == "image":
            if data[:4] in _ARCHIVE_MAGIC or data[:3] in _ARCHIVE_MAGIC:
                offenders.append(Offender(name, "an archive disguised as an image"))
            else:
                images.append((name, stem, data))
        elif kind == "archive" or data[:4] in _ARCHIVE_MAGIC:
            offenders.append(Offender(name, "nested archive (upload its images directly)"))
        else:
            offenders.append(Offender(name, "not an image (JPEG, PNG, WebP) or .txt caption"))
    loaded: list[UploadedImage] = []
    for name, stem, data in images:
        try:
            image = load_image(data, name)
        except ImageRejected as exc:
            offenders.append(Offender(name, str(exc).removeprefix(f"{name}: ")))
            continue
        loaded.append(UploadedImage(source=name, stem=stem, image=image, caption=captions.get(stem)))
    if offenders:
        raise UploadRejected(f"The upload was refused and nothing was added — {FIX_AND_RETRY}", offenders)
    image_stems = {stem for _, stem, _ in images}
    notes = [f"{stem}.txt has no matching image and was skipped" for stem in sorted(captions)
             if stem not in image_stems]
    return UploadResult(images=loaded, notes=notes)


def read_files(files: Iterable[tuple[str, bytes]]) -> UploadResult:
    """Multi-file upload: images and same-stem .txt captions. A .zip among them is opened."""
    plain: list[tuple[str, bytes]] = []
    zipped: list[UploadResult] = []
    files = list(files)
    if len(files) > MAX_FILES:
        raise UploadRejected(f"{len(files)} files is more than the {MAX_FILES} allowed at once — add them in "
                             f"several batches", [])
    for name, data in files:
        base = posixpath.basename(name.replace("\\", "/"))
        if base.lower().endswith(".zip"):
            zipped.append(read_zip(data))
        elif _is_junk(base):
            continue
        else:
            plain.append((base, data))
    result = _pair(plain)
    for z in zipped:
        result.images.extend(z.images)
        result.notes.extend(z.notes)
    return result


def read_zip(data: bytes) -> UploadResult:
    """Vet and read a zip of images (+ .txt captions); raises UploadRejected listing offenders."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise UploadRejected("The file is not a readable zip archive — upload a .zip made with your "
                             "computer's Compress command, or the photos themselves", []) from None
    with archive:
        entries = [i for i in archive.infolist() if not i.is_dir()]
        if len(entries) > MAX_FILES:
            raise UploadRejected(f"The zip holds {len(entries)} files; at most {MAX_FILES} are allowed — "
                                 f"split it into several zips",
                                 [Offender(i.filename, "over the file count limit")
                                  for i in entries[MAX_FILES:]])
        offenders: list[Offender] = []
        wanted: list[zipfile.ZipInfo] = []
        total = 0
        for info in entries:
            name = info.filename
            reason = _unsafe_path_reason(name)
            mode = info.external_attr >> 16
            if reason is None and stat.S_ISLNK(mode):
                reason = "symbolic link"
            if reason is None and info.flag_bits & 0x1:
                reason = "encrypted entry"
            if reason is None and info.file_size > MAX_ENTRY_BYTES:
                reason = f"{info.file_size / 1e6:.0f} MB uncompressed, over the per-file limit"
            if reason is None and info.file_size > RATIO_EXEMPT_BYTES and \
                    info.file_size > MAX_RATIO * max(info.compress_size, 1):
                reason = (f"compression ratio {info.file_size / max(info.compress_size, 1):.0f}:1 "
                          f"(zip bomb?)")
            if reason:
                offenders.append(Offender(name, reason))
                continue
            if _is_junk(name):
                continue
            kind = _classify(name)
            if kind in (None, "archive"):
                offenders.append(Offender(name, "nested archive (upload its images directly)" if kind
                                          else "not an image (JPEG, PNG, WebP) or .txt caption"))
                continue
            total += info.file_size
            wanted.append(info)
        if total > MAX_TOTAL_UNCOMPRESSED:
            offenders.append(Offender("(whole zip)", f"{total / 1e9:.1f} GB uncompressed, over the "
                                                      f"{MAX_TOTAL_UNCOMPRESSED / 1024 ** 3:.0f} GiB limit"))
        if offenders:
            raise UploadRejected(f"The zip was refused and nothing was added — {FIX_AND_RETRY}", offenders)
        files = []
        for info in wanted:
            files.append((info.filename, _read_bounded(archive, info)))
    return _pair(files)


def _read_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    # zipfile stops at the declared size and checks the CRC, so a header that lies about the
    # size yields an error here rather than unbounded output.
    try:
        with archive.open(info) as fh:
            data = fh.read(info.file_size + 1)
    except (zipfile.BadZipFile, OSError, NotImplementedError, EOFError) as exc:
        raise UploadRejected(f"The zip was refused and nothing was added — {FIX_AND_RETRY}",
                             [Offender(info.filename, f"cannot be read ({exc})")]) from None
    if len(data) > info.file_size:
        raise UploadRejected(f"The zip was refused and nothing was added — {FIX_AND_RETRY}",
                             [Offender(info.filename, "larger than its header says")])
    return data
