"""The numbers behind the figures: dataset summary, activity, funnel, cold against warm users, bandit logs, latencies."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from recapp.metrics.checks import check_id_kinds, check_ids, check_scores
from recapp.schema import (
    EVENT_COL,
    EVENT_TYPES,
    FUNNEL,
    ITEM_COL,
    RATING_COL,
    TIME_COL,
    USER_COL,
    check_event_types,
    require_columns,
    utc_seconds,
)
from recapp.schema.cells import _plain
from recapp.viz.style import BY


# ---- input checks shared by the tables and the figures -----------------------------------
def _names(name: str, values) -> list:
    """``values`` as a list; a single string is refused, since it would be read letter by letter."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name}={values!r} is a single value; accepted: a list, e.g. [{values!r}]")
    return list(values)


def _labelled(name: str, mapping) -> list[tuple]:
    """``mapping``'s ``(key, text of the key, value)``; ValueError when two keys have the same text."""
    # Tables, legends and latency_histogram key a series by its text: 1 and "1" would merge or shadow each other.
    seen: dict = {}
    out = []
    for key, value in mapping.items():
        label = str(key)
        if label in seen:
            raise ValueError(f"{name} has two keys that read {label!r}: {seen[label]!r} and {key!r}; their rows "
                             "would be shown under one name; accepted: keys whose text differs")
        seen[label] = key
        out.append((key, label, value))
    return out


def _require_rows(df: pd.DataFrame, name: str) -> None:
    if len(df) == 0:
        raise ValueError(f"{name} has no rows: there is nothing to summarise or draw")


def _utc_times(df: pd.DataFrame, col: str, name: str) -> pd.Series:
    """``df[col]`` as UTC datetimes, read as the engine reads times (epoch numbers in any unit, ISO 8601 text,
    datetimes); SchemaError naming missing or unreadable times."""
    # A missing time would become NaT, which min/max, value_counts and crosstab all skip without a word.
    seconds = utc_seconds(df, name, col, hint="; run recapp.schema.validate first for other forms")
    return pd.Series(pd.to_datetime(seconds, unit="s", utc=True), index=df.index, name=col)


def _numbers(df: pd.DataFrame, name: str, col: str, what: str, *, finite: bool = False) -> np.ndarray:
    """``df[col]`` as float64, NaN where missing; ScoreError naming the rows that hold text (or infinities with ``finite``)."""
    present = df[col].notna().to_numpy()
    out = np.full(len(df), np.nan)
    out[present] = check_scores(df[present], name, col, what=what, finite=finite)
    return out


def dataset_summary(df: pd.DataFrame, *, col_user: str = USER_COL, col_item: str = ITEM_COL, col_time: str = TIME_COL,
                    col_event: str = EVENT_COL, col_rating: str = RATING_COL) -> pd.Series:
    """Headline statistics of an event log as a Series: sizes, density, activity, time span, events by type.

    Numbers are rounded (density to 4 significant digits, ratings to 3
    decimals) so that the printed Series is stable across machines. An empty
    ``df``, a missing id, a missing or text time and a text rating raise,
    naming the column and rows. Events of no known type (unknown or missing)
    are counted as ``other events``, so the counts by type add up to ``events``.
    """
    require_columns(df, "df", col_user, col_item)
    _require_rows(df, "df")
    check_ids(df, "df", col_user, col_item)
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
        t = _utc_times(df, col_time, "df")
        out["first event"] = str(t.min().date())
        out["last event"] = str(t.max().date())
        out["days"] = int((t.max() - t.min()).ceil("D").days)
    if col_event in df.columns:
        counts = df[col_event].value_counts()
        for ev in EVENT_TYPES:
            if counts.get(ev, 0):
                out[f"{ev} events"] = int(counts[ev])
        other = int(len(df) - sum(int(counts.get(ev, 0)) for ev in EVENT_TYPES))
        if other:
            out["other events"] = other
    if col_rating in df.columns and df[col_rating].notna().any():
        out["mean rating"] = round(float(pd.Series(_numbers(df, "df", col_rating, "rating")).mean()), 3)
    return pd.Series(out, name="value", dtype=object)


def activity_counts(df: pd.DataFrame, by: str = "item", *, col_user: str = USER_COL, col_item: str = ITEM_COL) -> pd.Series:
    """Events per item (``by="item"``) or per user (``by="user"``), most active first; a missing id raises."""
    if by not in BY:
        raise ValueError(f"by={by!r} is not supported; accepted values: {list(BY)}")
    col = col_item if by == "item" else col_user
    require_columns(df, "df", col)
    # value_counts would leave those rows out of every count, and the long tail's shares with them.
    check_ids(df, "df", col)
    counts = df[col].value_counts()
    return counts.rename("events").sort_values(ascending=False, kind="stable")


def head_share(counts: pd.Series | np.ndarray, head: float = 0.2) -> float:
    """Share of all events, range [0, 1], that the most active ``head`` fraction of entities account for.

    ``counts`` must be one-dimensional (one count per entity) and hold finite
    numbers >= 0; anything else raises ValueError naming the shape or the first.
    """
    if isinstance(head, bool) or not isinstance(head, (int, float, np.integer, np.floating)) or not 0.0 < head <= 1.0:
        raise ValueError(f"head={head!r} is out of range; accepted: a fraction in (0, 1]")
    try:
        c = np.asarray(counts, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"counts must hold numbers: {e}") from None
    if c.ndim != 1:
        # A one-column frame would not be sorted (np.sort works along its rows), so the head would be any rows.
        raise ValueError(f"counts must be one-dimensional (one count per entity), got shape {c.shape}; "
                         "accepted: a Series or a 1-D array, e.g. activity_counts(df)")
    bad = ~np.isfinite(c) | (c < 0)
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(f"counts has {int(bad.sum())} value(s) that are not finite counts >= 0, "
                         f"first {float(c.ravel()[i])!r} at position {i}")
    c = np.sort(c)[::-1]
    if len(c) == 0 or c.sum() == 0:
        return 0.0
    n_head = max(1, int(np.ceil(head * len(c))))
    return float(c[:n_head].sum() / c.sum())


def funnel_counts(df: pd.DataFrame, *, stages: Sequence[str] = FUNNEL, col_event: str = EVENT_COL,
                  col_user: str = USER_COL) -> pd.DataFrame:
    """Events and distinct users per funnel stage, with the conversion from the previous and the first stage.

    One row per stage in ``stages`` order: ``events``, ``users``, ``step_rate``
    (events / previous stage's events) and ``overall_rate`` (events / first
    stage's events), the rates rounded to 4 decimals. ``stages`` must be a
    non-empty list of distinct event types (a typo would count 0); a missing user id raises.
    """
    stages = _names("stages", stages)
    if not stages:
        raise ValueError("stages is empty; accepted: a list of event types, e.g. ['view', 'purchase']")
    check_event_types("stages", stages)
    repeated = sorted({s for s in stages if stages.count(s) > 1})
    if repeated:
        # A repeated stage would show a 100% step into itself and two rows under one label.
        raise ValueError(f"stages={stages!r} repeats {repeated}; accepted: each event type once")
    require_columns(df, "df", col_event, col_user)
    check_ids(df, "df", col_user)
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
    Also adds ``n_train`` (the count itself). A user whose count falls outside
    the bins raises ValueError (the group would be missing and the user dropped
    from :func:`metric_by_group`); so do bins that are not increasing whole
    numbers (the last may be ``np.inf``), a missing user id in ``per_user``,
    user ids that are numbers in one frame and text in the other (every user
    would be cold), and a ``group`` that would overwrite ``col_user`` or ``n_train``.
    """
    require_columns(per_user, "per_user", col_user)
    require_columns(train, "train", col_user)
    bins = _names("bins", bins)
    try:
        edges = [float(b) for b in bins]
    except (TypeError, ValueError):
        raise ValueError(f"bins must be at least two increasing edges (numbers), got {bins!r}") from None
    # NaN compares False with everything, so the ordering test alone would let it through.
    if len(edges) < 2 or any(np.isnan(edges)) or any(b >= a for a, b in zip(edges[1:], edges[:-1])):
        raise ValueError(f"bins must be at least two increasing edges, got {bins!r}")
    # Counts are whole numbers: an edge such as 1.5 would put users with 1 event under a label reading "0-0".
    if not all(np.isfinite(e) and e == int(e) for e in edges[:-1]) or not (np.isinf(edges[-1]) or edges[-1] % 1 == 0):
        raise ValueError(f"bins must be whole numbers (training counts are), the last one may be np.inf; got {bins!r}")
    if group in (col_user, "n_train"):
        raise ValueError(f"group={group!r} would overwrite the column {group!r}; accepted: another name, e.g. 'history'")
    # A missing id would count as a cold user, and ids of two kinds never match: every user would be cold.
    check_ids(per_user, "per_user", col_user)
    check_id_kinds(per_user, "per_user", train, "train", col_user)
    counts = train[col_user].value_counts()
    n_train = counts.reindex(per_user[col_user].to_numpy()).fillna(0).to_numpy(dtype=np.int64)
    outside = (n_train < edges[0]) | (n_train >= edges[-1])
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise ValueError(f"{int(outside.sum()):,} user(s) of per_user have a training count outside the bins "
                         f"[{edges[0]:g}, {edges[-1]:g}), e.g. user {_plain(per_user[col_user].iloc[first])!r} with "
                         f"{int(n_train[first])}; accepted: bins from 0 to np.inf, e.g. (0, 1, 20, np.inf)")
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
    :func:`by_history` columns, ready for :func:`metric_by_group`. ``models``
    must be a non-empty mapping whose names differ as text (they become the ``model`` column).
    """
    from recapp.metrics import per_user_ranking_metrics

    if not isinstance(models, Mapping):
        raise TypeError(f"models must be a mapping {{name: fitted model}}, got {type(models).__name__}")
    require_columns(test, "test", col_user)
    users = pd.unique(test[col_user].to_numpy())
    parts = []
    for _, label, model in _labelled("models", models):
        recs = model.recommend(users, k=k, exclude_seen=True)
        per_user = per_user_ranking_metrics(test, recs, k=k, col_user=col_user)
        per_user.insert(0, "model", label)
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
    Empty ``rounds``, a missing action or position, a missing or text reward and a missing,
    infinite or text propensity raise, naming the column and rows.
    """
    require_columns(rounds, "rounds", col_action, col_reward, col_propensity)
    _require_rows(rounds, "rounds")
    # A missing position would be left out of the positions count (nunique skips it).
    check_ids(rounds, "rounds", col_action, *[c for c in (col_position,) if c in rounds.columns])
    p = check_scores(rounds, "rounds", col_propensity, what="propensity", finite=True)
    reward = pd.Series(check_scores(rounds, "rounds", col_reward, what="reward"))
    out = {
        "rounds": int(len(rounds)),
        "actions": int(rounds[col_action].nunique()),
        "positions": int(rounds[col_position].nunique()) if col_position in rounds.columns else 1,
        "clicks": int(reward.sum()),
        "click rate": round(float(reward.mean()), 5),
        "propensity min": float(f"{p.min():.4g}"),
        "propensity median": float(f"{np.median(p):.4g}"),
        "propensity max": float(f"{p.max():.4g}"),
    }
    if col_time in rounds.columns:
        t = _utc_times(rounds, col_time, "rounds")
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
    The engine keeps the events (it is changed, as in production). Refused before anything is ingested:
    an ``engine`` that is not an Engine, ``k`` not an integer >= 1, and any event the engine would refuse
    (SchemaError naming the count, first row and reason; an event column is needed); one the engine still
    refuses while replaying (a repeated ``event_id``) is counted in a warning.
    """
    import time
    import warnings

    from recapp.models.base import check_param
    from recapp.realtime.engine import Engine
    from recapp.realtime.prequential import _refuse_unreplayable
    from recapp.realtime.stream import Replay

    if not isinstance(engine, Engine):
        raise TypeError(f"engine must be a recapp.realtime.Engine, got {type(engine).__name__}; wrap a fitted "
                        "model as Engine(model)")
    check_param("k", k, low=1, integer=True)
    require_columns(events, "events", col_user, col_item, TIME_COL)
    # The engine reads the schema's names: under others every event would be refused, and only logged.
    frame = events.rename(columns={col_user: USER_COL, col_item: ITEM_COL}).reset_index(drop=True)
    _refuse_unreplayable(frame, "events", events.index)
    users, items, t_ingest, t_rec, refused, reason = [], [], [], [], 0, None
    for event in Replay(frame):
        t0 = time.perf_counter()
        result = engine.ingest(event)
        t1 = time.perf_counter()
        engine.recommend(event[USER_COL], k)
        t2 = time.perf_counter()
        if result.n_rejected:
            refused += result.n_rejected
            reason = reason or result.rejected["reason"].iloc[0]
        users.append(event[USER_COL])
        items.append(event[ITEM_COL])
        t_ingest.append(t1 - t0)
        t_rec.append(t2 - t1)
    if refused:
        warnings.warn(f"the engine refused {refused:,} of {len(frame):,} event(s) while replaying (first: {reason}); "
                      "their ingest_s times a refusal, not an update", stacklevel=2)
    ingest, rec = np.asarray(t_ingest, dtype=np.float64), np.asarray(t_rec, dtype=np.float64)
    return pd.DataFrame({col_user: users, col_item: items, "ingest_s": ingest, "recommend_s": rec, "total_s": ingest + rec})


def latency_percentiles(latencies: Mapping[str, Sequence[float]], *, unit: str = "ms",
                        percentiles: Sequence[float] = (50, 95, 99)) -> pd.DataFrame:
    """Percentiles and maximum of each latency series (``{name: seconds}``), in ``unit`` ("ms" or "us").

    An empty series gives NaN. An empty mapping, two names with the same text
    (rows are keyed by the name's text), a series of more than one column, a
    missing, infinite, negative or text latency, and a percentile outside
    [0, 100], raise ValueError naming the series and position.
    """
    scale = {"ms": 1e3, "us": 1e6}.get(unit)
    if scale is None:
        raise ValueError(f"unit={unit!r} is not accepted; accepted values: ['ms', 'us']")
    if not isinstance(latencies, Mapping):
        raise TypeError(f"latencies must be a mapping {{name: seconds}}, got {type(latencies).__name__}")
    if not latencies:
        raise ValueError("latencies is empty: pass {name: seconds}, e.g. {'engine': replay_latencies(...)['total_s']}")
    percentiles = _names("percentiles", percentiles)
    qs = _finite_values("percentiles", percentiles)
    if ((qs < 0) | (qs > 100)).any():
        raise ValueError(f"percentiles={percentiles!r} has a value outside [0, 100]")
    rows = {}
    for name, label, values in _labelled("latencies", latencies):
        v = _finite_values(f"latencies[{name!r}]", values) * scale
        if (v < 0).any():
            raise ValueError(f"latencies[{name!r}] has a negative latency at position {int(np.flatnonzero(v < 0)[0])}")
        # Labels from the numbers read, so that a percentile given as text ("99") is named as 99 is.
        row = {f"p{q:g}": float(np.percentile(v, q)) if len(v) else np.nan for q in qs}
        row["max"] = float(v.max()) if len(v) else np.nan
        row["events"] = int(len(v))
        rows[label] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(f"latency ({unit})")


def _finite_values(name: str, values) -> np.ndarray:
    """``values`` as a 1-D float array; ValueError naming ``name`` and the shape (more than one column) or the first
    value that is not finite."""
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must hold numbers: {e}") from None
    if sum(n > 1 for n in v.shape) > 1:
        # Flattened, a whole replay_latencies frame would mix its ids and all three timings into one series.
        raise ValueError(f"{name} must be one series of numbers, got shape {v.shape}; accepted: a list, a 1-D "
                         "array or one column, e.g. replay_latencies(...)['total_s']")
    v = v.ravel()
    bad = ~np.isfinite(v)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} has {int(bad.sum())} value(s) that are not finite numbers, first {float(v[i])!r} at position {i}")
    return v
