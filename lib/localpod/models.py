"""The simulator's domain objects: jobs, simulated workers, endpoints and their fault settings.

All times are wall-clock epoch seconds (time.time()) so that they survive a restart; durations
reported to clients (delayTime, executionTime) are real milliseconds.
"""
from __future__ import annotations

import asyncio
import secrets
import string
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lib.localpod.config import EndpointSpec

IN_QUEUE = "IN_QUEUE"
IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
TIMED_OUT = "TIMED_OUT"
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED, TIMED_OUT})

# Worker states, as REST v2 spells them.
INITIALIZING = "INITIALIZING"
IDLE = "IDLE"
RUNNING = "RUNNING"
THROTTLED = "THROTTLED"
UNHEALTHY = "UNHEALTHY"

DEFAULT_TTL_MS = 86_400_000   # policy.ttl default: 24 h from submission
FLASHBOOT_TYPES = ("OFF", "FLASHBOOT", "PRIORITY_FLASHBOOT")

_WORKER_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_job_id(sync: bool) -> str:
    return f"sync-{uuid.uuid4()}-e1" if sync else f"{uuid.uuid4()}-e1"


def new_worker_id() -> str:
    """14 lower-case alphanumerics, the shape of RunPod worker ids (e.g. "oqk7ao1uomckye")."""
    return "".join(secrets.choice(_WORKER_ID_ALPHABET) for _ in range(14))


def iso_z(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Faults:
    """Run-time fault injection for one endpoint (PUT /admin/faults/{endpoint_id})."""

    failure_rate: float = 0.0
    crash_rate: float = 0.0
    extra_cold_start_s: float = 0.0   # simulated seconds, scaled by time_scale like cold starts
    http_429_rate: float = 0.0
    http_5xx_rate: float = 0.0

    RATES = ("failure_rate", "crash_rate", "http_429_rate", "http_5xx_rate")

    def to_dict(self) -> dict:
        return {"failure_rate": self.failure_rate, "crash_rate": self.crash_rate,
                "extra_cold_start_s": self.extra_cold_start_s,
                "http_429_rate": self.http_429_rate, "http_5xx_rate": self.http_5xx_rate}


@dataclass(eq=False)
class Run:
    """One execution attempt of a job on a worker (runtime only, never persisted)."""

    worker_id: str
    cancel: Any                      # threading.Event shared with the handler's JobContext
    crash: bool = False              # fault injection: the worker dies at the handler's first checkpoint
    fail: bool = False               # fault injection: the job fails whatever the handler returns
    returned: bool = False           # the handler thread has come back


@dataclass(eq=False)
class Job:
    id: str
    endpoint_id: str
    input: Any
    sync: bool
    submitted_at: float
    queued_at: float
    webhook: str | None = None
    execution_timeout_ms: int | None = None   # None: the endpoint's timeout
    low_priority: bool = False
    ttl_ms: int = DEFAULT_TTL_MS
    status: str = IN_QUEUE
    retries: int = 0
    crashes: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    delay_ms: int | None = None
    execution_ms: int | None = None
    worker_id: str | None = None
    output: Any = None
    error: str | None = None
    expires_at: float | None = None           # end of result retention, once terminal
    retention_ms: int | None = None           # set by GET /status?ttl=
    # runtime only
    stream: list = field(default_factory=list)
    stream_sent: int = 0
    run: Run | None = None
    waiters: list[asyncio.Future] = field(default_factory=list)
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def body(self, now: float) -> dict:
        """The /status body: keys without a value yet are left out, as RunPod does for a queued job."""
        out: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.delay_ms is not None:
            out["delayTime"] = self.delay_ms
        if self.execution_ms is not None:
            out["executionTime"] = self.execution_ms
        elif self.status == IN_PROGRESS and self.started_at is not None:
            out["executionTime"] = int((now - self.started_at) * 1000)
        if self.worker_id is not None:
            out["workerId"] = self.worker_id
        if self.retries or self.delay_ms is not None:
            out["retries"] = self.retries
        if self.output is not None:
            out["output"] = self.output
        if self.error is not None:
            out["error"] = self.error
        return out

    def record(self) -> dict:
        """Persistent form (SQLite)."""
        return {"id": self.id, "endpoint_id": self.endpoint_id, "input": self.input,
                "sync": self.sync, "submitted_at": self.submitted_at, "queued_at": self.queued_at,
                "webhook": self.webhook, "execution_timeout_ms": self.execution_timeout_ms,
                "low_priority": self.low_priority, "ttl_ms": self.ttl_ms, "status": self.status,
                "retries": self.retries, "crashes": self.crashes, "started_at": self.started_at,
                "finished_at": self.finished_at, "delay_ms": self.delay_ms,
                "execution_ms": self.execution_ms, "worker_id": self.worker_id,
                "output": self.output, "error": self.error, "expires_at": self.expires_at,
                "retention_ms": self.retention_ms}

    @classmethod
    def from_record(cls, rec: dict) -> Job:
        return cls(**rec)


@dataclass(eq=False)
class Worker:
    id: str
    endpoint_id: str
    slot: int
    created_at: float
    status: str = INITIALIZING
    active: bool = False             # kept for workers_min: never idles out, billed at the active price
    ready_at: float | None = None
    idle_since: float | None = None
    job_id: str | None = None
    billed_until: float | None = None
    timer: asyncio.TimerHandle | None = None
    host_cuda: str | None = None     # the CUDA version of its host's driver (lib/localpod/hosts.py)

    def view(self) -> dict:
        return {"id": self.id, "status": self.status, "createdAt": iso_z(self.created_at)}


@dataclass(eq=False)
class Endpoint:
    """One simulated queue endpoint: its live settings, queue, workers and counters."""

    id: str
    role: str
    name: str
    gpu_pools: list[str]
    workers_min: int
    workers_max: int
    idle_timeout_s: int
    scaling_type: str
    scaling_value: float
    execution_timeout_ms: int
    flashboot: str
    image: str
    env: dict
    created_at: float
    completed: int = 0
    failed: int = 0
    retried: int = 0
    slots_used: set[int] = field(default_factory=set)
    # runtime only
    faults: Faults = field(default_factory=Faults)
    queue: dict[str, Job] = field(default_factory=dict)       # insertion order = FIFO
    workers: dict[str, Worker] = field(default_factory=dict)
    hits: dict[str, deque] = field(default_factory=dict)       # rate limiter windows per operation
    scale_timer: asyncio.TimerHandle | None = None

    @classmethod
    def from_spec(cls, spec: EndpointSpec, created_at: float) -> Endpoint:
        name = spec.name or f"console-{spec.role}"
        if spec.role not in name.lower():
            # Pages and tests find an endpoint's workload by its name (DESIGN.md).
            name = f"{name}-{spec.role}"
        return cls(id=spec.id or "", role=spec.role, name=name,
                   gpu_pools=list(spec.gpu_pools), workers_min=spec.workers_min,
                   workers_max=spec.workers_max, idle_timeout_s=spec.idle_timeout_s,
                   scaling_type=spec.scaling_type, scaling_value=float(spec.scaling_value),
                   execution_timeout_ms=spec.execution_timeout_ms,
                   flashboot="FLASHBOOT" if spec.flashboot else "OFF",
                   image=spec.image or _default_image(spec.role), env=spec.runpod_env(),
                   created_at=created_at)

    def live_workers(self) -> list[Worker]:
        """Workers that count towards min/max: everything but crashed ones."""
        return [w for w in self.workers.values() if w.status != UNHEALTHY]

    def running_jobs(self) -> int:
        return sum(1 for w in self.workers.values() if w.status == RUNNING)

    def record(self) -> dict:
        return {"id": self.id, "role": self.role, "name": self.name, "gpu_pools": self.gpu_pools,
                "workers_min": self.workers_min, "workers_max": self.workers_max,
                "idle_timeout_s": self.idle_timeout_s, "scaling_type": self.scaling_type,
                "scaling_value": self.scaling_value,
                "execution_timeout_ms": self.execution_timeout_ms, "flashboot": self.flashboot,
                "image": self.image, "env": self.env, "created_at": self.created_at,
                "completed": self.completed, "failed": self.failed, "retried": self.retried,
                "slots_used": sorted(self.slots_used)}

    @classmethod
    def from_record(cls, rec: dict) -> Endpoint:
        rec = dict(rec)
        rec["slots_used"] = set(rec.get("slots_used", ()))
        return cls(**rec)


def _default_image(role: str) -> str:
    # What the product's architecture runs on each endpoint (DESIGN.md).
    if role == "training":
        return "serverless-console/lora-trainer:latest"
    return "runpod/worker-comfyui:5.5.0-base"
