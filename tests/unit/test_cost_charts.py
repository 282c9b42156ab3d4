"""The Costs page's plotly figures: traces, stacking, axis titles, markers and empty states."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib.charts.costs import (
    break_even_chart,
    cost_per_image_chart,
    cost_split_chart,
    options_chart,
    projection_chart,
    reconciliation_chart,
    spend_chart,
)
from lib.config import ConsoleConfig
from lib.costs import (
    PARTS,
    break_even,
    compare_options,
    job_costs,
    project_next_month,
    reconcile,
    rollup,
    spend_over_time,
)
from lib.runpod.models import BillingRecord, VolumeBillingRecord

DAY0 = pd.Timestamp("2026-11-02", tz="UTC")
CONFIG = ConsoleConfig.load(Path(__file__).resolve().parents[2] / "console.toml")


def bill(hours: int, total: float, endpoint: str, disk: float = 0.0) -> BillingRecord:
    start = DAY0 + pd.Timedelta(hours=hours)
    return BillingRecord(start=start.to_pydatetime(), end=(start + pd.Timedelta(hours=1)).to_pydatetime(),
                         total=total, gpu=total - disk, disk=disk, serverless_id=endpoint)


BILLS = [bill(h, 1.0, "image-sim01", disk=0.01) for h in (0, 1, 25)] + [bill(3, 4.0, "training-sim01")]
VOLUME = [VolumeBillingRecord(start=DAY0.to_pydatetime(), end=(DAY0 + pd.Timedelta(days=1)).to_pydatetime(),
                              total=0.46, standard=0.46, network_volume_id="vol-characters")]


def jobs() -> pd.DataFrame:
    rows = [("image", 0, 4000, 2, True), ("image", 600, 5000, 1, False), ("special", 700, 9000, 1, False),
            ("training", 800, 1_200_000, 0, True)]
    return pd.DataFrame({
        "local_id": [f"j{i}" for i in range(len(rows))], "role": [r[0] for r in rows],
        "endpoint_id": [f"{r[0]}-sim01" for r in rows], "status": "COMPLETED", "kind": "flux",
        "user": "ann", "character": "ava", "group": None,
        "submitted_at": pd.to_datetime([DAY0 + pd.Timedelta(seconds=r[1]) for r in rows]).astype(
            "datetime64[ns, UTC]"),
        "delay_ms": 500.0, "execution_ms": [float(r[2]) for r in rows], "images": [r[3] for r in rows],
        "cold_start": [r[4] for r in rows], "cost_usd": np.nan, "simulated": True})


def test_spend_chart_stacks_one_bar_trace_per_endpoint():
    spend = spend_over_time(BILLS, "day", labels={"image-sim01": "console-image"}, volume=VOLUME)
    fig = spend_chart(spend, "day")
    assert fig.layout.barmode == "stack"
    assert [t.name for t in fig.data] == ["console-image", "network volume", "training-sim01"]
    assert all(t.type == "bar" for t in fig.data)
    assert list(fig.data[0].y) == pytest.approx([2.0, 1.0])
    assert fig.layout.xaxis.title.text == "day (UTC)"
    assert fig.layout.yaxis.title.text == "spend (USD)"
    assert spend_chart(spend_over_time(BILLS, "week"), "week").layout.xaxis.title.text == "week starting (UTC)"


def test_cost_split_chart_shows_only_components_with_spend():
    fig = cost_split_chart(spend_over_time(BILLS, "day", volume=VOLUME))
    assert [t.name for t in fig.data] == ["GPU", "container disk", "network volume"]
    assert fig.layout.barmode == "stack"
    gpu = fig.data[0]
    assert list(gpu.x) == ["image-sim01", "network volume", "training-sim01"]
    assert list(gpu.y) == pytest.approx([2.97, 0.0, 4.0])


def test_cost_per_image_chart_skips_workloads_without_images():
    by_workload = rollup(job_costs(jobs(), CONFIG), "workload")
    fig = cost_per_image_chart(by_workload)
    (bars,) = fig.data
    assert list(bars.x) == ["inference", "special"]
    image_cost = (4 + 5 + 5) * 0.00031 / 3  # 4 s + 5 s + the cold start's 5 s tail, 3 images
    assert bars.y[0] == pytest.approx(image_cost)
    assert bars.text[0] == f"${image_cost:,.4f}"
    assert fig.layout.yaxis.title.text == "USD per image"


def test_reconciliation_chart_stacks_the_parts_to_the_billed_marker():
    recon = reconcile(jobs(), BILLS, CONFIG)
    fig = reconciliation_chart(recon)
    names = [t.name for t in fig.data]
    assert names[:len(PARTS)] == ["completed jobs", "failed jobs", "cold starts (idle tail)",
                                  "idle between jobs", "always-on workers", "disk & fees", "unexplained"]
    assert names[len(PARTS):] == ["billed", "per-job estimate"]
    assert fig.layout.barmode == "relative"  # negative parts (e.g. unexplained) go below zero
    stacked = sum(np.asarray(t.y, dtype=float) for t in fig.data[:len(PARTS)])
    assert stacked == pytest.approx(np.asarray(fig.data[len(PARTS)].y, dtype=float))
    assert fig.data[len(PARTS)].mode == "markers"


def test_break_even_chart_marks_the_crossing_and_now():
    be = break_even(0.01, 503.7, current_images_per_month=20_000)
    fig = break_even_chart(be)
    names = [t.name for t in fig.data]
    assert names == ["serverless", "dedicated pod", "break-even", "now"]
    crossing = fig.data[2]
    assert crossing.x[0] == pytest.approx(50_370) and crossing.y[0] == pytest.approx(503.7)
    assert fig.data[3].x[0] == 20_000 and fig.data[3].y[0] == pytest.approx(200)
    assert fig.layout.shapes[0].x0 == 20_000  # the dotted line at the current volume
    assert fig.layout.xaxis.title.text == "images per month"
    assert fig.layout.yaxis.title.text == "USD per month"


def test_break_even_chart_without_a_crossing_or_a_cost_per_image():
    fig = break_even_chart(break_even(float("nan"), 503.7))
    assert [t.name for t in fig.data] == ["dedicated pod", "now"]


def test_options_chart_has_one_bar_per_option():
    options = compare_options(jobs(), CONFIG, 7)
    fig = options_chart(options)
    (bars,) = fig.data
    assert list(bars.y) == list(options.table["option"])
    assert list(bars.x) == pytest.approx(list(options.table["monthly_usd"]))
    assert bars.orientation == "h"
    assert fig.layout.xaxis.title.text == "USD per month"


def test_projection_chart_shows_history_trend_and_forecast():
    days = pd.date_range(DAY0, periods=7, freq="D")
    projection = project_next_month(pd.Series([5.0, 6, 7, 8, 9, 10, 11], index=days))
    fig = projection_chart(projection)
    assert [t.type for t in fig.data] == ["bar", "scatter", "scatter"]
    assert fig.data[2].line.dash == "dash"
    assert len(fig.data[2].x) == 30
    assert f"${projection.next_month_usd:,.0f}" in fig.data[2].name
    assert fig.layout.yaxis.title.text == "USD per day"


@pytest.mark.parametrize("build", [
    lambda: spend_chart(spend_over_time([], "day")),
    lambda: cost_split_chart(spend_over_time([], "day")),
    lambda: cost_per_image_chart(rollup(job_costs(pd.DataFrame(), CONFIG), "workload")),
    lambda: reconciliation_chart(reconcile(pd.DataFrame(), [], CONFIG)),
    lambda: projection_chart(project_next_month([])),
])
def test_empty_data_gives_a_message_instead_of_an_empty_plot(build):
    fig = build()
    assert not fig.data
    assert fig.layout.annotations[0].text.startswith("No ")
