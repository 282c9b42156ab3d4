"""Model uploads are checked before they reach the volume: a file named like a model must be one (a
safetensors header that parses, a PyTorch zip or pickle, a GGUF), and what the header says is kept for
File details. A LoRA's base model is recorded as the uploader states it, or from the file's metadata."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lib import lora_base
from lib.json_file import JsonFile, rename_key
from lib.ops import actions
from lib.safetensors_info import NotSafetensors, SafetensorsInfo, parse

_ZIP, _PICKLE, _GGUF = b"PK\x03\x04", b"\x80", b"GGUF"


class NotAModel(ValueError):
    """Refused upload; the message says why."""


@dataclass(frozen=True)
class ModelCheck:
    lines: list[str] = field(default_factory=list)   # what the check found, for the success message
    info: SafetensorsInfo | None = None
    base_family: str | None = None                    # from the file's own metadata, when present


def describe(info: SafetensorsInfo) -> str:
    return f"safetensors · {actions.format_bytes(info.size)} · {info.tensors:,} tensors · {info.dtype_text}"


def check(name: str, data: bytes) -> ModelCheck:
    suffix = Path(name).suffix.lower()
    if not data:
        raise NotAModel(f"{name} is empty (0 bytes).")
    if data[:1] == b"<" or data[:5].lower() == b"<!doc":
        raise NotAModel(f"{name} is a web page, not a model (a download that failed or needed a login?).")
    if suffix == ".safetensors":
        try:
            info = parse(data, len(data))
        except NotSafetensors as exc:
            raise NotAModel(f"{name} is not a readable safetensors file: {exc}.") from None
        return ModelCheck([describe(info)], info, lora_base.family_from_metadata(info.metadata))
    if suffix in (".ckpt", ".pt", ".pth"):
        if not data.startswith((_ZIP, _PICKLE)):
            raise NotAModel(f"{name} is not a PyTorch checkpoint (neither a zip archive nor a pickle).")
        return ModelCheck([f"PyTorch checkpoint · {actions.format_bytes(len(data))}"])
    if suffix == ".gguf":
        if not data.startswith(_GGUF):
            raise NotAModel(f"{name} does not start with the GGUF signature.")
        return ModelCheck([f"GGUF · {actions.format_bytes(len(data))}"])
    return ModelCheck([f"{actions.format_bytes(len(data))} (no format check for {suffix or 'files without a suffix'})"])


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


def checked_upload(services, email: str, key: str, file, *, stated_family: str | None, progress=None):
    """Check, then upload; records what was found and the LoRA's base model. Raises NotAModel before
    anything is written."""
    found = check(Path(key).name, file.getvalue())
    obj = actions.upload_model(services, email, key, file, progress=progress)
    ModelNotes(services.data_dir).record(key, found.lines)
    family = stated_family or found.base_family
    if family and key.startswith(lora_base.LORAS_DIR):
        lora_base.LoraBases(services.data_dir).record(lora_base.lora_name(key), family,
                                                      "stated on upload" if stated_family else "file metadata")
    return obj, found


def move(services, email: str, src: str, dst: str):
    """Move a model file; what the console knows about it (check notes, base model) moves with it."""
    obj = actions.move_model(services, email, src, dst)
    ModelNotes(services.data_dir).moved(src, dst)
    if src.startswith(lora_base.LORAS_DIR) and dst.startswith(lora_base.LORAS_DIR):
        lora_base.LoraBases(services.data_dir).rename(lora_base.lora_name(src), lora_base.lora_name(dst))
    return obj
