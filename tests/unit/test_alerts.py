"""Alert rules: parsing from console.toml, evaluation with a controlled clock, history across restarts."""
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from lib.config import ConfigError, ConsoleConfig
from lib.ops.alert_history import AlertHistory
from lib.ops.alerts import ALERTS_TOML_DOC, AlertEvaluator, Observations, parse_alert_rules
from lib.ops.webhook import webhook_url
from lib.runpod import Health, JobCounts, WorkerCounts
from tests.support.clock import FakeClock

# The repository's console.toml without its own alert rules (each test declares its rules).
BASE_TOML = Path(__file__).resolve().parents[2].joinpath("console.toml").read_text().split(
    ALERTS_TOML_DOC.splitlines()[0])[0]
T0 = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


def config(alerts: str) -> ConsoleConfig:
    return ConsoleConfig.parse(BASE_TOML + "\n" + alerts)


def health(queue=0, throttled=0):
    return Health(JobCounts(in_queue=queue), WorkerCounts(throttled=throttled))


def jobs(statuses, role="image", cold=(), delay_ms=1000):
    rows = []
    for i, status in enumerate(statuses):
        rows.append({"role": role, "status": status, "submitted_at": T0 + timedelta(seconds=i),
                     "delay_ms": float(cold[i] if i < len(cold) and cold[i] else delay_ms),
                     "cold_start": bool(i < len(cold) and cold[i])})
    df = pd.DataFrame(rows, columns=["role", "status", "submitted_at", "delay_ms", "cold_start"])
    df["submitted_at"] = df["submitted_at"].astype("datetime64[ns, UTC]")
    return df


def documented_example() -> str:
    """The commented example of ALERTS_TOML_DOC, uncommented (what an operator pastes and edits)."""
    lines = ALERTS_TOML_DOC.splitlines()
    start = lines.index("# [[alerts]]")
    return "\n".join(line.removeprefix("#").strip() for line in lines[start:]
                     if not line.startswith("# Optional"))


def test_documented_example_parses_into_five_rules_and_a_webhook():
    example = documented_example()
    assert webhook_url(config(example)).reveal() == "https://hooks.slack.com/services/..."
    rules = parse_alert_rules(config(example))
    assert [r.rule for r in rules] == ["queue_depth", "failure_rate", "cold_start_p90", "throttled_workers",
                                       "spend_today"]
    queue = rules[0]
    assert (queue.endpoints, queue.above, queue.for_minutes) == (("image",), 10.0, 5.0)
    assert rules[2].endpoints == ("image", "training", "special") and rules[2].last_jobs == 50
    assert rules[4].endpoints == () and rules[4].alert_ids() == [("Spend today above $25", None)]


def test_no_alerts_table_means_no_rules():
    assert parse_alert_rules(config("")) == []


@pytest.mark.parametrize("table, message", [
    ('[[alerts]]\nrule = "queue_size"\nabove = 3', "rule must be one of"),
    ('[[alerts]]\nrule = "queue_depth"', "needs `above`"),
    ('[[alerts]]\nrule = "queue_depth"\nabove = 3\nfor_minute = 5', "unknown key 'for_minute'"),
    ('[[alerts]]\nrule = "queue_depth"\nabove = 3\nendpoints = ["video"]', "no endpoint 'video'"),
    ('[[alerts]]\nrule = "failure_rate"\nabove = 120', "between 0 and 100"),
    ('[[alerts]]\nrule = "failure_rate"\nabove = 10\nlast_jobs = 0', "last_jobs must be a whole number"),
    ('[[alerts]]\nrule = "spend_today"\nabove = "lots"', "above must be a number"),
    ('[alerts]\nrule = "spend_today"', "not [alerts]"),
    ('[[alerts]]\nrule = "spend_today"\nabove = 1\n[[alerts]]\nrule = "spend_today"\nabove = 1',
     "already named"),
])
def test_bad_rules_are_refused_with_a_message_that_says_where(table, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        parse_alert_rules(config(table))
    assert "console.toml" in str(err.value)


def evaluator(alerts: str, clock, **kw):
    return AlertEvaluator(parse_alert_rules(config(alerts)), clock=clock.now, **kw)


def test_queue_depth_fires_only_after_holding_for_m_minutes_then_resolves_once():
    clock = FakeClock(T0)
    ev = evaluator('[[alerts]]\nrule = "queue_depth"\nendpoints = ["image"]\nabove = 10\nfor_minutes = 5', clock,
                   labels={"image": "console-image"})
    deep = Observations(health={"image": health(queue=14)})
    assert ev.evaluate(deep) == []
    clock.advance(minutes=4)
    assert ev.evaluate(deep) == []
    clock.advance(minutes=1)
    (fired,) = ev.evaluate(deep)
    assert (fired.state, fired.role, fired.value, fired.at) == ("firing", "image", 14.0, clock.now())
    assert fired.message == "console-image: 14 jobs in queue for 5 min (alert above 10 jobs in queue)"
    clock.advance(minutes=1)
    assert ev.evaluate(deep) == []  # still firing: not repeated
    (resolved,) = ev.evaluate(Observations(health={"image": health(queue=3)}))
    assert resolved.state == "resolved" and ev.firing == []


def test_a_dip_restarts_the_for_minutes_window():
    clock = FakeClock(T0)
    ev = evaluator('[[alerts]]\nrule = "queue_depth"\nendpoints = ["image"]\nabove = 10\nfor_minutes = 5', clock)
    ev.evaluate(Observations(health={"image": health(queue=20)}))
    clock.advance(minutes=3)
    ev.evaluate(Observations(health={"image": health(queue=2)}))
    clock.advance(minutes=3)
    assert ev.evaluate(Observations(health={"image": health(queue=20)})) == []
    clock.advance(minutes=5)
    assert [e.state for e in ev.evaluate(Observations(health={"image": health(queue=20)}))] == ["firing"]


def test_missing_health_neither_fires_nor_resolves():
    clock = FakeClock(T0)
    ev = evaluator('[[alerts]]\nrule = "throttled_workers"\nendpoints = ["image"]', clock)
    assert [e.state for e in ev.evaluate(Observations(health={"image": health(throttled=1)}))] == ["firing"]
    assert ev.evaluate(Observations(health={"image": None})) == []
    assert ev.evaluate(Observations(health={})) == []
    assert len(ev.firing) == 1


def test_failure_rate_over_last_k_jobs_of_that_endpoint():
    clock = FakeClock(T0)
    ev = evaluator('[[alerts]]\nrule = "failure_rate"\nendpoints = ["image"]\nabove = 20\nlast_jobs = 10', clock)
    # 3 failures long ago, then 10 recent jobs with 1 failure (10 %): only the last 10 count.
    quiet = jobs(["FAILED"] * 3 + ["COMPLETED"] * 9 + ["FAILED"])
    assert ev.evaluate(Observations(jobs=quiet)) == []
    failing = jobs(["COMPLETED"] * 7 + ["FAILED", "TIMED_OUT", "FAILED", "CANCELLED"])
    (event,) = ev.evaluate(Observations(jobs=failing))
    assert event.value == pytest.approx(30.0)
    assert "3 of the last 10 jobs failed (30%)" in event.message
    other_role = pd.concat([failing.assign(role="special")])
    assert ev.evaluate(Observations(jobs=other_role)) == []  # no image jobs: no reading, stays firing
    assert [e.state for e in ev.evaluate(Observations(jobs=jobs(["COMPLETED"] * 10)))] == ["resolved"]


def test_failure_rate_waits_for_min_jobs():
    ev = evaluator('[[alerts]]\nrule = "failure_rate"\nendpoints = ["image"]\nabove = 20\nmin_jobs = 5', FakeClock(T0))
    assert ev.evaluate(Observations(jobs=jobs(["FAILED"] * 4))) == []
    assert len(ev.evaluate(Observations(jobs=jobs(["FAILED"] * 5)))) == 1


def test_cold_start_p90_uses_jobs_that_hit_a_cold_start():
    ev = evaluator('[[alerts]]\nrule = "cold_start_p90"\nendpoints = ["image"]\nabove = 60', FakeClock(T0))
    slow = jobs(["COMPLETED"] * 6, cold=[0, 95_000, 0, 100_000, 0, 110_000])
    (event,) = ev.evaluate(Observations(jobs=slow))
    assert event.value == pytest.approx(108.0)
    (resolved,) = ev.evaluate(Observations(jobs=jobs(["COMPLETED"] * 6)))
    assert resolved.state == "resolved" and "no cold start" in resolved.message


def test_spend_today_and_severity_in_text():
    ev = evaluator('[[alerts]]\nrule = "spend_today"\nabove = 25\nseverity = "critical"', FakeClock(T0))
    assert ev.evaluate(Observations(spend_today_usd=None)) == []
    (event,) = ev.evaluate(Observations(spend_today_usd=31.5))
    assert event.text() == (":rotating_light: FIRING — Spend today above $25: $31.50 spent today "
                            "(alert above $25.00)")


def test_one_instance_per_endpoint():
    ev = evaluator('[[alerts]]\nrule = "throttled_workers"', FakeClock(T0))
    events = ev.evaluate(Observations(health={"image": health(throttled=1), "training": health(),
                                              "special": health(throttled=2)}))
    assert sorted(e.role for e in events) == ["image", "special"]


def test_history_survives_restart_and_firing_alert_is_not_repeated(tmp_path):
    clock = FakeClock(T0)
    rules = '[[alerts]]\nrule = "throttled_workers"\nendpoints = ["image"]'
    history = AlertHistory(tmp_path / "alerts.sqlite")
    ev = evaluator(rules, clock, firing=history.firing())
    stored = [history.record(e) for e in ev.evaluate(Observations(health={"image": health(throttled=1)}))]
    assert stored[0].id is not None
    history.close()

    history = AlertHistory(tmp_path / "alerts.sqlite")  # the console restarted
    assert [e.alert_id for e in history.firing()] == [stored[0].alert_id]
    ev = evaluator(rules, clock, firing=history.firing())
    clock.advance(minutes=1)
    assert ev.evaluate(Observations(health={"image": health(throttled=1)})) == []
    resolved = [history.record(e) for e in ev.evaluate(Observations(health={"image": health()}))]
    assert [e.state for e in resolved] == ["resolved"]
    assert history.firing() == []
    assert [e.state for e in history.events()] == ["resolved", "firing"]


def test_alert_of_a_removed_rule_is_resolved(tmp_path):
    clock = FakeClock(T0)
    history = AlertHistory(tmp_path / "alerts.sqlite")
    ev = evaluator('[[alerts]]\nrule = "throttled_workers"\nendpoints = ["image"]', clock)
    for e in ev.evaluate(Observations(health={"image": health(throttled=1)})):
        history.record(e)
    ev = evaluator("", clock, firing=history.firing())
    (event,) = ev.evaluate(Observations())
    assert event.state == "resolved" and "removed" in event.message
