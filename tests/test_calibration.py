"""Calibrating the shopper simulator: recovery of known click models, the predictive check, and the Open Bandit sample."""
import numpy as np
import pandas as pd
import pytest

from recapp.data.cache import DataSourceError
from recapp.experiment import (
    calibration_report,
    fit_click_model,
    position_decay_test,
    predict_logged,
    random_ctr_check,
    simulator_from_open_bandit,
    synthetic_rounds,
)
from recapp.schema import SchemaError

INTERCEPT = -3.0
POSITIONS = np.array([0.0, -0.4, -0.8])
APPEAL = np.random.default_rng(1).normal(0.0, 0.6, 40)


@pytest.fixture(scope="module")
def synthetic():
    """A uniform-random log (fit) and a skewed 'BTS-like' log (check) from the same known click model, ~3% CTR."""
    train = synthetic_rounds(60_000, INTERCEPT, POSITIONS, APPEAL, random_state=0)
    weights = np.exp(2.0 * APPEAL)                     # the second policy favours the better items, as BTS does
    test = synthetic_rounds(20_000, INTERCEPT, POSITIONS, APPEAL, item_weights=weights, random_state=1)
    return train, test, fit_click_model(train, n_draws=300, random_state=0)


@pytest.fixture(scope="module")
def obd():
    from recapp.data.openbandit import load_open_bandit

    try:
        return load_open_bandit("random", "all"), load_open_bandit("bts", "all")
    except DataSourceError as exc:
        pytest.skip(f"Open Bandit sample unavailable: {exc}")


def test_the_fit_recovers_known_position_and_item_effects(synthetic):
    _, _, model = synthetic
    se = np.sqrt(np.diag(model.cov_))
    # Each fitted effect sits within 3 of its own standard errors of the truth.
    assert abs(model.intercept_ - INTERCEPT) < 3 * se[0]
    assert np.all(np.abs(model.position_effect_[1:] - POSITIONS[1:]) < 3 * se[1:3]), (model.position_effect_, se[1:3])
    assert np.corrcoef(model.appeal_.to_numpy(), APPEAL - APPEAL.mean())[0, 1] > 0.85
    lo, hi = model.appeal_sd_interval_
    assert lo <= 0.6 <= hi and 0.4 < model.appeal_sd_ < 0.85
    params = model.params().set_index("parameter")
    assert params.loc["position 3", "ci_low"] < POSITIONS[2] < params.loc["position 3", "ci_high"]
    assert params.loc["intercept", "simulator_value"] == pytest.approx(np.exp(-model.intercept_))


def test_without_pooling_the_fit_is_statsmodels_logit_with_item_and_slot_effects():
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    rounds = synthetic_rounds(30_000, -3.0, POSITIONS, APPEAL[:10], random_state=4)
    model = fit_click_model(rounds, appeal_sd=1e3, n_draws=0)        # a flat prior: plain maximum likelihood
    ref = smf.glm("click ~ C(position) + C(item_id)", rounds, family=sm.families.Binomial()).fit()
    slots = ["C(position)[T.2]", "C(position)[T.3]"]
    assert np.allclose(model.position_effect_[1:], ref.params[slots], atol=1e-5)
    assert np.allclose(np.sqrt(np.diag(model.cov_))[1:3], ref.bse[slots], rtol=1e-3)
    # Item contrasts against item 0 agree too (the flat prior only fixes where the appeals are centred).
    appeal = model.appeal_.to_numpy()
    assert np.allclose(appeal[1:] - appeal[0], ref.params[[f"C(item_id)[T.{i}]" for i in range(1, 10)]], atol=1e-4)


def test_the_bootstrap_agrees_with_the_laplace_intervals_on_fixed_effects(synthetic):
    train, _, model = synthetic
    boot = fit_click_model(train, intervals="bootstrap", n_draws=40, appeal_sd=model.appeal_sd_, random_state=2)
    assert boot.draws_.shape == (40, 3 + len(APPEAL))
    # Position effects: resampling noise matches the curvature. (The intercept's Laplace variance also holds the
    # uncertainty of the average appeal, which resampling fixed items cannot show.)
    ratio = boot.draws_[:, 1:3].std(axis=0, ddof=1) / np.sqrt(np.diag(model.cov_))[1:3]
    assert np.all((ratio > 0.6) & (ratio < 1.5)), ratio


def test_position_decay_test_accepts_the_truth_and_rejects_flat_slots():
    decay = 1.0
    rounds = synthetic_rounds(40_000, -3.0, -decay * np.log([1, 2, 3]), np.zeros(20), random_state=3)
    model = fit_click_model(rounds, n_draws=0)
    right, flat = position_decay_test(model, decay), position_decay_test(model, 0.0)
    assert right["p_value"] > 0.05 and flat["p_value"] < 0.001
    assert abs(right["fitted_decay"] - decay) < 3 * right["fitted_decay_se"]


def test_predictions_are_probabilities(synthetic):
    _, test, model = synthetic
    p = predict_logged(model, test.drop(columns="click"))
    draws = predict_logged(model, test, replicates=True)
    assert p.shape == (len(test),) and draws.shape == (300, len(test))
    assert np.all((p > 0) & (p < 1)) and np.all((draws > 0) & (draws < 1))
    # An item the model never saw is treated as the average item.
    unseen = predict_logged(model, pd.DataFrame({"item_id": [999], "position": [1]}))
    assert unseen[0] == pytest.approx(1 / (1 + np.exp(-model.intercept_)))


def test_the_report_passes_a_right_model_and_flags_a_shifted_slot(synthetic):
    _, test, model = synthetic
    right = calibration_report(model, test, n_sims=1000, random_state=0)
    assert not right.positions["flag"].any(), right.positions
    inside = (right.positions["ppi_low"] <= right.positions["observed_ctr"]) & (right.positions["observed_ctr"] <= right.positions["ppi_high"])
    assert inside.all()
    assert right.items["flag"].sum() <= 1 and len(right.items) == 11
    assert (right.tests["p_predictive"] > 0.01).all(), right.tests
    # The same shoppers, but slot 3 now draws as many clicks as slot 2 would with a +0.8 boost.
    shifted = synthetic_rounds(20_000, INTERCEPT, POSITIONS + [0.0, 0.0, 0.8], APPEAL, item_weights=np.exp(2.0 * APPEAL),
                               random_state=1)
    wrong = calibration_report(model, shifted, n_sims=1000, random_state=0)
    assert wrong.positions["flag"].tolist() == [False, False, True], wrong.positions
    tests = wrong.tests.set_index("test")
    assert tests.loc["chi-square over positions", "p_predictive"] < 0.01


def test_on_the_random_sample_the_fit_reproduces_the_observed_ctr(obd):
    rnd, _ = obd
    model = fit_click_model(rnd.rounds, n_draws=50)
    p = predict_logged(model, rnd.rounds)
    # The intercept and the slots are unpenalised maximum likelihood, so fitted clicks equal clicks, overall and per slot.
    assert p.sum() == pytest.approx(rnd.rounds["click"].sum(), rel=1e-6)
    for slot, group in rnd.rounds.groupby("position"):
        assert p[rnd.rounds["position"].to_numpy() == slot].sum() == pytest.approx(group["click"].sum(), rel=1e-5)
    # One item alone in slot 1 is clicked with exactly the fitted probability in the simulator.
    sim = simulator_from_open_bandit(model)
    one = sim.click_probabilities(np.zeros(80, dtype=int), np.arange(80)[:, None])[:, 0]
    assert np.allclose(one, predict_logged(model, pd.DataFrame({"item_id": model.items, "position": 1})), rtol=1e-9)
    # In a full slate the items compete: each slot loses under 2% at this CTR.
    slates = np.arange(78).reshape(-1, 3)
    full = sim.click_probabilities(np.zeros(len(slates), dtype=int), slates)
    alone = predict_logged(model, pd.DataFrame({"item_id": model.items[slates.ravel()], "position": np.tile([1, 2, 3], len(slates))}))
    assert np.all((full.ravel() / alone > 0.98) & (full.ravel() / alone < 1.0))


def test_simulator_and_off_policy_estimates_agree_on_the_random_policy(obd):
    table = random_ctr_check(n_draws=60, ope_bootstrap=100, run_slates=20_000).set_index(["method", "fitted_on"])
    truth = table.loc[("measured", "random logs"), "estimate"]
    assert truth == pytest.approx(0.0038)
    sim = table.loc[("simulator, expected", "random logs")]
    assert sim["estimate"] == pytest.approx(truth, rel=0.03) and sim["ci_low"] < truth < sim["ci_high"]
    for method in ("IPW", "DR", "DM"):
        assert table.loc[(method, "BTS logs"), "overlaps_simulator"], table.loc[method]
    assert table.loc[("simulator, expected", "BTS logs"), "covers_truth"]


def test_bad_inputs_name_the_problem(synthetic):
    train, test, model = synthetic
    with pytest.raises(SchemaError, match="position"):
        fit_click_model(train.drop(columns="position"))
    with pytest.raises(SchemaError, match="click"):
        calibration_report(model, test.drop(columns="click"))
    with pytest.raises(ValueError, match="intervals="):
        fit_click_model(train, intervals="jackknife")
    with pytest.raises(ValueError, match="position"):
        fit_click_model(train.assign(position=train["position"] + 5), n_positions=3)
    with pytest.raises(ValueError, match=r"position\(s\) \[3\] have no clicks"):
        fit_click_model(train.assign(click=np.where(train["position"] == 3, 0, train["click"])))
    with pytest.raises(ValueError, match="n_draws > 0"):
        calibration_report(fit_click_model(train, n_draws=0), test)


def test_the_package_exports_these_names_and_keeps_the_ab_tests_calibration():
    import recapp.experiment as ex
    from recapp.experiment import ab_calibration

    assert ex.calibration is ab_calibration.calibration
    assert ex.fit_click_model is fit_click_model and "calibration_report" in ex.__all__


def test_the_appeal_sd_interval_endpoints_solve_the_profile_equation():
    from scipy.stats import chi2

    from recapp.experiment.click_model import APPEAL_SD_BOUNDS, _cells, _encode, _neg_marginal

    appeal = np.random.default_rng(0).normal(0.0, 0.5, 80)
    rounds = synthetic_rounds(30_000, -3.5, [0.0, -0.3, -0.6], appeal, random_state=1000)
    model = fit_click_model(rounds, items=np.arange(80), n_draws=0)
    low, high = model.appeal_sd_interval_
    assert APPEAL_SD_BOUNDS[0] < low < model.appeal_sd_ < high < APPEAL_SD_BOUNDS[1]
    n, c = _cells(*_encode(rounds, np.arange(80), 3), 80, 3)
    at = lambda t: _neg_marginal(n, c, t, model.theta_)[0]     # noqa: E731
    level = at(model.appeal_sd_) + chi2.ppf(0.95, 1) / 2
    # The endpoints are roots of profile - level, not grid points (the 25-point grid's neighbours are 27% apart).
    assert at(low) == pytest.approx(level, abs=2e-3) and at(high) == pytest.approx(level, abs=2e-3)
    assert at(low * 0.97) > level > at(low * 1.03) and at(high * 0.97) < level < at(high * 1.03)
