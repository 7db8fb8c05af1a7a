"""Plotly figures for experiments: interval plots, regret curves, sequential boundaries, funnels.

Each function takes the tidy DataFrame that the experiment module returns and
gives back a ``plotly.graph_objects.Figure``; notebooks and the dashboard
only display it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def interval_plot(df: pd.DataFrame, label: str = "estimator", estimate: str = "estimate", low: str = "ci_low",
                  high: str = "ci_high", truth: float | None = None, truth_band: tuple[float, float] | None = None,
                  reference: dict | None = None, title: str = "", x_title: str = "value") -> go.Figure:
    """Point estimates with horizontal error bars, one row per ``label``.

    ``truth`` draws a vertical line (with ``truth_band`` shaded, e.g. its own
    interval); ``reference`` adds dashed lines, e.g. ``{"published": 0.0035}``.
    Works for OPE tables and for A/B results (``label="metric"``, ``estimate="diff"``).
    """
    d = df.reset_index(drop=True)
    labels = d[label].astype(str).tolist()
    fig = go.Figure(go.Scatter(
        x=d[estimate], y=labels, mode="markers", marker=dict(size=10, color=_PALETTE[0]), name="estimate",
        error_x=dict(type="data", symmetric=False, array=(d[high] - d[estimate]).to_numpy(),
                     arrayminus=(d[estimate] - d[low]).to_numpy()),
        hovertemplate="%{y}: %{x:.4g}<extra></extra>",
    ))
    if truth_band is not None:
        fig.add_vrect(x0=truth_band[0], x1=truth_band[1], fillcolor="green", opacity=0.12, line_width=0)
    if truth is not None:
        fig.add_vline(x=truth, line_color="green", annotation_text="truth", annotation_position="top")
    for n, (name, value) in enumerate((reference or {}).items()):
        fig.add_vline(x=value, line_dash="dash", line_color=_PALETTE[(n + 3) % len(_PALETTE)], annotation_text=name,
                      annotation_position="bottom")
    fig.update_layout(title=title, xaxis_title=x_title, yaxis=dict(autorange="reversed"), template="plotly_white",
                      height=120 + 45 * len(d), showlegend=False)
    return fig


def ab_plot(results: pd.DataFrame, title: str = "Treatment minus control") -> go.Figure:
    """The :func:`recapp.experiment.abtest.analyze` table as relative lifts with intervals, one row per (arm, metric)."""
    d = results.copy()
    base = d["control"].replace(0, np.nan)
    d["label"] = d["arm"].astype(str) + " · " + d["metric"].astype(str) + np.where(d["significant"], " *", "")
    d["lift_low"], d["lift_high"] = d["ci_low"] / base, d["ci_high"] / base
    d["lift_pt"] = d["diff"] / base
    fig = interval_plot(d, label="label", estimate="lift_pt", low="lift_low", high="lift_high", title=title,
                        x_title="relative lift (interval at the unadjusted level; * significant after correction)")
    fig.add_vline(x=0, line_color="black", line_width=1)
    fig.update_xaxes(tickformat=".0%")
    return fig


def regret_curves(curves: pd.DataFrame, y: str = "cumulative_regret", by: str = "arm",
                  title: str = "Cumulative regret against the oracle") -> go.Figure:
    """One line per policy from :meth:`SimulationResult.regret_curve` / :func:`compare_policies`."""
    fig = go.Figure()
    for n, (name, g) in enumerate(curves.groupby(by, sort=False)):
        fig.add_trace(go.Scatter(x=g["slates"], y=g[y], mode="lines", name=str(name),
                                 line=dict(color=_PALETTE[n % len(_PALETTE)])))
    fig.update_layout(title=title, xaxis_title="slates shown", yaxis_title=y.replace("_", " "), template="plotly_white")
    return fig


def sequential_plot(z_paths=None, boundaries: pd.DataFrame | None = None, monitor: pd.DataFrame | None = None,
                    max_paths: int = 50, alpha: float = 0.05, title: str = "Sequential monitoring") -> go.Figure:
    """z-statistics look by look against the alpha-spending boundary and the fixed 1.96 line.

    Pass simulated ``z_paths`` (experiments x looks) with ``boundaries`` from
    :func:`recapp.experiment.sequential.peeking_simulation` (``return_paths=True``),
    or one experiment's :func:`recapp.experiment.sequential.monitor` table.
    """
    from scipy import stats

    fig = go.Figure()
    if monitor is not None:
        looks = np.arange(1, len(monitor) + 1)
        fig.add_trace(go.Scatter(x=looks, y=monitor["z"], mode="lines+markers", name="observed z", line=dict(color=_PALETTE[0])))
        bound = monitor["z_boundary"].to_numpy()
    else:
        z = np.asarray(z_paths)
        looks = np.arange(1, z.shape[1] + 1)
        for n, path in enumerate(z[:max_paths]):
            fig.add_trace(go.Scatter(x=looks, y=path, mode="lines", line=dict(color="rgba(100,100,100,0.25)", width=1),
                                     showlegend=n == 0, name="simulated A/A z"))
        bound = boundaries["z_boundary"].to_numpy()
    crit = stats.norm.isf(alpha / 2)
    finite = np.where(np.isfinite(bound), bound, np.nan)
    for sign in (1, -1):
        fig.add_trace(go.Scatter(x=looks, y=sign * finite, mode="lines+markers", line=dict(color=_PALETTE[3], width=3),
                                 name="O'Brien-Fleming boundary", showlegend=sign == 1))
        fig.add_trace(go.Scatter(x=looks, y=np.full(len(looks), sign * crit), mode="lines", line=dict(color=_PALETTE[1], dash="dash"),
                                 name=f"naive |z| = {crit:.2f}", showlegend=sign == 1))
    fig.update_layout(title=title, xaxis_title="look", yaxis_title="z", template="plotly_white")
    return fig


def peeking_plot(table: pd.DataFrame, alpha: float = 0.05, title: str = "False-positive rate by monitoring rule") -> go.Figure:
    """Bars of the rejection rate per rule (:func:`peeking_simulation`) with Wilson intervals and the nominal alpha."""
    fig = go.Figure(go.Bar(
        x=table["rule"], y=table["rejection_rate"], marker_color=_PALETTE[0],
        error_y=dict(type="data", symmetric=False, array=table["ci_high"] - table["rejection_rate"],
                     arrayminus=table["rejection_rate"] - table["ci_low"]),
    ))
    fig.add_hline(y=alpha, line_dash="dash", line_color=_PALETTE[3], annotation_text=f"alpha = {alpha:g}")
    fig.update_layout(title=title, yaxis_title="share of experiments declared significant", yaxis_tickformat=".0%",
                      template="plotly_white")
    return fig


def funnel_plot(funnel: pd.DataFrame, title: str = "Funnel by arm") -> go.Figure:
    """A funnel chart per arm from :meth:`SimulationResult.funnel`."""
    fig = go.Figure()
    for n, (arm, g) in enumerate(funnel.groupby("arm", sort=False)):
        fig.add_trace(go.Funnel(name=str(arm), y=g["stage"], x=g["count"], textinfo="value+percent initial",
                                marker=dict(color=_PALETTE[n % len(_PALETTE)])))
    fig.update_layout(title=title, template="plotly_white")
    return fig


def calibration_plot(table: pd.DataFrame, alpha: float = 0.05, title: str = "Rejection rate by test") -> go.Figure:
    """Bars of :func:`recapp.experiment.ab_calibration.calibration` rejection rates, with alpha or predicted power marked."""
    fig = go.Figure(go.Bar(
        x=table["metric"], y=table["rejection_rate"], marker_color=_PALETTE[0], hovertext=table["test"],
        error_y=dict(type="data", symmetric=False, array=table["ci_high"] - table["rejection_rate"],
                     arrayminus=table["rejection_rate"] - table["ci_low"]),
    ))
    pred = table["predicted_power"].dropna()
    if len(pred) and float(pred.iloc[0]) != alpha:
        fig.add_hline(y=float(pred.iloc[0]), line_dash="dot", line_color=_PALETTE[2], annotation_text="NormalIndPower")
    fig.add_hline(y=alpha, line_dash="dash", line_color=_PALETTE[3], annotation_text=f"alpha = {alpha:g}")
    fig.update_layout(title=title, yaxis_title="rejection rate", yaxis_tickformat=".0%", template="plotly_white")
    return fig
