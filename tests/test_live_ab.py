"""The live A/B test: always-valid mSPRT verdicts on simulated shop traffic, and the interval they rest on."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from recapp.data.synthetic import synthetic_shop
from recapp.experiment import ABSimulation, RandomPolicy, ShopScenario, sample_size
from recapp.experiment.sequential import (
    always_valid_pvalues,
    confidence_sequence,
    msprt_interval,
    msprt_statistic,
)
from recapp.models import EASE, Popularity

RECORD_KEYS = {
    "step", "ctr_A", "low_A", "high_A", "users_A", "impressions_A", "ctr_B", "low_B", "high_B", "users_B",
    "impressions_B", "diff", "msprt_p", "cs_low", "cs_high", "planned_users", "fixed_diff", "fixed_low",
    "fixed_high", "fixed_p", "verdict", "verdict_step",
}


@pytest.fixture(scope="module")
def small(shop):
    """The shared small shop (150 shoppers) as a scenario, with Popularity fitted on it."""
    return ShopScenario(shop, shop.events), Popularity().fit(shop.events)


@pytest.fixture(scope="module")
def dashboard_shop():
    """The dashboard's synthetic shop (500 shoppers, 300 items) with Popularity and EASE(l2=50)."""
    shop = synthetic_shop(n_users=500, n_items=300, n_events=30_000, random_state=0)
    return ShopScenario(shop, shop.events), Popularity().fit(shop.events), EASE(l2=50.0).fit(shop.events)


# ---- the interval: a closed-form inversion of the normal-mixture mSPRT ------------------------------
def test_interval_endpoints_are_where_the_msprt_reaches_one_over_alpha():
    rng = np.random.default_rng(0)
    diff = rng.normal(0, 0.01, 50)
    var = rng.uniform(1e-7, 1e-4, 50)
    for tau, alpha in ((0.01, 0.05), (0.002, 0.1), (0.05, 0.01)):
        low, high = msprt_interval(diff, var, tau, alpha)
        for edge in (low, high):
            assert np.allclose(msprt_statistic(diff - edge, var, 1, tau), 1 / alpha, rtol=1e-9)
        inside = msprt_statistic(diff - (0.99 * low + 0.01 * high), var, 1, tau)
        assert (inside < 1 / alpha).all()
        # Wider than the fixed-horizon interval of the same look, for any tau.
        z = stats.norm.ppf(1 - alpha / 2)
        assert (low < diff - z * np.sqrt(var)).all() and (high > diff + z * np.sqrt(var)).all()


def test_interval_rejects_bad_alpha_and_tau():
    with pytest.raises(ValueError, match="alpha"):
        msprt_interval(0.0, 1.0, tau=0.1, alpha=1.5)
    with pytest.raises(ValueError, match="tau"):
        msprt_interval(0.0, 1.0, tau=0.0)


def test_confidence_sequence_covers_the_truth_at_every_look_where_repeated_intervals_do_not():
    # Known truth: the running mean of N(theta, 1) draws, looked at after every draw.
    rng = np.random.default_rng(1)
    theta, paths, looks = 0.2, 2000, 300
    n = np.arange(1, looks + 1)
    mean = np.cumsum(rng.normal(theta, 1.0, (paths, looks)), axis=1) / n
    var = 1.0 / n
    low, high = confidence_sequence(mean, var, tau=0.2, alpha=0.05, axis=1)
    covered = ((low < theta) & (theta < high)).all(axis=1).mean()
    assert covered >= 0.94
    naive = (np.abs(mean - theta) < 1.96 * np.sqrt(var)).all(axis=1).mean()
    assert naive < 0.6                                   # peeking: most paths leave the 95% interval somewhere
    assert (np.diff(low, axis=1) >= 0).all() and (np.diff(high, axis=1) <= 0).all()
    # 0 leaves the sequence exactly when the always-valid p-value reaches alpha.
    p = always_valid_pvalues(msprt_statistic(mean, var, 1, tau=0.2), axis=1)
    assert ((p <= 0.05) == ((low > 0) | (high < 0))).all()


# ---- the simulation -------------------------------------------------------------------------------------
def test_records_carry_the_documented_keys_and_the_sequential_fields_behave(small):
    scenario, pop = small
    ab = ABSimulation(scenario, {"Popularity": pop, "Popularity (copy)": pop}, random_state=4, min_users=30)
    h = pd.DataFrame([ab.step() for _ in range(30)])
    assert set(h.columns) == RECORD_KEYS and list(h["step"]) == list(range(1, 31))
    assert set(h["verdict"]) <= {None, "A", "B"}
    assert (h["planned_users"] == ab.planned_users).all()
    assert np.allclose(h["diff"], h["ctr_B"] - h["ctr_A"], equal_nan=True)
    looked = h["msprt_p"].notna().to_numpy()
    assert looked.any() and not looked[0]
    first = int(np.argmax(looked))
    assert min(h["users_A"][first], h["users_B"][first]) >= 30
    seq = h[looked]
    assert (np.diff(seq["msprt_p"]) <= 0).all() and (seq["msprt_p"] <= 1).all()
    assert (np.diff(seq["cs_low"]) >= 0).all() and (np.diff(seq["cs_high"]) <= 0).all()
    assert ((seq["cs_low"] > 0) | (seq["cs_high"] < 0)).eq(seq["msprt_p"] <= ab.alpha).all()


def test_same_seed_same_history_and_callers_models_untouched(small):
    scenario, pop = small
    before = np.array(pop.counts_, copy=True)
    runs = [ABSimulation(scenario, {"a": pop, "b": pop}, random_state=2) for _ in range(2)]
    a, b = ([r.step() for _ in range(5)] for r in runs)
    assert pd.DataFrame(a).equals(pd.DataFrame(b))
    assert np.array_equal(pop.counts_, before)    # the policies learned on copies
    assert runs[0].history[-1]["impressions_A"] > 0


@pytest.mark.parametrize("order, winner", [(("random", "EASE"), "B"), (("EASE", "random"), "A")])
def test_a_planted_difference_gets_the_right_verdict(dashboard_shop, order, winner):
    scenario, _, ease = dashboard_shop
    models = {"random": RandomPolicy(random_state=1), "EASE": ease}
    ab = ABSimulation(scenario, {name: models[name] for name in order}, random_state=5)
    for _ in range(80):
        row = ab.step()
        if row["verdict"]:
            break
    assert row["verdict"] == winner and row["verdict_step"] == row["step"]
    assert row["msprt_p"] <= ab.alpha
    assert (row["cs_low"] > 0) if winner == "B" else (row["cs_high"] < 0)
    for _ in range(3):                                 # the verdict stands while traffic goes on
        assert ab.step()["verdict"] == winner


def test_cuped_adjusts_by_the_pre_period_ctr_and_keeps_the_verdict(dashboard_shop):
    from recapp.experiment import compare_ratio_cuped

    scenario, _, ease = dashboard_shop
    plain = ABSimulation(scenario, {"random": RandomPolicy(random_state=1), "EASE": ease}, random_state=5)
    cuped = ABSimulation(scenario, {"random": RandomPolicy(random_state=1), "EASE": ease}, random_state=5, cuped=True)
    for _ in range(60):
        a, b = plain.step(), cuped.step()
    assert a["impressions_B"] == b["impressions_B"]        # same traffic; only the analysis differs
    views = scenario.train[scenario.train["event"] == "view"].groupby("user_id").size()
    assert cuped.pre_views.sum() == views.sum() and cuped.pre_views.max() == views.max()
    sa, sb = cuped.views["A"] > 0, cuped.views["B"] > 0
    ref = compare_ratio_cuped(cuped.clicks["A"][sa], cuped.views["A"][sa], cuped.clicks["B"][sb], cuped.views["B"][sb],
                              cuped.pre_clicks[sa], cuped.pre_views[sa], cuped.pre_clicks[sb], cuped.pre_views[sb])
    assert b["diff"] == pytest.approx(ref["diff"]) and b["variance_reduction"] == pytest.approx(ref["variance_reduction"])
    assert b["variance_reduction"] > 0 and "variance_reduction" not in a
    assert a["verdict"] == b["verdict"] == "B"


def test_aa_runs_rarely_declare_a_winner_where_peeking_often_does(small):
    scenario, pop = small
    runs, ticks, new, old = 24, 40, 0, 0
    for r in range(runs):
        ab = ABSimulation(scenario, {"Popularity": pop, "Popularity (copy)": pop}, random_state=100 + r,
                          salt=f"aa-test-{r}", min_users=30)
        peeked = False
        for _ in range(ticks):
            row = ab.step()
            c = ab.compare()
            peeked = peeked or (c is not None and (float(c["ci_low"]) > 0 or float(c["ci_high"]) < 0))
        new += row["verdict"] is not None
        old += peeked
    # At alpha = 5%, 3 or more false winners in 24 runs has probability about 0.12; peeking gives about 9.
    assert new <= 2
    assert old >= 5


def test_fixed_horizon_result_appears_once_at_the_plan(small):
    scenario, pop = small
    ab = ABSimulation(scenario, {"a": pop, "b": pop}, random_state=7, mde=3.0)
    k = ab.simulator.k
    assert ab.planned_users == sample_size(k * ab.baseline_ctr, 3.0) and ab.tau == pytest.approx(3.0 * ab.baseline_ctr)
    frozen = None
    for _ in range(40):
        row = ab.step()
        reached = min(row["users_A"], row["users_B"]) >= ab.planned_users
        if frozen is None and reached:
            c = ab.compare()
            frozen = {"fixed_diff": c["diff"], "fixed_low": c["ci_low"], "fixed_high": c["ci_high"], "fixed_p": c["pvalue"]}
        if frozen is None:
            assert row["fixed_p"] is None and row["fixed_diff"] is None
        else:
            assert {key: row[key] for key in frozen} == pytest.approx(frozen)
    assert frozen is not None and row["fixed_diff"] != row["diff"]       # later ticks keep the one analysis


def test_compare_is_none_before_traffic_and_matches_the_record_after(small):
    scenario, pop = small
    ab = ABSimulation(scenario, {"a": pop, "b": pop}, random_state=1)
    assert ab.compare() is None
    row = [ab.step() for _ in range(3)][-1]
    c = ab.compare()
    assert float(c["diff"]) == pytest.approx(row["diff"]) and float(c["control"]) == pytest.approx(row["ctr_A"])


@pytest.mark.parametrize("kwargs, match", [
    ({"policies": {"only": None}}, "exactly two"),
    ({"policies": "AB"}, "exactly two"),
    ({"sessions_per_step": 0}, "sessions_per_step"),
    ({"random_state": -1}, "random_state"),
    ({"alpha": 0.9}, "alpha"),
    ({"mde": 0.0}, "mde"),
    ({"mde": 20.0}, "mde"),
    ({"min_users": 1}, "min_users"),
    ({"tau": -0.01}, "tau"),
    ({"baseline_ctr": 0.5}, "baseline_ctr"),
    ({"cuped": "yes"}, "cuped"),
])
def test_bad_arguments_raise_errors_that_name_them(small, kwargs, match):
    scenario, pop = small
    args = {"policies": {"a": pop, "b": pop}} | kwargs
    with pytest.raises(ValueError, match=match):
        ABSimulation(scenario, **args)


def test_bad_scenarios_and_policies_are_named(small, shop):
    scenario, pop = small
    with pytest.raises(ValueError, match="policies"):
        ABSimulation(scenario, {"a": pop, "b": pop, "c": pop})
    with pytest.raises(ValueError, match="scenario.shop"):
        ABSimulation(ShopScenario(None, shop.events), {"a": pop, "b": pop})
    with pytest.raises(ValueError, match="scenario.train"):
        ABSimulation(ShopScenario(shop, shop.events.drop(columns="timestamp")), {"a": pop, "b": pop})
    with pytest.raises(TypeError, match="policies\\['b'\\]"):
        ABSimulation(scenario, {"a": pop, "b": object()})
