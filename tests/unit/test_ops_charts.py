from datetime import UTC, datetime, timedelta

import pandas as pd

from lib.charts.ops import cold_starts_figure, folder_sizes_figure, percentiles_figure, worker_timeline_figure
from lib.ops.endpoint_stats import cold_starts_per_day, percentiles_per_day, worker_state_timeline
from lib.ops.volume_index import FolderTotal

DAY0 = datetime(2026, 9, 1, tzinfo=UTC)


def jobs():
    rows = [("image", "COMPLETED", DAY0 + timedelta(days=d, hours=h), 1000.0 * (h + 1), 4000.0, h == 0)
            for d in range(3) for h in range(4)]
    df = pd.DataFrame(rows, columns=["role", "status", "submitted_at", "delay_ms", "execution_ms", "cold_start"])
    df["endpoint_id"] = "img"
    df["submitted_at"] = df["submitted_at"].astype("datetime64[ns, UTC]")
    return df


def test_cold_starts_figure_has_bars_and_share_on_second_axis():
    fig = cold_starts_figure(cold_starts_per_day(jobs(), role="image"))
    bar, line = fig.data
    assert bar.type == "bar" and list(bar.y) == [1, 1, 1]
    assert line.yaxis == "y2" and list(line.y) == [25.0, 25.0, 25.0]
    assert fig.layout.yaxis2.overlaying == "y"


def test_percentiles_figure_has_three_lines_in_seconds():
    fig = percentiles_figure(percentiles_per_day(jobs(), "delay_ms", role="image"))
    assert [t.name for t in fig.data] == ["p50", "p90", "p98"]
    assert fig.data[0].y[0] == 2.5
    assert fig.layout.yaxis.title.text == "seconds"


def test_worker_timeline_is_stacked_and_skips_states_never_seen():
    timeline = worker_state_timeline([(DAY0, {"initializing": 1}),
                                      (DAY0 + timedelta(minutes=1), {"running": 1, "idle": 1})])
    fig = worker_timeline_figure(timeline)
    assert {t.name for t in fig.data} == {"running", "idle", "initializing"}
    assert all(t.stackgroup == "workers" for t in fig.data)


def test_folder_sizes_largest_on_top_in_gb():
    fig = folder_sizes_figure([FolderTotal("models/unet", 2, 24_000_000_000), FolderTotal("datasets", 16, 5_000_000)])
    (bar,) = fig.data
    assert list(bar.y) == ["datasets", "models/unet"]
    assert bar.x[-1] == 24.0 and list(bar.customdata) == [16, 2]


def test_empty_inputs_render_a_message_not_an_error():
    empty_jobs = jobs().iloc[0:0]
    for fig in (cold_starts_figure(cold_starts_per_day(empty_jobs)),
                percentiles_figure(percentiles_per_day(empty_jobs)),
                worker_timeline_figure(worker_state_timeline([])),
                folder_sizes_figure([])):
        assert not fig.data
        assert fig.layout.annotations[0].text
