"""Labelled pandas inputs of the simulator and the off-policy tools are read by their labels, not by position."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recapp.experiment.click_model import synthetic_rounds
from recapp.experiment.ope import (ItemPositionModel, LoggedFeedback, LogisticRewardModel, estimate, evaluate,
                                   uniform_policy)
from recapp.experiment.simulator import ShopperSimulator

USERS, ITEMS = ["u1", "u2", "u3"], ["a", "b", "c", "d"]
UTILITY = pd.DataFrame(np.arange(12.0).reshape(3, 4), index=USERS, columns=ITEMS)


# ---- ShopperSimulator: a labelled truth ----------------------------------------------------------------------
def test_a_labelled_utility_frame_gives_the_ids():
    sim = ShopperSimulator(UTILITY, k=2)
    assert list(sim.user_ids) == USERS and list(sim.item_ids) == ITEMS
    assert np.array_equal(sim.utility_, UTILITY.to_numpy())


def test_a_utility_frame_in_another_order_is_matched_to_the_given_ids():
    ref = ShopperSimulator(UTILITY, user_ids=USERS, item_ids=ITEMS, k=2)
    sim = ShopperSimulator(UTILITY.iloc[::-1, [2, 0, 3, 1]], user_ids=USERS, item_ids=ITEMS, k=2)
    assert np.array_equal(sim.utility_, UTILITY.to_numpy())
    assert np.allclose(sim.utilities(["u1"]), ref.utilities(["u1"]))


@pytest.mark.parametrize("ids, match", [
    (dict(user_ids=["u1", "u2", "x"]), r"utility is matched to user_ids by its index, but its index lacks 1 .*\['x'\]"),
    (dict(item_ids=["a", "b", "c", "z"]), r"utility is matched to item_ids by its columns, .*lacks 1 .*\['z'\].*"
                                           r"has 1 id\(s\) not in item_ids .*\['d'\]\); label its columns by item_ids"),
])
def test_a_utility_frame_whose_labels_differ_from_the_ids_is_refused(ids, match):
    with pytest.raises(ValueError, match=match):
        ShopperSimulator(UTILITY, k=2, **ids)


def test_a_repeated_label_of_a_utility_frame_is_refused():
    with pytest.raises(ValueError, match=r"utility's columns\[2\] = 'a' repeats an earlier id"):
        ShopperSimulator(UTILITY.set_axis(["a", "b", "a", "d"], axis=1), k=2)


def test_labelled_factors_and_item_bias_are_matched_by_id():
    uf = pd.DataFrame([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], index=USERS)
    itf = pd.DataFrame(np.arange(8.0).reshape(4, 2), index=ITEMS)
    bias = pd.Series([1.0, 2.0, 3.0, 4.0], index=ITEMS)
    ref = ShopperSimulator(user_factors=uf.to_numpy(), item_factors=itf.to_numpy(), item_bias=bias.to_numpy(),
                           user_ids=USERS, item_ids=ITEMS, k=2)
    sim = ShopperSimulator(user_factors=uf.iloc[[2, 0, 1]], item_factors=itf.iloc[::-1], item_bias=bias.iloc[[3, 1, 0, 2]],
                           user_ids=USERS, item_ids=ITEMS, k=2)
    assert np.array_equal(sim.user_factors_, ref.user_factors_) and np.array_equal(sim.item_factors_, ref.item_factors_)
    assert np.array_equal(sim.item_bias_, bias.to_numpy())
    # No ids given: the factor frames give them.
    own = ShopperSimulator(user_factors=uf, item_factors=itf, k=2)
    assert list(own.user_ids) == USERS and list(own.item_ids) == ITEMS
    with pytest.raises(ValueError, match=r"item_bias is matched to item_ids by its index, but its index lacks 1"):
        ShopperSimulator(user_factors=uf, item_factors=itf, item_bias=bias.drop("c"), k=2)


def test_arrays_stay_positional():
    u = np.random.default_rng(0).standard_normal((3, 4))
    sim = ShopperSimulator(u, user_ids=USERS, item_ids=ITEMS, k=2)
    assert np.array_equal(sim.utility_, u) and list(sim.user_ids) == USERS


def test_item_bias_with_a_utility_matrix_is_refused():
    with pytest.raises(ValueError, match=r"item_bias is not accepted with a utility matrix"):
        ShopperSimulator(np.ones((3, 4)) + np.arange(4), item_bias=np.arange(4.0), k=2)


# ---- reward models ------------------------------------------------------------------------------------------
def _logs(n=400, seed=0, **change):
    rng = np.random.default_rng(seed)
    d = dict(action=rng.integers(0, 4, n), position=rng.integers(0, 2, n), reward=(rng.random(n) < 0.3).astype(float),
             pscore=np.full(n, 0.25), action_ids=np.arange(4), n_positions=2,
             context=pd.DataFrame({"user_feature_1": rng.choice(["x", "y"], n)}))
    d.update(change)
    return LoggedFeedback(**d)


def test_a_context_without_the_segment_column_is_refused():
    with pytest.raises(ValueError, match=r"lacks the segment column 'user_feature_0' \(its columns: \['user_feature_1'\]\)"):
        LogisticRewardModel().fit(_logs())
    with pytest.raises(ValueError, match=r"lacks the segment column 'user_feature_0' \(logged.context is None\)"):
        LogisticRewardModel().fit(_logs(context=None))
    model = LogisticRewardModel(segment=None).fit(_logs())         # the term off, on request
    assert model.inter_.shape == (1, 4) and np.all(np.isfinite(model.predict(_logs())))


@pytest.mark.parametrize("model", [ItemPositionModel(), LogisticRewardModel(segment="user_feature_1")])
def test_reward_models_refuse_nan_rewards_and_actions_outside_the_catalogue(model):
    logs = _logs()
    bad = logs.reward.copy()
    bad[7] = np.nan
    with pytest.raises(ValueError, match=r"logged.reward\[7\] = nan"):
        model.fit(_logs(reward=bad))
    act = logs.action.copy()
    act[3] = 4
    with pytest.raises(ValueError, match=r"logged.action\[3\] = 4 is outside \[0, 3\]"):
        model.fit(_logs(action=act))


# ---- per-round pandas inputs of the estimators ------------------------------------------------------------
def test_estimate_matches_series_by_index():
    reward = pd.Series([1.0, 0.0, 0.0, 0.0], index=[0, 1, 2, 3])
    pscore = pd.Series([0.5, 0.1, 0.1, 0.1], index=[3, 2, 1, 0])        # round 0 has pscore 0.1
    target = np.full(4, 0.5)
    got = estimate(reward, pscore, target, estimators=["IPW"], n_bootstrap=10)["estimate"].iloc[0]
    assert got == pytest.approx(0.5 * 1.0 / 0.1 / 4)
    same = estimate(reward, pscore.sort_index(), target, estimators=["IPW"], n_bootstrap=10)["estimate"].iloc[0]
    assert same == pytest.approx(got)
    with pytest.raises(ValueError, match=r"pscore is matched to rounds in reward's index by its index, but its index "
                                         r"lacks 1 of the 4"):
        estimate(reward, pscore.drop(2), target[:3], estimators=["IPW"], n_bootstrap=10)


def test_logged_feedback_of_series_is_matched_by_index_and_evaluated():
    logs = _logs()
    ref = evaluate(logs, uniform_policy(logs), n_bootstrap=20)
    idx = np.arange(1000, 1000 + logs.n_rounds)
    order = np.random.default_rng(3).permutation(logs.n_rounds)
    series = LoggedFeedback(pd.Series(logs.action, index=idx), pd.Series(logs.position, index=idx),
                            pd.Series(logs.reward, index=idx).iloc[order], pd.Series(logs.pscore, index=idx),
                            logs.action_ids, 2)
    assert isinstance(series.reward, np.ndarray) and np.array_equal(series.reward, logs.reward)
    got = evaluate(series, uniform_policy(series), n_bootstrap=20)
    assert np.allclose(got["estimate"], ref["estimate"]) and np.allclose(got["ci_low"], ref["ci_low"])


# ---- the click model's synthetic rounds -------------------------------------------------------------------
@pytest.mark.parametrize("change, match", [
    (dict(intercept=np.nan), r"intercept=nan must be a finite number"),
    (dict(position_effect=[0.0, np.nan]), r"position_effect\[1\] = nan"),
    (dict(appeal=[0.0, np.nan, 1.0]), r"appeal\[1\] = nan"),
    (dict(item_weights=[1.0, np.nan, 1.0]), r"item_weights\[1\] = nan"),
])
def test_synthetic_rounds_refuse_nan_parameters(change, match):
    args = dict(intercept=-2.0, position_effect=[0.0, -0.5], appeal=[0.0, 1.0, 0.5])
    args.update(change)
    with pytest.raises(ValueError, match=match):
        synthetic_rounds(500, **args)
