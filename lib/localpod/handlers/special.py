"""The `special` role: worker-comfyui with ReActor, PuLID-Flux and IPAdapter-plus baked in.

The same simulated worker and ComfyUI as the `image` role (lib/localpod/comfy), with the custom
nodes' definitions from the same real server (object_info.json), so their inputs are validated by
ComfyUI's rules and their lists are the ones the installed nodes offer. Beyond running by their
definitions, two are simulated by meaning:

* ``ReActorFaceSwap`` really swaps faces, on the CPU, with lib.localpod.comfy.faceswap_cv (OpenCV
  Haar detection and seamless cloning). When no face is found it returns the target unchanged, as
  ReActor does, and says so in worker-comfyui's non-fatal ``output.errors`` list (ReActor itself only
  logs it); see faceswap_cv for why. Face restoration and gender filters are not simulated: the
  restorer is a no-op here and a gender filter other than "no" adds a warning that it was ignored.
* ``ApplyPulidFlux`` (reference-guided character sheets) passes the model through; the decoded panel
  carries a thumbnail of the reference face so a demo shows which face guided it.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lib.localpod.comfy.execution import ExecutionError, Run
from lib.localpod.comfy.faceswap_cv import swap_faces
from lib.localpod.comfy.nodes import Server
from lib.localpod.comfy.worker import handle_job
from lib.localpod.handlers import JobContext, register

# Simulated GPU seconds of one swap: face analysis and the 128 px swap are quick, restoration less so
# (no published ReActor timing: an assumption of the right order).
SWAP_FIXED_S = 0.8
SWAP_PER_MP_S = 0.3
RESTORE_S = 0.7
THUMBNAIL = 0.22  # reference-face thumbnail, as a share of the panel's shorter side


@register("special")
def handle(job: dict, ctx: JobContext) -> dict:
    return handle_job(job, ctx, custom_nodes=True, run_type=_SpecialRun)


class _SpecialRun(Run):
    """The graph runner plus the custom nodes of the special image simulated by meaning."""

    def __init__(self, workflow: Mapping, server: Server, uploaded: Mapping[str, bytes], ctx: JobContext):
        super().__init__(workflow, server, uploaded, ctx)
        self.reference: Image.Image | None = None

    def execute(self, node_id: str) -> tuple:
        ct = self.workflow[node_id]["class_type"]
        if ct == "ReActorFaceSwap":
            return self.reactor(node_id)
        if ct == "ApplyPulidFlux":
            faces = self.arg(node_id, "image")
            self.reference = faces[0] if faces else None
            return (self.arg(node_id, "model"), faces)
        result = super().execute(node_id)
        if ct == "VAEDecode" and self.reference is not None:
            return ([_with_reference(im, self.reference) for im in result[0]],)
        return result

    def reactor(self, node_id: str) -> tuple:
        targets = self.arg(node_id, "input_image")
        if not self.arg(node_id, "enabled", True):
            return (targets, None, targets)
        where = f"ReActorFaceSwap (node {node_id})"
        sources = self.arg(node_id, "source_image")
        if not sources:
            self.warnings.append(f"{where}: no source image is connected; the target is returned unchanged")
            return (targets, None, targets)
        for field in ("detect_gender_input", "detect_gender_source"):
            if self.arg(node_id, field, "no") != "no":
                self.warnings.append(f"{where}: the simulator cannot tell faces' gender; "
                                     f"{field} = {self.arg(node_id, field)!r} was ignored")
        restore = self.arg(node_id, "face_restore_model", "none") != "none"
        source = np.asarray(sources[0].convert("RGB"))
        swapped = []
        for i, target in enumerate(targets):
            megapixels = target.width * target.height / 1e6
            self.ctx.sleep(SWAP_FIXED_S + SWAP_PER_MP_S * megapixels)
            try:
                result = swap_faces(source, np.asarray(target.convert("RGB")),
                                    source_faces_index=self.arg(node_id, "source_faces_index", "0"),
                                    input_faces_index=self.arg(node_id, "input_faces_index", "0"))
            except ValueError as exc:
                raise ExecutionError(node_id, "ReActorFaceSwap", str(exc)) from None
            if restore and result.swapped:
                self.ctx.sleep(RESTORE_S * len(result.swapped))
            self.warnings += [f"{where}: {warning}" for warning in result.warnings]
            swapped.append(Image.fromarray(result.image))
            self.ctx.progress({"step": i + 1, "total": len(targets)})
        return (swapped, None, targets)


def _with_reference(panel: Image.Image, face: Image.Image) -> Image.Image:
    """The panel with the reference face inset top-right, framed and labelled."""
    out = panel.copy()
    side = max(24, round(min(out.size) * THUMBNAIL))
    thumb = face.convert("RGB").copy()
    thumb.thumbnail((side, side), Image.Resampling.LANCZOS)
    x, y = out.width - thumb.width - side // 8, side // 8
    draw = ImageDraw.Draw(out)
    draw.rectangle((x - 3, y - 3, x + thumb.width + 2, y + thumb.height + 2), fill=(255, 255, 255))
    out.paste(thumb, (x, y))
    size = max(10, side // 8)
    draw.text((x, y + thumb.height + 4), "reference face", font=ImageFont.load_default(size=size),
              fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    return out
