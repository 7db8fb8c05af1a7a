"""The numbers behind the figures: dataset summary, activity, funnel, cold against warm users, bandit logs, latencies."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from recapp.schema import EVENT_COL, EVENT_TYPES, FUNNEL, ITEM_COL, RATING_COL, TIME_COL, USER_COL, require_columns
from recapp.viz.style import BY


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
