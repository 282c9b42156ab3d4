"""Plotly figures for the Endpoints and Models pages (pure: data in, go.Figure out)."""
from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import plotly.graph_objects as go

from lib.charts import empty_figure
from lib.ops.endpoint_stats import WORKER_STATES

STATE_COLOURS = {"running": "#2e7d32", "idle": "#90a4ae", "initializing": "#f9a825", "ready": "#64b5f6",
                 "throttled": "#ef6c00", "unhealthy": "#c62828"}
PERCENTILE_COLOURS = {"p50_s": "#64b5f6", "p90_s": "#1e88e5", "p98_s": "#0d47a1"}


def _layout(fig: go.Figure, title: str) -> go.Figure:
    # The legend sits above the plot, right of the title: below it, it covered the x-axis title.
    fig.update_layout(title={"text": title, "x": 0, "xanchor": "left"}, margin={"l": 10, "r": 10, "t": 80, "b": 10},
                      hovermode="x unified",
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1})
    return fig


def _size_unit(largest_bytes: float) -> tuple[str, float]:
    """A unit that shows the largest folder as a plain number ("μGB" was plotly's SI prefix on GB)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if largest_bytes >= scale:
            return unit, scale
    return "bytes", 1.0


def cold_starts_figure(per_day: pd.DataFrame, title: str = "Cold starts per day") -> go.Figure:
    """Bars: cold starts per day; line (right axis): share of started jobs that hit one."""
    fig = _layout(go.Figure(), title)
    if per_day.empty or not per_day["jobs"].sum():
        return empty_figure(fig, "No jobs in this period")
    fig.add_bar(x=per_day["day"], y=per_day["cold_starts"], name="cold starts", marker_color="#1e88e5")
    fig.add_scatter(x=per_day["day"], y=per_day["share"] * 100, name="share of jobs (%)", yaxis="y2",
                    mode="lines+markers", line={"color": "#ef6c00"}, connectgaps=False,
                    hovertemplate="%{y:.0f} %")
    fig.update_layout(yaxis={"title": "cold starts", "rangemode": "tozero", "tickformat": ",d"},
                      yaxis2={"title": "% of jobs", "overlaying": "y", "side": "right", "range": [0, 100],
                              "tickmode": "linear", "tick0": 0, "dtick": 25, "showgrid": False},
                      xaxis={"title": "day (UTC)"})
    return fig


def percentiles_figure(per_day: pd.DataFrame, title: str = "Queue delay (delayTime) percentiles") -> go.Figure:
    """Lines p50/p90/p98 in seconds per day (from endpoint_stats.percentiles_per_day)."""
    fig = _layout(go.Figure(), title)
    if per_day.empty or not per_day["samples"].sum():
        return empty_figure(fig, "No finished jobs in this period")
    for column, colour in PERCENTILE_COLOURS.items():
        fig.add_scatter(x=per_day["day"], y=per_day[column], name=column.removesuffix("_s"),
                        mode="lines+markers", line={"color": colour}, connectgaps=False,
                        hovertemplate="%{y:.1f} s")
    fig.update_layout(yaxis={"title": "seconds", "rangemode": "tozero"}, xaxis={"title": "day (UTC)"})
    return fig


def worker_timeline_figure(timeline: pd.DataFrame, title: str = "Workers by state") -> go.Figure:
    """Stacked areas, one per worker state (from endpoint_stats.worker_state_timeline)."""
    fig = _layout(go.Figure(), title)
    if timeline.empty:
        return empty_figure(fig, "No health readings recorded yet")
    for state in WORKER_STATES:
        if state not in timeline or not timeline[state].any():
            continue
        fig.add_scatter(x=timeline.index, y=timeline[state], name=state, mode="lines", stackgroup="workers",
                        line={"width": 0.5, "color": STATE_COLOURS[state], "shape": "hv"})
    if not fig.data:
        return empty_figure(fig, "No workers in this period")
    fig.update_layout(yaxis={"title": "workers", "rangemode": "tozero", "dtick": 1}, xaxis={"title": "time (UTC)"})
    return fig


def folder_sizes_figure(totals: Iterable, title: str = "Volume usage by folder") -> go.Figure:
    """Horizontal bars per folder in GB (MB, kB for a small volume) (FolderTotal items), largest on top, file counts in the hover."""
    rows = sorted(totals, key=lambda t: t.bytes)
    fig = _layout(go.Figure(), title)
    if not rows:
        return empty_figure(fig, "The volume is empty")
    unit, scale = _size_unit(max(t.bytes for t in rows))
    fig.add_bar(y=[t.folder for t in rows], x=[t.bytes / scale for t in rows], orientation="h",
                name="size", marker_color="#1e88e5", customdata=[t.files for t in rows],
                hovertemplate=f"%{{y}}: %{{x:,.2f}} {unit} in %{{customdata}} files<extra></extra>")
    fig.update_layout(xaxis={"title": unit, "rangemode": "tozero", "exponentformat": "none", "tickformat": ",.4~g"},
                      hovermode="closest", showlegend=False)
    return fig
