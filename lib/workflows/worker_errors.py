"""Readable text from worker-comfyui's error strings (reference worker-contracts §1.3, §1.9).

The worker returns one string in `error` (plus `details` for execution failures):
  * "Workflow validation failed:\\n• Node 4 (errors): [{...'value_not_in_list'...}]\\n• Node 4 (class_type): X…"
  * "Cannot execute because node X does not exist.. Raw response: {...}"
  * "Workflow execution error: Node Type: X, Node ID: N, Message: …"
  * {"error": "Job processing failed", "details": [...]}, which runpod's worker reports as the job's
    `error` with the rest as its `output` (§1.9): the node and message are in `output.details`
  * "Job processing failed, prompt ID not found in history." — a race in the worker, not the workflow
and runpod's SDK reports a crashed handler as a JSON string with error_type/error_message/traceback.
Staff never see the traceback or raw JSON; they see what failed, where, and what to do, with the
worker's raw text kept for the debugging expander (WorkerErrorView.raw).
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field, replace

from lib.workflows.graph import LOADER_INPUTS

_NODE_LINE = re.compile(r"^•\s*Node (?P<id>[^\s(]+) \((?P<kind>[a-z_]+)\): (?P<value>.*)$")
_EXEC = re.compile(r"Workflow execution error: Node Type: (?P<type>.*?), Node ID: (?P<id>.*?), "
                   r"Message: (?P<msg>.*)", re.S)
_MISSING_NODE = re.compile(r"Cannot execute because node (?P<type>.+?) does not exist\.")
_NODE_ID_DETAIL = re.compile(r"Node ID '#(?P<id>[^']+)'")
_NOT_IN_LIST = re.compile(r"^(?P<input>\w+): '(?P<value>.*)' not in (?P<options>.*)$", re.S)
_OOM = re.compile(r"out of memory|Allocation on device|OutOfMemory", re.I)
_HISTORY_RACE = "prompt ID not found in history"
MAX_LISTED = 8
# List inputs whose values are model files (anything else is one of ComfyUI's own fixed lists).
MODEL_INPUTS = frozenset({name for inputs in LOADER_INPUTS.values() for name in inputs}
                         | {"ipadapter_file", "style_model_name", "pulid_file", "swap_model", "face_restore_model",
                            "hypernetwork_name", "gligen_name", "clip_name4", "model_name"})
# What ComfyUI's fixed lists hold, in words; long lists are not sent back by ComfyUI, so the
# message names a few well-known values of its own.
LIST_NOUNS = {"sampler_name": "samplers", "scheduler": "schedulers", "weight_dtype": "weight types",
              "type": "CLIP types", "facedetection": "face detectors", "upscale_method": "upscale methods"}
WELL_KNOWN = {"sampler_name": ("euler", "euler_ancestral", "dpmpp_2m", "res_multistep")}
_BOUNDS = re.compile(r"Value (?P<value>.+) (?P<side>smaller than min|bigger than max) of (?P<limit>.+)")
_MISMATCH = re.compile(r"^(?P<input>\w+), received_type\((?P<got>.*)\) mismatch input_type\((?P<want>.*)\)$")


@dataclass(frozen=True)
class WorkerErrorView:
    summary: str
    node_id: str | None = None
    node_type: str | None = None
    lines: list[str] = field(default_factory=list)
    retryable: bool = False     # the job may well succeed as it is when retried
    raw: str = ""               # the worker's own text, for the debugging expander only


def describe_job_error(error: object, output: object = None) -> WorkerErrorView:
    """A FAILED job's `error` and `output` (where runpod keeps worker-comfyui's `details`) as readable text.

    RunPod's /status for such a job was not observed (reference §1.9): `output.details` is read
    when it is there; without it the view says what `error` alone tells.
    """
    details = output.get("details") if isinstance(output, dict) else None
    view = describe_worker_error(error, details)
    raw = "\n".join(part for part in [str(error).strip() if error is not None else "",
                                       *_detail_lines(details)] if part)
    return replace(view, raw=raw)


def describe_worker_error(error: object, details: object = None) -> WorkerErrorView:
    """Turn a FAILED job's `error` (and worker-comfyui's `details`, when present) into readable text."""
    if isinstance(error, dict):
        details = error.get("details", details)
        error = error.get("error") or error.get("error_message") or json.dumps(error)
    if error is None or not str(error).strip():
        return WorkerErrorView("The job failed on the worker without an error message; check the "
                               "worker's logs on RunPod.", lines=_detail_lines(details))
    text = str(error).strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            if "error_message" in parsed or "error_type" in parsed:
                return _sdk_report(parsed)
            if "error" in parsed:
                return describe_worker_error(parsed, details)
    if text.startswith("Workflow validation failed"):
        return _validation(text)
    missing = _MISSING_NODE.search(text)
    if missing:
        node_id = _NODE_ID_DETAIL.search(text)
        return WorkerErrorView(
            f"The worker's ComfyUI has no node type {missing['type']!r}: the workflow needs a custom "
            f"node that is not installed in the worker image (bake it in with comfy-node-install).",
            node_id["id"] if node_id else None, missing["type"])
    execution = _EXEC.search(text)
    if execution:
        return _execution(execution, _detail_lines(details))
    if _HISTORY_RACE in text:
        return WorkerErrorView(
            "The worker lost track of the job: it read ComfyUI's history before ComfyUI had written it "
            "(a known race in worker-comfyui), so it is not known whether the workflow itself failed. "
            "Retry the job.", lines=_detail_lines(details), retryable=True)
    if text.startswith("Job processing failed"):
        lines = _detail_lines(details)
        for line in lines:
            execution = _EXEC.search(line)
            if execution:
                return _execution(execution, [ln for ln in lines if ln != line])
        if lines:
            return WorkerErrorView(f"The workflow failed on the worker: {lines[0]}", lines=lines[1:])
        return WorkerErrorView("The workflow failed on the worker and produced no image. RunPod does "
                               "not pass worker-comfyui's details on; the worker's logs have them.")
    if text.startswith("Failed to upload one or more input images"):
        return WorkerErrorView("The worker could not read the input images sent with the job.",
                               lines=_detail_lines(details))
    if ". Raw response: " in text:
        message, _, raw = text.partition(". Raw response: ")
        try:
            info = json.loads(raw).get("error", {})
        except (json.JSONDecodeError, AttributeError):
            info = {}
        node_id = _NODE_ID_DETAIL.search(str(info.get("details", "")))
        if info.get("type") == "prompt_no_outputs":
            message = "the workflow has no output node: add a SaveImage node"
        return WorkerErrorView(f"ComfyUI refused the workflow: {message.rstrip('.')}.",
                               node_id["id"] if node_id else None)
    first, *rest = [ln for ln in text.splitlines() if ln.strip()]
    return WorkerErrorView(first, lines=rest + _detail_lines(details))


def _detail_lines(details: object) -> list[str]:
    if details is None:
        return []
    if isinstance(details, (list, tuple)):
        return [str(d) for d in details if str(d).strip()]
    return [str(details)]


def _sdk_report(report: dict) -> WorkerErrorView:
    kind = str(report.get("error_type", "")).removeprefix("<class '").removesuffix("'>")
    message = str(report.get("error_message", "")).strip() or "no message"
    return WorkerErrorView(f"The worker's handler crashed: {message}",
                           lines=[f"Error type: {kind}"] if kind else [])


def _execution(match: re.Match, extra: list[str]) -> WorkerErrorView:
    node_type, node_id, message = match["type"].strip(), match["id"].strip(), match["msg"].strip()
    lines = list(extra)
    if _OOM.search(message):
        lines.insert(0, "The GPU ran out of memory: use a smaller size or fewer images per job, "
                        "or a GPU with more memory.")
    return WorkerErrorView(f"Node {node_id} ({node_type}) failed while running: {message or 'no message'}",
                           node_id, node_type, lines)


def _readable_node_error(node_id: str, class_type: str | None, err: object) -> str:
    where = f"Node {node_id}" + (f" ({class_type})" if class_type else "")
    if not isinstance(err, dict):
        return f"{where}: {err}"
    kind, details = err.get("type"), str(err.get("details", ""))
    message = str(err.get("message", kind or "invalid"))
    if kind == "value_not_in_list":
        m = _NOT_IN_LIST.match(details)
        if m:
            return _not_in_list(where, m["input"], m["value"], m["options"])
    if kind == "required_input_missing":
        return f"{where}: the required input {details!r} is not connected or set"
    bounds = _BOUNDS.match(message)
    if kind in ("value_smaller_than_min", "value_bigger_than_max") and bounds:
        side = "minimum" if bounds["side"].startswith("smaller") else "maximum"
        return f"{where}: {details} is {bounds['value']}, beyond ComfyUI's {side} of {bounds['limit']}"
    mismatch = _MISMATCH.match(details)
    if kind == "return_type_mismatch" and mismatch:
        return (f"{where}: the input {mismatch['input']} takes {mismatch['want']} but is linked to an output "
                f"of type {mismatch['got']}")
    if kind in ("exception_during_validation", "exception_during_inner_validation"):
        return (f"{where}: a link points to a node or output that is not in the workflow ({details}); "
                "check the node ids and output numbers of its links")
    return f"{where}: {message}" + (f" — {details}" if details else "")


def _not_in_list(where: str, name: str, value: str, options_text: str) -> str:
    if name in MODEL_INPUTS:
        return f"{where} {name}: {value!r} is not on the worker; {_options(options_text)}"
    noun = LIST_NOUNS.get(name, f"{name} values")
    options = _listed(options_text)
    shown = list(options[:MAX_LISTED]) if options else list(WELL_KNOWN.get(name, ()))
    more = ", …" if not options or len(options) > MAX_LISTED else ""
    choices = f" ({', '.join(map(str, shown))}{more})" if shown else ""
    return f"{where}: {name} {value!r} is not one of ComfyUI's {noun}{choices}"


def _listed(text: str) -> list | None:
    """The options ComfyUI sent back, or None when it only gave their number."""
    try:
        options = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return None
    return options if isinstance(options, list) else None


def _options(text: str) -> str:
    text = text.strip()
    length = re.match(r"\(list of length (\d+)\)", text)
    if length:
        return f"{length[1]} files are available there"
    options = _listed(text)
    if options is None:
        return f"available: {text}"
    if not options:
        return "no files of that kind are available"
    shown = ", ".join(map(str, options[:MAX_LISTED]))
    more = f" and {len(options) - MAX_LISTED} more" if len(options) > MAX_LISTED else ""
    return f"available: {shown}{more}"


def _validation(text: str) -> WorkerErrorView:
    node_errors: dict[str, list] = {}
    class_types: dict[str, str] = {}
    trailing: list[str] = []
    for raw in text.splitlines()[1:]:
        line = raw.strip()
        if not line:
            continue
        m = _NODE_LINE.match(line)
        if not m:
            trailing.append(line)
            continue
        if m["kind"] == "class_type":
            class_types[m["id"]] = m["value"].strip()
        elif m["kind"] == "errors":
            try:
                value = ast.literal_eval(m["value"])
            except (ValueError, SyntaxError):
                value = [m["value"]]
            node_errors.setdefault(m["id"], []).extend(value if isinstance(value, list) else [value])
    readable = [_readable_node_error(nid, class_types.get(nid), err)
                for nid, errs in node_errors.items() for err in errs]
    if not readable:
        return WorkerErrorView("ComfyUI rejected the workflow before running it.", lines=trailing)
    first_id = next(iter(node_errors))
    return WorkerErrorView(f"ComfyUI rejected the workflow before running it: {readable[0]}",
                           first_id, class_types.get(first_id), readable[1:] + trailing)
