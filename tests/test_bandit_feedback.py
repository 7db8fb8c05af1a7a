"""Policies that learn from the slates they showed (REINFORCE, DQN) take only those slates' feedback, once.

Feedback naming a request or position outside the last slates, another item
than the one shown, a repeated or missing slot, or arriving before any
slates (or twice) is a ValueError naming the column, the count and the first
row, and nothing is learned. Empty feedback is a no-op. LinUCB and the
per-item bandits learn from any catalogue impression.
"""
import numpy as np
import pandas as pd
import pytest
import torch

from recapp.experiment import (
    DQNReranker,
    EpsilonGreedy,
    InterleavedPolicy,
    LinUCB,
    ReinforceReRanker,
    ShopperSimulator,
    ThompsonSampling,
)

K = 3
SLATE_LEARNERS = {"reinforce": lambda: ReinforceReRanker(), "dqn": lambda: DQNReranker(device="cpu", batch_size=2)}
ALL = {**SLATE_LEARNERS, "linucb": lambda: LinUCB(), "greedy": lambda: EpsilonGreedy(), "thompson": lambda: ThompsonSampling()}


@pytest.fixture(scope="module")
def env():
    return ShopperSimulator(np.random.default_rng(0).standard_normal((20, 8)), k=K).environment()


def _shown(pol, env, users=(0, 3, 5, 7)):
    """Let ``pol`` show slates to ``users``; return its feedback, one row per shown item (every 4th clicked)."""
    users = env.user_ids[list(users)]
    shown = pol.slates(users, K)
    n = len(users)
    return pd.DataFrame({"request": np.repeat(np.arange(n), K), "user_id": np.repeat(users, K), "item_id": shown.ravel(),
                         "position": np.tile(np.arange(1, K + 1), n), "click": (np.arange(n * K) % 4 == 0) * 1.0,
                         "cart": 0.0, "purchase": 0.0, "revenue": 0.0, "timestamp": 0.0})


def _snapshot(pol) -> dict:
    """Everything a policy learns: its arrays, tensors, networks, buffers, counters and random generators."""
    def freeze(v):
        if isinstance(v, np.ndarray):
            return v.copy()
        if isinstance(v, torch.nn.Module):
            return {k: t.detach().clone() for k, t in v.state_dict().items()}
        if isinstance(v, torch.Tensor):
            return v.detach().clone()
        if isinstance(v, dict):
            return {k: freeze(x) for k, x in v.items()}
        if isinstance(v, np.random.Generator):
            return v.bit_generator.state
        if isinstance(v, (int, float, bool, type(None))):
            return v
        return None           # the environment, the optimiser's wrapper, last_: not learned state
    return {k: freeze(v) for k, v in vars(pol).items() if k.endswith("_") and k != "last_"}


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (np.ndarray, torch.Tensor)):
        return bool((a == b).all())
    return a == b


def _with(fb, col, row, value):
    fb = fb.copy()
    fb.loc[row, col] = value
    return fb


BAD = [
    ("request out of the slates", lambda fb: _with(fb, "request", 2, 4), r"feedback\['request'\] holds 4 at row 2 \(1 such row"),
    ("negative request", lambda fb: _with(fb, "request", 0, -1), r"feedback\['request'\] holds -1 at row 0 \(1 such row"),
    ("position 0", lambda fb: _with(fb, "position", 5, 0), r"feedback\['position'\] holds 0 at row 5 \(1 such row.*\[1, 3\]"),
    ("position k + 1", lambda fb: _with(fb, "position", 1, K + 1), r"feedback\['position'\] holds 4 at row 1 \(1 such row"),
    ("fractional request", lambda fb: fb.assign(request=fb["request"] + 0.5),
     r"feedback\['request'\] has dtype float64; it must hold integers"),
    ("two items swapped", lambda fb: fb.assign(item_id=fb["item_id"].to_numpy()[[1, 0] + list(range(2, len(fb)))]),
     r"feedback\['item_id'\] holds .* at row 0 \(request 0, position 1\), but \w+ showed .* there \(2 such row"),
    ("a repeated slot", lambda fb: pd.concat([fb, fb.iloc[[4]]], ignore_index=True),
     r"feedback repeats \(request 1, position 2\) at row 12 \(1 repeated row"),
    ("a missing slot", lambda fb: fb.drop(index=7).reset_index(drop=True),
     r"feedback has no row for 1 of the 12 shown \(request, position\) slots, the first \(request 2, position 2\)"),
    ("no request column", lambda fb: fb.drop(columns="request"), r"feedback is missing column\(s\) \['request'\]"),
    ("no position column", lambda fb: fb.drop(columns="position"), r"feedback is missing column\(s\) \['position'\]"),
]


@pytest.mark.parametrize("make", SLATE_LEARNERS.values(), ids=SLATE_LEARNERS)
@pytest.mark.parametrize("case,spoil,match", BAD, ids=[b[0] for b in BAD])
def test_feedback_that_is_not_the_last_slates_is_refused_and_nothing_is_learned(env, make, case, spoil, match):
    pol = make()
    pol.reset(env)
    fb = _shown(pol, env)
    before = _snapshot(pol)
    with pytest.raises(ValueError, match=match):
        pol.observe(spoil(fb))
    assert _same(_snapshot(pol), before)
    pol.observe(fb)                          # the refusal did not use up the slates: their own feedback still counts
    assert pol.t_ == len(fb) and pol.shows_.sum() == len(fb)


@pytest.mark.parametrize("make", SLATE_LEARNERS.values(), ids=SLATE_LEARNERS)
def test_feedback_before_any_slates_or_twice_is_refused(env, make):
    other = make()
    other.reset(env)
    fb = _shown(other, env)
    pol = make()
    pol.reset(env)
    before = _snapshot(pol)
    with pytest.raises(ValueError, match=r"observe was called before any slates\(\) call"):
        pol.observe(fb)
    assert _same(_snapshot(pol), before)
    fb = _shown(pol, env)
    pol.observe(fb)
    after_once = _snapshot(pol)
    with pytest.raises(ValueError, match=r"observe was called a second time for the same slates\(\) call"):
        pol.observe(fb)
    assert _same(_snapshot(pol), after_once)


@pytest.mark.parametrize("make", ALL.values(), ids=ALL)
def test_empty_feedback_is_a_no_op(env, make):
    pol = make()
    pol.reset(env)
    fb = _shown(pol, env)
    before = _snapshot(pol)
    pol.observe(fb.iloc[:0])
    pol.observe(pd.DataFrame())
    assert _same(_snapshot(pol), before)
    pol.observe(fb)
    assert pol.t_ == len(fb)


def test_reinforce_learns_from_its_own_slates(env):
    pol = ReinforceReRanker(lr=0.5)
    pol.reset(env)
    fb = _shown(pol, env)
    bias = pol.item_bias_.detach().clone()
    pol.observe(fb)
    assert not torch.equal(pol.item_bias_.detach(), bias) and pol.baseline_ == pytest.approx(fb["click"].sum() / 4)


def test_the_dqn_stores_each_reward_at_the_slot_it_was_shown(env):
    pol = DQNReranker(device="cpu", batch_size=2)
    pol.reset(env)
    fb = _shown(pol, env).sample(frac=1.0, random_state=0)          # row order does not matter, the slot does
    pol.observe(fb)
    expected = np.zeros((4, K), np.float32)
    expected[fb["request"], fb["position"] - 1] = fb["click"]
    assert np.array_equal(pol.buf_["r"][:4], expected) and pol.n_slates_ == 4


def test_linucb_learns_from_impressions_it_did_not_show(env):
    # Documented choice: each item's ridge regression of reward on context is valid for any logged impression.
    pol = LinUCB()
    pol.reset(env)
    fb = pd.DataFrame({"user_id": env.user_ids[[1, 2]], "item_id": env.item_ids[[4, 4]], "click": [1.0, 0.0]})
    pol.observe(fb)                                   # no slates shown, no request or position column
    x = env.context(env.user_ids[[1, 2]])
    assert np.allclose(pol.A_[4], pol.l2 * np.eye(len(x[0])) + x.T @ x) and np.allclose(pol.b_[4], x[0])
    assert pol.shows_[4] == 2 and pol.t_ == 2


def test_linucb_refuses_a_shopper_without_context_before_learning(env):
    pol = LinUCB()
    pol.reset(env)
    fb = pd.DataFrame({"user_id": [env.user_ids[1], "nobody", "ghost"], "item_id": env.item_ids[[4, 4, 5]], "click": 1.0})
    before = _snapshot(pol)
    with pytest.raises(ValueError, match=r"feedback\['user_id'\] holds 'nobody' at row 1 \(2 such row\(s\)\)"):
        pol.observe(fb)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['user_id'\]"):
        pol.observe(fb.drop(columns="user_id"))
    assert _same(_snapshot(pol), before)


def test_count_bandits_take_repeated_rows_as_separate_impressions(env):
    pol = EpsilonGreedy()
    pol.reset(env)
    fb = _shown(pol, env)
    pol.observe(pd.concat([fb, fb.iloc[[0]]], ignore_index=True))
    item0 = env.item_index(fb["item_id"].iloc[[0]])[0]
    assert pol.t_ == len(fb) + 1 and pol.shows_[item0] == (fb["item_id"] == fb["item_id"].iloc[0]).sum() + 1


def test_reinforce_has_its_own_module_and_the_package_exports_it():
    import recapp.experiment as ex
    from recapp.experiment import reinforce

    assert reinforce.ReinforceReRanker is ex.ReinforceReRanker and "ReinforceReRanker" in ex.__all__
    assert reinforce.ReinforceReRanker.learns_from_slates and DQNReranker.learns_from_slates
    assert not LinUCB.learns_from_slates and not EpsilonGreedy.learns_from_slates


@pytest.mark.parametrize("name", sorted(SLATE_LEARNERS))
def test_interleaving_refuses_a_policy_that_learns_from_its_own_slates(name):
    # The merged list is neither policy's slate: its feedback would teach them a slate they never showed.
    with pytest.raises(ValueError, match="policy_b .* learns from the slates it showed, but an interleaved list is not its slate"):
        InterleavedPolicy(EpsilonGreedy(), SLATE_LEARNERS[name]())
    assert InterleavedPolicy(EpsilonGreedy(), LinUCB()).policy_b.learns_from_slates is False


def test_interleaving_refuses_feedback_that_is_not_its_last_merged_lists(env):
    pol = InterleavedPolicy(EpsilonGreedy(), LinUCB())
    pol.reset(env)
    with pytest.raises(ValueError, match="before any slates"):
        pol.observe(pd.DataFrame())
    users = env.user_ids[:4]
    merged = pol.slates(users, K)
    feedback = pd.DataFrame({"request": np.repeat(np.arange(4), K), "position": np.tile(np.arange(1, K + 1), 4),
                             "user_id": np.repeat(users, K), "item_id": merged.ravel(), "click": 0.0})
    pol.observe(feedback)
    assert len(pol.log()) == 4
    pol.slates(users, K)
    # Before: an IndexError after nothing was credited, or another list's clicks credited to these teams.
    with pytest.raises(ValueError, match=r"feedback\['request'\] holds 4 at row 9"):
        pol.observe(feedback.assign(request=feedback["request"] + 1))
    with pytest.raises(ValueError, match=r"feedback\['click'\] holds nan"):
        pol.observe(feedback.assign(click=np.nan))
    assert len(pol.log()) == 4
