"""The cost model, roll-ups, reconciliation, options, break-even, advice and projection on
hand-computed cases (ADA_24 at 0.00031 $/s flex, 0.00021 $/s active; AMPERE_80 at 0.00076)."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from lib.config import ConfigError, ConsoleConfig
from lib.costs import (
    analyse,
    billing_frame,
    break_even,
    compare_options,
    cost_per_image,
    daily_spend,
    job_costs,
    peak_concurrency,
    project_next_month,
    recommend_scaling,
    reconcile,
    rollup,
    spend_over_time,
    to_csv_bytes,
)
from lib.costs.model import MONTH_S, estimate_job_cost
from lib.costs.report import CostReport, usd
from lib.runpod.models import BillingRecord, VolumeBillingRecord

FLEX, ACTIVE, A100 = 0.00031, 0.00021, 0.00076
DAY0 = pd.Timestamp("2026-11-02", tz="UTC")  # a Monday
IDS = itertools.count(1)


def make_config(image_min: int = 0, idle: int = 5, image_max: int = 3) -> ConsoleConfig:
    return ConsoleConfig.parse(f"""
[volume]
id = "vol-1"
[endpoints.image]
id = "ep-image"
name = "console-image"
gpu_pools = ["ADA_24"]
workers_min = {image_min}
workers_max = {image_max}
idle_timeout_s = {idle}
[endpoints.training]
id = "ep-training"
gpu_pools = ["AMPERE_80"]
idle_timeout_s = 5
[endpoints.special]
id = "ep-special"
gpu_pools = ["ADA_24"]
idle_timeout_s = 5
[prices]
pod_hourly_usd = 0.69
[prices.flex_per_s]
ADA_24 = 0.00031
AMPERE_80 = 0.00076
[prices.active_per_s]
ADA_24 = 0.00021
AMPERE_80 = 0.00060
""")


def job(at_s: float, execution_ms: float | None, *, role: str = "image", delay_ms: float = 100.0,
        cold: bool = False, status: str = "COMPLETED", images: int = 1, user: str = "ann",
        character: str | None = "ava", kind: str = "flux", worker: str | None = None) -> dict:
    return {"local_id": f"j{next(IDS)}", "role": role, "endpoint_id": f"ep-{role}", "status": status,
            "kind": kind, "user": user, "character": character, "group": None,
            "submitted_at": DAY0 + pd.Timedelta(seconds=at_s), "delay_ms": delay_ms,
            "execution_ms": execution_ms, "images": images, "cold_start": cold,
            "cost_usd": np.nan, "simulated": False, "worker_id": worker}


def frame(*rows: dict) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    df["submitted_at"] = df["submitted_at"].astype("datetime64[ns, UTC]")
    df["execution_ms"] = df["execution_ms"].astype("float64")
    return df


def record(start: pd.Timestamp, hours: float, total: float, *, endpoint: str = "ep-image",
           disk: float = 0.0) -> BillingRecord:
    return BillingRecord(start=start.to_pydatetime(), end=(start + pd.Timedelta(hours=hours)).to_pydatetime(),
                         total=total, gpu=total - disk, disk=disk, serverless_id=endpoint)


# ---------------------------------------------------------------- job_costs

def test_three_jobs_of_known_seconds_at_the_4090_price():
    costed = job_costs(frame(job(0, 2000), job(100, 2500), job(200, 10_001)), make_config())
    assert costed["billed_s"].tolist() == [2, 3, 11]
    assert costed["exec_usd"].tolist() == pytest.approx([2 * FLEX, 3 * FLEX, 11 * FLEX])
    assert costed["cost_usd"].sum() == pytest.approx(16 * FLEX)
    assert costed["workload"].astype(str).tolist() == ["inference"] * 3


def test_a_cold_start_costs_the_idle_timeout_its_worker_bills_before_stopping():
    costed = job_costs(frame(job(0, 4000, cold=True, delay_ms=60_000)), make_config(idle=30))
    # initializing is not billed since 2026-06-29: the 60 s delay costs nothing, the 30 s tail does
    assert costed["cold_start_usd"].iloc[0] == pytest.approx(30 * FLEX)
    assert costed["cost_usd"].iloc[0] == pytest.approx(34 * FLEX)


def test_each_role_is_priced_at_its_endpoints_first_pool():
    costed = job_costs(frame(job(0, 60_000, role="training", images=0)), make_config())
    assert costed["cost_usd"].iloc[0] == pytest.approx(60 * A100)
    assert costed["workload"].iloc[0] == "training"


def test_jobs_without_execution_time_cost_nothing_unless_a_worker_started():
    costed = job_costs(frame(job(0, None, status="CANCELLED", images=0),
                             job(10, None, status="FAILED", cold=True, images=0)), make_config())
    assert costed["billed_s"].tolist() == [0, 0]
    assert costed["cost_usd"].tolist() == pytest.approx([0.0, 5 * FLEX])


@pytest.mark.parametrize(("role", "execution_ms", "cold"),
                         [("image", 2500, False), ("image", 4000, True), ("training", 60_000, False),
                          ("image", None, True), ("image", None, False)])
def test_one_job_estimate_is_the_frame_formula(role, execution_ms, cold):
    config = make_config(idle=30)
    costed = job_costs(frame(job(0, execution_ms, role=role, cold=cold)), config)
    assert estimate_job_cost(config, role, execution_ms, cold_start=cold) == pytest.approx(
        costed["cost_usd"].iloc[0])


def test_tracker_costs_are_replaced_by_the_model():
    jobs = frame(job(0, 1000, cold=True))
    jobs["cost_usd"] = 99.0
    assert job_costs(jobs, make_config())["cost_usd"].iloc[0] == pytest.approx(6 * FLEX)


def test_empty_and_malformed_frames():
    empty = job_costs(pd.DataFrame(), make_config())
    assert len(empty) == 0 and {"cost_usd", "billed_s", "workload", "day"} <= set(empty.columns)
    with pytest.raises(ValueError, match="lacks the column"):
        job_costs(pd.DataFrame({"role": ["image"]}), make_config())
    with pytest.raises(ConfigError, match=r"\[endpoints.video\]"):
        job_costs(frame(job(0, 1000, role="video")), make_config())


def test_billed_idle_between_jobs_on_the_same_worker():
    # w1: 0-10 s, then a warm job 3 s after it ended; w2: 5-11 s. Worker ids make the wait 3 s
    # on w1 (not 2 s, which is the wait since w2's end, the endpoint's latest).
    jobs = frame(job(0, 10_000, delay_ms=0, cold=True, worker="w1"),
                 job(5, 6_000, delay_ms=0, cold=True, worker="w2"),
                 job(13, 2_000, delay_ms=0, worker="w1"))
    costed = job_costs(jobs, make_config())
    assert costed["idle_before_s"].tolist() == pytest.approx([0, 0, 3])
    assert costed["idle_before_usd"].iloc[2] == pytest.approx(3 * FLEX)
    assert costed["since_prev_end_s"].iloc[2] == pytest.approx(2)
    assert costed["cost_usd"].iloc[2] == pytest.approx(2 * FLEX)  # the wait is not the job's cost


def test_idle_without_worker_ids_uses_the_endpoint_and_stops_at_the_idle_timeout():
    jobs = frame(job(0, 10_000, delay_ms=0, cold=True), job(12, 1_000, delay_ms=0),
                 job(30, 1_000, delay_ms=0))
    costed = job_costs(jobs.drop(columns="worker_id"), make_config(idle=5))
    # 2 s wait (billed); 17 s is beyond the 5 s idle timeout: the worker had stopped
    assert costed["idle_before_s"].tolist() == pytest.approx([0, 2, 0])
    assert costed["since_prev_end_s"].tolist()[1:] == pytest.approx([2, 17])


def test_min_worker_endpoints_put_waits_in_the_always_on_bill():
    jobs = frame(job(0, 10_000, delay_ms=0), job(12, 1_000, delay_ms=0))
    assert job_costs(jobs, make_config(image_min=1))["idle_before_s"].tolist() == [0, 0]


def test_peak_concurrency_does_not_count_back_to_back_jobs():
    jobs = frame(job(0, 10_000, delay_ms=0), job(10, 5_000, delay_ms=0),
                 job(12, 5_000, delay_ms=0), job(13, 1_000, delay_ms=0),
                 job(0, 5_000, delay_ms=0, role="training", images=0))
    assert peak_concurrency(job_costs(jobs, make_config())) == {"image": 3, "training": 1}


# ---------------------------------------------------------------- roll-ups

def test_rollups_per_workload_character_user_endpoint_and_day():
    config = make_config()
    costed = job_costs(frame(
        job(0, 2000, images=2, character="ava", user="ann"),
        job(90_000, 4000, images=0, status="FAILED", character=None, user="bob"),
        job(100, 10_000, role="training", images=0, kind="lora", user="ann"),
        job(200, 3000, role="special", images=1, kind="faceswap", user="bob")), config)
    by_workload = rollup(costed, "workload").set_index("workload")
    assert by_workload.loc["inference", "cost_usd"] == pytest.approx(6 * FLEX)
    assert by_workload.loc["inference", "cost_per_image_usd"] == pytest.approx(3 * FLEX)
    assert np.isnan(by_workload.loc["training", "cost_per_image_usd"])
    assert by_workload["share"].sum() == pytest.approx(1.0)
    assert by_workload.loc["inference", ["jobs", "completed", "images"]].tolist() == [2, 1, 2]

    by_character = rollup(costed, "character").set_index("character")
    assert by_character.loc["(none)", "cost_usd"] == pytest.approx(4 * FLEX)

    by_user = rollup(costed, "user").set_index("user")
    assert by_user.loc["bob", "cost_usd"] == pytest.approx(7 * FLEX)

    by_endpoint = rollup(costed, "endpoint", labels={"ep-image": "console-image"})
    assert by_endpoint["endpoint"].tolist() == ["console-image", "ep-special", "ep-training"]

    by_day = rollup(costed, "day")
    assert by_day["day"].tolist() == [DAY0, DAY0 + pd.Timedelta(days=1)]
    assert by_day["jobs"].tolist() == [3, 1]

    assert cost_per_image(costed) == pytest.approx((9 * FLEX + 10 * A100) / 3)
    with pytest.raises(ValueError, match="roll costs up"):
        rollup(costed, "colour")


def test_rollups_and_cost_per_image_of_nothing():
    costed = job_costs(pd.DataFrame(), make_config())
    assert rollup(costed, "user").empty
    assert np.isnan(cost_per_image(costed))
    no_images = job_costs(frame(job(0, 1000, images=0)), make_config())
    assert np.isnan(cost_per_image(no_images))


# ---------------------------------------------------------------- billing and spend

def test_spend_over_time_buckets_labels_and_volume():
    bills = [record(DAY0 + pd.Timedelta(hours=h), 1, 1.0, disk=0.1) for h in range(48)]
    bills += [record(DAY0, 24, 5.0, endpoint="ep-training")]
    volume = [VolumeBillingRecord(start=DAY0.to_pydatetime(), end=(DAY0 + pd.Timedelta(days=1)).to_pydatetime(),
                                  total=0.5, standard=0.5, network_volume_id="vol-1")]
    daily = spend_over_time(bills, "day", labels={"ep-image": "console-image"}, volume=volume)
    image = daily[daily["endpoint"] == "console-image"]
    assert image["total_usd"].tolist() == pytest.approx([24.0, 24.0])
    assert image["disk_usd"].tolist() == pytest.approx([2.4, 2.4])
    assert daily[daily["endpoint"] == "network volume"]["volume_usd"].tolist() == [0.5]
    assert set(daily["endpoint"]) == {"console-image", "ep-training", "network volume"}

    weekly = spend_over_time(bills, "week")
    assert weekly["period"].unique().tolist() == [DAY0]  # both days are in the week of Monday 2 Nov
    assert weekly["total_usd"].sum() == pytest.approx(53.0)
    assert len(spend_over_time(bills, "hour")) == 49
    with pytest.raises(ValueError, match="unknown bucket"):
        spend_over_time(bills, "month")


def test_billing_accepts_rest_dicts_and_rejects_records_without_times():
    api = [{"startTime": "2026-11-02T00:00:00Z", "endTime": "2026-11-02T01:00:00Z",
            "totalAmount": 1.5, "gpuAmount": 1.4, "diskAmount": 0.1, "serverlessId": "ep-image"}]
    bills = billing_frame(api)
    assert bills.loc[0, ["total", "gpu", "cpu", "disk", "fee"]].tolist() == [1.5, 1.4, 0.0, 0.1, 0.0]
    assert bills.loc[0, "start"] == DAY0
    assert billing_frame(bills) is bills
    with pytest.raises(ValueError, match="record 1 has no start"):
        billing_frame([{"totalAmount": 1.0}])
    empty = spend_over_time([], "day")
    assert empty.empty and "total_usd" in empty.columns


def test_daily_spend_fills_quiet_days_and_knows_partial_days():
    bills = [record(DAY0 + pd.Timedelta(hours=12), 12, 6.0),
             record(DAY0 + pd.Timedelta(days=2), 6, 3.0)]
    daily = daily_spend(bills)
    assert daily["spend_usd"].tolist() == [6.0, 0.0, 3.0]
    assert daily["covered_s"].tolist() == [43_200, 86_400, 21_600]


# ---------------------------------------------------------------- reconciliation

def test_a_min_worker_idle_for_a_whole_day_is_billed_at_the_active_price():
    bill = [record(DAY0, 24, 86_400 * ACTIVE)]
    recon = reconcile(job_costs(pd.DataFrame(), make_config(image_min=1)), bill, make_config(image_min=1))
    row = recon.iloc[0]
    assert row["billed_usd"] == pytest.approx(18.144)
    assert row["estimate_usd"] == 0
    assert row["min_workers_usd"] == pytest.approx(18.144)
    assert row["unexplained_usd"] == pytest.approx(0, abs=1e-9)


def test_a_busy_min_worker_day_reconciles_to_the_active_bill():
    # 10 warm jobs of 60 s on the always-on worker: billed 24 h x active, estimated at flex
    config = make_config(image_min=1)
    jobs = frame(*[job(3600 * i, 60_000) for i in range(10)])
    recon = reconcile(jobs, [record(DAY0, 24, 86_400 * ACTIVE)], config)
    row = recon.iloc[0]
    assert row["estimate_usd"] == pytest.approx(600 * FLEX)
    assert row["min_workers_usd"] == pytest.approx(86_400 * ACTIVE - 600 * FLEX)
    assert row["unexplained_usd"] == pytest.approx(0, abs=1e-9)


def test_a_flex_day_splits_the_bill_into_jobs_cold_starts_idle_failures_and_disk():
    # one worker: cold start, 10 s job, waits 3 s, 4 s job, waits 1 s, a 2 s job that fails,
    # then idles 5 s (the idle timeout) and stops: 10 + 3 + 4 + 1 + 2 + 5 = 25 billed seconds
    jobs = frame(job(0, 10_000, delay_ms=30_000, cold=True, worker="w1"),
                 job(43, 4_000, delay_ms=0, worker="w1"),
                 job(48, 2_000, delay_ms=0, status="FAILED", images=0, worker="w1"))
    bill = [record(DAY0, 1, 25 * FLEX + 0.001, disk=0.001)]
    row = reconcile(jobs, bill, make_config()).iloc[0]
    assert row["completed_usd"] == pytest.approx(14 * FLEX)
    assert row["failed_usd"] == pytest.approx(2 * FLEX)
    assert row["cold_starts_usd"] == pytest.approx(5 * FLEX)
    assert row["estimate_usd"] == pytest.approx(21 * FLEX)
    assert row["idle_timeouts_usd"] == pytest.approx(4 * FLEX)
    assert row["disk_fees_usd"] == pytest.approx(0.001)
    assert row["gap_usd"] == pytest.approx(4 * FLEX + 0.001)
    assert row["unexplained_usd"] == pytest.approx(0, abs=1e-12)


def test_reconcile_sums_hourly_records_per_day_and_keeps_quiet_days():
    config = make_config()
    jobs = frame(job(0, 1000), job(86_400 * 5, 1000))  # the second job is outside the billing
    bills = [record(DAY0, 1, 0.5), record(DAY0 + pd.Timedelta(hours=5), 1, 0.25),
             record(DAY0 + pd.Timedelta(days=2), 1, 1.0)]
    recon = reconcile(jobs, bills, config)
    assert recon["day"].tolist() == [DAY0 + pd.Timedelta(days=d) for d in range(3)]
    assert recon["billed_usd"].tolist() == pytest.approx([0.75, 0.0, 1.0])
    assert recon["estimate_usd"].tolist() == pytest.approx([FLEX, 0.0, 0.0])
    parts = recon[["completed_usd", "failed_usd", "cold_starts_usd", "idle_timeouts_usd",
                   "min_workers_usd", "disk_fees_usd", "unexplained_usd"]].sum(axis=1)
    assert parts.tolist() == pytest.approx(recon["billed_usd"].tolist())


def test_reconcile_needs_hourly_or_daily_records():
    assert reconcile(frame(job(0, 1000)), [], make_config()).empty
    with pytest.raises(ValueError, match="hourly or daily"):
        reconcile(frame(job(0, 1000)), [record(DAY0, 24 * 7, 10.0)], make_config())


# ---------------------------------------------------------------- options and break-even

def steady_month(n: int = 300, *, days: int = 30) -> pd.DataFrame:
    """n warm 10 s jobs of 2 images spread evenly over `days` days, each on its own worker."""
    step = days * 86_400 / n
    return frame(*[job(step * i, 10_000, images=2, worker=f"w{i}") for i in range(n)])


def test_compare_options_on_known_numbers():
    jobs = steady_month()
    until = DAY0 + pd.Timedelta(days=30)  # the first job is exactly 30 days before
    options = compare_options(jobs, make_config(), 30, until=until, operator_hours_per_month=2,
                              operator_hourly_usd=50)
    scale = MONTH_S / (30 * 86_400)
    assert options.days_observed == 30
    assert options.serverless_monthly_usd == pytest.approx(3000 * FLEX * scale)
    assert options.images_per_month == pytest.approx(600 * scale)
    assert options.cost_per_image_usd == pytest.approx(5 * FLEX)
    assert options.active_workers == {"image": 1}
    assert options.active_monthly_usd == pytest.approx(MONTH_S * ACTIVE)  # 551.88
    assert options.pods == 1
    assert options.pod_monthly_usd == pytest.approx(0.69 * 730 + 100)
    assert options.cheapest == "Serverless (as measured)"
    assert options.table["monthly_usd"].tolist() == pytest.approx(
        [options.serverless_monthly_usd, options.active_monthly_usd, options.pod_monthly_usd])


def test_compare_options_counts_declared_min_workers_as_fixed_cost():
    jobs = steady_month()
    options = compare_options(jobs, make_config(image_min=1), 30, until=DAY0 + pd.Timedelta(days=30))
    scale = MONTH_S / (30 * 86_400)
    assert options.serverless_fixed_monthly_usd == pytest.approx(MONTH_S * ACTIVE)
    # the warm jobs ran on the always-on worker: their flex estimate is not paid on top
    assert options.serverless_monthly_usd == pytest.approx(MONTH_S * ACTIVE)
    assert options.cost_per_image_usd == pytest.approx(0.0)
    assert options.images_per_month == pytest.approx(600 * scale)


def test_compare_options_scales_a_short_history_and_handles_no_jobs():
    jobs = steady_month(30, days=3)
    options = compare_options(jobs, make_config(), 30, until=DAY0 + pd.Timedelta(days=3))
    assert options.days_observed == pytest.approx(3)
    assert options.images_per_month == pytest.approx(60 * MONTH_S / (3 * 86_400))
    nothing = compare_options(pd.DataFrame(), make_config(), 7)
    assert nothing.jobs == 0 and nothing.serverless_monthly_usd == 0
    assert np.isnan(nothing.cost_per_image_usd)
    assert nothing.pod_monthly_usd == pytest.approx(503.7)
    with pytest.raises(ValueError, match="at least one day"):
        compare_options(jobs, make_config(), 0)


def test_break_even_with_known_numbers():
    be = break_even(0.01, 503.7, current_images_per_month=20_000)
    assert be.images_per_month == pytest.approx(50_370)
    assert be.current_serverless_usd == pytest.approx(200)
    assert "50,370 images a month" in be.summary and "serverless is cheaper" in be.summary
    assert be.curve["images_per_month"].iloc[-1] == pytest.approx(50_370 * 1.5)
    assert be.curve["serverless_usd"].iloc[0] == 0 and (be.curve["pod_usd"] == 503.7).all()

    with_fixed = break_even(0.01, 503.7, fixed_monthly_usd=100, current_images_per_month=60_000)
    assert with_fixed.images_per_month == pytest.approx(40_370)
    assert "the pod is cheaper" in with_fixed.summary
    assert with_fixed.curve["images_per_month"].iloc[-1] == pytest.approx(90_000)


def test_break_even_without_a_crossing():
    always_on = break_even(0.01, 500, fixed_monthly_usd=600)
    assert always_on.images_per_month is None and "alone cost more" in always_on.summary
    no_images = break_even(float("nan"), 500)
    assert no_images.images_per_month is None and "no cost per image" in no_images.summary
    assert no_images.curve["serverless_usd"].isna().all()


# ---------------------------------------------------------------- scaling advice

def test_recommend_a_longer_idle_timeout_when_jobs_arrive_just_after_it():
    # a 10 s job every 20 s: each arrives 10 s after the previous ended, beyond the 5 s timeout
    jobs = frame(*[job(20 * i, 10_000, delay_ms=0, cold=True) for i in range(100)])
    advice = {a.role: a for a in recommend_scaling(jobs, make_config(idle=5), 30)}
    image = advice["image"]
    assert image.cold_start_rate == 1.0
    assert image.idle_timeout_s == 15 and image.current_idle_timeout_s == 5
    assert image.warm_share == pytest.approx(0.99)
    # idle cost: at 5 s every job starts a worker billing 5 s; at 15 s 99 waits of 10 s + 1 tail
    scale = MONTH_S / 86_400
    assert image.idle_cost_change_usd == pytest.approx((99 * 10 + 15 - 100 * 5) * FLEX * scale)
    assert image.min_workers == 0 and image.changes
    assert "15 s (now 5 s)" in image.reason and "keep min workers at 0" in image.reason
    assert advice["training"].jobs == 0 and "No jobs" in advice["training"].reason


def test_recommend_no_longer_idle_timeout_when_it_costs_more_than_allowed():
    jobs = frame(*[job(20 * i, 10_000, delay_ms=0, cold=True) for i in range(100)])
    # +505 s of idle against 1,500 s of spend now is a 34 % rise: over a 10 % cap
    image = recommend_scaling(jobs, make_config(idle=5), 30, max_idle_rise=0.1)[0]
    assert image.idle_timeout_s == 5 and image.idle_cost_change_usd == 0
    assert "15 s would give 99% of jobs a warm worker, but" in image.reason
    assert "accept the cold starts" in image.reason


def test_recommend_a_shorter_idle_timeout_that_keeps_workers_warm():
    # a 10 s job every 12 s: 2 s waits, so 5 s does as well as the current 300 s, for less
    jobs = frame(*[job(12 * i, 10_000, delay_ms=0, cold=i == 0) for i in range(50)])
    image = recommend_scaling(jobs, make_config(idle=300), 30)[0]
    assert image.idle_timeout_s == 5 and image.warm_share == pytest.approx(49 / 50)
    assert image.idle_cost_change_usd == pytest.approx((5 - 300) * FLEX * MONTH_S / 86_400)
    assert "still gives 98%" in image.reason and "saves about" in image.reason


def test_recommend_an_always_on_worker_for_a_saturated_endpoint():
    # back-to-back one-hour jobs for 30 days: flex spend beats one worker at the active price
    jobs = frame(*[job(3600 * i, 3_600_000, delay_ms=0, worker="w1") for i in range(720)])
    image = recommend_scaling(jobs, make_config(), 30)[0]
    assert image.min_workers == 1
    assert "set min workers to 1" in image.reason


def test_recommend_dropping_min_workers_without_traffic():
    advice = recommend_scaling(frame(job(0, 1000, role="special")), make_config(image_min=2), 7)
    image = next(a for a in advice if a.role == "image")
    assert image.min_workers == 0 and "set min workers to 0" in image.reason
    assert "$1,104/month" in image.reason  # 2 x 730 h x 3600 s x 0.00021


# ---------------------------------------------------------------- projection

def test_projection_continues_a_straight_line():
    days = pd.date_range(DAY0, periods=10, freq="D")
    proj = project_next_month(pd.Series(np.arange(10, 20, dtype=float), index=days))
    assert proj.trend_usd_per_day == pytest.approx(1.0)
    assert proj.forecast["spend_usd"].tolist() == pytest.approx(list(range(20, 50)))
    assert proj.next_month_usd == pytest.approx(34.5 * 730 / 24)
    assert proj.days_used == 10


def test_projection_never_goes_below_zero_and_handles_one_or_no_day():
    days = pd.date_range(DAY0, periods=5, freq="D")
    falling = project_next_month(pd.Series([40.0, 30, 20, 10, 0], index=days))
    assert (falling.forecast["spend_usd"] == 0).all() and falling.next_month_usd == 0
    one = project_next_month(pd.Series([12.0], index=days[:1]))
    assert one.next_month_usd == pytest.approx(12 * 730 / 24) and one.trend_usd_per_day == 0
    none = project_next_month([])
    assert none.next_month_usd == 0 and none.forecast.empty


def test_projection_from_billing_scales_a_partly_billed_day():
    bills = [record(DAY0 + pd.Timedelta(days=d), 24, 24.0) for d in range(3)]
    bills.append(record(DAY0 + pd.Timedelta(days=3), 6, 6.0))  # today, 6 h so far
    proj = project_next_month(bills)
    assert proj.history["rate_usd"].tolist() == pytest.approx([24.0] * 4)
    assert proj.next_month_usd == pytest.approx(24 * 730 / 24)


# ---------------------------------------------------------------- report and CSV

def test_analyse_puts_it_together_and_exports_csv():
    config = make_config()
    jobs = frame(job(0, 2000, images=2, cold=True), job(3600, 3000, images=1),
                 job(7200, 60_000, role="training", images=0, kind="lora"))
    bills = [record(DAY0, 1, 0.01), record(DAY0 + pd.Timedelta(hours=2), 1, 0.05, endpoint="ep-training")]
    result = analyse(jobs, bills, config, bucket="day", days=7)
    assert result.billed_usd == pytest.approx(0.06)
    assert result.images == 3
    assert result.estimated_usd == pytest.approx((10 * FLEX) + 60 * A100)
    assert result.estimated_cost_per_image_usd == pytest.approx(result.estimated_usd / 3)
    assert result.billed_cost_per_image_usd == pytest.approx(0.02)
    assert result.reconciliation["billed_usd"].sum() == pytest.approx(0.06)
    assert {a.role for a in result.advice} == {"image", "training", "special"}
    assert result.spend["endpoint"].tolist() == ["console-image", "ep-training"]

    csv = to_csv_bytes(result.by_workload).decode("utf-8").splitlines()
    assert csv[0] == "workload,jobs,completed,images,billed_s,cost_usd,cost_per_image_usd,share"
    assert csv[1].startswith("inference,2,2,3,5,")
    day_csv = to_csv_bytes(result.reconciliation).decode("utf-8")
    noisy = pd.DataFrame({"cost_usd": [0.1 + 0.2, 11.279969999999993]})
    assert to_csv_bytes(noisy).decode("utf-8").splitlines()[1:] == ["0.3", "11.27997"]
    assert "2026-11-02T00:00:00Z" in day_csv


def test_analyse_limits_rollups_to_the_range_but_not_the_options_window():
    config = make_config()
    jobs = frame(job(0, 2000), job(86_400 * 3, 2000))
    start = DAY0 + pd.Timedelta(days=2)
    result = analyse(jobs, [], config, days=30, start=start, end=start + pd.Timedelta(days=2))
    assert result.by_day["jobs"].tolist() == [1]
    assert result.options.jobs == 2
    assert result.reconciliation.empty and result.billed_usd == 0
    assert result.images == 1 and result.billed_cost_per_image_usd == 0


def test_billing_from_datetimes_of_any_timezone():
    cet = timezone(timedelta(hours=1))
    rec = BillingRecord(start=datetime(2026, 11, 2, 1, tzinfo=cet), end=datetime(2026, 11, 2, 2, tzinfo=cet),
                        total=1.0, gpu=1.0, serverless_id="ep-image")
    assert billing_frame([rec]).loc[0, "start"] == DAY0


def test_the_current_unfinished_day_counts_only_up_to_when_the_bill_was_read():
    # a daily record of today ends at midnight, but at 06:00 only 6 h of it are billed so far
    config = make_config(image_min=1)
    bill = [record(DAY0, 24, 6 * 3600 * ACTIVE)]
    row = reconcile(pd.DataFrame(), bill, config, until=DAY0 + pd.Timedelta(hours=6)).iloc[0]
    assert row["min_workers_usd"] == pytest.approx(6 * 3600 * ACTIVE)
    assert row["unexplained_usd"] == pytest.approx(0, abs=1e-9)
    days = [record(DAY0 + pd.Timedelta(days=d), 24, 24.0) for d in range(2)]
    days.append(record(DAY0 + pd.Timedelta(days=2), 24, 6.0))
    proj = project_next_month(days, until=DAY0 + pd.Timedelta(days=2, hours=6))
    assert proj.history["rate_usd"].tolist() == pytest.approx([24.0, 24.0, 24.0])


def test_report_headline_and_reconciliation_summary_in_words():
    config = make_config()
    jobs = frame(job(0, 2000, images=2, cold=True), job(3600, 3000, images=2))
    bills = [record(DAY0, 1, 0.01)]
    volume = [VolumeBillingRecord(start=DAY0.to_pydatetime(), end=(DAY0 + pd.Timedelta(days=1)).to_pydatetime(),
                                  total=0.5, network_volume_id="vol-1")]
    analysis = analyse(jobs, bills, config, days=7, volume=volume)
    report = CostReport(analysis, DAY0.to_pydatetime(), (DAY0 + pd.Timedelta(days=1)).to_pydatetime(),
                        "day", 7, simulated=False)
    spend, per_image, projected, serverless = report.headline
    assert (spend.label, spend.value) == ("Spend in range", "$0.51")
    assert per_image.value == "$0.0025" and "4 images" in per_image.help
    assert projected.value == usd(analysis.projection.next_month_usd, 0)
    assert serverless.delta == f"{usd(analysis.options.serverless_monthly_usd - 503.7, 0)} vs pod"
    assert serverless.delta.startswith("-$") and serverless.delta_color == "inverse"
    summary = report.reconciliation_summary
    assert summary.startswith("Over 1 day RunPod billed $0.01; the per-job estimates add up to $0.00")
    assert "unexplained" in summary
    assert summary.endswith("Spend in range above also counts the network volume ($0.50).")
    assert [usd(-0.2), usd(1234.5), usd(-0.001), usd(float("nan"))] == ["-$0.20", "$1,234.50", "$0.00", "–"]
