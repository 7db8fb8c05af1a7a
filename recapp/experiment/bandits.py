"""Bandit and reinforcement-learning slate policies, run in the shopper simulator.

Every policy here is a :class:`~recapp.experiment.simulator.Policy`: it fills a
slate of ``k`` items per shopper and learns from the clicks. Arms are items,
either the whole catalogue or, with ``candidates=<fitted Recommender>``, each
shopper's top ``n_candidates`` from that model, so a bandit re-ranks a
recommender's shortlist.

* :class:`EpsilonGreedy`, :class:`UCB1` (Auer et al. 2002) and
  :class:`ThompsonSampling` (Bernoulli, Beta posteriors) learn one click rate
  per item, shared by all shoppers;
* :class:`LinUCB` (Li et al., WWW 2010, disjoint model) learns a linear click
  model per item over the shopper's observable context;
* :class:`~recapp.experiment.reinforce.ReinforceReRanker` (its own module, as
  the DQN has) is a policy-gradient Plackett-Luce slate policy in PyTorch.

Each impression counts as one Bernoulli trial of its item (click or not),
ignoring position: simple, slightly pessimistic for lower slots, and what
the classic algorithms assume. :func:`compare_policies` runs several policies
against the same simulated shoppers and reports cumulative reward and regret
against the oracle; :func:`bandit_simulator` builds the documented setting.

Documented setting: ``bandit_simulator(random_state=seed)`` (1,000 shoppers,
50 items, slates of 3, random-slate CTR 5%, segment context) run for
``DOCUMENTED_SETTING`` (60,000 one-slate sessions). Regret per 1,000 slates
against the oracle (expected clicks), seeds 0 / 1 / 2 / 3
(``python benchmarks/bandits.py``):

=========================  =====  =====  =====  =====
policy                       0      1      2      3
=========================  =====  =====  =====  =====
LinUCB (alpha 0.3)          43.6   32.4   36.3   40.6
Thompson sampling          106.5   46.5  108.5   94.0
REINFORCE (all items)      112.8   57.4  140.2   80.5
epsilon-greedy (0.1)       110.8   56.2  112.7  104.1
UCB1                       147.5   90.4  157.5  135.1
uniform random             165.6  139.0  172.4  164.4
=========================  =====  =====  =====  =====

Thompson sampling and LinUCB beat random and epsilon-greedy on every seed,
Thompson only narrowly on seeds 0 and 2: a non-contextual policy's floor is
the best single slate for everyone, and a tuned epsilon-greedy that finds it
early pays only its 10% exploration. UCB1's bonus is scaled for rewards in
[0, 1] and over-explores at click rates of a few percent. As a re-ranker of
EASE's top 10, REINFORCE starts from EASE's order and ends level with it
(57.3 / 33.2 / 46.5 / 36.1 against EASE's 54.9 / 31.0 / 53.8 / 31.0).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from recapp.experiment._checks import check_feedback, check_slate_size
from recapp.experiment.policies import check_slate_feedback
from recapp.experiment.simulator import Environment, OraclePolicy, Policy, RandomPolicy, ShopperSimulator
from recapp.models.base import check_param
from recapp.params import check_seed
from recapp.schema import ITEM_COL, USER_COL, require_columns
from recapp.schema.cells import _plain

REWARDS = ("click", "cart", "purchase")
#: The run of the documented comparison: 1,200 steps of 50 one-slate sessions = 60,000 slates.
DOCUMENTED_SETTING = {"n_steps": 1200, "sessions_per_step": 50}

__all__ = ["DOCUMENTED_SETTING", "BanditPolicy", "EpsilonGreedy", "UCB1", "ThompsonSampling", "LinUCB",
           "RandomPolicy", "OraclePolicy", "compare_policies", "bandit_simulator"]


class BanditPolicy(Policy):
    """Shared machinery: candidate sets, top-k selection from per-candidate scores, click counts per item.

    Subclasses implement ``_scores(users, cand)`` returning one score per
    (shopper, candidate) and may extend ``_learn(feedback, item_idx)``.
    ``slates`` leaves ``last_ = (users, cand, pos)`` for ``_learn``: the
    candidate matrix it scored and, per shopper, the columns of ``cand``
    shown, in slate order (the shown items are ``cand[row, pos[row]]``).

    A policy whose ``_learn`` reads ``last_`` sets ``learns_from_slates``
    (REINFORCE, the DQN): its ``observe`` then takes exactly the feedback of
    its last ``slates`` call, once, every (request, position) shown one row
    with the item shown there, and refuses anything else before learning.
    The others (the per-item counts and LinUCB) learn from any impression of
    a catalogue item, shown by them or not, and read no request or position.
    ``random_state`` is None, an integer >= 0, a numpy Generator or SeedSequence
    (no Generator for a policy that seeds torch with it); anything else is a
    ValueError naming it.
    """

    #: Feedback columns ``observe`` reads besides the reward columns (``_reward_columns``).
    feedback_columns: tuple = (ITEM_COL,)
    #: Whether ``reset`` seeds torch with ``int(random_state)``, so that a Generator cannot be the seed.
    seeds_torch: bool = False

    def __init__(self, candidates=None, n_candidates: int = 50, reward: str = "click", random_state=0,
                 name: str | None = None):
        if reward not in REWARDS:
            raise ValueError(f"reward={reward!r} is not accepted; accepted values: {list(REWARDS)}")
        check_param("n_candidates", n_candidates, low=1, integer=True)
        self.candidates = candidates
        self.n_candidates = n_candidates
        self.reward = reward
        # numpy's own error names neither the argument nor the value.
        self.random_state = check_seed(random_state, generators=not self.seeds_torch)
        self.name = name or type(self).__name__

    def reset(self, env: Environment) -> None:
        """Forget everything learned and start a run in ``env``."""
        super().reset(env)
        self.rng_ = np.random.default_rng(self.random_state)
        n = len(env.item_ids)
        self.shows_ = np.zeros(n)
        self.rewards_ = np.zeros(n)
        self.t_ = 0
        self.last_ = None
        self.observed_ = False

    def _candidate_matrix(self, users: np.ndarray) -> np.ndarray:
        n_items = len(self.env_.item_ids)
        if self.candidates is None:
            return np.broadcast_to(np.arange(n_items), (len(users), n_items))
        uniq, inv = np.unique(users, return_inverse=True)
        m = min(self.n_candidates, n_items)
        recs = self.candidates.recommend(uniq, k=m, exclude_seen=False)
        out = np.full((len(uniq), m), -1, dtype=np.int64)
        row = pd.Index(uniq).get_indexer(recs[USER_COL].to_numpy())
        col = recs["rank"].to_numpy(dtype=np.int64) - 1
        item = self.env_.item_index(recs[ITEM_COL].to_numpy())
        ok = (row >= 0) & (item >= 0) & (col < m)
        out[row[ok], col[ok]] = item[ok]
        from recapp.experiment.simulator import fill_slates
        return fill_slates(out, n_items, self.rng_)[inv]

    def _scores(self, users: np.ndarray, cand: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def slates(self, users, k):
        """The k highest-scoring candidates per shopper (ties broken at random, +inf ones too: never-shown items)."""
        users = np.asarray(users)
        cand = self._candidate_matrix(users)
        check_slate_size(k, cand.shape[1])
        s = np.asarray(self._scores(users, cand), dtype=np.float64)
        s = _break_ties(s, self.rng_.random(s.shape))
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1)
        pos = np.take_along_axis(top, order, axis=1)      # the shown candidates' columns, best first
        self.last_ = (users, cand, pos)
        self.observed_ = False
        return self.env_.item_ids[np.take_along_axis(cand, pos, axis=1)]

    def observe(self, feedback):
        """Count one trial per impression and its reward, then call ``_learn``; empty feedback is a no-op.

        Raises ``ValueError`` before learning anything when a column it reads
        is missing, an item is not in the catalogue, a reward is not a number
        in [0, 1] or, with ``learns_from_slates``, the rows are not the last
        slates' impressions (see :meth:`_check_observation`).
        """
        require_columns(feedback, "feedback")
        if len(feedback) == 0:
            return
        require_columns(feedback, "feedback", *self._feedback_columns())
        idx = self.env_.item_index(feedback[ITEM_COL].to_numpy())
        check_feedback(feedback, idx, self._reward_columns())
        self._check_observation(feedback, idx)
        r = feedback[self.reward].to_numpy(dtype=np.float64)
        np.add.at(self.shows_, idx, 1.0)
        np.add.at(self.rewards_, idx, r)
        self.t_ += len(feedback)
        self._learn(feedback, idx, r)
        self.observed_ = True

    def _reward_columns(self) -> tuple:
        """The feedback columns ``observe`` learns from, each checked to lie in [0, 1]."""
        return (self.reward,)

    def _feedback_columns(self) -> tuple:
        """Every column ``observe`` reads: ``feedback_columns``, request and position when learning from slates, rewards."""
        slate_cols = ("request", "position") if self.learns_from_slates else ()
        return tuple(dict.fromkeys(self.feedback_columns + slate_cols + self._reward_columns()))

    def _check_observation(self, feedback, idx) -> None:
        """Checks beyond the catalogue and the rewards, run before anything is learned (extend and call super)."""
        if self.learns_from_slates:
            self._check_slates(feedback, idx)

    def _check_slates(self, feedback, idx) -> None:
        """Refuse feedback that is not, row for row, the impressions of the last ``slates`` call, observed once.

        ``_learn`` indexes ``last_`` by request and position: a row outside
        it would be an IndexError after the counts were updated, and a row
        naming another slate's item (or a repeated or missing slot) would be
        learned as if this policy had shown it.
        """
        who = type(self).__name__
        if self.last_ is None or self.observed_:
            when = "before any slates() call" if self.last_ is None else "a second time for the same slates() call"
            raise ValueError(f"{who}.observe was called {when}; it learns from the slates it showed, so every slates() "
                             "call takes exactly one observe() of its feedback")
        _, cand, pos = self.last_
        check_slate_feedback(feedback, np.take_along_axis(cand, pos, axis=1), idx, who, self.env_.item_ids)

    def _learn(self, feedback, idx, r) -> None:
        """Extra learning beyond the per-item counts (default: nothing)."""

    def item_estimates(self) -> pd.DataFrame:
        """Per item: shows, rewards and the empirical rate, for inspection."""
        with np.errstate(invalid="ignore"):
            rate = self.rewards_ / self.shows_
        return pd.DataFrame({ITEM_COL: self.env_.item_ids, "shows": self.shows_, "rewards": self.rewards_, "rate": rate})


def _break_ties(scores: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """``scores`` with ties broken by ``noise`` (uniform [0, 1), one per score), +inf scores included.

    A nudge of 1e-9 * noise separates equal finite scores without reordering
    distinct ones; +inf plus a nudge is still +inf, so never-shown items
    (+inf in epsilon-greedy and UCB1) would be taken in catalogue order, the
    same ones for every shopper of a batch. They are put, in random order,
    above every finite score instead.
    """
    s = scores + 1e-9 * noise
    never = np.isposinf(s)
    if never.any():
        finite = s[np.isfinite(s)]
        top = float(finite.max()) if finite.size else 0.0
        span = max(1.0, abs(top))                  # keeps the noise above the float spacing near a large top score
        s[never] = top + span * (1.0 + noise[never])
    return s


class EpsilonGreedy(BanditPolicy):
    """Greedy on empirical click rates; with probability ``epsilon`` a slate is random instead.

    Items never shown score +inf, so every item is tried before the greedy
    phase; several never-shown items are taken in random order, so one batch
    of shoppers spreads over them (as UCB1 does).
    """

    def __init__(self, epsilon: float = 0.1, **kwargs):
        if not 0 <= epsilon <= 1:
            raise ValueError(f"epsilon={epsilon!r} must lie in [0, 1]")
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def _scores(self, users, cand):
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(self.shows_ > 0, self.rewards_ / np.maximum(self.shows_, 1), np.inf)
        s = mean[cand].astype(np.float64)
        explore = self.rng_.random(len(users)) < self.epsilon
        s[explore] = self.rng_.random((int(explore.sum()), cand.shape[1]))
        return s


class UCB1(BanditPolicy):
    """Empirical rate plus ``sqrt(c * ln(t) / n_i)`` (Auer, Cesa-Bianchi and Fischer 2002; c = 2 is UCB1).

    ``t`` counts every impression observed so far, ``n_i`` those of item i; an
    item never shown scores +inf, so each is tried first (in random order).

    The bonus is scaled for rewards in [0, 1]; with click rates of a few percent
    it keeps exploring for a long time, which is UCB1's known weakness here.
    """

    def __init__(self, c: float = 2.0, **kwargs):
        check_param("c", c, low=0.0)
        super().__init__(**kwargs)
        self.c = c

    def _scores(self, users, cand):
        n = self.shows_
        with np.errstate(invalid="ignore", divide="ignore"):
            ucb = self.rewards_ / n + np.sqrt(self.c * np.log(max(self.t_, 1)) / n)
        return np.where(n > 0, ucb, np.inf)[cand]


class ThompsonSampling(BanditPolicy):
    """Bernoulli Thompson sampling: score = a draw from Beta(prior_a + clicks, prior_b + misses) per shopper and item.

    A weak prior towards a low click rate (``prior_b > prior_a``) suits
    e-commerce, where most impressions are not clicked.
    """

    def __init__(self, prior_a: float = 1.0, prior_b: float = 1.0, **kwargs):
        check_param("prior_a", prior_a, low=0.0, low_inclusive=False)       # Beta parameters are positive
        check_param("prior_b", prior_b, low=0.0, low_inclusive=False)
        super().__init__(**kwargs)
        self.prior_a = prior_a
        self.prior_b = prior_b

    def _scores(self, users, cand):
        a = self.prior_a + self.rewards_[cand]
        b = self.prior_b + (self.shows_ - self.rewards_)[cand]
        return self.rng_.beta(a, b)


class LinUCB(BanditPolicy):
    """Disjoint LinUCB (Li, Chu, Langford and Schapire 2010, Algorithm 1) over the shopper context.

    Item i keeps ``A_i = l2 I + sum x x'`` and ``b_i = sum r x``; its score for
    context x is ``x' A_i^-1 b_i + alpha sqrt(x' A_i^-1 x)``. Contexts come from
    ``env.context`` (for the synthetic shop: the shopper's segment), so
    different shoppers get different slates. ``alpha`` is the width of the
    confidence bonus in reward units; 0.3 suits click rates of a few percent
    (the documented setting), where the textbook alpha >= 1 over-explores.

    ``observe`` learns from any (user_id, item_id, reward) impression, shown
    by this policy or not: each item's model is a ridge regression of reward
    on context, valid for any logged impression (say a warm start from a
    log), so LinUCB does not set ``learns_from_slates``. A user_id outside
    the environment's shoppers is refused, since it has no context.
    """

    feedback_columns = (ITEM_COL, USER_COL)

    def __init__(self, alpha: float = 0.3, l2: float = 1.0, **kwargs):
        check_param("alpha", alpha, low=0.0)
        check_param("l2", l2, low=0.0, low_inclusive=False)                # A = l2 I is inverted at reset
        super().__init__(**kwargs)
        self.alpha = alpha
        self.l2 = l2

    def reset(self, env):
        """Start every item at A = l2 I, b = 0."""
        super().reset(env)
        d, n = env.n_context, len(env.item_ids)
        self.A_ = np.tile(self.l2 * np.eye(d), (n, 1, 1))
        self.A_inv_ = np.tile(np.eye(d) / self.l2, (n, 1, 1))
        self.b_ = np.zeros((n, d))
        self.user_pos_ = pd.Index(env.user_ids)

    def _check_observation(self, feedback, idx):
        """Refuse, before anything is learned, a shopper the environment has no context for."""
        super()._check_observation(feedback, idx)
        users = feedback[USER_COL].to_numpy()
        unknown = np.flatnonzero(self.user_pos_.get_indexer(pd.Index(users)) < 0)
        if len(unknown):
            raise ValueError(f"feedback['{USER_COL}'] holds {_plain(users[unknown[0]])!r} at row {int(unknown[0])} "
                             f"({len(unknown)} such row(s)), not a shopper of the environment; LinUCB needs their context")

    def _scores(self, users, cand):
        x = self.env_.context(users)                               # (n, d)
        theta = np.einsum("ide,ie->id", self.A_inv_, self.b_)     # (items, d)
        mean = np.einsum("nd,nmd->nm", x, theta[cand])
        var = np.einsum("nd,nmde,ne->nm", x, self.A_inv_[cand], x)
        return mean + self.alpha * np.sqrt(np.maximum(var, 0.0))

    def _learn(self, feedback, idx, r):
        x = self.env_.context(feedback[USER_COL].to_numpy())
        np.add.at(self.A_, idx, np.einsum("nd,ne->nde", x, x))
        np.add.at(self.b_, idx, r[:, None] * x)
        touched = np.unique(idx)
        # Re-inverting the touched items' small matrices is exact and cheaper than sequential Sherman-Morrison in Python.
        self.A_inv_[touched] = np.linalg.inv(self.A_[touched])


# ---- running them --------------------------------------------------------------------
def bandit_simulator(random_state: int = 0, n_users: int = 1000, n_items: int = 50, k: int = 3,
                     target_ctr: float = 0.05, return_shop: bool = False, **kwargs):
    """The documented bandit setting: a synthetic shop, slates of 3, one slate per session.

    ``synthetic_shop(n_users=1000, n_items=50, n_events=20_000, random_state)``
    supplies the truth; the simulator shows ``k=3`` items (like the Open
    Bandit Dataset's three slots), a random slate is clicked 5% of the time,
    a shopper's observable context is their favourite-category segment, and
    each session is one slate, so every round is a fresh arrival. With
    ``return_shop`` returns ``(simulator, shop)``, so a Recommender can be
    fitted on the shop's log to supply candidates.
    """
    from recapp.data.synthetic import synthetic_shop

    shop = synthetic_shop(n_users=n_users, n_items=n_items, n_events=20_000, random_state=random_state)
    kwargs.setdefault("session_length", 1.0)
    sim = ShopperSimulator.from_synthetic(shop, k=k, target_ctr=target_ctr, random_state=random_state, **kwargs)
    return (sim, shop) if return_shop else sim


def compare_policies(simulator: ShopperSimulator, policies: dict, n_steps: int = 100, sessions_per_step: int = 50,
                     points: int | None = 200) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run each policy alone against the same shoppers; return ``(summary, curves)``.

    ``summary`` has one row per policy (slates, expected and realised clicks,
    cumulative regret against the oracle, regret per 1,000 slates, revenue),
    sorted by regret. ``curves`` is :meth:`SimulationResult.regret_curve` for
    every policy, for :func:`recapp.experiment.plots.regret_curves`.
    Arrivals and outcome draws are shared, so differences are the policies'.
    """
    rows, curves = [], []
    for name, pol in policies.items():
        res = simulator.run(pol, n_steps=n_steps, sessions_per_step=sessions_per_step, name=name)
        s = res.summary().iloc[0]
        rows.append({"policy": name, "slates": int(s["slates"]), "expected_clicks": float(s["expected_clicks"]),
                     "clicks": int(s["clicks"]), "regret": float(s["regret"]),
                     "regret_per_1000": 1000 * float(s["regret"]) / float(s["slates"]),
                     "slate_ctr": float(s["slate_ctr"]), "revenue": float(s["revenue"])})
        curves.append(res.regret_curve(points))
    summary = pd.DataFrame(rows).sort_values("regret", ignore_index=True)
    return summary, pd.concat(curves, ignore_index=True)
