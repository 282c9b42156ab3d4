"""Model uploads are checked before they reach the volume: a file named like a model must be one (a
safetensors header that parses, a PyTorch zip or pickle, a GGUF), and what the header says is kept for
File details. A LoRA's base model is recorded as the uploader states it, or from the file's metadata.

Model files are gigabytes and Streamlit's browser uploader keeps a whole upload in memory, so the Models
page names a file on the console machine; it is checked from its first bytes and streamed to the volume."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from lib import lora_base
from lib.inference import templates_dir
from lib.json_file import JsonFile, rename_key
from lib.ops import actions
from lib.safetensors_info import NotSafetensors, SafetensorsInfo, header_length, parse
from lib.volume import VolumeError
from lib.workflows.templates import repoint_model

if TYPE_CHECKING:
    from lib.services import Services

_ZIP, _PICKLE, _GGUF = b"PK\x03\x04", b"\x80", b"GGUF"
SIGNATURE_BYTES = 64 * 1024   # enough for every signature; a safetensors header is read in full


class NotAModel(ValueError):
    """Refused upload; the message says why."""


@dataclass(frozen=True)
class ModelCheck:
    lines: list[str] = field(default_factory=list)   # what the check found, for the success message
    info: SafetensorsInfo | None = None
    base_family: str | None = None                    # from the file's own metadata, when present


def describe(info: SafetensorsInfo) -> str:
    return f"safetensors · {actions.format_bytes(info.size)} · {info.tensors:,} tensors · {info.dtype_text}"


def read_head(source: BinaryIO, name: str) -> bytes:
    """The first bytes `check` needs: the signature, and for safetensors its whole header."""
    head = source.read(SIGNATURE_BYTES)
    if Path(name).suffix.lower() == ".safetensors" and len(head) >= 8:
        try:
            needed = 8 + header_length(head)
        except NotSafetensors:
            return head   # check() says why
        if needed > len(head):
            head += source.read(needed - len(head))
    return head


def check(name: str, data: bytes, size: int | None = None) -> ModelCheck:
    """`data`: the file, or at least its first bytes (`read_head`) when `size` gives the whole size."""
    size = len(data) if size is None else size
    suffix = Path(name).suffix.lower()
    if not data:
        raise NotAModel(f"{name} is empty (0 bytes).")
    if data[:1] == b"<" or data[:5].lower() == b"<!doc":
        raise NotAModel(f"{name} is a web page, not a model (a download that failed or needed a login?).")
    if suffix == ".safetensors":
        try:
            info = parse(data, size)
        except NotSafetensors as exc:
            raise NotAModel(f"{name} is not a readable safetensors file: {exc}.") from None
        return ModelCheck([describe(info)], info, lora_base.family_from_metadata(info.metadata))
    if suffix in (".ckpt", ".pt", ".pth"):
        if not data.startswith((_ZIP, _PICKLE)):
            raise NotAModel(f"{name} is not a PyTorch checkpoint (neither a zip archive nor a pickle).")
        return ModelCheck([f"PyTorch checkpoint · {actions.format_bytes(size)}"])
    if suffix == ".gguf":
        if not data.startswith(_GGUF):
            raise NotAModel(f"{name} does not start with the GGUF signature.")
        return ModelCheck([f"GGUF · {actions.format_bytes(size)}"])
    return ModelCheck([f"{actions.format_bytes(size)} (no format check for {suffix or 'files without a suffix'})"])


class ModelNotes:
    """What upload checks found per volume key, in `<CONSOLE_DATA>/model_notes.json`."""

    def __init__(self, data_dir: Path):
        self._file = JsonFile(Path(data_dir) / "model_notes.json")

    def record(self, key: str, lines: Sequence[str]) -> None:
        self._file.update(lambda data: data.__setitem__(key, list(lines)))

    def moved(self, src: str, dst: str) -> None:
        self._file.update(rename_key(src, dst))

    def get(self, key: str) -> list[str]:
        return list(self._file.read().get(key, []))


def checked_upload(services: Services, email: str, folder: str, path: str, name: str = "", *,
                   stated_family: str | None = None, progress=None):
    """Check the file at `path` on the console machine, then stream it to models/<folder>/<name or its
    own name>; records what was found and the LoRA's base model. Raises NotAModel before anything is
    written, VolumeError when `path` is not a file."""
    services.authorize(email, "upload_model")
    source = Path(path.strip()).expanduser()
    if not path.strip() or not source.is_file():
        raise VolumeError(f"{source} is not a file on the console machine — give the full path of the model file")
    key = f"models/{folder}/{name.strip() or source.name}"
    with source.open("rb") as data:
        found = check(Path(key).name, read_head(data, key), source.stat().st_size)
        data.seek(0)
        obj = actions.upload_model(services, email, key, data, progress=progress)
    ModelNotes(services.data_dir).record(key, found.lines)
    family = stated_family or found.base_family
    if family and key.startswith(lora_base.LORAS_DIR):
        lora_base.LoraBases(services.data_dir).record(lora_base.lora_name(key), family,
                                                      "stated on upload" if stated_family else "file metadata")
    return obj, found


@dataclass(frozen=True)
class Moved:
    key: str
    workflows_updated: list[str]   # titles of the saved workflows that now name the new path


def move(services: Services, email: str, src: str, dst: str, *, update_workflows: bool = False) -> Moved:
    """Move a model file; what the console knows about it (check notes, base model) moves with it, and
    with `update_workflows` the saved workflows that name it are changed to name the new path."""
    obj = actions.move_model(services, email, src, dst)
    ModelNotes(services.data_dir).moved(src, dst)
    if src.startswith(lora_base.LORAS_DIR) and dst.startswith(lora_base.LORAS_DIR):
        lora_base.LoraBases(services.data_dir).rename(lora_base.lora_name(src), lora_base.lora_name(dst))
    updated = repoint_model(templates_dir(services.data_dir), src, obj.key) if update_workflows else []
    if updated:
        services.store.audit(email, "workflow.repoint", obj.key, {"from": src, "workflows": updated})
    return Moved(obj.key, updated)
