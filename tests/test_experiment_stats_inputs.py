"""Bad inputs to the experiment statistics (CUPED, the live A/B test, interleaving, the click model and its
calibration) get errors that name them, instead of a NaN, a silently dropped value or a library error."""
import numpy as np
import pandas as pd
import pytest

from recapp.data.synthetic import synthetic_shop
from recapp.experiment import (
    ABSimulation,
    RandomPolicy,
    ShopScenario,
    analyze_cuped,
    calibration_report,
    compare_means_cuped,
    compare_ratio_cuped,
    credit,
    cuped_adjust,
    fit_click_model,
    linearize_ratio,
    outcomes,
    position_decay_test,
    preference_sequence,
    preference_test,
    sample_size_cuped,
    simulator_from_open_bandit,
    simulator_random_ctr,
    synthetic_rounds,
    team_clicks,
    team_draft_many,
)
from recapp.schema import SchemaError


# ---- CUPED ------------------------------------------------------------------------------------------
def _per_user(n=400, seed=0):
    rng = np.random.default_rng(seed)
    fr = pd.DataFrame({"arm": np.where(np.arange(n) % 2, "treatment", "control"), "views": 1 + rng.poisson(3, n)},
                      index=pd.Index(np.arange(n), name="user_id"))
    fr["clicks"] = rng.binomial(fr["views"], 0.2)
    fr["converted"] = (rng.random(n) < 0.2).astype(int)
    fr["revenue"] = rng.exponential(5, n)
    fr["pre_views"] = rng.poisson(3, n)
    fr["pre_clicks"] = rng.binomial(fr["pre_views"], 0.2)
    fr["pre_converted"] = (rng.random(n) < 0.2).astype(int)
    fr["pre_revenue"] = fr["revenue"] * 0.5 + rng.exponential(2, n)
    fr["has_pre"] = (np.arange(n) >= 50).astype(int)
    return fr


def test_a_given_theta_must_be_finite():
    rng = np.random.default_rng(1)
    y = rng.normal(size=20)
    x = y + rng.normal(size=20)
    with pytest.raises(ValueError, match="theta"):
        cuped_adjust(y, x, theta=np.nan)
    with pytest.raises(ValueError, match="theta"):
        compare_means_cuped(y[:10], y[10:], x[:10], x[10:], theta=[np.inf])
    assert np.isfinite(cuped_adjust(y, x, theta=0.5)).all()


def test_ratio_inputs_refuse_negative_views_and_name_the_arm():
    with pytest.raises(ValueError, match=r"den\[1\] = -1.0"):
        linearize_ratio([1, 1, 1], [3, -1, 2])
    with pytest.raises(ValueError, match=r"den_c\[1\] = -1.0"):
        compare_ratio_cuped([1, 1, 1], [3, -1, 2], [1, 0, 1], [2, 2, 2], [1, 0, 1], [2, 2, 2], [0, 1, 1], [3, 3, 3], theta=0)
    with pytest.raises(ValueError, match="den_t sums to 0"):
        compare_ratio_cuped([1, 1, 1], [3, 1, 2], [0, 0, 0], [0, 0, 0], [1, 0, 1], [2, 2, 2], [0, 1, 1], [3, 3, 3])
    with pytest.raises(ValueError, match=r"pre_den_t\[0\] = -3.0"):
        compare_ratio_cuped([1, 1, 2], [3, 1, 2], [1, 0, 1], [2, 2, 2], [1, 0, 1], [2, 2, 2], [0, 1, 1], [-3, 3, 9])
    with pytest.raises(ValueError, match="y_c must hold numbers"):
        compare_means_cuped(["a", "b"], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0])


def test_the_ratio_test_checks_its_level():
    args = ([1, 1, 2, 0], [3, 1, 2, 3], [1, 0, 1, 2], [2, 2, 2, 3], [1, 0, 1, 1], [2, 2, 2, 2], [0, 1, 1, 0], [3, 3, 3, 3])
    with pytest.raises(ValueError, match="alpha=1.5"):
        compare_ratio_cuped(*args, alpha=1.5)
    assert 0 <= compare_ratio_cuped(*args)["pvalue"] <= 1


@pytest.mark.parametrize("kwargs, match", [
    ({"alpha": 2.0}, "alpha=2.0"), ({"power": 0.01}, "power=0.01 must exceed alpha"), ({"ratio": 0}, "ratio=0"),
    ({"sd": "a"}, "sd='a'"), ({"variance_reduction": None}, "variance_reduction=None"),
])
def test_sample_size_cuped_checks_the_plan(kwargs, match):
    args = {"sd": 1.0, "effect": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        sample_size_cuped(**args)


def test_analyze_cuped_refuses_a_missing_covariate_instead_of_dropping_it():
    frame = _per_user()
    frame.loc[frame.index[:50], "pre_revenue"] = np.nan
    with pytest.raises(ValueError, match=r"per_user\['pre_revenue'\] is missing or infinite in 50 row\(s\)"):
        analyze_cuped(frame, metrics=("revenue_per_user",))
    good = analyze_cuped(_per_user(), metrics=("revenue_per_user",)).set_index("adjustment")
    assert good.loc["cuped", "covariates"] == "pre_revenue, has_pre" and good.loc["cuped", "variance_reduction"] > 0


def test_analyze_cuped_names_bad_arms_metrics_and_corrections():
    frame = _per_user()
    no_arm = frame.astype({"arm": object})
    no_arm.loc[no_arm.index[:3], "arm"] = None
    with pytest.raises(ValueError, match=r"per_user\['arm'\] is missing for 3 user\(s\)"):
        analyze_cuped(no_arm)
    lone = pd.concat([frame, frame.iloc[:1].assign(arm="new")])
    with pytest.raises(ValueError, match="arm 'new' has 1 user"):
        analyze_cuped(lone)
    with pytest.raises(ValueError, match="metrics is empty"):
        analyze_cuped(frame, metrics=())
    with pytest.raises(ValueError, match="correction='xyz' is not accepted"):
        analyze_cuped(frame, correction="xyz")
    with pytest.raises(ValueError, match="alpha=0"):
        analyze_cuped(frame, alpha=0)


# ---- the live A/B test -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shop():
    return synthetic_shop(n_users=150, n_items=120, n_events=6000, random_state=3)


def test_live_cuped_without_pre_period_clicks_stays_unadjusted(shop):
    # The training log has views but no clicks: every shopper's pre-period CTR is 0, nothing to adjust with.
    train = shop.events.assign(event="view")
    policies = {"a": RandomPolicy(random_state=1), "b": RandomPolicy(random_state=2)}
    plain = ABSimulation(ShopScenario(shop, train), dict(policies), random_state=4)
    cuped = ABSimulation(ShopScenario(shop, train), dict(policies), random_state=4, cuped=True)
    for _ in range(25):
        a, b = plain.step(), cuped.step()
    assert len(cuped.history) == 25 and np.isnan(b["variance_reduction"])
    same = [k for k in a if a[k] == b[k] or (a[k] != a[k] and b[k] != b[k])]
    assert same == list(a)                              # the record of the plain analysis, step for step


def test_live_ab_needs_the_user_column_of_the_training_log(shop):
    with pytest.raises(SchemaError, match="user_id"):
        ABSimulation(ShopScenario(shop, shop.events.drop(columns="user_id")), {"a": RandomPolicy(), "b": RandomPolicy()})


# ---- interleaving --------------------------------------------------------------------------------------
def test_credit_refuses_a_click_mask_and_fractional_positions():
    with pytest.raises(ValueError, match="True/False"):
        credit(["A", "B"], [False, True])
    with pytest.raises(ValueError, match="whole 0-based positions"):
        credit(["A", "B", "A"], [1.5])
    with pytest.raises(ValueError, match="clicked_positions"):
        credit(["A", "B", "A"], [np.nan])
    assert credit(["A", "B", "A"], np.array([2.0, 1.0])) == (1, 1)


def test_team_clicks_and_outcomes_refuse_missing_or_negative_clicks():
    teams = np.array([["A", "B"], ["B", "A"]])
    with pytest.raises(ValueError, match=r"clicks\[0, 1\] = nan"):
        team_clicks(teams, np.array([[1, np.nan], [0, 1]]))
    with pytest.raises(ValueError, match=r"clicks\[1, 0\] = 2.0"):
        team_clicks(teams, np.array([[1, 0], [2, 1]]))
    with pytest.raises(ValueError, match=r"clicks_a\[1\] = nan"):
        outcomes([1, np.nan, 0], [0, 1, 1])
    with pytest.raises(ValueError, match=r"clicks_a\[0\] = -1.0"):
        outcomes([-1, 0], [0, 1])
    ca, cb = team_clicks(teams, np.array([[0.25, 0.5], [0.0, 0.1]]))     # click probabilities stay accepted
    assert ca.tolist() == [0.25, 0.1] and cb.tolist() == [0.5, 0.0]


def test_team_draft_many_refuses_missing_items_and_mixed_id_kinds():
    with pytest.raises(ValueError, match="slates_a has 2 missing item"):
        team_draft_many(np.array([[1.0, 2.0, np.nan, np.nan]]), np.array([[2.0, 5.0, 6.0, 7.0]]), 4, rng=0)
    with pytest.raises(ValueError, match="item ids must be of one kind"):
        team_draft_many(np.array([["a", "b"]]), np.array([[1, 2]]), 2, rng=0)


@pytest.mark.parametrize("wins_a", [np.inf, np.nan])
def test_preference_test_refuses_non_finite_counts(wins_a):
    with pytest.raises(ValueError, match="wins_a=.* must be a non-negative whole number"):
        preference_test(wins_a, 3)


@pytest.mark.parametrize("wa, wb, ties, match", [
    ([1, 2], [1, 2, 3], [0, 0], "one shape"),
    ([], [], [], "at least one look"),
    (40, 50, 3, "at least one look"),
    ([20, np.nan, 40], [25, 40, 60], [1, 2, 3], r"wins_a\[1\] = nan"),
    ([-20, 30, 40], [25, 40, 60], [1, 2, 3], r"wins_a\[0\] = -20.0"),
    ([20, 10, 40], [25, 30, 60], [1, 2, 3], r"wins_a\[1\] = 10 is below the previous look's 20"),
])
def test_preference_sequence_refuses_counts_that_are_not_cumulative_looks(wa, wb, ties, match):
    with pytest.raises(ValueError, match=match):
        preference_sequence(wa, wb, ties)


# ---- the click model and its calibration ----------------------------------------------------------------
@pytest.fixture(scope="module")
def rounds():
    return synthetic_rounds(20_000, -2.0, [0.0, -0.4, -0.8], np.random.default_rng(0).normal(0, 0.5, 20), random_state=0)


@pytest.fixture(scope="module")
def model(rounds):
    return fit_click_model(rounds, n_draws=30)


@pytest.mark.parametrize("kwargs, match", [
    ({"alpha": 1.5}, "alpha=1.5"), ({"n_draws": 2.5}, "n_draws=2.5"), ({"appeal_sd": np.inf}, "appeal_sd=inf"),
    ({"appeal_sd": True}, "appeal_sd=True"), ({"items": np.r_[np.arange(20), 3]}, "items repeats 1 id"),
    ({"n_positions": 2.7}, "n_positions=2.7"),
])
def test_fit_click_model_checks_its_arguments(rounds, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_click_model(rounds, **kwargs)


def test_logs_without_rows_or_with_missing_items_are_refused(rounds, model):
    with pytest.raises(ValueError, match="rounds is empty"):
        fit_click_model(rounds.iloc[:0])
    with pytest.raises(ValueError, match="rounds is empty"):
        calibration_report(model, rounds.iloc[:0])
    missing = rounds.astype({"item_id": float})
    missing.loc[:9, "item_id"] = np.nan
    with pytest.raises(ValueError, match=r"rounds\['item_id'\] is missing in 10 row"):
        fit_click_model(missing)
    with pytest.raises(ValueError, match=r"rounds\['item_id'\] is missing in 10 row"):
        calibration_report(model, missing, n_sims=50)


def test_calibration_checks_its_arguments(rounds, model):
    with pytest.raises(ValueError, match="alpha=1.5"):
        calibration_report(model, rounds, alpha=1.5, n_sims=50)
    with pytest.raises(ValueError, match="top_items=2.5"):
        calibration_report(model, rounds, top_items=2.5, n_sims=50)
    with pytest.raises(ValueError, match="draw=-1 is out of range"):
        simulator_from_open_bandit(model, draw=-1)
    with pytest.raises(ValueError, match="draw=30 is out of range"):
        simulator_from_open_bandit(model, draw=30)
    with pytest.raises(ValueError, match="n_slates=0"):
        simulator_random_ctr(model, n_slates=0, run_slates=1000)
    with pytest.raises(ValueError, match="position_decay=nan"):
        position_decay_test(model, np.nan)
    assert simulator_from_open_bandit(model, draw=29).no_click_weight_ == pytest.approx(np.exp(-model.draws_[29, 0]))


def test_analyze_refuses_a_user_without_an_arm_and_a_missing_metric_value():
    from recapp.experiment import analyze

    per_user = pd.DataFrame({"arm": ["control"] * 3 + ["B"] * 3, "clicks": [1, 2, 3, 1, 2, 3], "views": [5] * 6,
                             "converted": [0, 1, 0, 1, 1, 0], "revenue": [0.0, 2.0, 0.0, 3.0, 1.0, 0.0]})
    assert len(analyze(per_user)) == 3
    # Before: "nobs_t = 0.0 is not accepted" (the NaN arm compared as an arm with no users equal to it).
    no_arm = pd.concat([per_user, per_user.iloc[[0]].assign(arm=np.nan)], ignore_index=True)
    with pytest.raises(ValueError, match=r"per_user\['arm'\] is missing for 1 user\(s\), e.g. 6"):
        analyze(no_arm)
    # Before: "x_c[0] = nan is not accepted", naming neither the column nor the user.
    with pytest.raises(ValueError, match=r"per_user\['revenue'\] is missing or infinite in 1 row\(s\)"):
        analyze(per_user.assign(revenue=[np.nan, 2.0, 0.0, 3.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="arm 'B' has 1 user"):
        analyze(per_user.iloc[:4])
