"""The event store keeps ids as sent, refuses a second writer on one file, and quarantines a bad pseudonymised row alone."""
import json

import duckdb
import pandas as pd
import pytest

from recapp.models import Popularity
from recapp.privacy import Pseudonymizer
from recapp.realtime import Engine, EventStore
from recapp.realtime.store import EventStore as StoreFromModule

KEY = "0123456789abcdef-test-key-not-secret"


def _ev(user, item, t, event="view", **kw):
    return {"user_id": user, "item_id": item, "timestamp": t, "event": event, **kw}


@pytest.fixture()
def mixed_model():
    # A shop whose members have integer ids and guests text ones; items are integers.
    train = pd.DataFrame({"user_id": pd.Series([7, 7, "guest", 8], dtype=object), "item_id": [1, 2, 1, 3],
                          "timestamp": [1e9, 1e9 + 1, 1e9 + 2, 1e9 + 3], "event": "view"})
    return Popularity().fit(train)


# ---- ids as sent ---------------------------------------------------------------------------------
def test_a_text_store_gives_numbers_back_as_sent(tmp_path):
    with EventStore(tmp_path / "t.duckdb") as store:
        store.append(_ev("guest", "sku-1", 1e9))
        res = store.append([_ev(7, "sku-1", 1e9 + 1), _ev("7", "sku-1", 1e9 + 2), _ev(7.5, 3, 1e9 + 3)])
        # Was ["7", "7", "7.5"]: shopper 7 merged with shopper "7", and item 3 became "3".
        assert res.events["user_id"].tolist() == [7, "7", 7.5]
        assert [type(u) for u in res.events["user_id"]] == [int, str, float]
        assert res.events["item_id"].tolist() == ["sku-1", "sku-1", 3]
        replayed = pd.concat(list(store.iter_batches()))
        assert replayed["user_id"].tolist() == ["guest", 7, "7", 7.5]
        assert [type(u) for u in replayed["user_id"]] == [str, int, str, float]
        assert store.events()["user_id"].tolist() == ["guest", "7", "7", "7.5"]      # read methods: as stored


def test_an_engine_writing_through_a_text_store_keys_shoppers_as_without_one(tmp_path, mixed_model):
    batch = [_ev("guest", 1, 2e9), _ev(7, 3, 2e9 + 1, "purchase"), _ev(7.0, 2, 2e9 + 2)]
    plain = Engine(mixed_model, explain=False)
    plain.ingest(batch)
    with EventStore(tmp_path / "e.duckdb") as store:
        live = Engine(mixed_model, explain=False, store=store)
        assert live.ingest(batch).n_ingested == 3
        # Was 2 (training only): both live events went to a shopper "7" the model never knew.
        assert len(live.history(7)) == len(plain.history(7)) == 4
        assert len(live.history("7")) == 0
    replayed = Engine.from_store(mixed_model, tmp_path / "e.duckdb", explain=False)
    for user in (7, "7", "guest"):
        assert live.history(user).equals(replayed.history(user))
        pd.testing.assert_frame_equal(live.recommend(user), replayed.recommend(user))


def test_a_text_store_quarantines_an_id_that_would_not_read_back(tmp_path):
    with EventStore(tmp_path / "q.duckdb") as store:
        store.append(_ev("a", "x", 1e9))
        res = store.append([_ev(b"bob", "x", 1e9), _ev("b", ("x", 1), 1e9), _ev("c", "y", 1e9)])
        assert res.n_written == 1 and res.n_quarantined == 2
        reasons = res.rejected["reason"].tolist()
        assert "user_id b'bob' is a bytes" in reasons[0] and "item_id ('x', 1) is a tuple" in reasons[1]
        assert len(store.quarantine()) == 2 and store.events()["user_id"].tolist() == ["a", "c"]


def test_stores_of_one_kind_are_unchanged(tmp_path):
    with EventStore(tmp_path / "txt.duckdb") as store:
        store.append(_ev("a", "x", 1e9))
        res = store.append([_ev("b", "y", 1e9 + 1)])
        assert res.events["user_id"].tolist() == ["b"] and store.sql("SELECT user_id_kind FROM events")["user_id_kind"].isna().all()
        assert pd.concat(list(store.iter_batches()))["user_id"].tolist() == ["a", "b"]
    with EventStore(tmp_path / "int.duckdb") as store:
        store.append(_ev(1, 10, 1e9))
        res = store.append([_ev(2, 11, 1e9 + 1), _ev("2", 11, 1e9 + 2), _ev(2.0, 11, 1e9 + 3)])
        assert res.events["user_id"].tolist() == [2] and res.n_quarantined == 2
        assert pd.concat(list(store.iter_batches()))["user_id"].dtype == "int64"


def test_a_text_store_written_before_id_kinds_still_replays(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))                 # the layout before id kinds were kept
    con.execute("""
        CREATE TABLE batches (batch_id BIGINT PRIMARY KEY, n_rows BIGINT, n_quarantined BIGINT, committed_at DOUBLE);
        CREATE TABLE quarantine (batch_id BIGINT, reason VARCHAR, row_json VARCHAR, received_at DOUBLE);
        CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR);
        CREATE TABLE events (seq BIGINT, batch_id BIGINT, user_id VARCHAR NOT NULL, item_id VARCHAR NOT NULL,
                             timestamp DOUBLE NOT NULL, event VARCHAR NOT NULL, rating DOUBLE, value DOUBLE,
                             ingested_at DOUBLE, event_id VARCHAR);
        INSERT INTO batches VALUES (1, 1, 0, 1.0);
        INSERT INTO events VALUES (1, 1, '7', 'x', 1e9, 'view', NULL, NULL, 1.0, NULL);
    """)
    con.close()
    with EventStore(path, read_only=True) as ro:
        assert pd.concat(list(ro.iter_batches()))["user_id"].tolist() == ["7"]
    with EventStore(path) as store:
        store.append(_ev(7, "x", 2e9))
        assert pd.concat(list(store.iter_batches()))["user_id"].tolist() == ["7", 7]


# ---- one writer per file -------------------------------------------------------------------------
def test_a_second_writer_on_one_file_is_refused(tmp_path):
    path = tmp_path / "w.duckdb"
    first = EventStore(path)
    first.append(_ev(1, 1, 1e9, event_id="e0"))
    # Was allowed: each kept its own event id cache, so "e1" through both was written twice.
    with pytest.raises(ValueError, match=r"w\.duckdb is already open for writing in this process"):
        StoreFromModule(tmp_path / "." / "w.duckdb")
    with pytest.raises(ValueError, match="already open for writing"):
        Engine(Popularity().fit(pd.DataFrame([_ev(1, 1, 1e9)])), store=str(path))
    first.append(_ev(1, 2, 1e9, event_id="e1"))
    first.close()
    with EventStore(path) as again:
        assert again.append(_ev(1, 2, 1e9, event_id="e1")).n_quarantined == 1
        assert again.sql("SELECT count(*) AS n FROM events")["n"].iloc[0] == 2
    a, b = EventStore(":memory:"), EventStore(":memory:")          # separate databases: both may write
    a.append(_ev(1, 1, 1e9)), b.append(_ev(1, 1, 1e9))
    a.close(), b.close()


def test_a_store_that_fails_to_open_does_not_hold_the_file(tmp_path):
    path = tmp_path / "k.duckdb"
    with EventStore(path, pseudonymizer=Pseudonymizer(KEY)) as store:
        store.append(_ev("alice", 1, 1e9))
    with pytest.raises(ValueError, match="key id"):
        EventStore(path, pseudonymizer=Pseudonymizer(KEY + "-other"))
    with EventStore(path, pseudonymizer=Pseudonymizer(KEY)) as store:
        assert len(store) == 1


# ---- a bad id in a pseudonymised batch -----------------------------------------------------------
def test_a_pseudonymised_store_quarantines_a_bad_user_id_alone(tmp_path):
    p = Pseudonymizer(KEY)
    with EventStore(tmp_path / "p.duckdb", pseudonymizer=p) as store:
        # Was a TypeError for the whole batch.
        res = store.append([_ev("bob", 1, 1e9), _ev(True, 2, 1e9), _ev(["alice@example.com"], 3, 1e9)])
        assert res.n_written == 1 and res.n_quarantined == 2
        assert res.events["user_id"].tolist() == [p("bob")]
        reasons = res.rejected["reason"].tolist()
        assert "user_id True is a boolean" in reasons[0] and "is a list, not an id" in reasons[1]
        stored = json.dumps(store.quarantine().to_dict(orient="records"))
        assert "alice" not in stored and "bob" not in stored                 # no raw id reaches the file
        assert store.batches()["n_quarantined"].tolist() == [2]
    with pytest.raises(TypeError, match="position 1 is a boolean"):
        p.many(["bob", True])                                              # many() alone still refuses


def test_a_pseudonymising_engine_refuses_a_bad_user_id_alone(tmp_path):
    p = Pseudonymizer(KEY)
    model = Popularity().fit(p.frame(pd.DataFrame([_ev("bob", 1, 1e9)])))
    for store in (None, tmp_path / "e.duckdb"):
        engine = Engine(model, explain=False, pseudonymizer=p, store=store)
        res = engine.ingest([_ev("bob", 2, 2e9), _ev({"id": "alice"}, 2, 2e9)])
        assert (res.n_ingested, res.n_rejected) == (1, 1)
        assert "is a dict, not an id" in res.rejected["reason"].iloc[0] and "alice" not in str(res.rejected["row"].iloc[0])
        one = engine.ingest(_ev(False, 2, 2e9))
        assert (one.n_ingested, one.n_rejected) == (0, 1) and "boolean" in one.rejected["reason"].iloc[0]
        if engine.store is not None:
            engine.store.close()
