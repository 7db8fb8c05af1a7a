"""The engine's parts refuse settings they would misread, and keep lists, caches and refits right under odd input."""
from __future__ import annotations

import copy
import threading
import time

import numpy as np
import pandas as pd
import pytest

from recapp.data.synthetic import synthetic_shop
from recapp.models import EASE
from recapp.realtime import Engine, ShopperStream
from recapp.realtime import threads as blas_threads

TRAIN = pd.DataFrame({"user_id": [1, 1, 2, 2, 3, 4, 4], "item_id": [10, 11, 10, 12, 11, 13, 12],
                      "timestamp": [1.0, 2, 3, 4, 5, 6, 7], "event": ["view"] * 7})
ITEMS = pd.DataFrame({"item_id": [10, 11, 12, 13], "price": [5.0, 20.0, 30.0, 40.0], "category": list("abab")})


@pytest.fixture(scope="module")
def model():
    return EASE().fit(TRAIN)


@pytest.fixture(scope="module")
def shop():
    return synthetic_shop(n_users=20, n_items=30, n_events=300, random_state=1)


# ---- per-request options ------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["no", "False", 2])
def test_exclude_viewed_must_be_a_flag(model, value):
    engine = Engine(model)
    with pytest.raises(ValueError, match="exclude_viewed"):
        engine.recommend(1, exclude_viewed=value)
    with pytest.raises(ValueError, match="exclude_viewed"):
        Engine(model, exclude_viewed=value)


@pytest.mark.parametrize("option", [{"diversity": True}, {"calibration": False}, {"exposure": False}])
def test_a_bool_reranker_setting_is_refused_not_read_as_off(model, option):
    # diversity=True equals 1.0 ("off"), so it used to be dropped as "no change" without a word.
    with pytest.raises(ValueError, match=next(iter(option))):
        Engine(model, items=ITEMS).recommend(1, **option)


def test_equal_numbers_of_another_type_serve_the_same_list(model):
    engine = Engine(model, items=ITEMS)
    assert engine.recommend(1, 3, diversity=1).equals(engine.recommend(1, np.int64(3), diversity=1.0))


@pytest.mark.parametrize("target", ["0.3", True, float("nan")])
def test_exposure_target_must_be_a_number(model, target):
    with pytest.raises(ValueError, match="exposure_target"):
        Engine(model, exposure=0.5, exposure_target=target)


def test_explain_must_be_a_flag(model):
    with pytest.raises(ValueError, match="explain"):
        Engine(model, explain="no")
    assert Engine(model, explain=False).recommend(1)["explanation"].eq("popular now").all()


# ---- the result cache and the filter masks ------------------------------------------------------------
def test_a_range_and_a_list_of_the_same_numbers_are_different_filters(model):
    cached = Engine(model, items=ITEMS)
    in_range = cached.recommend(1, filters={"price": (5, 30)})["item_id"].tolist()
    listed = cached.recommend(1, filters={"price": [5, 30]})["item_id"].tolist()
    fresh = Engine(model, items=ITEMS, cache_size=0)
    assert in_range == fresh.recommend(1, filters={"price": (5, 30)})["item_id"].tolist()
    assert listed == fresh.recommend(1, filters={"price": [5, 30]})["item_id"].tolist()
    assert set(listed) == {10, 12} and 11 in in_range


def test_the_cache_stays_bounded_however_many_shoppers_it_serves(model):
    engine = Engine(model, cache_size=2)
    for user in range(500):
        engine.recommend(user)
    engine.ingest({"user_id": 1, "item_id": 10, "timestamp": 9.0, "event": "view"})
    # Its per-shopper bookkeeping, not only its lists, must stay within the size.
    assert len(engine.cache._by_user) <= 2


# ---- the catalogue --------------------------------------------------------------------------------
def test_item_ids_that_match_only_as_text_are_refused(model):
    engine = Engine(model, items=ITEMS)
    with pytest.raises(ValueError, match=r"4 item_id\(s\) match catalogue ids only as text.*'10'"):
        engine.add_items(ITEMS.assign(item_id=ITEMS["item_id"].astype(str)))
    assert engine.n_items == 4 and engine.recommend(1, filters={"price": (0, 10)})["item_id"].tolist() == [10]


def test_a_blank_id_row_does_not_turn_the_other_ids_into_floats(model, caplog):
    engine = Engine(model, items=ITEMS)
    engine.add_items(pd.DataFrame({"item_id": [np.nan, 14.0], "price": [1.0, 2.0], "category": ["a", "b"]}))
    assert "1 row(s) without an item_id dropped" in caplog.text
    assert engine.item_ids == [10, 11, 12, 13, 14] and all(type(i) is int for i in engine.item_ids)
    assert engine.recommend(1, filters={"price": (0, 100)})["item_id"].dtype == np.int64


# ---- the ANN index ----------------------------------------------------------------------------------
def test_a_wide_search_does_not_slow_every_later_one():
    pytest.importorskip("faiss")
    from recapp.realtime.index import FaissIndex

    vectors = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    index = FaissIndex(vectors, ef_search=64)
    assert len(index.search(vectors[0], 250)[0]) == 250
    index.search(vectors[1], 5)
    assert index.index.hnsw.efSearch == 64


# ---- the background refit and BLAS threads -----------------------------------------------------------
def test_refit_every_takes_numpy_integers_and_refuses_flags(model):
    assert Engine(model, refit_every=np.int64(5)).refitter.every == 5
    with pytest.raises(ValueError, match="refit_every"):
        Engine(model, refit_every=True)
    with pytest.raises(ValueError, match="timeout"):
        Engine(model, refit_every=5).wait_for_refit("5")


def test_a_steady_stream_of_events_does_not_hold_a_background_fit_back():
    stop, entered = threading.Event(), threading.Event()

    def events(offset):
        time.sleep(offset)
        while not stop.is_set():
            with blas_threads.one_blas_thread():
                time.sleep(0.01)

    def fit():
        with blas_threads.background_fit():
            entered.set()

    # Two overlapping event loops: at no moment are both outside an event.
    workers = [threading.Thread(target=events, args=(d,), daemon=True) for d in (0.0, 0.005)]
    for w in workers:
        w.start()
    time.sleep(0.05)
    threading.Thread(target=fit, daemon=True).start()
    try:
        assert entered.wait(3.0)
    finally:
        stop.set()
        for w in workers:
            w.join(5)


# ---- the simulated shoppers -------------------------------------------------------------------------
@pytest.mark.parametrize("seed", ["abc", 1.5, -1, True])
def test_shopper_stream_refuses_a_seed_it_cannot_use(shop, seed):
    with pytest.raises(ValueError, match="random_state"):
        ShopperStream(shop, random_state=seed)


@pytest.mark.parametrize("returned", [None, 5, "abc"])
def test_a_recommender_that_returns_no_list_is_named(shop, returned):
    stream = ShopperStream(shop, recommender=lambda user, k: returned)
    with pytest.raises(TypeError, match="recommender must return a list of item ids"):
        stream.take(3)


def test_bools_are_neither_items_nor_shoppers(shop):
    stream = ShopperStream(shop, recommender=lambda user, k: [True, False])
    stream.take(5)
    assert stream.n_unknown_shown > 0 and stream.n_clicked_recs == 0
    with pytest.raises(ValueError, match="user=True"):
        stream.visits(True)


@pytest.mark.parametrize("n", [-1, 2.5, "3"])
def test_take_names_a_bad_count(shop, n):
    with pytest.raises(ValueError, match="n="):
        ShopperStream(shop).take(n)


@pytest.mark.parametrize("activity, message", [(np.nan, "row 0"), (-1.0, "row 0"), (0.0, "all 0")])
def test_shopper_activity_is_checked_when_the_stream_is_made(shop, activity, message):
    bad = copy.deepcopy(shop)
    if activity == 0.0:
        bad.users["activity"] = 0.0
    else:
        bad.users.loc[0, "activity"] = activity
    with pytest.raises(ValueError, match=message):
        ShopperStream(bad)


def test_shopper_stream_names_a_shop_that_is_not_one(shop):
    with pytest.raises(TypeError, match="synthetic shop"):
        ShopperStream(shop.events)


def test_engine_refuses_a_user_id_that_cannot_be_one_and_reads_a_series_filter_as_values():
    # Before: recommend(True) served shopper 1's list (True == 1), recommend([1, 2]) failed with
    # "unhashable type: 'list'", a Series of values in a filter failed as unhashable, and half_life="7d"
    # failed in a comparison naming nothing.
    from recapp.models import Popularity
    from recapp.realtime import Engine

    m = Popularity().fit(pd.DataFrame({"user_id": [1, 2, 3], "item_id": [1, 2, 3]}))
    engine = Engine(m, items=pd.DataFrame({"item_id": [1, 2, 3], "cat": ["a", "b", "c"]}))
    with pytest.raises(ValueError, match=r"user_id=True is a boolean"):
        engine.recommend(True)
    with pytest.raises(ValueError, match=r"user_id=\[1, 2\] is a list"):
        engine.recommend([1, 2])
    assert engine.recommend(9, k=3, filters={"cat": pd.Series(["a", "b"])})["item_id"].tolist() == [1, 2]
    assert engine.recommend(9, k=3, filters={"cat": ["a", "b"]})["item_id"].tolist() == [1, 2]
    with pytest.raises(ValueError, match=r"half_life='7d' must be a finite number"):
        Engine(m, half_life="7d")


def test_a_model_swap_that_fails_part_way_keeps_serving_the_old_model():
    # Before: a swap whose scorer failed to add the catalogue's items left the new model installed beside the old
    # scorer state, and the cache still held lists from before; now the old model serves on, as if never swapped.
    from recapp.models import Popularity
    from recapp.realtime import Engine

    old = Popularity().fit(pd.DataFrame({"user_id": [1, 2, 3], "item_id": [1, 2, 2]}))
    engine = Engine(old, k=2)
    before = engine.recommend(9)
    new = Popularity().fit(pd.DataFrame({"user_id": [1, 2, 3], "item_id": [3, 3, 3]}))
    scorer = new.live_scorer()

    def broken(n):
        raise MemoryError("no room for the catalogue")

    scorer.add_items = broken
    new.live_scorer = lambda: scorer
    with pytest.raises(MemoryError):
        engine.swap_model(new)
    assert engine.model is old
    cols = ["item_id", "score", "rank"]
    pd.testing.assert_frame_equal(engine.recommend(9)[cols], before[cols])
    engine.ingest({"user_id": 9, "item_id": 1, "event": "purchase", "timestamp": 1.0})
    assert engine.recommend(9)["item_id"].tolist() == [2]
