"""Plotly figures for the real-time pages: prequential curves and latency histograms."""
from __future__ import annotations

import numpy as np
import pandas as pd

from recapp.schema import TIME_COL


def prequential_figure(result, *, window: int = 1000, metric: str = "hit_rate", x: str = "position"):
    """Rolling HR@k (or NDCG@k) over the replayed stream, one line per model and mode.

    ``result`` is a :class:`~recapp.realtime.prequential.PrequentialResult`;
    ``metric`` is ``"hit_rate"``, ``"ndcg"`` or ``"cumulative_hit_rate"``; ``x`` is
    ``"position"`` (events replayed) or ``"timestamp"`` (shown as dates).
    Static runs are dashed, real-time runs solid.
    """
    import plotly.graph_objects as go

    if metric not in ("hit_rate", "ndcg", "cumulative_hit_rate"):
        raise ValueError(f"metric={metric!r} is not accepted; accepted values: ['hit_rate', 'ndcg', 'cumulative_hit_rate']")
    if x not in ("position", TIME_COL):
        raise ValueError(f"x={x!r} is not accepted; accepted values: ['position', '{TIME_COL}']")
    curve = result.curve(window=window)
    fig = go.Figure()
    for (model, mode), g in curve.groupby(["model", "mode"], sort=False):
        xs = pd.to_datetime(g[TIME_COL], unit="s", utc=True) if x == TIME_COL else g["position"]
        fig.add_trace(go.Scatter(x=xs, y=g[metric], mode="lines", name=f"{model} ({mode})",
                                 line={"dash": "dash" if mode == "static" else "solid"}))
    label = {"hit_rate": f"HR@{result.k}", "ndcg": f"NDCG@{result.k}", "cumulative_hit_rate": f"cumulative HR@{result.k}"}[metric]
    fig.update_layout(
        title=f"Prequential {label} ({'rolling ' + str(window) + ' events' if metric != 'cumulative_hit_rate' else 'since start'})",
        xaxis_title="event" if x == "position" else "time", yaxis_title=label, template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def latency_histogram(latencies: dict, *, unit: str = "ms", bins: int = 60, log_x: bool = False):
    """Overlaid histograms of per-event latency, one per name in ``latencies`` ({name: seconds array}).

    Dashed lines mark each series' p99; values are shown in ``unit`` ("ms" or "us").
    """
    import plotly.graph_objects as go

    scale = {"ms": 1e3, "us": 1e6}.get(unit)
    if scale is None:
        raise ValueError(f"unit={unit!r} is not accepted; accepted values: ['ms', 'us']")
    fig = go.Figure()
    for name, values in latencies.items():
        v = np.asarray(values, dtype=np.float64) * scale
        fig.add_trace(go.Histogram(x=np.log10(v) if log_x else v, nbinsx=bins, name=name, opacity=0.6))
        p99 = float(np.percentile(v, 99)) if len(v) else np.nan
        fig.add_vline(x=np.log10(p99) if log_x else p99, line_dash="dash", annotation_text=f"{name} p99 {p99:.2f} {unit}")
    fig.update_layout(barmode="overlay", template="plotly_white", title="Ingest + top-10 latency",
                      xaxis_title=f"log10 latency ({unit})" if log_x else f"latency ({unit})", yaxis_title="events")
    return fig


__all__ = ["prequential_figure", "latency_histogram"]
