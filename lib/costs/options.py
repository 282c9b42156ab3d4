"""Serverless vs always-on workers vs a dedicated pod, the break-even volume, and scaling advice.

All three options are priced for a 730 h month from the jobs of the last 7 or 30 days:
(a) serverless as measured: the per-job costs and inferred idle time of the window scaled to a
    month, with the declared min workers billed 24/7 at the active price;
(b) active workers sized to the load: per endpoint as many always-on workers as jobs ever ran
    at once (at least one where there was traffic), 24/7 at the active price, nothing else;
(c) a dedicated pod: [prices] pod_hourly_usd x 730 h, with as many pods as the busy hours need
    (a pod's GPU is taken to be as fast as the serverless one), plus optional operator hours.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lib.config import ConsoleConfig
from lib.costs.model import (
    DAY_S,
    HOURS_PER_MONTH,
    MONTH_S,
    ensure_costed,
    peak_concurrency,
    role_table,
    window,
)

IDLE_TIMEOUT_CHOICES_S = (5, 10, 15, 30, 60, 120, 300)
WARM_TARGET = 0.8     # the share of jobs that should find a warm worker
MIN_WARM_GAIN = 0.1   # below the target, a longer timeout must warm 10 points more jobs to be worth it
MAX_IDLE_RISE = 0.5   # default cap on the extra idle spend, as a share of the endpoint's spend
OPTION_NAMES = ("Serverless (as measured)", "Active workers (always on)", "Dedicated pod")


@dataclass(frozen=True)
class OptionsComparison:
    days: int
    days_observed: float
    start: pd.Timestamp
    end: pd.Timestamp
    jobs: int
    images_per_month: float
    busy_hours_per_month: float
    serverless_monthly_usd: float
    serverless_fixed_monthly_usd: float  # the always-on (min) workers inside (a)
    cost_per_image_usd: float            # (a) without its fixed part, per image; NaN without images
    active_monthly_usd: float
    active_workers: dict[str, int]
    pod_monthly_usd: float
    pods: int
    table: pd.DataFrame = field(repr=False)  # option, monthly_usd, per_image_usd, detail

    @property
    def cheapest(self) -> str:
        return str(self.table.loc[self.table["monthly_usd"].idxmin(), "option"])


def compare_options(jobs: pd.DataFrame, config: ConsoleConfig, days: int = 30, *,
                    until: pd.Timestamp | None = None, operator_hours_per_month: float = 0.0,
                    operator_hourly_usd: float = 0.0) -> OptionsComparison:
    """Monthly cost of (a) serverless as measured, (b) sized active workers, (c) a dedicated pod."""
    costed = ensure_costed(jobs, config)
    inside, start, end, observed = window(costed, days, until)
    scale = MONTH_S / (observed * DAY_S)
    roles = list(config.endpoints)
    table = role_table(config, roles).set_index("role")
    sums = _role_sums(inside, roles)

    variable = fixed = 0.0
    for role in roles:
        flex, active, workers_min = (table.at[role, "flex"], table.at[role, "active"],
                                     int(table.at[role, "workers_min"]))
        always_on_s = workers_min * MONTH_S
        served_s = min(sums.at[role, "warm_s"] * scale, always_on_s)
        variable += (sums.at[role, "cost_usd"] + sums.at[role, "idle_usd"]) * scale - served_s * flex
        fixed += always_on_s * active
    serverless = variable + fixed
    images = float(sums["images"].sum()) * scale
    cost_per_image = variable / images if images > 0 else float("nan")

    peaks = peak_concurrency(inside)
    active_workers = {role: max(1, peaks.get(role, 0)) for role in roles if sums.at[role, "ran"] > 0}
    active_cost = sum(n * MONTH_S * table.at[role, "active"] for role, n in active_workers.items())

    busy_s = float(sums["billed_s"].sum()) * scale
    pods = max(1, math.ceil(busy_s / MONTH_S))
    pod_hourly = config.prices.pod_hourly_usd
    operator = operator_hours_per_month * operator_hourly_usd
    pod_cost = pods * pod_hourly * HOURS_PER_MONTH + operator

    def per_image(monthly_usd: float) -> float:
        return monthly_usd / images if images > 0 else float("nan")

    active_text = ", ".join(f"{n} × {table.at[r, 'label']}" for r, n in active_workers.items())
    pod_text = f"{pods} pod{'s' if pods > 1 else ''} × ${pod_hourly:.2f}/h × {HOURS_PER_MONTH} h"
    if operator:
        pod_text += f" + {operator_hours_per_month:g} operator h × ${operator_hourly_usd:,.0f}/h"
    rows = [
        (OPTION_NAMES[0], serverless, per_image(serverless),
         f"flex workers as measured over {observed:.0f} days"
         + (f", incl. ${fixed:,.0f} of always-on min workers" if fixed else "")),
        (OPTION_NAMES[1], active_cost, per_image(active_cost),
         f"always on, no cold starts: {active_text}" if active_text else "no traffic to size for"),
        (OPTION_NAMES[2], pod_cost, per_image(pod_cost), pod_text),
    ]
    return OptionsComparison(
        days=days, days_observed=observed, start=start, end=end, jobs=int(len(inside)),
        images_per_month=images, busy_hours_per_month=busy_s / 3600,
        serverless_monthly_usd=serverless, serverless_fixed_monthly_usd=fixed,
        cost_per_image_usd=cost_per_image, active_monthly_usd=active_cost,
        active_workers=active_workers, pod_monthly_usd=pod_cost, pods=pods,
        table=pd.DataFrame(rows, columns=["option", "monthly_usd", "per_image_usd", "detail"]))


def _role_sums(inside: pd.DataFrame, roles: list[str]) -> pd.DataFrame:
    """Per role: jobs that ran, their cost, inferred idle, warm and all billed seconds, images."""
    codes, uniques = pd.factorize(inside["role"])
    n = len(uniques)
    billed_s = inside["billed_s"].to_numpy(dtype="float64")
    ran = billed_s > 0
    warm = ran & ~inside["cold_start"].to_numpy(dtype=bool)

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(codes, weights=values, minlength=n)[:n]

    sums = pd.DataFrame({
        "ran": total(ran.astype("float64")), "cost_usd": total(inside["cost_usd"].to_numpy()),
        "idle_usd": total(inside["idle_before_usd"].to_numpy()),
        "warm_s": total(np.where(warm, billed_s, 0.0)), "billed_s": total(billed_s),
        "images": total(inside["images"].to_numpy(dtype="float64")),
    }, index=pd.Index([str(u) for u in uniques], name="role"))
    return sums.reindex(roles, fill_value=0.0)


@dataclass(frozen=True)
class BreakEven:
    """Where serverless (fixed + cost per image x volume) costs as much as the pod."""

    images_per_month: float | None  # None: the lines never cross at a volume >= 0
    cost_per_image_usd: float
    fixed_monthly_usd: float
    pod_monthly_usd: float
    current_images_per_month: float
    curve: pd.DataFrame = field(repr=False)  # images_per_month, serverless_usd, pod_usd

    @property
    def current_serverless_usd(self) -> float:
        return self.fixed_monthly_usd + _per_image(self.cost_per_image_usd) * self.current_images_per_month

    @property
    def summary(self) -> str:
        """One sentence for people: where the break-even is and which side of it we are."""
        now = f"{self.current_images_per_month:,.0f} images a month now"
        if self.images_per_month is None:
            if self.fixed_monthly_usd >= self.pod_monthly_usd:
                return (f"The always-on workers alone cost more than the pod "
                        f"(${self.fixed_monthly_usd:,.0f} vs ${self.pod_monthly_usd:,.0f} a month); {now}.")
            return f"No images were delivered in the window, so there is no cost per image to compare; {now}."
        side = ("serverless is cheaper" if self.current_images_per_month < self.images_per_month
                else "the pod is cheaper")
        return (f"Serverless costs as much as the pod (${self.pod_monthly_usd:,.0f}/month) at "
                f"{self.images_per_month:,.0f} images a month; at {now} {side}.")


def _per_image(cost_per_image: float) -> float:
    return cost_per_image if np.isfinite(cost_per_image) else 0.0


def break_even(cost_per_image_usd: float, pod_monthly_usd: float, *, fixed_monthly_usd: float = 0.0,
               current_images_per_month: float = 0.0, points: int = 61) -> BreakEven:
    """Images per month where fixed + cost per image x images = the pod's monthly cost.

    The curve runs from zero to half again past the larger of the break-even and today's volume.
    """
    valid = np.isfinite(cost_per_image_usd) and cost_per_image_usd > 0
    crossing = (pod_monthly_usd - fixed_monthly_usd) / cost_per_image_usd if valid else None
    if crossing is not None and crossing < 0:
        crossing = None
    top = max(current_images_per_month, crossing or 0.0) * 1.5 or 100.0
    images = np.linspace(0.0, top, max(2, points))
    curve = pd.DataFrame({
        "images_per_month": images,
        "serverless_usd": fixed_monthly_usd + (cost_per_image_usd if valid else np.nan) * images,
        "pod_usd": np.full(len(images), float(pod_monthly_usd)),
    })
    return BreakEven(images_per_month=crossing, cost_per_image_usd=float(cost_per_image_usd),
                     fixed_monthly_usd=float(fixed_monthly_usd), pod_monthly_usd=float(pod_monthly_usd),
                     current_images_per_month=float(current_images_per_month), curve=curve)


@dataclass(frozen=True)
class ScalingAdvice:
    role: str
    endpoint: str
    jobs: int
    cold_start_rate: float          # share of the jobs that waited for a worker to start
    median_cold_wait_s: float       # NaN without cold starts
    current_min_workers: int
    current_idle_timeout_s: int
    min_workers: int
    idle_timeout_s: int
    warm_share: float               # expected share of jobs finding a warm worker at idle_timeout_s
    idle_cost_change_usd: float     # monthly idle cost at idle_timeout_s minus at the current one
    reason: str

    @property
    def changes(self) -> bool:
        return (self.min_workers, self.idle_timeout_s) != (self.current_min_workers,
                                                           self.current_idle_timeout_s)


def recommend_scaling(jobs: pd.DataFrame, config: ConsoleConfig, days: int = 30, *,
                      until: pd.Timestamp | None = None,
                      max_idle_rise: float = MAX_IDLE_RISE) -> list[ScalingAdvice]:
    """Min workers and idle timeout per endpoint from the measured cold starts and arrivals.

    Idle timeout: cold starts are free since 2026-06-29 but slow, and every idle second is
    billed. Among 5 s … 300 s whose extra idle spend stays within `max_idle_rise` of what the
    endpoint costs now, the shortest after which at least 80 % of jobs would have found the
    worker of the endpoint's previous job still warm; short of that, the one warming the most
    jobs if it is at least 10 points better than today. Min workers: as many always-on workers
    as the endpoint's flex spend would pay for at the active price.
    """
    costed = ensure_costed(jobs, config)
    inside, _, _, observed = window(costed, days, until)
    scale = MONTH_S / (observed * DAY_S)
    roles = list(config.endpoints)
    table = role_table(config, roles).set_index("role")
    ran = (inside["billed_s"] > 0).to_numpy()
    codes, uniques = pd.factorize(inside["role"])
    codes = codes[ran]
    position = {str(u): i for i, u in enumerate(uniques)}
    columns = {name: inside[name].to_numpy(dtype=dtype)[ran] for name, dtype in (
        ("cold_start", bool), ("delay_ms", "float64"), ("since_prev_end_s", "float64"),
        ("cost_usd", "float64"), ("idle_before_usd", "float64"))}
    advice = []
    for role in roles:
        mine = codes == position.get(role, -1)
        advice.append(_advice(role, {k: v[mine] for k, v in columns.items()}, table.loc[role],
                              config.endpoint(role).label, days, scale, max_idle_rise))
    return advice


def _advice(role: str, ran: dict[str, np.ndarray], prices: pd.Series, label: str, days: int,
            scale: float, max_idle_rise: float) -> ScalingAdvice:
    """Advice for one endpoint from its jobs that ran (columns as arrays)."""
    current_min, current_idle = int(prices["workers_min"]), int(prices["idle_timeout_s"])
    flex, active, workers_max = prices["flex"], prices["active"], int(prices["workers_max"])
    one_worker = MONTH_S * active
    n = len(ran["cold_start"])
    if n == 0:
        reason = f"No jobs in the last {days} days"
        reason += (f"; {_workers(current_min)} cost ${current_min * one_worker:,.0f}/month for "
                   f"nothing: set min workers to 0." if current_min else ": nothing to change.")
        return ScalingAdvice(role, label, 0, 0.0, float("nan"), current_min, current_idle, 0,
                             current_idle, 0.0, 0.0, reason)

    cold = ran["cold_start"]
    cold_rate = float(cold.mean())
    wait = float(np.median(ran["delay_ms"][cold]) / 1000) if cold.any() else float("nan")
    gaps = np.sort(ran["since_prev_end_s"])  # NaN (no previous job) sorts last: never warm
    waited = np.concatenate([[0.0], np.cumsum(np.nan_to_num(gaps))])

    def warm_share(timeout: float) -> float:
        return float(np.searchsorted(gaps, timeout, side="left")) / n

    def idle_cost(timeout: float) -> float:
        # Waits shorter than the timeout are billed in full; every other job starts a worker
        # that bills one whole timeout before it stops.
        warm = int(np.searchsorted(gaps, timeout, side="left"))
        cost: float = (waited[warm] + (n - warm) * timeout) * flex * scale
        return cost

    flex_monthly = float(ran["cost_usd"].sum() + ran["idle_before_usd"].sum()) * scale
    choices = sorted({*IDLE_TIMEOUT_CHOICES_S, current_idle})
    share = {t: warm_share(t) for t in choices}
    extra = {t: idle_cost(t) - idle_cost(current_idle) for t in choices}
    affordable = [t for t in choices if extra[t] <= max_idle_rise * flex_monthly]
    on_target = [t for t in affordable if share[t] >= WARM_TARGET]
    if on_target:
        best = on_target[0]
    else:
        top = max(affordable, key=lambda t: (share[t], -t))
        best = top if share[top] >= share[current_idle] + MIN_WARM_GAIN else current_idle

    text = f"{n:,} jobs in the last {days} days; {cold_rate:.0%} waited for a cold start"
    text += f" (median {wait:.0f} s). " if cold.any() else ". "
    reaching = [t for t in choices if share[t] >= WARM_TARGET]
    if best > current_idle:
        text += (f"An idle timeout of {best} s (now {current_idle} s) would give {share[best]:.0%} of "
                 f"jobs a warm worker (now {share[current_idle]:.0%}) for about "
                 f"${extra[best]:,.2f}/month more idle time. ")
    elif best < current_idle:
        text += (f"An idle timeout of {best} s (now {current_idle} s) still gives {share[best]:.0%} of "
                 f"jobs a warm worker and saves about ${-extra[best]:,.2f}/month of idle time. ")
    elif share[current_idle] >= WARM_TARGET:
        text += (f"The idle timeout of {current_idle} s already gives {share[current_idle]:.0%} of "
                 f"jobs a warm worker. ")
    elif reaching:
        text += (f"An idle timeout of {reaching[0]} s would give {share[reaching[0]]:.0%} of jobs a "
                 f"warm worker, but its idle time would add ${extra[reaching[0]]:,.2f}/month to the "
                 f"${flex_monthly:,.2f} this endpoint costs now: keep {current_idle} s and accept "
                 f"the cold starts. ")
    else:
        text += (f"Jobs arrive too far apart for an idle timeout to keep a worker warm (even "
                 f"{choices[-1]} s would catch only {share[choices[-1]]:.0%}), so keep "
                 f"{current_idle} s. ")

    workers = min(workers_max, int(flex_monthly // one_worker))
    if workers > current_min:
        text += (f"Its work costs about ${flex_monthly:,.0f}/month on flex workers and "
                 f"{_workers(workers)} would cost ${workers * one_worker:,.0f}/month without cold "
                 f"starts: set min workers to {workers}.")
    elif workers < current_min:
        text += (f"{_workers(current_min).capitalize()} cost ${current_min * one_worker:,.0f}/month, "
                 f"while the work is worth ${flex_monthly:,.0f}/month on flex workers: lower min "
                 f"workers to {workers}.")
    elif workers:
        text += f"{_workers(workers).capitalize()} match the load: keep them."
    else:
        text += (f"One always-on worker would cost ${one_worker:,.0f}/month against "
                 f"${flex_monthly:,.2f}/month of work on flex workers, so keep min workers at 0.")
    return ScalingAdvice(role, label, n, cold_rate, wait, current_min, current_idle, workers, best,
                         share[best], float(extra[best]), text)


def _workers(n: int) -> str:
    return f"{n} always-on worker{'s' if n != 1 else ''}"
