"""Image inference workflows for worker-comfyui: templates, payloads, own uploads, preflight, errors.

    template = load_template("z_image_turbo_lora")
    payload = build_payload(template, {"prompt": "...", "seed": new_seed(), "lora_name": "ava.safetensors"},
                            job_tag=local_id)
    report = preflight(payload, volume)            # blocks missing/misplaced models before GPU time
    view = describe_worker_error(job.error)        # readable text for a FAILED job
"""
from lib.workflows.graph import (
    INVISIBLE_ALIASES,
    LOADER_INPUTS,
    ModelRef,
    WorkflowError,
    models_in_workflow,
    parse_uploaded_workflow,
    suggest_param_map,
)
from lib.workflows.payload import SEED_MAX, ParamError, build_payload, new_seed, resolve_params, retag_payload
from lib.workflows.preflight import PreflightReport, Problem, preflight, preflight_many
from lib.workflows.templates import (
    PARAM_NAMES,
    Limits,
    RequiredModel,
    SizePreset,
    Template,
    TemplateError,
    list_templates,
    load_template,
    save_custom_template,
    size_presets,
)
from lib.workflows.worker_errors import WorkerErrorView, describe_worker_error

__all__ = [
    "INVISIBLE_ALIASES", "LOADER_INPUTS", "PARAM_NAMES", "SEED_MAX", "Limits", "ModelRef", "ParamError",
    "PreflightReport", "Problem", "RequiredModel", "SizePreset", "Template", "TemplateError",
    "WorkerErrorView", "WorkflowError", "build_payload", "describe_worker_error", "list_templates",
    "load_template", "models_in_workflow", "new_seed", "parse_uploaded_workflow", "preflight",
    "preflight_many", "resolve_params", "retag_payload", "save_custom_template", "size_presets",
    "suggest_param_map",
]
