"""Simulated worker-comfyui (≥ 5.x) in front of the simulated ComfyUI (reference worker-contracts §1).

The worker's flow and wording, from its handler.py: input is an object or a JSON string;
`workflow` is required; `images` is a list of {name, image} uploaded to ComfyUI's input folder;
the workflow is queued with POST /prompt and a 400 answer is rendered into one text in `error`
("Workflow validation failed:\\n• Node N (errors): [...]" with the "Available checkpoint models:"
line for a missing checkpoint, or "<message>. Raw response: {...}"); execution errors become
"Workflow execution error: Node Type: X, Node ID: N, Message: …" in `details`, and a job with no
images and errors returns {"error": "Job processing failed", "details": [...]}, which runpod's
worker reports as the job's `error` with the rest as its `output` (§1.9).

Bucket output: when the worker's environment has BUCKET_ENDPOINT_URL set (for the simulator: the
environment of the process running localpod) images are not returned as base64 but "uploaded" —
written to <volume>/outputs/<job id>/<filename> — and returned as {"type": "s3_url", "data":
"file:///…"}; the console's output fetcher reads file:// URLs only inside the simulator's volume.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping

from lib.localpod.comfy.execution import ExecutionError, Run
from lib.localpod.comfy.nodes import Server, node_classes, scan_volume
from lib.localpod.comfy.validation import validate_prompt

JOB_OVERHEAD_S = 0.3  # queueing on ComfyUI, websocket, history and image fetch


class Rejected(Exception):
    """ComfyUI did not take the prompt; the message is what worker-comfyui puts in `error`."""


def handle_job(job: dict, ctx, *, custom_nodes: bool, run_type: type[Run] = Run) -> dict:
    """One job on a worker whose image has the core nodes, plus its custom nodes if custom_nodes."""
    validated, error = read_input(job.get("input"))
    if validated is None:
        return {"error": error}
    workflow, images = validated
    uploaded, upload_errors = upload(images or [])
    if upload_errors:
        return {"error": "Failed to upload one or more input images", "details": upload_errors}
    server = Server(node_classes(custom_nodes), scan_volume(ctx.volume_dir), frozenset(uploaded))
    try:
        outputs = queue(workflow, server)
    except Rejected as exc:
        return {"error": str(exc)}
    ctx.sleep(JOB_OVERHEAD_S)
    run = run_type(workflow, server, uploaded, ctx)
    saved: list[tuple[str, bytes]] = []
    errors: list[str] = []
    try:
        for node_id in outputs:
            saved += run.output(node_id)
    except ExecutionError as exc:
        errors.append(f"Workflow execution error: {exc}")
    return result(saved, run.warnings + errors, ctx)


def read_input(job_input) -> tuple[tuple[dict, list | None] | None, str | None]:
    if job_input is None:
        return None, "Please provide input"
    if isinstance(job_input, str):
        try:
            job_input = json.loads(job_input)
        except json.JSONDecodeError:
            return None, "Invalid JSON format in input"
    if not isinstance(job_input, dict):
        # worker-comfyui calls .get() here and crashes; the SDK then reports the exception.
        raise AttributeError(f"'{type(job_input).__name__}' object has no attribute 'get'")  # noqa: TRY004
    workflow = job_input.get("workflow")
    if workflow is None:
        return None, "Missing 'workflow' parameter"
    images = job_input.get("images")
    if images is not None and (not isinstance(images, list) or not all(
            isinstance(image, dict) and "name" in image and "image" in image for image in images)):
        return None, "'images' must be a list of objects with 'name' and 'image' keys"
    return (workflow, images), None


def upload(images: list[dict]) -> tuple[dict[str, bytes], list[str]]:
    uploaded, errors = {}, []
    for image in images:
        name, data = str(image["name"]), str(image["image"])
        if "," in data:
            data = data.split(",", 1)[1]
        try:
            uploaded[name] = base64.b64decode(data)
        except (binascii.Error, ValueError) as exc:
            errors.append(f"Error decoding base64 for {name}: {exc}")
    return uploaded, errors


def queue(workflow, server: Server) -> list[str]:
    """worker-comfyui's queue_workflow: POST /prompt, and a 400 rendered into its error text."""
    if not isinstance(workflow, Mapping):
        # ComfyUI's validate_prompt crashes on a non-object prompt (HTTP 500); the worker reports it so.
        raise Rejected("HTTP communication error with ComfyUI: 500 Server Error: Internal Server Error "
                       "for url: http://127.0.0.1:8188/prompt")
    good, rejection = validate_prompt(workflow, server)
    if rejection is None:
        return good
    raise Rejected(rendered_rejection(json.loads(json.dumps(rejection)), server))


def rendered_rejection(rejection: dict, server: Server) -> str:
    """The worker's text for ComfyUI's 400 body (already a JSON round trip, as the worker reads it)."""
    error_info = rejection["error"]
    message = error_info.get("message", "Workflow validation failed")
    if error_info.get("type") == "prompt_outputs_failed_validation":
        message = "Workflow validation failed"
    details = [f"Node {node_id} ({kind}): {value}"
               for node_id, node_error in rejection["node_errors"].items() for kind, value in node_error.items()]
    if not details:
        return f"{message}. Raw response: {json.dumps(rejection)}"
    text = f"{message}:\n" + "\n".join(f"• {detail}" for detail in details)
    if any("not in list" in detail and "ckpt_name" in detail for detail in details):
        # The worker asks ComfyUI's /object_info for CheckpointLoaderSimple's list.
        checkpoints = server.models.get("checkpoints", [])
        if checkpoints:
            text += f"\n\nAvailable checkpoint models: {', '.join(checkpoints)}"
        else:
            text += "\n\nNo checkpoint models appear to be available. Please check your model installation."
    return text


def result(saved: list[tuple[str, bytes]], errors: list[str], ctx) -> dict:
    images = []
    bucket = os.environ.get("BUCKET_ENDPOINT_URL")
    for filename, data in saved:
        if bucket:
            folder = ctx.volume_dir / "outputs" / ctx.job_id
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / filename
            path.write_bytes(data)
            images.append({"filename": filename, "type": "s3_url", "data": path.resolve().as_uri()})
        else:
            images.append({"filename": filename, "type": "base64", "data": base64.b64encode(data).decode("ascii")})
    if not images and errors:
        return {"error": "Job processing failed", "details": errors}
    output: dict = {}
    if images:
        output["images"] = images
    if errors:
        output["errors"] = errors
    if not images:
        output.update(status="success_no_images", images=[])
    return output
