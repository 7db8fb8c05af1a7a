"""Sequential tests, off-policy estimators and interleaving checked against published values, scipy and simulation.

Simulations have fixed seeds and tolerances of a few Monte Carlo standard errors; each also shows that the
naive rule it guards against does fail. The A/B statistics: tests/test_statistics_reference.py.
"""
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from recapp.experiment import (alpha_spent, compare_proportions, confidence_sequence, estimate, monitor, msprt_interval,
                               msprt_statistic, outcomes, peeking_simulation, preference_sequence, preference_test,
                               spending_boundaries, team_clicks, team_draft_many)


def _mc_upper(rate: float, n: int, k: float = 3.0) -> float:
    """``rate`` plus k Monte Carlo standard errors of a rejection rate over n simulations."""
    return rate + k * np.sqrt(rate * (1 - rate) / n)


# ---- sequential -----------------------------------------------------------------------------
def test_spending_boundaries_match_published_values_and_monte_carlo():
    # Lan-DeMets boundaries for 5 equally spaced looks, two-sided alpha 0.05 (gsDesign sfLDOF / sfLDPocock).
    obf = spending_boundaries(np.arange(1, 6) / 5)["z_boundary"].to_numpy()
    np.testing.assert_allclose(obf, [4.877, 3.357, 2.680, 2.290, 2.031], atol=1.5e-3)
    poc = spending_boundaries(np.arange(1, 6) / 5, spending="pocock")["z_boundary"].to_numpy()
    np.testing.assert_allclose(poc, [2.438, 2.427, 2.410, 2.397, 2.386], atol=1.5e-3)
    assert alpha_spent(1.0) == pytest.approx(0.05) and alpha_spent(0.5) == pytest.approx(
        2 * (2 - 2 * stats.norm.cdf(stats.norm.ppf(1 - 0.0125) / np.sqrt(0.5))), rel=1e-12)
    # Unequal looks: the chance of having crossed by each look, by simulating the Brownian motion, is alpha_spent.
    rng = np.random.default_rng(0)
    t = np.array([0.2, 0.45, 0.7, 0.85, 1.0])
    n = 200_000
    z = np.cumsum(rng.normal(0, 1, (n, 5)) * np.sqrt(np.diff(np.r_[0.0, t])), axis=1) / np.sqrt(t)
    for spending in ("obrien_fleming", "pocock"):
        b = spending_boundaries(t, spending=spending)
        crossed = np.logical_or.accumulate(np.abs(z) >= b["z_boundary"].to_numpy(), axis=1).mean(axis=0)
        spent = b["alpha_spent"].to_numpy()
        assert np.all(np.abs(crossed - spent) <= 4 * np.sqrt(spent * (1 - spent) / n) + 1e-5), (spending, crossed, spent)


def test_msprt_statistic_is_the_normal_mixture_likelihood_ratio():
    for diff, v, n, tau in [(0.3, 2.0, 50, 0.2), (-0.05, 0.5, 400, 0.1), (0.0, 1.0, 10, 1.0)]:
        s = np.sqrt(v / n)
        num = integrate.quad(lambda th: stats.norm.pdf(diff, th, s) * stats.norm.pdf(th, 0, tau), -10, 10, points=[0, diff])[0]
        assert msprt_statistic(diff, v, n, tau) == pytest.approx(num / stats.norm.pdf(diff, 0, s), rel=1e-7)
        low, high = msprt_interval(diff, v / n, tau, alpha=0.05)
        for end in (low, high):     # the interval ends are where the test of H0: difference = end just rejects
            assert msprt_statistic(diff - end, v, n, tau) == pytest.approx(20.0, rel=1e-8)


def test_msprt_keeps_its_level_under_continuous_peeking_and_a_peeked_fixed_test_does_not():
    rng = np.random.default_rng(7)
    n_exp, looks = 2000, 100
    sigma = 1.0
    d = rng.normal(0, sigma, (n_exp, looks, 20)) - rng.normal(0, sigma, (n_exp, looks, 20))   # A/A pairs, 20 per look
    n = 20 * np.arange(1, looks + 1)
    diff = np.cumsum(d.sum(axis=2), axis=1) / n
    pvalues = np.minimum.accumulate(1 / msprt_statistic(diff, 2 * sigma**2, n, tau=0.2), axis=1)
    assert (pvalues[:, -1] <= 0.05).mean() <= _mc_upper(0.05, n_exp)
    naive = 2 * stats.norm.sf(np.abs(diff) / np.sqrt(2 * sigma**2 / n))
    assert (naive[:, -1] < 0.05).mean() == pytest.approx(0.05, abs=3 * np.sqrt(0.05 * 0.95 / n_exp))
    assert (naive < 0.05).any(axis=1).mean() > 0.2      # stopping at the first p < 0.05 of 100 looks
    low, high = confidence_sequence(diff, 2 * sigma**2 / n, tau=0.2, axis=1)
    assert ((low > 0) | (high < 0)).any(axis=1).mean() <= _mc_upper(0.05, n_exp)
    # The sequence excludes 0 exactly when the always-valid p-value is <= alpha.
    assert np.array_equal((low[:, -1] > 0) | (high[:, -1] < 0), pvalues[:, -1] <= 0.05)


def test_peeking_simulation_separates_the_rules():
    table = peeking_simulation(n_experiments=2000, n_per_arm=5000, n_looks=20, random_state=1).set_index("rule")
    for rule in ("fixed horizon", "O'Brien-Fleming", "mSPRT"):
        assert table.loc[rule, "ci_low"] <= 0.05, rule
    assert table.loc["naive peeking", "ci_low"] > 0.1
    # With a real lift each valid rule has power.
    power = peeking_simulation(n_experiments=500, n_per_arm=5000, n_looks=10, lift=0.2, random_state=2).set_index("rule")
    assert power.loc["O'Brien-Fleming", "rejection_rate"] > 0.5 and power.loc["mSPRT", "rejection_rate"] > 0.2


# ---- off-policy evaluation ----------------------------------------------------------------
def test_ope_estimators_are_unbiased_and_their_bootstrap_se_is_the_spread():
    rng = np.random.default_rng(0)
    q = np.array([[0.1, 0.3, 0.5, 0.2], [0.6, 0.2, 0.1, 0.4]])         # true click rates: context x action
    p0 = np.array([[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4]])        # logging policy
    pe = np.array([[0.1, 0.1, 0.7, 0.1], [0.7, 0.1, 0.1, 0.1]])        # target policy
    qhat = q + np.array([[0.05, -0.05, 0.1, 0.0], [-0.1, 0.05, 0.0, 0.05]])   # a wrong reward model
    value = 0.5 * (pe * q).sum()
    n, reps = 300, 250
    est, se, covered = {}, {}, {}
    for rep in range(reps):
        x = rng.integers(0, 2, n)
        a = (rng.random(n)[:, None] > np.cumsum(p0[x], axis=1)).sum(axis=1)
        r = (rng.random(n) < q[x, a]).astype(float)
        tab = estimate(r, p0[x, a], pe[x, a], q_logged=qhat[x, a], q_expected=(pe[x] * qhat[x]).sum(axis=1),
                       n_bootstrap=200, random_state=rep)
        for row in tab.itertuples():
            est.setdefault(row.estimator, []).append(row.estimate)
            se.setdefault(row.estimator, []).append(row.se)
            covered.setdefault(row.estimator, []).append(row.ci_low <= value <= row.ci_high)
    for e in ("IPW", "DR", "SNIPW"):
        values = np.array(est[e])
        assert abs(values.mean() - value) < 4 * values.std(ddof=1) / np.sqrt(reps), e   # unbiased (SNIPW: O(1/n))
        assert np.mean(se[e]) == pytest.approx(values.std(ddof=1), rel=0.15), e
        assert 0.9 <= np.mean(covered[e]) <= 0.985, e
    # DM carries the model's bias (0.5 * sum(pe * (qhat - q)) = 0.005) and its interval ignores it.
    assert np.mean(est["DM"]) == pytest.approx(value + 0.5 * (pe * (qhat - q)).sum(), abs=3e-4)


# ---- interleaving ---------------------------------------------------------------------------
def test_preference_test_is_scipys_sign_test():
    for wa, wb, ties in [(40, 60, 10), (5, 0, 3), (500, 530, 200), (0, 0, 4)]:
        r = preference_test(wa, wb, ties, n_boot=200)
        expected = stats.binomtest(wb, wa + wb, 0.5).pvalue if wa + wb else 1.0
        assert r["pvalue"] == pytest.approx(expected, rel=1e-12)
        if wa + wb + ties:
            assert r["preference"] == pytest.approx((wb - wa) / (wa + wb + ties))


def test_team_draft_credit_is_fair_and_the_sequential_verdict_keeps_its_level():
    rng = np.random.default_rng(8)
    n, k = 20_000, 5
    a = np.tile(np.arange(10), (n, 1))
    b = np.tile(np.arange(10)[::-1], (n, 1))
    merged, teams = team_draft_many(a, b, k, rng=1)
    # Team draft: team sizes differ by at most one, and each team's picks keep its own ranking order.
    n_b = (teams == "B").sum(axis=1)
    assert np.all(np.abs(2 * n_b - k) <= 1)
    for src, team in ((a[0], "A"), (b[0], "B")):
        rank = {item: i for i, item in enumerate(src)}
        for row in range(50):
            picked = [rank[i] for i, t in zip(merged[row], teams[row]) if t == team]
            assert picked == sorted(picked)
    # Clicks that depend on position only cannot prefer either ranker.
    clicks = (rng.random((n, k)) < np.array([0.5, 0.3, 0.2, 0.1, 0.05])).astype(int)
    wa, wb, ties = outcomes(*team_clicks(teams, clicks))
    assert preference_test(wa, wb, ties, n_boot=0)["pvalue"] > 0.001
    # Under the null, with 50 looks, the always-valid verdict keeps its level; a peeked sign test does not.
    n_exp, n_looks = 2000, 50
    cum = np.cumsum(rng.multinomial(40, [0.35, 0.35, 0.3], size=(n_exp, n_looks)), axis=1)
    res = preference_sequence(cum[..., 0], cum[..., 1], cum[..., 2])
    assert (res["verdict"][:, -1] != 0).mean() <= _mc_upper(0.05, n_exp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peeked = [any(stats.binomtest(int(cum[e, j, 1]), int(cum[e, j, 0] + cum[e, j, 1])).pvalue < 0.05 for j in range(4, 50, 5))
                  for e in range(200)]
    assert np.mean(peeked) > 0.1


def test_monitor_does_not_stop_on_one_user_per_arm():
    """0 of 1 against 1 of 1: the Wald variance is 0; before, z was inf and the always-valid p-value 1e-305 for good."""
    looks = pd.DataFrame({"users_c": [1, 50, 100], "conversions_c": [0, 5, 10],
                          "users_t": [1, 50, 100], "conversions_t": [1, 5, 10]})
    out = monitor(looks, planned_users=1000, baseline_rate=0.1)
    assert np.isfinite(out["z"]).all()
    assert out.loc[0, "z"] == pytest.approx(1 / np.sqrt(0.25 * 2), rel=1e-12)     # pooled rate 1/2 under the null
    assert out.loc[0, "naive_p"] == pytest.approx(2 * stats.norm.sf(out.loc[0, "z"]), rel=1e-12)
    assert (out["msprt_p"] > 0.5).all()
    assert not out["obf_reject"].any() and not out["msprt_reject"].any() and not out["stop"].any()


def test_monitor_keeps_the_wald_and_plug_in_numbers_where_they_are_defined():
    rng = np.random.default_rng(9)
    users = np.arange(1, 9) * 125
    looks = pd.DataFrame({"users_c": users, "conversions_c": np.cumsum(rng.binomial(125, 0.1, 8)),
                          "users_t": users, "conversions_t": np.cumsum(rng.binomial(125, 0.12, 8))})
    out = monitor(looks, planned_users=1000, tau=0.01)
    xc, xt, n = looks["conversions_c"].to_numpy(float), looks["conversions_t"].to_numpy(float), users.astype(float)
    ref = compare_proportions(xc, n, xt, n)
    np.testing.assert_allclose(out["z"], ref["statistic"], rtol=1e-12)
    np.testing.assert_allclose(out["naive_p"], ref["pvalue"], rtol=1e-12)
    pc, pt = xc / n, xt / n
    lam = msprt_statistic(pt - pc, pc * (1 - pc) + pt * (1 - pt), n, 0.01)
    np.testing.assert_allclose(out["msprt_p"], np.minimum(1, np.minimum.accumulate(1 / lam)), rtol=1e-12)
    np.testing.assert_allclose(out["z_boundary"], spending_boundaries(n / 1000)["z_boundary"], rtol=1e-12)


def test_msprt_keeps_its_level_with_a_few_users_per_look():
    """Two users per arm per look: a look with 0 of 2 against 2 of 2 used to reject with certainty (8.5% of these A/A runs)."""
    table = peeking_simulation(n_experiments=2000, n_per_arm=40, n_looks=20, rate=0.3, random_state=0).set_index("rule")
    assert table.loc["mSPRT", "rejection_rate"] <= _mc_upper(0.05, 2000)
    assert table.loc["naive peeking", "rejection_rate"] > 0.2
