"""Input images of a workflow: one upload per file name its LoadImage nodes read.

worker-comfyui uploads every `input.images` entry into ComfyUI's input folder before queueing the
graph, and a LoadImage node reads it by name (reference worker-contracts §1.2). Each upload is
validated by content (lib.images: format sniffing, decompression-bomb guard); it travels as uploaded
when the /run body stays under RunPod's limit — so an inpainting mask in a PNG's alpha channel and
img2img pixels arrive untouched — and is re-encoded smaller (opaque) only when it would not fit.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lib.images import (
    BODY_MARGIN,
    RUN_BODY_LIMIT,
    BodyTooLarge,
    ImageError,
    base64_length,
    body_bytes,
    decode_base64_image,
    fit_images,
    load_image,
)
from lib.workflows.graph import load_image_names
from lib.workflows.payload import PROMPT_MAX_CHARS, ParamError

# Room kept for what the form adds to a template's graph: prompt and negative prompt (at most
# PROMPT_MAX_CHARS each, up to 4 UTF-8 bytes a character), job tags and image names.
_FORM_ALLOWANCE = 2 * 4 * PROMPT_MAX_CHARS + 2_000
_ENTRY_OVERHEAD = 64  # {"name":…,"image":…} around each base64 text, the job tag prefix included


@dataclass(frozen=True)
class ImageInput:
    """One file name the graph's LoadImage nodes read, and how the form labels its upload."""

    name: str
    node_ids: tuple[str, ...]
    title: str

    @property
    def label(self) -> str:
        nodes = ", ".join(self.node_ids)
        return f"{self.title} (LoadImage node {nodes} reads {self.name})"


@dataclass(frozen=True)
class InputImages:
    """The bytes to send per graph file name, and what the user should know about them."""

    images: dict[str, bytes] = field(repr=False)
    notes: tuple[str, ...] = ()


def image_inputs(workflow: Mapping) -> list[ImageInput]:
    """Every distinct LoadImage file name, in node order, titled by the first node's title."""
    found: dict[str, list[str]] = {}
    for node_id, name in load_image_names(workflow):
        found.setdefault(name, []).append(node_id)
    inputs = []
    for name, node_ids in found.items():
        meta = workflow[node_ids[0]].get("_meta") or {}
        title = meta.get("title") if isinstance(meta.get("title"), str) and meta.get("title") != "Load Image" else None
        inputs.append(ImageInput(name, tuple(node_ids), title or "Input image"))
    return inputs


def reserved_bytes(workflow: Mapping) -> int:
    """Body bytes of a job built from `workflow`, before its images, at the longest form values."""
    return body_bytes({"input": {"workflow": dict(workflow), "images": []}}) + _FORM_ALLOWANCE


def prepare_input_images(workflow: Mapping, uploads: Mapping[str, tuple[str, bytes]]) -> InputImages:
    """Validate one upload per LoadImage file name (`uploads`: graph name → (uploaded file name, bytes))
    and fit them under RunPod's /run limit; raises ParamError listing every problem at once."""
    problems: list[str] = []
    checked = {}
    for wanted in image_inputs(workflow):
        upload = uploads.get(wanted.name)
        if not upload or not upload[1]:
            problems.append(f"{wanted.label} needs an image: upload a PNG, JPEG or WEBP file")
            continue
        try:
            checked[wanted.name] = load_image(upload[0], upload[1])
        except ImageError as exc:
            problems.append(f"{wanted.title}: {exc}")
    if problems:
        raise ParamError(problems)
    notes = [w for image in checked.values() for w in image.warnings]
    reserved = reserved_bytes(workflow)
    as_uploaded = {name: uploads[name][1] for name in checked}
    needed = reserved + BODY_MARGIN + sum(base64_length(len(data)) + len(name) + _ENTRY_OVERHEAD
                                          for name, data in as_uploaded.items())
    if needed <= RUN_BODY_LIMIT:
        return InputImages(as_uploaded, tuple(dict.fromkeys(notes)))
    try:
        encoded = fit_images(checked, reserved_bytes=reserved)
    except BodyTooLarge as exc:
        raise ParamError([str(exc)]) from None
    notes += [f"{checked[name].name}: sent re-encoded as {enc.format} so the job fits RunPod's request size "
              f"limit (any transparency is flattened)" for name, enc in encoded.items()]
    notes += [note for enc in encoded.values() for note in enc.notes]
    return InputImages({name: enc.data for name, enc in encoded.items()}, tuple(dict.fromkeys(notes)))


def stored_input_images(job_input: Mapping, job_tag: str) -> dict[str, bytes]:
    """The images a stored job sent, by the graph names its template uses (the job tag taken off)."""
    found = {}
    for entry in job_input.get("images") or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            name = entry["name"]
            if name.startswith(job_tag + "_"):
                name = name[len(job_tag) + 1:]
            found[name] = decode_base64_image(str(entry.get("image", "")))
    return found

