"""The A/B statistics (proportions, means, ratios, corrections, power, CUPED) checked against scipy and statsmodels.

Sequential tests, off-policy estimators and interleaving: tests/test_statistics_reference_sequential.py.

Where recapp and the reference run the same method the numbers must agree to ~1e-8; where recapp uses a
different valid method (unpooled Wald rather than the pooled z-test, pooled CUPED theta rather than ANCOVA)
the test says which and bounds the difference. Simulations have fixed seeds and tolerances of a few Monte
Carlo standard errors; each also shows that the naive rule it guards against does fail.
"""
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats import proportion as smp
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_effectsize, proportions_ztest

from recapp.experiment import (analyze, analyze_cuped, compare_means, compare_means_cuped, compare_proportions,
                               compare_ratio, compare_ratio_cuped, cuped_theta, delta_ratio, linearize_ratio,
                               predicted_power, sample_size, sample_size_cuped)

Z975 = stats.norm.ppf(0.975)


def _mc_upper(rate: float, n: int, k: float = 3.0) -> float:
    """``rate`` plus k Monte Carlo standard errors of a rejection rate over n simulations."""
    return rate + k * np.sqrt(rate * (1 - rate) / n)


# ---- A/B: proportions, means, ratios ------------------------------------------------------
# Cases where statsmodels' own score interval solves (see test_score_interval_where_statsmodels_root_finder_fails).
PROPORTION_CASES = [(30, 200, 45, 210), (7, 1200, 3, 1000), (100, 1000, 100, 1000), (20, 150, 33, 160), (90, 400, 60, 410)]


@pytest.mark.parametrize("method", ["wald", "agresti-caffo", "score"])
def test_proportions_match_statsmodels(method):
    for cc, nc, ct, nt in PROPORTION_CASES:
        r = compare_proportions(cc, nc, ct, nt, method=method)
        ref = smp.test_proportions_2indep(ct, nt, cc, nc, method=method, compare="diff")
        low, high = confint_proportions_2indep(ct, nt, cc, nc, method=method, compare="diff")
        np.testing.assert_allclose([r["statistic"], r["pvalue"], r["ci_low"], r["ci_high"]],
                                   [ref.statistic, ref.pvalue, low, high], rtol=1e-8, atol=1e-12)
        assert r["diff"] == pytest.approx(ct / nt - cc / nc, abs=1e-15)
        # The effect is treatment minus control: the statistic and the interval centre carry its sign.
        assert np.sign(r["statistic"]) == np.sign(r["diff"])
        assert r["ci_low"] <= r["diff"] <= r["ci_high"]
    # Arrays give one comparison per element, equal to the scalar calls.
    cc, nc, ct, nt = (np.array(v) for v in zip(*PROPORTION_CASES))
    vec = compare_proportions(cc, nc, ct, nt, method=method)
    for i, case in enumerate(PROPORTION_CASES):
        one = compare_proportions(*case, method=method)
        assert vec["pvalue"][i] == pytest.approx(one["pvalue"], rel=1e-12)
        assert vec["ci_low"][i] == pytest.approx(one["ci_low"], rel=1e-12, abs=1e-15)


def test_wald_is_the_unpooled_test_not_the_pooled_z_test():
    """``method="wald"`` is the unpooled Wald test (its label), a valid alternative to the pooled z-test."""
    cc, nc, ct, nt = 30, 200, 45, 210
    r = compare_proportions(cc, nc, ct, nt)
    pc, pt = cc / nc, ct / nt
    se = np.sqrt(pc * (1 - pc) / nc + pt * (1 - pt) / nt)
    assert r["statistic"] == pytest.approx((pt - pc) / se, rel=1e-12)
    assert r["pvalue"] == pytest.approx(2 * stats.norm.sf(abs(pt - pc) / se), rel=1e-10)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((pt - pc - Z975 * se, pt - pc + Z975 * se), rel=1e-10)
    pooled_z, pooled_p = proportions_ztest([ct, cc], [nt, nc])
    assert abs(r["statistic"] - pooled_z) > 1e-3     # a different statistic...
    assert abs(r["pvalue"] - pooled_p) < 0.01         # ...that agrees closely at these sizes


def test_score_interval_where_statsmodels_root_finder_fails():
    """statsmodels brackets the score interval at -1 and 1, where its test is NaN; recapp inverts the same test."""
    def score_p(v, cc, nc, ct, nt):
        return smp.test_proportions_2indep(ct, nt, cc, nc, value=v, method="score", compare="diff").pvalue

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for cc, nc, ct, nt in [(2, 50, 9, 60), (0, 50, 3, 60), (0, 50, 0, 60), (25, 26, 15, 16)]:
            with pytest.raises(ValueError):
                confint_proportions_2indep(ct, nt, cc, nc, method="score", compare="diff")
            r = compare_proportions(cc, nc, ct, nt, method="score")
            assert r["ci_low"] < r["diff"] < r["ci_high"]        # before: NaN, NaN
            width = r["ci_high"] - r["ci_low"]
            for end, inward in ((r["ci_low"], 1e-3), (r["ci_high"], -1e-3)):
                assert score_p(end, cc, nc, ct, nt) == pytest.approx(0.05, rel=1e-6)
                assert score_p(end + inward * width, cc, nc, ct, nt) > 0.05
            # The Newcomb interval of the same counts is close: both are score-type intervals.
            newcomb = compare_proportions(cc, nc, ct, nt, ci_method="newcomb")
            assert abs(newcomb["ci_low"] - r["ci_low"]) < 0.2 * width and abs(newcomb["ci_high"] - r["ci_high"]) < 0.2 * width
        # Where statsmodels solves it, the same numbers; nowhere an error.
        rng = np.random.default_rng(11)
        solved = 0
        for cc, nc, ct, nt in rng.integers(0, 12, (150, 4)):
            nc, nt = max(nc, cc, 1), max(nt, ct, 1)
            r = compare_proportions(cc, nc, ct, nt, method="score")
            try:
                ref = confint_proportions_2indep(ct, nt, cc, nc, method="score", compare="diff")
            except ValueError:
                continue
            solved += 1
            assert (r["ci_low"], r["ci_high"]) == pytest.approx(ref, abs=1e-10)
        assert solved >= 10
        # Where the score test itself is NaN next to the estimate, the end stays NaN (documented).
        r = compare_proportions(11, 32, 0, 39, method="score")
        assert np.isnan(r["ci_low"]) and np.isfinite(r["pvalue"])


def test_welch_matches_scipy():
    rng = np.random.default_rng(1)
    x_c, x_t = rng.exponential(2.0, 57), rng.exponential(2.4, 43)
    r = compare_means(x_c, x_t)
    ref = stats.ttest_ind(x_t, x_c, equal_var=False)
    ci = ref.confidence_interval(0.95)
    np.testing.assert_allclose([r["statistic"], r["pvalue"], r["ci_low"], r["ci_high"]],
                               [ref.statistic, ref.pvalue, ci.low, ci.high], rtol=1e-8)
    assert r["diff"] == pytest.approx(x_t.mean() - x_c.mean(), rel=1e-12)
    # 2-D: one test per column, and a 90% interval.
    X_c, X_t = rng.normal(0, 1, (40, 3)), rng.normal(0.3, 2, (35, 3))
    r2 = compare_means(X_c, X_t, alpha=0.1)
    for j in range(3):
        ref = stats.ttest_ind(X_t[:, j], X_c[:, j], equal_var=False)
        ci = ref.confidence_interval(0.9)
        np.testing.assert_allclose([r2["statistic"][j], r2["pvalue"][j], r2["ci_low"][j], r2["ci_high"][j]],
                                   [ref.statistic, ref.pvalue, ci.low, ci.high], rtol=1e-8)


def _clustered_ctr(rng, n_users, n_exp):
    """Per-user views and clicks with a per-user CTR: clicks of one user are correlated."""
    views = rng.poisson(6, (n_users, n_exp)) + 1
    ctr = rng.beta(0.5, 4.5, (n_users, n_exp))
    return rng.binomial(views, ctr), views


def test_delta_method_ratio_matches_formula_bootstrap_and_keeps_its_level():
    rng = np.random.default_rng(2)
    clicks, views = _clustered_ctr(rng, 300, 1)
    x, y = clicks[:, 0].astype(float), views[:, 0].astype(float)
    ratio, var = delta_ratio(x, y)
    c = np.cov(x, y, ddof=1)
    mx, my = x.mean(), y.mean()
    assert ratio == pytest.approx(x.sum() / y.sum(), rel=1e-12)
    assert var == pytest.approx((c[0, 0] / my**2 - 2 * mx * c[0, 1] / my**3 + mx**2 * c[1, 1] / my**4) / len(x), rel=1e-10)
    idx = rng.integers(0, len(x), (4000, len(x)))
    assert var == pytest.approx((x[idx].sum(1) / y[idx].sum(1)).var(), rel=0.1)   # bootstrap over users
    # A/A: 2000 experiments at once (one per column); the delta method keeps the level, a per-view test does not.
    n_exp = 2000
    (cl_c, v_c), (cl_t, v_t) = _clustered_ctr(rng, 200, n_exp), _clustered_ctr(rng, 200, n_exp)
    r = compare_ratio(cl_c, v_c, cl_t, v_t)
    assert r["pvalue"].shape == (n_exp,)
    assert (r["pvalue"] < 0.05).mean() <= _mc_upper(0.05, n_exp)
    assert (r["pvalue"] < 0.05).mean() >= 0.05 - 3 * np.sqrt(0.05 * 0.95 / n_exp)
    naive = compare_proportions(cl_c.sum(0), v_c.sum(0), cl_t.sum(0), v_t.sum(0))
    assert (naive["pvalue"] < 0.05).mean() > 0.1


@pytest.mark.parametrize("correction", ["holm", "bonferroni", "fdr_bh", "none"])
def test_analyze_corrections_match_multipletests(correction):
    rng = np.random.default_rng(5)
    n = 600
    pu = pd.DataFrame({"arm": rng.choice(["control", "b", "c"], n), "views": rng.poisson(4, n)})
    pu["clicks"] = rng.binomial(pu["views"], 0.1)
    pu["converted"] = rng.binomial(1, 0.1, n)
    pu["revenue"] = pu["converted"] * rng.gamma(2.0, 10.0, n)
    out = analyze(pu, correction=correction)
    expected = out["pvalue"] if correction == "none" else multipletests(out["pvalue"], method=correction)[1]
    np.testing.assert_allclose(out["pvalue_adj"], expected, rtol=1e-12)
    c, t = pu[pu["arm"] == "control"], pu[pu["arm"] == "b"]
    row = out[(out["arm"] == "b") & (out["metric"] == "revenue_per_user")].iloc[0]
    assert row["pvalue"] == pytest.approx(stats.ttest_ind(t["revenue"], c["revenue"], equal_var=False).pvalue, rel=1e-8)
    assert row["lift"] == pytest.approx(row["diff"] / c["revenue"].mean(), rel=1e-12)


def test_power_helpers_match_the_closed_form():
    for baseline, mde, ratio in [(0.1, 0.1, 1.0), (0.03, 0.2, 2.0), (0.5, -0.05, 0.5)]:
        h = proportion_effectsize(baseline * (1 + mde), baseline)
        closed = ((Z975 + stats.norm.ppf(0.8)) / h) ** 2 * (1 + 1 / ratio)
        n = sample_size(baseline, mde, ratio=ratio)
        assert n == int(np.ceil(NormalIndPower().solve_power(abs(h), alpha=0.05, power=0.8, ratio=ratio)))
        assert abs(n - closed) <= 2
        assert 0.8 <= predicted_power(baseline, baseline * (1 + mde), n, ratio=ratio) < 0.8 + 1e-3
    sd, effect, vr = 3.0, 0.25, 0.4
    closed = ((Z975 + stats.norm.ppf(0.8)) * sd * np.sqrt(1 - vr) / effect) ** 2 * 2
    assert abs(sample_size_cuped(sd, effect, vr) - closed) <= 2
    assert sample_size_cuped(sd, effect, 0.0) == pytest.approx(sample_size_cuped(sd, effect, vr) / (1 - vr), rel=1e-3)


# ---- CUPED ------------------------------------------------------------------------------
def test_cuped_matches_ols_with_arm_and_centred_covariate():
    """recapp estimates theta pooled over arms (Deng et al. 2013); ANCOVA fits it within arms: equal up to O(1/n)."""
    rng = np.random.default_rng(3)
    n_c, n_t = 400, 380
    x_c, x_t = rng.gamma(2, 1, n_c), rng.gamma(2, 1, n_t)
    y_c, y_t = 1 + 0.8 * x_c + rng.normal(0, 1, n_c), 1.3 + 0.8 * x_t + rng.normal(0, 1, n_t)
    r = compare_means_cuped(y_c, y_t, x_c, x_t)
    y, x = np.r_[y_c, y_t], np.r_[x_c, x_t]
    assert r["theta"] == pytest.approx(np.cov(y, x)[0, 1] / np.var(x, ddof=1), rel=1e-10)
    assert r["theta"] == pytest.approx(sm.OLS(y, sm.add_constant(x)).fit().params[1], rel=1e-10)
    assert cuped_theta(y, x) == pytest.approx(r["theta"], rel=1e-12)
    assert r["control"] == pytest.approx(y_c.mean() - r["theta"] * (x_c.mean() - x.mean()), rel=1e-12)
    arm = np.r_[np.zeros(n_c), np.ones(n_t)]
    fit = sm.OLS(y, sm.add_constant(np.c_[arm, x - x.mean()])).fit(cov_type="HC2")
    assert abs(r["diff"] - fit.params[1]) < 0.02 * fit.bse[1]
    assert r["se"] == pytest.approx(fit.bse[1], rel=0.02)
    lo, hi = r["diff"] - Z975 * r["se"], r["diff"] + Z975 * r["se"]      # Welch's t quantile is a little wider
    assert r["ci_low"] <= lo and r["ci_high"] >= hi and r["ci_low"] == pytest.approx(lo, abs=0.01 * r["se"])
    assert r["variance_reduction"] == pytest.approx(np.corrcoef(y, x)[0, 1] ** 2, abs=0.03)
    # No adjustment is exactly Welch's test.
    r0 = compare_means_cuped(y_c, y_t, x_c, x_t, theta=0)
    assert r0["pvalue"] == pytest.approx(stats.ttest_ind(y_t, y_c, equal_var=False).pvalue, rel=1e-8)


def test_cuped_keeps_its_level_and_narrows_the_interval():
    rng = np.random.default_rng(4)
    n_exp, n = 1000, 100
    rejected, widths, raw_widths = 0, [], []
    for _ in range(n_exp):
        x = rng.normal(0, 1, 2 * n)
        y = 0.9 * x + rng.normal(0, 0.5, 2 * n)          # A/A: no effect
        r = compare_means_cuped(y[:n], y[n:], x[:n], x[n:])
        rejected += r["pvalue"] < 0.05
        widths.append(r["ci_high"] - r["ci_low"])
        raw = compare_means(y[:n], y[n:])
        raw_widths.append(raw["ci_high"] - raw["ci_low"])
    assert rejected / n_exp <= _mc_upper(0.05, n_exp)
    # corr^2 = 0.81 / 1.06: the interval shrinks by about sqrt(1 - 0.764).
    assert np.mean(widths) / np.mean(raw_widths) == pytest.approx(np.sqrt(1 - 0.81 / 1.06), rel=0.05)


def test_analyze_cuped_rows_against_analyze_and_multi_covariate_ols():
    rng = np.random.default_rng(12)
    n = 800
    pu = pd.DataFrame({"arm": rng.choice(["control", "treatment"], n), "views": rng.poisson(4, n)})
    pu["clicks"] = rng.binomial(pu["views"], 0.1)
    pu["converted"] = rng.binomial(1, 0.1, n)
    pu["revenue"] = pu["converted"] * rng.gamma(2.0, 10.0, n)
    pu["has_pre"] = rng.binomial(1, 0.7, n)
    pu["pre_views"] = rng.poisson(5, n) * pu["has_pre"]
    pu["pre_clicks"] = rng.binomial(pu["pre_views"], 0.1)
    pu["pre_converted"] = rng.binomial(1, 0.1, n) * pu["has_pre"]
    pu["pre_revenue"] = pu["pre_converted"] * rng.gamma(2.0, 10.0, n) + 0.3 * pu["revenue"]
    plain = analyze(pu, correction="none").set_index("metric")
    both = analyze_cuped(pu, correction="none")
    none = both[both["adjustment"] == "none"].set_index("metric")
    for metric in ("ctr", "revenue_per_user"):      # the same tests as analyze
        assert none.loc[metric, "pvalue"] == pytest.approx(plain.loc[metric, "pvalue"], rel=1e-10)
        assert none.loc[metric, "ci_low"] == pytest.approx(plain.loc[metric, "ci_low"], rel=1e-10)
    # conversion: Welch on 0/1 against analyze's Wald test, equal up to n / (n - 1) (documented).
    assert none.loc["conversion", "pvalue"] == pytest.approx(plain.loc["conversion", "pvalue"], abs=5e-3)
    cup = both[(both["adjustment"] == "cuped") & (both["metric"] == "revenue_per_user")].iloc[0]
    ols = sm.OLS(pu["revenue"].to_numpy(), sm.add_constant(pu[["pre_revenue", "has_pre"]].to_numpy())).fit()
    np.testing.assert_allclose(cup["theta"], ols.params[1:], rtol=1e-10)      # pooled multi-covariate theta
    c, t = pu[pu["arm"] == "control"], pu[pu["arm"] == "treatment"]
    direct = compare_means_cuped(c["revenue"], t["revenue"], c[["pre_revenue", "has_pre"]], t[["pre_revenue", "has_pre"]])
    assert cup["pvalue"] == pytest.approx(direct["pvalue"], rel=1e-12)


def test_cuped_ratio_is_the_delta_method_at_theta_zero():
    rng = np.random.default_rng(6)
    (cl_c, v_c), (cl_t, v_t) = _clustered_ctr(rng, 250, 1), _clustered_ctr(rng, 260, 1)
    cl_c, v_c, cl_t, v_t = cl_c[:, 0], v_c[:, 0], cl_t[:, 0], v_t[:, 0]
    lin = linearize_ratio(cl_c, v_c)
    ratio, var = delta_ratio(cl_c, v_c)
    assert lin.mean() == pytest.approx(ratio, rel=1e-12)
    assert lin.var(ddof=1) / len(lin) == pytest.approx(var, rel=1e-10)
    pre_c, pre_t = v_c + rng.poisson(2, 250), v_t + rng.poisson(2, 260)
    a = compare_ratio_cuped(cl_c, v_c, cl_t, v_t, rng.binomial(pre_c, 0.1), pre_c, rng.binomial(pre_t, 0.1), pre_t, theta=0)
    b = compare_ratio(cl_c, v_c, cl_t, v_t)
    for k in ("diff", "se", "statistic", "pvalue", "ci_low", "ci_high"):
        assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-15), k
