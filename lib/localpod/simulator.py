"""The simulated RunPod platform: per-endpoint queues, workers, scaling, job lifecycle, billing.

Everything here runs on the HTTP server's event loop; handler code runs in one thread per job
and reports back with `loop.call_soon_threadsafe`, so the state needs no locks and /status is
answered from memory. Nothing polls: a job starts the moment it is queued on an idle worker, and
cold starts, idle timeouts, the QUEUE_DELAY scaler, execution timeouts, TTLs and result
retention are all loop timers.

Simulated durations (cold start, FlashBoot revival, idle timeout, scaler delay) are multiplied by
`time_scale`; client-facing times (delayTime, executionTime, policy ttl/executionTimeout,
retention) are real. The simulator does not clamp policy values to RunPod's minimums (ttl 10 s,
executionTimeout 5 s) so that tests can use small values.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from lib.localpod.config import PodConfig
from lib.localpod.lifecycle import JobLifecycle
from lib.localpod.models import IN_PROGRESS, IN_QUEUE, Endpoint, Job
from lib.localpod.ratelimit import RestQuota
from lib.localpod.resources import Resources
from lib.localpod.state import BillingHour, Store
from lib.localpod.workers import BILLING_FLUSH_S, WorkerPool

log = logging.getLogger("localpod")


class Simulator(JobLifecycle, WorkerPool, Resources):
    """One simulated RunPod account: its endpoints, jobs, workers, volumes and billing.

    The job lifecycle, the workers and their scaling, and the REST resources live in the mixins
    (lifecycle.py, workers.py, resources.py); this class holds the state and the loop.
    """

    def __init__(self, config: PodConfig, store: Store, volume_dir: Path, *, time_scale: float,
                 empty: bool = False):
        self.config = config
        # empty: nothing exists until it is created through REST (a fresh RunPod account): neither the
        # config's endpoints nor its network volume.
        self.empty = empty
        self.store = store
        self.volume_dir = volume_dir
        self.time_scale = time_scale
        self.run_retention_s = 1800.0      # /run results: 30 min
        self.runsync_retention_s = 60.0    # /runsync results: 1 min
        self.webhook_retry_s = 10.0
        self.rate_limits = True
        self.rest_quota = RestQuota()
        # RunPod caps the workers of an account (reference §1.11: 5 by default, more with balance);
        # None leaves it unlimited so the demo's three endpoints always fit. Set via /admin/settings.
        self.worker_quota: int | None = None
        self.rng = random.Random()
        self.endpoints: dict[str, Endpoint] = {}
        self.extras: dict[str, dict] = {}      # endpoint id -> placement, GPU count, disk, created by REST
        self.volumes: dict[str, dict] = {}     # network volume id -> REST v2 NetworkVolume + createdAt
        self.jobs: dict[str, Job] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closing = False
        self._pending_billing: list[BillingHour] = []
        self._billing_timer: asyncio.TimerHandle | None = None
        self._http: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ lifecycle

    def load(self) -> None:
        """Read endpoints and jobs from the store (any thread, before serving)."""
        now = time.time()
        saved = self.store.load_endpoints()
        self.extras = self.store.load_extras()
        for role, spec in self.config.endpoints.items():
            if spec.is_dev_worker or not spec.id or (self.empty and spec.id not in saved):
                continue
            if spec.id in saved:
                ep = Endpoint.from_record({**saved[spec.id], "id": spec.id, "role": role})
                if ep.gpu_pools[0] not in self.config.flex_per_s:
                    ep.gpu_pools = list(spec.gpu_pools)   # the config dropped that pool's price
            else:
                # As provisioned from the config: secrets by reference, never their value.
                ep = Endpoint.from_spec(spec, created_at=now)
                self.store.save_endpoint(ep)
            self.endpoints[ep.id] = ep
        for endpoint_id, record in saved.items():
            if endpoint_id not in self.endpoints and self.extras.get(endpoint_id, {}).get("created"):
                self.endpoints[endpoint_id] = Endpoint.from_record(record)
        if self.store.get_meta("volume_created_at") is None:
            self.store.set_meta("volume_created_at", str(now))
        if not self.empty:
            v = self.config.volume
            self.volumes[v.id] = {"id": v.id, "name": v.name or v.id, "size": v.size_gb,
                                  "dataCenter": v.datacenter, "type": "STANDARD",
                                  "createdAt": float(self.store.get_meta("volume_created_at"))}
        self.volumes.update(self.store.load_volumes())   # created ones, and the config's once changed
        changed, gone = [], []
        for job in sorted(self.store.load_jobs(), key=lambda j: j.queued_at):
            ep = self.endpoints.get(job.endpoint_id)
            expired = (job.expires_at is not None and job.expires_at <= now) if job.terminal \
                else job.submitted_at + job.ttl_ms / 1000 <= now
            if ep is None or expired:
                gone.append(job.id)
                continue
            if job.status == IN_PROGRESS:
                # The process stopped under a running job: it goes back to the queue, as after a
                # worker loss on RunPod.
                self._reset_for_queue(job, now)
                job.retries += 1
                changed.append(job)
            self.jobs[job.id] = job
            if job.status == IN_QUEUE:
                ep.queue[job.id] = job
        for job_id in gone:
            self.store.delete_job(job_id)
        if changed:
            self.store.save_jobs(changed)

    async def start(self) -> None:
        """Attach to the running loop: arm timers, start min workers, run what is queued."""
        self.loop = asyncio.get_running_loop()
        self._http = httpx.AsyncClient(timeout=10.0)
        now = time.time()
        for job in self.jobs.values():
            ep = self.endpoints[job.endpoint_id]
            if job.terminal:
                job.timers["retention"] = self._later(job.expires_at - now, self._expire, job)
            else:
                self._arm_ttl(ep, job, now)
        for ep in self.endpoints.values():
            self._pump(ep)
        self._billing_timer = self._later(BILLING_FLUSH_S, self._billing_checkpoint)

    def begin_shutdown(self) -> None:
        """Stop taking work: answer waiting /runsync calls, bill live workers, drop timers.

        Running jobs stay IN_PROGRESS in the store; the next start puts them back in the queue.
        """
        if self.closing:
            return
        self.closing = True
        now = time.time()
        for ep in self.endpoints.values():
            for w in ep.workers.values():
                self._accrue(ep, w, now)
                if w.timer:
                    w.timer.cancel()
            if ep.scale_timer:
                ep.scale_timer.cancel()
        for job in self.jobs.values():
            for handle in job.timers.values():
                handle.cancel()
            if job.run is not None:
                job.run.cancel.set()
            self._wake(job)
        if self._billing_timer:
            self._billing_timer.cancel()
        self._flush_billing()

    async def close(self) -> None:
        self.begin_shutdown()
        for task in list(self._tasks):
            task.cancel()
        if self._http is not None:
            await self._http.aclose()

    # ------------------------------------------------------------------ timers, tasks

    def _later(self, delay: float, fn: Callable, *args) -> asyncio.TimerHandle:
        return self.loop.call_later(max(0.0, delay), fn, *args)

    def _rearm(self, job: Job, name: str, delay: float, fn: Callable, *args) -> None:
        self._drop_timer(job, name)
        job.timers[name] = self._later(delay, fn, *args)

    @staticmethod
    def _drop_timer(job: Job, name: str) -> None:
        handle = job.timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _spawn_task(self, coro) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

