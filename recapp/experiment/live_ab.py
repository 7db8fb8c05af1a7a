"""A live A/B test on simulated shop traffic whose verdict stays valid however often one looks.

Two policies serve the shoppers of a :func:`recapp.data.synthetic_shop`, one
simulator step per :meth:`ABSimulation.step`, and the analyst watches the
click-through rate after every step. Recomputing a fixed-horizon 95% interval
at every tick and stopping when it excludes 0 ("peeking") declares a winner
between two identical policies in about 40% of runs (``benchmarks/ab_aa.py``).
Here the verdict comes from the mixture sequential probability ratio test
(mSPRT, Johari, Pekelis and Walsh, "Always valid inference", Operations
Research 2022, :mod:`recapp.experiment.sequential`): its p-value and confidence
sequence hold at every tick at once, so a verdict may be read whenever it
appears. A fixed-horizon test, planned with :func:`recapp.experiment.abtest.sample_size`,
is shown for comparison once its planned number of shoppers has arrived.

No widgets here: the dashboard shows what :meth:`ABSimulation.step` returns.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recapp.experiment.abtest import compare_ratio, delta_ratio, sample_size
from recapp.experiment.cuped import compare_ratio_cuped, linearize_ratio
from recapp.experiment.sequential import msprt_interval, msprt_statistic
from recapp.experiment.simulator import ARM_COL, Policy, ShopperSimulator, as_policy
from recapp.models.base import check_param
from recapp.schema import EVENT_COL, TIME_COL, USER_COL, require_columns

#: Shoppers per arm before the first sequential look: with a CTR near 1% and ten
#: impressions per visit that is about five clicks per arm, below which the
#: delta-method variance rests on a handful of clicks.
MIN_USERS = 50
#: Default minimum detectable effect: a relative lift of the CTR (1.0 = doubling).
MDE = 1.0
POWER = 0.8
ALPHA = 0.05
#: Seconds of simulated time per step (one step is one round of serving).
STEP_SECONDS = 3600.0


@dataclass(frozen=True)
class ShopScenario:
    """What :class:`ABSimulation` needs of a scenario: a synthetic ``shop`` and the ``train`` events."""

    shop: object
    train: pd.DataFrame


def check_scenario(scenario) -> tuple[object, pd.DataFrame]:
    """``(shop, train)`` of a simulation scenario, or ``ValueError`` saying what it lacks."""
    shop = getattr(scenario, "shop", None)
    if shop is None or not hasattr(shop, "users"):
        raise ValueError("scenario.shop must be a recapp.data.synthetic_shop(...) result; "
                         f"got {type(shop).__name__} (the simulation needs the synthetic shop)")
    train = getattr(scenario, "train", None)
    if not isinstance(train, pd.DataFrame) or TIME_COL not in train.columns or train.empty:
        raise ValueError(f"scenario.train must be a non-empty events DataFrame with a {TIME_COL!r} column")
    return shop, train


def arm_policies(policies: Mapping, arms=("A", "B")) -> list:
    """The two named policies (A, then B) as slate policies (see :func:`_as_policy`), or a clear error."""
    if not isinstance(policies, Mapping) or len(policies) != 2:
        got = list(policies) if isinstance(policies, Mapping) else type(policies).__name__
        raise ValueError(f"policies must be a dict of exactly two named policies (A, then B), got {got}")
    return [_as_policy(arm, name, model) for arm, (name, model) in zip(arms, policies.items())]


def _as_policy(arm: str, name, model):
    """``model`` as a slate policy: a Recommender is copied first (its policy learns from clicks, which must not
    reach the caller's model); a Policy, such as an ``EnginePolicy`` around a fresh engine, is used as given."""
    if isinstance(model, Policy):
        return model
    try:
        return as_policy(copy.deepcopy(model), name=f"{arm}: {name}")
    except TypeError as exc:
        raise TypeError(f"policies[{name!r}]: {exc}") from None


def _pre_period(train: pd.DataFrame, users: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """Each shopper's clicks and views in the training log, before the experiment: CUPED's covariate."""
    require_columns(train, "scenario.train", USER_COL)
    ev = train[EVENT_COL] if EVENT_COL in train.columns else pd.Series("view", index=train.index)
    pos = users.get_indexer(train[USER_COL].to_numpy())
    known = pos >= 0
    clicks = np.bincount(pos[known], weights=(ev.to_numpy()[known] == "click").astype(float), minlength=len(users))
    views = np.bincount(pos[known], weights=(ev.to_numpy()[known] == "view").astype(float), minlength=len(users))
    return clicks, views


def check_settings(sessions_per_step, random_state, salt, alpha, min_users, cuped, tau=None) -> None:
    """The settings :meth:`ABSimulation.step` reads, checked when it is built and again before each step."""
    check_param("sessions_per_step", sessions_per_step, low=1, integer=True)
    check_param("random_state", random_state, low=0, integer=True)
    check_param("alpha", alpha, low=0, high=0.5, low_inclusive=False)
    check_param("min_users", min_users, low=2, integer=True)
    if not isinstance(salt, str):
        raise TypeError(f"salt={salt!r} must be a string")
    if cuped not in (True, False):
        raise ValueError(f"cuped={cuped!r} must be True or False")
    if tau is not None:
        check_param("tau", tau, low=0, low_inclusive=False)


def arm_ctr(clicks: np.ndarray, views: np.ndarray) -> tuple[float, float, int]:
    """CTR of one arm over its shoppers with views: (ratio, delta-method variance, shoppers); NaNs below 2 shoppers."""
    seen = views > 0
    n = int(seen.sum())
    if n < 2:
        return math.nan, math.nan, n
    ratio, var = delta_ratio(clicks[seen], views[seen])
    return float(ratio), max(float(var), 0.0), n


class ABSimulation:
    """Two policies side by side on simulated shop traffic, one simulator step per :meth:`step`.

    ``ABSimulation(scenario, {name_a: model_a, name_b: model_b}, random_state=0,
    sessions_per_step=20, salt="dashboard-ab")``. ``scenario`` has ``.shop`` (a
    :func:`recapp.data.synthetic_shop` result) and ``.train`` (the training
    events; the simulated clock starts after them), e.g. :class:`ShopScenario`.
    The first policy is arm A (control), the second arm B. A policy is a fitted
    Recommender (served through ``RecommenderPolicy(update="step")``, so it
    keeps learning from its arm's clicks; it is copied first) or a Policy used
    as given (e.g. ``EnginePolicy(Engine(model))``: the live engine, learning per event).
    Assignment is a salted hash of the shopper id, so a shopper always sees the
    same arm. Each step, ``sessions_per_step`` shoppers arrive and see one slate.

    CTR is clicks / impressions per arm with the delta-method variance over
    shoppers, the randomisation unit. The B - A difference is monitored with
    the normal-mixture mSPRT on that estimate and its variance, with
    ``tau`` = the MDE in absolute CTR, ``mde * baseline_ctr`` (the effect one
    hopes to detect; the test is most sensitive near it; 0.01 with the
    defaults, a doubling of a 1% CTR, about the gap between Popularity and a
    personalised model in the dashboard's shop). Looks start once each arm has
    ``min_users`` shoppers and a click: the delta-method variance is unreliable
    on a handful of clicks; the mSPRT, not this burn-in, is what keeps peeking
    honest (``benchmarks/ab_aa.py`` shows peeking after the same burn-in still
    finds a false winner in over a third of A/A runs). From then on ``msprt_p`` is the running minimum of
    ``1 / Lambda`` and ``cs_low``/``cs_high`` the running intersection of the
    per-look intervals (:func:`recapp.experiment.sequential.msprt_interval`),
    so they hold at every tick at once (with probability ``1 - alpha``).

    Stopping: ``verdict`` is "B" the first time the confidence sequence lies
    above 0, "A" the first time it lies below, and never changes afterwards;
    stopping at that tick (or at any other tick chosen by looking) keeps the
    false-positive rate at most ``alpha`` (3.5% of 200 A/A runs of 150 ticks
    in ``benchmarks/ab_aa.py``). Traffic may go on after a verdict; the
    p-value can only fall and the sequence only narrow (an empty sequence,
    ``cs_low > cs_high``, would say the difference is not constant).

    The plan: ``planned_users`` shoppers per arm give ``power`` to detect the
    MDE (``mde``, a relative lift of ``baseline_ctr``) with a fixed-horizon test
    at level ``alpha``, from :func:`~recapp.experiment.abtest.sample_size`
    on the click probability per slate (``k`` x CTR: a slate has ``k``
    impressions and the simulated shopper clicks at most one), each shopper
    counted as one trial. Shoppers return and see several slates, so the plan
    is conservative. ``baseline_ctr`` defaults to the CTR of a random slate,
    which the simulator fixes by design (``target_ctr / k``). The fixed-horizon
    test runs once, at the first tick both arms reach the plan; its result is
    repeated on later records (recomputing it every tick would be peeking).

    Record keys (one dict per step, also kept in ``history``):

    * ``step``: 1, 2, ...;
    * per arm X in A, B: ``ctr_X``, ``low_X``/``high_X`` (pointwise 95% band),
      ``users_X`` (shoppers with impressions), ``impressions_X``;
    * ``diff``: CTR of B minus CTR of A (NaN until both arms have 2 shoppers);
      with ``cuped=True`` the CUPED-adjusted difference (covariate: each
      shopper's CTR in the training log, linearised with the delta method;
      :func:`recapp.experiment.cuped.compare_ratio_cuped`), whose smaller
      variance the sequential test then uses, and ``variance_reduction``
      (NaN, and ``diff`` unadjusted, while the served shoppers' pre-period
      CTR does not vary);
    * ``msprt_p``, ``cs_low``, ``cs_high``: always-valid p-value and confidence
      sequence for ``diff`` (NaN before the first look);
    * ``planned_users``: the plan (constant);
    * ``fixed_diff``, ``fixed_low``, ``fixed_high``, ``fixed_p``: the one
      fixed-horizon test at level ``alpha`` (None before the plan is reached);
    * ``verdict``: None, "A" or "B"; ``verdict_step``: the step it was declared (or None).
    """

    ARMS = ("A", "B")

    def __init__(self, scenario, policies: Mapping, sessions_per_step: int = 20, random_state: int = 0,
                 salt: str = "dashboard-ab", *, alpha: float = ALPHA, mde: float = MDE, power: float = POWER,
                 baseline_ctr: float | None = None, tau: float | None = None, min_users: int = MIN_USERS,
                 cuped: bool = False):
        shop, train = check_scenario(scenario)
        check_settings(sessions_per_step, random_state, salt, alpha, min_users, cuped)
        check_param("power", power, low=0.05, high=0.999)
        check_param("mde", mde, low=0, low_inclusive=False)
        self.scenario = scenario
        self.names = list(policies)
        self.policies = dict(zip(self.ARMS, arm_policies(policies, self.ARMS)))
        self.sessions_per_step = int(sessions_per_step)
        self.random_state = int(random_state)
        self.salt = salt
        self.alpha, self.power, self.mde, self.min_users = float(alpha), float(power), float(mde), int(min_users)
        self.start = float(train[TIME_COL].max())
        # Built once: the shoppers' truth does not change between ticks, only the arrivals and draws do.
        self.simulator = ShopperSimulator.from_synthetic(shop, random_state=self.random_state, session_length=1.0)
        k = self.simulator.k
        self.baseline_ctr = self.simulator.target_ctr / k if baseline_ctr is None else float(baseline_ctr)
        check_param("baseline_ctr", self.baseline_ctr, low=0, high=1.0 / k, low_inclusive=False)
        self.planned_users = self._plan(k)
        self.tau = self.mde * self.baseline_ctr if tau is None else float(check_param("tau", tau, low=0, low_inclusive=False))
        n = len(shop.users)
        self._pos = pd.Index(shop.users[USER_COL].to_numpy())
        self.clicks = {a: np.zeros(n) for a in self.ARMS}
        self.views = {a: np.zeros(n) for a in self.ARMS}
        self.cuped = bool(cuped)
        self.pre_clicks, self.pre_views = _pre_period(train, self._pos)
        self.history: list[dict] = []
        self._p, self._low, self._high = math.nan, math.nan, math.nan
        self._fixed: dict | None = None
        self.verdict: str | None = None
        self.verdict_step: int | None = None

    def _plan(self, k: int) -> int:
        """Shoppers per arm for ``power`` at the MDE: the per-slate click probability is ``k`` x CTR."""
        base = k * self.baseline_ctr
        if not base * (1 + self.mde) < 1:
            raise ValueError(f"mde={self.mde!r} with baseline_ctr={self.baseline_ctr!r} asks for a click "
                             f"probability per slate of {base * (1 + self.mde):.3g} >= 1; choose a smaller mde")
        return sample_size(base, self.mde, alpha=self.alpha, power=self.power)

    # ---- one tick ----------------------------------------------------------------------
    def step(self) -> dict:
        """Simulate one more step of traffic; returns and records the tick's record (see the class docstring).

        All or nothing: the settings are checked first (ValueError naming a bad
        ``alpha``, ``tau``... set since) and the tick is computed on copies, so
        a step that raises (a bad setting, a policy's error) leaves the
        counters, the sequential test and ``history`` as they were, and the
        next step serves the same tick again. A policy that learned from part
        of the failed tick before raising keeps what it learned.
        """
        check_settings(self.sessions_per_step, self.random_state, self.salt, self.alpha, self.min_users, self.cuped,
                       self.tau)
        t = len(self.history)
        clicks, views = self._serve(t)
        row: dict = {"step": t + 1}
        est = {}
        for arm in self.ARMS:
            ratio, var, users = arm_ctr(clicks[arm], views[arm])
            half = 1.96 * math.sqrt(var) if users >= 2 else math.nan
            row.update({f"ctr_{arm}": ratio, f"low_{arm}": ratio - half, f"high_{arm}": ratio + half,
                        f"users_{arm}": users, f"impressions_{arm}": int(views[arm].sum())})
            est[arm] = (ratio, var, users, float(clicks[arm].sum()))
        diff, variance = est["B"][0] - est["A"][0], est["A"][1] + est["B"][1]
        if self.cuped:
            diff, variance, row["variance_reduction"] = self._cuped(diff, variance, clicks, views)
        row["diff"] = diff
        look = self._look(diff, variance, est, t + 1)
        row.update({"msprt_p": look[0], "cs_low": look[1], "cs_high": look[2], "planned_users": self.planned_users})
        fixed = self._fixed
        if fixed is None and min(est["A"][2], est["B"][2]) >= self.planned_users:
            c = _compare_arms(clicks, views, self.alpha)
            fixed = {"fixed_diff": float(c["diff"]), "fixed_low": float(c["ci_low"]),
                     "fixed_high": float(c["ci_high"]), "fixed_p": float(c["pvalue"])}
        row.update(fixed or dict.fromkeys(("fixed_diff", "fixed_low", "fixed_high", "fixed_p")))
        row["verdict"], row["verdict_step"] = look[3], look[4]
        # The commit: nothing below can raise, so a failed tick above changed nothing.
        for arm in self.ARMS:
            self.clicks[arm][:], self.views[arm][:] = clicks[arm], views[arm]
        self._p, self._low, self._high, self.verdict, self.verdict_step = look
        self._fixed = fixed
        self.history.append(row)
        return row

    def _cuped(self, diff: float, variance: float, clicks: dict, views: dict) -> tuple[float, float, float]:
        """B − A, its variance and the variance reduction after CUPED on the shoppers' pre-period CTR."""
        sa, sb = views["A"] > 0, views["B"] > 0
        # Before each arm has a click the linearised values are all equal and there is nothing to adjust;
        # nor is there while the served shoppers' pre-period CTR is one value (no pre-period clicks among them).
        if (sa.sum() < 2 or sb.sum() < 2 or not clicks["A"].sum() > 0 or not clicks["B"].sum() > 0
                or not (self.pre_views[sa].sum() + self.pre_views[sb].sum()) > 0
                or np.ptp(linearize_ratio(np.r_[self.pre_clicks[sa], self.pre_clicks[sb]],
                                          np.r_[self.pre_views[sa], self.pre_views[sb]])) == 0):
            return diff, variance, math.nan
        res = compare_ratio_cuped(clicks["A"][sa], views["A"][sa], clicks["B"][sb], views["B"][sb],
                                  self.pre_clicks[sa], self.pre_views[sa], self.pre_clicks[sb], self.pre_views[sb],
                                  alpha=self.alpha)
        return res["diff"], res["se"] ** 2, res["variance_reduction"]

    def _serve(self, t: int) -> tuple[dict, dict]:
        """Run one simulator step (fresh arrival seed, clock moved on): the per-shopper clicks and views with its
        impressions added, as new arrays (the committed ones are left alone)."""
        sim = copy.copy(self.simulator)
        sim.random_state = self.random_state * 100_003 + t
        sim.start = self.start + STEP_SECONDS * t
        imp = sim.run_ab(self.policies, n_steps=1, sessions_per_step=self.sessions_per_step, salt=self.salt).impressions
        users = self._pos.get_indexer(imp[USER_COL].to_numpy())
        arms = imp[ARM_COL].to_numpy()
        click = imp["click"].to_numpy(dtype=np.float64)
        n = len(self._pos)
        clicks, views = {}, {}
        for arm in self.ARMS:
            mine = arms == arm
            clicks[arm] = self.clicks[arm] + np.bincount(users[mine], weights=click[mine], minlength=n)
            views[arm] = self.views[arm] + np.bincount(users[mine], minlength=n)
        return clicks, views

    def _look(self, diff: float, variance: float, est: dict, step: int) -> tuple:
        """One sequential look: the running (p-value, cs_low, cs_high, verdict, verdict_step) after it, not yet
        stored; unchanged until each arm is ready. A verdict is declared when the sequence excludes 0."""
        state = (self._p, self._low, self._high, self.verdict, self.verdict_step)
        ready = all(est[a][2] >= self.min_users and est[a][3] > 0 for a in self.ARMS)
        if not ready or not variance > 0:
            return state
        lam = float(msprt_statistic(diff, variance, 1.0, self.tau))
        low, high = (float(v) for v in msprt_interval(diff, variance, self.tau, self.alpha))
        if not math.isnan(self._p):
            low, high = max(self._low, low), min(self._high, high)
        p = min(1.0, 1.0 / lam) if math.isnan(self._p) else min(self._p, 1.0 / lam)
        verdict, verdict_step = self.verdict, self.verdict_step
        if verdict is None and (low > 0 or high < 0):
            verdict, verdict_step = ("B" if low > 0 else "A"), step
        return p, low, high, verdict, verdict_step

    # ---- fixed horizon -------------------------------------------------------------------
    def compare(self, alpha: float = 0.05) -> dict | None:
        """B minus A on the data so far: CTR difference, fixed-horizon interval and p-value (None before 2 shoppers per arm).

        Keys as :func:`recapp.experiment.abtest.compare_ratio`. It is valid once,
        at a horizon fixed in advance (``planned_users``); recomputed every tick
        and read as a verdict it is the peeking rule that inflates false positives.
        """
        return _compare_arms(self.clicks, self.views, alpha)


def _compare_arms(clicks: dict, views: dict, alpha: float) -> dict | None:
    """:meth:`ABSimulation.compare` on the given per-shopper clicks and views of arms A and B."""
    sa, sb = views["A"] > 0, views["B"] > 0
    if sa.sum() < 2 or sb.sum() < 2:
        return None
    return compare_ratio(clicks["A"][sa], views["A"][sa], clicks["B"][sb], views["B"][sb], alpha=alpha)
