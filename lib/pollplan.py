"""Where the tracker's /status requests go when one console follows many jobs.

RunPod allows 2,000 /status requests per 10 s per endpoint and user (reference §1.7; more only
with many running workers, by an unpublished factor, so the base figure is the safe one). A batch
of 2,000 queued jobs, each polled on its own backoff, asks for several times that. Most of those
polls are wasted: a job far back in the queue cannot change for a long while, while the running
jobs and the few next in line change any moment. So each endpoint gets one budget below the limit,
handed out in queue order: running jobs first, then queued jobs oldest first. The reference does
not say RunPod's queue is first-in first-out (could not confirm), so the order is only a
priority: a tenth of the budget goes to the polls that have waited longest, so every job is still
looked at now and then, wherever it really is in RunPod's queue.

The plan also says when to look next: a job that has just started is next looked at shortly
before the time jobs doing the same work (kind and model) usually take on this endpoint (not on a
backoff from zero), and the jobs at the front of the queue — as many as are running — are looked at
more often than the rest.
"""
from __future__ import annotations

import bisect
import statistics
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lib.jobstate import JobState
from lib.runpod import PollPolicy

STATUS_LIMIT_PER_10S = 2000   # reference §1.7, per endpoint
BUDGET_SHARE = 0.8            # the rest is headroom for other tools using the same key
STARVING_SHARE = 0.1          # of the budget: for the polls that waited longest
STARVING_AFTER_S = 20.0       # a poll overdue this long may take the starving share
BURST_S = 0.6                 # a bucket holds this many seconds of its rate
RECENT_RUNS = 20              # execution times kept per endpoint and work
EXPECTED_END_SHARE = 0.9      # a started job is looked at after this share of the usual run time
PREDICTED_WAIT_CAP = 4        # ... but only when that wait is at most this many poll caps


@dataclass(frozen=True)
class Lane:
    """A followed job's place: its endpoint and its order in the endpoint's queue (submission time);
    and what it does (e.g. its kind and model), which jobs it takes about as long as."""

    endpoint: str
    order: float
    work: str = ""


@dataclass
class _Bucket:
    rate: float
    capacity: float
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def next_token_at(self, now: float) -> float:
        return now + max(0.0, 1.0 - self.tokens) / self.rate


@dataclass
class _Endpoint:
    main: _Bucket
    starving: _Bucket
    queued: list[tuple[float, str]] = field(default_factory=list)  # sorted by order
    running: set[str] = field(default_factory=set)


class PollPlan:
    def __init__(self, clock: Callable[[], float], *, limit_per_10s: int = STATUS_LIMIT_PER_10S,
                 share: float = BUDGET_SHARE):
        self._clock = clock
        # Bucket capacity + 10 s of refill stays within share × limit in any 10 s window.
        total_rate = share * limit_per_10s / (10.0 + BURST_S)
        self._rates = ((1 - STARVING_SHARE) * total_rate, STARVING_SHARE * total_rate)
        self._endpoints: dict[str, _Endpoint] = {}
        self._lanes: dict[str, Lane] = {}
        self._runs: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    # ---- what the tracker learns -----------------------------------------------------------
    def follow(self, local_id: str, lane: Lane) -> None:
        with self._lock:
            self._lanes[local_id] = lane

    def observe(self, local_id: str, status: str, execution_ms: int | None = None) -> None:
        """A poll's answer: the job's place in the queue, and its run time once it is over."""
        with self._lock:
            lane = self._lanes.get(local_id)
            if lane is None:
                return
            place = self._endpoint(lane.endpoint)
            self._leave(place, local_id, lane)
            if status == JobState.IN_PROGRESS:
                place.running.add(local_id)
            elif status == JobState.IN_QUEUE:
                bisect.insort(place.queued, (lane.order, local_id))
            elif execution_ms is not None and status == JobState.COMPLETED:
                runs = self._runs.setdefault((lane.endpoint, lane.work), deque(maxlen=RECENT_RUNS))
                runs.append(execution_ms / 1000.0)

    def forget(self, local_id: str) -> None:
        with self._lock:
            lane = self._lanes.pop(local_id, None)
            if lane is not None and lane.endpoint in self._endpoints:
                self._leave(self._endpoints[lane.endpoint], local_id, lane)

    def rate_limited(self, local_id: str) -> None:
        """RunPod said 429 (something else spends this endpoint's limit too): the endpoint's budget
        starts again from empty. The job itself waits its Retry-After; the others are not held for
        it, so one long Retry-After never stalls every job (issue 13)."""
        with self._lock:
            lane = self._lanes.get(local_id)
            if lane is not None:
                place = self._endpoint(lane.endpoint)
                place.main.tokens = place.starving.tokens = 0.0

    # ---- when to look next -----------------------------------------------------------------
    def next_poll(self, local_id: str, *, was: str, now_status: str, interval: float | None,
                  policy: PollPolicy, running_for_s: float | None = None) -> tuple[float, float]:
        """(delay, interval) before the next look at a job that is not over."""
        backoff = policy.next_interval(interval)
        with self._lock:
            lane = self._lanes.get(local_id)
            if lane is None:
                return backoff, backoff
            place = self._endpoint(lane.endpoint)
            if now_status == JobState.IN_PROGRESS:
                if was == JobState.IN_PROGRESS:
                    return backoff, backoff
                # Just started: restart the backoff, after waiting most of the usual run time.
                first = policy.first_s
                usual = self._usual_run_s(lane)
                if usual is None:
                    return first, first
                wait = EXPECTED_END_SHARE * usual - (running_for_s or 0.0)
                if wait > PREDICTED_WAIT_CAP * policy.cap_s:
                    return first, first
                # By then it is due to end any moment: if it still runs, the look after comes `first` later
                # (the interval returned is the one the backoff grows from).
                return max(first, wait), first / policy.factor
            if now_status == JobState.IN_QUEUE:
                rank = bisect.bisect_left(place.queued, (lane.order, local_id))
                if rank < max(1, len(place.running)):  # next in line: starts when a running job ends
                    front = max(policy.first_s, policy.cap_s / 3)
                    backoff = min(backoff, front)
            return backoff, backoff

    def _usual_run_s(self, lane: Lane) -> float | None:
        runs = self._runs.get((lane.endpoint, lane.work))
        return statistics.median(runs) if runs else None

    # ---- the budget --------------------------------------------------------------------------
    def grant(self, due: Iterable[tuple[str, float]]) -> tuple[list[str], float | None]:
        """Of the polls whose time has come (local id, due at), those the budget allows now, in
        queue order; and when the next refused one may go (None: none refused)."""
        now = self._clock()
        granted: list[str] = []
        by_endpoint: dict[str, list[tuple[str, float, Lane]]] = {}
        with self._lock:
            for local_id, due_at in due:
                lane = self._lanes.get(local_id)
                if lane is None:
                    granted.append(local_id)
                else:
                    by_endpoint.setdefault(lane.endpoint, []).append((local_id, due_at, lane))
            wake: float | None = None
            for endpoint, waiting in by_endpoint.items():
                place = self._endpoint(endpoint)
                held = self._spend(place, waiting, now, granted)
                if held:
                    starving_at = min(due_at for _, due_at, _ in held) + STARVING_AFTER_S
                    at = min(place.main.next_token_at(now), max(place.starving.next_token_at(now), starving_at))
                    wake = at if wake is None else min(wake, at)
        return granted, wake

    def _spend(self, place: _Endpoint, waiting: list[tuple[str, float, Lane]], now: float,
               granted: list[str]) -> list[tuple[str, float, Lane]]:
        """Grant what the endpoint's buckets allow; returns the polls held back."""
        for bucket in (place.main, place.starving):
            bucket.refill(now)
        waiting.sort(key=lambda w: (w[0] not in place.running, w[2].order))
        take = min(len(waiting), int(place.main.tokens))
        place.main.tokens -= take
        granted.extend(w[0] for w in waiting[:take])
        rest = sorted((w for w in waiting[take:] if now - w[1] >= STARVING_AFTER_S), key=lambda w: w[1])
        starved = min(len(rest), int(place.starving.tokens))
        place.starving.tokens -= starved
        granted.extend(w[0] for w in rest[:starved])
        starved_ids = {w[0] for w in rest[:starved]}
        return [w for w in waiting[take:] if w[0] not in starved_ids]

    def _endpoint(self, endpoint: str) -> _Endpoint:
        place = self._endpoints.get(endpoint)
        if place is None:
            now = self._clock()
            main_rate, starving_rate = self._rates
            place = self._endpoints[endpoint] = _Endpoint(
                _Bucket(main_rate, main_rate * BURST_S, main_rate * BURST_S, now),
                _Bucket(starving_rate, max(1.0, starving_rate * BURST_S), max(1.0, starving_rate * BURST_S), now))
        return place

    @staticmethod
    def _leave(place: _Endpoint, local_id: str, lane: Lane) -> None:
        place.running.discard(local_id)
        index = bisect.bisect_left(place.queued, (lane.order, local_id))
        if index < len(place.queued) and place.queued[index] == (lane.order, local_id):
            del place.queued[index]
