"""The `image` role: worker-comfyui's stock `base` image, whose ComfyUI has the core nodes only.

The worker and its ComfyUI are simulated in lib/localpod/comfy (worker.py: input, upload, /prompt
and the worker's texts; validation.py: ComfyUI's /prompt validation from real node definitions;
execution.py and render.py: running the graph and drawing its pictures). The stock image bakes no
model, so every model file comes from the network volume.
"""
from __future__ import annotations

from lib.localpod.comfy.worker import handle_job
from lib.localpod.handlers import JobContext, register


@register("image")
def handle(job: dict, ctx: JobContext) -> dict:
    return handle_job(job, ctx, custom_nodes=False)
