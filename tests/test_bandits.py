"""Bandit and RL policies in the simulator: the documented regret ordering, and what each policy learns."""
import numpy as np
import pandas as pd
import pytest

from recapp.experiment.bandits import (
    DOCUMENTED_SETTING,
    UCB1,
    EpsilonGreedy,
    LinUCB,
    RandomPolicy,
    ThompsonSampling,
    bandit_simulator,
    compare_policies,
)
from recapp.experiment.reinforce import ReinforceReRanker
from recapp.experiment.simulator import RecommenderPolicy
from recapp.models import EASE


@pytest.fixture(scope="module")
def setting():
    return bandit_simulator(random_state=0, return_shop=True)


def test_thompson_and_linucb_beat_random_and_epsilon_greedy(setting):
    sim, _ = setting
    policies = {"random": RandomPolicy(), "epsilon-greedy": EpsilonGreedy(0.1), "Thompson": ThompsonSampling(),
                "LinUCB": LinUCB(alpha=0.3)}
    summary, curves = compare_policies(sim, policies, **DOCUMENTED_SETTING)
    regret = summary.set_index("policy")["regret"]
    for good in ("Thompson", "LinUCB"):
        for baseline in ("random", "epsilon-greedy"):
            assert regret[good] < regret[baseline], (good, baseline, regret.to_dict())
    # Regret curves are cumulative, so they only go up; each policy has one.
    assert set(curves["arm"]) == set(policies)
    assert all((np.diff(g["cumulative_regret"]) >= -1e-9).all() for _, g in curves.groupby("arm"))
    # Learning shows as a falling regret rate: the last quarter costs less per slate than the first.
    for name in ("Thompson", "LinUCB"):
        g = curves[curves["arm"] == name]
        r, n = g["cumulative_regret"].to_numpy(), g["slates"].to_numpy()
        q = len(r) // 4
        assert (r[-1] - r[-q]) / (n[-1] - n[-q]) < (r[q] - r[0]) / (n[q] - n[0])


def test_linucb_personalises_by_segment(setting):
    sim, shop = setting
    pol = LinUCB(alpha=0.3)
    sim.run(pol, n_steps=200, sessions_per_step=50)
    segments = shop.users.groupby("favorite_category")["user_id"].first().to_numpy()
    slates = pol.slates(segments, 3)
    # Shoppers of different segments get different top items...
    assert len({tuple(s) for s in slates}) >= len(segments) // 2
    # ...that they like more than the items a non-contextual policy would show everyone.
    z = sim.utilities(segments)
    idx = pd.Index(sim.item_ids).get_indexer(slates.ravel()).reshape(slates.shape)
    mine = np.take_along_axis(z, idx, axis=1).mean()
    assert mine > z.mean() + 0.5


def test_thompson_concentrates_on_good_items(setting):
    sim, _ = setting
    pol = ThompsonSampling()
    sim.run(pol, n_steps=300, sessions_per_step=50)
    est = pol.item_estimates()
    # Items shown most are the ones shoppers like most on average (weighted by how often they come).
    appeal = (sim.activity[:, None] * np.exp(sim.utilities())).sum(axis=0)
    top_shown = est.nlargest(5, "shows")["item_id"].to_numpy()
    assert np.mean(np.isin(top_shown, np.argsort(-appeal)[:10])) >= 0.6
    assert est["shows"].min() >= 1                 # yet every item was tried


def test_ucb1_and_epsilon_greedy_try_everything(setting):
    sim, _ = setting
    for pol in (UCB1(), EpsilonGreedy(0.1)):
        sim.run(pol, n_steps=30, sessions_per_step=50)
        assert (pol.shows_ > 0).all()


def test_bandits_rerank_a_recommenders_candidates(setting):
    sim, shop = setting
    ease = EASE(l2=100.0).fit(shop.events)
    pol = ThompsonSampling(candidates=ease, n_candidates=8)
    res = sim.run(pol, n_steps=10, sessions_per_step=30)
    cands = ease.recommend(res.impressions["user_id"].unique(), k=8, exclude_seen=False)
    allowed = set(zip(cands["user_id"], cands["item_id"]))
    assert all((u, i) in allowed for u, i in zip(res.impressions["user_id"], res.impressions["item_id"]))


def test_slates_hand_the_shown_columns_to_learning(setting):
    sim, shop = setting
    ease = EASE(l2=100.0).fit(shop.events)
    for pol in (ThompsonSampling(candidates=ease, n_candidates=8), ThompsonSampling()):
        pol.reset(sim.environment())
        users = sim.user_ids[:40]
        shown = pol.slates(users, 3)
        last_users, cand, pos = pol.last_
        assert np.array_equal(last_users, users) and pos.shape == (40, 3)
        # pos is the column of each shown item in its shopper's candidate row, in slate order.
        assert np.array_equal(pol.env_.item_ids[np.take_along_axis(cand, pos, axis=1)], shown)
        assert np.array_equal(pos, np.argmax(cand[:, None, :] == pol.env_.item_index(shown.ravel()).reshape(40, 3)[:, :, None], axis=2))


def test_reinforce_learns_in_the_simulator(setting):
    sim, shop = setting
    kw = dict(n_steps=400, sessions_per_step=50)
    summary, _ = compare_policies(sim, {"random": RandomPolicy(), "REINFORCE": ReinforceReRanker()}, **kw)
    regret = summary.set_index("policy")["regret_per_1000"]
    assert regret["REINFORCE"] < 0.85 * regret["random"]
    # As a re-ranker of EASE's top 10 it starts from EASE's order and stays competitive with it.
    ease = EASE(l2=100.0).fit(shop.events)
    both, _ = compare_policies(sim, {"EASE": RecommenderPolicy(ease, update=None, exclude_seen=False),
                                     "REINFORCE on EASE": ReinforceReRanker(candidates=ease, n_candidates=10)},
                               n_steps=200, sessions_per_step=50)
    r = both.set_index("policy")["regret_per_1000"]
    assert r["REINFORCE on EASE"] < 1.25 * r["EASE"] < regret["random"]


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="epsilon"):
        EpsilonGreedy(1.5)
    with pytest.raises(ValueError, match="reward"):
        ThompsonSampling(reward="likes")
    with pytest.raises(ValueError, match="optimizer"):
        ReinforceReRanker(optimizer="lbfgs")


def test_regret_curve_figure(setting):
    from recapp.experiment import plots

    sim, _ = setting
    _, curves = compare_policies(sim, {"random": RandomPolicy(), "Thompson": ThompsonSampling()}, n_steps=20,
                                 sessions_per_step=20, points=10)
    fig = plots.regret_curves(curves)
    assert [t.name for t in fig.data] == ["random", "Thompson"] and len(fig.data[0].x) <= 11
