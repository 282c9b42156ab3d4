"""DevWorkerJobs: the job interface over runpod's local test API (`python handler.py --rp_serve_api`).

That server has routes at the root (/run, /runsync, POST /status/{id}), no auth, no queue and no
retention: /run only stores the input, POST /status RUNS the job (blocking) and then forgets it,
and an unknown id is an HTTP 200 FAILED "Job ID not found". We therefore never send the API key
there, keep finished results in memory so a second status() still answers, and serialise
status() per job so two threads never run the same job twice. A POST /status whose answer was
lost (read timeout, broken connection) is never sent again: the worker may still be running the
job, and a second POST would start it a second time (two trainers at once).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from urllib.parse import quote

from lib.runpod.errors import JobWaitTimeout, NotFound, RequestTimeout, RunPodError, Unsupported
from lib.runpod.http import HttpCore, Retry
from lib.runpod.jobs import (
    RUN_LIMIT_BYTES,
    RUNSYNC_LIMIT_BYTES,
    Policy,
    PollPolicy,
    check_size,
    submit_body,
    submitted_job,
)
from lib.runpod.models import Health, Job, JobStatus, PurgeResult, StreamPage

DEFAULT_RUN_TIMEOUT_S = 3600.0
_KEEP_RESULTS = 256
_NOT_FOUND_TEXT = "Job ID not found"


class RunOutcomeLost(RunPodError):
    """The job was posted to the dev worker once and its answer was lost: it is never posted again."""


class DevWorkerJobs:
    def __init__(self, core: HttpCore, url: str, *, run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"dev worker url {url!r} must start with http:// or https://")
        self._core = core
        self.url = url.rstrip("/")
        self.run_timeout_s = run_timeout_s
        self._lock = threading.Lock()
        self._job_locks: dict[str, threading.Lock] = {}
        self._finished: OrderedDict[str, Job] = OrderedDict()
        self._posted_unanswered: set[str] = set()  # POST /status sent, no answer recorded

    def __repr__(self) -> str:
        return f"DevWorkerJobs({self.url!r})"

    def _op(self, method: str, path: str) -> str:
        return f"{method} {path} on dev worker {self.url}"

    # ------------------------------------------------------------------ supported

    def run(self, input: dict, *, webhook: str | None = None, policy: Policy | None = None) -> Job:
        """Store the job on the dev worker; it runs on the first status()/wait()."""
        op = self._op("POST", "/run")
        body = submit_body(input, webhook, policy, op)
        # The local API has no size limit, but the same input must later pass RunPod's.
        check_size(body, RUN_LIMIT_BYTES, op, "/run")
        data = self._core.request("POST", self.url + "/run", operation=op, retry=Retry.SUBMIT, body=body,
                                  auth=False)
        job = submitted_job(data, op)
        # It answers IN_PROGRESS, but nothing runs until POST /status: report what is true.
        return Job(id=job.id, status=JobStatus.IN_QUEUE, raw=job.raw)

    def runsync(self, input: dict, *, wait_ms: int | None = None, webhook: str | None = None,
                policy: Policy | None = None) -> Job:
        """Run inline; the local API ignores ``wait`` and answers when the handler is done."""
        op = self._op("POST", "/runsync")
        body = submit_body(input, webhook, policy, op)
        check_size(body, RUNSYNC_LIMIT_BYTES, op, "/runsync")
        data = self._core.request("POST", self.url + "/runsync", operation=op, retry=Retry.SUBMIT, body=body,
                                  auth=False, timeout=self._core.timeout_with_read(self.run_timeout_s))
        return submitted_job(data, op)

    def status(self, job_id: str, *, ttl_ms: int | None = None) -> Job:
        """Runs the stored job (blocking) the first time; later calls answer from memory."""
        return self._run_stored(job_id, self.run_timeout_s)

    def finished(self, job_id: str) -> Job | None:
        """The result this dev worker already returned for the job, if any (never posts)."""
        with self._lock:
            return self._finished.get(job_id)

    def wait(self, job_id: str, *, timeout_s: float, poll: PollPolicy = PollPolicy(),
             on_update: Callable[[Job], None] | None = None) -> Job:
        """One POST /status held up to timeout_s (the dev worker cannot be polled)."""
        job = self._run_stored(job_id, timeout_s)
        if on_update is not None:
            on_update(job)
        return job

    def run_and_wait(self, input: dict, *, timeout_s: float, policy: Policy | None = None,
                     webhook: str | None = None) -> Job:
        # /run + /status rather than /runsync: the job keeps an id that status() can answer for later.
        job = self.run(input, webhook=webhook, policy=policy)
        return self.wait(job.id, timeout_s=timeout_s)

    def reachable(self) -> None:
        """Raises a RunPodError when the dev worker's local API does not answer. It has no /health;
        its FastAPI schema route answers whenever the server is up."""
        op = self._op("GET", "/openapi.json")
        self._core.request("GET", self.url + "/openapi.json", operation=op, retry=Retry.IDEMPOTENT, auth=False)

    # ------------------------------------------------------------------ unsupported

    def cancel(self, job_id: str) -> Job:
        raise self._unsupported("/cancel", "cancel a job")

    def retry(self, job_id: str) -> Job:
        raise self._unsupported("/retry", "retry a job")

    def purge_queue(self) -> PurgeResult:
        raise self._unsupported("/purge-queue", "purge a queue (it has none)")

    def health(self) -> Health:
        raise self._unsupported("/health", "report health")

    def stream(self, job_id: str) -> StreamPage:
        raise self._unsupported("/stream", "stream incrementally")

    def iter_stream(self, job_id: str, *, timeout_s: float, poll: PollPolicy = PollPolicy()) -> Iterator[object]:
        raise self._unsupported("/stream", "stream incrementally")

    def _unsupported(self, route: str, what: str) -> Unsupported:
        return Unsupported(f"a worker under development (runpod --rp_serve_api at {self.url}) has no {route}: "
                           f"it cannot {what} — deploy the worker to a RunPod endpoint (or the simulator) "
                           f"for that", operation=self._op("POST", route))

    # ------------------------------------------------------------------ internals

    def _run_stored(self, job_id: str, timeout_s: float) -> Job:
        if not job_id:
            raise ValueError("status: job id is empty")
        path = f"/status/{quote(job_id, safe='')}"
        op = self._op("POST", path)
        with self._lock:
            if job_id in self._finished:
                return self._finished[job_id]
            job_lock = self._job_locks.setdefault(job_id, threading.Lock())
        running = Job(id=job_id, status=JobStatus.IN_PROGRESS)
        if not job_lock.acquire(timeout=max(timeout_s, 0.0)):
            raise JobWaitTimeout(f"{op}: job still running after {timeout_s:g} s (another caller is running "
                                 f"it on the dev worker)", running, operation=op)
        try:
            with self._lock:
                if job_id in self._finished:
                    return self._finished[job_id]
                if job_id in self._posted_unanswered:
                    raise RunOutcomeLost(f"{op}: this job was already posted and its answer was lost — the dev "
                                         f"worker may still be running it, so it is not posted again",
                                         operation=op)
                self._posted_unanswered.add(job_id)
            try:
                data = self._core.request("POST", self.url + path, operation=op, retry=Retry.SUBMIT, auth=False,
                                          timeout=self._core.timeout_with_read(timeout_s))
            except RequestTimeout as exc:
                raise JobWaitTimeout(f"{op}: the handler did not finish within {timeout_s:g} s — the dev worker "
                                     f"keeps running it but will not report the result again", running,
                                     operation=op) from exc
            except RunPodError as exc:
                if not exc.outcome_unknown:  # the POST surely never reached the worker: posting again is safe
                    with self._lock:
                        self._posted_unanswered.discard(job_id)
                raise
            job = Job.from_json(data, op, job_id)
            if job.status is JobStatus.FAILED and job.error == _NOT_FOUND_TEXT:
                with self._lock:
                    self._posted_unanswered.discard(job_id)
                raise NotFound(f"{op}: the dev worker does not know job {job_id} — it forgets jobs once they "
                               f"ran and on restart; submit it again", status=200, body=job.raw, operation=op)
            with self._lock:
                self._posted_unanswered.discard(job_id)
                self._finished[job_id] = job
                while len(self._finished) > _KEEP_RESULTS:
                    self._finished.popitem(last=False)
            return job
        finally:
            job_lock.release()
            with self._lock:
                self._job_locks.pop(job_id, None)
