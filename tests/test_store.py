"""The DuckDB event store: append-only batches, quarantine, SQL, replay, and durability under SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recapp.data.synthetic import synthetic_shop
from recapp.models import EASE
from recapp.realtime import Engine, EventStore, check_events

ROOT = Path(__file__).resolve().parents[1]


def _ev(user, item, t, event="view", **kw):
    return {"user_id": user, "item_id": item, "timestamp": t, "event": event, **kw}


def test_check_events_reasons():
    df = pd.DataFrame([
        _ev(1, 2, 1e9), _ev(None, 2, 1e9), _ev(1, "", 1e9), _ev(1, 2, "yesterday-ish"),
        _ev(1, 2, 1e9, "teleport"), _ev(1, 2, 1e9, "rating", rating="five"), _ev(1, 2, 1.7e12, "AddToCart"),
    ])
    clean, rejected = check_events(df)
    assert len(clean) == 2 and len(rejected) == 5
    assert clean["event"].tolist() == ["view", "cart"]
    assert clean["timestamp"].iloc[1] == pytest.approx(1.7e9)       # milliseconds read as such
    reasons = " | ".join(rejected["reason"])
    for word in ("missing user_id", "missing item_id", "unparseable timestamp", "unknown event", "non-numeric rating"):
        assert word in reasons
    _, missing_col = check_events(pd.DataFrame({"user_id": [1], "item_id": [2], "timestamp": [1.0]}))
    assert "missing required column 'event'" in missing_col["reason"].iloc[0]


def test_append_quarantine_sql(tmp_path):
    path = tmp_path / "shop.duckdb"
    with EventStore(path) as store:
        r1 = store.append(pd.DataFrame([_ev(1, 10, 100.0), _ev(2, 11, 101.0, "purchase", value=9.99), _ev(3, 12, 102.0, "nope")]))
        assert (r1.batch_id, r1.n_written, r1.n_quarantined) == (1, 2, 1)
        r2 = store.append(_ev(1, 12, 103.0, "cart"))
        assert r2.batch_id == 2 and len(store) == 3
        r3 = store.append([_ev("alice", 1, 104.0)])             # string id into a BIGINT store: quarantined
        assert r3.n_written == 0 and r3.n_quarantined == 1
        q = store.quarantine()
        assert len(q) == 2
        assert "unknown event" in q["reason"].iloc[0] and json.loads(q["row_json"].iloc[0])["event"] == "nope"
        assert "not an integer" in q["reason"].iloc[1]
        counts = store.sql("SELECT event, count(*) AS n FROM events GROUP BY event ORDER BY event")
        assert dict(zip(counts["event"], counts["n"])) == {"cart": 1, "purchase": 1, "view": 1}
        assert store.batches()["n_rows"].tolist() == [2, 1, 0]
    with EventStore(path, read_only=True) as again:          # durable and re-openable
        ev = again.events()
        assert ev["timestamp"].tolist() == [100.0, 101.0, 103.0]
        assert ev["value"].iloc[1] == pytest.approx(9.99)
        assert again.events(users=[1])["item_id"].tolist() == [10, 12]
        with pytest.raises(PermissionError):
            again.append(_ev(1, 1, 1.0))


def test_string_ids(tmp_path):
    with EventStore(tmp_path / "s.duckdb") as store:
        store.append(pd.DataFrame([_ev("u1", "sku-1", 1.0), _ev("u2", "sku-2", 2.0)]))
        store.append(_ev(7, 8, 3.0))                           # ints are stored as text in a text store
        assert store.events()["item_id"].tolist() == ["sku-1", "sku-2", "8"]


def test_engine_writes_through_store_and_replays(tmp_path):
    shop = synthetic_shop(n_users=60, n_items=50, n_events=1500, random_state=1)
    model = EASE(l2=20.0).fit(shop.events.iloc[:1000])
    live = shop.events.iloc[1000:1200]
    with EventStore(tmp_path / "live.duckdb") as store:
        engine = Engine(model, store=store, explain=False)
        for start in range(0, len(live), 50):
            engine.ingest(live.iloc[start:start + 50])
        res = engine.ingest(_ev(1, 2, 5e9, "bogus"))
        assert res.n_rejected == 1 and len(store.quarantine()) == 1
        assert len(store) == len(live)
        fresh = Engine.from_store(model, store, explain=False)
        with pytest.raises(ValueError, match="duplicate"):
            store.replay(engine)
    for u in live["user_id"].unique()[:10]:
        pd.testing.assert_frame_equal(engine.recommend(u), fresh.recommend(u))
    assert engine.history(live["user_id"].iloc[0]).equals(fresh.history(live["user_id"].iloc[0]))


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from recapp.realtime.store import EventStore
    store = EventStore({path!r})
    b = 0
    while True:
        b += 1
        rows = [{{"user_id": b, "item_id": j, "timestamp": float(b * 1000 + j), "event": "view"}} for j in range(50)]
        res = store.append(rows)
        print(res.batch_id, res.n_written, flush=True)   # acknowledged only after the commit returned
""")


def test_sigkill_mid_stream_loses_no_committed_batch(tmp_path):
    path = tmp_path / "kill.duckdb"
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=str(Path(__file__).resolve().parents[1]), path=str(path)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    acked = []
    deadline = time.monotonic() + 45
    try:
        while len(acked) < 15 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(tuple(int(x) for x in line.split()))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # Lines printed before the kill but not read yet are acknowledgements too.
    acked += [tuple(int(x) for x in line.split()) for line in proc.stdout.read().splitlines() if line.strip()]
    assert len(acked) >= 5, "the writer acknowledged too few batches to test anything"
    with EventStore(path) as store:
        got = store.sql("SELECT batch_id, count(*) AS n FROM events GROUP BY batch_id")
        have = dict(zip(got["batch_id"], got["n"]))
        for batch_id, n in acked:
            assert have.get(batch_id) == n == 50
        # Batches are atomic: whatever survived is whole, acknowledged or not.
        assert set(have.values()) == {50}
        assert np.array_equal(np.sort(list(have)), np.arange(1, len(have) + 1))
        store.append(_ev(1, 1, 1.0))                          # and the file is writable again


def test_reads_from_another_thread_during_appends(tmp_path):
    # len()/events() used the connection without the store's lock: appends then failed with "connection is busy".
    with EventStore(tmp_path / "conc.duckdb") as store:
        store.append(_ev(0, 1, 0.0))
        errors, done = [], threading.Event()

        def writer():
            try:
                for i in range(1, 61):
                    store.append([_ev(i, 1, float(i)), _ev(i, 2, float(i), "click")])
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(("append", exc))
            finally:
                done.set()

        def reader():
            while not done.is_set():
                try:
                    len(store)
                    store.events()
                    repr(store)
                except Exception as exc:  # pragma: no cover - reported below
                    errors.append(("read", exc))

        threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(store) == 1 + 2 * 60 == int(store.batches()["n_rows"].sum())
        assert store.append(_ev(999, 1, 1e3)).batch_id == 62          # the connection is still usable


def test_failed_append_rolls_back_and_keeps_the_first_error(tmp_path, monkeypatch):
    class FlakyRollback:                                   # the connection, but its first rollback() fails
        def __init__(self, con):
            self._con = con

        def __getattr__(self, name):
            return getattr(self._con, name)

        def rollback(self):
            raise RuntimeError("rollback failed")

    with EventStore(tmp_path / "rb.duckdb") as store:
        store.append(_ev(1, 1, 1.0))
        real_exec, real_con = store._exec, store.con

        def boom(query, params=None):
            if query.startswith("INSERT INTO batches"):
                raise RuntimeError("disk on fire")
            return real_exec(query, params)

        monkeypatch.setattr(store, "_exec", boom)
        store.con = FlakyRollback(real_con)
        with pytest.raises(RuntimeError, match="disk on fire"):      # the first error, not the rollback's
            store.append(_ev(2, 1, 2.0))
        store.con = real_con
        monkeypatch.setattr(store, "_exec", real_exec)
        # No transaction was left open: the half-written batch is gone and the next one commits.
        assert len(store) == 1
        assert store.append(_ev(3, 1, 3.0)).batch_id == 2 and len(store) == 2


def test_id_outside_bigint_is_quarantined(tmp_path):
    with EventStore(tmp_path / "big.duckdb") as store:
        store.append(_ev(1, 10, 1.0))
        res = store.append([_ev(2, 10, 2.0), _ev(2 ** 64, 10, 3.0), _ev(3, -2 ** 63 - 1, 3.0), _ev(4, 2 ** 63 - 1, 4.0)])
        assert (res.n_written, res.n_quarantined) == (2, 2)
        q = store.quarantine()
        assert len(q) == 2 and q["reason"].str.contains("BIGINT").all()
        assert "user_id" in q["reason"].iloc[0] and "item_id" in q["reason"].iloc[1]
        assert store.events()["item_id"].tolist() == [10, 10, 2 ** 63 - 1]


def test_engine_rejects_bigint_overflow_without_losing_the_batch(tmp_path):
    shop = synthetic_shop(n_users=30, n_items=20, n_events=400, random_state=2)
    model = EASE(l2=20.0).fit(shop.events)
    with EventStore(tmp_path / "big.duckdb") as store:
        engine = Engine(model, store=store, explain=False)
        res = engine.ingest([_ev(1, 2, 5e9), _ev(2 ** 64, 2, 5e9 + 1)])
        assert (res.n_ingested, res.n_rejected) == (1, 1)
        assert len(store) == 1 and len(store.quarantine()) == 1


def test_iter_batches_is_a_snapshot(tmp_path):
    with EventStore(tmp_path / "it.duckdb") as store:
        store.append(pd.DataFrame([_ev(u, 10 + u, float(u)) for u in (1, 2, 3, 4, 5)]))
        got = []
        for i, batch in enumerate(store.iter_batches(batch_size=2)):
            got += batch["user_id"].tolist()
            if i == 0:   # a late event (earlier event time) committed mid-replay
                store.append(_ev(9, 99, 0.5))
        assert got == [1, 2, 3, 4, 5]
        assert store.events()["user_id"].tolist() == [9, 1, 2, 3, 4, 5]


def test_from_store_closes_the_store_it_opened(tmp_path):
    path = tmp_path / "ro.duckdb"
    shop = synthetic_shop(n_users=30, n_items=20, n_events=400, random_state=2)
    model = EASE(l2=20.0).fit(shop.events)
    with EventStore(path) as store:
        store.append(_ev(1, 2, 5e9))

    class Failing(Engine):
        def ingest(self, *args, **kwargs):
            raise RuntimeError("replay failed")

    with pytest.raises(RuntimeError, match="replay failed") as info:   # info keeps the frames alive
        Failing.from_store(model, path)
    assert info.value.__traceback__ is not None             # the frames (and any store they hold) are still alive
    with EventStore(path) as again:                         # a writer can open it: from_store closed its copy
        assert len(again) == 1
    Engine.from_store(model, path)
    with EventStore(path) as again:
        assert len(again) == 1


def test_text_store_feeds_the_engine_what_it_writes(tmp_path):
    # In a VARCHAR store an integer id is written as text; the live engine must see that text too,
    # or a replayed engine disagrees with it.
    shop = synthetic_shop(n_users=30, n_items=20, n_events=400, random_state=2)
    model = EASE(l2=20.0).fit(shop.events)
    path = tmp_path / "txt.duckdb"
    with EventStore(path) as store:
        live = Engine(model, store=store, explain=False)
        live.ingest([_ev("guest-a", 3, 5e9)])
        res = live.ingest([_ev(1, 4, 5e9 + 1, "purchase")])
        assert res.n_ingested == 1
        assert store.events()["user_id"].tolist() == ["guest-a", "1"]
    replayed = Engine.from_store(model, path, explain=False)
    for user in ("guest-a", "1", 1):
        assert live.history(user).equals(replayed.history(user))
        pd.testing.assert_frame_equal(live.recommend(user), replayed.recommend(user))
