"""Billed spend from REST v2 /billing/serverless and /billing/network-volumes, and its trend."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lib.costs.model import DAY_S, MONTH_DAYS

BUCKETS = ("hour", "day", "week")
SERVERLESS_FIELDS = ("total", "gpu", "cpu", "disk", "fee")
VOLUME_FIELDS = ("total", "standard", "high_performance")
# REST v2 record keys (reference §3.2) for records given as the API's own dicts.
_API_KEYS = {"startTime": "start", "endTime": "end", "totalAmount": "total", "gpuAmount": "gpu",
             "cpuAmount": "cpu", "diskAmount": "disk", "feeAmount": "fee",
             "serverlessId": "serverless_id", "standardAmount": "standard",
             "highPerformanceAmount": "high_performance", "networkVolumeId": "network_volume_id"}
VOLUME_LABEL = "network volume"
SPEND_COLUMNS = ("period", "endpoint", "gpu_usd", "cpu_usd", "disk_usd", "fee_usd", "volume_usd",
                 "total_usd")


def _records_frame(records: object, id_field: str, amounts: tuple[str, ...], what: str) -> pd.DataFrame:
    columns = ["start", "end", id_field, *amounts]
    if isinstance(records, pd.DataFrame):
        if list(records.columns) == columns and all(
                isinstance(records[c].dtype, pd.DatetimeTZDtype) for c in ("start", "end")):
            return records  # already normalised by an earlier call
        frame = records.rename(columns=_API_KEYS).reindex(columns=columns)
    elif records is None:
        frame = pd.DataFrame(columns=columns)
    else:
        items = getattr(records, "records", records)  # a BillingReport or a plain list
        if not isinstance(items, Iterable):
            raise TypeError(f"{what} must be a list of records or a DataFrame, not {type(records).__name__}")
        frame = pd.DataFrame([_record_dict(item, columns) for item in items], columns=columns)
    missing = frame["start"].isna() | frame["end"].isna()
    if missing.any():
        raise ValueError(f"{what} record {int(missing.to_numpy().argmax()) + 1} has no start or end "
                         f"time; RunPod's billing records always carry startTime and endTime")
    frame["start"] = pd.to_datetime(frame["start"], utc=True).dt.as_unit("ns")
    frame["end"] = pd.to_datetime(frame["end"], utc=True).dt.as_unit("ns")
    for name in amounts:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").fillna(0.0).astype("float64")
    frame[id_field] = frame[id_field].astype("object")
    return frame


def _record_dict(item: object, columns: list[str]) -> dict[str, Any]:
    if isinstance(item, Mapping):
        data = {_API_KEYS.get(k, k): v for k, v in item.items()}
        return {c: data.get(c) for c in columns}
    return {c: getattr(item, c, None) for c in columns}


def billing_frame(records: object) -> pd.DataFrame:
    """Serverless billing records (BillingRecord objects, REST v2 dicts, a BillingReport or a
    frame) as a DataFrame: start, end, serverless_id, total, gpu, cpu, disk, fee."""
    return _records_frame(records, "serverless_id", SERVERLESS_FIELDS, "serverless billing")


def volume_frame(records: object) -> pd.DataFrame:
    """Network-volume billing records as a DataFrame: start, end, network_volume_id, total,
    standard, high_performance."""
    return _records_frame(records, "network_volume_id", VOLUME_FIELDS, "network-volume billing")


def bucket_start(times: pd.Series, bucket: str) -> pd.Series:
    """The start of the hour, UTC day or ISO week (Monday) each time falls in."""
    if bucket == "hour":
        return times.dt.floor("h")
    if bucket == "day":
        return times.dt.floor("D")
    if bucket == "week":
        day = times.dt.floor("D")
        return day - pd.to_timedelta(day.dt.day_of_week, unit="D")
    raise ValueError(f"unknown bucket {bucket!r}; choose one of {', '.join(BUCKETS)}")


def spend_over_time(billing: object, bucket: str = "day", *, labels: Mapping[str, str] | None = None,
                    volume: object = None) -> pd.DataFrame:
    """Billed spend per bucket and endpoint, split into GPU, CPU, disk, fee (and network volume).

    A record is counted in the bucket its start falls in, so pass records at least as fine as
    `bucket` (hourly or daily records for a weekly view). `labels` maps endpoint ids to names;
    network-volume spend is one more "endpoint" row.
    """
    if bucket not in BUCKETS:
        raise ValueError(f"unknown bucket {bucket!r}; choose one of {', '.join(BUCKETS)}")
    bills = billing_frame(billing)
    parts = []
    if len(bills):
        ids = bills["serverless_id"].where(bills["serverless_id"].notna(), "all endpoints")
        names = ids.map(lambda i: (labels or {}).get(i, i))
        spend = pd.DataFrame({
            "period": bucket_start(bills["start"], bucket), "endpoint": names.astype("str"),
            "gpu_usd": bills["gpu"], "cpu_usd": bills["cpu"], "disk_usd": bills["disk"],
            "fee_usd": bills["fee"], "volume_usd": 0.0, "total_usd": bills["total"]})
        parts.append(spend)
    vols = volume_frame(volume)
    if len(vols):
        parts.append(pd.DataFrame({
            "period": bucket_start(vols["start"], bucket), "endpoint": VOLUME_LABEL,
            "gpu_usd": 0.0, "cpu_usd": 0.0, "disk_usd": 0.0, "fee_usd": 0.0,
            "volume_usd": vols["total"], "total_usd": vols["total"]}))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="datetime64[ns, UTC]" if c == "period" else
                                          "str" if c == "endpoint" else "float64")
                             for c in SPEND_COLUMNS})
    out = pd.concat(parts, ignore_index=True)
    out = out.groupby(["period", "endpoint"], sort=True, as_index=False).sum()
    return out[list(SPEND_COLUMNS)]


def coverage(bills: pd.DataFrame, days: pd.DatetimeIndex, until: pd.Timestamp | None = None) -> np.ndarray:
    """Seconds of each UTC day that the billing report covers: from its first start to its last
    end, or to `until` (when the report was asked for) if earlier — the current bucket's record
    ends at the bucket's end although its spend so far is only up to now."""
    if len(bills) == 0 or len(days) == 0:
        return np.zeros(len(days))
    first, last = bills["start"].min(), bills["end"].max()
    if until is not None:
        last = min(last, _timestamp(until))
    lo = np.maximum(days.asi8, first.value)
    hi = np.minimum(days.asi8 + DAY_S * 10**9, last.value)
    seconds: np.ndarray = np.clip(hi - lo, 0, None) / 1e9
    return seconds


def daily_spend(billing: object, *, volume: object = None, until: pd.Timestamp | None = None) -> pd.DataFrame:
    """Billed spend per UTC day (serverless plus network volume), with the seconds of each day
    the report covers (see `coverage`); days inside the report without records count as zero."""
    bills = billing_frame(billing)
    vols = volume_frame(volume)
    both = pd.concat([bills[["start", "end", "total"]], vols[["start", "end", "total"]]],
                     ignore_index=True)
    if len(both) == 0:
        return pd.DataFrame({"day": pd.Series(dtype="datetime64[ns, UTC]"),
                             "spend_usd": pd.Series(dtype="float64"),
                             "covered_s": pd.Series(dtype="float64")})
    spend = both.groupby(both["start"].dt.floor("D"))["total"].sum()
    days = pd.date_range(spend.index.min(), spend.index.max(), freq="D")
    spend = spend.reindex(days, fill_value=0.0)
    return pd.DataFrame({"day": days, "spend_usd": spend.to_numpy(dtype="float64"),
                         "covered_s": coverage(both, days, until)})


@dataclass(frozen=True)
class Projection:
    """Next month's spend if the daily trend of the window goes on (a straight-line fit)."""

    next_month_usd: float
    trend_usd_per_day: float  # change of the daily spend per day
    daily_rate_usd: float     # the fitted spend of the last day of the window
    history: pd.DataFrame     # day, spend_usd, rate_usd (spend scaled to a whole day), fit_usd
    forecast: pd.DataFrame    # day, spend_usd for the coming days (never below zero)
    days_used: int


def project_next_month(spend: object, *, volume: object = None,
                       until: pd.Timestamp | None = None) -> Projection:
    """Fit a line through the daily spend and sum it, clamped at zero, over the next month.

    `spend` is a daily frame (daily_spend), a Series of spend per day, or billing records (with
    `volume` records and `until`, the time the billing was read, as for daily_spend).
    Partly covered days (the first and the current one) are scaled up to a whole day before the
    fit, so that a half-billed today does not read as a fall in spend. A month is 730 h.
    """
    if isinstance(spend, pd.Series):
        index = pd.DatetimeIndex(spend.index)
        days = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
        daily = pd.DataFrame({"day": days.floor("D"), "spend_usd": spend.to_numpy(dtype="float64"),
                              "covered_s": float(DAY_S)})
    elif isinstance(spend, pd.DataFrame) and "spend_usd" in spend.columns:
        daily = spend.assign(covered_s=spend["covered_s"] if "covered_s" in spend else float(DAY_S))
    else:
        daily = daily_spend(spend, volume=volume, until=until)
    daily = daily[daily["covered_s"] > 0].reset_index(drop=True)
    history = daily[["day", "spend_usd"]].copy()
    history["rate_usd"] = daily["spend_usd"] * DAY_S / daily["covered_s"]
    n = len(history)
    if n == 0:
        empty = pd.DataFrame({"day": pd.Series(dtype="datetime64[ns, UTC]"),
                              "spend_usd": pd.Series(dtype="float64")})
        return Projection(0.0, 0.0, 0.0, history.assign(fit_usd=pd.Series(dtype="float64")), empty, 0)
    x = ((history["day"] - history["day"].iloc[0]) / pd.Timedelta(days=1)).to_numpy(dtype="float64")
    y = history["rate_usd"].to_numpy(dtype="float64")
    slope, intercept = (np.polyfit(x, y, 1) if n > 1 and np.ptp(x) > 0 else (0.0, float(y.mean())))
    history["fit_usd"] = np.clip(intercept + slope * x, 0.0, None)
    ahead = x[-1] + np.arange(1, 31)
    values = np.clip(intercept + slope * ahead, 0.0, None)
    forecast = pd.DataFrame({"day": history["day"].iloc[-1] + pd.to_timedelta(np.arange(1, 31), unit="D"),
                             "spend_usd": values})
    return Projection(next_month_usd=float(values.mean() * MONTH_DAYS),
                      trend_usd_per_day=float(slope),
                      daily_rate_usd=float(max(0.0, intercept + slope * x[-1])),
                      history=history, forecast=forecast, days_used=n)


def _timestamp(moment: object) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
