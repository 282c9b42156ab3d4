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
import copy
import itertools
import logging
import math
import random
import secrets
import string
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from lib.config import ROLES, ConsoleConfig
from lib.localpod import billing, hosts
from lib.localpod.handlers import JobContext, Outcome, execute, handler_for
from lib.localpod.models import (
    CANCELLED, COMPLETED, DEFAULT_TTL_MS, FAILED, FLASHBOOT_TYPES, IDLE, IN_PROGRESS, IN_QUEUE,
    INITIALIZING, RUNNING, THROTTLED, TIMED_OUT, UNHEALTHY, Endpoint, Faults, Job, Run, Worker,
    iso_z, new_job_id, new_worker_id,
)
from lib.localpod.ratelimit import RestQuota
from lib.localpod.state import BillingHour, Store
from lib.provisioning.declaration import runpod_env_value

log = logging.getLogger("localpod")

UNHEALTHY_LINGER_S = 60.0     # simulated seconds a crashed worker stays listed before it is gone
REAP_GRACE_S = 5.0            # real seconds a cancelled handler gets to return before its worker is killed
BILLING_FLUSH_S = 30.0        # real seconds between billing checkpoints of live workers
WEBHOOK_ATTEMPTS = 3          # RunPod: on failure, 2 more tries, 10 s apart


class WorkerCrash(BaseException):
    """Injected fault: the simulated worker process dies mid-job (not catchable as Exception)."""


class Simulator:
    def __init__(self, config: ConsoleConfig, store: Store, volume_dir: Path, *, time_scale: float,
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
                if ep.gpu_pools[0] not in self.config.prices.flex_per_s:
                    ep.gpu_pools = list(spec.gpu_pools)   # the config dropped that pool's price
            else:
                ep = Endpoint.from_spec(spec, created_at=now)
                # As provisioned by the console: secrets by reference, never their value.
                ep.env = {k: runpod_env_value(v) for k, v in ep.env.items()}
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

    # ------------------------------------------------------------------ job API

    def submit(self, ep: Endpoint, payload: object, *, sync: bool, webhook: str | None = None,
               execution_timeout_ms: int | None = None, low_priority: bool = False,
               ttl_ms: int | None = None) -> Job:
        now = time.time()
        job = Job(id=new_job_id(sync), endpoint_id=ep.id, input=payload, sync=sync,
                  submitted_at=now, queued_at=now, webhook=webhook,
                  execution_timeout_ms=execution_timeout_ms, low_priority=low_priority,
                  ttl_ms=ttl_ms or DEFAULT_TTL_MS)
        self.jobs[job.id] = job
        ep.queue[job.id] = job
        self._arm_ttl(ep, job, now)
        self.store.save_job(job)
        self._pump(ep)
        return job

    def find(self, ep: Endpoint, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        return job if job is not None and job.endpoint_id == ep.id else None

    async def wait(self, job: Job, timeout_s: float) -> None:
        """Return when the job is terminal or gone, or after timeout_s."""
        if job.terminal or self.closing:
            return
        fut = self.loop.create_future()
        job.waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            pass
        finally:
            if fut in job.waiters:
                job.waiters.remove(fut)

    def set_retention(self, job: Job, ttl_ms: int) -> None:
        """GET /status?ttl=: keep this job's result ttl_ms (from now if finished, else from completion)."""
        job.retention_ms = ttl_ms
        if job.terminal:
            now = time.time()
            job.expires_at = min(job.expires_at or math.inf, now + ttl_ms / 1000)
            self._rearm(job, "retention", job.expires_at - now, self._expire, job)
        self.store.save_job(job)

    def stream_chunks(self, job: Job) -> list:
        chunks = job.stream[job.stream_sent:]
        job.stream_sent = len(job.stream)
        return chunks

    def cancel(self, ep: Endpoint, job: Job) -> dict:
        now = time.time()
        if job.status == IN_QUEUE:
            ep.queue.pop(job.id, None)
            self._finish(ep, job, CANCELLED, now)
        elif job.status == IN_PROGRESS:
            self._finish(ep, job, CANCELLED, now)
            self._stop_run(ep, job)
        return {"id": job.id, "status": job.status}

    def retry(self, ep: Endpoint, job: Job) -> dict:
        if job.status not in (FAILED, TIMED_OUT):
            raise ValueError(f"job {job.id} is {job.status}; only FAILED or TIMED_OUT jobs can be "
                             "retried")
        now = time.time()
        self._drop_timer(job, "retention")
        self._reset_for_queue(job, now)
        job.retries += 1
        ep.retried += 1
        ep.queue[job.id] = job
        self._arm_ttl(ep, job, now)
        self.store.save_job(job)
        self.store.save_endpoint(ep)
        self._pump(ep)      # may start it at once; the answer is still "queued", as on RunPod
        return {"id": job.id, "status": IN_QUEUE}

    def purge(self, ep: Endpoint) -> int:
        """Drop every queued job (running ones are untouched).

        Purged jobs end CANCELLED rather than vanishing: RunPod does not document what /status says
        for them, and a terminal state is the safe answer for anyone following the job.
        """
        now = time.time()
        queued = list(ep.queue.values())
        ep.queue.clear()
        for job in queued:
            self._finish(ep, job, CANCELLED, now)
        return len(queued)

    def health(self, ep: Endpoint) -> dict:
        counts = {s: 0 for s in (IDLE, INITIALIZING, RUNNING, THROTTLED, UNHEALTHY)}
        for w in ep.workers.values():
            counts[w.status] += 1
        in_progress = sum(1 for w in ep.workers.values() if w.status == RUNNING and w.job_id
                          and getattr(self.jobs.get(w.job_id), "status", None) == IN_PROGRESS)
        return {
            "jobs": {"completed": ep.completed, "failed": ep.failed, "inProgress": in_progress,
                     "inQueue": len(ep.queue), "retried": ep.retried},
            # `ready` is not defined by RunPod's docs (reference §6.7): here it counts workers that
            # could take a job right now, i.e. the idle ones.
            "workers": {"idle": counts[IDLE], "initializing": counts[INITIALIZING],
                        "ready": counts[IDLE], "running": counts[RUNNING],
                        "throttled": counts[THROTTLED], "unhealthy": counts[UNHEALTHY]},
        }

    # ------------------------------------------------------------------ management

    def update_endpoint(self, ep: Endpoint, changes: dict) -> None:
        """Apply a REST PATCH (already shape-checked); raises ValueError with the reason."""
        new = _validated_settings(ep, changes, self.config)
        extras = _validated_extras(changes, self)
        if self.worker_quota is not None and new.get("workers_max", ep.workers_max) > ep.workers_max:
            used = sum(e.workers_max for e in self.endpoints.values() if e is not ep)
            if used + new["workers_max"] > self.worker_quota:
                raise ValueError(f"workers.max: the account's serverless worker quota is {self.worker_quota} "
                                 f"and its other endpoints already use {used}")
        if extras:
            self.extras[ep.id] = {**self.endpoint_extras(ep), **extras}
            self.store.save_extras(ep.id, self.extras[ep.id])
        now = time.time()
        for w in ep.workers.values():     # bill at the old price up to the change
            self._accrue(ep, w, now)
        self._flush_billing()
        for key, value in new.items():
            setattr(ep, key, value)
        self.store.save_endpoint(ep)
        for w in hosts.stranded(ep.workers.values()):
            self._stop_worker(ep, w, now)     # the scaler starts them again under the new constraint
        self._enforce_max(ep, now)
        self._assign_active(ep)
        for w in ep.workers.values():
            if w.status == IDLE:
                self._arm_idle(ep, w)
        self._pump(ep)

    def create_endpoint(self, body: dict) -> Endpoint:
        """POST /rest/v2/serverless (body already a JSON object); ValueError says what is wrong."""
        settings, extras = _creation(body, self)
        quota = self.worker_quota
        if quota is not None:
            used = sum(ep.workers_max for ep in self.endpoints.values())
            if used + settings["workers_max"] > quota:
                raise ValueError(f"workers.max: the account's serverless worker quota is {quota} and its "
                                 f"endpoints already use {used}; lower max workers or raise the quota "
                                 "(RunPod raises it with the account balance)")
        ep = Endpoint(id=self._new_endpoint_id(), role=_role_of(settings["name"]),
                      created_at=time.time(), **settings)
        self.endpoints[ep.id] = ep
        self.extras[ep.id] = {**extras, "created": True}
        self.store.save_endpoint(ep)
        self.store.save_extras(ep.id, self.extras[ep.id])
        self._pump(ep)      # min workers start at once
        return ep

    def _new_endpoint_id(self) -> str:
        """A new endpoint id in RunPod's shape (14 lower-case alphanumerics)."""
        alphabet = string.ascii_lowercase + string.digits
        while True:
            ident = "".join(secrets.choice(alphabet) for _ in range(14))
            if ident not in self.endpoints:
                return ident

    def delete_endpoint(self, ep: Endpoint) -> None:
        """DELETE /rest/v2/serverless/{id}.

        RunPod's GraphQL deleteEndpoint needs min and max workers at 0 first (reference §3.3); whether
        REST v2 relaxes that is not documented, so the simulator keeps the stricter rule.
        """
        if ep.workers_min or ep.workers_max:
            raise ValueError(f"endpoint {ep.id} still has workers (min {ep.workers_min}, max "
                             f"{ep.workers_max}); set workers.min and workers.max to 0 first")
        now = time.time()
        for w in list(ep.workers.values()):
            self._stop_worker(ep, w, now)
        if ep.scale_timer:
            ep.scale_timer.cancel()
        for job in [j for j in self.jobs.values() if j.endpoint_id == ep.id]:
            if job.run is not None:
                job.run.cancel.set()
            self._delete(job)
        del self.endpoints[ep.id]
        self.extras.pop(ep.id, None)
        self.store.delete_endpoint(ep.id)

    def endpoint_extras(self, ep: Endpoint) -> dict:
        """Placement and container extras; config endpoints never changed through REST get the volume's."""
        extras = self.extras.get(ep.id)
        if extras is not None:
            return extras
        v = self.config.volume
        spec = self.config.endpoints.get(ep.role)
        cuda = hosts.declared(spec) if spec is not None and spec.id == ep.id else {}
        return {"dataCenterIds": [v.datacenter], "networkVolumes": [v.id], "gpuCount": 1, **cuda}

    def create_volume(self, body: dict) -> dict:
        """POST /rest/v2/network-volumes; ValueError says what is wrong."""
        unknown = sorted(set(body) - {"name", "size", "dataCenter", "type"})
        if unknown:
            raise ValueError(f"{unknown[0]} is not a field of a network volume (fields: dataCenter, name, "
                             "size, type)")
        name, dc = body.get("name"), body.get("dataCenter")
        if not isinstance(name, str) or not name.strip():
            raise ValueError("name is required: a non-empty string")
        if not isinstance(dc, str) or not dc.strip():
            raise ValueError("dataCenter is required, e.g. \"EU-RO-1\"")
        size = body.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or not 10 <= size <= 4096:
            raise ValueError(f"size must be a whole number of GB from 10 to 4096, not {size!r}")
        kind = body.get("type", "STANDARD")
        if kind not in ("STANDARD", "HIGH_PERFORMANCE"):
            raise ValueError("type must be STANDARD or HIGH_PERFORMANCE")
        alphabet = string.ascii_lowercase + string.digits
        ident = "".join(secrets.choice(alphabet) for _ in range(10))
        volume = {"id": ident, "name": name.strip(), "size": size, "dataCenter": dc.strip(), "type": kind,
                  "createdAt": time.time()}
        self.volumes[ident] = volume
        self.store.save_volume(volume)
        return volume

    def update_volume(self, volume: dict, changes: dict) -> dict:
        """PATCH /rest/v2/network-volumes/{id}: rename or grow (a volume never shrinks)."""
        unknown = sorted(set(changes) - {"name", "size"})
        if unknown:
            raise ValueError(f"{unknown[0]} is not a writable field (writable: name, size)")
        if not changes:
            raise ValueError("nothing to change: send name and/or size")
        new = dict(volume)
        if "name" in changes:
            if not isinstance(changes["name"], str) or not changes["name"].strip():
                raise ValueError("name must be a non-empty string")
            new["name"] = changes["name"].strip()
        if "size" in changes:
            size = changes["size"]
            if isinstance(size, bool) or not isinstance(size, int) or not 10 <= size <= 4096:
                raise ValueError(f"size must be a whole number of GB from 10 to 4096, not {size!r}")
            if size < volume["size"]:
                raise ValueError(f"size: a network volume cannot shrink (it has {volume['size']} GB)")
            new["size"] = size
        self.volumes[new["id"]] = new
        self.store.save_volume(new)
        return new

    def set_faults(self, ep: Endpoint, changes: dict) -> Faults:
        merged = {**ep.faults.to_dict(), **changes}
        for key, value in merged.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{key} must be a number, not {value!r}")
            if key in Faults.RATES and not 0 <= value <= 1:
                raise ValueError(f"{key} must be between 0 and 1, not {value}")
            if key == "extra_cold_start_s" and value < 0:
                raise ValueError("extra_cold_start_s must be >= 0")
        ep.faults = Faults(**{k: float(v) for k, v in merged.items()})
        return ep.faults

    def workers_view(self, ep: Endpoint) -> dict:
        rows = [w.view() for w in sorted(ep.workers.values(), key=lambda w: w.created_at)]
        summary = {s.lower(): 0 for s in (RUNNING, IDLE, INITIALIZING, THROTTLED, UNHEALTHY)}
        for w in ep.workers.values():
            summary[w.status.lower()] += 1
        summary["total"] = len(ep.workers)
        return {"workers": rows, "summary": summary, "endpointVersion": 1}

    def billing_hours(self, start: float, end: float, endpoint_id: str | None) -> list[BillingHour]:
        now = time.time()
        for ep in self.endpoints.values():
            for w in ep.workers.values():
                self._accrue(ep, w, now)
        self._flush_billing()
        return self.store.billing_hours(int(start), math.ceil(end), endpoint_id)

    def jobs_view(self, endpoint_id: str | None) -> list[dict]:
        now = time.time()
        return [{**job.body(now), "endpointId": job.endpoint_id, "sync": job.sync,
                 "submittedAt": iso_z(job.submitted_at)}
                for job in self.jobs.values()
                if endpoint_id is None or job.endpoint_id == endpoint_id]

    # ------------------------------------------------------------------ scheduling

    def _pump(self, ep: Endpoint) -> None:
        """Put queued jobs on idle workers, then scale."""
        if self.closing:
            return
        now = time.time()
        while ep.queue:
            worker = min((w for w in ep.workers.values() if w.status == IDLE),
                         key=lambda w: w.idle_since, default=None)  # longest idle first: spreads load
            if worker is None:
                break
            job = ep.queue.pop(next(iter(ep.queue)))
            self._start(ep, worker, job, now)
        self._scale(ep, now)

    def _scale(self, ep: Endpoint, now: float) -> None:
        live = ep.live_workers()
        target = ep.workers_min
        if ep.scale_timer:
            ep.scale_timer.cancel()
            ep.scale_timer = None
        if ep.queue:
            if not live:
                # Even a lowPriority job gets one worker, or it would wait forever on a cold endpoint.
                target = max(target, 1)
            urgent = [j for j in ep.queue.values() if not j.low_priority]
            if ep.scaling_type == "REQUEST_COUNT":
                target = max(target, math.ceil((len(urgent) + ep.running_jobs()) / ep.scaling_value))
            else:
                threshold = ep.scaling_value * self.time_scale
                waited = sum(1 for j in urgent if now - j.queued_at >= threshold)
                starting = sum(1 for w in live if w.status == INITIALIZING)
                if waited > starting:
                    target = max(target, len(live) + waited - starting)
                upcoming = [j.queued_at + threshold for j in urgent if now - j.queued_at < threshold]
                if upcoming and len(live) < ep.workers_max:
                    ep.scale_timer = self._later(min(upcoming) - now, self._pump, ep)
        for _ in range(min(target, ep.workers_max) - len(live)):
            self._spawn(ep, now)
        self._assign_active(ep)

    def _assign_active(self, ep: Endpoint) -> None:
        """The workers_min oldest live workers are the endpoint's active workers."""
        now = time.time()
        ranked = sorted(ep.live_workers(), key=lambda w: (not w.active, w.created_at))
        for i, w in enumerate(ranked):
            active = i < ep.workers_min
            if active != w.active:
                self._accrue(ep, w, now)      # the price changes from here on
                w.active = active
                if w.status == IDLE:
                    self._arm_idle(ep, w)

    def _enforce_max(self, ep: Endpoint, now: float) -> None:
        """Stop workers above workers_max: starting ones first, then idle; busy ones when done."""
        excess = len(ep.live_workers()) - ep.workers_max
        order = {INITIALIZING: 0, IDLE: 1, RUNNING: 2}
        for w in sorted(ep.live_workers(), key=lambda w: (order.get(w.status, 0), w.active, -w.created_at)):
            if excess <= 0 or w.status == RUNNING:
                break
            self._stop_worker(ep, w, now)
            excess -= 1

    def _spawn(self, ep: Endpoint, now: float) -> None:
        taken = {w.slot for w in ep.live_workers()}
        slot = next(i for i in itertools.count() if i not in taken)
        sim = self.config.simulator
        revival = ep.flashboot != "OFF" and slot in ep.slots_used
        base = sim.flashboot_restart_s if revival else sim.cold_start_s.get(
            ep.role, max(sim.cold_start_s.values()))
        if slot not in ep.slots_used:
            ep.slots_used.add(slot)
            self.store.save_endpoint(ep)
        worker = Worker(id=new_worker_id(), endpoint_id=ep.id, slot=slot, created_at=now,
                        host_cuda=hosts.host_for(self.endpoint_extras(ep)))
        ep.workers[worker.id] = worker
        if worker.host_cuda is None:
            worker.status = THROTTLED       # no host meets the endpoint's CUDA constraint
            return
        worker.timer = self._later((base + ep.faults.extra_cold_start_s) * self.time_scale,
                                   self._ready, ep, worker)

    def _ready(self, ep: Endpoint, w: Worker) -> None:
        if ep.workers.get(w.id) is not w or w.status != INITIALIZING:
            return
        if not hosts.container_starts(ep.role, w.host_cuda):
            w.timer = None                  # its container fails at start on this driver: never ready
            return
        now = time.time()
        w.status, w.ready_at, w.idle_since, w.timer = IDLE, now, now, None
        spans = billing.billable_intervals(w.created_at, now, now)
        w.billed_until = spans[0][0] if spans else now
        self._pump(ep)
        if w.status == IDLE:
            self._arm_idle(ep, w)

    def _arm_idle(self, ep: Endpoint, w: Worker) -> None:
        if w.timer:
            w.timer.cancel()
            w.timer = None
        if w.status == IDLE and not w.active:
            w.timer = self._later(ep.idle_timeout_s * self.time_scale, self._idle_expired, ep, w)

    def _idle_expired(self, ep: Endpoint, w: Worker) -> None:
        if ep.workers.get(w.id) is w and w.status == IDLE and not w.active:
            self._stop_worker(ep, w, time.time())

    def _stop_worker(self, ep: Endpoint, w: Worker, now: float) -> None:
        self._accrue(ep, w, now)
        self._flush_billing()
        if w.timer:
            w.timer.cancel()
        ep.workers.pop(w.id, None)

    def _crash_worker(self, ep: Endpoint, w: Worker, now: float) -> None:
        self._accrue(ep, w, now)
        self._flush_billing()
        w.status, w.job_id, w.billed_until = UNHEALTHY, None, None
        w.timer = self._later(UNHEALTHY_LINGER_S * self.time_scale,
                              lambda: ep.workers.pop(w.id, None))

    # ------------------------------------------------------------------ running jobs

    def _start(self, ep: Endpoint, w: Worker, job: Job, now: float) -> None:
        if w.timer:
            w.timer.cancel()
            w.timer = None
        job.status, job.started_at, job.worker_id = IN_PROGRESS, now, w.id
        job.delay_ms = round((now - job.queued_at) * 1000)
        w.status, w.job_id, w.idle_since = RUNNING, job.id, None
        faults = ep.faults
        run = Run(worker_id=w.id, cancel=threading.Event(),
                  crash=faults.crash_rate > 0 and self.rng.random() < faults.crash_rate,
                  fail=faults.failure_rate > 0 and self.rng.random() < faults.failure_rate)
        job.run = run
        timeout_ms = job.execution_timeout_ms or ep.execution_timeout_ms
        job.timers["exec"] = self._later(timeout_ms / 1000, self._exec_timeout, ep, job, run)
        self.store.save_job(job)
        ctx = JobContext(job.id, ep.id, ep.role, w.id, self.volume_dir, self.time_scale,
                         on_progress=lambda update: self._post(self._progress, job, run, update),
                         cancel_event=run.cancel,
                         checkpoint=_crash if run.crash else None)
        threading.Thread(target=self._execute, args=(ep, w, job, run, ctx), daemon=True,
                         name=f"localpod-{ep.role}-{job.id[:13]}").start()

    def _execute(self, ep: Endpoint, w: Worker, job: Job, run: Run, ctx: JobContext) -> None:
        """Handler thread: run the handler, then hand the outcome to the loop."""
        payload = {"id": job.id, "input": copy.deepcopy(job.input)}
        outcome: Outcome | None
        try:
            outcome = execute(handler_for(ep.role), payload, ctx,
                              on_chunk=lambda chunk: self._post(self._chunk, job, run, chunk))
            if run.crash:     # the handler never reached a checkpoint: the crash hits at its end
                raise WorkerCrash()
        except WorkerCrash:
            outcome = None
        self._post(self._returned, ep, w, job, run, outcome)

    def _post(self, fn: Callable, *args) -> None:
        """Hand work from a handler thread to the loop; dropped once the simulator stops."""
        loop = self.loop
        if loop is None or self.closing or loop.is_closed():
            return
        loop.call_soon_threadsafe(fn, *args)

    def _progress(self, job: Job, run: Run, update: object) -> None:
        if job.run is run and job.status == IN_PROGRESS:
            job.output = update

    def _chunk(self, job: Job, run: Run, chunk: object) -> None:
        if job.run is run and job.status == IN_PROGRESS:
            job.stream.append(chunk)

    def _returned(self, ep: Endpoint, w: Worker, job: Job, run: Run, outcome: Outcome | None) -> None:
        if self.closing:
            return
        run.returned = True
        now = time.time()
        if job.run is run and job.status == IN_PROGRESS and self.jobs.get(job.id) is job:
            if outcome is None:
                self._crashed_job(ep, job, now)
            elif run.fail:
                self._finish(ep, job, FAILED, now,
                             error="injected failure (localpod fault failure_rate)")
            elif outcome.status == "CANCELLED":
                self._finish(ep, job, FAILED, now,
                             error="the handler raised JobCancelled but the job was not cancelled")
            else:
                self._finish(ep, job, outcome.status, now, output=outcome.output,
                             error=outcome.error)
        if job.run is run:
            job.run = None
        if ep.workers.get(w.id) is not w:      # killed meanwhile (reaped, or max lowered)
            self._pump(ep)
            return
        w.job_id = None
        if outcome is None:
            self._crash_worker(ep, w, now)
        elif outcome.stop_worker or len(ep.live_workers()) > ep.workers_max:
            self._stop_worker(ep, w, now)
        else:
            w.status, w.idle_since = IDLE, now
        self._pump(ep)
        if w.status == IDLE:
            self._arm_idle(ep, w)

    def _crashed_job(self, ep: Endpoint, job: Job, now: float) -> None:
        job.crashes += 1
        if job.crashes > 1:
            self._finish(ep, job, FAILED, now, error="worker exited unexpectedly")
            return
        self._drop_timer(job, "exec")
        self._reset_for_queue(job, now)
        job.retries += 1
        ep.retried += 1
        ep.queue[job.id] = job
        self.store.save_job(job)
        self.store.save_endpoint(ep)

    def _exec_timeout(self, ep: Endpoint, job: Job, run: Run) -> None:
        if job.run is run and job.status == IN_PROGRESS:
            limit = job.execution_timeout_ms or ep.execution_timeout_ms
            self._finish(ep, job, TIMED_OUT, time.time(),
                         error=f"execution timeout: the job ran longer than {limit} ms")
            self._stop_run(ep, job)

    def _stop_run(self, ep: Endpoint, job: Job) -> None:
        """Tell a running handler to stop; kill its worker if it ignores that."""
        run = job.run
        if run is None:
            return
        run.cancel.set()
        w = ep.workers.get(run.worker_id)

        def reap() -> None:
            if not run.returned and w is not None and ep.workers.get(w.id) is w:
                log.warning("handler of job %s ignored cancellation; worker %s killed", job.id, w.id)
                self._stop_worker(ep, w, time.time())
                self._pump(ep)
        self._later(REAP_GRACE_S, reap)

    def _finish(self, ep: Endpoint, job: Job, status: str, now: float, *,
                output: object = None, error: str | None = None) -> None:
        job.status, job.finished_at = status, now
        if job.started_at is not None:
            job.execution_ms = round((now - job.started_at) * 1000)
        job.output, job.error = output, error
        self._drop_timer(job, "exec")
        self._drop_timer(job, "ttl")
        if status == COMPLETED:
            ep.completed += 1
        elif status in (FAILED, TIMED_OUT):
            ep.failed += 1
        keep = job.retention_ms / 1000 if job.retention_ms is not None else (
            self.runsync_retention_s if job.sync else self.run_retention_s)
        job.expires_at = now + keep
        job.timers["retention"] = self._later(keep, self._expire, job)
        self.store.save_job(job)
        self.store.save_endpoint(ep)
        self._wake(job)
        if job.webhook:
            self._spawn_task(self._deliver_webhook(job.webhook, job.body(now)))

    def _arm_ttl(self, ep: Endpoint, job: Job, now: float) -> None:
        self._rearm(job, "ttl", job.submitted_at + job.ttl_ms / 1000 - now,
                    self._ttl_expired, ep, job)

    def _ttl_expired(self, ep: Endpoint, job: Job) -> None:
        """policy.ttl: the job is deleted, even mid-run."""
        if job.terminal or self.jobs.get(job.id) is not job:
            return
        if job.status == IN_PROGRESS:
            self._stop_run(ep, job)
        self._delete(job)

    def _expire(self, job: Job) -> None:
        if self.jobs.get(job.id) is job and job.terminal:
            self._delete(job)

    def _delete(self, job: Job) -> None:
        self.jobs.pop(job.id, None)
        ep = self.endpoints.get(job.endpoint_id)
        if ep is not None:
            ep.queue.pop(job.id, None)
        for handle in job.timers.values():
            handle.cancel()
        job.timers.clear()
        self.store.delete_job(job.id)
        self._wake(job)

    @staticmethod
    def _reset_for_queue(job: Job, now: float) -> None:
        job.status, job.queued_at = IN_QUEUE, now
        job.started_at = job.finished_at = job.delay_ms = job.execution_ms = None
        job.worker_id = job.output = job.error = job.expires_at = None
        job.stream, job.stream_sent, job.run = [], 0, None

    @staticmethod
    def _wake(job: Job) -> None:
        for fut in job.waiters:
            if not fut.done():
                fut.set_result(None)
        job.waiters.clear()

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

    async def _deliver_webhook(self, url: str, body: dict) -> None:
        """POST the final /status body; on failure 2 more tries, webhook_retry_s apart."""
        for attempt in range(WEBHOOK_ATTEMPTS):
            try:
                response = await self._http.post(url, json=body)
                if response.is_success:
                    return
                reason = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                reason = type(exc).__name__
            # Only the host: a webhook URL may carry a token in its path or query.
            log.warning("webhook for job %s to %s failed (%s), attempt %d of %d", body["id"],
                        urlsplit(url).netloc, reason, attempt + 1, WEBHOOK_ATTEMPTS)
            if attempt + 1 < WEBHOOK_ATTEMPTS:
                await asyncio.sleep(self.webhook_retry_s)

    # ------------------------------------------------------------------ billing

    def _accrue(self, ep: Endpoint, w: Worker, now: float) -> None:
        if w.billed_until is None or now <= w.billed_until:
            return
        # RunPod's price is per GPU; a worker with gpu.count GPUs costs that many times as much.
        price = self.config.prices.per_second(ep.gpu_pools[0], active=w.active) \
            * self.endpoint_extras(ep).get("gpuCount", 1)
        self._pending_billing.extend(
            billing.charges(ep.id, price, w.active, w.billed_until, now))
        w.billed_until = now

    def _flush_billing(self) -> None:
        if self._pending_billing:
            self.store.add_billing(billing.merge(self._pending_billing))
            self._pending_billing.clear()

    def _billing_checkpoint(self) -> None:
        """Bill live workers periodically so that a killed process loses at most this interval."""
        now = time.time()
        for ep in self.endpoints.values():
            for w in ep.workers.values():
                self._accrue(ep, w, now)
        self._flush_billing()
        self._billing_timer = self._later(BILLING_FLUSH_S, self._billing_checkpoint)


def _crash() -> None:
    raise WorkerCrash()


def _validated_settings(ep: Endpoint, changes: dict, config: ConsoleConfig) -> dict:
    """REST v2 PATCH body -> Endpoint attribute values; ValueError names the offending field."""
    new: dict = {}
    if "name" in changes:
        if not isinstance(changes["name"], str) or not changes["name"].strip():
            raise ValueError("name must be a non-empty string")
        new["name"] = changes["name"].strip()
    if "workers" in changes:
        workers = _object(changes, "workers", {"min", "max", "idleTimeout"})
        lo = _whole(workers, "min", ep.workers_min, "workers.min", 0)
        hi = _whole(workers, "max", ep.workers_max, "workers.max", 0)
        if lo > hi:
            raise ValueError(f"workers.min ({lo}) must not exceed workers.max ({hi})")
        idle = _whole(workers, "idleTimeout", ep.idle_timeout_s, "workers.idleTimeout", 1)
        if idle > 3600:
            raise ValueError("workers.idleTimeout must be between 1 and 3600 seconds")
        new.update(workers_min=lo, workers_max=hi, idle_timeout_s=idle)
    if "scaling" in changes:
        scaling = _object(changes, "scaling", {"type", "queueDelay", "requestCount"})
        kind = scaling.get("type", ep.scaling_type)
        if kind not in ("QUEUE_DELAY", "REQUEST_COUNT"):
            raise ValueError("scaling.type must be QUEUE_DELAY or REQUEST_COUNT")
        key = "queueDelay" if kind == "QUEUE_DELAY" else "requestCount"
        if key not in scaling and kind != ep.scaling_type:
            raise ValueError(f"scaling.{key} is required with scaling.type {kind}")
        value = scaling.get(key, ep.scaling_value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"scaling.{key} must be a number")
        if kind == "QUEUE_DELAY" and value < 0.5:
            raise ValueError("scaling.queueDelay must be at least 0.5 seconds")
        if kind == "REQUEST_COUNT" and (value < 1 or value != int(value)):
            raise ValueError("scaling.requestCount must be a whole number >= 1")
        new.update(scaling_type=kind, scaling_value=float(value))
    if "timeout" in changes:
        new["execution_timeout_ms"] = _whole(changes, "timeout", 0, "timeout", 1)
    if "flashboot" in changes:
        if changes["flashboot"] not in FLASHBOOT_TYPES:
            raise ValueError(f"flashboot must be one of {', '.join(FLASHBOOT_TYPES)}")
        new["flashboot"] = changes["flashboot"]
    if "gpu" in changes:
        gpu = _object(changes, "gpu", {"pools", "count", "minCudaVersion", "allowedCudaVersions"})
        pools = gpu.get("pools", ep.gpu_pools)
        if not isinstance(pools, list) or not pools or not all(isinstance(p, str) for p in pools):
            raise ValueError('gpu.pools must be a non-empty list of pool ids like "ADA_24"')
        if pools[0] not in config.prices.flex_per_s:
            raise ValueError(f"gpu.pools: no price for {pools[0]!r} in console.toml [prices.flex_per_s]")
        new["gpu_pools"] = list(pools)
    if "image" in changes:
        if not isinstance(changes["image"], str) or not changes["image"]:
            raise ValueError("image must be a non-empty string")
        new["image"] = changes["image"]
    if "env" in changes:
        env = changes["env"]
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise ValueError("env must be an object of string values")
        new["env"] = dict(env)
    return new


def _object(changes: dict, key: str, allowed: set[str]) -> dict:
    value = changes[key]
    if not isinstance(value, dict):
        raise ValueError(f"{key} must be an object")
    unknown = set(value) - allowed
    if unknown:
        raise ValueError(f"{key}.{sorted(unknown)[0]} is not a writable field "
                         f"(writable: {', '.join(sorted(allowed))})")
    return value


def _whole(table: dict, key: str, default: int, label: str, minimum: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{label} must be a whole number >= {minimum}, not {value!r}")
    return value


_CREATE_FIELDS = {"name", "type", "scaling", "gpu", "cpu", "workers", "timeout", "flashboot", "dataCenterIds",
                  "networkVolumes", "templateId", "image", "args", "disk", "env", "ports", "registry"}
_GPU_FIELDS = {"pools", "count", "excludedTypes", "allowedCudaVersions", "minCudaVersion"}


def _role_of(name: str) -> str:
    """The workload of a created endpoint, from its name (DESIGN.md: names contain the role)."""
    lowered = name.lower()
    return next((role for role in ROLES if role in lowered), "basic")


def _creation(body: dict, sim: Simulator) -> tuple[dict, dict]:
    """REST v2 CreateEndpointRequest -> (Endpoint attributes, extras); ValueError names the field.

    Defaults are the v2 create defaults (reference §3.2): workers 0/3, idleTimeout 10, timeout
    300000 ms, flashboot OFF.
    """
    unknown = sorted(set(body) - _CREATE_FIELDS)
    if unknown:
        raise ValueError(f"{unknown[0]} is not a field of a serverless endpoint")
    for key in ("name", "type", "scaling"):
        if key not in body:
            raise ValueError(f"{key} is required")
    name = body["name"]
    if not isinstance(name, str) or not name.strip():
        raise ValueError("name must be a non-empty string")
    if body["type"] != "QUEUE":
        raise ValueError("type: the simulator runs queue-based endpoints only (type QUEUE)")
    if "templateId" in body:
        raise ValueError("templateId: the simulator keeps no templates; send image, env and disk in the body")
    if "cpu" in body or "gpu" not in body:
        raise ValueError("gpu is required: the simulator runs GPU endpoints only (gpu.pools)")
    if not isinstance(body.get("image"), str) or not body["image"].strip():
        raise ValueError("image is required: the container image, e.g. runpod/worker-comfyui:5.8.5-base")
    gpu = _object(body, "gpu", _GPU_FIELDS)
    pools = gpu.get("pools")
    if not isinstance(pools, list) or not pools or not all(isinstance(p, str) for p in pools):
        raise ValueError('gpu.pools must be a non-empty list of pool ids like "ADA_24"')
    if pools[0] not in sim.config.prices.flex_per_s:
        raise ValueError(f"gpu.pools: no price for {pools[0]!r} in console.toml [prices.flex_per_s]")
    count = _whole(gpu, "count", 1, "gpu.count", 1)
    scaling = _object(body, "scaling", {"type", "queueDelay", "requestCount"})
    kind = scaling.get("type")
    if kind not in ("QUEUE_DELAY", "REQUEST_COUNT"):
        raise ValueError("scaling.type must be QUEUE_DELAY or REQUEST_COUNT")
    key = "queueDelay" if kind == "QUEUE_DELAY" else "requestCount"
    value = scaling.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"scaling.{key} is required with scaling.type {kind}: a number")
    if kind == "QUEUE_DELAY" and value < 0.5:
        raise ValueError("scaling.queueDelay must be at least 0.5 seconds")
    if kind == "REQUEST_COUNT" and (value < 1 or value != int(value)):
        raise ValueError("scaling.requestCount must be a whole number >= 1")
    workers = _object(body, "workers", {"min", "max", "idleTimeout"}) if "workers" in body else {}
    if kind == "REQUEST_COUNT" and "idleTimeout" in workers:
        # The v2 spec: idleTimeout does not apply to queue endpoints scaling on requestCount.
        raise ValueError("workers.idleTimeout does not apply to REQUEST_COUNT scaling; leave it out")
    lo = _whole(workers, "min", 0, "workers.min", 0)
    hi = _whole(workers, "max", 3, "workers.max", 0)
    if lo > hi:
        raise ValueError(f"workers.min ({lo}) must not exceed workers.max ({hi})")
    idle = _whole(workers, "idleTimeout", 10, "workers.idleTimeout", 1)
    if idle > 3600:
        raise ValueError("workers.idleTimeout must be between 1 and 3600 seconds")
    flashboot = body.get("flashboot", "OFF")
    if flashboot not in FLASHBOOT_TYPES:
        raise ValueError(f"flashboot must be one of {', '.join(FLASHBOOT_TYPES)}")
    env = body.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ValueError("env must be an object of string values")
    settings = {"name": name.strip(), "gpu_pools": list(pools), "workers_min": lo, "workers_max": hi,
                "idle_timeout_s": idle, "scaling_type": kind, "scaling_value": float(value),
                "execution_timeout_ms": _whole(body, "timeout", 300_000, "timeout", 1),
                "flashboot": flashboot, "image": body["image"].strip(), "env": dict(env)}
    extras = {"dataCenterIds": [], "networkVolumes": [], "gpuCount": count,
              **_validated_extras(body, sim, creating=True)}
    return settings, extras


def _validated_extras(changes: dict, sim: Simulator, *, creating: bool = False) -> dict:
    """The fields of a create or PATCH body kept beside the Endpoint (placement, GPU count, disk)."""
    extras: dict = {}
    for key in ("dataCenterIds", "networkVolumes"):
        if key in changes:
            value = changes[key]
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ValueError(f"{key} must be a list of ids")
            extras[key] = list(value)
    for volume_id in extras.get("networkVolumes", ()):
        if volume_id not in sim.volumes:
            raise ValueError(f"networkVolumes: network volume {volume_id} not found")
    if "disk" in changes:
        extras["disk"] = _whole(changes, "disk", 0, "disk", 1)
    if not creating and isinstance(changes.get("gpu"), dict) and "count" in changes["gpu"]:
        extras["gpuCount"] = _whole(changes["gpu"], "count", 1, "gpu.count", 1)
    if isinstance(changes.get("gpu"), dict):
        extras.update(hosts.validated(changes["gpu"]))
    return extras
