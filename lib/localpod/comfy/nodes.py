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
        kind = self.type if choices is None or self.type == "COMBO" else choices
        return [kind, dict(self.options)]


@dataclass(frozen=True)
class NodeClass:
    name: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
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
    return NodeClass(name, tuple(specs), tuple(body.get("output", ())), bool(body.get("output_node")),
                     str(body.get("python_module", "")))


@cache
def node_classes(custom_nodes: bool) -> dict[str, NodeClass]:
    """The classes of the stock image (core only) or of the special image (with its custom nodes)."""
    return {name: node for name, node in _all().items()
            if custom_nodes or not node.module.startswith(CUSTOM_PACKS)}


def is_link(value: object) -> bool:
    """An input wired to another node: ["<node id>", <output index>]."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int) and not isinstance(value[1], bool))
