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

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from recapp.schema import EVENT_COL, EVENT_TYPES, FUNNEL, ITEM_COL, RATING_COL, TIME_COL, USER_COL, require_columns

TEMPLATE = "plotly_white"
#: One colour per event type, used by every figure that splits by event.
EVENT_COLORS = {"view": "#9ecae1", "click": "#4292c6", "cart": "#fd8d3c", "purchase": "#d94801", "rating": "#6a51a3"}
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
BY = ("item", "user")
_FREQ_NAMES = {"h": "hour", "D": "day", "W": "week", "MS": "month", "M": "month"}


def _layout(fig: go.Figure, title: str | None, height: int = 420, **kwargs) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title=title, height=height, margin=dict(l=60, r=30, t=70, b=50), **kwargs)
    return fig


# ---- tables behind the data figures -------------------------------------------------
def dataset_summary(df: pd.DataFrame, *, col_user: str = USER_COL, col_item: str = ITEM_COL, col_time: str = TIME_COL,
                    col_event: str = EVENT_COL, col_rating: str = RATING_COL) -> pd.Series:
    """Headline statistics of an event log as a Series: sizes, density, activity, time span, events by type.

    Numbers are rounded (density to 4 significant digits, ratings to 3
    decimals) so that the printed Series is stable across machines.
    """
    require_columns(df, "df", col_user, col_item)
    n_users, n_items = int(df[col_user].nunique()), int(df[col_item].nunique())
    pairs = len(df[[col_user, col_item]].drop_duplicates())
    per_user = df.groupby(col_user).size()
    per_item = df.groupby(col_item).size()
    out = {
        "events": int(len(df)),
        "users": n_users,
        "items": n_items,
        "user-item pairs": int(pairs),
        "density": float(f"{pairs / max(n_users * n_items, 1):.4g}"),
        "events per user (median)": float(per_user.median()),
        "events per item (median)": float(per_item.median()),
        "items with 1 event": int((per_item == 1).sum()),
    }
    if col_time in df.columns and len(df):
        t = pd.to_datetime(df[col_time], unit="s", utc=True)
        out["first event"] = str(t.min().date())
        out["last event"] = str(t.max().date())
        out["days"] = int((t.max() - t.min()).ceil("D").days)
    if col_event in df.columns:
        counts = df[col_event].value_counts()
        for ev in EVENT_TYPES:
            if counts.get(ev, 0):
                out[f"{ev} events"] = int(counts[ev])
    if col_rating in df.columns and df[col_rating].notna().any():
        out["mean rating"] = round(float(df[col_rating].mean()), 3)
    return pd.Series(out, name="value", dtype=object)


def activity_counts(df: pd.DataFrame, by: str = "item", *, col_user: str = USER_COL, col_item: str = ITEM_COL) -> pd.Series:
    """Events per item (``by="item"``) or per user (``by="user"``), most active first."""
    if by not in BY:
        raise ValueError(f"by={by!r} is not supported; accepted values: {list(BY)}")
    col = col_item if by == "item" else col_user
    require_columns(df, "df", col)
    counts = df[col].value_counts()
    return counts.rename("events").sort_values(ascending=False, kind="stable")


def head_share(counts: pd.Series | np.ndarray, head: float = 0.2) -> float:
    """Share of all events, range [0, 1], that the most active ``head`` fraction of entities account for."""
    if not 0.0 < head <= 1.0:
        raise ValueError(f"head={head!r} is out of range; accepted: a fraction in (0, 1]")
    c = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    if len(c) == 0 or c.sum() == 0:
        return 0.0
    n_head = max(1, int(np.ceil(head * len(c))))
    return float(c[:n_head].sum() / c.sum())


def funnel_counts(df: pd.DataFrame, *, stages: Sequence[str] = FUNNEL, col_event: str = EVENT_COL,
                  col_user: str = USER_COL) -> pd.DataFrame:
    """Events and distinct users per funnel stage, with the conversion from the previous and the first stage.

    One row per stage in ``stages`` order: ``events``, ``users``, ``step_rate``
    (events / previous stage's events) and ``overall_rate`` (events / first
    stage's events), the rates rounded to 4 decimals.
    """
    require_columns(df, "df", col_event, col_user)
    ev = df[col_event]
    events = np.array([int((ev == s).sum()) for s in stages], dtype=np.int64)
    users = np.array([int(df.loc[ev == s, col_user].nunique()) for s in stages], dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        prev = np.r_[events[:1], events[:-1]].astype(np.float64)
        step = np.where(prev > 0, events / prev, np.nan)
        overall = np.where(events[0] > 0, events / max(events[0], 1), np.nan)
    return pd.DataFrame({"events": events, "users": users, "step_rate": np.round(step, 4),
                         "overall_rate": np.round(overall, 4)}, index=pd.Index(list(stages), name="stage"))


def by_history(per_user: pd.DataFrame, train: pd.DataFrame, bins: Sequence[float] = (0, 1, 20, 50, 100, np.inf), *,
               col_user: str = USER_COL, group: str = "history") -> pd.DataFrame:
    """``per_user`` with a ``group`` column binning each user's number of training events.

    Bins are left-closed, ``[a, b)``; the first bin ``[0, 1)`` is labelled
    ``"cold (0)"`` (users absent from ``train``), the others ``"a-b"`` or
    ``"a+"``. The column is an ordered categorical, so groups sort by history.
    Also adds ``n_train`` (the count itself).
    """
    require_columns(per_user, "per_user", col_user)
    require_columns(train, "train", col_user)
    edges = [float(b) for b in bins]
    if len(edges) < 2 or any(b >= a for a, b in zip(edges[1:], edges[:-1])):
        raise ValueError(f"bins must be at least two increasing edges, got {list(bins)!r}")
    counts = train[col_user].value_counts()
    n_train = counts.reindex(per_user[col_user].to_numpy()).fillna(0).to_numpy(dtype=np.int64)
    labels = []
    for a, b in zip(edges[:-1], edges[1:]):
        if a == 0 and b == 1:
            labels.append("cold (0)")
        elif np.isinf(b):
            labels.append(f"{int(a)}+")
        elif b - a == 1:
            labels.append(f"{int(a)}")
        else:
            labels.append(f"{int(a)}-{int(b) - 1}")
    out = per_user.copy()
    out["n_train"] = n_train
    out[group] = pd.cut(n_train, bins=edges, right=False, labels=labels, ordered=True)
    return out


def per_user_by_history(models: Mapping, train: pd.DataFrame, test: pd.DataFrame, *, k: int = 10,
                        bins: Sequence[float] = (0, 1, 20, 50, 100, np.inf), col_user: str = USER_COL) -> pd.DataFrame:
    """Per-user ranking metrics of fitted ``models`` on ``test``, each user tagged with their history group.

    ``models`` maps a name to a fitted recommender; each recommends ``k`` items
    (training items excluded) to every test user, unknown users getting the
    model's documented fallback. Rows are
    :func:`recapp.metrics.per_user_ranking_metrics` plus ``model`` and the
    :func:`by_history` columns, ready for :func:`metric_by_group`.
    """
    from recapp.metrics import per_user_ranking_metrics

    require_columns(test, "test", col_user)
    users = pd.unique(test[col_user].to_numpy())
    parts = []
    for name, model in models.items():
        recs = model.recommend(users, k=k, exclude_seen=True)
        per_user = per_user_ranking_metrics(test, recs, k=k, col_user=col_user)
        per_user.insert(0, "model", str(name))
        parts.append(by_history(per_user, train, bins, col_user=col_user))
    if not parts:
        raise ValueError("models is empty: pass {name: fitted model}")
    return pd.concat(parts, ignore_index=True)


def bandit_summary(rounds: pd.DataFrame, *, col_action: str = ITEM_COL, col_reward: str = "click",
                   col_propensity: str = "propensity_score", col_position: str = "position",
                   col_time: str = TIME_COL) -> pd.Series:
    """Headline statistics of a logged-bandit table (such as ``load_open_bandit(...).rounds``) as a Series.

    Rounds, actions, positions, total reward, the mean reward (click-through
    rate) and the logging propensities' range, rounded so the print is stable.
    """
    require_columns(rounds, "rounds", col_action, col_reward, col_propensity)
    p = rounds[col_propensity].to_numpy(dtype=np.float64)
    out = {
        "rounds": int(len(rounds)),
        "actions": int(rounds[col_action].nunique()),
        "positions": int(rounds[col_position].nunique()) if col_position in rounds.columns else 1,
        "clicks": int(rounds[col_reward].sum()),
        "click rate": round(float(rounds[col_reward].mean()), 5),
        "propensity min": float(f"{p.min():.4g}"),
        "propensity median": float(f"{np.median(p):.4g}"),
        "propensity max": float(f"{p.max():.4g}"),
    }
    if col_time in rounds.columns:
        t = pd.to_datetime(rounds[col_time], unit="s", utc=True)
        out["first round"] = str(t.min().date())
        out["last round"] = str(t.max().date())
    return pd.Series(out, name="value", dtype=object)



def replay_latencies(engine, events: pd.DataFrame, *, k: int = 10, col_user: str = USER_COL,
                     col_item: str = ITEM_COL) -> pd.DataFrame:
    """Feed ``events`` to a real-time ``engine`` one at a time, timing each ``ingest`` and the user's next top-``k``.

    Events are replayed in timestamp order through
    :class:`recapp.realtime.stream.Replay`. Returns one row per event:
    user_id, item_id, ``ingest_s``, ``recommend_s`` and ``total_s`` (seconds of
    wall time), the numbers behind ``recapp.realtime.plots.latency_histogram``.
    The engine keeps the events (it is changed, as in production).
    """
    import time

    from recapp.realtime.stream import Replay

    require_columns(events, "events", col_user, col_item, TIME_COL)
    users, items, t_ingest, t_rec = [], [], [], []
    for event in Replay(events):
        t0 = time.perf_counter()
        engine.ingest(event)
        t1 = time.perf_counter()
        engine.recommend(event[col_user], k)
        t2 = time.perf_counter()
        users.append(event[col_user])
        items.append(event[col_item])
        t_ingest.append(t1 - t0)
        t_rec.append(t2 - t1)
    ingest, rec = np.asarray(t_ingest, dtype=np.float64), np.asarray(t_rec, dtype=np.float64)
    return pd.DataFrame({col_user: users, col_item: items, "ingest_s": ingest, "recommend_s": rec, "total_s": ingest + rec})


def latency_percentiles(latencies: Mapping[str, Sequence[float]], *, unit: str = "ms",
                        percentiles: Sequence[float] = (50, 95, 99)) -> pd.DataFrame:
    """Percentiles and maximum of each latency series (``{name: seconds}``), in ``unit`` ("ms" or "us")."""
    scale = {"ms": 1e3, "us": 1e6}.get(unit)
    if scale is None:
        raise ValueError(f"unit={unit!r} is not accepted; accepted values: ['ms', 'us']")
    rows = {}
    for name, values in latencies.items():
        v = np.asarray(values, dtype=np.float64) * scale
        row = {f"p{q:g}": float(np.percentile(v, q)) if len(v) else np.nan for q in percentiles}
        row["max"] = float(v.max()) if len(v) else np.nan
        row["events"] = int(len(v))
        rows[str(name)] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(f"latency ({unit})")

# ---- data figures ---------------------------------------------------------------------
def long_tail(df: pd.DataFrame, by: str = "item", *, head: float = 0.2, col_user: str = USER_COL,
              col_item: str = ITEM_COL, title: str | None = None) -> go.Figure:
    """Events per item (or user) against its popularity rank, log scale, with the cumulative share.

    The shaded band is the most active ``head`` fraction; the title says what
    share of all events it accounts for: the long tail in one number.
    """
    counts = activity_counts(df, by, col_user=col_user, col_item=col_item)
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
    return _layout(fig, title or default, legend=dict(orientation="h", y=-0.2))


def rating_histogram(df: pd.DataFrame, *, col_rating: str = RATING_COL, title: str | None = None) -> go.Figure:
    """How often each rating value occurs (a histogram when ratings are not on a small discrete scale)."""
    require_columns(df, "df", col_rating)
    r = df[col_rating].dropna()
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
    return _layout(fig, title or f"Ratings: {len(r):,} ratings, mean {mean:.2f}", showlegend=False)


def event_funnel(df: pd.DataFrame, *, stages: Sequence[str] = FUNNEL, unit: str = "events", col_event: str = EVENT_COL,
                 col_user: str = USER_COL, title: str | None = None) -> go.Figure:
    """The view -> click -> cart -> purchase funnel, counting ``"events"`` or distinct ``"users"`` per stage."""
    if unit not in ("events", "users"):
        raise ValueError(f"unit={unit!r} is not supported; accepted values: ['events', 'users']")
    table = funnel_counts(df, stages=stages, col_event=col_event, col_user=col_user)
    fig = go.Figure(go.Funnel(
        y=list(table.index), x=table[unit].to_numpy(), textinfo="value+percent initial+percent previous",
        marker=dict(color=[EVENT_COLORS.get(s, "#4292c6") for s in table.index]),
    ))
    last = table["overall_rate"].iloc[-1]
    default = f"Funnel ({unit}): {last:.1%} of {stages[0]}s end in a {stages[-1]}" if unit == "events" else f"Funnel ({unit})"
    return _layout(fig, title or default, showlegend=False)


def time_patterns(df: pd.DataFrame, *, freq: str = "D", col_time: str = TIME_COL, col_event: str = EVENT_COL,
                  title: str | None = None) -> go.Figure:
    """Activity over time (one line per event type, binned by ``freq``) and a weekday x hour heatmap (UTC).

    ``freq`` is a pandas period alias: ``"h"``, ``"D"`` (default), ``"W"``, ``"M"``...
    """
    require_columns(df, "df", col_time)
    t = pd.to_datetime(df[col_time], unit="s", utc=True)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.1,
                        subplot_titles=(f"events per {_FREQ_NAMES.get(freq, freq)}", "weekday x hour of day (UTC)"))
    naive = t.dt.tz_localize(None)
    events = df[col_event] if col_event in df.columns else pd.Series("event", index=df.index)
    kinds = [e for e in EVENT_TYPES if (events == e).any()] or list(pd.unique(events))
    for ev in kinds:
        # Periods (not floor) so calendar frequencies such as "W" or "MS" work too.
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
    return _layout(fig, title or "When shoppers are active", height=430, legend=dict(orientation="h", y=-0.2))


def bandit_click_rates(logs: Mapping[str, pd.DataFrame] | pd.DataFrame, by: str = "position", *,
                       col_reward: str = "click", title: str | None = None) -> go.Figure:
    """Mean reward per ``by`` value (a slot, an action...) for one or several logging policies.

    ``logs`` is a rounds DataFrame or ``{policy name: rounds}``. Whiskers are
    binomial standard errors; with few clicks they are wide, which is the point.
    """
    logs = {"rounds": logs} if isinstance(logs, pd.DataFrame) else dict(logs)
    fig = go.Figure()
    for name, r in logs.items():
        require_columns(r, f"logs[{name!r}]", by, col_reward)
        g = r.groupby(by, observed=True)[col_reward].agg(["mean", "size", "sum"]).sort_index()
        se = np.sqrt(g["mean"] * (1 - g["mean"]) / g["size"].clip(lower=1))
        fig.add_trace(go.Bar(x=g.index.astype(str), y=g["mean"], name=str(name), error_y=dict(type="data", array=se),
                             customdata=np.c_[g["size"], g["sum"]],
                             hovertemplate="%{x}<br>rate %{y:.3%}<br>%{customdata[0]} rounds, %{customdata[1]} clicks<extra></extra>"))
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text=by, type="category")
    fig.update_yaxes(title_text=f"{col_reward} rate", tickformat=".2%")
    return _layout(fig, title or f"{col_reward.capitalize()} rate by {by}", legend=dict(orientation="h", y=-0.2))


# ---- model comparison figures ----------------------------------------------------------
def _metric_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if "@" in str(c)]


def benchmark_bars(table: pd.DataFrame, metrics: Sequence[str] | None = None, *, model_col: str = "model",
                   title: str | None = None) -> go.Figure:
    """Grouped bars of ranking metrics per model (models sorted by the first metric, best on the left).

    ``metrics`` defaults to every column whose name has an ``@`` (``ndcg@10``, ...).
    """
    require_columns(table, "table", model_col)
    metrics = list(metrics) if metrics is not None else _metric_columns(table)
    require_columns(table, "table", *metrics)
    if not metrics:
        raise ValueError(f"no metric columns to plot; columns found: {list(table.columns)}")
    t = table.sort_values(metrics[0], ascending=False, kind="stable")
    fig = go.Figure()
    for m in metrics:
        fig.add_trace(go.Bar(x=t[model_col].astype(str), y=t[m].to_numpy(), name=m,
                             text=[f"{v:.3f}" for v in t[m]], textposition="outside",
                             hovertemplate="%{x}<br>" + m + " %{y:.4f}<extra></extra>"))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text="score")
    return _layout(fig, title or "Ranking accuracy per model", legend=dict(orientation="h", y=-0.15))


def accuracy_vs_beyond(table: pd.DataFrame, accuracy: str | None = None,
                       beyond: Sequence[str] = ("coverage", "novelty", "diversity"), *, model_col: str = "model",
                       title: str | None = None) -> go.Figure:
    """One scatter per beyond-accuracy metric: each model's accuracy against its coverage, novelty, diversity.

    ``accuracy`` defaults to the first ``ndcg@`` column; beyond-accuracy
    columns missing from ``table`` are skipped (at least one must be present).
    """
    require_columns(table, "table", model_col)
    if accuracy is None:
        cands = [c for c in table.columns if str(c).startswith("ndcg@")] or _metric_columns(table)
        if not cands:
            raise ValueError(f"no accuracy column found; pass accuracy=... (columns: {list(table.columns)})")
        accuracy = cands[0]
    require_columns(table, "table", accuracy)
    present = [b for b in beyond if b in table.columns]
    if not present:
        raise ValueError(f"none of the beyond-accuracy columns {list(beyond)} is in the table; columns: {list(table.columns)}")
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
    return _layout(fig, title or f"{accuracy} against beyond-accuracy metrics (up and right is better)", height=430)


def metric_by_group(frame: pd.DataFrame, metric: str = "ndcg_at_k", group: str = "history", *, color: str | None = None,
                    title: str | None = None) -> go.Figure:
    """Mean of ``metric`` per ``group`` (bars, with standard-error whiskers), one bar colour per ``color`` value.

    Built for :func:`by_history` output (cold against warm users), but any
    per-user frame with a group column works. Hover shows the number of users.
    """
    require_columns(frame, "frame", metric, group, *([color] if color else []))
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
    return _layout(fig, title or f"{metric} by {group}", showlegend=bool(color), legend=dict(orientation="h", y=-0.2))


# ---- training figures --------------------------------------------------------------------
def _log_frame(log) -> pd.DataFrame:
    """A training log (``TrainLog``, DataFrame with epoch/loss/valid, or a list of losses) as a DataFrame."""
    if hasattr(log, "to_frame") and not isinstance(log, (pd.DataFrame, pd.Series)):
        return log.to_frame()
    if isinstance(log, pd.DataFrame):
        require_columns(log, "log", "loss")
        out = log.copy()
        if "epoch" not in out.columns:
            out["epoch"] = np.arange(1, len(out) + 1)
        return out
    losses = np.asarray(list(log), dtype=np.float64)
    return pd.DataFrame({"epoch": np.arange(1, len(losses) + 1), "loss": losses})


def loss_curves(logs: Mapping, *, relative: bool = True, valid_label: str = "validation NDCG@10",
                title: str | None = None) -> go.Figure:
    """Training loss per epoch for several models, and their validation score where one was tracked.

    ``logs`` maps a model name to its training log: a ``TrainLog`` (a torch
    model's ``train_log_``), a DataFrame with ``epoch``, ``loss`` and optional
    ``valid`` columns, or a plain list of losses. With ``relative`` each loss
    is divided by its first epoch's, so models whose losses live on different
    scales share one axis.
    """
    frames = {str(name): _log_frame(log) for name, log in logs.items()}
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
    return _layout(fig, title or "Training curves", legend=dict(orientation="h", y=-0.2))


__all__ = [
    "TEMPLATE", "EVENT_COLORS",
    "dataset_summary", "activity_counts", "head_share", "funnel_counts", "by_history", "per_user_by_history",
    "bandit_summary", "replay_latencies", "latency_percentiles",
    "long_tail", "rating_histogram", "event_funnel", "time_patterns", "bandit_click_rates",
    "benchmark_bars", "accuracy_vs_beyond", "metric_by_group", "loss_curves",
]
