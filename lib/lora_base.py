"""Which base model each LoRA was trained for, so pickers show it and preflight warns on a mismatch.

Sources, most trusted first: the training run that made it (the console's audit of promote and
compare), what the user stated on upload, and the file's own safetensors metadata. The metadata keys
trainers write are not in the reference facts ("could not confirm"): they are only read as a hint, and a
LoRA with no known base gets no warning rather than a wrong one."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lib.json_file import JsonFile, rename_key

LORAS_DIR = "models/loras/"
CANDIDATES = "_candidates/"
FAMILIES = {"flux": "FLUX", "z-image": "Z-Image", "sdxl": "SDXL"}
PRESET_FAMILY = {"flux1-dev": "flux", "zimage-turbo": "z-image", "sdxl": "sdxl"}
_METADATA_KEYS = ("modelspec.architecture", "ss_base_model_version", "ss_sd_model_name", "base_model")
_HINTS = (("z-image", "z-image"), ("zimage", "z-image"), ("z_image", "z-image"), ("flux", "flux"),
          ("sdxl", "sdxl"), ("stable-diffusion-xl", "sdxl"))


@dataclass(frozen=True)
class BaseModel:
    family: str
    source: str   # "training run", "stated on upload", "file metadata"

    @property
    def label(self) -> str:
        return FAMILIES.get(self.family, self.family)


def family_from_metadata(metadata: Mapping[str, str]) -> str | None:
    for key in _METADATA_KEYS:
        value = str(metadata.get(key, "")).lower()
        for needle, family in _HINTS:
            if needle in value:
                return family
    return None


def lora_name(volume_key: str) -> str:
    """The name a LoRA loader takes: the path below models/loras/."""
    return volume_key.removeprefix(LORAS_DIR)


class LoraBases:
    """Statements kept in `<CONSOLE_DATA>/lora_bases.json` (upload statements and file metadata)."""

    def __init__(self, data_dir: Path):
        self._file = JsonFile(Path(data_dir) / "lora_bases.json")

    def record(self, name: str, family: str, source: str) -> None:
        self._file.update(lambda data: data.__setitem__(name, {"family": family, "source": source}))

    def rename(self, old: str, new: str) -> None:
        self._file.update(rename_key(old, new))

    def stated(self) -> dict[str, BaseModel]:
        return {name: BaseModel(v["family"], v["source"]) for name, v in self._file.read().items()
                if isinstance(v, dict) and v.get("family")}


def from_training(store) -> dict[str, BaseModel]:
    """LoRAs the console staged or promoted from a training run, with that run's base model."""
    out: dict[str, BaseModel] = {}
    for action in ("stage_checkpoints", "promote"):
        for entry in reversed(store.audit_entries(action=action, limit=2000)):
            try:
                preset = store.get(entry.target).meta.get("preset")
            except (KeyError, TypeError):
                continue
            family = PRESET_FAMILY.get(preset)
            names = entry.detail.get("loras") or [lora_name(entry.detail.get("target", ""))]
            if not family:
                continue
            for name in names:
                out[name] = BaseModel(family, "training run")
    return out


def known(store, data_dir: Path) -> dict[str, BaseModel]:
    return {**LoraBases(data_dir).stated(), **from_training(store)}


def picker_label(name: str, bases: Mapping[str, BaseModel]) -> str:
    base = bases.get(name)
    return f"{name} · {base.label}" if base else name


def visible(names: Iterable[str], *, show_candidates: bool, keep: Iterable[str] = ()) -> list[str]:
    """Training candidates (_candidates/) only when asked for, or when handed over for a grid."""
    kept = set(keep)
    return [n for n in names if show_candidates or not n.startswith(CANDIDATES) or n in kept]


def mismatch(template_family: str, name: str | None, bases: Mapping[str, BaseModel]) -> str | None:
    base = bases.get(name) if name else None
    if base is None or template_family not in FAMILIES or base.family == template_family:
        return None
    return (f"{name} was trained for {base.label} ({base.source}), but this preset is "
            f"{FAMILIES[template_family]}: the LoRA will not fit the model and the images will look wrong. "
            f"Pick a {base.label} preset or another LoRA.")


def preset_title_for_run(run_meta: Mapping, templates: Iterable) -> str | None:
    """The image preset of the run's base model, for "Compare in a grid" from a training run."""
    family = PRESET_FAMILY.get(run_meta.get("preset", ""))
    return next((t.title for t in templates if family and t.family == family), None)
