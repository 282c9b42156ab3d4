"""Everything the Costs page shows, computed in one call from jobs, billing and the config."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from lib.config import ConsoleConfig
from lib.costs.billing import Projection, billing_frame, project_next_month, spend_over_time
from lib.costs.model import cost_per_image, endpoint_labels, job_costs, rollup
from lib.costs.options import (
    BreakEven,
    OptionsComparison,
    ScalingAdvice,
    break_even,
    compare_options,
    recommend_scaling,
)
from lib.costs.reconcile import reconcile
from lib.runpod.errors import RunPodError

if TYPE_CHECKING:
    from lib.services import Services


@dataclass(frozen=True)
class CostAnalysis:
    spend: pd.DataFrame            # spend_over_time: period, endpoint, gpu/cpu/disk/fee/volume/total
    by_endpoint: pd.DataFrame      # rollups of the per-job estimates in the range
    by_workload: pd.DataFrame
    by_character: pd.DataFrame
    by_user: pd.DataFrame
    by_day: pd.DataFrame
    reconciliation: pd.DataFrame
    options: OptionsComparison
    break_even: BreakEven
    projection: Projection
    advice: list[ScalingAdvice]
    billed_usd: float              # serverless spend billed in the range (network volume apart)
    volume_usd: float
    estimated_usd: float           # the per-job estimates of the jobs in the range
    images: int
    estimated_cost_per_image_usd: float  # per-job estimates / images (NaN without images)
    billed_cost_per_image_usd: float     # everything billed for serverless / images
    jobs: pd.DataFrame = field(repr=False)  # the costed jobs in the range (for CSV export)


def analyse(jobs: pd.DataFrame, billing: object, config: ConsoleConfig, *, bucket: str = "day",
            days: int = 30, volume: object = None, start: pd.Timestamp | None = None,
            end: pd.Timestamp | None = None, operator_hours_per_month: float = 0.0,
            operator_hourly_usd: float = 0.0) -> CostAnalysis:
    """Costs, roll-ups, reconciliation, options, break-even, projection and advice in one pass.

    `jobs` should reach back `days` days before `end` for the options and advice; the roll-ups
    and the headline figures cover only the jobs submitted in [start, end). `billing` should be
    hourly or daily records of the same range (they are re-bucketed to `bucket`).
    """
    costed = job_costs(jobs, config)
    submitted = costed["submitted_at"]
    in_range = pd.Series(True, index=costed.index)
    if start is not None:
        in_range &= submitted >= pd.Timestamp(start)
    if end is not None:
        in_range &= submitted < pd.Timestamp(end)
    ranged = costed if in_range.all() else costed[in_range.to_numpy()]

    labels = endpoint_labels(config)
    bills = billing_frame(billing)
    spend = spend_over_time(bills, bucket, labels=labels, volume=volume)
    options = compare_options(costed, config, days, until=end,
                              operator_hours_per_month=operator_hours_per_month,
                              operator_hourly_usd=operator_hourly_usd)
    images = int(ranged["images"].sum())
    billed = float(bills["total"].sum())
    return CostAnalysis(
        spend=spend,
        by_endpoint=rollup(ranged, "endpoint", labels=labels),
        by_workload=rollup(ranged, "workload"),
        by_character=rollup(ranged, "character"),
        by_user=rollup(ranged, "user"),
        by_day=rollup(ranged, "day"),
        reconciliation=reconcile(ranged, bills, config, until=end),
        options=options,
        break_even=break_even(options.cost_per_image_usd, options.pod_monthly_usd,
                              fixed_monthly_usd=options.serverless_fixed_monthly_usd,
                              current_images_per_month=options.images_per_month),
        projection=project_next_month(bills, volume=volume, until=end),
        advice=recommend_scaling(costed, config, days, until=end),
        billed_usd=billed,
        volume_usd=float(spend["volume_usd"].sum()),
        estimated_usd=float(ranged["cost_usd"].sum()),
        images=images,
        estimated_cost_per_image_usd=cost_per_image(ranged),
        billed_cost_per_image_usd=billed / images if images else float("nan"),
        jobs=ranged,
    )


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """A frame as UTF-8 CSV for a download button (no index; times in UTC ISO form)."""
    # Amounts to a millionth of a dollar: float sums like 11.279969999999993 are noise, not precision.
    numbers = frame.select_dtypes("number").columns
    data: bytes = frame.round({column: 6 for column in numbers}).to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%SZ").encode("utf-8")
    return data


def usd(amount: float, decimals: int = 2) -> str:
    """$1,234.50 / -$0.20 (the sign before the dollar), or "–" when there is no number."""
    if not np.isfinite(amount):
        return "–"
    text = f"${abs(amount):,.{decimals}f}"
    return f"-{text}" if amount < 0 and text.strip("$0.,") else text


@dataclass(frozen=True)
class Metric:
    label: str
    value: str
    help: str
    delta: str | None = None
    delta_color: Literal["normal", "inverse", "off"] = "normal"  # "inverse": a fall shows green (cheaper)


@dataclass(frozen=True)
class CostReport:
    """The Costs page's content for one date range: the analysis plus what it was made from."""

    analysis: CostAnalysis
    start: datetime
    end: datetime
    bucket: str
    days: int
    simulated: bool
    notes: tuple[str, ...] = ()  # what could not be included, in plain words

    @property
    def headline(self) -> list[Metric]:
        a, options = self.analysis, self.analysis.options
        projection = a.projection
        serverless, pod = options.serverless_monthly_usd, options.pod_monthly_usd
        return [
            Metric("Spend in range", usd(a.billed_usd + a.volume_usd),
                   f"Billed by RunPod: serverless {usd(a.billed_usd)}, network volume {usd(a.volume_usd)}."),
            Metric("Cost per image", usd(a.billed_cost_per_image_usd, 4),
                   f"Billed serverless spend / {a.images:,} images delivered in the range (per-job "
                   f"estimates: {usd(a.estimated_cost_per_image_usd, 4)})."
                   if a.images else "No images were delivered in this range."),
            Metric("Projected next month", usd(projection.next_month_usd, 0),
                   f"Straight-line trend of the daily spend over {projection.days_used} days "
                   f"({usd(projection.trend_usd_per_day)} per day each day), never below zero."),
            Metric("Serverless per month", usd(serverless, 0),
                   f"Serverless as measured over the last {self.days} days, against a dedicated pod "
                   f"at {usd(pod, 0)} a month ({options.table['detail'].iloc[2]}).",
                   delta=f"{usd(serverless - pod, 0)} vs pod", delta_color="inverse"),
        ]

    @property
    def reconciliation_summary(self) -> str:
        recon = self.analysis.reconciliation
        if recon.empty:
            return "RunPod billed nothing in this range, so there is nothing to reconcile."
        total = recon.drop(columns="day").sum()
        share = total["estimate_usd"] / total["billed_usd"] if total["billed_usd"] else float("nan")
        days = f"{len(recon)} day{'s' if len(recon) != 1 else ''}"
        return (f"Over {days} RunPod billed {usd(total['billed_usd'])}; the per-job "
                f"estimates add up to {usd(total['estimate_usd'])} ({share:.0%}). The gap of "
                f"{usd(total['gap_usd'])} is idle time between jobs {usd(total['idle_timeouts_usd'])}, "
                f"always-on workers {usd(total['min_workers_usd'])}, disk & fees "
                f"{usd(total['disk_fees_usd'])} and {usd(total['unexplained_usd'])} unexplained. "
                f"This is serverless only: Spend in range above also counts the network volume "
                f"({usd(self.analysis.volume_usd)}).")

    def downloads(self) -> dict[str, tuple[str, Callable[[], bytes]]]:
        """Label -> (file name, a function making its CSV) for each table of the report; the CSV
        is only built when someone downloads it (the per-job table can be large)."""
        a = self.analysis
        stamp = f"{self.start:%Y%m%d}-{self.end:%Y%m%d}"
        tables = {
            "Spend over time": ("spend", a.spend), "Reconciliation": ("reconciliation", a.reconciliation),
            "Cost by endpoint": ("by-endpoint", a.by_endpoint), "Cost by workload": ("by-workload", a.by_workload),
            "Cost by character": ("by-character", a.by_character), "Cost by user": ("by-user", a.by_user),
            "Options": ("options", a.options.table),
            "Per-job costs": ("jobs", a.jobs[[c for c in JOB_EXPORT_COLUMNS if c in a.jobs.columns]]),
        }
        return {label: (f"costs-{name}-{stamp}.csv", partial(to_csv_bytes, frame))
                for label, (name, frame) in tables.items()}


JOB_EXPORT_COLUMNS = ("local_id", "submitted_at", "role", "workload", "endpoint_id", "kind", "status",
                      "user", "character", "delay_ms", "execution_ms", "billed_s", "cold_start",
                      "images", "exec_usd", "cold_start_usd", "cost_usd", "idle_before_s")


def build_report(svc: Services, start: datetime, end: datetime, bucket: str = "day", *, days: int = 30,
                 operator_hours_per_month: float = 0.0, operator_hourly_usd: float = 0.0) -> CostReport:
    """Read jobs from the store and billing from RunPod (REST v2) for [start, end), then analyse.

    Billing is fetched hourly for an hourly view and daily otherwise (the weekly view is built
    from the daily records, which the reconciliation needs anyway). The jobs go back `days` days
    before `end` for the serverless-vs-pod comparison. Network-volume spend that cannot be read
    (e.g. a key without billing access) is left out with a note; serverless billing errors raise.
    """
    start, end = _utc(start), _utc(end)
    if end <= start:
        raise ValueError("the date range must end after it starts")
    fetch = "hour" if bucket == "hour" else "day"
    jobs = svc.store.jobs_frame(since=min(start, end - timedelta(days=days)), until=end)
    billing = svc.client.rest.billing_serverless(start=start, end=end, bucket_size=fetch)
    notes = []
    try:
        volume = svc.client.rest.billing_network_volumes(start=start, end=end, bucket_size=fetch)
    except RunPodError as exc:
        volume = None
        notes.append(f"Network-volume spend is not included: {exc}")
    analysis = analyse(jobs, billing, svc.config, bucket=bucket, days=days, volume=volume,
                       start=pd.Timestamp(start), end=pd.Timestamp(end),
                       operator_hours_per_month=operator_hours_per_month,
                       operator_hourly_usd=operator_hourly_usd)
    return CostReport(analysis=analysis, start=start, end=end, bucket=bucket, days=days,
                      simulated=bool(svc.simulated), notes=tuple(notes))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
