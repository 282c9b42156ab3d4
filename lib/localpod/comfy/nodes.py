"""ComfyUI's node classes, from a real server's `GET /object_info` (object_info.json; ORIGIN.md).

What a simulated worker can run depends on its image: the stock worker-comfyui image has the core
nodes (ComfyUI's own `nodes`, `comfy_extras`, `comfy_api_nodes`, and the websocket saver it ships);
the special endpoint's image has ReActor, PuLID-Flux and IPAdapter-plus baked in as well.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DEFINITIONS = Path(__file__).with_name("object_info.json")
# Custom node packs in the snapshot; every other python_module is part of ComfyUI itself.
CUSTOM_PACKS = ("custom_nodes.ComfyUI-ReActor", "custom_nodes.ComfyUI-PuLID-Flux",
                "custom_nodes.ComfyUI_IPAdapter_plus")


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: object            # a type name ("MODEL", "INT", "COMBO", …) or the list of allowed values
    options: Mapping        # default, min, max, options (for "COMBO"), …
    required: bool

    @property
    def choices(self) -> list | None:
        """The allowed values of a list input, else None."""
        if isinstance(self.type, list):
            return self.type
        if self.type == "COMBO":
            return list(self.options.get("options", []))
        return None

    def config(self, choices: list | None = None) -> list:
        """ComfyUI's `input_config` as JSON carries it: [type or list, options]."""
        if choices is None:
            return [self.type, dict(self.options)]
        if self.type == "COMBO":
            return ["COMBO", {**self.options, "options": choices}]
        return [choices, dict(self.options)]


@dataclass(frozen=True)
class NodeClass:
    name: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    output_names: tuple[str, ...]
    output_node: bool
    module: str

    def input(self, name: str) -> InputSpec | None:
        return next((spec for spec in self.inputs if spec.name == name), None)


@cache
def _all() -> dict[str, NodeClass]:
    raw = json.loads(DEFINITIONS.read_text(encoding="utf-8"))
    return {name: _node(name, body) for name, body in raw.items()}


def _node(name: str, body: dict) -> NodeClass:
    specs = []
    for category in ("required", "optional"):
        for input_name, spec in (body["input"].get(category) or {}).items():
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            specs.append(InputSpec(input_name, spec[0], options, category == "required"))
    return NodeClass(name, tuple(specs), tuple(body.get("output", ())), tuple(body.get("output_name", ())),
                     bool(body.get("output_node")), str(body.get("python_module", "")))


@cache
def node_classes(custom_nodes: bool) -> dict[str, NodeClass]:
    """The classes of the stock image (core only) or of the special image (with its custom nodes)."""
    return {name: node for name, node in _all().items()
            if custom_nodes or not node.module.startswith(CUSTOM_PACKS)}


def is_link(value: object) -> bool:
    """An input wired to another node: ["<node id>", <output index>]."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int) and not isinstance(value[1], bool))


# ---------------------------------------------------------------------------------------------
# What the lists of a simulated server hold: files on the network volume, the job's uploads

MODEL_EXTENSIONS = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
# Folders the stock worker's extra_model_paths.yaml maps to <volume>/models/<name>/ (reference
# worker-contracts §1.7); unet and clip are ComfyUI's legacy names of diffusion_models and
# text_encoders, so files in <volume>/models/diffusion_models/ are not seen.
SCANNED_FOLDERS = ("checkpoints", "clip", "clip_vision", "configs", "controlnet", "embeddings",
                   "loras", "upscale_models", "vae", "unet")
# Model-file inputs → the scanned folder their list comes from. Inputs of other model folders
# (ipadapter, style_models, model_patches, …) keep the snapshot's list: the worker does not map
# those folders to the volume, so only files baked into the image could appear there.
_FOLDER_BY_INPUT = {"ckpt_name": "checkpoints", "unet_name": "unet", "clip_name": "clip",
                    "clip_name1": "clip", "clip_name2": "clip", "clip_name3": "clip", "clip_name4": "clip",
                    "vae_name": "vae", "lora_name": "loras", "control_net_name": "controlnet"}
_FOLDER_BY_CLASS_INPUT = {("CLIPVisionLoader", "clip_name"): "clip_vision",
                          ("UpscaleModelLoader", "model_name"): "upscale_models"}
# Nodes whose "image" list is ComfyUI's input folder, where the worker uploads the job's images.
IMAGE_INPUT_CLASSES = ("LoadImage", "LoadImageMask")


def volume_folder(class_type: str, input_name: str) -> str | None:
    """The volume folder a list input's files come from, or None when it is no model-file list."""
    return _FOLDER_BY_CLASS_INPUT.get((class_type, input_name), _FOLDER_BY_INPUT.get(input_name))


def scan_volume(volume_dir: Path) -> dict[str, list[str]]:
    """folder → sorted relative paths of its model files, as ComfyUI's get_filename_list gives them."""
    lists = {}
    for folder in SCANNED_FOLDERS:
        base = Path(volume_dir) / "models" / folder
        names = [path.relative_to(base).as_posix() for path in base.rglob("*")
                 if path.is_file() and path.suffix.lower() in MODEL_EXTENSIONS] if base.is_dir() else []
        lists[folder] = sorted(names)
    return lists


@dataclass(frozen=True)
class Server:
    """One simulated ComfyUI as a job sees it: its node classes, volume files and uploaded images."""

    classes: Mapping[str, NodeClass]
    models: Mapping[str, list[str]]
    uploaded: frozenset[str] = frozenset()

    def choices(self, class_type: str, spec: InputSpec) -> list | None:
        """The allowed values of a list input on this server (model lists filled from the volume)."""
        base = spec.choices
        if base is None:
            return None
        folder = volume_folder(class_type, spec.name)
        if folder is not None:
            # Built-in entries of the snapshot (VAELoader's "pixel_space") come after the files.
            files = self.models.get(folder, [])
            return files + [value for value in base if value not in files]
        if class_type in IMAGE_INPUT_CLASSES and spec.name == "image":
            return sorted(set(base) | self.uploaded)
        return base
