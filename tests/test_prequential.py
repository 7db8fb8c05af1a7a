"""Prequential evaluation: test-then-train, no leakage, static vs real-time, curves and figures."""
import numpy as np
import pandas as pd
import pytest

from recapp.data.synthetic import synthetic_shop
from recapp.models import EASE, Popularity
from recapp.realtime import Engine
from recapp.realtime.plots import latency_histogram, prequential_figure
from recapp.realtime.prequential import prequential, run_prequential


@pytest.fixture(scope="module")
def split():
    shop = synthetic_shop(n_users=150, n_items=80, n_events=5000, random_state=4)
    ev = shop.events.sort_values("timestamp", kind="stable")
    return ev.iloc[:3500], ev.iloc[3500:4500]


def test_no_leakage_of_the_event_itself(split):
    train, _ = split
    model = Popularity().fit(train)
    # Every test event is on an item nobody has seen: predicting it before ingesting it is impossible.
    test = pd.DataFrame({"user_id": np.arange(50) % 7, "item_id": [f"new{i}" for i in range(50)],
                         "timestamp": 2e9 + np.arange(50.0), "event": "view"})
    # The new items are text and the model's are numbers: prequential says so, as all of them count as new.
    with pytest.warns(UserWarning, match="test column 'item_id' is text .* no test item_id is known to the model"):
        out = prequential(Engine(model), test, progress=False)
    assert out["hit"].sum() == 0


def test_static_never_ingests_and_real_time_does(split):
    train, test = split
    model = EASE(l2=20.0).fit(train)
    static_engine = Engine(model, explain=False)
    prequential(static_engine, test, live=False, progress=False)
    assert static_engine.stats()["events_ingested"] == 0
    live_engine = Engine(model, explain=False)
    prequential(live_engine, test, live=True, progress=False)
    assert live_engine.stats()["events_ingested"] == len(test)


def test_ranks_and_ndcg_are_consistent(split):
    train, test = split
    res = run_prequential({"EASE": EASE(l2=20.0).fit(train)}, test, k=10, progress=False)
    ev = res.events
    hit = ev["rank"] > 0
    assert (ev["hit"] == hit).all() and ev["rank"].between(0, 10).all()
    np.testing.assert_allclose(ev.loc[hit, "ndcg"], 1 / np.log2(ev.loc[hit, "rank"] + 1))
    assert (ev.loc[~hit, "ndcg"] == 0).all()
    s = res.summary.set_index("mode")
    assert set(s.index) == {"static", "real-time"}
    assert s.loc["real-time", "events"] == len(test)


def _clustered(n_users, user0, seed, n_clusters=5, per_cluster=12, per_user=8, t0=0.0):
    """Shoppers of a cluster only ever buy that cluster's items, in random order."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(user0, user0 + n_users):
        c = u % n_clusters
        items = rng.choice(per_cluster, per_user, replace=False) + c * per_cluster
        for j, i in enumerate(items):
            rows.append((u, int(i), t0 + u * 100.0 + j, "purchase"))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event"])


def test_live_history_helps_new_users():
    train = _clustered(100, 0, seed=0)
    test = _clustered(30, 1000, seed=1, t0=1e6)        # shoppers unseen in training
    res = run_prequential({"EASE": EASE(l2=5.0).fit(train)}, test, progress=False)
    s = res.summary.set_index("mode")
    # Static can only show them popular items; live history finds their cluster after one event.
    assert s.loc["real-time", "HR@10"] > s.loc["static", "HR@10"] + 0.3
    first = res.events.groupby("mode")["new_user"].sum()
    assert first["static"] == first["real-time"] == 30         # one first event per shopper, in both modes


def test_curve_and_figures(split):
    train, test = split
    res = run_prequential({"Pop": Popularity().fit(train)}, test.iloc[:300], modes=("real-time",), progress=False)
    curve = res.curve(window=50)
    assert {"model", "mode", "position", "timestamp", "hit_rate", "ndcg", "cumulative_hit_rate"} <= set(curve.columns)
    assert np.isclose(curve["cumulative_hit_rate"].iloc[-1], res.events["hit"].mean())
    fig = prequential_figure(res, window=50)
    assert len(fig.data) == 1 and fig.data[0].name == "Pop (real-time)"
    assert len(prequential_figure(res, x="timestamp", metric="ndcg").data) == 1
    hist = latency_histogram({"EASE": np.random.default_rng(0).exponential(1e-3, 200)})
    assert len(hist.data) == 1
    with pytest.raises(ValueError, match="modes"):
        run_prequential({"Pop": Popularity().fit(train)}, test, modes=("offline",))
