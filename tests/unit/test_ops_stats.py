from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from lib.ops.endpoint_stats import (
    Percentiles,
    cold_starts_per_day,
    endpoint_stats,
    percentiles_per_day,
    worker_state_timeline,
    worker_states,
)
from lib.runpod import Health, JobCounts, WorkerCounts

DAY0 = datetime(2026, 9, 1, tzinfo=UTC)


def frame(rows):
    df = pd.DataFrame(rows, columns=["role", "endpoint_id", "status", "submitted_at", "delay_ms", "execution_ms",
                                     "cold_start", "worker_id"])
    df["submitted_at"] = pd.to_datetime(df["submitted_at"], utc=True).astype("datetime64[ns, UTC]")
    df["delay_ms"] = df["delay_ms"].astype("float64")
    df["execution_ms"] = df["execution_ms"].astype("float64")
    df["cold_start"] = df["cold_start"].astype(bool)
    return df


def job(role="image", status="COMPLETED", at=DAY0, delay=1000, exe=5000, cold=False):
    return [role, f"{role}-ep", status, at, delay, exe, cold, "w1"]


def test_percentiles_match_numpy_and_are_in_seconds():
    delays = list(range(1000, 101_000, 1000))  # 1..100 s
    df = frame([job(delay=d, exe=2 * d) for d in delays])
    stats = endpoint_stats(df, role="image")
    expected = np.percentile(delays, [50, 90, 98]) / 1000
    assert (stats.delay.p50_s, stats.delay.p90_s, stats.delay.p98_s) == pytest.approx(tuple(expected))
    assert stats.execution.p90_s == pytest.approx(2 * expected[1])
    assert stats.delay.samples == 100


def test_failure_rate_ignores_cancelled_and_unfinished_jobs():
    df = frame([job(status="COMPLETED")] * 6 + [job(status="FAILED"), job(status="TIMED_OUT")]
               + [job(status="CANCELLED"), job(status="IN_QUEUE", delay=None, exe=None)])
    stats = endpoint_stats(df, role="image")
    assert (stats.jobs, stats.decided, stats.failed) == (10, 8, 2)
    assert stats.failure_rate == pytest.approx(0.25)


def test_cold_start_share_counts_only_started_jobs_and_other_roles_are_excluded():
    df = frame([job(cold=True, delay=90_000), job(cold=True, delay=60_000), job(), job(),
                job(status="CANCELLED", delay=None, exe=None),
                job(role="training", cold=True, delay=120_000)])
    stats = endpoint_stats(df, role="image")
    assert stats.cold_starts == 2 and stats.started == 4
    assert stats.cold_start_share == pytest.approx(0.5)
    assert stats.cold_delay.p50_s == pytest.approx(75.0)


def test_empty_history_gives_none_not_zero():
    stats = endpoint_stats(frame([]), role="image")
    assert stats.failure_rate is None and stats.cold_start_share is None
    assert stats.delay == Percentiles(None, None, None, 0)


def test_cold_starts_per_day_fills_missing_days_with_zero():
    df = frame([job(at=DAY0, cold=True), job(at=DAY0 + timedelta(hours=3)),
                job(at=DAY0 + timedelta(days=2, hours=1), cold=True)])
    table = cold_starts_per_day(df, role="image", start=DAY0, end=DAY0 + timedelta(days=3))
    assert list(table["day"].dt.day) == [1, 2, 3, 4]
    assert list(table["jobs"]) == [2, 0, 1, 0]
    assert list(table["cold_starts"]) == [1, 0, 1, 0]
    assert table["share"].iloc[0] == pytest.approx(0.5)
    assert np.isnan(table["share"].iloc[1])  # no job: no share, rather than a misleading 0 %
    assert str(table["day"].dtype) == "datetime64[ns, UTC]"


def test_percentiles_per_day():
    df = frame([job(at=DAY0, delay=d) for d in (1000, 2000, 3000)] + [job(at=DAY0 + timedelta(days=1), delay=9000)])
    table = percentiles_per_day(df, "delay_ms", role="image")
    assert list(table["samples"]) == [3, 1]
    assert table["p50_s"].iloc[0] == pytest.approx(2.0)
    assert table["p98_s"].iloc[1] == pytest.approx(9.0)
    with pytest.raises(ValueError, match="delay_ms or execution_ms"):
        percentiles_per_day(df, "cost_usd")


def test_worker_states_from_health_summary_and_mapping():
    health = Health(JobCounts(in_queue=3), WorkerCounts(idle=1, running=2, throttled=1))
    assert worker_states(health) == {"running": 2, "idle": 1, "initializing": 0, "ready": 0,
                                     "throttled": 1, "unhealthy": 0}
    assert worker_states({"workers": {"idle": 4}})["idle"] == 4
    assert worker_states({"initializing": 2})["initializing"] == 2


def test_worker_state_timeline_is_sorted_and_complete():
    t1, t0 = DAY0 + timedelta(minutes=1), DAY0
    timeline = worker_state_timeline([(t1, {"running": 2}), (t0, {"initializing": 1, "bogus": 5})])
    assert list(timeline.index) == [pd.Timestamp(t0), pd.Timestamp(t1)]
    assert list(timeline.columns) == ["running", "idle", "initializing", "ready", "throttled", "unhealthy"]
    assert timeline.loc[pd.Timestamp(t0), "initializing"] == 1
    assert timeline.loc[pd.Timestamp(t1), "running"] == 2
    assert worker_state_timeline([]).empty


def test_the_endpoints_page_reads_its_week_of_jobs_once_until_a_job_is_recorded(tmp_path, monkeypatch):
    # Reading and summing a week of a busy year's jobs took 0.08 s of every Endpoints page run.
    from types import SimpleNamespace

    from lib.ops import actions
    from lib.store import JobStore

    store = JobStore(tmp_path)
    services = SimpleNamespace(store=store, monitor=SimpleNamespace(
        health_log=SimpleNamespace(snapshots=lambda role, since: [])))
    now = datetime.now(UTC).timestamp()

    def record(n: int) -> None:
        store.import_history([{"local_id": f"j{n}", "role": "image", "endpoint_id": "ep", "status": "COMPLETED",
                               "kind": "zimage", "user": "ana@example.com", "created_at": now - 3600,
                               "delay_ms": 1000 * n, "execution_ms": 5000, "cold_start": n == 1}])

    reads = []
    real_read = JobStore.jobs_frame
    monkeypatch.setattr(JobStore, "jobs_frame", lambda self, **kw: reads.append(kw) or real_read(self, **kw))
    try:
        record(1)
        first = actions.endpoint_series(services, "image", days=7)
        again = actions.endpoint_series(services, "image", days=7)
        assert len(reads) == 1 and again.cold_per_day is first.cold_per_day
        record(2)
        after = actions.endpoint_series(services, "image", days=7)
        assert len(reads) == 2
        assert after.delay_per_day["samples"].sum() == 2 == 1 + first.delay_per_day["samples"].sum()
    finally:
        store.close()


def test_the_endpoints_page_asks_runpod_only_for_the_live_settings(tmp_path):
    # Its health is the page's own refreshing part; a /health read here was thrown away (one more round trip
    # to RunPod on every run of the page).
    from types import SimpleNamespace

    from lib.ops import actions
    from lib.runpod import RunPodError
    from lib.store import JobStore

    asked = []

    def settings(endpoint_id):
        asked.append(("settings", endpoint_id))
        raise RunPodError("RunPod is unreachable")

    store = JobStore(tmp_path)
    services = SimpleNamespace(
        store=store, config=SimpleNamespace(endpoint=lambda role: SimpleNamespace(id="ep1", label="Image", url=None)),
        jobs=lambda role: SimpleNamespace(health=lambda: asked.append(("health", role))),
        client=SimpleNamespace(rest=SimpleNamespace(endpoint=settings)),
        monitor=SimpleNamespace(evaluator=SimpleNamespace(firing=[]), schedule=SimpleNamespace(active=lambda role: [])))
    try:
        view = actions.endpoint_overview(services, "image", days=7)
    finally:
        store.close()
    assert asked == [("settings", "ep1")]
    assert view.drift is None and view.live_error == "RunPod is unreachable"
