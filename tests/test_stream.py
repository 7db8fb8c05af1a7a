"""Event sources: log replay (order, speed, batches) and simulated shoppers who react to slates."""
import itertools

import numpy as np
import pandas as pd
import pytest

from recapp.data.synthetic import synthetic_shop
from recapp.models import EASE
from recapp.realtime import Engine, Replay, ShopperStream, check_events


def _log():
    return pd.DataFrame({
        "user_id": [1, 2, 1, 3, 2],
        "item_id": [10, 11, 12, 13, 14],
        "timestamp": [30.0, 10.0, 20.0, 50.0, 10.0],
        "event": ["view"] * 5,
        "rating": [np.nan, 4.0, np.nan, np.nan, np.nan],
    })


def test_replay_order_and_records():
    r = Replay(_log())
    events = list(r)
    assert [e["timestamp"] for e in events] == [10.0, 10.0, 20.0, 30.0, 50.0]
    assert [e["item_id"] for e in events[:2]] == [11, 14]            # stable among equal times
    assert "rating" not in events[1] and events[0]["rating"] == 4.0   # NaN becomes an absent key
    assert isinstance(events[0]["user_id"], int)
    assert len(r) == 5 and r.remaining == 0


def test_replay_batches_and_resume():
    r = Replay(_log(), batch_size=2)
    first = r.take(1)[0]
    assert isinstance(first, pd.DataFrame) and len(first) == 2
    rest = list(r)
    assert [len(b) for b in rest] == [2, 1]


def test_replay_speed_uses_the_clock():
    clock = {"t": 0.0}
    slept = []

    def sleep(s):
        slept.append(s)
        clock["t"] += s

    r = Replay(_log(), speed=10.0, clock=lambda: clock["t"], sleep=sleep, max_gap=100.0)
    list(r)
    # 40 seconds of log at 10x is 4 seconds of wall time.
    assert sum(slept) == pytest.approx(4.0)
    clock["t"], slept[:] = 0.0, []
    list(Replay(_log(), speed=10.0, clock=lambda: clock["t"], sleep=sleep, max_gap=0.5))
    assert max(slept) <= 0.5 + 1e-9
    with pytest.raises(ValueError):
        Replay(_log(), speed=-1)


def test_replay_feeds_an_engine():
    shop = synthetic_shop(n_users=40, n_items=30, n_events=800, random_state=2)
    train, live = shop.events.iloc[:600], shop.events.iloc[600:]
    engine = Engine(EASE(l2=10.0).fit(train), explain=False)
    for e in Replay(live):
        engine.ingest(e)
    assert engine.stats()["events_ingested"] == len(live)


@pytest.fixture(scope="module")
def shop():
    return synthetic_shop(n_users=200, n_items=150, n_events=8000, random_state=5)


def test_shopper_stream_events_are_valid_and_funnel_ordered(shop):
    stream = ShopperStream(shop, random_state=1)
    events = stream.take(400)
    frame = pd.DataFrame(events)
    clean, rejected = check_events(frame)
    assert len(rejected) == 0 and len(clean) == 400
    assert set(frame["source"]) == {"organic"}               # nothing is shown without a recommender
    for (u, i), g in frame.groupby(["user_id", "item_id"]):
        # every click, cart or purchase follows a view of the same item
        order = {"view": 0, "click": 1, "cart": 2, "purchase": 3}
        assert order[g["event"].iloc[0]] == 0
    assert (frame.loc[frame["event"] == "purchase", "value"] > 0).all()
    assert frame["timestamp"].is_monotonic_increasing


def test_shopper_stream_reacts_to_what_it_is_shown(shop):
    best = np.argsort(-shop.affinity(), axis=1)[:, :10]
    worst = np.argsort(shop.affinity(), axis=1)[:, :10]
    good = ShopperStream(shop, recommender=lambda u, k: best[u][:k], random_state=0)
    bad = ShopperStream(shop, recommender=lambda u, k: worst[u][:k], random_state=0)
    good.take(1500)
    bad.take(1500)
    assert good.click_through_rate > 2 * bad.click_through_rate


def test_shopper_stream_with_a_live_engine(shop):
    engine = Engine(EASE(l2=20.0).fit(shop.events), explain=False)
    stream = ShopperStream(shop, recommender=engine, random_state=3)
    for e in itertools.islice(stream, 300):
        engine.ingest(e)
    assert engine.stats()["events_ingested"] == 300
    assert stream.n_shown > 0 and 0 <= stream.click_through_rate <= 1


def test_shopper_stream_visits_follow_one_shopper_and_ask_for_a_slate_before_each_view(shop):
    asked = []

    def shown(user, k):
        asked.append(user)
        return list(range(k))

    stream = ShopperStream(shop, recommender=shown, random_state=4)
    events = list(itertools.islice(stream.visits(7), 200))   # endless: many visits, one shopper
    assert {e["user_id"] for e in events} == {7}
    n_views = sum(e["event"] == "view" for e in events)
    assert asked == [7] * n_views                             # one fresh slate right before each view
    assert pd.Series([e["timestamp"] for e in events]).is_monotonic_increasing
    with pytest.raises(ValueError, match="user"):
        stream.visits(len(shop.users))


def test_shopper_stream_recommender_contract(shop):
    engine = Engine(EASE(l2=20.0).fit(shop.events), explain=False)
    via_engine = ShopperStream(shop, recommender=engine, k=5)
    via_callable = ShopperStream(shop, recommender=lambda u, k: engine.recommend(u, k)["item_id"].tolist(), k=5)
    assert via_engine.take(50) == via_callable.take(50)      # an Engine is shown through its recommend
    with pytest.raises(TypeError, match="recommender"):
        ShopperStream(shop, recommender=object())
