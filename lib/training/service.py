"""What the training pages do, against the console's services: check a set version, launch a run,
follow it, stage checkpoints for comparison and promote one. Permission checks happen here, on
the server side, whatever the page showed."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lib.auth import User, require
from lib.errors import ConsoleError
from lib.jobstate import JobState
from lib.runpod import Policy
from lib.store import JobRecord
from lib.training.config import build_job, output_path
from lib.training.datasets import TrainingSets
from lib.training.readiness import ReadinessReport
from lib.training.runs import (
    Candidate,
    Checkpoint,
    Promotion,
    RunError,
    RunView,
    promote_checkpoint,
    read_live_loss,
    resume_point,
    run_view,
    stage_candidates,
)

if TYPE_CHECKING:
    from lib.services import Services

KIND = "training"
ROLE = "training"


class TrainingBlocked(ConsoleError, ValueError):
    """The chosen set version is not ready to train; `blockers` says what to fix first."""

    def __init__(self, blockers: list[str]):
        self.blockers = blockers
        super().__init__("The training set is not ready: " + "; ".join(blockers))


@dataclass(frozen=True)
class VersionCheck:
    name: str
    version: str
    trigger_word: str
    report: ReadinessReport
    blockers: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return not self.blockers


def check_version(sets: TrainingSets, name: str, version: str) -> VersionCheck:
    """Readiness of a saved version; warnings count as handled only if acknowledged in it."""
    draft = sets.draft(name, version)
    report = draft.readiness()
    blockers = [f.message for f in report.errors]
    open_warnings = report.unacknowledged(draft.acknowledged)
    if open_warnings:
        blockers.append(f"{len(open_warnings)} warning(s) not acknowledged — review them on the Training "
                        f"sets page and save the set with them acknowledged")
    return VersionCheck(name=name, version=version, trigger_word=draft.trigger_word, report=report,
                        blockers=tuple(blockers))


def launch(svc: Services, user: User, *, set_name: str, version: str, preset_key: str, config: dict,
           request_key: str, run_id: str | None = None) -> JobRecord:
    """Submit a training job for a ready set version (idempotent per request_key). The run folder is
    named from the time it is sent unless `run_id` names it."""
    require(user, "train")
    check = check_version(TrainingSets(svc.volume), set_name, version)
    if not check.ready:
        raise TrainingBlocked(list(check.blockers))
    job = build_job(name=set_name, trigger_word=check.trigger_word, dataset_version=version,
                    preset_key=preset_key, config=config, console=svc.config, run_id=run_id)
    return svc.tracker.submit(ROLE, job.input, kind=KIND, user=user.email, idempotency_key=request_key,
                              meta=job.meta, est_cost_usd=job.estimate.cost_usd,
                              policy=Policy(execution_timeout_ms=job.estimate.execution_timeout_ms))


def runs(svc: Services, name: str | None = None, limit: int = 50) -> list[JobRecord]:
    records = svc.store.list(role=ROLE, kind=KIND, limit=limit)
    return [r for r in records if name is None or r.meta.get("character") == name]


def run_label(record: JobRecord) -> str:
    meta = record.meta or {}
    when = record.created_at.strftime("%Y-%m-%d %H:%M")
    # No status here: Streamlit keeps a keyed selectbox's first label for the chosen option, so a run
    # picked while queued would still read "in queue" after it finished; the run panel shows the status.
    return (f"{meta.get('character', '?')} {meta.get('dataset_version', '')} · {meta.get('preset', '')} · "
            f"{meta.get('steps', '?')} steps · {when}")


def view(svc: Services, record: JobRecord) -> RunView:
    """The run as the page shows it. Until it completes, the loss curve comes from the volume,
    where the worker keeps it, also after a cancel."""
    completed = record.status == JobState.COMPLETED
    live = []
    if not completed and record.input and record.status != JobState.SUBMIT_FAILED:
        live = read_live_loss(svc.volume, record.input["output_path"])
    return run_view(record.progress, record.output if completed else None,
                    error=record.error, loss_series=live, status=record.status)


def resumable_from(svc: Services, record: JobRecord) -> Checkpoint | None:
    """The checkpoint a stopped run can be continued from (see runs.resume_point), or None."""
    if not record.is_final or record.status == JobState.COMPLETED or not record.input:
        return None
    return resume_point(view(svc, record), record.input.get("config"))


def resume(svc: Services, user: User, record: JobRecord, *, run_id: str, request_key: str) -> JobRecord:
    """Continue a stopped run from its last checkpoint, as a new run with the same set and config."""
    require(user, "train")
    name, _ = _run_of(record)
    point = resumable_from(svc, record)
    if point is None:
        raise RunError("This run has no checkpoint to resume from.")
    assert record.input is not None  # resumable_from found the checkpoint through it
    meta = record.meta or {}
    job = build_job(name=name, trigger_word=record.input["trigger_word"],
                    dataset_version=meta.get("dataset_version", ""), preset_key=meta.get("preset", ""),
                    config=record.input["config"], console=svc.config, run_id=run_id,
                    resume_from=(point.path, point.step))
    return svc.tracker.submit(ROLE, job.input, kind=KIND, user=user.email, idempotency_key=request_key,
                              meta=job.meta, est_cost_usd=job.estimate.cost_usd,
                              policy=Policy(execution_timeout_ms=job.estimate.execution_timeout_ms))


def _run_of(record: JobRecord) -> tuple[str, str]:
    meta = record.meta or {}
    name, run_id = meta.get("character"), meta.get("run_id")
    if not name or not run_id or (record.input or {}).get("output_path") != output_path(name, run_id):
        raise RunError("This job is not a training run started by the console.")
    return name, run_id


def compare(svc: Services, user: User, record: JobRecord, steps: list[int]) -> list[Candidate]:
    """Stage chosen checkpoints where ComfyUI can load them, for the comparison grid."""
    require(user, "train")
    name, run_id = _run_of(record)
    candidates = stage_candidates(svc.volume, view(svc, record), name, run_id, steps)
    svc.store.audit(user.email, "stage_checkpoints", record.local_id,
                    {"loras": [c.lora_name for c in candidates]})
    return candidates


def promote(svc: Services, user: User, record: JobRecord, step: int, version: str | None = None) -> Promotion:
    """Copy one checkpoint to models/loras/<character>_<version>.safetensors and audit who did it."""
    require(user, "promote")
    name, _ = _run_of(record)
    chosen = [c for c in view(svc, record).checkpoints if c.step == step]
    if not chosen:
        raise RunError(f"This run has no checkpoint at step {step}.")
    done = promote_checkpoint(svc.volume, chosen[-1], name, version)
    svc.store.audit(user.email, "promote", record.local_id,
                    {"source": done.source, "target": done.target, "step": step, "sha256": done.sha256})
    return done
