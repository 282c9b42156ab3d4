"""EndpointJobs: the queue-based job API of one serverless endpoint ({api_url}/{endpoint_id}/...)."""
from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from lib.runpod.errors import BadResponse, JobWaitTimeout, PayloadTooLarge
from lib.runpod.http import Hints, HttpCore, Retry, dump_json
from lib.runpod.models import TERMINAL, Health, Job, JobStatus, PurgeResult, StreamPage

RUN_LIMIT_BYTES = 10_000_000      # documented /run body limit
RUNSYNC_LIMIT_BYTES = 20_000_000  # documented /runsync body limit
RUNSYNC_DEFAULT_WAIT_MS = 90_000  # RunPod holds /runsync this long when no ?wait= is given
RUNSYNC_WAIT_RANGE_MS = (1_000, 300_000)
# Slack on top of the server-side wait before we call a /runsync read a timeout.
RUNSYNC_READ_MARGIN_S = 30.0
JOB_GONE = ("the job is gone: results are kept 30 min after completion (1 min for runsync) or the "
            "job's ttl expired — or the endpoint id is wrong")


@dataclass(frozen=True)
class Policy:
    """RunPod's per-job policy; only the fields you set are sent."""

    execution_timeout_ms: int | None = None
    low_priority: bool | None = None
    ttl_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.execution_timeout_ms is not None:
            out["executionTimeout"] = int(self.execution_timeout_ms)
        if self.low_priority is not None:
            out["lowPriority"] = bool(self.low_priority)
        if self.ttl_ms is not None:
            out["ttl"] = int(self.ttl_ms)
        return out


@dataclass(frozen=True)
class PollPolicy:
    """Adaptive polling: first poll after ``first_s``, then interval × ``factor`` up to ``cap_s``."""

    first_s: float = 0.05
    factor: float = 1.5
    cap_s: float = 2.0

    def __post_init__(self) -> None:
        if self.first_s < 0 or self.factor < 1 or self.cap_s < self.first_s:
            raise ValueError("PollPolicy needs first_s >= 0, factor >= 1 and cap_s >= first_s")

    def next_interval(self, current: float | None) -> float:
        """The pause after one of `current` seconds (None: before the first poll)."""
        return self.first_s if current is None else min(current * self.factor, self.cap_s)


def submit_body(input: dict[str, Any], webhook: str | None, policy: Policy | None, what: str) -> bytes:
    if not isinstance(input, dict):
        raise TypeError(f"{what}: input must be a dict (the handler's job['input']), not {type(input).__name__}")
    body: dict[str, Any] = {"input": input}
    if webhook:
        body["webhook"] = webhook
    if policy is not None and policy.to_json():
        body["policy"] = policy.to_json()
    return dump_json(body, what)


def submitted_job(data: object, operation: str, job_id: str | None = None) -> Job:
    """The Job in a 2xx answer to /run, /runsync or /retry. RunPod received the request, so an
    answer we cannot read leaves the job's existence unknown: never a reason to resend."""
    try:
        return Job.from_json(data, operation, job_id)
    except BadResponse as exc:
        exc.outcome_unknown = True
        raise


def check_size(body: bytes, limit: int, operation: str, route: str) -> None:
    if len(body) > limit:
        raise PayloadTooLarge(len(body), limit, operation=operation, route=route)


def clamp_wait_ms(wait_ms: float) -> int:
    low, high = RUNSYNC_WAIT_RANGE_MS
    return int(min(max(math.ceil(wait_ms), low), high))


class EndpointJobs:
    def __init__(self, core: HttpCore, api_url: str, endpoint_id: str):
        if not endpoint_id:
            raise ValueError("endpoint id is empty — set it in console.toml [endpoints.<role>] id")
        self._core = core
        self.endpoint_id = endpoint_id
        self.base = f"{api_url.rstrip('/')}/{quote(endpoint_id, safe='')}"

    def __repr__(self) -> str:
        return f"EndpointJobs({self.endpoint_id!r})"

    def _op(self, method: str, path: str) -> str:
        return f"{method} {path} on endpoint {self.endpoint_id}"

    @staticmethod
    def _job_path(route: str, job_id: str) -> str:
        if not job_id:
            raise ValueError(f"{route}: job id is empty")
        return f"/{route}/{quote(job_id, safe='')}"

    # ------------------------------------------------------------------ submit

    def run(self, input: dict[str, Any], *, webhook: str | None = None, policy: Policy | None = None) -> Job:
        """Queue a job (POST /run); returns at once with the job id, normally IN_QUEUE."""
        op = self._op("POST", "/run")
        body = submit_body(input, webhook, policy, op)
        check_size(body, RUN_LIMIT_BYTES, op, "/run")
        data = self._core.request("POST", self.base + "/run", operation=op, retry=Retry.SUBMIT, body=body,
                                  hints=Hints(not_found=self._endpoint_missing(), body_size=len(body),
                                              body_limit=RUN_LIMIT_BYTES, route="/run"))
        return submitted_job(data, op)

    def runsync(self, input: dict[str, Any], *, wait_ms: int | None = None, webhook: str | None = None,
                policy: Policy | None = None) -> Job:
        """POST /runsync: RunPod holds the request up to wait_ms (1–300 s, default 90 s). A reply still
        IN_QUEUE / IN_PROGRESS is normal: poll it with wait()."""
        op = self._op("POST", "/runsync")
        body = submit_body(input, webhook, policy, op)
        check_size(body, RUNSYNC_LIMIT_BYTES, op, "/runsync")
        params = None
        held_ms = RUNSYNC_DEFAULT_WAIT_MS
        if wait_ms is not None:
            held_ms = clamp_wait_ms(wait_ms)
            params = {"wait": held_ms}
        timeout = self._core.timeout_with_read(held_ms / 1000 + RUNSYNC_READ_MARGIN_S)
        data = self._core.request("POST", self.base + "/runsync", operation=op, retry=Retry.SUBMIT, body=body,
                                  params=params, timeout=timeout,
                                  hints=Hints(not_found=self._endpoint_missing(), body_size=len(body),
                                              body_limit=RUNSYNC_LIMIT_BYTES, route="/runsync"))
        return submitted_job(data, op)

    def retry(self, job_id: str) -> Job:
        """Re-queue a FAILED or TIMED_OUT job under the same id."""
        path = self._job_path("retry", job_id)
        op = self._op("POST", path)
        data = self._core.request("POST", self.base + path, operation=op, retry=Retry.SUBMIT,
                                  hints=Hints(not_found=JOB_GONE))
        return submitted_job(data, op, job_id)

    # ------------------------------------------------------------------ read

    def status(self, job_id: str, *, ttl_ms: int | None = None) -> Job:
        path = self._job_path("status", job_id)
        op = self._op("GET", path)
        params = {"ttl": int(ttl_ms)} if ttl_ms is not None else None
        data = self._core.request("GET", self.base + path, operation=op, retry=Retry.IDEMPOTENT, params=params,
                                  hints=Hints(not_found=JOB_GONE))
        return Job.from_json(data, op, job_id)

    def stream(self, job_id: str) -> StreamPage:
        path = self._job_path("stream", job_id)
        op = self._op("GET", path)
        data = self._core.request("GET", self.base + path, operation=op, retry=Retry.IDEMPOTENT,
                                  hints=Hints(not_found=JOB_GONE))
        return StreamPage.from_json(data, op)

    def health(self) -> Health:
        op = self._op("GET", "/health")
        data = self._core.request("GET", self.base + "/health", operation=op, retry=Retry.IDEMPOTENT,
                                  hints=Hints(not_found=self._endpoint_missing()))
        return Health.from_json(data, op)

    # ------------------------------------------------------------------ control

    def cancel(self, job_id: str) -> Job:
        path = self._job_path("cancel", job_id)
        op = self._op("POST", path)
        data = self._core.request("POST", self.base + path, operation=op, retry=Retry.MUTATE,
                                  hints=Hints(not_found=JOB_GONE))
        return Job.from_json(data, op, job_id)

    def purge_queue(self) -> PurgeResult:
        """Drop every queued job of the endpoint (running jobs continue)."""
        op = self._op("POST", "/purge-queue")
        data = self._core.request("POST", self.base + "/purge-queue", operation=op, retry=Retry.MUTATE,
                                  hints=Hints(not_found=self._endpoint_missing()))
        return PurgeResult.from_json(data, op)

    # ------------------------------------------------------------------ waiting

    def wait(self, job_id: str, *, timeout_s: float, poll: PollPolicy = PollPolicy(),
             on_update: Callable[[Job], None] | None = None) -> Job:
        """Poll /status until the job is terminal; raises JobWaitTimeout(last_job) at the deadline."""
        return self._poll(job_id, self._core.clock() + timeout_s, timeout_s, poll, on_update, None)

    def run_and_wait(self, input: dict[str, Any], *, timeout_s: float, policy: Policy | None = None,
                     webhook: str | None = None) -> Job:
        """Short interactive work: one /runsync held up to the timeout, then polling if needed."""
        deadline = self._core.clock() + timeout_s
        job = self.runsync(input, wait_ms=clamp_wait_ms(timeout_s * 1000), webhook=webhook, policy=policy)
        if job.is_terminal:
            return job
        return self._poll(job.id, deadline, timeout_s, PollPolicy(), None, job)

    def iter_stream(self, job_id: str, *, timeout_s: float, poll: PollPolicy = PollPolicy()) -> Generator[object, None, JobStatus]:
        """Yield each streamed chunk until the job is terminal (any terminal state, CANCELLED too) and
        nothing is left to deliver; the generator's return value is the final status."""
        clock, sleep = self._core.clock, self._core.sleep
        deadline = clock() + timeout_s
        interval = poll.first_s
        while True:
            page = self.stream(job_id)
            yield from page.chunks
            terminal = page.status in TERMINAL
            if terminal and not page.chunks:
                return page.status
            remaining = deadline - clock()
            if remaining <= 0:
                last = Job.from_json({**page.raw, "id": page.id or job_id}, self._op("GET", f"/stream/{job_id}"))
                raise JobWaitTimeout(f"{self._op('GET', f'/stream/{job_id}')}: job still {page.status} after "
                                     f"{timeout_s:g} s — it keeps running on RunPod; stream again or cancel it",
                                     last)
            if terminal:
                continue  # a final page with chunks may be followed by more: fetch until one is empty
            interval = poll.next_interval(None if page.chunks else interval)
            sleep(min(interval, remaining))

    def _poll(self, job_id: str, deadline: float, timeout_s: float, poll: PollPolicy,
              on_update: Callable[[Job], None] | None, last: Job | None) -> Job:
        clock, sleep = self._core.clock, self._core.sleep
        interval = poll.first_s
        while True:
            pause = min(interval, deadline - clock())
            if pause > 0:
                sleep(pause)
            job = self.status(job_id)
            if on_update is not None and (last is None or job.raw != last.raw):
                on_update(job)
            last = job
            if job.is_terminal:
                return job
            if clock() >= deadline:
                raise JobWaitTimeout(
                    f"{self._op('GET', f'/status/{job_id}')}: job still {job.status} after {timeout_s:g} s — "
                    f"it keeps running on RunPod; keep tracking it or cancel it", job)
            interval = poll.next_interval(interval)

    def _endpoint_missing(self) -> str:
        return f"endpoint {self.endpoint_id} not found — check the endpoint id in console.toml"

