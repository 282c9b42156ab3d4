"""Uploads and text fields through the public functions the pages call:
lib.images.load_image (face swap, references), lib.training.uploads (training set photos and
zips), lib.workflows.parse_uploaded_workflow (own ComfyUI workflow), lib.volume.safe_key (every
volume path typed by a person), dataset names and trigger words, grid axis values.

Each case: the typed error, a message that names the file or field, says what is wrong and what
to do. Where something already exists (a saved training set, files on the volume), a refused
input leaves it exactly as it was.
"""
from __future__ import annotations

import hashlib
import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from lib.grid import GridError
from lib.images import ImageError, load_image
from lib.inference import parse_axis_values
from lib.training.datasets import DatasetError, TrainingSets, validate_name, validate_trigger
from lib.training.uploads import MAX_FILES, UploadRejected, read_files, read_zip
from lib.volume import LocalVolume, UnsafeKey, VolumeError, safe_key
from lib.workflows.graph import WorkflowError, parse_uploaded_workflow


def png(width: int = 64, height: int = 64) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (180, 40, 40)).save(out, "PNG")
    return out.getvalue()


def jpeg(width: int = 768, height: int = 768, shade: int = 90) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (shade, 120, 200)).save(out, "JPEG", quality=90)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A few hundred bytes whose header announces width × height pixels: a decompression bomb."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _chunk(b"IEND", b""))


def zip_of(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return out.getvalue()


def symlink_entry() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("face.jpg")
    info.external_attr = (0o120777 << 16)
    return info


def encrypted_zip() -> bytes:
    data = bytearray(zip_of([("face.jpg", jpeg(64, 64))]))
    # Set the "encrypted" flag in both the local header and the central directory entry.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature) + offset
        data[at] |= 0x01
    return bytes(data)


def lying_zip() -> bytes:
    """An entry whose header declares fewer bytes than it holds (and a CRC that cannot match)."""
    data = bytearray(zip_of([("face.jpg", jpeg(64, 64))]))
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(signature) + offset
        data[at:at + 4] = struct.pack("<I", 10)
    return bytes(data)


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[], object]
    error: type[Exception]
    says: tuple[str, ...]
    # What to do, when the message's advice is more specific than the shared guidance phrases.
    advice: tuple[str, ...] = ()


GIF = b"GIF89a" + b"\x00" * 32
HEIC = b"\x00\x00\x00\x18ftypheic" + b"\x00" * 32

CASES = [
    # ---- images (face swap source/targets, character sheet reference)
    Case("image.gif", lambda: load_image("face.gif", GIF), ImageError, ("face.gif", "GIF", "convert it first")),
    Case("image.heic", lambda: load_image("IMG_0001.HEIC", HEIC), ImageError, ("IMG_0001.HEIC", "HEIC")),
    Case("image.truncated-png", lambda: load_image("face.png", png(600, 600)[:400]), ImageError,
         ("face.png", "incomplete (truncated)", "upload the full file again")),
    Case("image.decompression-bomb", lambda: load_image("bomb.png", png_claiming(100_000, 100_000)), ImageError,
         ("bomb.png", "100000×100000", "megapixel limit", "downscale it")),
    # ---- training set uploads (photos + captions, or a zip)
    # ---- own ComfyUI workflow upload
    Case("workflow.binary", lambda: parse_uploaded_workflow(b"\xff\xfe\x00\x01"), WorkflowError,
         ("not text", "exported from ComfyUI"), advice=("expected a .json workflow",)),
    Case("workflow.empty", lambda: parse_uploaded_workflow(b""), WorkflowError, ("the file is empty",),
         advice=("the file is empty",)),
    Case("workflow.invalid-json", lambda: parse_uploaded_workflow(b'{"1": {"class_type": "SaveImage",'),
         WorkflowError, ("not valid JSON", "line 1"), advice=("line 1, column",)),
    Case("workflow.ui-format", lambda: parse_uploaded_workflow(b'{"nodes": [], "links": []}'), WorkflowError,
         ("UI format", "Export (API)")),
    Case("workflow.not-an-object", lambda: parse_uploaded_workflow(b"[1, 2]"), WorkflowError,
         ("must be a JSON object of nodes",)),
    Case("workflow.no-save-image",
         lambda: parse_uploaded_workflow(b'{"1": {"class_type": "KSampler", "inputs": {}}}'), WorkflowError,
         ("no SaveImage node",), advice=("would return no image",)),
    Case("workflow.dangling-link",
         lambda: parse_uploaded_workflow(b'{"1": {"class_type": "SaveImage", "inputs": {"images": ["9", 0]}}}'),
         WorkflowError, ("node 1", "links to node 9", "not in the workflow"), advice=("not in the workflow",)),
    # ---- volume paths typed by a person (move, upload "save as", delete)
    Case("key.traversal", lambda: safe_key("models/../../etc/passwd"), UnsafeKey, ("'..'", "may not leave the volume"),
         advice=("may not leave the volume",)),
    Case("key.absolute", lambda: safe_key("/etc/passwd"), UnsafeKey, ("is absolute", "relative to the volume root")),
    Case("key.backslash", lambda: safe_key("models\\loras\\x.safetensors"), UnsafeKey, ("backslash", "use '/'")),
    Case("key.nul", lambda: safe_key("models/x\x00.safetensors"), UnsafeKey, ("NUL character", "remove it")),
    Case("key.empty", lambda: safe_key(""), UnsafeKey, ("empty file path", "name a file inside the volume")),
    Case("key.not-text", lambda: safe_key(5), UnsafeKey, ("must be text",)),
    # ---- text fields
    Case("text.set-name", lambda: validate_name("Ava Studio!"), DatasetError, ("set name", "e.g. 'ava'")),
    Case("text.set-name-traversal", lambda: validate_name("../ava"), DatasetError, ("set name",)),
    Case("text.set-name-huge", lambda: validate_name("a" * 100_000), DatasetError, ("2–48 characters",)),
    Case("text.trigger-word", lambda: validate_trigger("two words"), DatasetError, ("one token", "e.g. 'ava_tok'")),
    Case("text.grid-seed", lambda: parse_axis_values("seed", "1, two"), GridError,
         ("seed values must be numbers separated by commas",)),
    Case("text.grid-strength", lambda: parse_axis_values("lora_strength", "0.8, strong"), GridError,
         ("lora strength values must be numbers",)),
]

FINDINGS = [
    Case("files.text-named-jpg", lambda: read_files([("face.jpg", b"hello")]), UploadRejected,
         ("nothing was added", "face.jpg", "not a JPEG, PNG or WebP image")),
    Case("zip.not-a-zip", lambda: read_zip(b"PK but not really a zip"), UploadRejected, ("not a readable zip",)),
    Case("zip.path-traversal", lambda: read_zip(zip_of([("../../etc/cron.d/x.jpg", jpeg(64, 64))])), UploadRejected,
         ("nothing was added", "../../etc/cron.d/x.jpg", "path traversal")),
    Case("zip.absolute-path", lambda: read_zip(zip_of([("/root/x.jpg", jpeg(64, 64))])), UploadRejected,
         ("nothing was added", "/root/x.jpg", "absolute path")),
    Case("zip.symlink", lambda: read_zip(zip_of([(symlink_entry(), b"/etc/passwd")])), UploadRejected,
         ("nothing was added", "face.jpg", "symbolic link")),
    Case("zip.encrypted", lambda: read_zip(encrypted_zip()), UploadRejected,
         ("nothing was added", "face.jpg", "encrypted")),
    Case("zip.bomb", lambda: read_zip(zip_of([("captions.txt", b"\x00" * 20_000_000)])), UploadRejected,
         ("nothing was added", "captions.txt", "compression ratio", "zip bomb")),
    Case("zip.too-many-files", lambda: read_zip(zip_of([(f"{i}.txt", b"x") for i in range(MAX_FILES + 1)])),
         UploadRejected, (f"{MAX_FILES + 1} files", f"at most {MAX_FILES}")),
    Case("zip.nested-archive", lambda: read_zip(zip_of([("more.zip", zip_of([("a.jpg", jpeg(64, 64))]))])),
         UploadRejected, ("nothing was added", "more.zip", "upload its images directly")),
    Case("zip.archive-disguised-as-image", lambda: read_zip(zip_of([("a.jpg", zip_of([("b.jpg", b"x")]))])),
         UploadRejected, ("nothing was added", "a.jpg", "archive disguised as an image")),
    Case("zip.size-lie", lambda: read_zip(lying_zip()), UploadRejected, ("nothing was added", "face.jpg")),
    Case("zip.caption-not-utf8", lambda: read_zip(zip_of([("a.jpg", jpeg()), ("a.txt", b"\xff\xfe\x00x")])),
         UploadRejected, ("nothing was added", "a.txt", "not UTF-8")),
    Case("zip.caption-too-big", lambda: read_zip(zip_of([("a.jpg", jpeg()), ("a.txt", b"word " * 4000)])),
         UploadRejected, ("nothing was added", "a.txt", "caption larger than")),
    Case("zip.other-file-type", lambda: read_zip(zip_of([("notes.docx", b"x")])), UploadRejected,
         ("nothing was added", "notes.docx", "not an image (JPEG, PNG, WebP) or .txt caption")),
    Case("files.too-many", lambda: read_files([(f"{i}.jpg", b"x") for i in range(MAX_FILES + 1)]), UploadRejected,
         (f"{MAX_FILES + 1} files is more than the {MAX_FILES} allowed",)),
    Case("image.empty", lambda: load_image("face.png", b""), ImageError, ("face.png", "0 bytes")),
    Case("image.text-file", lambda: load_image("face.png", b"hello, world"), ImageError, ("face.png", "not an image")),
    Case("image.pdf", lambda: load_image("scan.png", b"%PDF-1.7\n"), ImageError, ("scan.png", "PDF")),
    Case("image.damaged-jpeg", lambda: load_image("face.jpg", jpeg(600, 600)[:300]), ImageError,
         ("face.jpg", "damaged")),
]


def check(case: Case, guidance, canary) -> str:
    with pytest.raises(case.error) as raised:
        case.call()
    message = str(raised.value)
    for fragment in case.says:
        assert fragment in message, f"{fragment!r} missing from {message!r}"
    advice = case.advice or guidance
    assert any(a.lower() in message.lower() for a in advice), f"no advice in {message!r}"
    assert len(message) < 2000
    assert canary.find(message) == []
    return message


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_gets_a_clear_message(case, guidance, canary):
    check(case, guidance, canary)


@pytest.mark.parametrize("case", FINDINGS, ids=[c.id for c in FINDINGS])
def test_refusal_also_says_what_to_do(case, guidance, canary):
    """FINDING: these refusals say what is wrong but not what to do ("face.png: this is not an
    image (0 bytes)", "The zip was refused and nothing was added: x.jpg: symbolic link"); the
    patch in the report adds the next step ("— upload a PNG, JPEG or WEBP file", "— remove or
    replace these files and upload again", "split it into several zips")."""
    check(case, guidance, canary)


def test_mismatched_extension_is_accepted_with_a_warning():
    checked = load_image("face.png", jpeg(64, 64))
    assert checked.info.format == "JPEG"
    assert checked.warnings == ("face.png: the file is a JPEG image although its name ends in .png; "
                                "it is read as JPEG",)


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


HOSTILE_ZIPS = {
    "traversal": lambda: zip_of([("../../x.jpg", jpeg(64, 64))]),
    "bomb": lambda: zip_of([("a.txt", b"\x00" * 20_000_000)]),
    "encrypted": encrypted_zip,
    "one-bad-among-good": lambda: zip_of([("b.jpg", jpeg(shade=30)), ("c.jpg", b"not an image")]),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_ZIPS))
def test_refused_zip_leaves_the_saved_training_set_untouched(tmp_path, name):
    volume = LocalVolume(tmp_path / "volume")
    sets = TrainingSets(volume)
    sets.create("ava", "ava_tok", "staff@example.com")
    draft = sets.draft("ava")
    draft.add(read_files([("a.jpg", jpeg()), ("a.txt", b"ava_tok smiling")]))
    saved = sets.save(draft, "staff@example.com", "first photos")
    before = snapshot(tmp_path / "volume")

    with pytest.raises(UploadRejected, match="nothing was added"):
        read_zip(HOSTILE_ZIPS[name]())

    assert snapshot(tmp_path / "volume") == before
    again = sets.draft("ava")
    assert [i.caption for i in again.images] == ["ava_tok smiling"]
    assert sets.versions("ava") == [saved.version]


@pytest.mark.parametrize("key", ["../escape.txt", "/tmp/escape.txt", "models\\..\\..\\escape.txt", "a\x00b"])
def test_unsafe_volume_paths_write_and_move_nothing(tmp_path, key):
    root = tmp_path / "volume"
    volume = LocalVolume(root)
    volume.write("models/loras/ava.safetensors", b"weights")
    before = snapshot(tmp_path)

    with pytest.raises(UnsafeKey):
        volume.write(key, b"payload")
    with pytest.raises(VolumeError):
        volume.move("models/loras/ava.safetensors", key)

    assert snapshot(tmp_path) == before
    assert volume.read("models/loras/ava.safetensors") == b"weights"


def test_every_upload_and_field_case_is_documented(documented_cases):
    missing = sorted(c.id for c in CASES + FINDINGS if c.id not in documented_cases)
    assert missing == [], f"add these cases to docs/robustness.md: {missing}"
