"""Bad input and concurrency: every malformed, unknown, late or repeated event gets its documented outcome."""
from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from recapp.realtime import Engine


def _ev(user, item, t, event="view", **kw):
    return {"user_id": user, "item_id": item, "timestamp": t, "event": event, **kw}


def test_unknown_item_joins_the_catalogue_and_is_served_from_popularity(ease):
    engine = Engine(ease, k=5, half_life=3600.0)
    n = engine.n_items
    for j in range(8):
        assert engine.ingest(_ev(f"fan{j}", "launch-1", 2e9 + j, "purchase")).n_ingested == 1
    assert engine.n_items == n + 1
    assert engine.popular(3)["item_id"].iloc[0] == "launch-1"
    # A shopper the model knows: the new item reaches them through "popular now" backfill only.
    out = engine.recommend(ease.interactions_.user_ids[0], k=engine.n_items)   # the whole catalogue
    row = out[out["item_id"] == "launch-1"]
    assert len(row) == 1 and row["explanation"].iloc[0] == "popular now"
    # Its buyers never see it again (a purchase is excluded).
    assert "launch-1" not in set(engine.recommend("fan0", k=engine.n_items)["item_id"])
    assert engine.recommend("stranger")["item_id"].iloc[0] == "launch-1"


@pytest.mark.parametrize("bad, reason", [
    (_ev(None, 3, 2e9), "missing user_id"),
    (_ev(1, None, 2e9), "missing item_id"),
    (_ev(1, 3, "yesterday-ish"), "unparseable timestamp"),
    (_ev(1, 3, 2e9, "teleport"), "unknown event"),
    (_ev(1, 3, 2e9, "rating", rating="five"), "non-numeric rating"),
])
def test_malformed_events_are_rejected_with_their_reason(ease, bad, reason):
    engine = Engine(ease)
    before = engine.history(1)
    res = engine.ingest(bad)
    assert res.n_ingested == 0 and res.n_rejected == 1
    assert res.rejected["reason"].iloc[0].startswith(reason)
    assert engine.history(1).equals(before)
    assert engine.stats()["events_rejected"] == 1


def test_out_of_order_events_are_applied_in_arrival_order(ease):
    engine = Engine(ease, explain=False)
    engine.ingest(_ev("late", 5, 2e9 + 100))
    engine.ingest(_ev("late", 6, 2e9))            # older timestamp, arrives second
    h = engine.history("late")
    assert h["item_id"].tolist() == [5, 6]
    assert h["timestamp"].tolist() == [2e9 + 100, 2e9]
    # Within one batch, rows are applied in timestamp order.
    engine.ingest([_ev("batch", 7, 2e9 + 5), _ev("batch", 8, 2e9 + 1)])
    assert engine.history("batch")["item_id"].tolist() == [8, 7]


def test_duplicate_events_are_ignored_by_id(ease):
    engine = Engine(ease, explain=False)
    first = engine.ingest(_ev("dup", 9, 2e9, event_id="e-1"))
    again = engine.ingest(_ev("dup", 9, 2e9, event_id="e-1"))
    assert first.n_ingested == 1 and again.n_ingested == 0
    assert again.rejected["reason"].iloc[0] == "duplicate event_id 'e-1'"
    batch = engine.ingest([_ev("dup", 10, 2e9 + 1, event_id="e-2"), _ev("dup", 11, 2e9 + 2, event_id="e-1")])
    assert batch.n_ingested == 1 and batch.n_rejected == 1
    assert engine.history("dup")["item_id"].tolist() == [9, 10]
    # Events without an id are never deduplicated.
    engine.ingest(_ev("dup", 12, 2e9 + 3))
    engine.ingest(_ev("dup", 12, 2e9 + 3))
    assert len(engine.history("dup")) == 4
    # Ids compare as the store keeps them: 7, 7.0 (pandas' integer column with gaps) and "7" are one id.
    assert engine.ingest(_ev("dup", 13, 2e9 + 4, event_id=7)).n_ingested == 1
    again = engine.ingest([_ev("dup", 13, 2e9 + 4, event_id=7.0), _ev("dup", 13, 2e9 + 4, event_id="7")])
    assert again.n_ingested == 0 and again.n_rejected == 2


def test_concurrent_ingest_and_recommend_lose_nothing(ease, shop):
    engine = Engine(ease, k=10)
    items = ease.interactions_.item_ids.to_numpy()
    n_threads, n_events = 4, 150
    errors, lists = [], []

    def writer(w):
        rng = np.random.default_rng(w)
        try:
            for j in range(n_events):
                engine.ingest(_ev(f"w{w}", int(rng.choice(items)), 2e9 + j, "purchase" if j % 3 == 0 else "view"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader(r):
        try:
            for j in range(n_events):
                lists.append((f"w{j % n_threads}", engine.recommend(f"w{j % n_threads}")))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(n_threads)]
    threads += [threading.Thread(target=reader, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert engine.stats()["events_ingested"] == n_threads * n_events
    for w in range(n_threads):
        assert len(engine.history(f"w{w}")) == n_events
    for _, out in lists:
        assert len(out) == 10 and out["item_id"].is_unique and out["rank"].tolist() == list(range(1, 11))
    # After the writers stop, no list holds an item its shopper bought.
    for w in range(n_threads):
        h = engine.history(f"w{w}")
        bought = set(h.loc[h["event"] == "purchase", "item_id"])
        assert not bought & set(engine.recommend(f"w{w}")["item_id"])


def test_duplicate_events_are_refused_with_a_store_too(ease, tmp_path):
    from recapp.realtime import EventStore

    path = tmp_path / "dedup.duckdb"
    with EventStore(path) as store:
        engine = Engine(ease, explain=False, store=store)
        first = engine.ingest(_ev("dup", 9, 2e9, event_id="e-1"))
        again = engine.ingest(_ev("dup", 9, 2e9, event_id="e-1"))
        assert first.n_ingested == 1 and again.n_ingested == 0
        assert again.rejected["reason"].iloc[0] == "duplicate event_id 'e-1'"
        batch = engine.ingest([_ev("dup", 10, 2e9 + 1, event_id="e-2"), _ev("dup", 11, 2e9 + 2, event_id="e-1"),
                               _ev("dup", 12, 2e9 + 3, event_id="e-3"), _ev("dup", 13, 2e9 + 4, event_id="e-3")])
        assert batch.n_ingested == 2 and batch.n_rejected == 2
        assert engine.history("dup")["item_id"].tolist() == [9, 10, 12]
        assert len(store) == 3
        q = store.quarantine()
        assert q["reason"].tolist() == ["duplicate event_id 'e-1'", "duplicate event_id 'e-1'", "duplicate event_id 'e-3'"]
        assert engine.stats()["events_rejected"] == 3
        # Events without an id are never deduplicated.
        engine.ingest(_ev("dup", 14, 2e9 + 5))
        engine.ingest(_ev("dup", 14, 2e9 + 5))
        assert len(engine.history("dup")) == 5
    # The ids are in the file, so a restarted engine still refuses a redelivery.
    with EventStore(path) as store:
        restarted = Engine(ease, explain=False, store=store)
        res = restarted.ingest([_ev("dup", 9, 2e9, event_id="e-1"), _ev("dup", 15, 2e9 + 6, event_id="e-4")])
        assert (res.n_ingested, res.n_rejected) == (1, 1)
        assert len(store) == 6


def test_store_file_without_event_ids_still_opens(ease, tmp_path):
    import duckdb

    from recapp.realtime import EventStore

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))                     # the layout before event_id was stored
    con.execute("""
        CREATE TABLE batches (batch_id BIGINT PRIMARY KEY, n_rows BIGINT, n_quarantined BIGINT, committed_at DOUBLE);
        CREATE TABLE quarantine (batch_id BIGINT, reason VARCHAR, row_json VARCHAR, received_at DOUBLE);
        CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR);
        CREATE TABLE events (seq BIGINT, batch_id BIGINT, user_id BIGINT NOT NULL, item_id BIGINT NOT NULL,
                             timestamp DOUBLE NOT NULL, event VARCHAR NOT NULL, rating DOUBLE, value DOUBLE,
                             ingested_at DOUBLE);
        INSERT INTO batches VALUES (1, 1, 0, 1.0);
        INSERT INTO events VALUES (1, 1, 7, 3, 1e9, 'view', NULL, NULL, 1.0);
    """)
    con.close()
    with EventStore(path, read_only=True) as ro:
        assert ro.events()["user_id"].tolist() == [7] and len(list(ro.iter_batches())) == 1
    with EventStore(path) as store:
        engine = Engine(ease, explain=False, store=store)
        assert engine.ingest(_ev(7, 4, 2e9, event_id="e-1")).n_ingested == 1
        assert engine.ingest(_ev(7, 4, 2e9, event_id="e-1")).n_rejected == 1
        assert store.events()["item_id"].tolist() == [3, 4]


def test_engine_refuses_event_weights_that_are_not_numbers():
    from recapp.models import Popularity

    model = Popularity().fit(pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "timestamp": [1.0, 2.0],
                                           "event": ["view", "click"]}))
    with pytest.raises(ValueError, match="not finite numbers: {'click': nan}"):
        Engine(model, event_weights={"click": float("nan")})
    with pytest.raises(ValueError, match="unknown event type"):
        Engine(model, event_weights={"like": 1.0})


def _rated_als(rating_of_11=1.0):
    from recapp.models import ALS

    rng = np.random.default_rng(0)
    ev = pd.DataFrame({"user_id": rng.integers(0, 30, 400), "item_id": rng.integers(0, 40, 400),
                       "timestamp": np.arange(400.0), "event": "rating", "rating": rng.integers(1, 6, 400).astype(float)})
    return ALS(binary=False, factors=4, iterations=3, alpha=0.5, random_state=0, verbose=False).fit(ev)


@pytest.mark.parametrize("with_store", [False, True])
def test_an_event_the_served_model_cannot_fold_in_is_refused_alone(tmp_path, with_store):
    # ALS folds a rating in as the confidence 1 + 0.5 * rating: a rating of -7 from a new shopper gives -2.5.
    # Before, the live scorer raised in the middle of the batch: the rows after it were neither applied nor reported.
    from recapp.realtime import EventStore

    store = EventStore(tmp_path / "events.duckdb") if with_store else None
    engine = Engine(_rated_als(), store=store)
    batch = pd.DataFrame({"user_id": ["new", "new", "other"], "item_id": [3, 4, 5], "timestamp": [500.0, 501, 502],
                          "event": "rating", "rating": [-7.0, 4.0, 3.0]})
    res = engine.ingest(batch)
    assert res.n_ingested == 2 and res.n_rejected == 1
    assert res.rejected["row"].iloc[0]["rating"] == -7.0
    assert "ALS's live scorer cannot fold it in" in res.rejected["reason"].iloc[0] and "-2.5" in res.rejected["reason"].iloc[0]
    # The refused event changed nothing: the shopper's history holds the rating of 4 only.
    assert engine.history("new")["item_id"].tolist() == [4]
    assert len(engine.recommend("new", k=3)) == 3
    assert engine.stats()["events_rejected"] == 1
    # Once the item's summed weight is large enough, a small negative rating folds in.
    assert engine.ingest(_ev("new", 4, 503.0, "rating", rating=-1.0)).n_ingested == 1
    if store is not None:
        store.close()


def test_training_events_the_live_model_cannot_fold_in_are_left_out_and_counted():
    # BPR fits on which items a shopper chose (weights ignored) but folds a live history in with confidences
    # 1 + 3 * weight: a training rating of -5 made every live list of that shopper raise.
    from recapp.models import BPR

    rng = np.random.default_rng(0)
    ev = pd.DataFrame({"user_id": rng.integers(0, 30, 400), "item_id": rng.integers(0, 40, 400),
                       "timestamp": np.arange(400.0), "event": "rating", "rating": rng.integers(1, 6, 400).astype(float)})
    ev.loc[0, "rating"] = -5.0
    user, item = ev.loc[0, "user_id"], ev.loc[0, "item_id"]
    engine = Engine(BPR(verbose=False).fit(ev))
    out = engine.recommend(user, k=5)
    assert len(out) == 5 and item not in set(out["item_id"])       # still seen: never recommended
    unread = int(((ev["user_id"] == user) & (ev["item_id"] == item)).sum())
    assert engine.stats()["training_events_unread"] == unread
    assert item not in set(engine.history(user)["item_id"])             # left out of the live history
    assert engine.recommend(ev.loc[1, "user_id"], k=5).shape[0] == 5


@pytest.mark.parametrize("name", ["EASE", "ALS"])
def test_models_that_read_no_weights_keep_every_training_event_live(name):
    # The check above is the live scorer's: a binary EASE or ALS reads no weights, so an infinite training
    # rating (which their fit accepts) leaves nothing out and its shopper is served.
    from recapp.models import ALS, EASE

    ev = pd.DataFrame({"user_id": [1, 1, 2, 2, 3, 3, 3], "item_id": [1, 2, 1, 3, 2, 3, 4], "timestamp": np.arange(7.0),
                       "event": "rating", "rating": [np.inf, 4.0, 3.0, 5.0, 1.0, 2.0, 3.0]})
    model = EASE(binary=True) if name == "EASE" else ALS(binary=True, factors=2, iterations=2, verbose=False)
    engine = Engine(model.fit(ev))
    assert len(engine.recommend(1, k=2)) == 2
    assert engine.stats()["training_events_unread"] == 0
    assert set(engine.history(1)["item_id"]) == {1, 2}
