"""The life of a job on the simulated platform: queued, running, finished, retained, expired.

RunPod's job API semantics (reference runpod-api.md §1): /run and /runsync submit, /status reads,
/cancel, /retry (FAILED or TIMED_OUT only), /purge-queue, /health; policy ttl and executionTimeout;
results kept 30 min after /run and 1 min after /runsync; webhooks with two retries.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from urllib.parse import urlsplit

import httpx

from lib.localpod.models import (
    CANCELLED,
    COMPLETED,
    DEFAULT_TTL_MS,
    FAILED,
    IDLE,
    IN_PROGRESS,
    IN_QUEUE,
    INITIALIZING,
    RUNNING,
    THROTTLED,
    TIMED_OUT,
    UNHEALTHY,
    Endpoint,
    Job,
    new_job_id,
)

log = logging.getLogger("localpod")

WEBHOOK_ATTEMPTS = 3          # RunPod: on failure, 2 more tries, 10 s apart


class JobLifecycle:
    """Job API operations and the transitions every job goes through (mixin of Simulator)."""

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

