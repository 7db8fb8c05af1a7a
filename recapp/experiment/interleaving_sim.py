"""Team-draft interleaving served in the shopper simulator: the exact expected credit, a policy that shows
merged lists, and :class:`InterleavingSimulation`, a tick-by-tick experiment shaped like
:class:`recapp.experiment.live_ab.ABSimulation` (the dashboard's A/B tab offers it as a mode).

The statistics (team draft, credit, the sign test and the always-valid
preference sequence) are in :mod:`recapp.experiment.interleaving`.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from recapp.experiment.interleaving import (
    ALPHA,
    MIN_CLICKS,
    N_BOOT,
    STEP_SECONDS,
    TAU,
    TEAMS,
    outcomes,
    preference_sequence,
    preference_test,
    team_clicks,
    team_draft_many,
)
from recapp.experiment._checks import check_feedback
from recapp.experiment._sim_checks import check_seed, check_slate_shape
from recapp.experiment.live_ab import arm_policies, check_scenario
from recapp.experiment.policies import check_slate_feedback
from recapp.experiment.simulator import Policy, ShopperSimulator, as_policy
from recapp.models.base import check_param
from recapp.schema import ITEM_COL, TIME_COL, USER_COL, require_columns


# ---- truth in the simulator ---------------------------------------------------------------
#: At most this many coin patterns (2 ** ceil(k / 2) merged lists per shopper) are enumerated by expected_credit.
MAX_PATTERNS = 2 ** 16
#: Merged-list entries (shoppers x patterns x k) scored at once: bounds a call's memory, not its result.
CHUNK_ENTRIES = 4_000_000


def expected_credit(simulator: ShopperSimulator, users, slates_a, slates_b) -> tuple[np.ndarray, np.ndarray]:
    """Exact probabilities that a shopper's click on the team-drafted list goes to A and to B, per shopper.

    ``slates_a``/``slates_b`` are item ids, (n, >= k) with distinct items per
    row. Team draft flips a coin at positions 0, 2, 4, ...; every one of the
    ``2 ** ceil(k / 2)`` coin patterns is enumerated and each merged list scored
    with the simulator's :meth:`~recapp.experiment.simulator.ShopperSimulator.click_probabilities`,
    a block of shoppers at a time (:data:`CHUNK_ENTRIES`). ``1 - p_a - p_b`` is the probability of no click.
    Refused: slates that are not 2-D with one row per shopper and at least k columns
    (naming their shape), and a k whose patterns exceed :data:`MAX_PATTERNS` (k > 32: the
    enumeration would need memory beyond any machine; simulate the clicks instead).
    """
    users = np.atleast_1d(np.asarray(users))
    k = simulator.k
    flips = np.arange(0, k, 2)
    if 2 ** len(flips) > MAX_PATTERNS:
        raise ValueError(f"expected_credit enumerates 2 ** ceil(k / 2) = 2 ** {len(flips)} team-draft lists per shopper "
                         f"for k={k}, beyond {MAX_PATTERNS:,}; for lists this long simulate the clicks instead "
                         "(InterleavingSimulation or run_interleaving)")
    item_pos = pd.Index(simulator.item_ids)
    idx = [item_pos.get_indexer(pd.Index(check_slate_shape(name, s, len(users), min_k=k)[:, :k].ravel())).reshape(len(users), k)
           for name, s in (("slates_a", slates_a), ("slates_b", slates_b))]
    if any((i < 0).any() for i in idx):
        raise ValueError("slates_a / slates_b hold item ids outside the simulator's catalogue")
    patterns = (np.arange(2 ** len(flips))[:, None] >> np.arange(len(flips))) & 1
    coins = np.zeros((len(patterns), k), dtype=bool)
    coins[:, flips] = patterns.astype(bool)
    n, P = len(users), len(patterns)
    step = max(1, CHUNK_ENTRIES // (P * k))
    out_a, out_b = np.zeros(n), np.zeros(n)
    for start in range(0, n, step):
        rows = slice(start, start + step)
        m = len(users[rows])
        merged, teams = team_draft_many(np.repeat(idx[0][rows], P, axis=0), np.repeat(idx[1][rows], P, axis=0), k,
                                        coins=np.tile(coins, (m, 1)))
        p = simulator.click_probabilities(np.repeat(users[rows], P), merged)
        p_a, p_b = team_clicks(teams, p)
        out_a[rows], out_b[rows] = p_a.reshape(m, P).mean(axis=1), p_b.reshape(m, P).mean(axis=1)
    return out_a, out_b


# ---- serving ---------------------------------------------------------------------------------
class InterleavedPolicy(Policy):
    """Show each shopper the team draft of two policies' slates and credit the clicks to the teams.

    Both policies see the whole feedback of every merged list (as two models
    retrained on the same log would), so a policy that learns from its own
    slates (``learns_from_slates``: REINFORCE, the DQN) is refused, as is a ``random_state`` that is not
    None, an int >= 0 or a Generator. ``log()`` returns one row per shown list: step, user_id, clicks_A, clicks_B.
    """

    def __init__(self, policy_a, policy_b, name: str = "interleaved", random_state=0):
        self.policy_a, self.policy_b = as_policy(policy_a), as_policy(policy_b)
        for label, p in (("policy_a", self.policy_a), ("policy_b", self.policy_b)):
            if p.learns_from_slates:
                # Its own slate is never what the shopper saw: the merged list's feedback would teach it the wrong slate.
                raise ValueError(f"{label} ({type(p).__name__}) learns from the slates it showed, but an interleaved "
                                 "list is not its slate; interleave policies that learn from any impression "
                                 "(the bandits, LinUCB) or fixed recommenders, or compare it in an A/B test")
        self.name = name
        self.random_state = check_seed(random_state, generators=True)

    def reset(self, env):
        """Reset both policies, seed the coins and empty the log."""
        super().reset(env)
        for p in (self.policy_a, self.policy_b):
            p.reset(env)
        self.rng_ = np.random.default_rng(self.random_state)
        self.step_ = 0
        self.parts_ = []
        self.shown_ = None

    def slates(self, users, k):
        """The team draft of both policies' top-k for each shopper."""
        merged, self.teams_ = team_draft_many(self.policy_a.slates(users, k), self.policy_b.slates(users, k), k, self.rng_)
        self.users_ = np.asarray(users)
        self.shown_ = merged
        return merged

    def observe(self, feedback):
        """Credit the clicks of the last merged lists to the teams and pass the feedback on.

        The feedback must be the last merged lists', one row per shown item
        with the item shown there and a click in [0, 1]; anything else is a
        ValueError before any credit is given (a request out of range was an
        IndexError, another list's clicks were credited to this one's teams).
        """
        if self.shown_ is None:
            raise ValueError("observe was called before any slates() call: there are no merged lists to credit")
        require_columns(feedback, "feedback", "request", "position", ITEM_COL, "click")
        env = self.env_
        item_idx = env.item_index(feedback[ITEM_COL].to_numpy())
        check_feedback(feedback, item_idx, ("click",))
        shown = env.item_index(self.shown_.ravel()).reshape(self.shown_.shape)
        check_slate_feedback(feedback, shown, item_idx, "the interleaved policy", env.item_ids)
        clicks = np.zeros(self.teams_.shape)
        clicks[feedback["request"].to_numpy(), feedback["position"].to_numpy() - 1] = feedback["click"].to_numpy()
        ca, cb = team_clicks(self.teams_, clicks)
        self.parts_.append(pd.DataFrame({"step": self.step_, USER_COL: self.users_, "clicks_A": ca, "clicks_B": cb}))
        for p in (self.policy_a, self.policy_b):
            p.observe(feedback)

    def end_step(self):
        """Tell both policies a step ended."""
        self.step_ += 1
        for p in (self.policy_a, self.policy_b):
            p.end_step()

    def log(self) -> pd.DataFrame:
        """One row per shown list since the last reset: step, user_id, clicks_A, clicks_B."""
        if not self.parts_:
            return pd.DataFrame({"step": [], USER_COL: [], "clicks_A": [], "clicks_B": []})
        return pd.concat(self.parts_, ignore_index=True)


def run_interleaving(simulator: ShopperSimulator, policy_a, policy_b, n_steps: int = 20, sessions_per_step: int = 100,
                     random_state=0) -> pd.DataFrame:
    """Serve team-drafted lists of two policies in the simulator; clicks from its own choice model.

    Returns :meth:`InterleavedPolicy.log`: one row per shown list. Pass the
    rows' clicks to :func:`outcomes` and then :func:`preference_test`. A
    Recommender is wrapped by :func:`~recapp.experiment.simulator.as_policy`
    and so learns from the clicks (``update="step"``); pass
    ``RecommenderPolicy(model, update=None)`` to compare the models as fitted.
    """
    pol = InterleavedPolicy(policy_a, policy_b, random_state=random_state)
    simulator.run(pol, n_steps=n_steps, sessions_per_step=sessions_per_step)
    return pol.log()


class InterleavingSimulation:
    """Two policies interleaved on simulated shop traffic, one simulator step per :meth:`step`.

    ``InterleavingSimulation(scenario, {name_a: model_a, name_b: model_b}, sessions_per_step=20,
    random_state=0)``, shaped like :class:`recapp.experiment.live_ab.ABSimulation`:
    ``scenario`` has ``.shop`` (a :func:`recapp.data.synthetic_shop` result) and
    ``.train`` (its training events; the clock starts after them). A fitted
    Recommender is copied and served through ``RecommenderPolicy(update="step")``;
    a Policy is used as given. Every arriving shopper sees one team-drafted
    list of both policies' top-k (fresh coins per tick) and clicks by the
    simulator's choice model.

    Record keys (one dict per step, also kept in ``history``): ``step``;
    ``impressions`` and ``clicked`` (lists shown / with a click, cumulative);
    ``ctr`` (clicks per shown item of the merged list); ``clicks_A``,
    ``clicks_B`` (credited); ``wins_A``, ``wins_B``, ``ties``; ``preference``
    (see the module docstring; > 0 favours B), ``ci_low``/``ci_high`` (pointwise
    bootstrap 95% interval) and ``pvalue`` (sign test): valid once, at a
    horizon fixed in advance, not when read every tick; ``msprt_p``,
    ``cs_low``, ``cs_high``: the always-valid p-value and confidence sequence of
    :func:`preference_sequence` (NaN before the first look); ``verdict``:
    None, "A" or "B", declared the first time the sequence excludes 0 and never
    changed; ``verdict_step``.
    """

    ARMS = TEAMS

    def __init__(self, scenario, policies: Mapping, sessions_per_step: int = 20, random_state: int = 0, *,
                 alpha: float = ALPHA, tau: float = TAU, min_clicks: int = MIN_CLICKS, n_boot: int = N_BOOT):
        shop, train = check_scenario(scenario)
        _check_settings(sessions_per_step, random_state, alpha, tau, min_clicks, n_boot)
        self.sessions_per_step, self.random_state, self.alpha = sessions_per_step, random_state, alpha
        self.tau, self.min_clicks, self.n_boot = tau, min_clicks, n_boot
        self.names = list(policies)
        self.policy = InterleavedPolicy(*arm_policies(policies, self.ARMS))
        self.start = float(train[TIME_COL].max())
        self.simulator = ShopperSimulator.from_synthetic(shop, random_state=self.random_state, session_length=1.0)
        self.counts = {"impressions": 0, "clicked": 0, "clicks_A": 0, "clicks_B": 0, "wins_A": 0, "wins_B": 0, "ties": 0}
        self.history: list[dict] = []
        self.verdict: str | None = None
        self.verdict_step: int | None = None

    def step(self) -> dict:
        """Simulate one more step of interleaved traffic; returns and records the tick's record.

        All or nothing, as :meth:`recapp.experiment.live_ab.ABSimulation.step`:
        the settings are checked first (ValueError naming a bad ``alpha``,
        ``tau``... set since) and the tallies are computed on a copy, so a step
        that raises leaves ``counts``, the verdict and ``history`` as they were
        and the next step serves the same tick again.
        """
        _check_settings(self.sessions_per_step, self.random_state, self.alpha, self.tau, self.min_clicks, self.n_boot)
        t = len(self.history)
        sim = copy.copy(self.simulator)
        sim.random_state = self.random_state * 100_003 + t
        sim.start = self.start + STEP_SECONDS * t
        self.policy.random_state = sim.random_state
        sim.run(self.policy, n_steps=1, sessions_per_step=self.sessions_per_step)
        log = self.policy.log()
        ca, cb = log["clicks_A"].to_numpy(), log["clicks_B"].to_numpy()
        wa, wb, tie = outcomes(ca, cb)
        c = dict(self.counts)
        for key, add in (("impressions", len(log)), ("clicked", int(((ca + cb) > 0).sum())), ("clicks_A", int(ca.sum())),
                         ("clicks_B", int(cb.sum())), ("wins_A", wa), ("wins_B", wb), ("ties", tie)):
            c[key] += add
        test = preference_test(c["wins_A"], c["wins_B"], c["ties"], alpha=self.alpha, n_boot=self.n_boot,
                               random_state=[self.random_state, t])
        hist = [(h["wins_A"], h["wins_B"], h["ties"]) for h in self.history] + [(c["wins_A"], c["wins_B"], c["ties"])]
        seq = preference_sequence(*np.asarray(hist, dtype=np.float64).T, tau=self.tau, alpha=self.alpha,
                                  min_clicks=self.min_clicks)
        verdict, verdict_step = self.verdict, self.verdict_step
        if verdict is None and seq["verdict"][-1] != 0:
            verdict, verdict_step = ("B" if seq["verdict"][-1] > 0 else "A"), t + 1
        k = self.simulator.k
        row = {"step": t + 1, **c,
               "ctr": (c["clicks_A"] + c["clicks_B"]) / (k * c["impressions"]) if c["impressions"] else math.nan,
               "preference": test["preference"], "ci_low": test["ci_low"], "ci_high": test["ci_high"],
               "pvalue": test["pvalue"], "msprt_p": float(seq["msprt_p"][-1]), "cs_low": float(seq["cs_low"][-1]),
               "cs_high": float(seq["cs_high"][-1]), "verdict": verdict, "verdict_step": verdict_step}
        # The commit: nothing below can raise, so a failed tick above changed nothing.
        self.counts.update(c)
        self.verdict, self.verdict_step = verdict, verdict_step
        self.history.append(row)
        return row


def _check_settings(sessions_per_step, random_state, alpha, tau, min_clicks, n_boot) -> None:
    """The settings :meth:`InterleavingSimulation.step` reads, checked when it is built and again before each step."""
    check_param("sessions_per_step", sessions_per_step, low=1, integer=True)
    check_param("random_state", random_state, low=0, integer=True)
    check_param("alpha", alpha, low=0, high=0.5, low_inclusive=False)
    check_param("tau", tau, low=0, low_inclusive=False)
    check_param("min_clicks", min_clicks, low=2, integer=True)
    check_param("n_boot", n_boot, low=0, integer=True)
