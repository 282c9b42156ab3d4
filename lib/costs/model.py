"""The per-job cost model: what each job adds to the RunPod bill, and its roll-ups.

Billing rules (reference/runpod-api.md §5.1): a serverless worker is billed per second, rounded
up, from its start until it is fully stopped — start + execution + idle timeout — and since
2026-06-29 the "Initializing" state is not billed. So one job costs, at the flex $/s of its
endpoint's first GPU pool:

* execution: its executionTime rounded up to the whole second;
* its billed share of a cold start: a cold start means a worker was started for this job. Its
  initialization is free, but every started worker bills one idle timeout after its last job,
  when it goes idle and stops. That tail (idle_timeout_s) is charged to the job that started it.

Idle time while a warm worker waits (less than the idle timeout) for its next job is billed as
well, but it belongs to no single job: `idle_before_s` infers it per job for the reconciliation.
Jobs older than 2026-06-29 were also billed for initializing; the jobs frame carries no
initialization time, so that part of an older bill shows up as unexplained in `reconcile`.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from lib.config import ConfigError, ConsoleConfig

HOURS_PER_MONTH = 730  # the month RunPod and the pod comparison use: 730 h
MONTH_S = HOURS_PER_MONTH * 3600
DAY_S = 86_400
MONTH_DAYS = MONTH_S / DAY_S

WORKLOADS = {"image": "inference", "training": "training", "special": "special"}
COMPLETED = "COMPLETED"
NO_VALUE = "(none)"

JOB_COLUMNS = ("local_id", "role", "endpoint_id", "status", "kind", "user", "character", "group",
               "submitted_at", "delay_ms", "execution_ms", "images", "cold_start", "cost_usd",
               "simulated")
COSTED_COLUMNS = ("workload", "day", "completed", "billed_s", "exec_usd", "cold_start_usd",
                  "idle_before_s", "idle_before_usd", "since_prev_end_s")

ROLLUP_KEYS = {"endpoint": "endpoint_id", "workload": "workload", "character": "character",
               "user": "user", "day": "day", "kind": "kind", "role": "role"}

# Keys of one (group, time) pair packed into one int64 so that one sort handles every group:
# 2**41 ms is about 70 years, far more than any window of jobs.
_SPAN = np.int64(2**41)


def billed_seconds(execution_ms: np.ndarray) -> np.ndarray:
    """Execution time billed per second, rounded up; a job that never ran (NaN) bills nothing."""
    return np.ceil(np.nan_to_num(np.clip(execution_ms, 0, None), nan=0.0) / 1000.0)


def job_cost_usd(execution_ms: np.ndarray, cold_start: np.ndarray, *, idle_timeout_s: np.ndarray,
                 flex_per_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one cost formula (module docstring): (execution $, cold-start $) per job, vectorised."""
    return (billed_seconds(execution_ms) * flex_per_s,
            np.where(cold_start, idle_timeout_s * flex_per_s, 0.0))


def estimate_job_cost(config: ConsoleConfig, role: str, execution_ms: float | None, *,
                      cold_start: bool = False) -> float:
    """One job's cost in $ at its endpoint's flex price: the same formula as `job_costs`."""
    spec = config.endpoint(role)
    exec_usd, cold_usd = job_cost_usd(
        np.array([np.nan if execution_ms is None else float(execution_ms)]), np.array([cold_start]),
        idle_timeout_s=np.array([float(spec.idle_timeout_s)]),
        flex_per_s=np.array([config.price_per_second(role)]))
    return float(exec_usd[0] + cold_usd[0])


def empty_jobs() -> pd.DataFrame:
    """A jobs frame with no rows and the store's column types."""
    return pd.DataFrame({
        "local_id": pd.Series(dtype="str"), "role": pd.Series(dtype="str"),
        "endpoint_id": pd.Series(dtype="str"), "status": pd.Series(dtype="str"),
        "kind": pd.Series(dtype="str"), "user": pd.Series(dtype="str"),
        "character": pd.Series(dtype="str"), "group": pd.Series(dtype="str"),
        "submitted_at": pd.Series(dtype="datetime64[ns, UTC]"),
        "delay_ms": pd.Series(dtype="float64"), "execution_ms": pd.Series(dtype="float64"),
        "images": pd.Series(dtype="int64"), "cold_start": pd.Series(dtype="bool"),
        "cost_usd": pd.Series(dtype="float64"), "simulated": pd.Series(dtype="bool"),
    })


def _checked(jobs: pd.DataFrame) -> pd.DataFrame:
    if jobs is None or (len(jobs) == 0 and not set(JOB_COLUMNS) <= set(jobs.columns)):
        return empty_jobs()
    missing = [c for c in JOB_COLUMNS if c not in jobs.columns]
    if missing:
        raise ValueError(f"the jobs frame lacks the column(s) {', '.join(missing)}; build it with "
                         f"JobStore.jobs_frame()")
    frame = jobs.copy(deep=False)
    submitted = frame["submitted_at"]
    if not isinstance(submitted.dtype, pd.DatetimeTZDtype):
        submitted = pd.to_datetime(submitted, utc=True)
    frame["submitted_at"] = submitted.dt.tz_convert("UTC").dt.as_unit("ns")
    return frame


def _role_codes(frame: pd.DataFrame, config: ConsoleConfig) -> tuple[np.ndarray, list[str]]:
    codes, uniques = pd.factorize(frame["role"])
    if (codes < 0).any():
        raise ValueError(f"{int((codes < 0).sum())} job(s) have no role; every job belongs to "
                         f"one of the endpoints image, training or special")
    roles = [str(r) for r in uniques]
    for role in roles:
        if role not in config.endpoints:
            raise ConfigError(f"jobs ran on role {role!r} but console.toml has no "
                              f"[endpoints.{role}]; add it so their cost can be priced")
    return codes, roles


def role_table(config: ConsoleConfig, roles: list[str]) -> pd.DataFrame:
    """Per role: flex and active $/s, idle timeout and min workers, in the order of `roles`."""
    rows = []
    for role in roles:
        spec = config.endpoint(role)
        rows.append({"role": role, "flex": config.price_per_second(role),
                     "active": config.price_per_second(role, active=True),
                     "idle_timeout_s": float(spec.idle_timeout_s),
                     "workers_min": int(spec.workers_min), "workers_max": int(spec.workers_max),
                     "label": spec.label})
    return pd.DataFrame(rows, columns=["role", "flex", "active", "idle_timeout_s", "workers_min",
                                       "workers_max", "label"])


def job_costs(jobs: pd.DataFrame, config: ConsoleConfig) -> pd.DataFrame:
    """The jobs frame with each job's estimated cost (see the module docstring for the model).

    Adds: workload (inference|training|special), day (UTC), completed, billed_s (execution
    seconds rounded up), exec_usd, cold_start_usd, idle_before_s/idle_before_usd (billed idle time
    a warm worker spent waiting for this job; not part of cost_usd) and since_prev_end_s (time
    from the latest end of another job on the same endpoint to this job's start; NaN when none).
    The role becomes categorical. Replaces cost_usd (the tracker's execution-only figure) with
    exec_usd + cold_start_usd, so that every row uses one price table. A job that never ran (no
    executionTime) costs nothing unless a worker was started for it.
    """
    frame = _checked(jobs)
    codes, roles = _role_codes(frame, config)
    table = role_table(config, roles)
    flex = table["flex"].to_numpy(dtype="float64")[codes]
    idle_timeout = table["idle_timeout_s"].to_numpy(dtype="float64")[codes]

    execution_ms = frame["execution_ms"].to_numpy(dtype="float64", na_value=np.nan)
    billed_s = billed_seconds(execution_ms)
    cold = frame["cold_start"].to_numpy(dtype=bool, na_value=False)
    exec_usd, cold_usd = job_cost_usd(execution_ms, cold, idle_timeout_s=idle_timeout, flex_per_s=flex)

    since_prev, idle_before = _idle_before(frame, codes, table, execution_ms, billed_s, cold)

    frame["role"] = pd.Categorical.from_codes(codes, categories=roles)
    workloads = [WORKLOADS.get(r, r) for r in roles]
    workload_names = list(dict.fromkeys(workloads))
    workload_codes = np.array([workload_names.index(w) for w in workloads], dtype="int64")[codes]
    frame["workload"] = pd.Categorical.from_codes(workload_codes, categories=workload_names)
    frame["day"] = frame["submitted_at"].dt.floor("D")
    frame["completed"] = (frame["status"] == COMPLETED).to_numpy(dtype=bool, na_value=False)
    frame["billed_s"] = billed_s.astype("int64")
    frame["exec_usd"] = exec_usd
    frame["cold_start_usd"] = cold_usd
    frame["cost_usd"] = exec_usd + cold_usd
    frame["idle_before_s"] = idle_before
    frame["idle_before_usd"] = idle_before * flex
    frame["since_prev_end_s"] = since_prev
    images = frame["images"]
    if images.dtype.kind not in "iu":
        frame["images"] = pd.to_numeric(images, errors="coerce").fillna(0).astype("int64")
    return frame


def _idle_before(frame: pd.DataFrame, codes: np.ndarray, table: pd.DataFrame,
                 execution_ms: np.ndarray, billed_s: np.ndarray,
                 cold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per job: seconds since the endpoint's previous job ended, and the billed idle before it.

    A warm (not cold-started) job whose worker had been idle for less than the idle timeout means
    that wait was billed. With worker ids (the store keeps RunPod's workerId) "its worker" is
    exact; without them it is "the endpoint", which over-counts under concurrency. On endpoints
    with min workers the wait is part of the always-on bill instead.
    """
    n = len(frame)
    since = np.full(n, np.nan)
    idle = np.zeros(n)
    delay = frame["delay_ms"].to_numpy(dtype="float64", na_value=np.nan)
    ran = (billed_s > 0) & np.isfinite(delay)
    if not ran.any():
        return since, idle
    start_ms, end_ms = _run_times(frame, ran, delay, execution_ms)
    role_codes = codes[ran].astype("int64")
    endpoint_gap = _since_previous_end(role_codes, start_ms, end_ms)
    since[ran] = endpoint_gap
    workers = _worker_groups(frame, ran)
    worker_gap = (endpoint_gap if workers is None else
                  np.where(workers >= 0, _since_previous_on_worker(workers, start_ms, end_ms),
                           endpoint_gap))
    timeout = table["idle_timeout_s"].to_numpy(dtype="float64")[role_codes]
    flex_only = table["workers_min"].to_numpy(dtype="int64")[role_codes] == 0
    billed = ~cold[ran] & flex_only & (worker_gap >= 0) & (worker_gap < timeout)
    idle[ran] = np.where(billed, worker_gap, 0.0)
    return since, idle


def _since_previous_end(group: np.ndarray, start_ms: np.ndarray, end_ms: np.ndarray) -> np.ndarray:
    """Seconds from the latest end in the same group up to each start (NaN when there is none)."""
    origin = start_ms.min()
    start_key = group * _SPAN + (start_ms - origin)
    ends = np.sort(group * _SPAN + (end_ms - origin))
    order = np.argsort(start_key)  # sorted queries make searchsorted about ten times faster
    idx = np.empty_like(order)
    idx[order] = np.searchsorted(ends, start_key[order], side="right") - 1
    prev_end = ends[np.clip(idx, 0, None)]
    same = (idx >= 0) & (prev_end >= group * _SPAN)
    return np.where(same, (start_key - prev_end) / 1000.0, np.nan)


def _since_previous_on_worker(workers: np.ndarray, start_ms: np.ndarray,
                              end_ms: np.ndarray) -> np.ndarray:
    """Seconds from the end of the same worker's previous job to each start (NaN for its first).

    A worker runs its jobs one after the other, so its previous job is simply the one before in
    start order; negative when a worker ran jobs concurrently.
    """
    order = np.argsort(workers * _SPAN + (start_ms - start_ms.min()))
    sorted_workers = workers[order]
    gap = np.full(len(order), np.nan)
    same = sorted_workers[1:] == sorted_workers[:-1]
    gap[order[1:]] = np.where(same, (start_ms[order[1:]] - end_ms[order[:-1]]) / 1000.0, np.nan)
    return gap


def _worker_groups(frame: pd.DataFrame, ran: np.ndarray) -> np.ndarray | None:
    """A number per worker id for the jobs that ran (-1 where unknown); None without worker ids."""
    if "worker_id" not in frame.columns:
        return None
    workers = pd.factorize(frame["worker_id"])[0][ran].astype("int64")
    return workers if (workers >= 0).any() else None


def _run_times(frame: pd.DataFrame, ran: np.ndarray, delay_ms: np.ndarray,
               execution_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """When each job that ran started and ended on its worker, in ms since the epoch."""
    submitted = frame["submitted_at"].array.asi8  # ns since the epoch (UTC)
    start_ms = (submitted[ran] // 1_000_000 + np.round(delay_ms[ran])).astype("int64")
    return start_ms, start_ms + np.round(execution_ms[ran]).astype("int64")


def ensure_costed(jobs: pd.DataFrame, config: ConsoleConfig) -> pd.DataFrame:
    """`jobs` as job_costs returns it, computing the costs only when they are not there yet."""
    if jobs is not None and set(COSTED_COLUMNS) <= set(jobs.columns):
        return jobs
    return job_costs(jobs, config)


def endpoint_labels(config: ConsoleConfig) -> dict[str, str]:
    """Endpoint id -> the name people know it by (console.toml's name, else the id)."""
    return {spec.id: spec.label for spec in config.endpoints.values() if spec.id}


def rollup(costed: pd.DataFrame, by: str, *, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Jobs, images, billed execution seconds and cost per endpoint/workload/character/user/day/kind.

    cost_per_image_usd divides everything the group's jobs cost — failed ones included, since
    they were billed on the way to the images — by the images they delivered (NaN without images).
    With by="endpoint", `labels` (endpoint_labels(config)) adds the endpoint's name.
    """
    if by not in ROLLUP_KEYS:
        raise ValueError(f"cannot roll costs up by {by!r}; choose one of {', '.join(ROLLUP_KEYS)}")
    key = ROLLUP_KEYS[by]
    columns = [by, "jobs", "completed", "images", "billed_s", "cost_usd", "cost_per_image_usd", "share"]
    if by == "endpoint":
        columns.insert(1, "endpoint_id")
    if len(costed) == 0:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
    # factorize + bincount: several times faster than groupby on a million string keys
    codes, uniques = pd.factorize(costed[key], sort=True, use_na_sentinel=False)
    n = len(uniques)

    def total(column: str) -> np.ndarray:
        return np.bincount(codes, weights=costed[column].to_numpy(dtype="float64"), minlength=n)

    out = pd.DataFrame({
        key: uniques, "jobs": np.bincount(codes, minlength=n),
        "completed": total("completed").astype("int64"), "images": total("images").astype("int64"),
        "billed_s": total("billed_s").astype("int64"), "cost_usd": total("cost_usd")})
    if by == "day":
        out = out.rename(columns={key: by})
    else:
        names = pd.Series(uniques, dtype="object")
        names = names.where(names.notna(), NO_VALUE).astype("str")
        out[key] = names
        if by == "endpoint":
            out.insert(0, "endpoint", names.map(lambda i: (labels or {}).get(i, i)))
    images = out["images"].to_numpy(dtype="float64")
    cost = out["cost_usd"].to_numpy(dtype="float64")
    out["cost_per_image_usd"] = np.divide(cost, images, out=np.full(len(out), np.nan),
                                          where=images > 0)
    total = cost.sum()
    out["share"] = cost / total if total > 0 else 0.0
    return out[columns]


def cost_per_image(costed: pd.DataFrame) -> float:
    """Everything the jobs cost divided by the images they delivered; NaN without images."""
    images = float(costed["images"].sum()) if len(costed) else 0.0
    return float(costed["cost_usd"].sum()) / images if images > 0 else float("nan")


def window(costed: pd.DataFrame, days: int,
           until: pd.Timestamp | None = None) -> tuple[pd.DataFrame, pd.Timestamp, pd.Timestamp, float]:
    """The jobs of the `days` days up to `until` (default: the latest job), and the days observed.

    The days observed are fewer than `days` when the history starts inside the window (a new
    deployment): monthly figures scale what was measured over the days there was history,
    counted from the first job and at least one day.
    """
    if days <= 0:
        raise ValueError(f"the comparison window must be at least one day, not {days}")
    if until is None:
        until = costed["submitted_at"].max() if len(costed) else pd.Timestamp.now(tz="UTC")
    until = pd.Timestamp(until)
    until = until.tz_localize("UTC") if until.tzinfo is None else until.tz_convert("UTC")
    start = until - pd.Timedelta(days=days)
    submitted = costed["submitted_at"]
    mask = ((submitted >= start) & (submitted <= until)).to_numpy()
    inside = costed if mask.all() else costed[mask]
    if len(costed):
        history_s = (until - submitted.min()).total_seconds()
        observed = min(float(days), max(1.0, history_s / DAY_S))
    else:
        observed = float(days)
    return inside, start, until, observed


def peak_concurrency(costed: pd.DataFrame) -> dict[str, int]:
    """Per role, the most jobs that ran at the same time (back-to-back jobs do not overlap)."""
    if len(costed) == 0:
        return {}
    codes, roles = pd.factorize(costed["role"])
    delay = costed["delay_ms"].to_numpy(dtype="float64", na_value=np.nan)
    execution = costed["execution_ms"].to_numpy(dtype="float64", na_value=np.nan)
    ran = (costed["billed_s"].to_numpy() > 0) & np.isfinite(delay)
    peaks = {str(r): 0 for r in roles}
    if not ran.any():
        return peaks
    start_ms, end_ms = _run_times(costed, ran, delay, execution)
    origin = start_ms.min()
    group = codes[ran].astype("int64") * _SPAN
    # One sort over every role: the lowest bit marks starts, so at equal times ends come first.
    keys = np.sort(np.concatenate([(group + (end_ms - origin)) * 2,
                                   (group + (start_ms - origin)) * 2 + 1]))
    running = np.cumsum(np.where(keys & 1, 1, -1))
    event_group = keys // (2 * _SPAN)
    bounds = np.flatnonzero(np.r_[True, event_group[1:] != event_group[:-1]])
    for first, peak in zip(bounds, np.maximum.reduceat(running, bounds)):
        peaks[str(roles[event_group[first]])] = int(peak)
    return peaks
