"""The engine after a model swap, and the summed weights it checks: a shopper is never left unservable."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

import recapp.models.live_history as live_history
from recapp.models import BPR, EASE
from recapp.models.live_history import LiveHistory
from recapp.realtime import Engine


def _ratings(seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"user_id": rng.integers(0, 30, 400), "item_id": rng.integers(0, 40, 400),
                         "timestamp": np.arange(400.0), "event": "rating",
                         "rating": rng.integers(1, 6, 400).astype(float)})


def _rating(user, item, t, rating):
    return {"user_id": user, "item_id": item, "timestamp": t, "event": "rating", "rating": rating}


@pytest.fixture(scope="module")
def models():
    ev = _ratings()
    return EASE().fit(ev), BPR(n_epochs=5, verbose=False, random_state=0).fit(ev)


def test_a_shopper_holding_a_weight_the_swapped_in_model_cannot_fold_in_is_still_served(models, caplog):
    # EASE reads no weights live, so it accepted a rating of -7; BPR folds it in as the confidence 1 + 3 * -7 < 0.
    # Before, the swapped-in scorer was started on the whole history: every later recommend (and every ingest)
    # of that shopper raised, for good.
    ease, bpr = models
    engine = Engine(ease, k=5, explain=False)
    res = engine.ingest([_rating("live", 3, 500.0, -7.0), _rating("live", 4, 501.0, 4.0), _rating(0, 5, 502.0, -7.0)])
    assert res.n_ingested == 3
    engine.recommend("live")
    with caplog.at_level(logging.WARNING, logger="recapp.realtime.state"):
        engine.swap_model(bpr)
        out = engine.recommend("live", k=10)
        engine.recommend("live", k=10)
        assert len(engine.recommend(0, k=5)) == 5                  # a training user with such a live event too
    assert len(out) == 10 and 3 not in set(out["item_id"])          # rated: still never recommended
    assert engine.history("live")["item_id"].tolist() == [4]        # left out of the live history
    stats = engine.stats()
    assert stats["events_unread_after_swap"] == 2 and stats["training_events_unread"] == 0
    warnings = [r for r in caplog.records if "swapped-in model cannot fold in" in r.getMessage()]
    assert len(warnings) == 1 and "'live'" in warnings[0].getMessage()
    # Served as BPR serves a shopper who rated item 4 only (item 3 excluded either way).
    ref = Engine(bpr, k=5, explain=False)
    ref.ingest(_rating("ref", 4, 501.0, 4.0))
    want = ref.recommend("ref", k=11)
    want = want[want["item_id"] != 3].head(10).reset_index(drop=True)
    pd.testing.assert_frame_equal(out[["item_id", "score"]], want[["item_id", "score"]])
    # And the shopper keeps taking events; a batch with them goes through whole.
    res = engine.ingest([_rating("live", 6, 503.0, 2.0), _rating("other", 7, 504.0, 1.0)])
    assert res.n_ingested == 2 and res.n_rejected == 0
    assert engine.history("live")["item_id"].tolist() == [4, 6]


def test_an_ingest_after_the_swap_does_not_fail_on_the_held_history(models):
    # The first thing to touch the shopper after the swap is an event: before, ingest raised mid-batch.
    ease, bpr = models
    engine = Engine(ease, explain=False)
    engine.ingest([_rating("live", 3, 500.0, -7.0), _rating("live", 4, 501.0, 4.0)])
    engine.swap_model(bpr)
    res = engine.ingest([_rating("live", 5, 502.0, 3.0), _rating("next", 6, 503.0, 3.0)])
    assert res.n_ingested == 2 and res.n_rejected == 0
    assert engine.history("live")["item_id"].tolist() == [4, 5]
    assert len(engine.recommend("live", k=3)) == 3
    assert engine.stats()["events_unread_after_swap"] == 1


def test_a_swap_to_a_model_that_reads_every_weight_leaves_nothing_out(models):
    ease, bpr = models
    engine = Engine(bpr, explain=False)
    engine.ingest([_rating("live", 3, 500.0, 2.0), _rating("live", 4, 501.0, 4.0)])
    before = engine.history("live")
    engine.swap_model(ease)
    assert len(engine.recommend("live", k=3)) == 3
    assert engine.history("live").equals(before)
    assert engine.stats()["events_unread_after_swap"] == 0


@pytest.mark.parametrize("recency", [1.0, 0.9, 0.5, 0.01])
def test_the_weight_checked_before_an_event_is_the_one_the_event_stores(recency):
    # summed_after used to compute raw * scale * recency + weight, add stores (raw + weight / scale') * scale':
    # with a recency decay the two differ in the last bits.
    rng = np.random.default_rng(3)
    for _ in range(300):
        h = LiveHistory()
        for _ in range(int(rng.integers(1, 40))):
            item, w = int(rng.integers(0, 4)), float(rng.normal())
            predicted = h.summed_after(item, w, recency)
            h.add(item, 1, 0.0, w, recency)
            assert h.summed_weight(item) == predicted


def test_an_event_at_the_edge_of_what_the_model_can_fold_in_is_judged_once():
    # BPR folds a summed weight w in as the confidence 1 + 3w. With recency 0.9, the pre-check saw
    # -0.33333333333333326 (accepted) while the event stored -0.3333333333333333 (confidence 0): the fold-in
    # then raised inside ingest, after the history had changed, and the rest of the batch was lost.
    engine = Engine(BPR(n_epochs=5, verbose=False, random_state=0).fit(_ratings()), recency=0.9, explain=False)
    ids = engine.item_ids
    res = engine.ingest([_rating("x", ids[0], 500.0, 1.0724610869304878), _rating("x", ids[1], 501.0, 1.0),
                         _rating("x", ids[0], 502.0, -1.2020268137470285),
                         {"user_id": "y", "item_id": ids[2], "timestamp": 503.0, "event": "view"}])
    assert res.n_ingested == 3 and res.n_rejected == 1
    assert "confidence 1 + c = 0.0" in res.rejected["reason"].iloc[0]
    assert engine.history("x")["item_id"].tolist() == [ids[0], ids[1]]
    assert engine.history("y")["item_id"].tolist() == [ids[2]]
    assert len(engine.recommend("x", k=3)) == 3


def test_drop_items_forgets_their_weights_and_events():
    h = LiveHistory.from_sequence([1, 2, 1, 3], [0, 0, 3, 0], [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 5.0, 1.0], 0.5)
    before = h.summed_weight(2), h.summed_weight(3)
    h.drop_items([1])
    assert h.items == [2, 3] and h.events == [0, 0] and h.times == [2.0, 4.0]
    assert 1 not in h.raw and 1 not in h.latest
    assert (h.summed_weight(2), h.summed_weight(3)) == before       # the decay item 1 gave the others stays


def test_the_trimmed_count_follows_the_held_histories(monkeypatch, models):
    # stats() keeps a running count (each cut reports itself) instead of summing over every shopper;
    # it must still equal that sum, through trims at load, trims while serving and reset_user.
    ease, _ = models
    monkeypatch.setattr(live_history, "HISTORY_MAX_EVENTS", 5)
    ev = _ratings()
    heavy = ev["user_id"].value_counts().index[0]
    engine = Engine(ease, explain=False)
    engine.recommend(heavy)                                           # loaded: its training sequence is cut
    at_load = int((ev["user_id"] == heavy).sum()) - len(engine.history(heavy))
    assert at_load > 0 and engine.stats()["history_events_trimmed"] == at_load
    for j in range(23):
        engine.ingest({"user_id": "bot", "item_id": j % 7, "timestamp": 600.0 + j, "event": "view"})
    bot = 23 - len(engine.history("bot"))
    assert bot > 0 and engine.stats()["history_events_trimmed"] == at_load + bot
    engine.reset_user("bot")
    assert engine.stats()["history_events_trimmed"] == at_load
    engine.ingest({"user_id": "bot", "item_id": 1, "timestamp": 700.0, "event": "view"})
    assert engine.stats()["history_events_trimmed"] == at_load
