"""Submission and tracking of RunPod jobs: one tracker per console process.

Submit records the job in the store first and only then calls /run, so a rerun or a double click
never sends it twice. The tracker thread follows every unfinished job (independently of browser
sessions), records each status change with its timings, keeps outputs as files and resumes after
a console restart.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from lib.config import ConsoleConfig
from lib.errors import ConsoleError
from lib.outputs import OutputError, fetch_image, image_entries
from lib.runpod import Job, NotFound, Policy, PollPolicy, RunPodError
from lib.store import DuplicateSubmission, JobRecord, JobStore

log = logging.getLogger(__name__)

JobsFor = Callable[[str], object]  # role -> EndpointJobs | DevWorkerJobs
Listener = Callable[[JobRecord], None]


@dataclass(frozen=True)
class PollSchedule:
    """The client's adaptive PollPolicy per endpoint role: training runs for hours, so it backs
    off to a longer cap than image jobs."""

    first_s: float = 0.25
    factor: float = 1.6
    cap_s: float = 3.0
    training_cap_s: float = 10.0

    def policy(self, role: str) -> PollPolicy:
        return PollPolicy(self.first_s, self.factor, self.training_cap_s if role == "training" else self.cap_s)

    def next_interval(self, current: float | None, role: str) -> float:
        return self.policy(role).next_interval(current)


class SubmitRefused(ConsoleError):
    """RunPod surely did not take the job; the record says why (status SUBMIT_FAILED)."""

    def __init__(self, record: JobRecord):
        super().__init__(record.error or "RunPod refused the job")
        self.record = record


def _surely_not_sent(exc: RunPodError) -> bool:
    """True when RunPod certainly has no job after this error (safe to mark SUBMIT_FAILED).

    The client flags every error after which a /run may or may not have reached RunPod
    (read timeout, broken connection, 5xx other than 503) as outcome_unknown.
    """
    return not exc.outcome_unknown


class Tracker:
    def __init__(self, store: JobStore, config: ConsoleConfig, jobs_for: JobsFor, *,
                 schedule: PollSchedule = PollSchedule(), max_parallel: int = 16,
                 cold_start_threshold_ms: Callable[[str], float] | None = None,
                 local_volume_root: Path | None = None, clock=time.monotonic,
                 authorize: Callable[[str, str], object] | None = None):
        self.store = store
        self.config = config
        self._jobs_for = jobs_for
        self._schedule = schedule
        self._clock = clock
        self._cold_threshold = cold_start_threshold_ms or (lambda role: 10_000.0)
        self._local_root = local_volume_root
        # Every action is checked here, on the server side, whatever the page showed.
        self._authorize = authorize or (lambda user, action: None)
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="tracker-poll")
        self._due: dict[str, tuple[float, float | None]] = {}  # local_id -> (due_at, interval)
        self._due_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Listener] = []
        self._periodic: list[list] = []  # [fn, every_s, next_at]
        self._http = httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True)

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> "Tracker":
        """Resume every unfinished job, then follow them in a background thread."""
        self.resume()
        self._thread = threading.Thread(target=self._loop, name="job-tracker", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()

    def add_listener(self, listener: Listener) -> None:
        """Called (in the tracker thread) whenever a job's status changes."""
        self._listeners.append(listener)

    def add_periodic(self, task: Callable[[], None], every_s: float) -> None:
        """Run `task` in the tracker thread every `every_s` seconds (alert rules, warm-up restores)."""
        self._periodic.append([task, every_s, self._clock()])
        self._wake.set()

    def run_periodic(self) -> None:
        now = self._clock()
        for entry in self._periodic:
            task, every, next_at = entry
            if now < next_at:
                continue
            entry[2] = now + every
            try:
                task()
            except Exception:  # one failing rule must not stop job tracking
                log.exception("periodic task %s failed", getattr(task, "__name__", task))

    def resume(self) -> int:
        count = 0
        for record in self.store.unfinished():
            if record.status == "PENDING":
                # The console stopped between recording and RunPod's answer: the job may or may
                # not exist on RunPod. Never resend it blindly; a person decides.
                self.store.mark_local(record.local_id, "UNKNOWN",
                                      "The console restarted before RunPod confirmed this submission; "
                                      "check the endpoint before submitting it again.")
                continue
            self._schedule_poll(record.local_id, None, delay=0.0)
            count += 1
        return count

    # ---- actions ------------------------------------------------------------------------
    def submit(self, role: str, input: dict, *, kind: str, user: str, idempotency_key: str,
               meta: dict | None = None, policy: Policy | None = None, group: str | None = None,
               est_cost_usd: float | None = None, webhook: str | None = None) -> JobRecord:
        """Record, then send. The same idempotency key returns the existing record, unsent."""
        self._authorize(user, "train" if role == "training" else "submit")
        spec = self.config.endpoint(role)
        endpoint_id = spec.id or spec.url or role
        try:
            record = self.store.create(role=role, endpoint_id=endpoint_id, kind=kind, user=user,
                                       input=input, idempotency_key=idempotency_key, meta=meta,
                                       group=group, est_cost_usd=est_cost_usd)
        except DuplicateSubmission as dup:
            return dup.record
        self.store.audit(user, "submit", record.local_id,
                         {"role": role, "kind": kind, "endpoint": endpoint_id}, est_cost_usd)
        try:
            job: Job = self._jobs_for(role).run(input, policy=policy, webhook=webhook)
        except RunPodError as exc:
            if _surely_not_sent(exc):
                raise SubmitRefused(self.store.mark_local(record.local_id, "SUBMIT_FAILED", str(exc))) from None
            return self.store.mark_local(
                record.local_id, "UNKNOWN",
                f"RunPod did not confirm the submission ({exc}). It may still run: check the "
                f"endpoint's queue before submitting again.")
        record = self.store.mark_submitted(record.local_id, job.id, job.status.value)
        self._schedule_poll(record.local_id, None, delay=self._schedule.first_s)
        return record

    def cancel(self, local_id: str, user: str) -> JobRecord:
        self._authorize(user, "cancel")
        record = self.store.get(local_id)
        if record.is_final or not record.runpod_id:
            return record
        job = self._jobs_for(record.role).cancel(record.runpod_id)
        self.store.audit(user, "cancel", local_id, {"runpod_id": record.runpod_id})
        updated = self._apply(record, job)
        self._schedule_poll(local_id, None, delay=0.0)
        return updated

    def retry(self, local_id: str, user: str) -> JobRecord:
        """RunPod's /retry: re-queue a FAILED or TIMED_OUT job under the same id."""
        self._authorize(user, "retry")
        record = self.store.get(local_id)
        if record.status not in ("FAILED", "TIMED_OUT") or not record.runpod_id:
            raise ValueError(f"only failed or timed-out jobs can be retried (this one is {record.status})")
        job = self._jobs_for(record.role).retry(record.runpod_id)
        self.store.audit(user, "retry", local_id, {"runpod_id": record.runpod_id})
        updated = self.store.reset_for_retry(local_id, job.status.value)
        self._schedule_poll(local_id, None, delay=self._schedule.first_s)
        return updated

    # ---- polling ------------------------------------------------------------------------
    def _schedule_poll(self, local_id: str, interval: float | None, *, delay: float) -> None:
        with self._due_lock:
            self._due[local_id] = (self._clock() + delay, interval)
        self._wake.set()

    def tracked(self) -> int:
        with self._due_lock:
            return len(self._due)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.poll_due()
            self.run_periodic()
            with self._due_lock:
                next_due = min([due for due, _ in self._due.values()]
                               + [entry[2] for entry in self._periodic], default=None)
            timeout = 1.0 if next_due is None else max(0.0, min(1.0, next_due - self._clock()))
            self._wake.wait(timeout)
            self._wake.clear()

    def poll_due(self) -> int:
        """Poll every job whose turn has come, in parallel over the shared client."""
        now = self._clock()
        with self._due_lock:
            due = [(lid, interval) for lid, (at, interval) in self._due.items() if at <= now]
            for lid, _ in due:
                self._due.pop(lid, None)
        futures = [self._pool.submit(self._poll_one, lid, interval) for lid, interval in due]
        for future in futures:
            future.result()
        return len(due)

    def _poll_one(self, local_id: str, interval: float | None) -> None:
        try:
            record = self.store.get(local_id)
        except KeyError:
            return
        if record.is_final or not record.runpod_id:
            return
        next_interval = self._schedule.next_interval(interval, record.role)
        try:
            job = self._jobs_for(record.role).status(record.runpod_id)
        except NotFound:
            self._expire(record)
            return
        except RunPodError as exc:
            # Transient trouble (rate limit, 5xx, network): keep following, a little slower.
            log.warning("status of job %s failed: %s", local_id, exc)
            self._schedule_poll(local_id, next_interval, delay=next_interval)
            return
        except Exception:  # a bug must not kill the tracker thread for every other job
            log.exception("unexpected error while polling job %s", local_id)
            self._schedule_poll(local_id, next_interval, delay=next_interval)
            return
        updated = self._apply(record, job)
        if not updated.is_final:
            self._schedule_poll(local_id, next_interval, delay=next_interval)

    def _expire(self, record: JobRecord) -> None:
        updated = self.store.mark_local(
            record.local_id, "EXPIRED",
            "RunPod no longer has this job: its ttl expired, or its result expired (RunPod keeps "
            "results 30 min) before the console could fetch it.")
        self._notify(updated)

    def _apply(self, record: JobRecord, job: Job) -> JobRecord:
        status = job.status.value
        is_final = job.is_terminal
        cold = None
        if job.delay_time_ms is not None and status != "IN_QUEUE":
            cold = job.delay_time_ms >= self._cold_threshold(record.role)
        cost = None
        if is_final and job.execution_time_ms is not None:
            cost = self.job_cost(record.role, job.execution_time_ms,
                                 cold_start=bool(cold if cold is not None else record.cold_start))
        updated, changed = self.store.update_from_runpod(
            record.local_id, status=status, delay_ms=job.delay_time_ms,
            execution_ms=job.execution_time_ms, worker_id=job.worker_id, retries=job.retries,
            output=job.output, error=job.error, cold_start=cold, cost_usd=cost)
        if changed and status == "COMPLETED":
            self._keep_outputs(updated)
            updated = self.store.get(record.local_id)
        if changed:
            self._notify(updated)
        return updated

    def job_cost(self, role: str, execution_ms: int, *, cold_start: bool = False) -> float:
        """Billed per second, rounded up, at the flex price of the endpoint's first GPU pool.

        The same model as lib.costs: initializing is not billed (since 2026-06-29), but a worker
        started for this job bills one idle timeout before it stops.
        """
        seconds = math.ceil(execution_ms / 1000)
        if cold_start:
            seconds += self.config.endpoint(role).idle_timeout_s
        return seconds * self.config.price_per_second(role)

    def _keep_outputs(self, record: JobRecord) -> None:
        problems = []
        for entry in image_entries(record.output):
            try:
                fetched = fetch_image(entry, http=self._http, local_root=self._local_root)
            except OutputError as exc:
                problems.append(str(exc))
                continue
            self.store.save_output(record.local_id, fetched.name, fetched.data, fetched.mime,
                                   meta=record.meta)
        if problems:
            self.store.update_from_runpod(
                record.local_id, status=record.status, delay_ms=None, execution_ms=None,
                worker_id=None, retries=None, output=record.output,
                error="Some outputs could not be kept: " + "; ".join(problems))

    def _notify(self, record: JobRecord) -> None:
        for listener in list(self._listeners):
            try:
                listener(record)
            except Exception:
                log.exception("job listener failed for %s", record.local_id)

    # ---- waiting (tests, benchmarks, batch helpers) -------------------------------------
    def wait_for(self, local_ids: Iterable[str], timeout_s: float) -> list[JobRecord]:
        ids = list(local_ids)
        deadline = self._clock() + timeout_s
        while True:
            records = [self.store.get(i) for i in ids]
            if all(r.is_final or r.status == "UNKNOWN" for r in records):
                return records
            if self._clock() >= deadline:
                raise TimeoutError(f"{sum(not r.is_final for r in records)} of {len(ids)} jobs "
                                   f"still unfinished after {timeout_s:.0f} s")
            time.sleep(0.05)
