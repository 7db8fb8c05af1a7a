"""Inputs that Hybrid, TfidfContent and Item2Vec used to misread, crash on with a library error, or save halfway."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from recapp.models import EASE, Hybrid, Item2Vec, Popularity, TfidfContent, load
from recapp.schema import SchemaError

ITEMS = [f"i{j}" for j in range(8)]


@pytest.fixture(scope="module")
def events():
    rows = [(f"u{k}", ITEMS[(k * 3 + n) % 8], float(k * 10 + n)) for k in range(12) for n in range(4)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


@pytest.fixture(scope="module")
def catalog():
    return pd.DataFrame({"item_id": ITEMS, "title": [f"word{j % 3} thing{j}" for j in range(8)],
                         "genres": ["A|B", "B", "C", "A", "B|C", "C", "A", "B"]})


def pair(**kw) -> Hybrid:
    return Hybrid(models=[EASE(), Popularity()], **kw)


# ---- Hybrid: parameters -------------------------------------------------------------------------
@pytest.mark.parametrize("weights", [["a", "b"], {"a": 1}, [None, 1], [np.nan, 1], [-1, 2], [0, 0], [1]])
def test_hybrid_refuses_weights_that_are_not_one_number_per_member(weights, events):
    with pytest.raises(ValueError, match=r"weights=.* must be 2 non-negative numbers"):
        pair(weights=weights).fit(events)


def test_hybrid_refuses_models_that_are_not_a_list(events):
    with pytest.raises(ValueError, match="models=.* must be a non-empty list"):
        Hybrid(models=(m for m in [EASE(), Popularity()])).fit(events)


def test_a_member_spec_with_an_unknown_parameter_is_named(events):
    with pytest.raises(ValueError, match=r"EASE has no parameter\(s\) \['nope'\]"):
        Hybrid(models=[{"class": "EASE", "params": {"nope": 1}}, Popularity()]).fit(events)


@pytest.mark.parametrize("items", [pd.DataFrame({"title": ["x"]}), [1, 2]])
def test_hybrid_refuses_a_catalogue_without_item_ids(items, events):
    with pytest.raises(ValueError, match="items must be a DataFrame with an 'item_id' column"):
        pair().fit(events, items=items)


# ---- Hybrid: tune_weights ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(events):
    return pair(weights=[0.5, 0.5]).fit(events)


@pytest.mark.parametrize("grid, where", [([(1.0,), (0.5, 0.5)], r"grid\[0\]"), ([(0.5, 0.5), (-1.0, 2.0)], r"grid\[1\]"),
                                         ([(np.nan, 1.0)], r"grid\[0\]"), ([(0.0, 0.0)], r"grid\[0\]")])
def test_tune_weights_refuses_grid_entries_that_are_not_blend_weights(grid, where, fitted, events):
    with pytest.raises(ValueError, match=where + r"=.* must be 2 non-negative numbers"):
        fitted.tune_weights(events, grid=grid)


def test_tune_weights_refuses_an_empty_grid_and_a_bad_k(fitted, events):
    with pytest.raises(ValueError, match="grid is empty"):
        fitted.tune_weights(events, grid=[])
    with pytest.raises(ValueError, match="k=0"):
        fitted.tune_weights(events, k=0)


def test_tune_weights_refuses_a_validation_split_it_cannot_score(fitted, events):
    strangers = pd.DataFrame({"user_id": ["zz"], "item_id": ["qq"], "timestamp": [1.0]})
    with pytest.raises(ValueError, match="no validation event is of a user and an item of the training part"):
        fitted.tune_weights(events, valid=strangers)


def test_tune_weights_counts_the_validation_events_it_leaves_out(fitted, events):
    valid = pd.DataFrame({"user_id": ["u0", "zz"], "item_id": ["i2", "i1"], "timestamp": [1.0, 2.0]})
    with pytest.warns(UserWarning, match=r"left out 1 of 2 valid event\(s\).*'zz'"):
        out = fitted.tune_weights(events, valid=valid, grid=[(1, 0), (0, 1)])
    assert sorted(out["weights"]) == [(0.0, 1.0), (1.0, 0.0)]


def test_tune_weights_default_grid_is_unchanged(fitted, events):
    out = fitted.tune_weights(events)
    assert len(out) == 11 and all(sum(w) == pytest.approx(1.0) for w in out["weights"])
    assert out["ndcg@10"].is_monotonic_decreasing


# ---- saving with weights given as an array -------------------------------------------------------
def test_hybrid_with_array_weights_saves_and_loads(events, tmp_path):
    w = np.array([0.7, 0.3])
    h = pair(weights=w).fit(events)
    again = load(h.save(tmp_path / "h"))
    assert h.weights is w
    assert again.weights == [0.7, 0.3]
    pd.testing.assert_frame_equal(again.recommend(["u0", "u5"], k=4), h.recommend(["u0", "u5"], k=4))


def test_a_hybrid_member_of_a_hybrid_saves_and_loads(events, tmp_path):
    nested = Hybrid(models=[pair(weights=np.array([0.7, 0.3])), EASE()]).fit(events)
    pd.testing.assert_frame_equal(load(nested.save(tmp_path / "n")).recommend(["u1"], k=3), nested.recommend(["u1"], k=3))


def test_text_id_models_round_trip(events, catalog, tmp_path):
    models = [TfidfContent().fit(events, items=catalog), Item2Vec(epochs=3, neighbours=3).fit(events),
              Hybrid(models=[EASE(), TfidfContent()], cold_user_threshold=5, cold_item_threshold=5).fit(events, items=catalog)]
    for j, m in enumerate(models):
        again = load(m.save(tmp_path / str(j)))
        pd.testing.assert_frame_equal(again.recommend(["u0", "u7"], k=4), m.recommend(["u0", "u7"], k=4))
        np.testing.assert_allclose(again.score_history([0, 3]), m.score_history([0, 3]))


# ---- TfidfContent: the catalogue ---------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, None, " "])
def test_content_refuses_a_missing_item_id_in_the_catalogue(bad, events, catalog):
    items = pd.concat([catalog, pd.DataFrame({"item_id": [bad], "title": ["extra"]})], ignore_index=True)
    with pytest.raises(SchemaError, match="items column 'item_id' has 1 missing or unusable id"):
        TfidfContent().fit(events, items=items)
    m = TfidfContent().fit(events, items=catalog)
    with pytest.raises(SchemaError, match="items column 'item_id' has 1 missing"):
        m.add_items(pd.DataFrame({"item_id": [bad], "title": ["x"]}))
    with pytest.raises(ValueError, match="'item_id' column; columns found"):
        m.add_items(pd.DataFrame({"title": ["x"]}))


def test_content_reports_repeated_ids_and_items_missing_from_the_catalogue(events, catalog):
    with pytest.warns(UserWarning, match=r"8 row\(s\) whose item_id occurs again .*last row"):
        TfidfContent().fit(events, items=pd.concat([catalog, catalog.assign(title="other")]))
    with pytest.warns(UserWarning, match=r"4 of 8 item\(s\) in the events are not in items \(first: \['i4'"):
        TfidfContent().fit(events, items=catalog.iloc[:4])


def test_content_fits_a_clean_catalogue_without_warnings(events, catalog):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TfidfContent().fit(events, items=catalog)


def test_content_empty_text_columns_means_none(events, catalog):
    m = TfidfContent(text_columns=(), category_columns=("genres",)).fit(events, items=catalog)
    assert m.vocabularies_[0] == [] and m.vocabularies_[1] == ["genres_a", "genres_b", "genres_c"]


def test_content_names_min_df_when_it_prunes_every_token(events, catalog):
    with pytest.raises(ValueError, match="min_df=50"):
        TfidfContent(min_df=50).fit(events, items=catalog)


def test_content_refuses_all_zero_item_vectors(events, catalog):
    with pytest.raises(ValueError, match="category_weight=0"):
        TfidfContent(category_weight=0).fit(events, items=catalog.drop(columns="title"))


def test_content_refuses_text_columns_that_are_not_a_list(events, catalog):
    with pytest.raises(ValueError, match="text_columns=5"):
        TfidfContent(text_columns=5).fit(events, items=catalog)


# ---- Item2Vec: nothing to learn --------------------------------------------------------------------
def test_item2vec_refuses_a_log_with_no_pair_of_items(events):
    with pytest.raises(ValueError, match="no shopper has two different items in a row"):
        Item2Vec(epochs=2).fit(events.groupby("user_id").head(1))
    with pytest.raises(ValueError, match="no item occurs min_count=1000 times"):
        Item2Vec(epochs=2, min_count=1000).fit(events)
