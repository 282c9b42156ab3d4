"""Handler registry of the simulated workers: one handler per endpoint role.

A handler is what a RunPod worker's `handler(job)` is, plus a context object:
`handle(job: dict, ctx: JobContext) -> output`, where `job` is `{"id": ..., "input": {...}}`.
Results map to job states like runpod's worker SDK does (reference §2.4, see `execute`):
a returned dict with a truthy string `error` fails the job, an exception fails it with a JSON
error report, a generator streams each yielded value and its list is the output.

Every module in this package registers itself on import (`@register("image")`); the package
imports all of them below, so a new handler file needs no edit here. Roles without a handler of
their own run `basic`.
"""
from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

Handler = Callable[[dict, "JobContext"], object]

COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"

_registry: dict[str, Handler] = {}


class JobCancelled(Exception):
    """Raised inside a handler (by ctx.sleep/ctx.progress) once its job was cancelled or timed out."""


class JobContext:
    """What a running job can see and do besides its input; one per job run.

    Built by the simulator; tests of a handler can build one directly with only the first six
    arguments (no cancellation, progress goes nowhere).
    """

    def __init__(self, job_id: str, endpoint_id: str, role: str, worker_id: str,
                 volume_dir: Path, time_scale: float, *,
                 on_progress: Callable[[object], None] | None = None,
                 cancel_event: threading.Event | None = None,
                 checkpoint: Callable[[], None] | None = None):
        self.job_id = job_id
        self.endpoint_id = endpoint_id
        self.role = role
        self.worker_id = worker_id
        self.volume_dir = Path(volume_dir)
        self.time_scale = time_scale
        self._on_progress = on_progress
        self._cancel = cancel_event or threading.Event()
        # The simulator's hook for faults that strike mid-job (a crashing worker).
        self._checkpoint = checkpoint

    def __repr__(self) -> str:
        return f"JobContext(job_id={self.job_id!r}, role={self.role!r}, worker_id={self.worker_id!r})"

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def _check(self) -> None:
        if self._checkpoint is not None:
            self._checkpoint()
        if self._cancel.is_set():
            raise JobCancelled(f"job {self.job_id} was cancelled or timed out")

    def progress(self, update: object) -> None:
        """Publish a progress value: /status shows IN_PROGRESS with `output: update`."""
        self._check()
        if self._on_progress is not None:
            self._on_progress(update)

    def sleep(self, simulated_seconds: float) -> None:
        """Spend simulated time (scaled by time_scale); wakes at once when the job is cancelled."""
        self.sleep_real(simulated_seconds * self.time_scale)

    def sleep_real(self, seconds: float) -> None:
        """Spend real time, unscaled; raises JobCancelled when the job is cancelled or timed out."""
        self._check()
        if seconds > 0 and self._cancel.wait(seconds):
            raise JobCancelled(f"job {self.job_id} was cancelled or timed out")
        self._check()


def register(role: str) -> Callable[[Handler], Handler]:
    """Decorator: make `fn` the handler of every endpoint with this role."""
    def decorate(fn: Handler) -> Handler:
        _registry[role] = fn
        return fn
    return decorate


def handler_for(role: str) -> Handler:
    """The role's own handler, else `basic`."""
    return _registry.get(role) or _registry["basic"]


@dataclass(frozen=True)
class Outcome:
    """What a handler run amounted to, in the platform's terms."""

    status: str                 # COMPLETED | FAILED | CANCELLED (the handler saw a cancellation)
    output: Any = None          # None = no `output` key in /status
    error: str | None = None
    stop_worker: bool = False   # the handler returned refresh_worker: the worker restarts afterwards


@cache
def _runpod_version() -> str:
    return metadata.version("runpod")


def execute(handler: Handler, job: dict, ctx: JobContext,
            on_chunk: Callable[[object], None] = lambda chunk: None) -> Outcome:
    """Run one job through `handler` and map the result the way runpod's worker SDK (rp_job.py) does.

    Exceptions other than JobCancelled never escape; BaseExceptions (the simulator's injected
    worker crash) do, on purpose.
    """
    try:
        result = handler(job, ctx)
        if inspect.isgenerator(result):
            return _drain(result, on_chunk)
        return _map_return(result)
    except JobCancelled:
        return Outcome(CANCELLED)
    except Exception as exc:
        report = {
            "error_type": str(type(exc)),
            "error_message": str(exc),
            "error_traceback": traceback.format_exc(),
            "hostname": f"{ctx.worker_id}-localpod",
            "worker_id": ctx.worker_id,
            "runpod_version": _runpod_version(),
        }
        return Outcome(FAILED, error=json.dumps(report))


def _drain(generator, on_chunk: Callable[[object], None]) -> Outcome:
    chunks: list[object] = []
    try:
        for part in generator:
            # rp_job.handle_job: a yielded dict with a truthy error ends the stream as a failure.
            if isinstance(part, dict) and part.get("error"):
                return Outcome(FAILED, error=str(part["error"]))
            chunks.append(part)
            on_chunk(part)
    except JobCancelled:
        return Outcome(CANCELLED)
    except Exception as exc:
        # rp_job.run_job_generator's wording for generator errors.
        return Outcome(FAILED, error=f"handler: {exc} \ntraceback: {traceback.format_exc()}")
    return Outcome(COMPLETED, output=chunks)


def _map_return(result: object) -> Outcome:
    if not isinstance(result, dict):
        return Outcome(COMPLETED, output=result)
    rest = dict(result)
    error = rest.pop("error", None)
    refresh = bool(rest.pop("refresh_worker", None))
    if error and isinstance(error, str):
        # The rest of the returned dict stays the job's output (e.g. worker-comfyui's `details`).
        return Outcome(FAILED, output=rest or None, error=error, stop_worker=refresh)
    # A non-string error is dropped and the job reported COMPLETED, as the platform does
    # (runpod-python issue #299); an empty dict means no output at all (rp_job.run_job).
    return Outcome(COMPLETED, output=rest or None, stop_worker=refresh)


def _import_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_import_all()

__all__ = ["JobCancelled", "JobContext", "Outcome", "execute", "handler_for", "register"]
