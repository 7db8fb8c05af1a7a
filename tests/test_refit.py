"""Learning the item side while serving: a background refit learns items launched after training."""
from __future__ import annotations

import pytest

from recapp.data.synthetic import synthetic_shop
from recapp.models import EASE
from recapp.realtime import Engine


@pytest.fixture(scope="module")
def shop():
    return synthetic_shop(n_users=200, n_items=100, n_events=12_000, launch_share=0.1, launch_window=(0.6, 0.7),
                          random_state=2)


def test_launch_share_keeps_launched_items_out_of_the_log_until_launch(shop):
    launch = shop.items.set_index("item_id")["launch_time"]
    assert launch.notna().sum() == 10
    t = shop.events["item_id"].map(launch)
    assert not (shop.events["timestamp"] < t).any()
    assert (t.notna()).sum() > 0


def test_refit_swaps_in_a_model_that_knows_the_launched_items(shop):
    ev = shop.events
    launch = shop.items.set_index("item_id")["launch_time"]
    cut = float(launch.min())
    train, live = ev[ev["timestamp"] < cut], ev[ev["timestamp"] >= cut]
    model = EASE(l2=20.0).fit(train)
    launched = set(launch.dropna().index) - set(model.interactions_.item_ids)
    assert launched
    engine = Engine(model, k=10, explain=True, refit_every=len(live) // 2)
    engine.ingest(live.iloc[: len(live) // 2 + 1])
    assert engine.wait_for_refit(timeout=60)
    stats = engine.stats()
    assert stats["refits"] == 1 and stats["refit_error"] is None
    assert engine.model is not model and engine.stats()["model_items"] == engine.n_items
    # Served items come from the refitted model now, launched ones included.
    fans = live[live["item_id"].isin(launched)]["user_id"].unique()[:20]
    from_model = [r for u in fans for _, r in engine.recommend(u).iterrows() if r["item_id"] in launched]
    assert any(r["explanation"] != "popular now" for r in from_model)
    # Ingest went on during and after the refit; nothing was lost.
    engine.ingest(live.iloc[len(live) // 2 + 1:])
    assert engine.stats()["events_ingested"] == len(live)


def test_a_failing_refit_keeps_serving(shop):
    ev = shop.events
    model = EASE(l2=20.0).fit(ev.iloc[:5000])
    engine = Engine(model, k=5, refit_every=10)
    model.l2 = -1.0      # the copy refuses to fit; the engine must keep the served model
    engine.ingest(ev.iloc[5000:5020])
    assert engine.wait_for_refit(timeout=60)
    assert "l2" in engine.stats()["refit_error"] and engine.model is model
    assert len(engine.recommend(int(ev["user_id"].iloc[5000]))) == 5
    model.l2 = 20.0


def test_refit_every_is_checked(shop):
    with pytest.raises(ValueError, match="refit_every"):
        Engine(EASE().fit(shop.events.iloc[:2000]), refit_every=0)
