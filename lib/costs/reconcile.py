"""Per day: what the per-job estimates add up to beside what RunPod billed, and why they differ."""
from __future__ import annotations

import numpy as np
import pandas as pd

from lib.config import ConsoleConfig
from lib.costs.billing import billing_frame, coverage
from lib.costs.model import ensure_costed, role_table

RECONCILE_COLUMNS = ("day", "billed_usd", "estimate_usd", "gap_usd", "completed_usd", "failed_usd",
                     "cold_starts_usd", "idle_timeouts_usd", "min_workers_usd", "disk_fees_usd",
                     "unexplained_usd")
# The parts that add up to billed_usd, in the order a chart stacks them.
PARTS = ("completed_usd", "failed_usd", "cold_starts_usd", "idle_timeouts_usd", "min_workers_usd",
         "disk_fees_usd", "unexplained_usd")


def reconcile(jobs: pd.DataFrame, billing: object, config: ConsoleConfig, *,
              until: pd.Timestamp | None = None) -> pd.DataFrame:
    """One row per UTC day of the billing report: billed spend beside the per-job estimates.

    estimate_usd = completed_usd + failed_usd + cold_starts_usd — the per-job estimates: the
                   execution of the jobs that completed and of those that failed, and the idle
                   tails their cold starts cost (see lib.costs.model);
    billed_usd   = estimate_usd + idle_timeouts_usd + min_workers_usd + disk_fees_usd
                   + unexplained_usd;
    gap_usd      = billed_usd - estimate_usd, explained by
    * idle_timeouts_usd: warm workers idling (under the idle timeout) until their next job;
    * min_workers_usd: always-on workers billed 24/7 at the active price, less the flex-priced
      estimates of the warm jobs they served (negative when they were busier than the active
      discount: the discount saved money against the estimates);
    * disk_fees_usd: container disk, CPU and fee amounts as billed;
    * unexplained_usd: the rest (e.g. rounding per worker lifetime instead of per job, workers
      RunPod started that ran no job, or initialization billed before 2026-06-29).
    Jobs count on the day they were submitted, spend on the day its record starts. `billing` must
    be hourly or daily records for every endpoint the jobs ran on; `until` (when it was read)
    keeps the always-on workers of the current, unfinished day from counting a whole day.
    """
    costed = ensure_costed(jobs, config)
    bills = billing_frame(billing)
    if len(bills) == 0:
        return pd.DataFrame({c: pd.Series(dtype="datetime64[ns, UTC]" if c == "day" else "float64")
                             for c in RECONCILE_COLUMNS})
    bill_day = bills["start"].dt.floor("D")
    too_long = bill_day != (bills["end"] - pd.Timedelta(1, "ns")).dt.floor("D")
    if too_long.any():
        first = bills[too_long].iloc[0]
        raise ValueError(f"reconcile needs hourly or daily billing records, but one runs from "
                         f"{first['start']:%Y-%m-%d %H:%M} to {first['end']:%Y-%m-%d %H:%M}; ask "
                         f"/billing/serverless for bucketSize hour or day")
    days = pd.date_range(bill_day.min(), bill_day.max(), freq="D")
    n_days = len(days)
    covered = coverage(bills, days, until)

    def by_day(day_index: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.bincount(day_index, weights=values, minlength=n_days)[:n_days]

    bill_index = ((bill_day - days[0]) // pd.Timedelta(days=1)).to_numpy(dtype="int64")
    billed = by_day(bill_index, bills["total"].to_numpy())
    disk_fees = by_day(bill_index, (bills["disk"] + bills["cpu"] + bills["fee"]).to_numpy())

    inside = costed[(costed["day"] >= days[0]) & (costed["day"] <= days[-1])]
    job_index = ((inside["day"] - days[0]) // pd.Timedelta(days=1)).to_numpy(dtype="int64")
    exec_usd = inside["exec_usd"].to_numpy()
    completed = inside["completed"].to_numpy(dtype=bool)
    completed_usd = by_day(job_index, np.where(completed, exec_usd, 0.0))
    failed_usd = by_day(job_index, np.where(completed, 0.0, exec_usd))
    cold_usd = by_day(job_index, inside["cold_start_usd"].to_numpy())
    idle_usd = by_day(job_index, inside["idle_before_usd"].to_numpy())
    min_usd = _min_workers(inside, job_index, covered, config)

    estimate = completed_usd + failed_usd + cold_usd
    gap = billed - estimate
    return pd.DataFrame({
        "day": days, "billed_usd": billed, "estimate_usd": estimate, "gap_usd": gap,
        "completed_usd": completed_usd, "failed_usd": failed_usd, "cold_starts_usd": cold_usd,
        "idle_timeouts_usd": idle_usd, "min_workers_usd": min_usd, "disk_fees_usd": disk_fees,
        "unexplained_usd": gap - idle_usd - min_usd - disk_fees,
    })


def _min_workers(inside: pd.DataFrame, job_index: np.ndarray, covered: np.ndarray,
                 config: ConsoleConfig) -> np.ndarray:
    """Per day: what always-on workers were billed beyond the estimates of the warm jobs they ran."""
    total = np.zeros(len(covered))
    roles = [r for r, spec in config.endpoints.items() if spec.id and spec.workers_min > 0]
    if not roles:
        return total
    table = role_table(config, roles).set_index("role")
    codes, uniques = pd.factorize(inside["role"])
    present = {str(r): i for i, r in enumerate(uniques)}
    warm = (inside["billed_s"].to_numpy() > 0) & ~inside["cold_start"].to_numpy(dtype=bool)
    billed_s = inside["billed_s"].to_numpy(dtype="float64")
    for name in roles:
        mine = warm & (codes == present.get(name, -2))
        warm_s = np.bincount(job_index[mine], weights=billed_s[mine], minlength=len(covered))
        capacity_s = table.at[name, "workers_min"] * covered
        served_s = np.minimum(warm_s[:len(covered)], capacity_s)
        total += capacity_s * table.at[name, "active"] - served_s * table.at[name, "flex"]
    return total
