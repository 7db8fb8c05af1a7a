"""The DuckDB event store: append-only batches, quarantine, SQL, replay, and durability under SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import textwrap
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
