"""Bad input to the bandits, the DQN, the shopper simulator and the re-rankers is refused by name, and learns nothing."""
import numpy as np
import pandas as pd
import pytest

from recapp import rerank
from recapp.experiment.bandits import (
    UCB1,
    EpsilonGreedy,
    LinUCB,
    ThompsonSampling,
)
from recapp.experiment.dqn import DQNReranker
from recapp.experiment.reinforce import ReinforceReRanker
from recapp.experiment.simulator import ShopperSimulator

U = np.random.default_rng(0).standard_normal((20, 6))


@pytest.fixture(scope="module")
def env():
    return ShopperSimulator(U, k=2).environment()


def _feedback(item=1, click=1.0, purchase=0.0):
    return pd.DataFrame({"request": [0], "user_id": [0], "item_id": [item], "position": [1], "click": [click],
                         "cart": [0.0], "purchase": [purchase], "revenue": [0.0], "timestamp": [0.0]})


POLICIES = [UCB1, EpsilonGreedy, ThompsonSampling, LinUCB, lambda: DQNReranker(device="cpu")]


def _untouched(pol):
    assert not pol.shows_.any() and not pol.rewards_.any() and pol.t_ == 0
    if isinstance(pol, LinUCB):
        assert np.array_equal(pol.A_, np.tile(pol.l2 * np.eye(pol.A_.shape[1]), (len(pol.A_), 1, 1))) and not pol.b_.any()
    if isinstance(pol, DQNReranker):
        assert not pol.counts_.any()


@pytest.mark.parametrize("make", POLICIES)
def test_feedback_for_an_item_outside_the_catalogue_is_refused(env, make):
    pol = make()
    pol.reset(env)
    with pytest.raises(ValueError, match=r"item_id \[999\] outside the catalogue"):
        pol.observe(_feedback(item=999))
    _untouched(pol)                      # not credited to the last item (numpy's index -1)


@pytest.mark.parametrize("make", POLICIES)
@pytest.mark.parametrize("click", [np.nan, np.inf, -1.0, 2.0])
def test_a_reward_that_is_not_in_0_1_is_refused(env, make, click):
    pol = make()
    pol.reset(env)
    with pytest.raises(ValueError, match=r"feedback\['click'\] holds .* at row 0"):
        pol.observe(_feedback(click=click))
    _untouched(pol)


def test_the_dqn_checks_the_columns_it_counts_and_weighs(env):
    pol = DQNReranker(device="cpu", reward_weights={"click": 0.1, "purchase": 1.0})
    pol.reset(env)
    with pytest.raises(ValueError, match=r"feedback\['purchase'\] holds nan"):
        pol.observe(_feedback(purchase=np.nan))
    _untouched(pol)


@pytest.mark.parametrize("make,match", [
    (lambda: UCB1(c=-2.0), "c=-2.0"), (lambda: UCB1(c=np.nan), "c=nan"),
    (lambda: ThompsonSampling(prior_a=0), "prior_a=0"), (lambda: ThompsonSampling(prior_b=-1.0), "prior_b"),
    (lambda: LinUCB(l2=0), "l2=0"), (lambda: LinUCB(alpha=np.nan), "alpha=nan"), (lambda: LinUCB(alpha=-1.0), "alpha"),
    (lambda: ReinforceReRanker(hidden=0), "hidden"), (lambda: ReinforceReRanker(lr=-1.0), "lr"),
    (lambda: ReinforceReRanker(entropy=-0.1), "entropy"), (lambda: ReinforceReRanker(baseline_decay=2.0), "baseline_decay"),
    (lambda: UCB1(n_candidates=0), "n_candidates"), (lambda: DQNReranker(n_candidates=2.5, device="cpu"), "n_candidates"),
])
def test_bandit_parameters_are_checked_when_built(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_slate_larger_than_the_candidates_is_refused(env):
    pol = UCB1()
    pol.reset(env)
    for k in (0, 7, 2.5):
        with pytest.raises(ValueError, match=rf"k={k!r} is not accepted.*\[1, 6\]"):
            pol.slates(np.array([0, 1]), k)
    assert pol.slates(np.array([0, 1]), 6).shape == (2, 6)


def _with(a, i, v):
    a = np.array(a, dtype=float)
    a.flat[i] = v
    return a


@pytest.mark.parametrize("kwargs,match", [
    ({"utility": _with(U, 3, np.nan)}, r"utility\[0, 3\] = nan is not accepted"),
    ({"utility": U[0]}, "utility must be 2-D"),
    ({"utility": None, "user_factors": _with(U, 0, np.inf), "item_factors": np.eye(6)}, r"user_factors\[0, 0\] = inf"),
    ({"utility": None, "user_factors": U, "item_factors": np.ones((6, 2))}, "item_factors has shape"),
    ({"utility": None, "user_factors": U, "item_factors": np.eye(6), "item_bias": np.zeros(5)}, "item_bias has shape"),
    ({"choice_scale": np.nan}, "choice_scale=nan"), ({"position_decay": -1.0}, "position_decay"),
    ({"cart_rate": 2.0}, "cart_rate=2.0"), ({"purchase_rate": 5}, "purchase_rate=5"),
    ({"funnel_slope": np.nan}, "funnel_slope=nan"), ({"price_sensitivity": np.inf}, "price_sensitivity"),
    ({"prices": -np.ones(6)}, r"prices\[0\] = -1.0 is not accepted"), ({"prices": np.zeros(6)}, r"prices\[0\] = 0.0"),
    ({"prices": np.ones(3)}, r"prices has shape \(3,\); expected \(6,\)"),
    ({"activity": np.ones(3)}, r"activity has shape \(3,\); expected \(20,\)"),
    ({"activity": np.zeros(20)}, "activity is all zero"), ({"activity": _with(np.ones(20), 4, -1)}, r"activity\[4\] = -1.0 is not accepted"),
    ({"user_context": np.ones((19, 2))}, "user_context has 19 rows"), ({"k": 2.5}, "k=2.5"),
    ({"session_length": np.nan}, "session_length=nan"), ({"drift": -1.0}, "drift=-1.0"),
    ({"drift_dim": 0}, "drift_dim"), ({"step_seconds": 0}, "step_seconds"),
])
def test_simulator_arguments_are_checked_when_built(kwargs, match):
    args = {"utility": U, "k": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        ShopperSimulator(args.pop("utility"), **args)


def test_the_context_of_an_unknown_shopper_is_refused(env):
    with pytest.raises(KeyError, match="unknown user"):
        env.context(np.array([0, 999]))
    assert env.context(np.array([19])).shape == (1, 1)


C, S = np.array([10, 11, 12, 13]), np.array([0.9, 0.8, 0.7, 0.1])
CATS = np.array([[1, 0], [0, 1], [1, 0], [0, 1.0]])


@pytest.mark.parametrize("call", [
    lambda k: rerank.top_k(S, k),
    lambda k: rerank.mmr(C, S, np.eye(4), k, lam=1.0), lambda k: rerank.mmr(C, S, np.eye(4), k, lam=0.5),
    lambda k: rerank.calibrated(C, S, CATS, np.array([0.5, 0.5]), k, lam=0.0),
    lambda k: rerank.calibrated(C, S, CATS, np.array([0.5, 0.5]), k, lam=0.5),
    lambda k: rerank.exposure_aware(C, S, np.array([1, 0, 1, 0], bool), k, beta=0.0),
    lambda k: rerank.exposure_aware(C, S, np.array([1, 0, 1, 0], bool), k, beta=0.5),
])
def test_rerank_k_must_be_a_whole_number_at_least_0(call):
    for k in (-1, 2.5):
        with pytest.raises(ValueError, match=rf"k={k!r} is not accepted; it must be an integer >= 0"):
            call(k)
    assert len(call(0)) == 0 and len(call(np.int64(2))) == 2


def test_mmr_refuses_a_similarity_that_is_not_finite():
    rel = np.array([4.0, 3.9, 2.0, 1.0])
    sim = np.eye(4)
    sim[0, 1] = sim[1, 0] = 0.9
    assert rerank.mmr(C, rel, sim, 3, lam=0.5).tolist() == [10, 12, 11]
    # A NaN made the least relevant candidate come second, with no error.
    sim[0, 3] = sim[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"similarity has 2 value\(s\) that are not finite numbers; the first is nan "
                                         r"at row 0, column 3 \(candidates 10 and 13\)"):
        rerank.mmr(C, rel, sim, 3, lam=0.5)


def test_mmr_refuses_a_similarity_of_the_wrong_shape_and_duplicate_candidates():
    with pytest.raises(ValueError, match=r"similarity has shape \(6, 6\); expected .* \(4, 4\)"):
        rerank.mmr(C, S, np.eye(6), 3, lam=0.5)
    dup = np.array([10, 10, 11])
    with pytest.raises(ValueError, match="candidates hold 10 more than once"):
        rerank.mmr(dup, np.array([0.9, 0.9, 0.1]), np.eye(3), 3, lam=0.5)
    with pytest.raises(ValueError, match="candidates hold 10 more than once"):
        rerank.calibrated(dup, np.ones(3), np.ones((3, 2)), np.ones(2), 2)
    with pytest.raises(ValueError, match="candidates hold 10 more than once"):
        rerank.exposure_aware(dup, np.ones(3), np.ones(3, bool), 2)


@pytest.mark.parametrize("alpha", [0.0, -1.0, 2.0, np.nan])
def test_calibration_alpha_must_lie_in_0_1(alpha):
    with pytest.raises(ValueError, match=r"alpha=.* it must be in \(0, 1\]"):
        rerank.kl_divergence([0.5, 0.5], [1.0, 0.0], alpha=alpha)
    with pytest.raises(ValueError, match=r"alpha=.* it must be in \(0, 1\]"):
        rerank.calibrated(C, S, CATS, np.array([0.5, 0.5]), 3, alpha=alpha)
    assert np.isfinite(rerank.kl_divergence([0.5, 0.5], [1.0, 0.0], alpha=1.0))


@pytest.mark.parametrize("p,bad", [(np.array([np.nan, 1.0]), "nan"), (np.array([-1.0, 2.0]), "-1.0"),
                                   (np.array([[1.0, 0.0], [np.nan, 1.0]]), "nan")])
def test_calibrated_refuses_a_user_distribution_that_is_not_finite_and_non_negative(p, bad):
    with pytest.raises(ValueError, match=rf"user_history_categories holds {bad} at position"):
        rerank.calibrated(C, S, CATS, p, 3)
