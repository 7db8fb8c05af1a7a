"""The dashboard's plotly figures: built whole when what they show starts, then their traces changed in place
under one ``batch_update``; :class:`FigureSlot` holds a tab's figure and swaps in a new one."""
from __future__ import annotations

import numpy as np

#: Figure width in pixels. Fixed, because a figure in a tab that is hidden when the page is
#: drawn would otherwise take plotly's default width (700 px) rather than the tab's.
WIDTH = 1180


def gaps(values) -> list:
    """NaN as None: the figure's state travels as JSON, which has no NaN (a gap in plotly either way)."""
    return [None if v is None or (isinstance(v, float) and not np.isfinite(v)) else v for v in values]


def live_figure(hit_window: int, simulated: bool = False):
    """Three panels for one shopper: rolling hit rate, latency, and CTR (a note on it unless ``simulated``)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=(f"Hit rate (last {hit_window} choices)",
                                                         "Latency ms (purple: engine, grey: whole tick)",
                                                         "CTR (simulated shopper only)"), horizontal_spacing=0.08)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="hit rate", line=dict(color="#1565c0")), 1, 1)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="engine", line=dict(color="#6a1b9a")), 1, 2)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="whole tick", line=dict(color="#bbb")), 1, 2)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="CTR", line=dict(color="#2e7d32")), 1, 3)
    fig.update_yaxes(range=[0, 1], row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_yaxes(range=[0, 1], row=1, col=3)
    fig.update_xaxes(title_text="event")
    fig.add_annotation(text="only for simulated shoppers", x=0.5, y=0.5, xref="x3 domain", yref="y3 domain",
                       showarrow=False, font=dict(color="#999"), visible=not simulated)
    fig.update_layout(height=260, width=WIDTH, margin=dict(l=40, r=10, t=30, b=40), showlegend=False,
                      template="plotly_white")
    return go.FigureWidget(fig)


def update_live(fig, series: dict, simulated: bool) -> None:
    """Redraw the Live tab's panels from a :class:`LiveSession`'s ``series``."""
    x = list(series["x"])
    with fig.batch_update():
        fig.data[0].x, fig.data[0].y = x, gaps(series["hit"])
        fig.data[1].x, fig.data[1].y = x, gaps(series["engine"])
        fig.data[2].x, fig.data[2].y = x, gaps(series["tick"])
        fig.data[3].x, fig.data[3].y = (x, gaps(series["ctr"])) if simulated else ([], [])


def stream_figure(k: int, hit_window: int):
    """Three panels for the Stream tab: rolling HR@k live vs static, events per second, latency p99."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=(f"HR@{k}, last {hit_window} choices: live vs static (dotted)", "events / s",
                                                         "latency p99 (ms)"), horizontal_spacing=0.08)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="live", line=dict(color="#1565c0")), 1, 1)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="static", line=dict(color="#999", dash="dot")), 1, 1)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="events/s", line=dict(color="#2e7d32"),
                             showlegend=False), 1, 2)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="p99", line=dict(color="#6a1b9a"), showlegend=False), 1, 3)
    fig.update_yaxes(rangemode="tozero")
    fig.update_xaxes(title_text="events streamed")
    fig.update_layout(height=260, width=WIDTH, margin=dict(l=40, r=10, t=30, b=40), template="plotly_white",
                      showlegend=False)
    return go.FigureWidget(fig)


def update_stream(fig, series: dict) -> None:
    """Redraw the Stream tab's panels from a :class:`StreamSession`'s ``series``."""
    x = list(series["x"])
    with fig.batch_update():
        fig.data[0].x, fig.data[0].y = x, gaps(series["hr_live"])
        fig.data[1].x, fig.data[1].y = x, gaps(series["hr_static"])
        fig.data[2].x, fig.data[2].y = x, gaps(series["rate"])
        fig.data[3].x, fig.data[3].y = x, gaps(series["p99"])


class FigureSlot:
    """The place on a tab for a figure widget, built anew and whole (by ``build``) whenever what it shows starts over.

    A figure made with the page in a tab not yet shown sometimes never drew the updates
    sent to it (plotly 7.1 FigureWidget, anywidget 0.11, Voila: the browser test saw an
    empty A/B figure in about one run in three, and later an empty Stream figure), and a
    change sent before the page shows a figure never reaches it. A new widget's view
    draws the state it has when it is shown, so a tab renews its figure when an
    experiment or a stream starts and when it is reset; only traces change in place.
    """

    def __init__(self, W, build):
        self._build = build
        self.fig = build()
        self.box = W.VBox([self.fig])

    def renew(self) -> None:
        """Swap in a new figure from ``build``; the old widget is closed."""
        old, self.fig = self.fig, self._build()
        self.box.children = (self.fig,)
        old.close()
