"""The engine's caches never serve one filter's results for another (a callable's id is reused once freed)."""
from __future__ import annotations

import gc

import numpy as np
import pandas as pd
import pytest

from recapp.models import EASE
from recapp.realtime import Engine

TRAIN = pd.DataFrame({"user_id": [1, 1, 2, 2, 3, 4, 4], "item_id": [10, 11, 10, 12, 11, 13, 12],
                      "timestamp": [1.0, 2, 3, 4, 5, 6, 7], "event": ["view"] * 7})
ITEMS = pd.DataFrame({"item_id": [10, 11, 12, 13], "price": [5.0, 20.0, 30.0, 40.0]})
PRICE = ITEMS.set_index("item_id")["price"]
LIMITS = (100, 25, 10, 35, 100, 10, 25, 35) * 3


def _under(limit):
    return lambda df: (df["price"] < limit).to_numpy()


def _under_in_dict(limit):
    return {"price": lambda col: col < limit}


@pytest.fixture(scope="module")
def model():
    return EASE().fit(TRAIN)


def _expected(model, limit):
    items = set(PRICE.index[PRICE < limit])
    return [i for i in Engine(model, items=ITEMS, cache_size=0).recommend(1, 5)["item_id"] if i in items]


@pytest.mark.parametrize("cache_size", [1024, 0])
@pytest.mark.parametrize("make", [_under, _under_in_dict], ids=["callable", "callable-in-dict"])
def test_filters_built_per_call_get_their_own_results(model, cache_size, make):
    engine = Engine(model, items=ITEMS, cache_size=cache_size)
    for limit in LIMITS:
        f = make(limit)          # each freed before the next is built: CPython hands out the same id again
        got = engine.recommend(1, 5, filters=f)["item_id"].tolist()
        assert got == _expected(model, limit), f"limit {limit}"
        del f
        gc.collect()


def test_specification_filters_are_still_cached(model):
    engine = Engine(model, items=ITEMS)
    a = engine.recommend(1, 5, filters={"price": (0, 25)})
    b = engine.recommend(1, 5, filters={"price": (0, 25)})
    assert engine.stats()["cache_hits"] == 1 and a.equals(b)
    assert set(a["item_id"]) <= {10, 11}


def test_freeze_marks_anything_holding_a_callable_uncacheable():
    from recapp.realtime.cache import UNCACHEABLE, ResultCache, freeze

    f = np.isfinite
    assert freeze(f) is UNCACHEABLE
    assert freeze({"price": f, "category": "shoes"}) is UNCACHEABLE
    assert freeze([1, [2, f]]) is UNCACHEABLE
    # A (low, high) range and a list of values select different items, so they must not share a key.
    assert UNCACHEABLE != freeze({"price": (1, 2)}) != freeze({"price": [1, 2]}) != UNCACHEABLE
    cache = ResultCache(8)
    cache.put(("u", 5, UNCACHEABLE), "value", False)
    assert cache.get(("u", 5, UNCACHEABLE)) is None and not cache._data
