"""Bad inputs to metrics, splits, searches and evaluation: refused by name, never a NaN or out-of-range figure."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from recapp import metrics as M
from recapp import split, tune
from recapp.evaluate import evaluate_recommendations

TRUE = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [10, 11, 10, 13]})
PRED = pd.DataFrame({"user_id": [1, 1, 1, 2, 2], "item_id": [10, 11, 12, 13, 12], "score": [np.nan, 0.2, 0.9, 0.5, 1.0]})


class Diverging:
    """A rating model whose predictions are NaN when its learning rate is too high, as a diverged fit's are."""

    def __init__(self, lr=0.1):
        self.lr = lr

    def get_params(self):
        return {"lr": self.lr}

    def fit(self, df):
        return self

    def predict(self, df):
        return np.full(len(df), np.nan if self.lr > 1 else 3.5)


RATINGS = pd.DataFrame({"user_id": [1, 1, 2, 2, 3, 3, 4, 4], "item_id": [1, 2] * 4, "rating": [3.0, 4.0] * 4})


# ---- tune: a NaN candidate is never chosen ---------------------------------------
def test_grid_search_never_picks_a_nan_candidate_and_names_it():
    with pytest.warns(RuntimeWarning, match=r"scored NaN on rmse.*'lr': 10.0"):
        res = tune.grid_search(Diverging, {"lr": [10.0, 0.1]}, RATINGS, metric="rmse", filter_by=None, verbose=False)
    assert res.best_params == {"lr": 0.1}
    assert res.best_score == pytest.approx(0.5)
    assert list(res.results["lr"]) == [0.1, 10.0] and np.isnan(res.results["rmse"].iloc[1])


def test_tune_refuses_when_every_candidate_is_nan():
    with pytest.raises(ValueError, match=r"every candidate scored NaN.*'lr': 10.0.*'lr': 20.0"):
        tune.tune(Diverging, {"lr": [10.0, 20.0]}, RATINGS, metric="rmse", filter_by=None, verbose=False)


# ---- scores: one shared check, naming the column and rows --------------------------
@pytest.mark.parametrize("call", [
    lambda p: M.precision_at_k(TRUE, p, k=2),
    lambda p: M.ranking_metrics(TRUE, p, k=1),
    lambda p: M.per_user_ranking_metrics(TRUE, p, k=3),
    lambda p: M.auc(TRUE, p),
    lambda p: M.auc(TRUE, p, per_user=True),
])
def test_ranking_metrics_refuse_nan_scores(call):
    with pytest.raises(M.ScoreError, match=r"column 'score' of rating_pred has 1 NaN score.*rows 0: nan"):
        call(PRED)


def test_ranking_metrics_refuse_non_numeric_scores_but_rank_infinite_ones():
    with pytest.raises(ValueError, match=r"column 'score' of rating_pred has 1 non-numeric score.*'high'.*accepted: numbers"):
        M.ndcg_at_k(TRUE, PRED.assign(score=[1.0, 0.2, 0.9, 0.5, "high"]), k=2)
    assert M.precision_at_k(TRUE, PRED.assign(score=[np.inf, 0.2, 0.9, 0.5, -np.inf]), k=1) == 1.0   # -inf masks


@pytest.mark.parametrize("fn", [M.rmse, M.mae])
def test_rating_error_refuses_nan_predictions_and_ratings(fn):
    truth = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 1], "rating": [3.0, 4.0]})
    pred = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 1], "prediction": [3.0, np.nan]})
    with pytest.raises(M.ScoreError, match=r"column 'prediction' of rating_pred has 1 NaN or infinite prediction.*rows 1"):
        fn(truth, pred)
    with pytest.raises(M.ScoreError, match=r"column 'rating' of rating_true"):
        fn(truth.assign(rating=[np.nan, 4.0]), pred.fillna(4.0))
    assert fn(truth, pred.fillna(4.0)) == 0.0


# ---- beyond accuracy: missing ids and relevances, duplicate features ---------------
TRAIN = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [10, 11, 10, 12]})
RECO = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [10, 12, 11, 99]})


def test_popularity_bias_refuses_missing_users():
    with pytest.raises(ValueError, match=r"column 'user_id' of reco_df has 1 missing id.*rows 1"):
        M.popularity_bias(TRAIN, pd.DataFrame({"user_id": [1, np.nan], "item_id": [10, 10]}))


def test_distributional_coverage_refuses_missing_items():
    with pytest.raises(ValueError, match=r"column 'item_id' of reco_df has 2 missing id"):
        M.distributional_coverage(pd.DataFrame({"item_id": [1, 2, np.nan, np.nan]}))
    assert M.distributional_coverage(pd.DataFrame({"item_id": [1, 2]})) == 1.0
    assert M.distributional_coverage(pd.DataFrame({"item_id": []})) == 0.0   # documented


def test_serendipity_refuses_nan_relevance():
    with pytest.raises(M.ScoreError, match=r"column 'rel' of reco_df has 1 NaN relevance"):
        M.serendipity(TRAIN, RECO.assign(rel=[np.nan, 1.0, 1.0, 1.0]), col_relevance="rel")


def test_intra_list_diversity_names_duplicate_feature_rows():
    feats = pd.DataFrame({"item_id": [10, 10, 11], "f": [1.0, 0.0, 1.0]})
    with pytest.raises(ValueError, match=r"item_features has 2 rows for 1 repeated item id.*\[10\].*one row per item"):
        M.intra_list_diversity(None, RECO, item_features=feats)


# ---- temporal_split cutoff ---------------------------------------------------------
EVENTS = pd.DataFrame({"user_id": [1, 1, 1, 2, 3], "item_id": [1, 2, 3, 1, 2], "timestamp": [1.0, 2.0, 3.0, 4.0, 5.0]})


@pytest.mark.parametrize("cutoff", ["notadate", [1, 2], pd.NaT])
def test_temporal_split_refuses_a_bad_cutoff(cutoff):
    with pytest.raises(ValueError, match=r"cutoff=.*accepted: UTC seconds"):
        split.temporal_split(EVENTS, cutoff=cutoff)


def test_temporal_split_refuses_a_nan_cutoff_and_keeps_good_ones():
    with pytest.raises(ValueError, match=r"cutoff=nan is not a finite time"):
        split.temporal_split(EVENTS, cutoff=float("nan"))
    assert [len(x) for x in split.temporal_split(EVENTS, cutoff=3)] == [2, 3]
    assert [len(x) for x in split.temporal_split(EVENTS, cutoff="1970-01-01 00:00:03")] == [2, 3]


# ---- evaluate_recommendations --------------------------------------------------------
def test_evaluate_recommendations_k1_omits_diversity():
    recs = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "score": [1.0, 1.0]})
    out = evaluate_recommendations(recs, RATINGS, RATINGS, k=1)
    assert "diversity" not in out and out["precision@1"] == 1.0
    assert all(np.isfinite(v) for v in out.values())


@pytest.mark.parametrize("n_items", [0, -3, 2.0])
def test_evaluate_recommendations_validates_n_items(n_items):
    recs = pd.DataFrame({"user_id": [1, 1], "item_id": [1, 2], "score": [1.0, 0.5]})
    with pytest.raises(ValueError, match="n_items"):
        evaluate_recommendations(recs, RATINGS, RATINGS, k=2, n_items=n_items)


# ---- random_split / stratified_split ---------------------------------------------------
@pytest.mark.parametrize("n", [0, 1])
def test_random_split_names_ratio_and_size_on_tiny_frames(n):
    with pytest.raises(ValueError, match=rf"ratio=0.75 of df's {n} row.*at least 2 rows"):
        split.random_split(EVENTS.iloc[:n], 0.75)


def test_stratified_split_reports_groups_dropped_by_min_rating():
    with pytest.warns(UserWarning, match=r"min_rating=2 dropped 2 user\(s\).*2 of 5 rows"):
        train, test = split.stratified_split(EVENTS, 0.5, min_rating=2)
    assert len(train) + len(test) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split.stratified_split(EVENTS, 0.5, min_rating=1)
