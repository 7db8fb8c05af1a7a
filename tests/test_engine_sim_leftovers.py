"""The engine's left-overs: a swap's warning names items by id, and MMR's category column can be named."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from recapp.models import BPR, EASE, Popularity
from recapp.realtime import Engine

_RNG = np.random.default_rng(0)
TRAIN = pd.DataFrame({"user_id": _RNG.integers(0, 20, 200), "item_id": _RNG.integers(0, 12, 200),
                      "timestamp": np.arange(200.0), "event": "view"})
GENRES = pd.DataFrame({"item_id": list(range(12)), "genre": ["ab"[i % 2] for i in range(12)]})


def _rating(user, item, t, rating):
    return {"user_id": user, "item_id": item, "timestamp": t, "event": "rating", "rating": rating}


# ---- swap_model's warning about weights the new model cannot fold in ------------------------------------
def test_the_swap_warning_names_an_item_added_live_by_its_id(caplog):
    # EASE reads no weight live, so it takes a rating of -7 on a brand-new item; BPR cannot fold that in.
    # Before, the warning named the item by its internal index (12 here), which the caller never saw.
    engine = Engine(EASE().fit(TRAIN), explain=False)
    assert engine.ingest(_rating("live", 990, 500.0, -7.0)).n_ingested == 1
    bpr = BPR(n_epochs=2, verbose=False, random_state=0).fit(TRAIN)
    with caplog.at_level(logging.WARNING, logger="recapp.realtime.state"):
        engine.swap_model(bpr)
        engine.recommend("live")
    found = [r.getMessage() for r in caplog.records if "swapped-in model cannot fold in" in r.getMessage()]
    assert len(found) == 1 and "item 990)" in found[0], found
    assert engine.stats()["events_unread_after_swap"] == 1


# ---- the items-table column MMR compares ------------------------------------------------------------------
def test_mmr_reads_the_category_column_it_is_told_to():
    # Popularity has no item similarity, so MMR falls back on the items table's labels.
    model = Popularity().fit(TRAIN)
    named = Engine(model, k=6, items=GENRES, diversity=0.3, explain=False, diversity_categories="genre")
    as_category = Engine(model, k=6, items=GENRES.rename(columns={"genre": "category"}), diversity=0.3, explain=False)
    unnamed = Engine(model, k=6, items=GENRES, diversity=0.3, explain=False)
    got = named.recommend(3)
    pd.testing.assert_frame_equal(got, as_category.recommend(3))
    # Without the labels the list is the relevance order: the named column is what changed it.
    assert got["item_id"].tolist() != unnamed.recommend(3)["item_id"].tolist()
    labels = dict(zip(GENRES["item_id"], GENRES["genre"]))
    assert [labels[i] for i in got["item_id"]] == ["a", "b"] * 3


def test_a_named_diversity_column_the_items_lack_is_refused():
    model = Popularity().fit(TRAIN)
    with pytest.raises(ValueError, match=r"diversity_categories='genres' needs items=... with that column; "
                                         r"items columns: \['item_id', 'genre'\]"):
        Engine(model, items=GENRES, diversity_categories="genres")
    with pytest.raises(ValueError, match=r"diversity_categories='genre' needs items=..."):
        Engine(model, diversity_categories="genre")
    with pytest.raises(TypeError, match=r"diversity_categories must name an items-table column \(a str\); got 5"):
        Engine(model, items=GENRES, diversity_categories=5)
    # The default stays optional: an items table without "category" is served as before.
    assert len(Engine(model, k=4, items=GENRES, diversity=0.5).recommend(1)) == 4


@pytest.mark.parametrize("recency", ["0.5", None, float("nan"), 0.0, 1.5])
def test_a_recency_that_is_no_number_in_range_is_refused_naming_it(recency):
    # Text and None failed inside a comparison with a TypeError that named nothing.
    with pytest.raises(ValueError, match=r"recency=.* (must be a finite number|is out of range)"):
        Engine(Popularity().fit(TRAIN), recency=recency)
