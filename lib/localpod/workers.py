"""Simulated workers and scaling: cold starts, FlashBoot, idle timeouts, the scalers, billing.

Workers of an endpoint start when its queue needs them (QUEUE_DELAY or REQUEST_COUNT, up to
workers_max), the workers_min oldest are active (never idle out, billed at the active price),
and each job runs its role's handler in a thread that reports back to the loop.
"""
from __future__ import annotations

import copy
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable

from lib.localpod import billing, hosts
from lib.localpod.handlers import JobContext, Outcome, execute, handler_for
from lib.localpod.models import (
    FAILED,
    IDLE,
    IN_PROGRESS,
    INITIALIZING,
    RUNNING,
    THROTTLED,
    TIMED_OUT,
    UNHEALTHY,
    Endpoint,
    Job,
    Run,
    Worker,
    new_worker_id,
)

log = logging.getLogger("localpod")

UNHEALTHY_LINGER_S = 60.0     # simulated seconds a crashed worker stays listed before it is gone
REAP_GRACE_S = 5.0            # real seconds a cancelled handler gets to return before its worker is killed
BILLING_FLUSH_S = 30.0        # real seconds between billing checkpoints of live workers


class WorkerCrash(BaseException):
    """Injected fault: the simulated worker process dies mid-job (not catchable as Exception)."""


class WorkerPool:
    """Scheduling, worker lifecycles, running handlers and billing (mixin of Simulator)."""

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
        sim = self.config
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


    # ------------------------------------------------------------------ billing

    def _accrue(self, ep: Endpoint, w: Worker, now: float) -> None:
        if w.billed_until is None or now <= w.billed_until:
            return
        # RunPod's price is per GPU; a worker with gpu.count GPUs costs that many times as much.
        price = self.config.price(ep.gpu_pools[0], active=w.active) \
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

