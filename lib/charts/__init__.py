"""Pure plotly figure builders (unit-tested; pages only call st.plotly_chart on them)."""
import plotly.graph_objects as go


def empty_figure(fig: go.Figure, text: str) -> go.Figure:
    """The same figure with its axes hidden and a centred note saying why there is nothing to draw."""
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                       font={"size": 14, "color": "#78909c"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig
