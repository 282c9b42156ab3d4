"""Plotly figures for the Costs page (pure: lib.costs results in, go.Figure out)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lib.charts import empty_figure
from lib.costs.billing import VOLUME_LABEL, Projection
from lib.costs.options import BreakEven, OptionsComparison
from lib.costs.reconcile import PARTS

BUCKET_TITLES = {"hour": "hour (UTC)", "day": "day (UTC)", "week": "week starting (UTC)"}
COMPONENTS = {"gpu_usd": ("GPU", "#1e88e5"), "cpu_usd": ("CPU", "#8e24aa"),
              "disk_usd": ("container disk", "#90a4ae"), "fee_usd": ("fees", "#ef6c00"),
              "volume_usd": ("network volume", "#43a047")}
PART_STYLE = {
    "completed_usd": ("completed jobs", "#1e88e5"),
    "failed_usd": ("failed jobs", "#e53935"),
    "cold_starts_usd": ("cold starts (idle tail)", "#f9a825"),
    "idle_timeouts_usd": ("idle between jobs", "#ffb74d"),
    "min_workers_usd": ("always-on workers", "#8e24aa"),
    "disk_fees_usd": ("disk & fees", "#90a4ae"),
    "unexplained_usd": ("unexplained", "#cfd8dc"),
}
USD = "$%{y:,.2f}"
ENDPOINT_COLOURS = ("#1e88e5", "#8e24aa", "#f4511e", "#00897b", "#6d4c41", "#3949ab")
VOLUME_COLOUR = COMPONENTS["volume_usd"][1]


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(title=title, margin={"l": 10, "r": 10, "t": 50, "b": 10},
                      legend={"orientation": "h", "y": -0.25},
                      xaxis={"title": x_title}, yaxis={"title": y_title, "rangemode": "tozero"})
    return fig


def spend_chart(spend: pd.DataFrame, bucket: str = "day", title: str = "Spend by endpoint") -> go.Figure:
    """Stacked bars: billed spend per bucket, one colour per endpoint (from spend_over_time)."""
    fig = _layout(go.Figure(), title, BUCKET_TITLES.get(bucket, bucket), "spend (USD)")
    if spend.empty or not spend["total_usd"].abs().sum():
        return empty_figure(fig, "No billed spend in this range")
    endpoints = [e for e in sorted(spend["endpoint"].unique()) if e != VOLUME_LABEL]
    colours = dict(zip(endpoints, ENDPOINT_COLOURS * (len(endpoints) // len(ENDPOINT_COLOURS) + 1), strict=False))
    colours[VOLUME_LABEL] = VOLUME_COLOUR
    for endpoint, rows in spend.groupby("endpoint", sort=True):
        fig.add_bar(x=rows["period"], y=rows["total_usd"], name=str(endpoint),
                    marker_color=colours[endpoint], hovertemplate=f"{endpoint}: {USD}<extra></extra>")
    fig.update_layout(barmode="stack", hovermode="x unified")
    return fig


def cost_split_chart(spend: pd.DataFrame, title: str = "What the spend is made of") -> go.Figure:
    """Stacked bars per endpoint: GPU, CPU, container disk, fees and network volume."""
    fig = _layout(go.Figure(), title, "", "spend (USD)")
    if spend.empty or not spend["total_usd"].abs().sum():
        return empty_figure(fig, "No billed spend in this range")
    per_endpoint = spend.groupby("endpoint", sort=True)[list(COMPONENTS)].sum()
    for column, (name, colour) in COMPONENTS.items():
        if per_endpoint[column].abs().sum() > 0:
            fig.add_bar(x=per_endpoint.index, y=per_endpoint[column], name=name, marker_color=colour,
                        hovertemplate=f"{name}: {USD}<extra></extra>")
    fig.update_layout(barmode="stack")
    return fig


def cost_per_image_chart(by_workload: pd.DataFrame, title: str = "Cost per image by workload") -> go.Figure:
    """Bars: estimated cost per delivered image of each workload (from rollup(..., "workload"))."""
    fig = _layout(go.Figure(), title, "workload", "USD per image")
    rows = by_workload[np.isfinite(by_workload["cost_per_image_usd"].to_numpy(dtype="float64"))] \
        if not by_workload.empty else by_workload
    if rows.empty:
        return empty_figure(fig, "No images delivered in this range")
    fig.add_bar(x=rows["workload"].astype(str), y=rows["cost_per_image_usd"], name="cost per image",
                marker_color="#1e88e5", text=[f"${v:,.4f}" for v in rows["cost_per_image_usd"]],
                textposition="outside", customdata=rows["images"],
                hovertemplate="$%{y:,.4f} per image over %{customdata:,} images<extra></extra>")
    return fig


def reconciliation_chart(recon: pd.DataFrame, title: str = "Estimates vs billed, per day") -> go.Figure:
    """Per day: billed spend split into the per-job estimate's parts and the explained gap.

    Bars stack (negative parts below zero) to the billed total, drawn as markers; the line is the
    sum of the per-job estimates.
    """
    fig = _layout(go.Figure(), title, "day (UTC)", "USD")
    if recon.empty:
        return empty_figure(fig, "No billing records to reconcile in this range")
    for column in PARTS:
        name, colour = PART_STYLE[column]
        fig.add_bar(x=recon["day"], y=recon[column], name=name, marker_color=colour,
                    hovertemplate=f"{name}: {USD}<extra></extra>")
    fig.add_scatter(x=recon["day"], y=recon["billed_usd"], name="billed", mode="markers",
                    marker={"symbol": "diamond", "size": 10, "color": "#263238"},
                    hovertemplate=f"billed: {USD}<extra></extra>")
    fig.add_scatter(x=recon["day"], y=recon["estimate_usd"], name="per-job estimate",
                    mode="lines+markers", line={"color": "#0d47a1", "dash": "dot"},
                    hovertemplate=f"per-job estimate: {USD}<extra></extra>")
    fig.update_layout(barmode="relative", hovermode="x unified")
    return fig


def options_chart(options: OptionsComparison, title: str = "Monthly cost of each option") -> go.Figure:
    """Horizontal bars: serverless as measured, sized active workers, the dedicated pod."""
    fig = _layout(go.Figure(), title, "USD per month", "")
    table = options.table
    colours = ["#1e88e5", "#8e24aa", "#43a047"]
    fig.add_bar(y=table["option"], x=table["monthly_usd"], orientation="h", marker_color=colours,
                text=[f"${v:,.0f}" for v in table["monthly_usd"]], textposition="auto",
                customdata=table["detail"], name="monthly cost",
                hovertemplate="$%{x:,.2f} a month<br>%{customdata}<extra></extra>")
    fig.update_layout(showlegend=False, yaxis={"title": "", "autorange": "reversed"},
                      xaxis={"title": "USD per month", "rangemode": "tozero"})
    return fig


def break_even_chart(be: BreakEven, title: str = "Serverless vs dedicated pod") -> go.Figure:
    """Monthly cost against images per month: the serverless line, the pod line, where they
    cross and where the current volume is."""
    fig = _layout(go.Figure(), title, "images per month", "USD per month")
    curve = be.curve
    if np.isfinite(curve["serverless_usd"]).any():
        fig.add_scatter(x=curve["images_per_month"], y=curve["serverless_usd"], name="serverless",
                        mode="lines", line={"color": "#1e88e5", "width": 3},
                        hovertemplate="serverless: $%{y:,.0f} at %{x:,.0f} images<extra></extra>")
    fig.add_scatter(x=curve["images_per_month"], y=curve["pod_usd"], name="dedicated pod",
                    mode="lines", line={"color": "#43a047", "width": 3},
                    hovertemplate="pod: $%{y:,.0f}<extra></extra>")
    if be.images_per_month is not None:
        fig.add_scatter(x=[be.images_per_month], y=[be.pod_monthly_usd], name="break-even",
                        mode="markers+text", marker={"size": 14, "color": "#e53935", "symbol": "x"},
                        text=[f"break-even {be.images_per_month:,.0f}"], textposition="top left",
                        hovertemplate="break-even: %{x:,.0f} images, $%{y:,.0f}<extra></extra>")
    fig.add_scatter(x=[be.current_images_per_month], y=[be.current_serverless_usd], name="now",
                    mode="markers+text", marker={"size": 12, "color": "#263238"},
                    text=[f"now {be.current_images_per_month:,.0f}"], textposition="bottom right",
                    hovertemplate="now: %{x:,.0f} images, $%{y:,.0f}<extra></extra>")
    fig.add_vline(x=be.current_images_per_month, line={"color": "#263238", "dash": "dot", "width": 1})
    return fig


def projection_chart(projection: Projection, title: str = "Daily spend and next month's trend") -> go.Figure:
    """Bars: billed spend per day; line: the fitted trend; dashed: the projected coming days."""
    fig = _layout(go.Figure(), title, "day (UTC)", "USD per day")
    history = projection.history
    if history.empty:
        return empty_figure(fig, "No billed spend to project from")
    fig.add_bar(x=history["day"], y=history["spend_usd"], name="billed", marker_color="#90caf9",
                hovertemplate=f"billed: {USD}<extra></extra>")
    fig.add_scatter(x=history["day"], y=history["fit_usd"], name="trend", mode="lines",
                    line={"color": "#0d47a1"}, hovertemplate=f"trend: {USD}<extra></extra>")
    fig.add_scatter(x=projection.forecast["day"], y=projection.forecast["spend_usd"],
                    name=f"projected (${projection.next_month_usd:,.0f} next month)", mode="lines",
                    line={"color": "#0d47a1", "dash": "dash"},
                    hovertemplate=f"projected: {USD}<extra></extra>")
    fig.update_layout(hovermode="x unified")
    return fig
