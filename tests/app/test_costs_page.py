"""AppTest: the Costs page on the in-process simulator's 30 days of seeded traffic and billing."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from lib import costs
from lib.auth import LOCAL_OPERATOR, User

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "costs.py")
DOWNLOADS = ["Spend over time", "Reconciliation", "Cost by endpoint", "Cost by workload",
             "Cost by character", "Cost by user", "Options", "Per-job costs"]


def open_costs(user: User = LOCAL_OPERATOR) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["auth.user"] = user
    at.run()
    assert not at.exception, at.exception
    return at


def dollars(text: str) -> float:
    return float(text.replace("$", "").replace(",", ""))


def assert_headline_of_the_seeded_month(at: AppTest, console) -> None:
    metrics = {m.label: m for m in at.metric}
    assert list(metrics) == ["Spend in range", "Cost per image", "Projected next month",
                             "Serverless per month"]
    assert dollars(metrics["Spend in range"].value) > 0
    assert metrics["Cost per image"].value.startswith("$0.0")
    assert dollars(metrics["Projected next month"].value) > 0
    serverless = metrics["Serverless per month"]
    assert serverless.delta.startswith("-$") and serverless.delta.endswith(" vs pod")  # cheaper
    # No operator hours entered: the pod it is compared with costs its hourly price around the clock.
    pod_monthly = dollars(serverless.value) - dollars(serverless.delta.removesuffix(" vs pod"))
    assert pod_monthly == pytest.approx(console.config.prices.pod_hourly_usd * 730, abs=1)


SECTIONS = ["Spend", "Components", "Per job and image", "Estimates vs billed", "Serverless vs pod", "Recommendations",
            "Next month", "Download"]


def open_section(at: AppTest, name: str) -> AppTest:
    at.session_state["costs.section"] = name
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_page_reads_like_a_report_of_the_seeded_month(console):
    at = open_costs()
    assert_headline_of_the_seeded_month(at, console)
    assert any("Simulated data" in c.value for c in at.caption)
    subheaders, texts, charts, downloads = [], [], 0, []
    for name in SECTIONS:
        open_section(at, name)
        # Only the open section is drawn (a visit used to redraw seven charts and three tables).
        assert len(at.subheader) == 1, [s.value for s in at.subheader]
        subheaders.append(at.subheader[0].value)
        texts += [m.value for m in at.markdown]
        charts += len(at.get("plotly_chart"))
        if name == "Spend":   # the section a visit opens draws one chart (each is 0.06–0.08 s of a redraw)
            assert len(at.get("plotly_chart")) == 1
        downloads += [b.label for b in at.get("download_button")]
        if name == "Per job and image":
            by_endpoint = at.dataframe[0].value
            assert set(by_endpoint["endpoint"]) >= {"console-image", "console-training", "console-special"}
    assert subheaders == [
        "Spend", "What the spend is made of", "Cost per job and per image", "Estimates vs billed",
        "Serverless vs a dedicated pod (last 30 days)", "Recommendations", "Next month", "Download"]
    assert any(t.startswith("Over ") and "RunPod billed $" in t for t in texts)
    assert any("Serverless costs as much as the pod" in t for t in texts)
    for name in ("console-image", "console-training", "console-special"):
        assert any(f"**{name}**" in t for t in texts), name
    assert sorted(downloads) == sorted(DOWNLOADS)
    assert charts == 7


def test_switching_to_seven_days_and_weekly_spend(console):
    at = open_costs()
    at.radio(key="costs.days").set_value(7)
    at.radio(key="costs.bucket").set_value("week")
    open_section(at, "Serverless vs pod")
    assert "Serverless vs a dedicated pod (last 7 days)" in [s.value for s in at.subheader]


def serverless_minus_pod(at: AppTest) -> float:
    delta = next(m.delta for m in at.metric if m.label == "Serverless per month")
    return dollars(delta.removesuffix(" vs pod"))


def assumption_inputs(at: AppTest) -> list[str]:
    return [n.key for n in at.number_input if n.key in ("costs.op_hours", "costs.op_rate")]


def test_operator_hours_raise_the_pod_cost_and_are_kept_while_their_section_is_closed():
    # The assumptions are drawn in the section they are for: two inputs in a collapsed expander were 0.04 s
    # of every visit's redraw (bench/bench_pages.py). Their own user, so other tests see no operator hours.
    planner = User("pod-planner@example.com", "staff")
    at = open_costs(planner)
    assert assumption_inputs(at) == []
    before = serverless_minus_pod(at)
    open_section(at, "Serverless vs pod")
    assert assumption_inputs(at) == ["costs.op_hours", "costs.op_rate"]
    at.number_input(key="costs.op_hours").set_value(10.0)
    at.number_input(key="costs.op_rate").set_value(50.0)
    at.run()
    assert serverless_minus_pod(at) == pytest.approx(before - 500, abs=1)
    open_section(at, "Spend")
    assert assumption_inputs(at) == []
    assert serverless_minus_pod(at) == pytest.approx(before - 500, abs=1)
    open_section(at, "Serverless vs pod")
    assert [at.number_input(key=k).value for k in assumption_inputs(at)] == [10.0, 50.0]
    assert not at.warning, [w.value for w in at.warning]
    again = open_costs(planner)   # a new session of the same user
    assert serverless_minus_pod(again) == pytest.approx(before - 500, abs=1)


def test_half_picked_range_asks_for_the_last_day():
    at = open_costs()
    at.date_input(key="costs.range").set_value((datetime.now(UTC).date(),))
    at.run()
    assert not at.exception
    assert any("Pick the last day" in i.value for i in at.info)
    assert not at.metric


def test_a_viewer_sees_the_report(console):
    at = open_costs(User("stakeholder@partner.example", "viewer"))
    assert_headline_of_the_seeded_month(at, console)


def test_build_report_on_the_simulator_and_its_csv_files(console):
    end = datetime.now(UTC)
    report = costs.build_report(console, end - timedelta(days=30), end, "day", days=30)
    analysis = report.analysis
    assert report.simulated and not report.notes
    assert analysis.billed_usd > 0 and analysis.volume_usd > 0 and analysis.images > 0
    # the per-job model explains the simulator's bill to within a few per cent
    recon = analysis.reconciliation
    assert abs(recon["unexplained_usd"].sum()) < 0.05 * recon["billed_usd"].sum()
    downloads = report.downloads()
    assert list(downloads) == DOWNLOADS
    name, make = downloads["Per-job costs"]
    assert name.startswith("costs-jobs-") and name.endswith(".csv")
    lines = make().decode("utf-8").splitlines()
    assert lines[0].startswith("local_id,submitted_at,role,workload")
    assert len(lines) == len(analysis.jobs) + 1
    spend = pd.read_csv(pd.io.common.BytesIO(downloads["Spend over time"][1]()))
    assert spend["total_usd"].sum() == pytest.approx(analysis.billed_usd + analysis.volume_usd, rel=1e-6)
    with pytest.raises(ValueError, match="end after it starts"):
        costs.build_report(console, end, end - timedelta(days=1))
