"""Endpoint statistics from the console's job history: cold starts, queue and run percentiles, failures.

Input is the job store's frame (JobStore.jobs_frame()): columns role, endpoint_id, status,
submitted_at (datetime64[ns, UTC]), delay_ms, execution_ms, cold_start. RunPod's own console reports
delay and cold-start time as P70/P90/P98; the issue asks for p50/p90/p98, which keeps p90/p98 comparable.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, is_dataclass
from datetime import datetime

import numpy as np
import pandas as pd

# A cancelled job says nothing about the endpoint's health, so it is left out of the failure rate.
DECIDED = frozenset({"COMPLETED", "FAILED", "TIMED_OUT"})
FAILED = frozenset({"FAILED", "TIMED_OUT"})
WORKER_STATES = ("running", "idle", "initializing", "ready", "throttled", "unhealthy")
QUANTILES = (0.5, 0.9, 0.98)


@dataclass(frozen=True)
class Percentiles:
    """Seconds; None when there is no sample."""

    p50_s: float | None
    p90_s: float | None
    p98_s: float | None
    samples: int

    @classmethod
    def of_ms(cls, values: Iterable[float]) -> Percentiles:
        data = np.asarray([v for v in values if v is not None and not np.isnan(v)], dtype="float64")
        if data.size == 0:
            return cls(None, None, None, 0)
        p50, p90, p98 = (float(x) / 1000.0 for x in np.percentile(data, [q * 100 for q in QUANTILES]))
        return cls(p50, p90, p98, int(data.size))


@dataclass(frozen=True)
class EndpointStats:
    role: str | None
    jobs: int                      # submitted in the window
    started: int                   # jobs that reached a worker (have a delayTime)
    decided: int                   # COMPLETED + FAILED + TIMED_OUT
    failed: int                    # FAILED + TIMED_OUT
    cold_starts: int
    delay: Percentiles             # delayTime: queue wait, cold start included
    execution: Percentiles         # executionTime
    cold_delay: Percentiles        # delayTime of the jobs that hit a cold start

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.decided if self.decided else None

    @property
    def cold_start_share(self) -> float | None:
        return self.cold_starts / self.started if self.started else None


def select(frame: pd.DataFrame, *, role: str | None = None, endpoint_id: str | None = None,
           since: datetime | None = None, until: datetime | None = None) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    if role is not None:
        mask &= frame["role"] == role
    if endpoint_id is not None:
        mask &= frame["endpoint_id"] == endpoint_id
    if since is not None:
        mask &= frame["submitted_at"] >= pd.Timestamp(since)
    if until is not None:
        mask &= frame["submitted_at"] < pd.Timestamp(until)
    return frame[mask]


def endpoint_stats(frame: pd.DataFrame, *, role: str | None = None, endpoint_id: str | None = None,
                   since: datetime | None = None, until: datetime | None = None) -> EndpointStats:
    jobs = select(frame, role=role, endpoint_id=endpoint_id, since=since, until=until)
    started = jobs[jobs["delay_ms"].notna()]
    cold = started[started["cold_start"].astype(bool)]
    status = jobs["status"]
    return EndpointStats(
        role=role, jobs=len(jobs), started=len(started),
        decided=int(status.isin(DECIDED).sum()), failed=int(status.isin(FAILED).sum()),
        cold_starts=len(cold),
        delay=Percentiles.of_ms(started["delay_ms"]),
        execution=Percentiles.of_ms(jobs["execution_ms"].dropna()),
        cold_delay=Percentiles.of_ms(cold["delay_ms"]),
    )


def stats_by_role(frame: pd.DataFrame, roles: Iterable[str], **window) -> dict[str, EndpointStats]:
    return {role: endpoint_stats(frame, role=role, **window) for role in roles}


def _days(frame: pd.DataFrame, start: datetime | None, end: datetime | None) -> pd.DatetimeIndex:
    if start is None and len(frame):
        start = frame["submitted_at"].min()
    if end is None and len(frame):
        end = frame["submitted_at"].max()
    if start is None or end is None:
        return pd.DatetimeIndex([], dtype="datetime64[ns, UTC]", name="day")
    first = pd.Timestamp(start).tz_convert("UTC").floor("D")
    last = pd.Timestamp(end).tz_convert("UTC").floor("D")
    return pd.date_range(first, last, freq="D", name="day").astype("datetime64[ns, UTC]")


def cold_starts_per_day(frame: pd.DataFrame, *, role: str | None = None, start: datetime | None = None,
                        end: datetime | None = None) -> pd.DataFrame:
    """One row per UTC day (days without jobs included): day, jobs, started, cold_starts, share."""
    jobs = select(frame, role=role, since=start)
    if end is not None:
        jobs = jobs[jobs["submitted_at"] <= pd.Timestamp(end)]
    days = _days(jobs, start, end)
    day = jobs["submitted_at"].dt.floor("D")
    started = jobs["delay_ms"].notna()
    table = pd.DataFrame({
        "jobs": jobs.groupby(day).size(),
        "started": started.groupby(day).sum(),
        "cold_starts": (started & jobs["cold_start"].astype(bool)).groupby(day).sum(),
    }).reindex(days, fill_value=0).fillna(0).astype("int64")
    table.index.name = "day"
    table["share"] = (table["cold_starts"] / table["started"].where(table["started"] > 0)).astype("float64")
    return table.reset_index()


def percentiles_per_day(frame: pd.DataFrame, column: str = "delay_ms", *, role: str | None = None,
                        start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """day, p50_s, p90_s, p98_s, samples of delay_ms or execution_ms per UTC day (NaN when no sample)."""
    if column not in ("delay_ms", "execution_ms"):
        raise ValueError(f"percentiles are computed for delay_ms or execution_ms, not {column!r}")
    jobs = select(frame, role=role, since=start)
    if end is not None:
        jobs = jobs[jobs["submitted_at"] <= pd.Timestamp(end)]
    jobs = jobs[jobs[column].notna()]
    days = _days(jobs, start, end)
    seconds = jobs[column].astype("float64") / 1000.0
    grouped = seconds.groupby(jobs["submitted_at"].dt.floor("D"))
    table = pd.DataFrame({
        f"p{round(q * 100)}_s": grouped.quantile(q) for q in QUANTILES
    } | {"samples": grouped.size()}).reindex(days)
    table.index.name = "day"
    table["samples"] = table["samples"].fillna(0).astype("int64")
    return table.reset_index()


def worker_states(snapshot: object) -> dict[str, int]:
    """{state: count} from a /health answer (Health), a REST workers summary, or a mapping."""
    if isinstance(snapshot, Mapping):
        workers = snapshot.get("workers", snapshot)
    else:
        workers = getattr(snapshot, "workers", snapshot)
    if isinstance(workers, list):  # WorkersSummary.workers is the per-worker list; its counts sit beside it
        workers = snapshot
    if is_dataclass(workers) and not isinstance(workers, type):
        values = asdict(workers)
    elif isinstance(workers, Mapping):
        values = dict(workers)
    else:
        values = {state: getattr(workers, state, 0) for state in WORKER_STATES}
    return {state: int(values.get(state) or 0) for state in WORKER_STATES}


def worker_state_timeline(snapshots: Iterable[tuple[datetime, Mapping[str, int]]]) -> pd.DataFrame:
    """Time-indexed frame (UTC), one int column per worker state in WORKER_STATES order."""
    rows, index = [], []
    for at, states in sorted(snapshots, key=lambda s: s[0]):
        index.append(pd.Timestamp(at))
        rows.append({state: int(states.get(state, 0) or 0) for state in WORKER_STATES})
    frame = pd.DataFrame(rows, columns=list(WORKER_STATES),
                         index=pd.DatetimeIndex(index, name="time")).astype("int64")
    if len(frame):
        frame.index = frame.index.tz_convert("UTC") if frame.index.tz else frame.index.tz_localize("UTC")
    return frame
