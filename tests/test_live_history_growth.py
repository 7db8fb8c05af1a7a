"""A live history's event sequence stays bounded; its per-item weights still count every event."""
import numpy as np
import pandas as pd
import pytest

import recapp.models.live_history as live_history
from recapp.models.live_history import LiveHistory
from recapp.realtime import Engine

N = 5


def _events(n, n_items=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_items, n).tolist(), rng.integers(0, 3, n).tolist(), rng.random(n).tolist()


def _fed(n, recency=1.0):
    items, codes, weights = _events(n)
    h = LiveHistory()
    for k in range(n):
        h.add(items[k], codes[k], float(k), weights[k], recency)
    return h


@pytest.mark.parametrize("recency", [1.0, 0.5])
def test_add_keeps_the_last_events_and_exact_weights(monkeypatch, recency):
    full = _fed(43, recency)          # the default bound is far above 43: nothing trimmed
    assert full.trimmed == 0 and len(full.items) == 43
    monkeypatch.setattr(live_history, "HISTORY_MAX_EVENTS", N)
    h = _fed(43, recency)
    assert N <= len(h.items) < 2 * N
    assert len(h.items) == len(h.events) == len(h.times)
    assert h.trimmed + len(h.items) == 43
    assert h.items == full.items[-len(h.items):] and h.events == full.events[-len(h.items):]
    assert h.times == full.times[-len(h.items):]
    assert h.raw == full.raw and h.latest == full.latest and h.scale == full.scale


def test_from_sequence_keeps_the_last_events_and_exact_weights(monkeypatch):
    items, codes, weights = _events(12)
    times = np.arange(12.0)
    full = LiveHistory.from_sequence(items, codes, times, weights, 0.9)
    monkeypatch.setattr(live_history, "HISTORY_MAX_EVENTS", N)
    h = LiveHistory.from_sequence(items, codes, times, weights, 0.9)
    assert h.items == items[-N:] and h.events == codes[-N:] and h.times == times[-N:].tolist()
    assert h.trimmed == 12 - N
    assert h.raw == full.raw and h.latest == full.latest


def test_readers_of_the_sequence_see_the_recent_events(monkeypatch):
    full = _fed(43)
    monkeypatch.setattr(live_history, "HISTORY_MAX_EVENTS", 8)
    h = _fed(43)
    assert h.trimmed > 0
    for got, exp in zip(h.sequence(6, 2), full.sequence(6, 2)):
        np.testing.assert_array_equal(got, exp)
    np.testing.assert_array_equal(h.recent(7, 3), full.recent(7, 3))


def test_engine_bounds_one_shoppers_history_and_counts_it(monkeypatch, ease, shop):
    items = shop.events["item_id"].unique()[:20]
    rng = np.random.default_rng(1)
    n = 60
    batch = pd.DataFrame({"user_id": "bot", "item_id": rng.choice(items, n), "event": "view",
                          "timestamp": 1.7e9 + np.arange(n)})
    plain = Engine(ease, explain=False)
    plain.ingest(batch)
    assert plain.stats()["history_events_trimmed"] == 0
    monkeypatch.setattr(live_history, "HISTORY_MAX_EVENTS", N)
    bounded = Engine(ease, explain=False)
    for row in batch.to_dict("records"):
        bounded.ingest(row)
    hist = bounded.history("bot")
    assert N <= len(hist) < 2 * N
    assert hist["item_id"].tolist() == batch["item_id"].tolist()[-len(hist):]
    assert bounded.stats()["history_events_trimmed"] == n - len(hist)
    # The summed weights are untouched by trimming, so the recommendations are the same.
    a, b = plain.recommend("bot"), bounded.recommend("bot")
    assert a["item_id"].tolist() == b["item_id"].tolist()
    np.testing.assert_allclose(a["score"].to_numpy(), b["score"].to_numpy(), rtol=1e-6)
