"""Figures that compare models and show their training: benchmark bars, accuracy against beyond-accuracy, metric by group, loss curves."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from recapp.metrics.checks import check_ids, check_scores
from recapp.schema import require_columns
from recapp.viz.style import apply_layout
from recapp.viz.tables import _names, _numbers


def _metric_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if "@" in str(c)]


def benchmark_bars(table: pd.DataFrame, metrics: Sequence[str] | None = None, *, model_col: str = "model",
                   title: str | None = None) -> go.Figure:
    """Grouped bars of ranking metrics per model (models sorted by the first metric, best on the left).

    ``metrics`` defaults to every column whose name has an ``@`` (``ndcg@10``, ...);
    a single string, or a metric column holding text, raises ValueError. A
    missing score (NaN) draws no bar.
    """
    require_columns(table, "table", model_col)
    metrics = _names("metrics", metrics) if metrics is not None else _metric_columns(table)
    require_columns(table, "table", *metrics)
    if not metrics:
        raise ValueError(f"no metric columns to plot; columns found: {list(table.columns)}")
    table = table.copy()
    for m in metrics:
        table[m] = _numbers(table, "table", m, "score")
    t = table.sort_values(metrics[0], ascending=False, kind="stable")
    fig = go.Figure()
    for m in metrics:
        fig.add_trace(go.Bar(x=t[model_col].astype(str), y=t[m].to_numpy(), name=m,
                             text=[f"{v:.3f}" for v in t[m]], textposition="outside",
                             hovertemplate="%{x}<br>" + m + " %{y:.4f}<extra></extra>"))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text="score")
    return apply_layout(fig, title or "Ranking accuracy per model", legend=dict(orientation="h", y=-0.15))


def accuracy_vs_beyond(table: pd.DataFrame, accuracy: str | None = None,
                       beyond: Sequence[str] = ("coverage", "novelty", "diversity"), *, model_col: str = "model",
                       title: str | None = None) -> go.Figure:
    """One scatter per beyond-accuracy metric: each model's accuracy against its coverage, novelty, diversity.

    ``accuracy`` defaults to the first ``ndcg@`` column; beyond-accuracy
    columns missing from ``table`` are skipped (at least one must be present).
    ``beyond`` given as one string, or a plotted column holding text, raises ValueError.
    """
    require_columns(table, "table", model_col)
    beyond = _names("beyond", beyond)
    if accuracy is None:
        cands = [c for c in table.columns if str(c).startswith("ndcg@")] or _metric_columns(table)
        if not cands:
            raise ValueError(f"no accuracy column found; pass accuracy=... (columns: {list(table.columns)})")
        accuracy = cands[0]
    require_columns(table, "table", accuracy)
    present = [b for b in beyond if b in table.columns]
    if not present:
        raise ValueError(f"none of the beyond-accuracy columns {list(beyond)} is in the table; columns: {list(table.columns)}")
    # Text in a column would turn its axis into categories, plotted without complaint.
    table = table.copy()
    for c in [accuracy, *present]:
        table[c] = _numbers(table, "table", c, "score")
    fig = make_subplots(rows=1, cols=len(present), shared_yaxes=True, horizontal_spacing=0.06)
    names = table[model_col].astype(str).to_numpy()
    palette = ["#4292c6", "#d94801", "#238b45", "#6a51a3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666",
               "#1b9e77", "#7570b3", "#d95f02"]
    colors = {n: palette[i % len(palette)] for i, n in enumerate(names)}
    for j, b in enumerate(present, start=1):
        fig.add_trace(go.Scatter(
            x=table[b].to_numpy(), y=table[accuracy].to_numpy(), mode="markers+text", text=names,
            textposition="top center", marker=dict(size=11, color=[colors[n] for n in names]), showlegend=False,
            hovertemplate="%{text}<br>" + b + " %{x:.3f}<br>" + accuracy + " %{y:.4f}<extra></extra>",
        ), row=1, col=j)
        fig.update_xaxes(title_text=b, row=1, col=j)
    fig.update_yaxes(title_text=accuracy, row=1, col=1)
    return apply_layout(fig, title or f"{accuracy} against beyond-accuracy metrics (up and right is better)", height=430)


def metric_by_group(frame: pd.DataFrame, metric: str = "ndcg_at_k", group: str = "history", *, color: str | None = None,
                    title: str | None = None) -> go.Figure:
    """Mean of ``metric`` per ``group`` (bars, with standard-error whiskers), one bar colour per ``color`` value.

    Built for :func:`by_history` output (cold against warm users), but any
    per-user frame with a group column works. Hover shows the number of users.
    A missing or text ``metric`` value, or a missing ``group`` / ``color`` value,
    raises naming the rows (the mean and the user count would leave them out).
    """
    require_columns(frame, "frame", metric, group, *([color] if color else []))
    check_ids(frame, "frame", group, *([color] if color else []))
    values = check_scores(frame, "frame", metric, what="metric value")
    if not pd.api.types.is_numeric_dtype(frame[metric]):
        frame = frame.copy()
        frame[metric] = values
    keys = [group] + ([color] if color else [])
    agg = (frame.groupby(keys, observed=True)[metric]
           .agg(mean="mean", sem=lambda s: s.std(ddof=1) / np.sqrt(len(s)) if len(s) > 1 else 0.0, users="size")
           .reset_index())
    fig = go.Figure()
    series = [(None, agg)] if not color else list(agg.groupby(color, sort=False, observed=True))
    for name, part in series:
        fig.add_trace(go.Bar(
            x=part[group].astype(str), y=part["mean"], name=str(name) if name is not None else metric,
            error_y=dict(type="data", array=part["sem"].fillna(0).to_numpy()), customdata=part["users"].to_numpy(),
            hovertemplate="%{x}<br>mean %{y:.4f}<br>%{customdata} users<extra></extra>",
        ))
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text=group)
    fig.update_yaxes(title_text=f"mean {metric}")
    return apply_layout(fig, title or f"{metric} by {group}", showlegend=bool(color), legend=dict(orientation="h", y=-0.2))


# ---- training figures --------------------------------------------------------------------
def _log_frame(log, name: str) -> pd.DataFrame:
    """A training log (``TrainLog``, DataFrame with epoch/loss/valid, or a list of losses) as a DataFrame."""
    label = f"logs[{name!r}]"
    if hasattr(log, "to_frame") and not isinstance(log, (pd.DataFrame, pd.Series)):
        out = log.to_frame()
        require_columns(out, label, "loss")
    elif isinstance(log, pd.DataFrame):
        require_columns(log, label, "loss")
        out = log.copy()
        if "epoch" not in out.columns:
            out["epoch"] = np.arange(1, len(out) + 1)
    else:
        try:
            losses = np.asarray(list(log), dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{label} must be a TrainLog, a DataFrame with a 'loss' column or a list of losses "
                             f"(numbers): {e}") from None
        return pd.DataFrame({"epoch": np.arange(1, len(losses) + 1), "loss": losses})
    # NaN losses stay (a diverged epoch is worth seeing); text would fail deep in the plotting.
    _numbers(out, label, "loss", "loss")
    return out


def loss_curves(logs: Mapping, *, relative: bool = True, valid_label: str = "validation NDCG@10",
                title: str | None = None) -> go.Figure:
    """Training loss per epoch for several models, and their validation score where one was tracked.

    ``logs`` maps a model name to its training log: a ``TrainLog`` (a torch
    model's ``train_log_``), a DataFrame with ``epoch``, ``loss`` and optional
    ``valid`` columns, or a plain list of losses. With ``relative`` each loss
    is divided by its first epoch's, so models whose losses live on different
    scales share one axis. ``logs`` that is not a mapping, or a log whose
    losses are not numbers, raises naming it.
    """
    if not isinstance(logs, Mapping):
        raise TypeError(f"logs must be a mapping {{model name: training log}}, got {type(logs).__name__}")
    frames = {str(name): _log_frame(log, str(name)) for name, log in logs.items()}
    has_valid = any("valid" in f.columns and f["valid"].notna().any() for f in frames.values())
    cols = 2 if has_valid else 1
    fig = make_subplots(rows=1, cols=cols, subplot_titles=(
        "training loss" + (" (relative to epoch 1)" if relative else ""),) + ((valid_label,) if has_valid else ()))
    palette = ["#4292c6", "#d94801", "#238b45", "#6a51a3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
    for n, (name, f) in enumerate(frames.items()):
        color = palette[n % len(palette)]
        loss = f["loss"].to_numpy(dtype=np.float64)
        if relative and len(loss) and np.isfinite(loss[0]) and loss[0] != 0:
            loss = loss / loss[0]
        fig.add_trace(go.Scatter(x=f["epoch"], y=loss, mode="lines+markers", name=name, legendgroup=name,
                                 line=dict(color=color)), row=1, col=1)
        if has_valid and "valid" in f.columns and f["valid"].notna().any():
            v = f[f["valid"].notna()]
            fig.add_trace(go.Scatter(x=v["epoch"], y=v["valid"], mode="lines+markers", name=name, legendgroup=name,
                                     showlegend=False, line=dict(color=color, dash="dot")), row=1, col=2)
    for c in range(1, cols + 1):
        fig.update_xaxes(title_text="epoch", row=1, col=c)
    return apply_layout(fig, title or "Training curves", legend=dict(orientation="h", y=-0.2))
