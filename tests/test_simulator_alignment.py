"""Simulator inputs given as pandas objects are matched by their index, reward models name unseen context values,
a refused interleaving step changes nothing, and a run learns in the caller's own model (as documented)."""
import copy
import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

from recapp.data import synthetic_shop
from recapp.experiment import InterleavingSimulation, RandomPolicy, RecommenderPolicy, ShopperSimulator, as_policy
from recapp.experiment import interleaving_sim
from recapp.experiment.live_ab import ShopScenario
from recapp.experiment.ope import LoggedFeedback, LogisticRewardModel
from recapp.models import Popularity

ITEMS = np.array(["a", "b", "c", "d", "e"])
USERS = np.array(["u0", "u1", "u2", "u3"])
UTILITY = np.random.default_rng(0).standard_normal((4, 5))


@pytest.fixture(scope="module")
def small_shop():
    return synthetic_shop(n_users=120, n_items=40, n_events=3000, random_state=0)


# ---- prices, activity and context matched by their index --------------------------------------------
def test_a_price_series_in_another_order_is_matched_by_item_id():
    prices = pd.Series([10.0, 20.0, 30.0, 40.0, 50.0], index=ITEMS)
    sim = ShopperSimulator(UTILITY, user_ids=USERS, item_ids=ITEMS, prices=prices.iloc[::-1], k=2)
    assert sim.prices.tolist() == [10.0, 20.0, 30.0, 40.0, 50.0]      # was 50, 40, ... (read by position)
    imp = sim.run(RandomPolicy(random_state=0), n_steps=2, sessions_per_step=20).impressions
    assert (imp["price"].to_numpy() == prices.loc[imp["item_id"]].to_numpy()).all()


def test_an_activity_series_in_another_order_is_matched_by_user_id():
    activity = pd.Series([1.0, 0.0, 0.0, 0.0], index=USERS)
    sim = ShopperSimulator(UTILITY, user_ids=USERS, item_ids=ITEMS, activity=activity.iloc[[2, 0, 3, 1]], k=2)
    assert sim.activity.tolist() == [1.0, 0.0, 0.0, 0.0]
    slates = sim.run(RandomPolicy(), n_steps=2, sessions_per_step=15).slates
    assert set(slates["user_id"]) == {"u0"}                            # the only shopper with activity


def test_a_context_frame_is_matched_by_user_id():
    ctx = pd.DataFrame({"f": [0.0, 1.0, 2.0, 3.0]}, index=USERS).iloc[::-1]
    env = ShopperSimulator(UTILITY, user_ids=USERS, item_ids=ITEMS, user_context=ctx, k=2).environment()
    assert env.context(np.array(["u1", "u3"])).ravel().tolist() == [1.0, 3.0]


def test_arrays_stay_positional():
    sim = ShopperSimulator(UTILITY, user_ids=USERS, item_ids=ITEMS, prices=[50.0, 40.0, 30.0, 20.0, 10.0],
                           activity=np.array([0.0, 0.0, 0.0, 2.0]), k=2)
    assert sim.prices.tolist() == [50.0, 40.0, 30.0, 20.0, 10.0] and sim.activity.tolist() == [0.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize("index, message", [
    (["a", "b", "c", "d", "x"], r"lacks 1 of the 5 item_ids \(first: \['e'\]\) and has 1 id\(s\) not in item_ids "
                                r"\(first: \['x'\]\)"),
    (["a", "b", "c", "d", "d"], r"prices's index repeats 'd' \(1 repeat\(s\)\)"),
    ([0, 1, 2, 3, 4], r"lacks 5 of the 5 item_ids \(first: \['a', 'b', 'c', 'd', 'e'\]\)"),
])
def test_a_price_series_that_does_not_match_the_items_is_refused(index, message):
    with pytest.raises(ValueError, match=message):
        ShopperSimulator(UTILITY, user_ids=USERS, item_ids=ITEMS, prices=pd.Series(np.arange(1.0, 6.0), index=index),
                         k=2)


def test_an_activity_series_for_other_shoppers_is_refused():
    activity = pd.Series(1.0, index=["u0", "u1", "u2", "u9", "u8"])
    with pytest.raises(ValueError, match=r"activity is matched to user_ids by its index, but its index lacks 1 of the 4 "
                                         r"user_ids \(first: \['u3'\]\) and has 2 id\(s\)"):
        ShopperSimulator(UTILITY, user_ids=USERS, item_ids=ITEMS, activity=activity, k=2)


def test_from_model_ignores_unlogged_items_and_names_a_missing_one(small_shop):
    model = Popularity().fit(small_shop.events)
    catalogue = small_shop.items.set_index("item_id")["price"]
    sim = ShopperSimulator.from_model(model, prices=catalogue.sample(frac=1.0, random_state=1), k=3)
    assert (sim.prices == catalogue.loc[sim.item_ids].to_numpy()).all()
    gone = sim.item_ids[2]
    with pytest.raises(ValueError, match=rf"prices .*lacks 1 of the {sim.n_items} item_ids \(first: \[{gone.item()!r}\]\)"):
        ShopperSimulator.from_model(model, prices=catalogue.drop(gone), k=3)


# ---- LogisticRewardModel and context values the fit never saw -----------------------------------------
def _logs(ctx, seed=0):
    rng = np.random.default_rng(seed)
    n = len(ctx)
    return LoggedFeedback(action=rng.integers(0, 4, n), position=np.zeros(n, dtype=np.int64),
                          reward=(rng.random(n) < 0.3).astype(float), pscore=np.full(n, 0.25), action_ids=np.arange(4),
                          n_positions=1, context=ctx)


def test_unseen_context_values_are_counted_and_warned_about():
    rng = np.random.default_rng(1)
    ctx = pd.DataFrame({"user_feature_0": rng.choice(["s1", "s2"], 400), "user_feature_1": rng.choice(["x", "y"], 400)})
    model = LogisticRewardModel().fit(_logs(ctx))
    new = ctx.iloc[:6].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected = model.predict(_logs(new, seed=2))                     # only seen values: no warning
    new.loc[[1, 4], "user_feature_0"] = "s9"
    with pytest.warns(UserWarning, match=r"'user_feature_0': 2 round\(s\), the first 's9' at row 1.*no segment x item"):
        got = model.predict(_logs(new, seed=2))
    assert np.allclose(got[[0, 2, 3, 5]], expected[[0, 2, 3, 5]]) and np.all((got > 0) & (got < 1))


def test_a_context_without_a_fitted_feature_is_refused():
    rng = np.random.default_rng(1)
    ctx = pd.DataFrame({"user_feature_0": rng.choice(["s1", "s2"], 300), "age": rng.choice(["y", "o"], 300)})
    model = LogisticRewardModel().fit(_logs(ctx))
    with pytest.raises(ValueError, match=r"lacks the user feature column\(s\) \['age'\]"):
        model.predict(_logs(ctx.drop(columns="age")))
    with pytest.raises(ValueError, match=r"lacks the user feature column\(s\) \['user_feature_0', 'age'\]"):
        model.predict(dataclasses.replace(_logs(ctx), context=None))


# ---- InterleavingSimulation.step: all or nothing ----------------------------------------------------
def _interleaving(shop):
    oracle = ShopperSimulator.from_synthetic(shop).oracle()
    return InterleavingSimulation(ShopScenario(shop, shop.events), {"r": RandomPolicy(random_state=1), "o": oracle},
                                  random_state=2)


def test_a_refused_step_leaves_the_tallies_and_serves_the_same_tick_again(small_shop, monkeypatch):
    run, ref = _interleaving(small_shop), _interleaving(small_shop)
    run.step()
    ref_rows = [ref.step(), ref.step()]
    before = copy.deepcopy(run.counts)
    run.alpha = 0.9
    with pytest.raises(ValueError, match="alpha=0.9"):
        run.step()
    assert run.counts == before and len(run.history) == 1
    run.alpha = 0.05
    real = interleaving_sim.preference_sequence

    def boom(*args, **kwargs):
        raise RuntimeError("boom")
    monkeypatch.setattr(interleaving_sim, "preference_sequence", boom)
    with pytest.raises(RuntimeError):
        run.step()
    assert run.counts == before and len(run.history) == 1 and run.verdict is None
    monkeypatch.setattr(interleaving_sim, "preference_sequence", real)
    row = run.step()
    assert {k: v for k, v in row.items() if v == v} == {k: v for k, v in ref_rows[1].items() if v == v}


# ---- as_policy serves the caller's own object (documented) ------------------------------------------
def test_a_run_updates_the_callers_model_unless_told_not_to(small_shop):
    sim = ShopperSimulator.from_synthetic(small_shop, k=3, random_state=0)
    model = Popularity().fit(small_shop.events)
    fitted = model.item_popularity_.copy()
    assert as_policy(model).model is model
    sim.run(RecommenderPolicy(model, update=None), n_steps=2, sessions_per_step=30)
    assert np.array_equal(model.item_popularity_, fitted)
    sim.run(model, n_steps=2, sessions_per_step=30)
    assert not np.array_equal(model.item_popularity_, fitted)
    for doc in (as_policy.__doc__, RecommenderPolicy.__doc__):
        assert "copy.deepcopy" in doc
