"""Prequential ("test-then-train") evaluation of a live recommender.

Replay a test log in timestamp order. Before each event, ask the engine for
that user's top-k; score a hit when the event's item is in it; then ingest the
event (``real-time``) or not (``static``: the model as trained, its users'
training histories only). Every event counts, including a user's first, which
is how a shop meets its visitors.

>>> result = movielens_prequential({"EASE": EASE(), "Popularity": Popularity()})
>>> result.summary              # model, mode, events, HR@10, NDCG@10
>>> result.curve(window=2000)   # rolling HR over the stream, for plots.prequential_figure
"""
from __future__ import annotations

import math
import time as _time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recapp.metrics.checks import check_ids, check_scores
from recapp.models.base import check_param
from recapp.realtime.engine import Engine
from recapp.realtime.stream import check_limit, replay_seconds
from recapp.schema import EVENT_COL, ITEM_COL, RATING_COL, TIME_COL, USER_COL, SchemaError, check_events, require_columns

MODES = ("static", "real-time")


@dataclass
class PrequentialResult:
    """Per-event outcomes of a prequential run and their summary."""

    events: pd.DataFrame   # model, mode, position, timestamp, user_id, item_id, rank (0 = miss), hit, ndcg, new_user, latency_ms
    k: int

    @property
    def summary(self) -> pd.DataFrame:
        """One row per (model, mode): events, HR@k, NDCG@k, HR@k on users new to the model, p50/p99 ms per event.

        Refused as :meth:`curve` refuses them: ``events`` with no rows, without
        the columns prequential writes, or with a missing model or mode or a
        missing or text hit, ndcg or latency.
        """
        events = self._checked("model", "mode", "hit", "ndcg", "new_user", "latency_ms")
        g = events.groupby(["model", "mode"], sort=False)
        out = g.agg(events=("hit", "size"), hit_rate=("hit", "mean"), ndcg=("ndcg", "mean"),
                    p50_ms=("latency_ms", lambda x: float(np.percentile(x, 50))),
                    p99_ms=("latency_ms", lambda x: float(np.percentile(x, 99)))).reset_index()
        new = events[events["new_user"]].groupby(["model", "mode"], sort=False)["hit"].mean()
        out["hit_rate_new_users"] = [new.get((m, md), np.nan) for m, md in zip(out["model"], out["mode"])]
        return out.rename(columns={"hit_rate": f"HR@{self.k}", "ndcg": f"NDCG@{self.k}", "hit_rate_new_users": f"HR@{self.k} new users"})

    def curve(self, window: int = 1000) -> pd.DataFrame:
        """Rolling HR@k and NDCG@k over the last ``window`` events, per model and mode (long format).

        ``window`` must be an integer >= 1; a rolling value needs ``window // 10``
        events, so a run shorter than that has no rolling values (NaN) and is
        named in a warning. Refused: ``events`` that is no DataFrame, has no rows
        or lacks a column prequential writes (SchemaError naming them), and a
        missing model or mode or a missing or text hit or ndcg (the rolling mean
        would skip such rows).
        """
        check_param("window", window, low=1, integer=True)
        events = self._checked("model", "mode", "position", TIME_COL, "hit", "ndcg")
        parts = []
        short = []
        for (m, md), g in events.groupby(["model", "mode"], sort=False):
            if len(g) < max(1, window // 10):
                short.append(f"{m} ({md}): {len(g):,}")
            r = g[["hit", "ndcg"]].astype(float).rolling(window, min_periods=max(1, window // 10)).mean()
            parts.append(pd.DataFrame({
                "model": m, "mode": md, "position": g["position"].to_numpy(), TIME_COL: g[TIME_COL].to_numpy(),
                "hit_rate": r["hit"].to_numpy(), "ndcg": r["ndcg"].to_numpy(),
                "cumulative_hit_rate": g["hit"].astype(float).expanding().mean().to_numpy(),
            }))
        if short:
            warnings.warn(f"curve(window={window}) needs {max(1, window // 10):,} events per run for a rolling value; "
                          f"these runs have fewer, so their hit_rate and ndcg are all NaN: {', '.join(short)}; "
                          "pass a smaller window", stacklevel=2)
        return pd.concat(parts, ignore_index=True)

    def _checked(self, *cols: str) -> pd.DataFrame:
        """``events`` after the checks :meth:`summary` and :meth:`curve` share (``cols``: the columns one reads)."""
        events = self.events
        require_columns(events, "result.events", *cols)
        if not len(events):
            raise ValueError("result.events has no rows: there is no run to summarise")
        # groupby leaves rows without a model or mode out, and a mean skips a missing hit: both silently.
        check_ids(events, "result.events", "model", "mode")
        for col in ("hit", "ndcg", "latency_ms"):
            if col in cols:
                check_scores(events, "result.events", col, what=col)
        return events


def prequential(engine: Engine, test: pd.DataFrame, *, k: int = 10, live: bool = True, name: str | None = None,
                progress: bool = True) -> pd.DataFrame:
    """Run the protocol on one engine: per-event rank of the true item before the event (0 = not in top k).

    ``live=False`` never ingests (static). The test frame is replayed in
    timestamp order (stable, so equal times keep their input order). Returns a
    DataFrame with model, mode, position, timestamp, user_id, item_id, rank, hit,
    ndcg (1 / log2(rank + 1), 0 for a miss), new_user (the user's first event:
    none in training, none earlier in the stream; the same rows in both modes)
    and latency_ms (the top-k request plus, live, the ingest of the event). With
    ``Engine(..., refit_every=...)`` a background refit started by an event is
    awaited before the next request, so runs are reproducible.

    Refused (nothing is run): an ``engine`` that is not an :class:`Engine`, a
    ``test`` with no rows or without
    user_id, item_id and timestamp, a missing or unreadable timestamp, and any
    row the engine's check (:func:`recapp.schema.check_events`) would refuse:
    live, such a row would be scored but never ingested. Timestamps may be
    epoch numbers, ISO 8601 text or datetimes (read as the engine reads them;
    non-numeric ones come back as UTC seconds). A warning says when test ids
    are text and the model's numbers (or the reverse) and none of them match,
    and another when test events are earlier than the model's last training event.
    """
    if not isinstance(engine, Engine):
        raise TypeError(f"engine must be a recapp.realtime.Engine, got {type(engine).__name__}; wrap a fitted "
                        "model as Engine(model)")
    test, times = _replay_order(test)
    _warn_id_kinds(test, engine.model.interactions_)
    _warn_overlap(times, engine.model.interactions_)
    users = test[USER_COL].tolist()
    items = test[ITEM_COL].tolist()
    events = test[EVENT_COL].tolist() if EVENT_COL in test.columns else ["rating"] * len(test)
    ratings = test[RATING_COL].tolist() if RATING_COL in test.columns else [None] * len(test)
    known = set(engine.model.interactions_.user_ids.tolist())
    seen_users: set = set()
    ranks = np.zeros(len(test), dtype=np.int64)
    new_user = np.zeros(len(test), dtype=bool)
    latency = np.zeros(len(test))
    clock = _time.perf_counter
    label = name or type(engine.model).__name__
    mode = "real-time" if live else "static"
    bar = tqdm(range(len(test)), desc=f"{label} ({mode})", disable=not progress, leave=False, mininterval=1.0)
    for j in bar:
        u, i = users[j], items[j]
        new_user[j] = u not in known and u not in seen_users
        t0 = clock()
        recs = engine.recommend(u, k)
        spent = clock() - t0
        hit = np.flatnonzero(recs[ITEM_COL].to_numpy() == i) if len(recs) else ()
        if len(hit):
            ranks[j] = int(hit[0]) + 1
        if live:
            ev = {USER_COL: u, ITEM_COL: i, TIME_COL: times[j], EVENT_COL: events[j]}
            r = ratings[j]
            if r is not None and not (isinstance(r, float) and math.isnan(r)):
                ev[RATING_COL] = r
            t0 = clock()
            engine.ingest(ev)
            spent += clock() - t0
            # A refit started by this event is waited for (outside the timing), so the
            # outcome does not depend on thread scheduling.
            engine.wait_for_refit()
        latency[j] = spent * 1e3
        seen_users.add(u)
    hit = ranks > 0
    return pd.DataFrame({
        "model": label, "mode": mode, "position": np.arange(len(test)), TIME_COL: times,
        USER_COL: users, ITEM_COL: items, "rank": ranks, "hit": hit,
        "ndcg": np.where(hit, 1.0 / np.log2(np.maximum(ranks, 1) + 1.0), 0.0), "new_user": new_user,
        "latency_ms": latency,
    })


def _replay_order(test: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """``test`` in timestamp order (stable) and its times, after the checks :func:`prequential` lists."""
    require_columns(test, "test", USER_COL, ITEM_COL, TIME_COL)
    if not len(test):
        raise ValueError("test has no events: a prequential run needs at least one event to replay")
    seconds = replay_seconds(test, "test")
    frame = test.reset_index(drop=True)
    if EVENT_COL not in frame.columns:
        frame = frame.assign(**{EVENT_COL: "rating"})
    _refuse_unreplayable(frame, "test", test.index)
    order = np.argsort(seconds, kind="stable")
    # Numbers are kept as given (the engine reads their unit); text and datetimes become UTC seconds.
    numeric = pd.api.types.is_numeric_dtype(test[TIME_COL]) and not pd.api.types.is_bool_dtype(test[TIME_COL])
    times = test[TIME_COL].to_numpy(dtype=np.float64)[order] if numeric else seconds[order]
    return test.iloc[order].reset_index(drop=True), times.tolist()


def _refuse_unreplayable(frame: pd.DataFrame, name: str, labels: pd.Index | None = None) -> None:
    """SchemaError naming the count, first row and reason of the rows of ``frame`` the engine would refuse.

    ``frame`` has a plain 0..n-1 index; ``labels`` are the row labels to quote (default: that index).
    """
    # Replayed, such a row would be scored or timed but never ingested: the engine only logs a refusal.
    clean, rejected = check_events(frame)
    if len(rejected):
        first = int(np.flatnonzero(~frame.index.isin(clean.index))[0])
        where = (frame.index if labels is None else labels)[first]
        raise SchemaError(f"{name} has {len(rejected):,} event(s) the engine would refuse, the first at row "
                          f"{where!r}: {rejected['reason'].iloc[0]}; fix or drop them "
                          f"(recapp.schema.check_events({name}) lists them all)")


def _warn_id_kinds(test: pd.DataFrame, inter) -> None:
    # Text ids never equal numeric ones: every shopper would count as new and every hit as a miss, silently.
    # Only a warning, since a test of brand-new users or items is a fair question to ask.
    for col, known in ((USER_COL, inter.user_ids), (ITEM_COL, inter.item_ids)):
        ours, theirs = pd.api.types.is_numeric_dtype(test[col]), pd.api.types.is_numeric_dtype(known)
        if ours != theirs and len(known) and not pd.Index(known).isin(test[col].to_numpy()).any():
            kinds = {True: "numeric", False: "text"}
            warnings.warn(f"test column {col!r} is {kinds[ours]} ({test[col].dtype}) but the model's ids are "
                          f"{kinds[theirs]} ({known.dtype}), and no test {col} is known to the model: all count as new; "
                          f"if they are the same ids, cast them (e.g. test.astype({{{col!r}: {known.dtype.name!r}}}))",
                          stacklevel=3)


def _warn_overlap(times: list, inter) -> None:
    # A test event earlier than the model's last training event was scored by a model that had seen what came after
    # it: its hit is not out-of-time, and the run overstates live accuracy. Only a warning: the units may differ.
    trained = inter.frame[TIME_COL].to_numpy(dtype=np.float64)
    if not len(trained) or not len(times):
        return
    end = float(np.nanmax(trained))
    early = int(np.sum(np.asarray(times, dtype=np.float64) < end))
    if early:
        warnings.warn(f"{early:,} of {len(times):,} test events are earlier than the model's last training event "
                      f"({end:g}): the model has seen events after them, so their hits are not out-of-time; fit on "
                      "the events before the test period (recapp.split.temporal_split)", stacklevel=3)


def _model_specs(models) -> list[tuple]:
    """``models`` as ``[(name, model, engine_kwargs)]``; ValueError naming what is wrong with it."""
    if not isinstance(models, Mapping) or not models:
        got = "an empty dict" if isinstance(models, Mapping) else f"a {type(models).__name__}"
        raise ValueError(f"models must be a non-empty dict {{name: model or (model, engine_kwargs)}}; got {got}")
    out = []
    for name, spec in models.items():
        if isinstance(spec, tuple) and not (len(spec) == 2 and isinstance(spec[1], Mapping)):
            raise ValueError(f"models[{name!r}] is a tuple of {len(spec)}; accepted: a model or (model, engine_kwargs dict)")
        model, kw = spec if isinstance(spec, tuple) else (spec, {})
        out.append((name, model, kw))
    return out


def _check_modes(modes) -> tuple:
    """``modes`` as a tuple (one name alone is accepted); ValueError for an unknown or an empty one."""
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    bad = set(modes) - set(MODES)
    if bad:
        raise ValueError(f"modes has unknown value(s) {sorted(bad)}; accepted: {list(MODES)}")
    if not modes:
        raise ValueError(f"modes is empty; accepted: one or more of {list(MODES)}")
    return modes


def run_prequential(models: dict, test: pd.DataFrame, *, k: int = 10, modes=MODES, engine_kwargs: dict | None = None,
                    progress: bool = True) -> PrequentialResult:
    """Prequential runs of several fitted models, each in every mode of ``modes``.

    ``models`` maps a name to a fitted model, or to ``(model, engine_kwargs)`` for
    per-model engine settings (for example ``recency=0.9``). Each run gets a
    fresh :class:`Engine`, so modes never share state. ``modes`` may be one
    mode's name; an empty ``models`` or ``modes`` is refused, and ``test`` is
    checked as :func:`prequential` checks it.
    """
    modes = _check_modes(modes)
    specs = _model_specs(models)
    parts = []
    for name, model, kw in specs:
        for mode in modes:
            engine = Engine(model, k=k, **{**(engine_kwargs or {}), **kw})
            parts.append(prequential(engine, test, k=k, live=(mode == "real-time"), name=name, progress=progress))
    return PrequentialResult(pd.concat(parts, ignore_index=True), k)


def movielens_prequential(models: dict, *, quantile: float = 0.8, k: int = 10, modes=MODES,
                          engine_kwargs: dict | None = None, limit: int | None = None, progress: bool = True) -> PrequentialResult:
    """The MovieLens-100K protocol: fit on the first ``quantile`` of events by time, replay the rest.

    ``models`` maps names to unfitted models (or ``(model, engine_kwargs)``);
    each is fitted on the training part here. ``limit`` replays only the first
    ``limit`` test events (for quick looks). Fit times are kept in
    ``result.fit_seconds``. ``models``, ``modes`` and ``limit`` (an integer
    >= 1) are checked before the data are loaded.
    """
    modes = _check_modes(modes)
    specs = _model_specs(models)
    check_limit(limit)
    from recapp.data.movielens import load_movielens
    from recapp.split import temporal_split

    df = load_movielens().interactions
    train, test = temporal_split(df, quantile=quantile)
    test = test.sort_values(TIME_COL, kind="stable")
    if limit is not None:
        test = test.iloc[:limit]
    fitted, fit_seconds = {}, {}
    for name, model, kw in specs:
        t0 = _time.perf_counter()
        fitted[name] = (model.fit(train), kw)
        fit_seconds[name] = _time.perf_counter() - t0
    result = run_prequential(fitted, test, k=k, modes=modes, engine_kwargs=engine_kwargs, progress=progress)
    result.fit_seconds = fit_seconds
    return result


__all__ = ["PrequentialResult", "prequential", "run_prequential", "movielens_prequential", "MODES"]
