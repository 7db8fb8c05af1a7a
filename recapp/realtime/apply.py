"""Folding checked events into the engine's state: the item space, "popular now", the shopper and the scorer.

Kept apart from :mod:`.engine`, whose façade holds the flow of ``ingest`` (checks,
store, counts, the refit hook): one event touches the catalogue, the trending
counters, the shopper's history and fold-in state, the result cache and the last
lists, and must change none of them when the served model cannot read its weight.
"""
from __future__ import annotations

from recapp.event_weights import EVENT_CODES, event_weight
from recapp.realtime.ingest import with_refused


def apply_rows(engine, rows: list, rejected) -> tuple[list, object]:
    """Apply checked ``rows`` to ``engine`` in order (its lock held); returns the rows applied and ``rejected``
    (as :class:`~recapp.realtime.ingest.IngestResult` takes it) plus each row the served model refused, with why."""
    outcome = [(row, apply_event(engine, *row)) for row in rows]
    applied = [row for row, why in outcome if why is None]
    if len(applied) < len(outcome):
        rejected = with_refused(rejected, [(row, why) for row, why in outcome if why is not None])
    return applied, rejected


def apply_event(engine, user, item, t: float, event: str, rating) -> str | None:
    """Apply one checked event; or, changing nothing, say why the served model cannot read its weight."""
    scorer = engine.scorer
    weight = event_weight(engine.event_weights, event, rating)
    idx = engine.catalogue.index(item)
    st = engine.shoppers.get(user, scorer, create=False)
    summed = weight if idx is None or st is None else st.history.summed_after(idx, weight, engine.recency)
    problem = scorer.weight_problem(summed)
    if problem is not None:
        return f"{type(engine.model).__name__}'s live scorer cannot fold it in: {problem}"
    if idx is None:
        idx = engine.catalogue.add(item)
        scorer.add_items(len(engine.catalogue))
    engine.trending.add(idx, t)
    if st is None:                 # a new shopper: created only once the event is accepted
        st = engine.shoppers.get(user, scorer, create=True)
    first = idx not in st.seen
    code = EVENT_CODES[event]
    delta = st.history.add(idx, code, t, weight, engine.recency)
    st.seen.add(idx)
    if code in engine.exclude_codes:
        st.consumed.add(idx)
    if delta is None:
        st.state, st.vec = scorer.start(st.history), None
    elif idx < scorer.n_items and scorer.personal:
        if not scorer.fold(st.state, st.history, idx, delta, st.vec):
            st.vec = None
    scorer.observe(idx, t, weight, first)
    engine.cache.invalidate(user)
    engine.ranker.last_lists.moved(user)
    return None


__all__ = ["apply_event", "apply_rows"]
