"""Metric and off-policy-evaluation edge cases: missing ids, conflicting catalogue rows, tiny propensities."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from recapp import metrics as M
from recapp.experiment import ope
from recapp.schema import SchemaError

TRUE = pd.DataFrame({"user_id": [1.0, np.nan, 2.0], "item_id": [10, 11, 12]})
PRED = pd.DataFrame({"user_id": [1.0, 3.0, 2.0], "item_id": [10, 11, 13], "score": [1.0, 1.0, 1.0]})


# ---- missing ids: refused by every accuracy metric, through check_ids ------------------------
@pytest.mark.parametrize("call", [
    lambda t, p: M.per_user_ranking_metrics(t, p, k=2),
    lambda t, p: M.precision_at_k(t, p, k=1),
    lambda t, p: M.ranking_metrics(t, p, k=2),
    lambda t, p: M.auc(t, p),
    lambda t, p: M.rmse(t.assign(rating=3.0), p.rename(columns={"score": "prediction"})),
    lambda t, p: M.mae(t.assign(rating=3.0), p.rename(columns={"score": "prediction"})),
])
def test_accuracy_metrics_refuse_a_missing_user_id(call):
    with pytest.raises(SchemaError, match=r"column 'user_id' of rating_true has 1 missing id\(s\), at rows 1: nan"):
        call(TRUE, PRED)


def test_ranking_metrics_refuse_missing_item_and_none_user_ids_in_either_frame():
    pred = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10.0, np.nan, 13.0], "score": [1.0, 2.0, 1.0]})
    true = pd.DataFrame({"user_id": [1, 2], "item_id": [10.0, 12.0]})
    with pytest.raises(SchemaError, match=r"column 'item_id' of rating_pred has 1 missing id\(s\), at rows 1: nan"):
        M.per_user_ranking_metrics(true, pred, k=2)
    t = pd.DataFrame({"user_id": ["a", "b", None, None], "item_id": ["x", "y", "z", "w"]})
    p = pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"], "score": [1.0, 2.0]})
    with pytest.raises(SchemaError, match=r"'user_id' of rating_true has 2 missing id\(s\), at rows 2: \w+, 3: \w+;"):
        M.ndcg_at_k(t, p, k=2)
    # the same frames without the id-less rows are fine, and score every user
    assert M.ndcg_at_k(t.dropna(), p, k=2) == pytest.approx(1.0)


# ---- calibration_kl: the items catalogue -----------------------------------------------------
TRAIN = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [1, 2, 1, 3]})
RECO = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [3, 4, 2, 4]})
ITEMS = pd.DataFrame({"item_id": [1, 2, 3, 4], "genres": ["A", "B", "A|B", "B"]})


def test_calibration_kl_refuses_a_catalogue_row_without_item_id():
    items = pd.concat([ITEMS, pd.DataFrame({"item_id": [np.nan], "genres": ["C"]})], ignore_index=True)
    with pytest.raises(SchemaError, match=r"column 'item_id' of items has 1 missing id\(s\), at rows 4: nan"):
        M.calibration_kl(TRAIN, RECO, items)


@pytest.mark.parametrize("extra", ["B", None])
def test_calibration_kl_refuses_an_item_repeated_with_other_categories(extra):
    items = pd.concat([ITEMS, pd.DataFrame({"item_id": [1], "genres": [extra]})], ignore_index=True)
    with pytest.raises(SchemaError, match=r"column 'genres' of items differs between the rows of 1 repeated id\(s\) "
                                          r"of column 'item_id', e\.g\. 1: \['A', " + repr(extra)):
        M.calibration_kl(TRAIN, RECO, items)


def test_calibration_kl_keeps_agreeing_repeats_and_uncategorised_items():
    base = M.calibration_kl(TRAIN, RECO, ITEMS)
    assert M.calibration_kl(TRAIN, RECO, pd.concat([ITEMS, ITEMS])) == base
    # an item with an id but no category is "uncategorised", as documented: it dilutes q
    items = pd.concat([ITEMS, pd.DataFrame({"item_id": [5], "genres": [None]})], ignore_index=True)
    assert M.calibration_kl(TRAIN, RECO, items) == base


# ---- other metrics: a missing catalogue id, a repeated prediction ----------------------------
@pytest.mark.parametrize("catalog", [pd.DataFrame({"item_id": [1, 2, 3, np.nan]}), [1, 2, 3, None]])
def test_catalog_coverage_refuses_a_missing_catalogue_id(catalog):
    with pytest.raises(SchemaError, match=r"column 'item_id' of catalog has 1 missing id\(s\), at rows 3"):
        M.catalog_coverage(pd.DataFrame({"item_id": [1, 2]}), catalog)
    assert M.catalog_coverage(pd.DataFrame({"item_id": [1, 2]}), [1, 2, 3, 3]) == pytest.approx(2 / 3)


def test_serendipity_refuses_a_missing_id_in_rating_true():
    train = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [1, 2, 3]})
    reco = pd.DataFrame({"user_id": [1, 2], "item_id": [3, 1]})
    with pytest.raises(SchemaError, match=r"column 'user_id' of rating_true has 1 missing id"):
        M.serendipity(train, reco, rating_true=pd.DataFrame({"user_id": [1, np.nan], "item_id": [3, 1]}))


def test_rating_error_counts_a_repeated_prediction_once_and_refuses_conflicting_ones():
    true = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "rating": [5.0, 3.0]})
    pred = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [1, 1, 2], "prediction": [4.0, 4.0, 3.0]})
    assert M.rmse(true, pred) == pytest.approx(np.sqrt(0.5))     # errors 1 and 0, not 1, 1 and 0
    assert M.mae(true, pred) == pytest.approx(0.5)
    # two observed ratings of one pair stay two observations
    twice = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [1, 1, 2], "rating": [5.0, 1.0, 3.0]})
    assert M.mae(twice, pred.iloc[1:]) == pytest.approx((1 + 3 + 0) / 3)
    with pytest.raises(SchemaError, match=r"'prediction' of rating_pred differs .* e\.g\. \(1, 1\): \[4\.0, 5\.0\]"):
        M.rmse(true, pred.assign(prediction=[4.0, 5.0, 3.0]))


# ---- off-policy evaluation: tiny propensities -------------------------------------------------
R = np.array([1.0, 0.0, 1.0, 0.0])
Q = np.full(4, 0.3)


def _estimate(pscore, target=np.full(4, 0.5), reward=R, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no overflow or invalid-value warning from numpy either
        return ope.estimate(reward, np.asarray(pscore), target, Q, Q, n_bootstrap=50, **kw).set_index("estimator")


def test_a_tiny_propensity_gives_a_finite_ess_and_finite_estimates():
    res = _estimate([1e-300, 0.5, 0.5, 0.5])
    w = np.array([5e299, 1.0, 1.0, 1.0])
    assert res.loc["IPW", "estimate"] == pytest.approx(w[0] / 4)
    assert res.loc["SNIPW", "estimate"] == pytest.approx(1.0)
    assert res.loc["IPW", "ess"] == pytest.approx(1.0) and res.loc["DM", "ess"] == 4
    assert np.isfinite(res[["estimate", "ci_low", "ci_high", "se", "ess"]].to_numpy()).all()
    assert res.loc["IPW", "se"] > 1e298


def test_tiny_target_probabilities_keep_the_ess_and_the_spread():
    res = _estimate([0.5] * 4, target=np.full(4, 1e-200))
    assert (res["ess"] == 4.0).all()                   # all weights equal: every round counts
    assert res.loc["IPW", "se"] > 0                     # was 0: squares of 1e-200 underflowed


def test_ess_and_estimates_are_unchanged_for_ordinary_weights():
    s = ope.synthetic_logged(n_rounds=300, random_state=3)
    res = ope.estimate(s["reward"], s["pscore"], s["target_prob"], estimators=("IPW", "SNIPW"), n_bootstrap=20)
    w = s["target_prob"] / s["pscore"]
    assert res["ess"].iloc[0] == w.sum() ** 2 / (w**2).sum()
    assert res["estimate"].tolist() == [(w * s["reward"]).mean(), (w * s["reward"]).sum() / w.sum()]


def test_a_denormal_propensity_is_refused_by_name():
    with pytest.raises(ValueError, match=r"target_prob\[0\] / pscore\[0\] = 0\.5 / 1e-310 overflows to inf"):
        _estimate([1e-310, 0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match=r"pscore\[1\] = 0\.5 / 5e-324 overflows"):
        ope.importance_weights([0.5, 0.5], [0.5, 5e-324])


def test_an_overflowing_estimate_names_the_weight_and_its_pscore():
    with pytest.raises(ValueError, match=r"the IPW estimate overflows to inf: importance weights reach 5e\+299 at row 0 "
                                         r"\(pscore\[0\] = 1e-300"):
        _estimate([1e-300, 0.5, 0.5, 0.5], reward=np.array([1e10, 0.0, 1.0, 0.0]))
    # finite on the full logs, infinite in a resample that draws the huge weight twice
    with pytest.raises(ValueError, match=r"the IPW estimate of a bootstrap resample overflows to inf.*pscore\[0\] = 6e-309"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ope.estimate(np.ones(3), np.array([6e-309, 0.5, 0.5]), np.ones(3), estimators=("IPW",), n_bootstrap=50)


def test_snipw_alone_survives_weights_whose_sum_overflows():
    res = _estimate([1e-308, 1e-308, 0.5, 0.5], target=np.ones(4), estimators=("SNIPW",))
    assert res.loc["SNIPW", "estimate"] == pytest.approx(0.5) and res.loc["SNIPW", "ess"] == pytest.approx(2.0)


def test_evaluate_refuses_an_overflowing_doubly_robust_resample():
    logged = ope.LoggedFeedback(action=np.array([0, 1, 0]), position=np.zeros(3, np.int64), reward=np.ones(3),
                                pscore=np.array([6e-309, 0.5, 0.5]), action_ids=np.array([7, 8]), n_positions=1)
    with pytest.raises(ValueError, match=r"estimate of a bootstrap resample overflows.*pscore\[0\] = 6e-309"):
        ope.evaluate(logged, np.array([1.0, 0.0]), estimators=("IPW", "DR"), n_bootstrap=30)
