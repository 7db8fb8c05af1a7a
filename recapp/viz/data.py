"""Figures of an event log: long tail, ratings, funnel, time patterns, bandit click rates."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from recapp.metrics.checks import check_ids, check_scores
from recapp.schema import (
    EVENT_COL,
    EVENT_TYPES,
    FUNNEL,
    ITEM_COL,
    RATING_COL,
    TIME_COL,
    USER_COL,
    SchemaError,
    require_columns,
)
from recapp.schema.errors import _quote_rows
from recapp.viz.tables import _labelled, _numbers, _require_rows, _utc_times, activity_counts, funnel_counts, head_share
from recapp.viz.style import _FREQ_NAMES, EVENT_COLORS, WEEKDAYS, apply_layout


def long_tail(df: pd.DataFrame, by: str = "item", *, head: float = 0.2, col_user: str = USER_COL,
              col_item: str = ITEM_COL, title: str | None = None) -> go.Figure:
    """Events per item (or user) against its popularity rank, log scale, with the cumulative share.

    The shaded band is the most active ``head`` fraction; the title says what
    share of all events it accounts for: the long tail in one number. An empty
    ``df`` or a missing id raises (the share would be 0% or leave rows out).
    """
    counts = activity_counts(df, by, col_user=col_user, col_item=col_item)
    _require_rows(df, "df")
    rank = np.arange(1, len(counts) + 1)
    cum = np.cumsum(counts.to_numpy()) / max(counts.sum(), 1)
    share = head_share(counts, head)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=rank, y=counts.to_numpy(), mode="lines", name=f"events per {by}", fill="tozeroy",
                             line=dict(color="#4292c6"),
                             customdata=counts.index.to_numpy(),
                             hovertemplate=f"rank %{{x}}<br>{by} %{{customdata}}<br>%{{y}} events<extra></extra>"),
                  secondary_y=False)
    fig.add_trace(go.Scatter(x=rank, y=cum, mode="lines", name="cumulative share", line=dict(color="#d94801", dash="dot"),
                             hovertemplate="top %{x}: %{y:.1%} of events<extra></extra>"), secondary_y=True)
    n_head = max(1, int(np.ceil(head * len(counts))))
    fig.add_vrect(x0=0.5, x1=n_head + 0.5, fillcolor="#fd8d3c", opacity=0.12, line_width=0)
    fig.update_yaxes(title_text="events", type="log", secondary_y=False)
    fig.update_yaxes(title_text="cumulative share", tickformat=".0%", range=[0, 1.02], tickmode="linear", tick0=0,
                     dtick=0.2, showgrid=False, secondary_y=True)
    fig.update_xaxes(title_text=f"{by} rank (most active first)")
    default = f"Long tail: the top {head:.0%} of {by}s account for {share:.0%} of events"
    return apply_layout(fig, title or default, legend=dict(orientation="h", y=-0.2))


def rating_histogram(df: pd.DataFrame, *, col_rating: str = RATING_COL, title: str | None = None) -> go.Figure:
    """How often each rating value occurs (a histogram when ratings are not on a small discrete scale).

    Rows without a rating (views, clicks) are left out; text or infinite
    ratings, or no rating at all, raise ValueError naming the column.
    """
    require_columns(df, "df", col_rating)
    values = _numbers(df, "df", col_rating, "rating", finite=True)
    if np.isnan(values).all():
        raise ValueError(f"column {col_rating!r} of df has no ratings ({len(df):,} row(s), all missing): nothing to draw")
    r = df[col_rating].dropna() if pd.api.types.is_numeric_dtype(df[col_rating]) else pd.Series(values).dropna()
    fig = go.Figure()
    if r.nunique() <= 20:
        counts = r.value_counts().sort_index()
        share = counts / max(counts.sum(), 1)
        fig.add_trace(go.Bar(x=counts.index.to_numpy(), y=counts.to_numpy(), marker_color="#6a51a3",
                             text=[f"{s:.0%}" for s in share], textposition="outside",
                             hovertemplate="rating %{x}<br>%{y} ratings<extra></extra>"))
        fig.update_xaxes(type="category")
    else:
        fig.add_trace(go.Histogram(x=r.to_numpy(), marker_color="#6a51a3"))
    fig.update_xaxes(title_text="rating")
    fig.update_yaxes(title_text="ratings")
    mean = float(r.mean()) if len(r) else float("nan")
    return apply_layout(fig, title or f"Ratings: {len(r):,} ratings, mean {mean:.2f}", showlegend=False)


def event_funnel(df: pd.DataFrame, *, stages: Sequence[str] = FUNNEL, unit: str = "events", col_event: str = EVENT_COL,
                 col_user: str = USER_COL, title: str | None = None) -> go.Figure:
    """The view -> click -> cart -> purchase funnel, counting ``"events"`` or distinct ``"users"`` per stage.

    ``stages`` is checked as in :func:`funnel_counts`; with no first-stage
    events the default title says so instead of showing a NaN rate.
    """
    if unit not in ("events", "users"):
        raise ValueError(f"unit={unit!r} is not supported; accepted values: ['events', 'users']")
    table = funnel_counts(df, stages=stages, col_event=col_event, col_user=col_user)
    stages = list(table.index)
    fig = go.Figure(go.Funnel(
        y=list(table.index), x=table[unit].to_numpy(), textinfo="value+percent initial+percent previous",
        marker=dict(color=[EVENT_COLORS.get(s, "#4292c6") for s in table.index]),
    ))
    last = table["overall_rate"].iloc[-1]
    if unit != "events":
        default = f"Funnel ({unit})"
    elif np.isnan(last):
        default = f"Funnel ({unit}): no {stages[0]} events"
    else:
        default = f"Funnel ({unit}): {last:.1%} of {stages[0]}s end in a {stages[-1]}"
    return apply_layout(fig, title or default, showlegend=False)


def time_patterns(df: pd.DataFrame, *, freq: str = "D", col_time: str = TIME_COL, col_event: str = EVENT_COL,
                  title: str | None = None) -> go.Figure:
    """Activity over time (one line per event type, binned by ``freq``) and a weekday x hour heatmap (UTC).

    ``freq`` is a pandas period alias: ``"h"``, ``"D"`` (default), ``"W"``, ``"M"``...;
    another ``freq``, a text or missing time, or a missing event type raises
    ValueError naming it. Event types the schema does not know get a line each, after the known ones.
    """
    require_columns(df, "df", col_time)
    _check_freq(freq)
    t = _utc_times(df, col_time, "df")
    if col_event in df.columns:
        # A row without a type would be in the heatmap but on no line.
        missing = df[col_event].isna().to_numpy()
        if missing.any():
            raise SchemaError(f"column {col_event!r} of df has {int(missing.sum()):,} missing event type(s), at rows "
                              f"{_quote_rows(df, missing, col_event)}; accepted: a type in every row, or no "
                              f"{col_event!r} column (one line for all events)")
    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.1,
                        subplot_titles=(f"events per {_FREQ_NAMES.get(freq, freq)}", "weekday x hour of day (UTC)"))
    naive = t.dt.tz_localize(None)
    events = df[col_event] if col_event in df.columns else pd.Series("event", index=df.index)
    # Unknown types get lines too (after the known ones), so that no event is on the heatmap alone.
    kinds = [e for e in EVENT_TYPES if (events == e).any()]
    kinds += [e for e in pd.unique(events) if e not in kinds]
    for ev in kinds:
        # Periods (not floor) so calendar frequencies such as "W" or "M" work too (pandas refuses "MS" for periods).
        s = naive[events.to_numpy() == ev].dt.to_period(freq).dt.start_time.value_counts().sort_index()
        fig.add_trace(go.Scatter(x=s.index, y=s.to_numpy(), mode="lines", name=str(ev),
                                 line=dict(color=EVENT_COLORS.get(ev))), row=1, col=1)
    grid = pd.crosstab(t.dt.day_of_week, t.dt.hour).reindex(index=range(7), columns=range(24), fill_value=0)
    fig.add_trace(go.Heatmap(z=grid.to_numpy(), x=list(range(24)), y=list(WEEKDAYS), colorscale="Blues",
                             colorbar=dict(title="events", x=1.02),
                             hovertemplate="%{y} %{x}:00<br>%{z} events<extra></extra>"), row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    fig.update_xaxes(title_text="hour", dtick=3, row=1, col=2)
    fig.update_yaxes(title_text="events", row=1, col=1)
    return apply_layout(fig, title or "When shoppers are active", height=430, legend=dict(orientation="h", y=-0.2))


def _check_freq(freq) -> None:
    # Checked on a one-row series, the way the lines are binned, so that an empty frame is checked too.
    try:
        pd.Series(pd.to_datetime([0], unit="s")).dt.to_period(freq)
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"freq={freq!r} is not a pandas period frequency; accepted: e.g. 'h', 'D', 'W', 'M'") from None


def bandit_click_rates(logs: Mapping[str, pd.DataFrame] | pd.DataFrame, by: str = "position", *,
                       col_reward: str = "click", title: str | None = None) -> go.Figure:
    """Mean reward per ``by`` value (a slot, an action...) for one or several logging policies.

    ``logs`` is a rounds DataFrame or ``{policy name: rounds}``. Whiskers are
    binomial standard errors; with few clicks they are wide, which is the point.
    So rewards must lie in [0, 1]; a missing ``by`` value or reward, a text
    reward, one outside [0, 1], ``by`` values of mixed kinds, no logs at all, ``logs`` of another kind (a list)
    or two policy names with the same text raise, naming the log and rows.
    """
    if not isinstance(logs, (pd.DataFrame, Mapping)):
        # dict() of a list of frames would pair up each frame's column names, or fail naming nothing.
        raise TypeError(f"logs must be a rounds DataFrame or {{policy name: rounds}}, got {type(logs).__name__}")
    logs = {"rounds": logs} if isinstance(logs, pd.DataFrame) else dict(logs)
    if not logs:
        raise ValueError("logs is empty: pass a rounds DataFrame or {policy name: rounds}")
    fig = go.Figure()
    for name, label_text, r in _labelled("logs", logs):
        label = f"logs[{name!r}]"
        require_columns(r, label, by, col_reward)
        # groupby would leave rows without a `by` value out, and mean() rows without a reward.
        check_ids(r, label, by)
        if pd.api.types.infer_dtype(r[by], skipna=False) in ("mixed-integer", "mixed"):
            # Numbers and text in one column cannot be sorted, and 1 and "1" would be two bars both labelled 1.
            first = r[by].iloc[0]
            other = next((v for v in r[by] if isinstance(v, str) != isinstance(first, str)),
                         next((v for v in r[by] if type(v) is not type(first)), first))
            raise SchemaError(f"column {by!r} of {label} mixes kinds of values ({first!r} and {other!r}); "
                              f"accepted: one kind of {by} value per log (all numbers or all text)")
        reward = check_scores(r, label, col_reward, what="reward")
        out = (reward < 0) | (reward > 1)
        if out.any():
            raise ValueError(f"column {col_reward!r} of {label} has {int(out.sum()):,} reward(s) outside [0, 1], at rows "
                             f"{_quote_rows(r, out, col_reward)}; the whiskers are binomial standard errors, so "
                             "accepted: clicks (0/1) or rates in [0, 1]")
        if not pd.api.types.is_numeric_dtype(r[col_reward]):
            r = r.copy()
            r[col_reward] = reward
        g = r.groupby(by, observed=True)[col_reward].agg(["mean", "size", "sum"]).sort_index()
        se = np.sqrt(g["mean"] * (1 - g["mean"]) / g["size"].clip(lower=1))
        fig.add_trace(go.Bar(x=g.index.astype(str), y=g["mean"], name=label_text, error_y=dict(type="data", array=se),
                             customdata=np.c_[g["size"], g["sum"]],
                             hovertemplate="%{x}<br>rate %{y:.3%}<br>%{customdata[0]} rounds, %{customdata[1]} clicks<extra></extra>"))
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text=by, type="category")
    fig.update_yaxes(title_text=f"{col_reward} rate", tickformat=".2%")
    return apply_layout(fig, title or f"{col_reward.capitalize()} rate by {by}", legend=dict(orientation="h", y=-0.2))
