"""Plotly figures for training runs."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import plotly.graph_objects as go


def smooth(values: Sequence[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average with bias correction (TensorBoard's smoothing), so the first
    points are not dragged towards zero."""
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight ** i))
    return out


def loss_figure(series: Sequence[tuple[int, float]], checkpoint_steps: Iterable[int] = (),
                total_steps: int | None = None, smoothing: float = 0.9) -> go.Figure:
    """Raw loss (faint), its smoothed trend, and a dotted line at every saved checkpoint."""
    steps = [s for s, _ in series]
    losses = [v for _, v in series]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=steps, y=losses, mode="lines", name="loss",
                             line={"width": 1, "color": "rgba(99,110,250,0.35)"}))
    if len(series) > 1:
        fig.add_trace(go.Scatter(x=steps, y=smooth(losses, smoothing), mode="lines", name="smoothed",
                                 line={"width": 2.5, "color": "rgb(99,110,250)"}))
    for step in checkpoint_steps:
        fig.add_vline(x=step, line={"dash": "dot", "width": 1, "color": "gray"})
    fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10}, title="Training loss",
                      xaxis_title="step", yaxis_title="loss", legend={"orientation": "h", "y": -0.25},
                      xaxis_range=[0, total_steps] if total_steps else None)
    return fig
