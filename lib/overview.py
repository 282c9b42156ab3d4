"""What the Overview and Jobs pages show, computed without streamlit."""
from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd

from lib.devworkers import reachability
from lib.jobstate import WORKER_FAILED, JobState
from lib.runpod import Health, NotFound, RunPodError
from lib.store import JobRecord, JobSummary
from lib.workflows.worker_errors import WorkerErrorView, describe_job_error

if TYPE_CHECKING:
    from lib.services import Services


@dataclass(frozen=True)
class EndpointHealth:
    role: str
    label: str
    endpoint_id: str
    health: Health | None
    problem: str | None = None
    missing: bool = False  # declared in console.toml but not created on RunPod yet
    dev_worker: bool = False  # a worker under development: reachability instead of RunPod health


def endpoint_health(services: Services) -> list[EndpointHealth]:
    """Live /health of every configured endpoint; one failing endpoint does not hide the others. Asked of all
    endpoints at once: one after the other, a page waited for the sum of RunPod's round trips (the Overview
    runs this every 5 s)."""
    endpoints = list(services.config.endpoints.items())
    if not endpoints:
        return []
    with ThreadPoolExecutor(max_workers=len(endpoints), thread_name_prefix="health") as pool:
        return list(pool.map(lambda item: _health_of(services, *item), endpoints))


def _health_of(services: Services, role: str, spec) -> EndpointHealth:
    ident = spec.id or spec.url or role
    if spec.is_dev_worker:
        reach = reachability(services, role)
        return EndpointHealth(role, spec.label, ident, None, None if reach.reachable else reach.detail,
                              dev_worker=True)
    try:
        return EndpointHealth(role, spec.label, ident, services.jobs(role).health())
    except NotFound as exc:
        return EndpointHealth(role, spec.label, ident, None, str(exc), missing=True)
    except RunPodError as exc:
        return EndpointHealth(role, spec.label, ident, None, str(exc))


def spend_today(store, now: datetime | None = None) -> float:
    """Estimated spend since midnight UTC from the console's own job records."""
    now = now or datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return store.spend(since=midnight, until=now + timedelta(seconds=1))


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else round(ms / 1000, 1)


COMPACT_COLUMNS = ["when", "endpoint", "kind", "status", "who", "run s"]


def jobs_table(records: Sequence[JobRecord | JobSummary], *, compact: bool = False) -> pd.DataFrame:
    """One row per job for a dataframe widget: plain words, no JSON (compact: what fits a panel)."""
    frame = pd.DataFrame([{
        "job": r.local_id,
        "when": r.created_at,
        "endpoint": r.role,
        "kind": r.kind,
        "status": r.status,
        "who": r.user,
        "character": r.character or "",
        "queue s": _seconds(r.delay_ms),
        "run s": _seconds(r.execution_ms),
        "worker": r.worker_id or "",
        "cost $": r.cost_usd,
        "simulated": r.simulated,
    } for r in records], columns=["job", "when", "endpoint", "kind", "status", "who", "character",
                                  "queue s", "run s", "worker", "cost $", "simulated"])
    return frame[COMPACT_COLUMNS] if compact else frame


def status_line(record: JobRecord, now: datetime | None = None) -> str:
    """queued → cold start → running → done, with elapsed seconds and the worker id."""
    now = now or datetime.now(UTC)
    elapsed = (now - (record.submitted_at or record.created_at)).total_seconds()
    worker = f" on worker {record.worker_id}" if record.worker_id else ""
    if record.status == JobState.PENDING:
        return "sending to RunPod…"
    if record.status == JobState.IN_QUEUE:
        return f"queued for {elapsed:.0f} s (a worker may be cold-starting)"
    if record.status == JobState.IN_PROGRESS:
        step = ""
        if isinstance(record.progress, dict) and record.progress.get("step") is not None:
            total = record.progress.get("total") or record.progress.get("total_steps")
            step = f", step {record.progress['step']}" + (f"/{total}" if total else "")
        cold = " after a cold start" if record.cold_start else ""
        return f"running{cold}{worker}{step} — {elapsed:.0f} s since submit"
    if record.status == JobState.COMPLETED:
        return (f"done{worker}: queued {_seconds(record.delay_ms) or 0} s, "
                f"ran {_seconds(record.execution_ms) or 0} s")
    state = record.status.lower().replace('_', ' ')
    if record.status in WORKER_FAILED:
        return f"{state}: {failure_view(record).summary}"
    return f"{state}: {record.error or 'no details from RunPod'}"


def failure_view(record: JobRecord) -> WorkerErrorView:
    """What went wrong with a failed job, readable; the worker's raw text is in its `raw`."""
    return describe_job_error(record.error, record.output)


def for_display(value: object, limit: int = 160) -> object:
    """A copy safe to show: long strings (base64 images, huge prompts) are shortened."""
    if isinstance(value, str):
        return value if len(value) <= limit else f"{value[:limit]}… ({len(value):,} characters)"
    if isinstance(value, dict):
        return {k: for_display(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [for_display(v, limit) for v in value[:200]]
    return value
