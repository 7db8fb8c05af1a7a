"""A/B statistics: assignment, SRM, per-user metrics, calibration of the tests, power, sequential monitoring."""
import hashlib

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from recapp.experiment import ab_calibration, abtest, sequential


# ---- assignment and SRM -----------------------------------------------------------------
def test_assignment_is_stable_and_salted():
    users = np.arange(5000)
    a = abtest.assign(users, salt="exp-1")
    # Order of arrival does not matter, and a second call agrees.
    b = abtest.assign(users[::-1], salt="exp-1")
    assert (a == b.reindex(a.index)).all()
    # The hash is sha256 of "salt:user": reproducible anywhere.
    expected = int.from_bytes(hashlib.sha256(b"exp-1:42").digest()[:8], "big") / 2.0**64
    assert abtest.hash_unit([42], "exp-1")[0] == expected
    assert a.loc[42] == ("control" if expected < 0.5 else "treatment")
    # A new salt re-randomises: about half the users change arm.
    c = abtest.assign(users, salt="exp-2")
    assert 0.4 < (a != c).mean() < 0.6


def test_assignment_follows_weights_and_string_ids():
    users = [f"user-{i}" for i in range(20_000)]
    a = abtest.assign(users, arms=["a", "b", "c"], weights=[0.2, 0.3, 0.5], salt="w")
    shares = a.value_counts(normalize=True)
    assert shares["a"] == pytest.approx(0.2, abs=0.015)
    assert shares["c"] == pytest.approx(0.5, abs=0.015)
    assert not abtest.srm_check(a, weights={"a": 0.2, "b": 0.3, "c": 0.5}).mismatch
    with pytest.raises(ValueError, match="weights"):
        abtest.assign(users, arms=["a", "b"], weights=[1.0])


def test_srm_check_flags_lost_users():
    a = abtest.assign(np.arange(20_000), salt="srm")
    ok = abtest.srm_check(a)
    assert not ok.mismatch and ok.pvalue > 0.001
    # Losing 5% of the treatment arm (say a redirect drops them) is a clear mismatch.
    treat = a.index[a == "treatment"]
    broken = a.drop(treat[: len(treat) // 20])
    bad = abtest.srm_check(broken)
    assert bad.mismatch and bad.pvalue < 1e-4
    assert "MISMATCH" in str(bad)


# ---- per-user metrics ------------------------------------------------------------------
def test_user_metrics_counts_each_user_and_keeps_silent_ones():
    events = pd.DataFrame({
        "user_id": [1, 1, 1, 1, 2, 2],
        "item_id": [10, 10, 10, 11, 12, 12],
        "timestamp": [0, 1, 2, 3, 0, 1],
        "event": ["view", "click", "purchase", "view", "view", "view"],
        "value": [0, 0, 25.0, 0, 0, 0],
    })
    assignment = pd.Series(["control", "treatment", "treatment"], index=pd.Index([1, 2, 3], name="user_id"))
    m = abtest.user_metrics(events, assignment)
    assert m.loc[1, ["views", "clicks", "purchases"]].tolist() == [2, 1, 1]
    assert m.loc[1, "revenue"] == 25.0 and m.loc[1, "converted"] == 1 and m.loc[1, "ctr"] == 0.5
    # User 3 was assigned but never came back: zeros, not missing.
    assert m.loc[3, ["views", "clicks", "revenue", "converted"]].tolist() == [0, 0, 0, 0]
    assert m.loc[3, "arm"] == "treatment"


def test_delta_method_variance_matches_the_spread_of_the_ratio():
    sim = ab_calibration.simulate_users(2000, 500, random_state=3)
    ratio, var = abtest.delta_ratio(sim["clicks"], sim["views"])
    # Across 2,000 independent experiments the ratio's spread is what the delta method predicts.
    assert np.sqrt(var).mean() == pytest.approx(ratio.std(ddof=1), rel=0.08)


def test_analyze_finds_a_planted_lift_and_corrects_for_multiple_tests():
    rng = np.random.default_rng(0)
    n = 6000
    frames = []
    for arm, conv, ctr in (("control", 0.10, 0.05), ("treatment", 0.13, 0.05), ("same", 0.10, 0.05)):
        views = 1 + rng.poisson(7, n)
        frames.append(pd.DataFrame({"arm": arm, "views": views, "clicks": rng.binomial(views, ctr),
                                    "converted": (rng.random(n) < conv).astype(int),
                                    "revenue": rng.exponential(30, n) * (rng.random(n) < conv)}))
    per_user = pd.concat(frames, ignore_index=True)
    res = abtest.analyze(per_user, control="control")
    assert len(res) == 6 and set(res["metric"]) == set(abtest.METRICS)
    conv = res.set_index(["arm", "metric"]).loc[("treatment", "conversion")]
    assert conv["significant"] and conv["ci_low"] > 0 and conv["lift"] == pytest.approx(0.3, abs=0.12)
    # Holm never lowers a p-value.
    assert (res["pvalue_adj"] >= res["pvalue"] - 1e-12).all()
    with pytest.raises(ValueError, match="control"):
        abtest.analyze(per_user, control="nope")


# ---- calibration (vectorised: thousands of experiments in one go) ------------------------------
def test_aa_false_positive_rates_are_calibrated():
    # 2,000 A/A tests: the standard error of a 5% rate is 0.5 points, so [3%, 7%] is a 4-sigma band.
    table = ab_calibration.calibration(n_experiments=2000, n_users=1000, lift=0.0, alpha=0.05, random_state=11).set_index("metric")
    for metric in ("conversion", "revenue_per_user", "ctr_delta"):
        assert 0.03 <= table.loc[metric, "rejection_rate"] <= 0.07, (metric, table.loc[metric, "rejection_rate"])
    # Treating views as independent (the wrong unit) rejects far too often: why the delta method is used.
    assert table.loc["ctr_naive", "rejection_rate"] > 0.12


@pytest.mark.parametrize("power", [0.8, 0.5])
def test_power_matches_normal_ind_power(power):
    n = abtest.sample_size(0.10, 0.20, power=power)          # +20% relative on a 10% conversion
    h = proportion_effectsize(0.12, 0.10)
    assert n == int(np.ceil(NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=power)))
    table = ab_calibration.calibration(n_experiments=600, n_users=n, lift=0.2, random_state=5).set_index("metric")
    predicted = table.loc["conversion", "predicted_power"]
    assert predicted == pytest.approx(power, abs=0.01)
    assert abs(table.loc["conversion", "rejection_rate"] - predicted) < 0.1


def test_sample_size_rejects_impossible_rates():
    with pytest.raises(ValueError, match="baseline"):
        abtest.sample_size(0.9, 0.2)


# ---- sequential monitoring -------------------------------------------------------------------
def test_obrien_fleming_boundaries_match_published_values():
    # Lan-DeMets O'Brien-Fleming-type, 5 equally spaced looks, two-sided alpha 0.05 (ldbounds / gsDesign).
    b = sequential.spending_boundaries(np.arange(1, 6) / 5, alpha=0.05)
    assert b["z_boundary"].to_numpy() == pytest.approx([4.8769, 3.3569, 2.6803, 2.2898, 2.0310], abs=2e-3)
    assert b["alpha_spent"].iloc[-1] == pytest.approx(0.05)
    pocock = sequential.spending_boundaries(np.arange(1, 6) / 5, spending="pocock")
    assert pocock["z_boundary"].to_numpy() == pytest.approx([2.438, 2.427, 2.410, 2.397, 2.386], abs=3e-3)
    # One look is the fixed-horizon test.
    assert sequential.spending_boundaries([1.0])["z_boundary"].iloc[0] == pytest.approx(1.959964, abs=1e-4)
    with pytest.raises(ValueError, match="information"):
        sequential.spending_boundaries([0.5, 0.4])


def test_peeking_inflates_false_positives_and_the_remedies_do_not():
    table = sequential.peeking_simulation(n_experiments=2000, n_per_arm=5000, n_looks=10, random_state=7).set_index("rule")
    rate = table["rejection_rate"]
    assert rate["naive peeking"] > 0.12                 # about 0.19 with 10 looks
    assert 0.03 <= rate["fixed horizon"] <= 0.07
    assert 0.03 <= rate["O'Brien-Fleming"] <= 0.07
    assert rate["mSPRT"] <= 0.06                        # always valid, conservative at discrete looks
    # With a real effect the boundary still finds it, nearly as often as the fixed-horizon test.
    power = sequential.peeking_simulation(n_experiments=1000, n_per_arm=5000, n_looks=10, lift=0.15,
                                          random_state=8).set_index("rule")["rejection_rate"]
    assert power["O'Brien-Fleming"] > 0.9 * power["fixed horizon"] > 0.5


def test_monitor_stops_a_clear_winner_and_not_an_aa_test():
    rng = np.random.default_rng(1)
    n = np.arange(1, 11) * 2000
    def looks(p_t):
        xc = np.cumsum(rng.binomial(2000, 0.10, 10))
        xt = np.cumsum(rng.binomial(2000, p_t, 10))
        return pd.DataFrame({"users_c": n, "conversions_c": xc, "users_t": n, "conversions_t": xt})
    win = sequential.monitor(looks(0.13), planned_users=20_000)
    assert win["stop"].iloc[-1] and win["obf_reject"].any()
    assert (np.diff(win["msprt_p"]) <= 1e-12).all()     # always-valid p-values never go back up
    aa = sequential.monitor(looks(0.10), planned_users=20_000)
    assert not aa["obf_reject"].any()


def test_msprt_statistic_is_one_without_data_and_grows_with_evidence():
    assert sequential.msprt_statistic(0.0, 0.18, 0, tau=0.01) == pytest.approx(1.0)
    lam = sequential.msprt_statistic(0.02, 0.18, np.array([100, 1000, 10_000]), tau=0.01)
    assert lam[0] < lam[1] < lam[2] and lam[2] > 20


def test_figures_for_the_notebooks():
    from recapp.experiment import plots

    table, z, bounds = sequential.peeking_simulation(n_experiments=200, n_per_arm=2000, n_looks=5, return_paths=True)
    fig = plots.sequential_plot(z, bounds, max_paths=20)
    assert len(fig.data) == 20 + 4                       # paths, then +/- boundary and +/- 1.96
    assert np.allclose(fig.data[20].y, bounds["z_boundary"])
    assert plots.peeking_plot(table).data[0].type == "bar"
    cal = ab_calibration.calibration(n_experiments=100, n_users=200)
    assert len(plots.calibration_plot(cal).data[0].x) == 4
    rng = np.random.default_rng(0)
    per_user = pd.DataFrame({"arm": np.repeat(["control", "treatment"], 500), "views": 5,
                             "clicks": rng.binomial(5, 0.1, 1000), "converted": rng.binomial(1, 0.1, 1000),
                             "revenue": rng.exponential(10, 1000)})
    fig = plots.ab_plot(abtest.analyze(per_user))
    assert len(fig.data[0].y) == 3


# ---- review fixes: sequential monitoring past the plan, fixed tau, the combined stop rule ----------
def _aa_looks(rng, batch=1000, n_looks=10, rate=0.1):
    n = np.arange(1, n_looks + 1) * batch
    return pd.DataFrame({"users_c": n, "conversions_c": np.cumsum(rng.binomial(batch, rate, n_looks)),
                         "users_t": n, "conversions_t": np.cumsum(rng.binomial(batch, rate, n_looks))})


def test_monitor_looks_past_the_plan_spend_no_more_alpha():
    looks = _aa_looks(np.random.default_rng(0))
    m = sequential.monitor(looks, planned_users=5000)       # looks 6..10 come after the final analysis
    plan = sequential.spending_boundaries(np.arange(1, 6) / 5)["z_boundary"].to_numpy()
    assert m["z_boundary"].to_numpy()[:5] == pytest.approx(plan)
    assert np.isinf(m["z_boundary"].to_numpy()[5:]).all()   # the final boundary is not reused
    assert m["past_plan"].tolist() == [False] * 5 + [True] * 5
    # A huge z after the plan cannot reject by the boundary rule.
    late = looks.copy()
    late.loc[7:, "conversions_t"] += 400
    m2 = sequential.monitor(late, planned_users=5000)
    assert abs(m2["z"].iloc[9]) > 5 and not m2["obf_reject"].iloc[5:].any()


def test_monitor_tau_is_fixed_so_new_looks_do_not_change_old_pvalues():
    looks = _aa_looks(np.random.default_rng(2), rate=0.05)
    looks.loc[5:, ["conversions_c", "conversions_t"]] *= 3     # the pooled rate drifts after look 5
    early = sequential.monitor(looks.iloc[:5], planned_users=10_000)
    full = sequential.monitor(looks, planned_users=10_000)
    assert full["msprt_p"].to_numpy()[:5] == pytest.approx(early["msprt_p"].to_numpy(), rel=1e-12)
    fixed = sequential.monitor(looks, planned_users=10_000, baseline_rate=0.05)
    explicit = sequential.monitor(looks, planned_users=10_000, tau=0.005)
    assert fixed["msprt_p"].to_numpy() == pytest.approx(explicit["msprt_p"].to_numpy())


def test_monitor_looks_before_any_conversion_read_no_difference_not_nan():
    looks = pd.DataFrame({"users_c": [100, 200, 300], "conversions_c": [0, 0, 5],
                          "users_t": [100, 200, 300], "conversions_t": [0, 0, 9]})
    m = sequential.monitor(looks, planned_users=1000, baseline_rate=0.02)
    assert m["z"].tolist()[:2] == [0.0, 0.0] and m["naive_p"].tolist()[:2] == [1.0, 1.0]
    assert m[["z", "naive_p", "msprt_p"]].notna().all().all() and not m["stop"].any()
    # From the first conversion on, the same Wald test as compare_proportions.
    assert m["z"].iloc[2] == pytest.approx(abtest.compare_proportions(5, 300, 9, 300)["statistic"])


def test_monitor_stop_splits_alpha_between_the_two_rules():
    # A z just past the alpha boundary but inside the alpha/2 boundary: obf_reject says yes, stop (both rules at alpha/2) no.
    b_full = sequential.spending_boundaries([1.0], 0.05)["z_boundary"].iloc[0]
    b_half = sequential.spending_boundaries([1.0], 0.025)["z_boundary"].iloc[0]
    n, xc = 10_000, 1000
    for xt in range(1000, 1400):
        m = sequential.monitor(pd.DataFrame({"users_c": [n], "conversions_c": [xc], "users_t": [n], "conversions_t": [xt]}),
                               planned_users=n, tau=0.01)
        if b_full <= abs(m["z"].iloc[0]) < b_half:
            break
    assert m["obf_reject"].iloc[0] and not m["stop"].iloc[0]


def test_spending_docstring_states_the_per_side_form():
    assert "z_{1-alpha/4}" in sequential.__doc__ and "2 - 2 * Phi(z_{1-alpha/2} / sqrt(t))``" not in sequential.__doc__
    t = np.array([0.3, 1.0])
    by_doc = 2 * (2 - 2 * __import__("scipy").stats.norm.cdf(__import__("scipy").stats.norm.ppf(1 - 0.05 / 4) / np.sqrt(t)))
    assert sequential.alpha_spent(t) == pytest.approx(by_doc)


# ---- review fixes: compare_proportions methods, arrays and 0 vs 0 --------------------------------
def test_compare_proportions_score_on_arrays_matches_scalar_calls():
    xc, xt = np.array([3, 10, 25]), np.array([7, 4, 30])
    vec = abtest.compare_proportions(xc, 1000, xt, 1200, method="score")
    for i in range(3):
        one = abtest.compare_proportions(xc[i], 1000, xt[i], 1200, method="score")
        for k in ("pvalue", "ci_low", "ci_high", "statistic"):
            assert vec[k][i] == pytest.approx(one[k], nan_ok=True)
    assert vec["pvalue"].shape == (3,) and np.isfinite(vec["pvalue"]).all()


def test_compare_proportions_newcomb_is_an_interval_method():
    with pytest.raises(ValueError, match='ci_method="newcomb"'):
        abtest.compare_proportions(3, 1000, 7, 1000, method="newcomb")
    out = abtest.compare_proportions(np.array([3, 0]), 1000, np.array([7, 0]), 1000, ci_method="newcomb")
    wald = abtest.compare_proportions(np.array([3, 0]), 1000, np.array([7, 0]), 1000)
    assert out["pvalue"][0] == pytest.approx(wald["pvalue"][0])       # the test is still Wald
    assert out["ci_low"][1] < 0 < out["ci_high"][1]                   # Newcomb is not degenerate at 0 vs 0
    with pytest.raises(ValueError, match="ci_method"):
        abtest.compare_proportions(3, 1000, 7, 1000, ci_method="exact")


def test_compare_proportions_zero_vs_zero_is_no_evidence():
    for method in ("wald", "score", "agresti-caffo"):
        out = abtest.compare_proportions(0, 1000, 0, 1000, method=method)
        assert out["pvalue"] == 1.0 and out["statistic"] == 0.0
    both = abtest.compare_proportions(np.array([0, 3]), 500, np.array([0, 9]), 500)
    assert both["pvalue"][0] == 1.0 and 0 < both["pvalue"][1] < 1
