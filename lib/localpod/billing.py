"""How the simulator bills, and the REST v2 billing reports built from its hourly records.

Formula (per worker, per second it exists, fractional seconds kept):
  gpuAmount  = seconds x price of the endpoint's first GPU pool ([prices] in console.toml);
               workers kept for workers_min ("active") at the active price, others at the flex price.
  diskAmount = seconds x CONTAINER_DISK_GB x DISK_USD_PER_GB_MONTH / MONTH_S
               (container disk, $0.10/GB-month; about 0.25 % of a 24 GB GPU's price).
  cpuAmount  = 0 (GPU endpoints only).
  feeAmount  = 0: RunPod publishes no per-request or platform fee for serverless.
  totalAmount = gpu + cpu + disk + fee.
Billed seconds: idle and running. Initializing is not billed from 2026-06-29 on (RunPod's
worker-state table, reference §1.10); before that date it was, so the 30 days of seeded history
follow whichever rule held at the time. Unhealthy (crashed) workers are not billed.
Network volume: size_gb x volume_usd_per_gb_month per MONTH_S, pro rata per second.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lib.localpod.state import BillingHour

INITIALIZING_UNBILLED_FROM = datetime(2026, 6, 29, tzinfo=UTC).timestamp()
CONTAINER_DISK_GB = 20
DISK_USD_PER_GB_MONTH = 0.10
MONTH_S = 30 * 86_400
BUCKET_SIZES = ("hour", "day", "week", "month")
DIGITS = 9      # USD amounts: simulated seconds of a single worker cost fractions of a cent


def billable_intervals(created: float, ready: float | None, end: float) -> list[tuple[float, float]]:
    """The parts of a worker's life [created, end) that are billed (see module docstring)."""
    ready = end if ready is None else min(ready, end)
    spans = []
    if created < INITIALIZING_UNBILLED_FROM:
        spans.append((created, min(ready, INITIALIZING_UNBILLED_FROM)))
    spans.append((ready, end))
    return [(a, b) for a, b in spans if b > a]


def split_hours(start: float, end: float) -> Iterator[tuple[int, float]]:
    """(UTC hour start, seconds inside that hour) for the interval [start, end)."""
    t = start
    while t < end:
        hour = int(t // 3600) * 3600
        stop = min(end, hour + 3600)
        yield hour, stop - t
        t = stop


def charges(endpoint_id: str, price_per_s: float, active: bool,
            start: float, end: float) -> list[BillingHour]:
    """Hourly spend of one worker billed from start to end."""
    disk_per_s = CONTAINER_DISK_GB * DISK_USD_PER_GB_MONTH / MONTH_S
    return [BillingHour(endpoint_id, hour, 0.0 if active else secs, secs if active else 0.0,
                        secs * price_per_s, secs * disk_per_s)
            for hour, secs in split_hours(start, end)]


def merge(rows: Iterable[BillingHour]) -> list[BillingHour]:
    """Sum rows of the same endpoint and hour."""
    acc: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for r in rows:
        a = acc[(r.endpoint_id, r.hour_start)]
        a[0] += r.flex_s
        a[1] += r.active_s
        a[2] += r.gpu_usd
        a[3] += r.disk_usd
    return [BillingHour(ep, hour, *vals) for (ep, hour), vals in sorted(acc.items())]


def bucket_floor(dt: datetime, size: str) -> datetime:
    dt = dt.astimezone(UTC)
    if size == "hour":
        return dt.replace(minute=0, second=0, microsecond=0)
    day = dt.replace(hour=0, minute=0, second=0, microsecond=0)
    if size == "day":
        return day
    if size == "week":   # ISO weeks start on Monday
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def bucket_next(dt: datetime, size: str) -> datetime:
    if size == "hour":
        return dt + timedelta(hours=1)
    if size == "day":
        return dt + timedelta(days=1)
    if size == "week":
        return dt + timedelta(weeks=1)
    return (dt.replace(day=28) + timedelta(days=4)).replace(day=1)


def rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _amounts(gpu: float, disk: float) -> dict:
    gpu, disk = round(gpu, DIGITS), round(disk, DIGITS)
    return {"totalAmount": round(gpu + disk, DIGITS), "gpuAmount": gpu, "cpuAmount": 0.0,
            "diskAmount": disk, "feeAmount": 0.0}


@dataclass(frozen=True)
class Report:
    records: list[dict]
    totals: dict


def serverless_report(rows: Iterable[BillingHour], size: str) -> Report:
    """One record per endpoint per bucket that has spend, in time order."""
    acc: dict[tuple[datetime, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for r in rows:
        key = (bucket_floor(datetime.fromtimestamp(r.hour_start, UTC), size), r.endpoint_id)
        acc[key][0] += r.gpu_usd
        acc[key][1] += r.disk_usd
    records = []
    for (start, endpoint_id), (gpu, disk) in sorted(acc.items()):
        if gpu + disk <= 0:
            continue
        records.append({"startTime": rfc3339(start), "endTime": rfc3339(bucket_next(start, size)),
                        **_amounts(gpu, disk), "serverlessId": endpoint_id})
    return Report(records, _totals(records, ("totalAmount", "gpuAmount", "cpuAmount",
                                             "diskAmount", "feeAmount")))


def volume_report(volume_id: str, size_gb: int, usd_per_gb_month: float, created: datetime,
                  start: datetime, end: datetime, size: str) -> Report:
    """Network-volume storage spend per bucket from the volume's creation, pro rata per second."""
    per_s = size_gb * usd_per_gb_month / MONTH_S
    records = []
    bucket = bucket_floor(start, size)
    while bucket < end:
        nxt = bucket_next(bucket, size)
        a, b = max(bucket, start, created), min(nxt, end)
        if b > a:
            amount = round((b - a).total_seconds() * per_s, DIGITS)
            records.append({"startTime": rfc3339(bucket), "endTime": rfc3339(nxt),
                            "totalAmount": amount, "standardAmount": amount,
                            "highPerformanceAmount": 0.0, "networkVolumeId": volume_id})
        bucket = nxt
    return Report(records, _totals(records, ("totalAmount", "standardAmount",
                                             "highPerformanceAmount")))


def _totals(records: list[dict], keys: tuple[str, ...]) -> dict:
    return {k: round(sum(r[k] for r in records), DIGITS) for k in keys}
