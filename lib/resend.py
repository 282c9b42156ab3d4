"""Sending a job again checks before it spends, like Generate does: Re-run and Vary seed (Gallery) and
Retry (Jobs) run the same preflight against the volume as a new job, and a retry of a job the worker
refused as invalid says it will fail again."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lib.store import JobRecord
from lib.workflows import preflight
from lib.workflows.preflight import PreflightReport

# Form keys of the Generate page that a job's stored parameters fill in ("Open in Generate").
_GENERATE_FIELDS = {"prompt": "gen.prompt", "lora_name": "gen.lora", "seed": "gen.seed"}
_PER_PRESET_FIELDS = {"negative_prompt": "gen.negative", "lora_strength": "gen.strength", "steps": "gen.steps",
                      "guidance": "gen.guidance"}


@dataclass(frozen=True)
class ResendVerdict:
    ok: bool
    summary: str
    problems: list[str] = field(default_factory=list)
    fails_again: bool = False     # the worker refused this exact workflow; a retry repeats that
    can_open_in_generate: bool = False


def check_payload(record: JobRecord, volume) -> PreflightReport | None:
    """The preflight of the stored job input; None when the console kept no input for it."""
    if not isinstance(record.input, Mapping):
        return None
    return preflight({"input": record.input}, volume)


def _blocked(report: PreflightReport) -> list[str]:
    return [p.message for p in report.problems]


def before_resend(record: JobRecord, volume) -> ResendVerdict:
    """Re-run / Vary seed: may the stored job be sent again as it is?"""
    report = check_payload(record, volume)
    if report is None:
        return ResendVerdict(False, "The console kept no input for this job, so it cannot be sent again.")
    if not report.ok:
        return ResendVerdict(False, f"It would fail on the worker. {report.summary}", _blocked(report),
                             can_open_in_generate=bool(record.meta.get("params")))
    return ResendVerdict(True, report.summary)


def before_retry(record: JobRecord, volume) -> ResendVerdict:
    """RunPod's /retry sends the identical input again: say so when that cannot succeed."""
    openable = bool(record.meta.get("params"))
    error = record.error or ""
    if "validation failed" in error.lower() or "does not exist" in error:
        return ResendVerdict(False, "The worker refused this workflow as invalid: a retry sends the same "
                                    "workflow and will fail again. "
                             + ("Open it in Generate to change it, then generate." if openable
                                else "Fix the workflow and send a new job."),
                             fails_again=True, can_open_in_generate=openable)
    report = check_payload(record, volume)
    if report is not None and not report.ok:
        return ResendVerdict(False, f"A retry would fail again. {report.summary}", _blocked(report),
                             fails_again=True, can_open_in_generate=openable)
    return ResendVerdict(True, report.summary if report else "Retry sends the same input again.")


def generate_form(record: JobRecord) -> dict[str, object]:
    """Generate's form values that reproduce this job, for "Open in Generate"."""
    params: Mapping = record.meta.get("params") or {}
    template, model = record.meta.get("template"), record.meta.get("model")
    values: dict[str, object] = {"gen.model": model} if model else {}
    values.update({key: params[name] for name, key in _GENERATE_FIELDS.items() if params.get(name) is not None})
    if template:
        values.update({f"{key}.{template}": params[name] for name, key in _PER_PRESET_FIELDS.items()
                       if params.get(name) is not None})
    if params.get("seed") is not None:
        values["gen.seed_mode"] = "fixed"
    return values
