"""Plotly figures shared by the notebooks and the dashboard.

Every figure function is pure: it takes plain data (an event DataFrame in the
schema of :mod:`recapp.schema`, a benchmark table, training logs) and returns
a new ``plotly.graph_objects.Figure``; nothing is shown or written. The table
helpers beside them compute what a figure draws, so a notebook can print the
numbers behind a chart and a test can check them: :func:`dataset_summary`,
:func:`activity_counts`, :func:`funnel_counts` and :func:`bandit_summary` for
data; :func:`by_history` and :func:`per_user_by_history` for cold against warm
users; :func:`replay_latencies` and :func:`latency_percentiles` for the cost of
real-time updates.

Figures of the real-time engine and of experiments live beside their code, in
``recapp.realtime.plots`` and ``recapp.experiment.plots``.
"""
from __future__ import annotations

from recapp.viz.data import bandit_click_rates, event_funnel, long_tail, rating_histogram, time_patterns
from recapp.viz.models import accuracy_vs_beyond, benchmark_bars, loss_curves, metric_by_group
from recapp.viz.style import EVENT_COLORS, TEMPLATE, apply_layout
from recapp.viz.tables import (
    activity_counts,
    bandit_summary,
    by_history,
    dataset_summary,
    funnel_counts,
    head_share,
    latency_percentiles,
    per_user_by_history,
    replay_latencies,
)

__all__ = [
    "TEMPLATE", "EVENT_COLORS", "apply_layout",
    "dataset_summary", "activity_counts", "head_share", "funnel_counts", "by_history", "per_user_by_history",
    "bandit_summary", "replay_latencies", "latency_percentiles",
    "long_tail", "rating_histogram", "event_funnel", "time_patterns", "bandit_click_rates",
    "benchmark_bars", "accuracy_vs_beyond", "metric_by_group", "loss_curves",
]
