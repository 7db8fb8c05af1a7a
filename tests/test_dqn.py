"""The DQN slate re-ranker: it learns in the documented bandit setting, checks its parameters, and its replay and target network behave."""
import inspect

import numpy as np
import pytest
import torch

from recapp.experiment import DQNReranker, RandomPolicy, compare_long_term, returning_simulator
from recapp.experiment.bandits import bandit_simulator, compare_policies
from recapp.experiment.simulator import ShopperSimulator

RUN = dict(n_steps=100, sessions_per_step=50)   # 5,000 slates: a twelfth of the documented run


@pytest.fixture(scope="module")
def sim():
    return bandit_simulator(random_state=0)


def test_dqn_beats_random_in_the_documented_setting():
    total = {"random": 0.0, "DQN": 0.0}
    for seed in (0, 1, 2):
        sim = bandit_simulator(random_state=seed)
        summary, _ = compare_policies(sim, {"random": RandomPolicy(random_state=seed),
                                            "DQN": DQNReranker(random_state=seed, epsilon_decay=1000)}, **RUN)
        regret = summary.set_index("policy")["regret_per_1000"]
        assert regret["DQN"] < regret["random"], (seed, regret.to_dict())
        for name in total:
            total[name] += regret[name]
    # Over the three seeds: about a third less regret than random (0.67 measured) after only 5,000 slates.
    assert total["DQN"] < 0.8 * total["random"], total


def test_same_seed_same_slates(sim):
    runs = [sim.run(DQNReranker(random_state=3), n_steps=20, sessions_per_step=20).impressions["item_id"].to_numpy()
            for _ in range(2)]
    assert np.array_equal(runs[0], runs[1])


def test_parameters_are_checked():
    for kwargs, match in [({"gamma": 1.0}, "gamma"), ({"gamma": -0.1}, "gamma"), ({"epsilon_start": 1.5}, "epsilon_start"),
                          ({"epsilon_start": 0.1, "epsilon_end": 0.2}, "epsilon_end"), ({"buffer_size": 0}, "buffer_size"),
                          ({"batch_size": 64, "buffer_size": 32}, "batch_size"), ({"target_update": 0}, "target_update"),
                          ({"hidden": 2.5}, "hidden"), ({"lr": 0.0}, "lr"), ({"reward": "likes"}, "reward"),
                          ({"reward_weights": {"likes": 1.0}}, "reward_weights"), ({"device": "tpu"}, "device")]:
        with pytest.raises(ValueError, match=match):
            DQNReranker(**kwargs)


def _same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_target_network_lags_between_syncs_and_matches_after(sim):
    initial = DQNReranker(random_state=0)
    initial.reset(sim.environment())
    # With no sync during the run, the target keeps the initial weights while the online network learns.
    pol = DQNReranker(random_state=0, target_update=10_000, batch_size=16)
    sim.run(pol, n_steps=10, sessions_per_step=50)
    assert pol.n_updates_ > 0 and pol.n_syncs_ == 0
    assert _same(pol.target_, initial.online_) and not _same(pol.online_, pol.target_)
    pol.sync_target()
    assert _same(pol.online_, pol.target_)
    assert not any(p.requires_grad for p in pol.target_.parameters())   # the target is never trained directly
    # Synced every 7 gradient steps: equal right after a sync, different in between.
    for n_steps in (11, 12):
        pol = DQNReranker(random_state=0, target_update=7, batch_size=16)
        sim.run(pol, n_steps=n_steps, sessions_per_step=50)
        assert pol.n_syncs_ == pol.n_updates_ // 7 >= 1
        assert _same(pol.online_, pol.target_) == (pol.n_updates_ % 7 == 0)


def test_replay_links_each_shopper_to_their_next_slate(sim):
    pol = DQNReranker(random_state=0, buffer_size=500, batch_size=16)
    res = sim.run(pol, n_steps=30, sessions_per_step=50)       # 1,500 slates through a 500-slate ring buffer
    buf, log = pol.buf_, res.slates
    assert pol.n_slates_ == len(log) == 1500
    assert sorted(buf["id"]) == list(range(1000, 1500))        # the oldest slates were overwritten
    users = log["user_id"].to_numpy()
    linked = np.flatnonzero(buf["next"] >= 0)
    assert len(linked) > 100
    for slot in linked:
        sid, nxt = buf["id"][slot], buf["next"][slot]
        # The next state is the same shopper's next slate, with no slate of theirs in between.
        assert nxt > sid and users[nxt] == users[sid] and not (users[sid + 1:nxt] == users[sid]).any()
    # The stored rewards are the clicks of those slates.
    assert np.array_equal(buf["r"].sum(axis=1), log["clicks"].to_numpy()[buf["id"]])
    # Exploration decayed linearly from 1 towards its floor.
    assert pol.epsilon_ == pytest.approx(1.0 - 1500 / pol.epsilon_decay * (1.0 - pol.epsilon_end))


def test_history_state_counts_a_shoppers_clicks(sim):
    pol = DQNReranker(random_state=0)
    res = sim.run(pol, n_steps=10, sessions_per_step=50)
    clicks = res.impressions.groupby(["user_id", "item_id"])["click"].sum()
    u, i = clicks.idxmax()
    assert pol.counts_[1, pol.user_pos_.get_loc(u), pol.env_.item_index([i])[0]] == clicks.max() >= 1


def test_without_history_no_counters_are_kept(sim):
    pol = DQNReranker(random_state=0, history=False, batch_size=16)
    sim.run(pol, n_steps=10, sessions_per_step=50)
    assert pol.counts_ is None and pol.n_updates_ > 0
    assert pol.buf_["x"].shape[1] == sim.environment().n_context      # the state is the context alone
    assert not pol.buf_["pair"][..., :3].any()                          # and no history features


def test_long_term_comparison_of_returning_shoppers():
    sim = returning_simulator(random_state=0)
    shaped = {"click": 0.1, "cart": 0.3, "purchase": 1.0}
    table = compare_long_term(sim, {"random": RandomPolicy(),
                                    "DQN": DQNReranker(reward_weights=shaped, epsilon_decay=500, random_state=0)}, n_steps=20)
    t = table.set_index("policy")
    assert t["shoppers"].nunique() == 1 and (t["slates_per_shopper"] > 5).all()    # the same shoppers, coming back
    assert t.loc["DQN", "clicks_per_shopper"] > 1.5 * t.loc["random", "clicks_per_shopper"]
    # The table's figures are plain per-shopper totals of the simulator's log.
    log = sim.run(RandomPolicy(), n_steps=20, sessions_per_step=50).slates
    assert t.loc["random", "purchases_per_shopper"] == pytest.approx(log.groupby("user_id")["purchases"].sum().mean())


def test_dqn_reranks_a_recommenders_candidates():
    from recapp.models import EASE

    sim, shop = bandit_simulator(random_state=0, return_shop=True)
    ease = EASE(l2=100.0).fit(shop.events)
    pol = DQNReranker(candidates=ease, n_candidates=8, random_state=0, batch_size=16)
    res = sim.run(pol, n_steps=10, sessions_per_step=30)
    cands = ease.recommend(res.impressions["user_id"].unique(), k=8, exclude_seen=False)
    allowed = set(zip(cands["user_id"], cands["item_id"]))
    assert all((u, i) in allowed for u, i in zip(res.impressions["user_id"], res.impressions["item_id"]))
    assert pol.buf_["cand"].shape[1] == 8 and pol.n_updates_ > 0
    # The base model's rank is a state feature: -log(rank) of each candidate column.
    assert np.allclose(pol.buf_["pair"][0, :, 3], -np.log(np.arange(1, 9)))


def test_returning_shoppers_can_tire_and_churn():
    from recapp.experiment.dqn import LONG_TERM_EFFECTS

    plain, memory = returning_simulator(random_state=0), returning_simulator(random_state=0, **LONG_TERM_EFFECTS)
    assert (plain.fatigue, plain.churn) == (0.0, 0.0)
    # Unset knobs take the simulator's own defaults.
    defaults = inspect.signature(ShopperSimulator).parameters
    assert all(getattr(plain, knob) == defaults[knob].default for knob in ("fatigue", "fatigue_half_life", "churn"))
    assert (memory.fatigue, memory.fatigue_half_life, memory.churn) == pytest.approx((np.log(2) / 5, 24.0, 0.1))
    pols = lambda: {"random": RandomPolicy()}  # noqa: E731
    t_plain = compare_long_term(plain, pols(), n_steps=20).iloc[0]
    t_mem = compare_long_term(memory, pols(), n_steps=20).iloc[0]
    # The same shoppers arrive; churned ones stop coming back, so they see fewer slates.
    assert t_plain["churned_share"] == 0 and 0.1 < t_mem["churned_share"] < 1
    assert t_mem["shoppers"] == t_plain["shoppers"] and t_mem["slates_per_shopper"] < t_plain["slates_per_shopper"]
