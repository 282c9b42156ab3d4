"""What the simulator's mixins (lifecycle, workers, resources) share: its state and the methods
they call on one another. Simulator (simulator.py) sets the state and combines the mixins; this
class only states their types, so that each mixin is checked on its own."""
from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from lib.localpod.config import PodConfig
from lib.localpod.models import Endpoint, Job, Worker
from lib.localpod.ratelimit import RestQuota
from lib.localpod.state import BillingHour, Store


class SimulatorState:
    config: PodConfig
    empty: bool
    store: Store
    volume_dir: Path
    time_scale: float
    run_retention_s: float
    runsync_retention_s: float
    webhook_retry_s: float
    rate_limits: bool
    rest_quota: RestQuota
    worker_quota: int | None
    rng: random.Random
    endpoints: dict[str, Endpoint]
    extras: dict[str, dict[str, Any]]
    volumes: dict[str, dict[str, Any]]
    jobs: dict[str, Job]
    loop: asyncio.AbstractEventLoop | None
    closing: bool
    _pending_billing: list[BillingHour]
    _billing_timer: asyncio.TimerHandle | None
    _http: httpx.AsyncClient | None
    _tasks: set[asyncio.Task[None]]

    if TYPE_CHECKING:
        # simulator.py
        def _running_loop(self) -> asyncio.AbstractEventLoop: ...
        def _later(self, delay: float, fn: Callable[..., object], *args: object) -> asyncio.TimerHandle: ...
        def _rearm(self, job: Job, name: str, delay: float, fn: Callable[..., object], *args: object) -> None: ...
        @staticmethod
        def _drop_timer(job: Job, name: str) -> None: ...
        def _spawn_task(self, coro: Coroutine[Any, Any, None]) -> None: ...

        # lifecycle.py
        def _finish(self, ep: Endpoint, job: Job, status: str, now: float, *,
                    output: object = None, error: str | None = None) -> None: ...
        def _delete(self, job: Job) -> None: ...
        @staticmethod
        def _reset_for_queue(job: Job, now: float) -> None: ...

        # workers.py
        def _pump(self, ep: Endpoint) -> None: ...
        def _assign_active(self, ep: Endpoint) -> None: ...
        def _enforce_max(self, ep: Endpoint, now: float) -> None: ...
        def _arm_idle(self, ep: Endpoint, w: Worker) -> None: ...
        def _stop_worker(self, ep: Endpoint, w: Worker, now: float) -> None: ...
        def _stop_run(self, ep: Endpoint, job: Job) -> None: ...
        def _accrue(self, ep: Endpoint, w: Worker, now: float) -> None: ...
        def _flush_billing(self) -> None: ...

        # resources.py
        def endpoint_extras(self, ep: Endpoint) -> dict[str, Any]: ...
