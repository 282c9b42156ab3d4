"""Submission and tracking of RunPod jobs: one tracker per console process.

Submit records the job in the store first and only then calls /run, so a rerun or a double click
never sends it twice. The tracker thread follows every unfinished job (independently of browser
sessions), records each status change with its timings, keeps outputs as files and resumes after
a console restart.

Durability: each job is one task with its own schedule; a task's error (a locked store, a full
disk, a bug) is recorded in health() and the task retried later, never ending the loop, and a
supervisor restarts the loop if it fails anyway. Polls and output downloads run on separate
pools, so one slow download or one job's backoff never delays another job's poll. A job turns
final in the store only with its outputs kept (or their loss recorded).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from lib.config import ConsoleConfig
from lib.costs.model import estimate_job_cost
from lib.errors import ConsoleError
from lib.jobstate import WORKER_FAILED, JobState
from lib.outputs import OutputError, fetch_image, image_entries
from lib.pollplan import Lane, PollPlan
from lib.runpod import DevWorkerJobs, Job, NotFound, Policy, PollPolicy, RateLimited, RunPodError
from lib.store import DamagedRecord, DiskFull, DuplicateSubmission, JobRecord, JobStore, StoreUnavailable

log = logging.getLogger(__name__)


class JobsApi(Protocol):
    """What the tracker calls on a job API: lib.runpod's EndpointJobs and DevWorkerJobs both are one."""

    def run(self, input: dict[str, Any], *, webhook: str | None = None, policy: Policy | None = None) -> Job: ...
    def status(self, job_id: str) -> Job: ...
    def cancel(self, job_id: str) -> Job: ...
    def retry(self, job_id: str) -> Job: ...


JobsFor = Callable[[str], JobsApi]  # role (or, for jobs_at, endpoint id / dev worker url) -> its job API
Listener = Callable[[JobRecord], None]

# RunPod keeps a /run result 30 min after completion: before that age a 404 cannot be a
# forgotten result (it is a proxy, a wrong URL or a hiccup), so it never expires a job.
RESULT_RETENTION_S = 30 * 60
# A loop restart stays visible on Overview this long after it happened.
LOOP_PROBLEM_SHOWN_S = 300.0
POLL, KEEP, RECORD = "poll", "keep", "record"  # RECORD: write a RunPod id the store refused
DEV_WORKER_LOST = ("The console lost contact with the worker under development while it ran this job "
                   "(a timeout or a console restart). It may still be running there but will not report "
                   "the result again, and the console never re-posts a job that may be running: check the "
                   "worker's own console.")


@dataclass(frozen=True)
class TrackingHealth:
    """What Overview shows about tracking: is the loop alive, and what is going wrong."""

    running: bool
    problems: tuple[str, ...] = ()

    @property
    def degraded(self) -> bool:
        return not self.running or bool(self.problems)


@dataclass(frozen=True)
class _Due:
    at: float
    interval: float | None
    task: str  # POLL or KEEP


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
                 local_volume_root: Path | None = None, clock: Callable[[], float] = time.monotonic,
                 authorize: Callable[[str, str], object] | None = None,
                 jobs_at: JobsFor | None = None, retention_s: float = RESULT_RETENTION_S,
                 max_downloads: int = 4):
        self.store = store
        self.config = config
        self._jobs_for = jobs_for
        # A job is followed, cancelled and retried where it was sent (record.endpoint_id), even
        # after console.toml names another endpoint for its role. Without jobs_at, by role.
        self._jobs_at = jobs_at
        self._retention_s = retention_s
        self._schedule = schedule
        self._clock = clock
        self._cold_threshold = cold_start_threshold_ms or (lambda role: 10_000.0)
        self._local_root = local_volume_root
        # Every action is checked here, on the server side, whatever the page showed.
        self._authorize = authorize or (lambda user, action: None)
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="tracker-poll")
        self._downloads = ThreadPoolExecutor(max_workers=max_downloads, thread_name_prefix="tracker-outputs")
        # Periodic tasks (alert rules, warm-hold releases) run one at a time beside the loop: one
        # that waits on a locked store must not hold the polls up.
        self._periodic_runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracker-periodic")
        self._periodic_run: Future[None] | None = None
        self._due: dict[str, _Due] = {}
        # One /status budget per endpoint, handed out in queue order (lib/pollplan.py).
        self._plan = PollPlan(clock)
        self._budget_wake: float | None = None  # when a poll the budget held back may go
        self._held: set[str] = set()  # polls whose time has come, held back by the budget
        self._running: set[str] = set()  # local ids with a task in flight: never dispatched twice
        self._not_found: dict[str, int] = {}  # local id -> RunPod 404s seen in a row
        self._unrecorded: dict[str, Job] = {}  # local id -> RunPod's answer to /run, not yet stored
        self._started_wall = time.time()
        self._due_lock = threading.Lock()
        self._problems: dict[str, tuple[str, float]] = {}  # kind -> (message, since)
        self._problems_lock = threading.Lock()
        self._resumed = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._periodic: list[list[Any]] = []  # [fn, every_s, next_at]
        self._http = httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True)

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> Tracker:
        """Resume every unfinished job, then follow them in a supervised background thread."""
        self._try_resume()
        self._start_thread()
        return self

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name="job-tracker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._periodic_runner.shutdown(wait=True, cancel_futures=True)
        # A download still in flight is abandoned: its job stays outputs_pending and resumes.
        self._downloads.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    def add_listener(self, listener: Listener) -> None:
        """Called (in a tracker thread) whenever a job's status changes."""
        self._listeners.append(listener)

    def add_periodic(self, task: Callable[[], object], every_s: float) -> None:
        """Run `task` every `every_s` seconds beside the tracking loop (alert rules, warm-up restores)."""
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

    def _try_resume(self) -> None:
        try:
            self.resume()
        except StoreUnavailable as exc:  # the loop tries again; tracking starts when the store answers
            self._problem(_kind_of(exc), str(exc))
            return
        self._resumed = True

    def resume(self) -> int:
        """Follow every unfinished job again and keep the outputs an earlier run did not keep."""
        count = 0
        for record in self.store.unfinished():
            if record.status == JobState.PENDING:
                if record.created_at.timestamp() >= self._started_wall:
                    continue  # submitted by this process (a resume retried after a locked store)
                # The console stopped between recording and RunPod's answer: the job may or may
                # not exist on RunPod. Never resend it blindly; a person decides.
                self.store.mark_local(record.local_id, JobState.UNKNOWN,
                                      "The console restarted before RunPod confirmed this submission; "
                                      "check the endpoint before submitting it again.")
                continue
            self._follow(record)
            self._schedule_task(record.local_id, KEEP if record.outputs_pending else POLL, None, delay=0.0)
            count += 1
        for record in self.store.missing_outputs():
            log.warning("job %s is COMPLETED without its outputs: keeping them from the stored result",
                        record.local_id)
            self._schedule_task(record.local_id, KEEP, None, delay=0.0)
            count += 1
        return count

    # ---- health -------------------------------------------------------------------------
    def health(self) -> TrackingHealth:
        """Alive or not, and every reason tracking is degraded now (restarts a dead loop)."""
        with self._thread_lock:
            if self._thread is not None and not self._thread.is_alive() and not self._stop.is_set():
                self._loop_failed("the tracking thread had stopped and was restarted")
                self._start_thread()
        with self._problems_lock:
            problems = [message for message, _ in self._problems.values()]
        damaged = sorted(self.store.damaged)
        if damaged:
            problems.append(f"{len(damaged)} damaged job record(s) skipped and not followed: "
                            + "; ".join(self.store.damaged[i] for i in damaged[:3]))
        running = self._thread is not None and self._thread.is_alive()
        return TrackingHealth(running=running, problems=tuple(problems))

    def _problem(self, kind: str, message: str) -> None:
        with self._problems_lock:
            since = self._problems.get(kind, (None, self._clock()))[1]
            self._problems[kind] = (message, since)

    def _clear(self, *kinds: str) -> None:
        with self._problems_lock:
            for kind in kinds:
                self._problems.pop(kind, None)

    # ---- actions ------------------------------------------------------------------------
    def submit(self, role: str, input: dict[str, Any], *, kind: str, user: str, idempotency_key: str,
               meta: dict[str, Any] | None = None, policy: Policy | None = None, group: str | None = None,
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
                raise SubmitRefused(self.store.mark_local(record.local_id, JobState.SUBMIT_FAILED, str(exc))) from None
            return self.store.mark_local(
                record.local_id, JobState.UNKNOWN,
                f"RunPod did not confirm the submission ({exc}). It may still run: check the "
                f"endpoint's queue before submitting again.")
        self._follow(record, job.status.value)
        try:
            record = self.store.mark_submitted(record.local_id, job.id, job.status.value)
        except StoreUnavailable as exc:
            # RunPod has the job: its id is kept in memory and written as soon as the store takes it.
            self._problem(_kind_of(exc), str(exc))
            with self._due_lock:
                self._unrecorded[record.local_id] = job
            self._schedule_task(record.local_id, RECORD, None, delay=self._schedule.first_s)
            return record
        self._schedule_poll(record.local_id, None, delay=self._schedule.first_s)
        return record

    def cancel(self, local_id: str, user: str) -> JobRecord:
        self._authorize(user, "cancel")
        record = self.store.get(local_id)
        if record.is_final or not record.runpod_id:
            return record
        job = self._jobs_of(record).cancel(record.runpod_id)
        self.store.audit(user, "cancel", local_id, {"runpod_id": record.runpod_id})
        updated = self._apply(record, job)
        self._schedule_poll(local_id, None, delay=0.0)
        return updated

    def retry(self, local_id: str, user: str) -> JobRecord:
        """RunPod's /retry: re-queue a FAILED or TIMED_OUT job under the same id."""
        self._authorize(user, "retry")
        record = self.store.get(local_id)
        if record.status not in WORKER_FAILED or not record.runpod_id:
            raise ValueError(f"only failed or timed-out jobs can be retried (this one is {record.status})")
        job = self._jobs_of(record).retry(record.runpod_id)
        self.store.audit(user, "retry", local_id, {"runpod_id": record.runpod_id})
        updated = self.store.reset_for_retry(local_id, job.status.value)
        self._follow(updated)
        self._schedule_poll(local_id, None, delay=self._schedule.first_s)
        return updated

    def _jobs_of(self, record: JobRecord) -> JobsApi:
        return self._jobs_at(record.endpoint_id) if self._jobs_at else self._jobs_for(record.role)

    # ---- scheduling ---------------------------------------------------------------------
    def _follow(self, record: JobRecord, status: str | None = None) -> None:
        """Give the job its place in its endpoint's /status budget (queue order = submission time)."""
        # FLUX at 50 steps and Z-Image at 8 are both Generate's jobs: the model tells their run times apart.
        work = f"{record.kind} {record.meta.get('model') or ''}"
        self._plan.follow(record.local_id, Lane(record.endpoint_id, record.created_at.timestamp(), work))
        self._plan.observe(record.local_id, status or record.status)

    def _schedule_poll(self, local_id: str, interval: float | None, *, delay: float) -> None:
        self._schedule_task(local_id, POLL, interval, delay=delay)

    def _schedule_task(self, local_id: str, task: str, interval: float | None, *, delay: float) -> None:
        with self._due_lock:
            self._due[local_id] = _Due(self._clock() + delay, interval, task)
        self._wake.set()

    def tracked(self) -> int:
        with self._due_lock:
            return len(self._due.keys() | self._running)

    def _supervise(self) -> None:
        while not self._stop.is_set():
            try:
                self._loop()
            except Exception as exc:  # the loop itself failed: log it, show it, run it again
                if isinstance(exc, RuntimeError) and "cannot schedule new futures after" in str(exc):
                    # The process is exiting: Python closed the thread pools before atexit runs stop();
                    # nothing can be followed any more, and a traceback on Ctrl-C would only alarm.
                    return
                log.exception("the tracking loop failed; restarting it")
                self._loop_failed(f"the tracking loop failed ({type(exc).__name__}: {exc}) and was restarted")
                self._stop.wait(0.5)

    def _loop_failed(self, message: str) -> None:
        """Shown for LOOP_PROBLEM_SHOWN_S after the latest failure."""
        self._clear("loop")
        self._problem("loop", message)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._resumed:
                self._try_resume()
            self._dispatch_due()
            if self._periodic_run is None or self._periodic_run.done():
                self._periodic_run = self._periodic_runner.submit(self.run_periodic)
            self._forget_old_loop_problem()
            with self._due_lock:
                next_due = min([due.at for lid, due in self._due.items()
                                if lid not in self._running and lid not in self._held]
                               + [entry[2] for entry in self._periodic]
                               + ([self._budget_wake] if self._budget_wake is not None else []), default=None)
            timeout = 1.0 if next_due is None else max(0.0, min(1.0, next_due - self._clock()))
            self._wake.wait(timeout)
            self._wake.clear()

    def _forget_old_loop_problem(self) -> None:
        with self._problems_lock:
            entry = self._problems.get("loop")
            if entry and self._clock() - entry[1] > LOOP_PROBLEM_SHOWN_S:
                del self._problems["loop"]

    def _dispatch_due(self, only: str | None = None) -> list[Future[Any]]:
        """Start every task whose turn has come and, for polls, that the endpoint's /status budget
        allows; polls and downloads on separate pools."""
        now = self._clock()
        with self._due_lock:
            due = [(lid, entry) for lid, entry in self._due.items()
                   if entry.at <= now and lid not in self._running and only in (None, entry.task)]
            allowed, self._budget_wake = self._plan.grant((lid, entry.at) for lid, entry in due if entry.task == POLL)
            self._held = {lid for lid, entry in due if entry.task == POLL} - set(allowed)
            due = [(lid, entry) for lid, entry in due if lid not in self._held]
            for lid, _ in due:
                del self._due[lid]
                self._running.add(lid)
        return [(self._downloads if entry.task == KEEP else self._pool).submit(self._run_task, lid, entry)
                for lid, entry in due]

    def poll_due(self) -> int:
        """Poll every job whose turn has come and wait for those polls and for the output saving
        they started (the loop itself never waits: this is for tests and hand-driven use)."""
        polls = self._dispatch_due()
        wait(polls)
        wait(self._dispatch_due(only=KEEP))
        return len(polls)

    def _run_task(self, local_id: str, due: _Due) -> None:
        """One job's turn. Whatever fails here is this job's problem only: it is recorded, shown
        in health() and retried after a pause, while every other job goes on."""
        handed_off = False
        try:
            if due.task == KEEP:
                self._keep_outputs(local_id)
                self._clear("disk")
            elif due.task == RECORD:
                self._record_submission(local_id)
            else:
                handed_off = self._poll_one(local_id, due.interval)
            self._clear("store", f"job:{local_id}")
        except StoreUnavailable as exc:
            log.warning("job %s: %s", local_id, exc)
            self._problem(_kind_of(exc), str(exc))
            self._retry_later(local_id, due)
        except Exception as exc:
            log.exception("tracking job %s failed; it is retried", local_id)
            self._problem(f"job:{local_id}", f"job {local_id}: {type(exc).__name__}: {exc} — retrying")
            self._retry_later(local_id, due)
        finally:
            if not handed_off:
                self._task_done(local_id)

    def _record_submission(self, local_id: str) -> None:
        with self._due_lock:
            job = self._unrecorded[local_id]
        self.store.mark_submitted(local_id, job.id, job.status.value)
        with self._due_lock:
            del self._unrecorded[local_id]
        self._schedule_poll(local_id, None, delay=0.0)

    def _retry_later(self, local_id: str, due: _Due) -> None:
        interval = self._schedule.next_interval(due.interval, "")
        self._schedule_task(local_id, due.task, interval, delay=interval)

    def _task_done(self, local_id: str) -> None:
        with self._due_lock:
            self._running.discard(local_id)
        self._wake.set()

    def _poll_one(self, local_id: str, interval: float | None) -> bool:
        """Poll one job; True when a dev worker thread took it over."""
        try:
            record = self.store.get(local_id)
        except (KeyError, DamagedRecord):  # a damaged record is reported by health(), not followed
            return False
        if record.outputs_pending:
            self._schedule_task(local_id, KEEP, None, delay=0.0)
            return False
        if record.is_final or not record.runpod_id:
            self._plan.forget(local_id)
            return False
        jobs = self._jobs_of(record)
        if isinstance(jobs, DevWorkerJobs):
            return self._follow_dev_job(record, record.runpod_id, jobs)
        next_interval = self._schedule.next_interval(interval, record.role)
        try:
            job = jobs.status(record.runpod_id)
        except NotFound as exc:
            self._on_not_found(record, exc, next_interval)
            return False
        except RunPodError as exc:
            # Transient trouble (rate limit, 5xx, network): keep following this job a little slower;
            # a Retry-After delays this job only.
            log.warning("status of job %s failed: %s", local_id, exc)
            retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
            if isinstance(exc, RateLimited):
                self._plan.rate_limited(local_id)
            self._schedule_poll(local_id, next_interval, delay=max(next_interval, retry_after or 0.0))
            return False
        with self._due_lock:
            self._not_found.pop(local_id, None)
        # Before applying: a final status makes the store's listeners forget the job's lane, and with it
        # the run time the plan learns from a completion.
        self._plan.observe(local_id, job.status, job.execution_time_ms)
        updated = self._apply(record, job)
        if not updated.is_final and not updated.outputs_pending:
            delay, next_interval = self._plan.next_poll(
                local_id, was=record.status, now_status=updated.status, interval=interval,
                policy=self._schedule.policy(record.role), running_for_s=_running_for_s(record, job, interval))
            self._schedule_poll(local_id, next_interval, delay=delay)
        return False

    def _on_not_found(self, record: JobRecord, exc: NotFound, interval: float) -> None:
        """Expire only on RunPod's own (JSON) 404, for a job old enough for RunPod to have forgotten
        it, and only when a second look says the same. RunPod's 404 body is not documented (could
        not confirm): a body that is not JSON (a proxy's HTML page) is never taken as RunPod's."""
        from_runpod = isinstance(exc.body, (dict, list))
        submitted = record.submitted_at or record.created_at
        old_enough = time.time() - submitted.timestamp() >= self._retention_s
        with self._due_lock:
            looks = self._not_found.get(record.local_id, 0) + 1 if from_runpod and old_enough else 0
            self._not_found[record.local_id] = looks
        if looks >= 2:
            with self._due_lock:
                self._not_found.pop(record.local_id, None)
            self._expire(record)
            return
        log.warning("job %s: RunPod answered 404 (%s); looking again before believing it", record.local_id,
                    "JSON" if from_runpod else "not JSON")
        self._schedule_poll(record.local_id, interval, delay=interval)

    def _expire(self, record: JobRecord) -> None:
        updated = self.store.mark_local(
            record.local_id, JobState.EXPIRED,
            "RunPod no longer has this job: its ttl expired, or its result expired (RunPod keeps "
            "results 30 min) before the console could fetch it.")
        self._notify(updated)

    # ---- dev workers --------------------------------------------------------------------
    def _follow_dev_job(self, record: JobRecord, runpod_id: str, jobs: DevWorkerJobs) -> bool:
        """A dev worker runs the job inside POST /status, blocking until the handler returns: it is
        followed on a thread of its own, posted at most once (the store's IN_PROGRESS marks "posted",
        across restarts too), and a job that may be running is never posted again."""
        if record.status == JobState.IN_PROGRESS:
            finished = jobs.finished(runpod_id)
            if finished is not None:  # the answer came, recording it failed: record it now
                self._apply(record, finished)
            else:
                self._notify(self.store.mark_local(record.local_id, JobState.UNKNOWN, DEV_WORKER_LOST))
            return False
        self.store.update_from_runpod(record.local_id, status=JobState.IN_PROGRESS, delay_ms=None, execution_ms=None,
                                      worker_id=None, retries=None, output=None, error=None)
        threading.Thread(target=self._dev_job_thread, args=(record.local_id, jobs, runpod_id),
                         name=f"dev-worker-{record.local_id}", daemon=True).start()
        return True

    def _dev_job_thread(self, local_id: str, jobs: DevWorkerJobs, runpod_id: str) -> None:
        failure: RunPodError | None = None
        try:
            try:
                job = jobs.status(runpod_id)
            except RunPodError as exc:
                failure = exc
            if self._stop.is_set():
                return  # this tracker was stopped meanwhile: the next one decides from the store
            if isinstance(failure, NotFound):
                self._notify(self.store.mark_local(local_id, JobState.EXPIRED, str(failure)))
            elif failure is not None:
                self._notify(self.store.mark_local(local_id, JobState.UNKNOWN, f"{failure}. {DEV_WORKER_LOST}"))
            else:
                self._apply(self.store.get(local_id), job)
        except Exception as exc:  # the result is kept in memory by DevWorkerJobs: recorded on the next turn
            log.exception("recording the dev worker's result of job %s failed", local_id)
            self._problem(_kind_of(exc), f"job {local_id}: {exc}")
            self._schedule_poll(local_id, None, delay=self._schedule.cap_s)
        finally:
            self._task_done(local_id)

    # ---- results ------------------------------------------------------------------------
    def _apply(self, record: JobRecord, job: Job) -> JobRecord:
        status = job.status.value
        is_final = job.is_terminal
        cold = None
        if job.delay_time_ms is not None and status != JobState.IN_QUEUE:
            cold = job.delay_time_ms >= self._cold_threshold(record.role)
        cost = None
        if is_final and job.execution_time_ms is not None:
            cost = estimate_job_cost(self.config, record.role, job.execution_time_ms,
                                     cold_start=bool(cold if cold is not None else record.cold_start))
        # A COMPLETED job with images turns final only once they are kept (a crash in between
        # leaves it outputs_pending, and the next start keeps them from the stored result).
        pending = status == JobState.COMPLETED and bool(image_entries(job.output))
        updated, changed = self.store.update_from_runpod(
            record.local_id, status=status, delay_ms=job.delay_time_ms,
            execution_ms=job.execution_time_ms, worker_id=job.worker_id, retries=job.retries,
            output=job.output, error=job.error, cold_start=cold, cost_usd=cost, outputs_pending=pending)
        if pending:
            self._schedule_task(record.local_id, KEEP, None, delay=0.0)
        elif changed:
            self._notify(updated)
        return updated

    def _keep_outputs(self, local_id: str) -> None:
        """Save every output file, then make the job final (runs on the download pool)."""
        record = self.store.get(local_id)
        problems = []
        for entry in image_entries(record.output):
            try:
                fetched = fetch_image(entry, http=self._http, local_root=self._local_root)
            except OutputError as exc:
                fetched = None
                problems.append(str(exc))
            if self._stop.is_set():
                return  # stopping: the job stays outputs_pending and is kept on the next start
            if fetched is not None:
                self.store.save_output(local_id, fetched.name, fetched.data, fetched.mime, meta=record.meta)
        updated, changed = self.store.finish_outputs(local_id, problems)
        if changed:
            self._notify(updated)

    def _notify(self, record: JobRecord) -> None:
        if record.is_final or record.status == JobState.UNKNOWN:
            self._plan.forget(record.local_id)
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
            if all(r.is_final or r.status == JobState.UNKNOWN for r in records):
                return records
            if self._clock() >= deadline:
                raise TimeoutError(f"{sum(not r.is_final for r in records)} of {len(ids)} jobs "
                                   f"still unfinished after {timeout_s:.0f} s")
            time.sleep(0.05)


def _running_for_s(record: JobRecord, job: Job, interval: float | None) -> float:
    """How long a job RunPod reports IN_PROGRESS has been running, as far as we can tell: from its
    queue wait (delayTime) when RunPod gives it, else half the pause since the look that saw it queued."""
    submitted = (record.submitted_at or record.created_at).timestamp()
    since_last_look = interval if interval is not None else max(0.0, time.time() - submitted)
    if job.delay_time_ms is None:
        return since_last_look / 2
    return min(max(0.0, time.time() - submitted - job.delay_time_ms / 1000.0), since_last_look)


def _kind_of(exc: Exception) -> str:
    """The health() slot a failure goes to: one message per cause, not per job."""
    if isinstance(exc, DiskFull):
        return "disk"
    return "store" if isinstance(exc, StoreUnavailable) else "tracking"
