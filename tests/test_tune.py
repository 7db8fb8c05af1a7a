"""recapp.tune: searches on a validation split carved from the training data only."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recapp import tune
from recapp.data.synthetic import synthetic_shop
from recapp.models import ALS, EASE, Popularity, RatingMF

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def events():
    return synthetic_shop(n_users=150, n_items=80, n_events=4000, random_state=5).events


@pytest.fixture(scope="module")
def ratings():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"user_id": rng.integers(0, 80, 2500), "item_id": rng.integers(0, 40, 2500)}).drop_duplicates()
    df["rating"] = np.clip(np.round(3 + 0.05 * (df.user_id % 7) + 0.1 * (df.item_id % 5) + rng.normal(0, 0.5, len(df))), 1, 5)
    df["timestamp"] = 0.0
    df["event"] = "rating"
    return df.reset_index(drop=True)


def _rows(df):
    return set(zip(df.user_id, df.item_id, df.timestamp, df.event))


def test_validation_split_only_cuts_the_training_frame(events):
    inner, valid = tune.validation_split(events, 0.75, random_state=0)
    assert len(inner) + len(valid) == len(events)
    assert _rows(inner) | _rows(valid) == _rows(events) and not _rows(inner) & _rows(valid)
    # item-stratified: every item with 2+ events keeps some in the inner train part
    counts = events.item_id.value_counts()
    assert set(counts[counts >= 2].index) <= set(inner.item_id)
    a, b = tune.validation_split(events, 0.75, random_state=0)
    pd.testing.assert_frame_equal(a, inner)
    rnd_inner, _ = tune.validation_split(events, 0.8, filter_by=None, random_state=0)
    assert len(rnd_inner) == round(0.8 * len(events))


def test_grid_search_scores_every_candidate_on_validation_and_returns_the_best(events):
    res = tune.grid_search(EASE, {"l2": [1.0, 50.0, 5000.0]}, events, verbose=False)
    assert len(res.results) == 3 and set(res.results.l2) == {1.0, 50.0, 5000.0}
    assert res.results.ndcg.is_monotonic_decreasing
    assert res.best_params == {"l2": res.results.l2.iloc[0]}
    assert res.best_score == pytest.approx(res.results.ndcg.max())
    # The winner's score is what evaluate() gives on the same validation split.
    inner, valid = tune.validation_split(events, 0.75, random_state=0)
    m = EASE(**res.best_params).fit(inner)
    assert tune.evaluate(m, valid) == pytest.approx(res.best_score)


def test_grid_search_never_fits_on_rows_outside_train(events, monkeypatch):
    train = events.iloc[:3000]
    held_out = _rows(events.iloc[3000:]) - _rows(train)
    fitted = []
    real_fit = Popularity.fit

    def spy(self, data, **kw):
        fitted.append(_rows(data))
        return real_fit(self, data, **kw)

    monkeypatch.setattr(Popularity, "fit", spy)
    tune.grid_search(Popularity, {"weighted": [True, False]}, train, verbose=False)
    assert len(fitted) == 2
    assert all(not (rows & held_out) and rows <= _rows(train) for rows in fitted)


def test_given_validation_frame_is_used_as_is(events):
    inner, valid = events.iloc[:3000], events.iloc[3000:]
    res = tune.grid_search(Popularity(), {"weighted": [False]}, inner, valid=valid, verbose=False)
    expected = tune.evaluate(Popularity().fit(inner), valid)
    assert res.best_score == pytest.approx(expected)


def test_list_of_grids_and_instance_parameters_are_kept(events):
    base = ALS(factors=4, iterations=2, verbose=False)
    res = tune.grid_search(base, [{"regularization": [0.1]}, {"regularization": [1.0], "alpha": [2.0]}], events, verbose=False)
    assert len(res.results) == 2
    assert set(res.best_params) <= {"regularization", "alpha"}


def test_rmse_search_for_rating_models_and_tune_refits_on_all_data(ratings):
    best, res = tune.tune(RatingMF(factors=4, n_epochs=5, verbose=False), {"regularization": [0.01, 1.0]}, ratings,
                          filter_by=None, metric="rmse", verbose=False)
    assert res.metric == "rmse" and res.results.rmse.is_monotonic_increasing
    assert best.regularization == res.best_params["regularization"]
    assert len(best.interactions_) == len(ratings)  # refitted on the whole training frame


def test_bad_arguments_are_clear(events):
    with pytest.raises(ValueError, match="metric"):
        tune.grid_search(EASE, {"l2": [1.0]}, events, metric="auc")
    with pytest.raises(ValueError, match="list of values"):
        tune.grid_search(EASE, {"l2": 1.0}, events)
    with pytest.raises(ValueError, match="no candidates"):
        tune.grid_search(EASE, [], events)
    with pytest.raises(ValueError, match="predict"):
        tune.evaluate(Popularity().fit(events), events, metric="rmse")
