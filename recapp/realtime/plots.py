"""Plotly figures for the real-time pages: prequential curves and latency histograms."""
from __future__ import annotations

import numpy as np
import pandas as pd

from recapp.models.base import check_param
from recapp.realtime.prequential import PrequentialResult
from recapp.schema import TIME_COL, parse_timestamps, require_columns, utc_seconds


def prequential_figure(result, *, window: int = 1000, metric: str = "hit_rate", x: str = "position"):
    """Rolling HR@k (or NDCG@k) over the replayed stream, one line per model and mode.

    ``result`` is a :class:`~recapp.realtime.prequential.PrequentialResult`
    (wrap the frame :func:`~recapp.realtime.prequential.prequential` returns as
    ``PrequentialResult(frame, k)``); ``metric`` is ``"hit_rate"``, ``"ndcg"`` or
    ``"cumulative_hit_rate"``; ``x`` is ``"position"`` (events replayed) or
    ``"timestamp"`` (shown as UTC dates, each time read as the engine reads it:
    epoch seconds, milli-, micro- or nanoseconds, ISO 8601 text or datetimes).
    Static runs are dashed, real-time runs solid. Refused: any other ``result``,
    one with no events or without the columns prequential writes, and, with
    ``x="timestamp"``, missing or unreadable times (SchemaError naming the rows).
    """
    import plotly.graph_objects as go

    if metric not in ("hit_rate", "ndcg", "cumulative_hit_rate"):
        raise ValueError(f"metric={metric!r} is not accepted; accepted values: ['hit_rate', 'ndcg', 'cumulative_hit_rate']")
    if x not in ("position", TIME_COL):
        raise ValueError(f"x={x!r} is not accepted; accepted values: ['position', '{TIME_COL}']")
    _check_result(result)
    if x == TIME_COL:
        # A NaT point is dropped from the line without a word, so an unreadable time is refused instead.
        utc_seconds(result.events, "result.events", TIME_COL, hint="; or draw with x='position'")
    curve = result.curve(window=window)
    fig = go.Figure()
    for (model, mode), g in curve.groupby(["model", "mode"], sort=False):
        # Numeric times keep the unit of the replayed log (prequential passes them on as given), so read them by
        # the schema's rule rather than as seconds: milliseconds would land in the year 55000.
        xs = pd.to_datetime(parse_timestamps(g[TIME_COL]), unit="s", utc=True) if x == TIME_COL else g["position"]
        fig.add_trace(go.Scatter(x=xs, y=g[metric], mode="lines", name=f"{model} ({mode})",
                                 line={"dash": "dash" if mode == "static" else "solid"}))
    label = {"hit_rate": f"HR@{result.k}", "ndcg": f"NDCG@{result.k}", "cumulative_hit_rate": f"cumulative HR@{result.k}"}[metric]
    fig.update_layout(
        title=f"Prequential {label} ({'rolling ' + str(window) + ' events' if metric != 'cumulative_hit_rate' else 'since start'})",
        xaxis_title="event" if x == "position" else "time", yaxis_title=label, template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def _check_result(result) -> None:
    if not isinstance(result, PrequentialResult):
        hint = (" (prequential() returns one run's frame: wrap it as PrequentialResult(frame, k))"
                if isinstance(result, pd.DataFrame) else "")
        raise TypeError(f"result must be a recapp.realtime.prequential.PrequentialResult, as run_prequential "
                        f"returns; got a {type(result).__name__}{hint}")
    require_columns(result.events, "result.events", "model", "mode", "position", TIME_COL, "hit", "ndcg")
    if not len(result.events):
        raise ValueError("result.events has no rows: there is no run to draw")


def latency_histogram(latencies: dict, *, unit: str = "ms", bins: int = 60, log_x: bool = False):
    """Overlaid histograms of per-event latency, one per name in ``latencies`` ({name: seconds array}).

    Dashed lines mark each series' p99 (:func:`recapp.viz.latency_percentiles`; an
    empty series gets none); values are shown in ``unit`` ("ms" or "us").
    Refused as ``latency_percentiles`` refuses them: anything but a mapping, and
    missing, infinite, negative or text latencies (ValueError naming the series
    and position); with ``log_x``, a latency of 0 too; ``bins`` not an integer >= 0 (0: plotly picks).
    """
    import plotly.graph_objects as go

    from recapp.viz.tables import latency_percentiles

    # The p99 lines are that table's numbers, and its checks are this figure's.
    p99s = latency_percentiles(latencies, unit=unit, percentiles=(99,))["p99"]
    check_param("bins", bins, low=0, integer=True)  # plotly's own message names its nbinsx, not bins
    scale = {"ms": 1e3, "us": 1e6}[unit]
    fig = go.Figure()
    for name, values in latencies.items():
        v = np.asarray(values, dtype=np.float64).ravel() * scale
        if log_x and (v == 0).any():
            # log10(0) is -inf: plotly would drop the point from the histogram without a word.
            raise ValueError(f"log_x=True needs latencies > 0; latencies[{name!r}] has 0 at position "
                             f"{int(np.flatnonzero(v == 0)[0])}; draw with log_x=False")
        fig.add_trace(go.Histogram(x=np.log10(v) if log_x else v, nbinsx=bins, name=name, opacity=0.6))
        p99 = float(p99s[str(name)])
        if len(v):
            fig.add_vline(x=np.log10(p99) if log_x else p99, line_dash="dash", annotation_text=f"{name} p99 {p99:.2f} {unit}")
    fig.update_layout(barmode="overlay", template="plotly_white", title="Ingest + top-10 latency",
                      xaxis_title=f"log10 latency ({unit})" if log_x else f"latency ({unit})", yaxis_title="events")
    return fig


__all__ = ["prequential_figure", "latency_histogram"]
