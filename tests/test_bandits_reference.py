"""Bandit policies, assignment, the live A/B verdict and REINFORCE, checked against textbook formulas and scipy.

The references are restated here in a few lines of numpy (Open Bandit
Pipeline's EpsilonGreedy, BernoulliTS and LinUCB follow the same formulas),
on small fixed sequences of contexts and rewards.
"""
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from recapp.experiment import ABSimulation, DQNReranker, RandomPolicy, ShopScenario
from recapp.experiment.abtest import assign, delta_ratio, hash_unit, srm_check
from recapp.experiment.bandits import UCB1, EpsilonGreedy, LinUCB, ThompsonSampling
from recapp.experiment.reinforce import ReinforceReRanker
from recapp.experiment.sequential import msprt_interval, msprt_statistic
from recapp.experiment.simulator import Environment

N_ITEMS, D = 6, 3
X = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0.5, 0, 1]], dtype=float)


def _env(n_items=N_ITEMS, k=2):
    return Environment(item_ids=np.arange(n_items) * 10, user_ids=np.arange(len(X)), prices=np.ones(n_items), k=k,
                       context=lambda u: X[np.asarray(u)], n_context=D)


@pytest.fixture(scope="module")
def log():
    """A fixed log of 60 impressions: every item shown at least once, click rates rising with the item."""
    rng = np.random.default_rng(5)
    users = rng.integers(0, len(X), 60)
    items = np.r_[np.arange(N_ITEMS), rng.integers(0, N_ITEMS, 54)]
    clicks = (rng.random(60) < (items + 1) / 8).astype(float)
    feedback = pd.DataFrame({"user_id": users, "item_id": items * 10, "click": clicks})
    shows = np.bincount(items, minlength=N_ITEMS).astype(float)
    rewards = np.bincount(items, weights=clicks, minlength=N_ITEMS)
    return feedback, users, items, clicks, shows, rewards


def _all(n):
    return np.broadcast_to(np.arange(N_ITEMS), (n, N_ITEMS))


# ---- the bandit policies ---------------------------------------------------------------------------
def test_linucb_is_disjoint_ridge_regression_with_the_ucb_bonus(log):
    feedback, users, items, clicks, _, _ = log
    pol = LinUCB(alpha=0.7, l2=2.0)
    pol.reset(_env())
    pol.observe(feedback)
    A, b = np.stack([2.0 * np.eye(D)] * N_ITEMS), np.zeros((N_ITEMS, D))
    for u, i, r in zip(users, items, clicks):                 # Li et al. 2010, Algorithm 1, one item per arm
        A[i] += np.outer(X[u], X[u])
        b[i] += r * X[u]
    np.testing.assert_allclose(pol.A_, A)
    np.testing.assert_allclose(pol.b_, b)
    q = np.arange(len(X))
    ref = np.array([[X[u] @ np.linalg.solve(A[i], b[i]) + 0.7 * np.sqrt(X[u] @ np.linalg.solve(A[i], X[u]))
                     for i in range(N_ITEMS)] for u in q])
    np.testing.assert_allclose(pol._scores(q, _all(len(q))), ref)
    np.testing.assert_array_equal(pol.slates(q, 2), np.argsort(-ref, axis=1)[:, :2] * 10)


def test_ucb1_bonus_uses_all_impressions_and_the_items_own(log):
    feedback, *_, shows, rewards = log
    pol = UCB1()
    pol.reset(_env())
    pol.observe(feedback)
    ref = rewards / shows + np.sqrt(2 * np.log(len(feedback)) / shows)
    np.testing.assert_allclose(pol._scores(np.arange(3), _all(3)), np.tile(ref, (3, 1)))
    np.testing.assert_array_equal(pol.slates(np.arange(3), 2), np.tile(np.argsort(-ref)[:2] * 10, (3, 1)))


@pytest.mark.parametrize("make", [lambda: EpsilonGreedy(0.0), lambda: UCB1()], ids=["epsilon-greedy", "UCB1"])
def test_never_shown_items_are_tried_in_random_order_across_a_batch(make):
    # +inf scores used to defeat the random tie-breaking: every shopper of a batch got items 0 and 1, whatever the seed.
    env = _env(n_items=10)
    firsts = set()
    for seed in range(4):
        pol = make()
        pol.random_state = seed
        pol.reset(env)
        s = pol.slates(np.arange(50) % len(X), 2)
        assert len(np.unique(s)) == 10                  # one batch of 50 slates spreads over all 10 unplayed items
        firsts.add(tuple(s[0]))
    assert len(firsts) > 1
    # Once shown, an item competes on its score again: the unplayed ones still come first.
    pol = make()
    pol.reset(env)
    pol.observe(pd.DataFrame({"item_id": [0, 10], "click": [1.0, 1.0]}))
    assert not np.isin(pol.slates(np.arange(50) % len(X), 2), [0, 10]).any()


def test_thompson_ranks_by_one_draw_from_beta_one_plus_clicks_one_plus_misses():
    pol = ThompsonSampling(random_state=1)
    pol.reset(_env(n_items=2, k=1))
    pol.observe(pd.DataFrame({"item_id": [0] * 10 + [10] * 10, "click": [1.0] * 6 + [0.0] * 4 + [1.0] * 3 + [0.0] * 7}))
    n = 40_000
    first = pol.slates(np.zeros(n, dtype=int), 1)[:, 0]
    # P(Beta(7, 5) > Beta(4, 8)); without the +1 prior it would be P(Beta(6, 4) > Beta(3, 7)) = 0.923.
    p = integrate.quad(lambda x: stats.beta.pdf(x, 7, 5) * stats.beta.cdf(x, 4, 8), 0, 1)[0]
    share = np.mean(first == 0)
    assert abs(share - p) < 4 * np.sqrt(p * (1 - p) / n), (share, p)


def test_epsilon_greedy_explores_an_epsilon_share_of_slates_uniformly(log):
    feedback, *_, shows, rewards = log
    pol = EpsilonGreedy(0.25, random_state=1)
    pol.reset(_env())
    pol.observe(feedback)
    n = 20_000
    s = pol.slates(np.arange(n) % len(X), 2)
    greedy = np.argsort(-(rewards / shows))[:2] * 10
    # A random ordered pair of 6 items is the greedy one 1 time in 30.
    expected = 0.25 * (1 - 1 / 30)
    share = np.mean((s != greedy).any(axis=1))
    assert abs(share - expected) < 4 * np.sqrt(expected * (1 - expected) / n), (share, expected)
    explored = s[(s != greedy).any(axis=1)]
    counts = np.bincount(explored.ravel() // 10, minlength=N_ITEMS)
    assert stats.chisquare(counts[~np.isin(np.arange(N_ITEMS) * 10, greedy)]).pvalue > 1e-3


# ---- assignment -------------------------------------------------------------------------------------
def test_hash_unit_is_uniform_and_salts_are_independent():
    ids = np.arange(100_000)
    u = hash_unit(ids, "s1")
    assert u.min() >= 0 and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert stats.chisquare(np.bincount((u * 100).astype(int), minlength=100)).pvalue > 1e-3
    a1, a2 = assign(ids, salt="s1"), assign(ids, salt="s2")
    assert (assign(ids[::-1], salt="s1").loc[ids] == a1).all()            # stable, whatever the order
    agree = np.mean(a1.to_numpy() == a2.to_numpy())
    assert abs(agree - 0.5) < 4 * np.sqrt(0.25 / len(ids))


def test_weights_are_honoured_and_srm_check_is_scipys_chisquare():
    ids = np.arange(100_000)
    a = assign(ids, arms=("a", "b", "c"), weights=[0.2, 0.3, 0.5], salt="w")
    counts = a.value_counts().reindex(["a", "b", "c"]).to_numpy()
    ref = stats.chisquare(counts, np.array([0.2, 0.3, 0.5]) * len(ids))
    assert ref.pvalue > 1e-3
    res = srm_check(a, weights={"a": 0.2, "b": 0.3, "c": 0.5})
    assert res.statistic == pytest.approx(ref.statistic) and res.pvalue == pytest.approx(ref.pvalue)
    ref = stats.chisquare([700, 300], [650, 350])
    res = srm_check(pd.Series({"b": 300, "a": 700}), weights={"a": 0.65, "b": 0.35})
    assert res.statistic == pytest.approx(ref.statistic) and res.pvalue == pytest.approx(ref.pvalue)


def test_srm_check_counts_an_assignment_with_numbered_arms():
    # Arms 0 and 1 were read as counts (one "arm" of 0 or 1 users per user) and a 1,000 / 1,300 split passed as ok.
    arms = pd.Series(np.r_[np.zeros(1000, int), np.ones(1300, int)], index=pd.RangeIndex(2300, name="user_id"), name="arm")
    for observed in (arms, arms.rename(None), arms.rename_axis(None)):
        res = srm_check(observed)
        assert res.counts.to_dict() == {0: 1000, 1: 1300}
        assert res.pvalue == pytest.approx(stats.chisquare([1000, 1300]).pvalue) and res.mismatch
    assert srm_check(pd.Series({0: 1000, 1: 1300})).counts.to_dict() == {0: 1000, 1: 1300}     # counts stay counts


# ---- the live A/B verdict -------------------------------------------------------------------------------
def test_live_ab_looks_are_the_msprt_formulas_and_its_verdict_follows_them(shop):
    ab = ABSimulation(ShopScenario(shop, shop.events), {"r1": RandomPolicy(random_state=1), "r2": RandomPolicy(random_state=2)},
                      random_state=0, min_users=10)
    h = pd.DataFrame([ab.step() for _ in range(40)])
    looked = h["msprt_p"].notna().to_numpy()
    assert looked.sum() > 30
    # Each arm's band is ctr -/+ 1.96 sd: the variance of B - A is the sum of the two.
    var = (((h["high_A"] - h["low_A"]) / 3.92) ** 2 + ((h["high_B"] - h["low_B"]) / 3.92) ** 2).to_numpy()[looked]
    diff = h["diff"].to_numpy()[looked]
    p = np.minimum(1.0, np.minimum.accumulate(1.0 / msprt_statistic(diff, var, 1.0, ab.tau)))
    low, high = msprt_interval(diff, var, ab.tau, ab.alpha)
    np.testing.assert_allclose(h["msprt_p"].to_numpy()[looked], p)
    np.testing.assert_allclose(h["cs_low"].to_numpy()[looked], np.maximum.accumulate(low))
    np.testing.assert_allclose(h["cs_high"].to_numpy()[looked], np.minimum.accumulate(high))
    assert (h["verdict"].notna().to_numpy()[looked] == (p <= ab.alpha)).all()


def test_the_live_ab_rule_keeps_a_a_false_positives_below_alpha_over_many_looks():
    # The rule ABSimulation applies at each look (delta-method CTR per arm, mSPRT with n = 1 on the variance of
    # B - A, running p-value and interval), on 300 simulated A/A runs watched at 98 looks each.
    rng = np.random.default_rng(0)
    runs, users, alpha, tau = 300, 2000, 0.05, 0.01

    def arm():
        views = 1 + rng.poisson(9, (users, runs))
        return rng.binomial(views, rng.beta(0.05, 4.95, (users, runs))).astype(float), views.astype(float)

    (ca, va), (cb, vb) = arm(), arm()
    p = np.ones(runs)
    low, high = np.full(runs, -np.inf), np.full(runs, np.inf)
    peeked = np.zeros(runs, bool)
    for n in range(50, users + 1, 20):
        (ra, sa), (rb, sb) = delta_ratio(ca[:n], va[:n]), delta_ratio(cb[:n], vb[:n])
        diff, var = rb - ra, sa + sb
        ok = (ca[:n].sum(0) > 0) & (cb[:n].sum(0) > 0) & (var > 0)
        p[ok] = np.minimum(p[ok], 1.0 / msprt_statistic(diff[ok], var[ok], 1.0, tau))
        lo, hi = msprt_interval(diff[ok], var[ok], tau, alpha)
        low[ok], high[ok] = np.maximum(low[ok], lo), np.minimum(high[ok], hi)
        peeked[ok] |= np.abs(diff[ok]) > 1.96 * np.sqrt(var[ok])
    false_winner = (low > 0) | (high < 0)
    assert (false_winner == (p <= alpha)).all()
    assert false_winner.mean() <= alpha + 2 * np.sqrt(alpha * (1 - alpha) / runs)
    assert peeked.mean() > 2 * alpha                      # the same looks read at fixed-horizon level are not safe


# ---- REINFORCE ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("paying", [10, 20])
def test_reinforce_learns_the_arm_that_always_pays(paying):
    env = Environment(item_ids=np.array([10, 20]), user_ids=np.arange(8), prices=np.ones(2), k=1,
                      context=lambda u: np.ones((len(u), 1)), n_context=1)
    pol = ReinforceReRanker(lr=0.1, random_state=0)
    pol.reset(env)
    users = np.arange(8)
    shares = []
    for _ in range(40):
        shown = pol.slates(users, 1)[:, 0]
        pol.observe(pd.DataFrame({"request": np.arange(8), "position": 1, "item_id": shown, "user_id": users,
                                  "click": (shown == paying).astype(float)}))
        shares.append(np.mean(shown == paying))
    assert shares[0] < 0.9 and np.mean(shares[-10:]) > 0.95, shares


@pytest.mark.parametrize("make", [UCB1, ThompsonSampling, ReinforceReRanker])
@pytest.mark.parametrize("seed", [-1, 1.5, "3"])
def test_a_bad_seed_is_refused_when_the_policy_is_built(make, seed):
    # numpy refused these only at reset, naming neither the argument nor the value.
    with pytest.raises(ValueError, match=r"random_state=.* is not accepted"):
        make(random_state=seed)


@pytest.mark.parametrize("policy", [ReinforceReRanker, DQNReranker])
def test_torch_policies_refuse_a_generator_they_cannot_seed_torch_with(policy):
    with pytest.raises(ValueError, match="random_state=Generator"):
        policy(random_state=np.random.default_rng(0))
    assert UCB1(random_state=np.random.default_rng(0)).random_state is not None     # the count-based ones take one
