"""An engine serving for hours: what it keeps per shopper stays bounded, and a cached list equals a fresh one."""
from __future__ import annotations

import pandas as pd
import pytest

from recapp.models import EASE
from recapp.realtime import Engine
from recapp.realtime.ranking import MIN_LAST_LISTS, LastLists

TRAIN = pd.DataFrame({"user_id": [1, 1, 2, 2, 3, 4, 4, 5, 5, 6],
                      "item_id": [10, 11, 10, 12, 11, 13, 12, 14, 10, 15],
                      "timestamp": [1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10], "event": ["view"] * 10})
ITEMS = pd.DataFrame({"item_id": [10, 11, 12, 13, 14, 15], "price": [5.0, 20.0, 30.0, 40.0, 8.0, 12.0]})


@pytest.fixture(scope="module")
def model():
    return EASE().fit(TRAIN)


def _ev(user, item, t, event="view"):
    return {"user_id": user, "item_id": item, "timestamp": t, "event": event}


# ---- the last list kept per shopper for rank_change is bounded ---------------------------------------
def test_last_lists_hold_the_most_recently_served_shoppers_only(model):
    engine = Engine(model, k=4, cache_size=2, explain=False)
    engine.recommend(1)
    for u in range(MIN_LAST_LISTS + 50):
        engine.recommend(f"passer-by-{u}")
    assert len(engine.ranker.last_lists) == MIN_LAST_LISTS
    # Shopper 1 was served longest ago, so their last list was dropped: the next one is a first list again.
    assert engine.recommend(1)["rank_change"].isna().all()
    # A shopper still held keeps comparing with their last list.
    held = f"passer-by-{MIN_LAST_LISTS + 49}"
    before = engine.recommend(held)
    engine.ingest(_ev(held, before["item_id"].iloc[0], 20.0, "purchase"))     # bought: it leaves the list
    after = engine.recommend(held)
    prev = dict(zip(before["item_id"], before["rank"]))
    assert after["rank_change"].notna().any()
    for item, rank, change in zip(after["item_id"], after["rank"], after["rank_change"]):
        assert (pd.isna(change) and item not in prev) or change == prev[item] - rank


def test_a_larger_cache_keeps_as_many_last_lists(model):
    engine = Engine(model, k=2, cache_size=MIN_LAST_LISTS + 10, explain=False)
    for u in range(MIN_LAST_LISTS + 30):
        engine.recommend(f"s{u}")
    assert len(engine.ranker.last_lists) == MIN_LAST_LISTS + 10


def test_last_lists_drop_the_least_recently_served_and_keep_the_rest_unchanged():
    last = LastLists(2)
    assert last.changes("a", [1, 2, 3]).isna().all()
    last.changes("b", [1, 2])
    assert last.changes("a", [3, 1, 2]).tolist() == [2, -1, -1]      # "a" served again: now the most recent
    last.changes("c", [9])                                           # "b" is dropped, not "a"
    assert len(last) == 2
    assert last.changes("a", [1, 3]).tolist() == [1, -1]
    assert last.changes("b", [1, 2]).isna().all()
    with pytest.raises(ValueError, match="size"):
        LastLists(0)


# ---- a list from the cache carries the rank changes a fresh one would --------------------------------
def _script(engine) -> list:
    """The rank_change column of each list served by one scripted run of calls."""
    out = []
    def serve(user, **kw):
        out.append(engine.recommend(user, **kw)["rank_change"].tolist())
    serve("v")
    serve("v")                                       # the same list, no event in between
    engine.ingest(_ev("v", 10, 20.0))
    serve("v")
    serve("v")
    serve("v", k=2)                                  # another request between two of the same
    serve("v")
    serve("v", filters={"price": (0, 25)})
    serve("v", filters={"price": (0, 25)})
    engine.ingest(_ev("w", 15, 21.0, "purchase"))    # someone else's event moves "popular now"
    serve("v")
    serve(2)
    engine.ingest(_ev(2, 13, 22.0, "cart"))          # the shopper's own event
    serve(2)
    serve(2)
    return out


def test_cached_and_fresh_lists_carry_the_same_rank_changes(model):
    cached = _script(Engine(model, k=4, items=ITEMS, explain=False))
    fresh = _script(Engine(model, k=4, items=ITEMS, explain=False, cache_size=0))
    for step, (a, b) in enumerate(zip(cached, fresh)):
        assert [None if pd.isna(x) else x for x in a] == [None if pd.isna(x) else x for x in b], f"call {step}"


def test_an_unchanged_list_repeats_its_changes_until_the_shopper_moves(model):
    engine = Engine(model, k=4, cache_size=0, explain=False)
    first = engine.recommend("v")["rank_change"]
    assert first.isna().all() and engine.recommend("v")["rank_change"].isna().all()
    engine.ingest(_ev("v", 99, 20.0))               # an item no list holds: the list may stay as it was
    before = engine.recommend("v")
    engine.ingest(_ev("v", 98, 21.0))
    after = engine.recommend("v")
    prev = dict(zip(before["item_id"], before["rank"]))
    for item, rank, change in zip(after["item_id"], after["rank"], after["rank_change"]):
        assert (pd.isna(change) and item not in prev) or change == prev[item] - rank
    # reset_user forgets the last list as well.
    engine.reset_user("v")
    assert engine.recommend("v")["rank_change"].isna().all()


# ---- a background refit that keeps failing: counted, logged once, retried less often, its log bounded ----
def _rows(frame):
    return sorted(zip(frame["user_id"], frame["item_id"], frame["timestamp"]))


def _feed(engine, live, n, start):
    for i in range(start, start + n):
        live.append(_ev(100 + i % 7, 10 + i % 6, 100.0 + i))
        engine.ingest(live[-1])
        assert engine.wait_for_refit(timeout=60)


def _feed_until_refit(engine, live: list, most: int = 200) -> None:
    """Feed one event at a time until a background refit has swapped in (at most ``most`` events)."""
    for _ in range(most):
        if engine.stats()["refits"]:
            return
        _feed(engine, live, 1, len(live))


def test_a_refit_that_keeps_failing_is_counted_warned_once_and_backs_off(caplog):
    model = EASE().fit(TRAIN)
    engine = Engine(model, refit_every=2, explain=False)
    model.l2 = -1.0                      # every copy refuses to fit
    live: list = []
    with caplog.at_level("WARNING", logger="recapp.realtime.refit"):
        _feed(engine, live, 40, 0)
    stats = engine.stats()
    assert "l2" in stats["refit_error"] and stats["refits"] == 0 and engine.model is model
    # Tried after 2, 6, 14 and 30 events, not after every second one; one warning for the whole run.
    assert stats["refit_failures"] == 4
    assert len([r for r in caplog.records if "refit failed" in r.getMessage()]) == 1
    model.l2 = 500.0
    _feed_until_refit(engine, live)
    stats = engine.stats()
    assert stats["refits"] == 1 and stats["refit_error"] is None and stats["refit_failures"] == 0
    assert _rows(engine.model.interactions_.frame) == _rows(pd.concat([TRAIN, pd.DataFrame(live)]))


def test_the_refit_log_is_bounded_and_what_it_drops_is_counted(monkeypatch, caplog):
    from recapp.realtime import refit

    monkeypatch.setattr(refit, "MAX_LOG", 10)
    model = EASE().fit(TRAIN)
    engine = Engine(model, refit_every=2, explain=False)
    model.l2 = -1.0
    live: list = []
    with caplog.at_level("WARNING", logger="recapp.realtime.refit"):
        _feed(engine, live, 30, 0)
    assert engine.stats()["refit_rows_dropped"] == 20
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 1
    model.l2 = 500.0
    _feed_until_refit(engine, live)
    # The refit learns the events its log still held, each once.
    assert _rows(engine.model.interactions_.frame) == _rows(pd.concat([TRAIN, pd.DataFrame(live[-10:])]))
    assert engine.stats()["refit_rows_dropped"] == len(live) - 10
