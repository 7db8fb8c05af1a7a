"""Simulated shoppers with known preferences, for A/B tests and bandits before anything ships.

The ground truth is a utility for every (shopper, item): the latent tastes of
:func:`recapp.data.synthetic_shop`, or the scores of a model fitted on all of a
real log (say EASE on MovieLens-100K) standing in for the truth. Utilities are
standardised over all pairs, so the knobs below read the same for any truth.

Choice model. A shown slate of ``k`` items is a multinomial logit with a
no-click option and position bias (examination ``v_j = j ** -position_decay``)::

    P(click the item at position j) = v_j a_j / (w0 + sum_l v_l a_l),   a = exp(choice_scale * z)
    P(no click)                     = w0 / (w0 + sum_l v_l a_l)

``w0`` is set so that a random slate is clicked with probability ``target_ctr``.
A click leads to the cart with ``sigmoid(logit(cart_rate) + funnel_slope * z -
price_sensitivity * log(price / median price))`` and a cart to a purchase with
``purchase_rate``, at the item's price: so revenue is measured.

Time runs in steps (:mod:`recapp.experiment.sessions`). In each step ``sessions_per_step`` shoppers arrive, drawn
by their activity (so active shoppers return often); a session shows about
``session_length`` slates and the policy sees the feedback of each slate
before the next. With ``drift > 0`` every shopper's tastes take a random-walk
step each step. Everything is deterministic by ``random_state``, and arrivals
and outcome draws are shared between runs, so two policies meet the same
shoppers (common random numbers make comparisons sharper).

Long-term effects, off by default (:mod:`recapp.experiment.shopper_memory`):
``fatigue`` (utility lost per ignored impression, recovering over
``fatigue_half_life`` steps) and ``churn`` (leaving for good after a session
without a click). The oracle and ``regret`` then use the *current* (tired,
drifted) utilities: the best slate now, not the best plan for later visits.

Policies: any :class:`~recapp.models.base.Recommender` (``recommend(users, k)``
returns a DataFrame), the real-time engine (``recommend(user_id, k)`` and
``ingest(event)``), or a :class:`Policy` such as the bandits of
:mod:`recapp.experiment.bandits`. :func:`~recapp.experiment.policies.as_policy` turns each into a
:class:`~recapp.experiment.policies.Policy` (see :mod:`recapp.experiment.policies`); a run
returns a :class:`~recapp.experiment.results.SimulationResult`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from recapp.experiment._sim_checks import (check_distinct_slates, check_item_indices, check_knobs, check_seed,
                                           check_slate_shape, check_slate_size, shopper_arrays, truth_arrays)
from recapp.experiment.policies import (  # noqa: F401  (re-exported: their home before the split)
    ARM_COL,
    FEEDBACK_EVENTS,
    EnginePolicy,
    Environment,
    Policy,
    RandomPolicy,
    RecommenderPolicy,
    as_policy,
    feedback_to_events,
    fill_slates,
)
from recapp.experiment.results import SimulationResult
from recapp.experiment.sessions import run_sessions
from recapp.experiment.shopper_memory import ShopperMemory
from recapp.models.base import check_param
from recapp.schema import ITEM_COL, TIME_COL, USER_COL


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: float) -> float:
    if not 0 < p < 1:
        raise ValueError(f"expected a probability in (0, 1), got {p!r}")
    return float(np.log(p / (1 - p)))


# ---- the simulator -------------------------------------------------------------------
class ShopperSimulator:
    """Shoppers with ground-truth utilities who view, click, cart and buy from shown slates.

    Build with :meth:`from_synthetic` or :meth:`from_model`, or directly from a
    dense ``utility`` matrix (users x items) or from ``user_factors``,
    ``item_factors`` and ``item_bias`` (utility = U V' + b; ``item_bias`` with
    ``utility`` is refused). A pandas ``utility`` (``user_factors``,
    ``item_factors``) gives ``user_ids`` by its index and ``item_ids`` by its
    columns (index) when those are None, and is matched to them by its labels
    otherwise, as ``item_bias`` is when a Series; arrays are read by position. See the module
    docstring for the choice model and every knob. ``prices`` (per item),
    ``activity`` and ``user_context`` (per shopper) are read by position when
    arrays, and by their index when a pandas Series or DataFrame: it must hold
    each of ``item_ids`` (``user_ids``) once and nothing else, or ValueError
    names the missing and extra ids. To feed an engine a live
    stream of event dicts instead (the dashboard's simulated shopper), use
    :class:`recapp.realtime.ShopperStream`.
    """

    def __init__(self, utility=None, *, user_factors=None, item_factors=None, item_bias=None, user_ids=None,
                 item_ids=None, prices=None, user_context=None, activity=None, k: int = 10, choice_scale: float = 1.0,
                 target_ctr: float = 0.1, position_decay: float = 1.0, cart_rate: float = 0.3,
                 purchase_rate: float = 0.5, funnel_slope: float = 0.5, price_sensitivity: float = 0.3,
                 session_length: float = 3.0, drift: float = 0.0, drift_dim: int = 8, step_seconds: float = 3600.0,
                 start: float = 1_700_000_000.0, fatigue: float = 0.0, fatigue_half_life: float | None = None,
                 churn: float = 0.0, random_state=0):
        (self.utility_, self.user_factors_, self.item_factors_, self.item_bias_, self.user_ids,
         self.item_ids) = truth_arrays(utility, user_factors, item_factors, item_bias, user_ids, item_ids)
        n_users, n_items = len(self.user_ids), len(self.item_ids)
        if n_users == 0 or n_items == 0:
            raise ValueError(f"the truth has {n_users} shoppers and {n_items} items; it needs at least one of each")
        check_knobs(n_items, k=k, session_length=session_length, target_ctr=target_ctr, cart_rate=cart_rate,
                    choice_scale=choice_scale, position_decay=position_decay, purchase_rate=purchase_rate,
                    funnel_slope=funnel_slope, price_sensitivity=price_sensitivity, drift=drift, start=start,
                    drift_dim=drift_dim, step_seconds=step_seconds)
        ShopperMemory.check(fatigue, fatigue_half_life, churn)
        rng = np.random.default_rng(np.random.SeedSequence([int(check_seed(random_state) or 0), 7]))
        prices = np.round(rng.lognormal(np.log(30.0), 0.7, n_items), 2) if prices is None else prices
        activity = rng.lognormal(0.0, 1.0, n_users) if activity is None else activity
        self.prices, self.activity, self.user_context_ = shopper_arrays(
            self.user_ids, self.item_ids, prices, activity, np.ones((n_users, 1)) if user_context is None else user_context)
        self.activity = self.activity / self.activity.sum()
        self.k = int(k)
        self.choice_scale = choice_scale
        self.target_ctr = target_ctr
        self.position_decay = position_decay
        self.cart_rate = cart_rate
        self.purchase_rate = purchase_rate
        self.funnel_slope = funnel_slope
        self.price_sensitivity = price_sensitivity
        self.session_length = session_length
        self.drift = drift
        self.fatigue = fatigue
        self.fatigue_half_life = fatigue_half_life
        self.churn = churn
        self.step_seconds = step_seconds
        self.start = start
        self.random_state = random_state
        self._user_pos = pd.Index(self.user_ids)
        # Standardise the truth over (a sample of) all pairs, so knobs mean the same for any scale.
        su = rng.integers(0, n_users, 20_000)
        si = rng.integers(0, n_items, 20_000)
        raw = self._raw(su[:, None], si[:, None]).ravel()
        self.mu_, self.sd_ = float(raw.mean()), max(float(raw.std()), 1e-12)
        # Drift moves tastes along fixed random item directions (unit variance per step at drift=1).
        self.drift_dirs_ = rng.standard_normal((drift_dim, n_items)) / np.sqrt(drift_dim)
        self.examination_ = np.arange(1, self.k + 1, dtype=np.float64) ** -position_decay
        self.log_price_ratio_ = np.log(self.prices / np.median(self.prices))
        # w0 so that a random slate is clicked with probability target_ctr (on average over shoppers).
        ru = rng.integers(0, n_users, 4000)
        ri = np.stack([rng.choice(n_items, self.k, replace=False) for _ in range(200)])
        ri = ri[rng.integers(0, len(ri), len(ru))]
        s = (self.examination_ * np.exp(choice_scale * self._z(ru[:, None], ri))).sum(axis=1)
        self.no_click_weight_ = float(np.mean(s) * (1 - target_ctr) / target_ctr)

    # ---- constructors --------------------------------------------------------------
    @classmethod
    def from_synthetic(cls, shop, context: str = "segment", context_noise: float = 1.0, **kwargs) -> "ShopperSimulator":
        """Shoppers of a :class:`~recapp.data.synthetic.SyntheticShop`: its latent tastes, prices and activity.

        ``context`` is what a policy may observe about a shopper: "segment"
        (one-hot favourite category plus an intercept), "factors" (the true
        tastes plus Gaussian noise of std ``context_noise``, standardised) or "both".
        """
        users = shop.users
        if context not in ("segment", "factors", "both"):
            raise ValueError(f"context={context!r} is not accepted; accepted values: ['segment', 'factors', 'both']")
        parts = [np.ones((len(users), 1))]
        if context in ("segment", "both"):
            parts.append(pd.get_dummies(users["favorite_category"]).to_numpy(dtype=np.float64))
        if context in ("factors", "both"):
            noise_rng = np.random.default_rng(np.random.SeedSequence([int(kwargs.get("random_state", 0) or 0), 11]))
            f = shop.user_factors + context_noise * shop.user_factors.std() * noise_rng.standard_normal(shop.user_factors.shape)
            parts.append((f - f.mean(0)) / f.std(0))
        kwargs.setdefault("activity", users["activity"].to_numpy() if "activity" in users.columns else None)
        return cls(user_factors=shop.user_factors, item_factors=shop.item_factors, item_bias=shop.item_bias,
                   user_ids=users[USER_COL].to_numpy(), item_ids=shop.items[ITEM_COL].to_numpy(),
                   prices=shop.items["price"].to_numpy(), user_context=np.hstack(parts), **kwargs)

    @classmethod
    def from_model(cls, model, prices=None, n_context: int = 8, **kwargs) -> "ShopperSimulator":
        """Shoppers whose truth is a Recommender fitted on all of a real log (e.g. EASE on MovieLens-100K).

        The model's scores for every known (user, item) are the utilities.
        ``prices`` is an array or a Series indexed by item_id (random
        log-normal prices when None); the Series may price items the model
        never saw (ignored), and one of the model's items it lacks is refused.
        The observable context is a rank-``n_context`` SVD embedding of each
        shopper's history in the log, and activity is proportional to the
        history length. A policy of the same family as the truth model is
        favoured; prefer another family or a held-out fit.
        ``n_context`` is an integer >= 1 (it was silently raised to 1, or failed inside scipy when fractional).
        """
        from scipy.sparse.linalg import svds

        check_param("n_context", n_context, low=1, integer=True)

        inter = model.interactions_
        users = inter.user_ids.to_numpy()[: model.n_users_fit_]
        scores = model.score(users)
        item_ids = scores.columns.to_numpy()
        if isinstance(prices, pd.Series):
            # A catalogue prices items outside the log too; ShopperSimulator aligns the rest and names any it lacks.
            prices = prices[prices.index.isin(item_ids)]
        X = inter.binary()[: len(users)].astype(np.float64)
        d = max(1, min(n_context, min(X.shape) - 1))
        u, s, _ = svds(X, k=d, random_state=0)
        emb = u * s
        emb = (emb - emb.mean(0)) / np.maximum(emb.std(0), 1e-12)
        kwargs.setdefault("activity", np.asarray(X.sum(axis=1)).ravel() + 1.0)
        return cls(scores.to_numpy(dtype=np.float64), user_ids=users, item_ids=item_ids, prices=prices,
                   user_context=np.hstack([np.ones((len(users), 1)), emb]), **kwargs)

    # ---- truth -------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        """Number of shoppers."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Number of items in the catalogue."""
        return len(self.item_ids)

    def _raw(self, uidx, iidx):
        if self.utility_ is not None:
            return self.utility_[uidx, iidx]
        return np.einsum("...f,...f->...", self.user_factors_[uidx], self.item_factors_[iidx]) + self.item_bias_[iidx]

    def _z(self, uidx, iidx, drift_state=None, memory: ShopperMemory | None = None):
        z = (self._raw(uidx, iidx) - self.mu_) / self.sd_
        if drift_state is not None:
            dirs = self.drift_dirs_[:, iidx]                    # (d, n, k)
            z = z + np.einsum("nd,dnk->nk", drift_state[uidx[:, 0]], dirs)
        if memory is not None:
            z = z - memory.penalty(uidx[:, 0], iidx)
        return z

    def utilities(self, users=None, drift_state=None, memory: ShopperMemory | None = None) -> np.ndarray:
        """Standardised true utilities, shape (users, n_items) (all users when None), less ``memory``'s fatigue."""
        uidx = np.arange(self.n_users) if users is None else self.user_index(users)
        if self.utility_ is not None:
            z = (self.utility_[uidx] - self.mu_) / self.sd_
        else:
            z = (self.user_factors_[uidx] @ self.item_factors_.T + self.item_bias_ - self.mu_) / self.sd_
        if drift_state is not None:
            z = z + drift_state[uidx] @ self.drift_dirs_
        if memory is not None:
            z = z - memory.penalty_rows(uidx)
        return z

    def user_index(self, users) -> np.ndarray:
        """Row positions of user ids; raises KeyError for unknown ids."""
        idx = self._user_pos.get_indexer(pd.Index(np.atleast_1d(np.asarray(users))))
        if (idx < 0).any():
            raise KeyError(f"unknown user id(s): {list(np.atleast_1d(users)[idx < 0][:5])}")
        return idx

    def click_probabilities(self, users, slates, drift_state=None, memory: ShopperMemory | None = None) -> np.ndarray:
        """P(click) of each position of each slate under the choice model, shape (n, k).

        ``slates`` are item indices; ``memory`` (a run's ``result.params["memory"]``) applies its fatigue.
        Refused: ``slates`` that are not integers in [0, n_items) (-1 read the last item), or not one row per
        user with 1 to k columns.
        """
        uidx = self.user_index(users)
        iidx = check_slate_shape("slates", slates, len(uidx), max_k=self.k)
        check_item_indices("slates", iidx, self.n_items)
        z = self._z(uidx[:, None], iidx, drift_state, memory)
        a = self.examination_[: iidx.shape[1]] * np.exp(self.choice_scale * z)
        return a / (self.no_click_weight_ + a.sum(axis=1, keepdims=True))

    def oracle_slates(self, users, k: int | None = None, drift_state=None, memory: ShopperMemory | None = None) -> np.ndarray:
        """The slate that maximises expected clicks: the k most attractive items, best at the top (item indices).

        With position weights decreasing, sum_j v_j a_j is largest when the
        largest attractions meet the largest weights (rearrangement inequality),
        and P(click) increases with that sum. ``k`` must be an integer in [1, n_items].
        """
        k = self.k if k is None else k
        check_slate_size(k, self.n_items, "the catalogue")
        z = self.utilities(users, drift_state, memory)
        top = np.argpartition(-z, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(z, top, axis=1), axis=1)
        return np.take_along_axis(top, order, axis=1)

    def environment(self) -> Environment:
        """What policies may know: catalogue, prices, shoppers and their observable context."""
        ctx = self.user_context_
        # user_index raises for an unknown id, which get_indexer's -1 would turn into the last shopper's context.
        return Environment(item_ids=self.item_ids, user_ids=self.user_ids, prices=self.prices, k=self.k,
                           context=lambda users: ctx[self.user_index(users)], n_context=ctx.shape[1])

    def oracle(self) -> "OraclePolicy":
        """A policy that knows the fresh truth (without drift or fatigue): the upper bound for regret when both are off."""
        return OraclePolicy(self)

    # ---- running -----------------------------------------------------------------------
    def run(self, policy, n_steps: int = 20, sessions_per_step: int = 100, name: str | None = None,
            progress: bool = False) -> SimulationResult:
        """Run one policy; every arriving shopper is served by it. See :meth:`run_ab` (``policy`` learns in place)."""
        pol = as_policy(policy)
        label = name or getattr(pol, "name", type(pol).__name__)
        return self.run_ab({label: pol}, n_steps=n_steps, sessions_per_step=sessions_per_step, progress=progress)

    def run_ab(self, policies: dict, n_steps: int = 20, sessions_per_step: int = 100, weights=None,
               salt: str = "recapp-sim", progress: bool = False) -> SimulationResult:
        """Run several policies side by side, each shopper assigned to one arm by a salted hash.

        ``policies`` maps arm names to policies (Recommenders and engines are
        wrapped by :func:`as_policy`, not copied: a model's feedback updates it in
        place); ``weights`` are the arms' traffic shares.
        Arrivals, sessions, drift and the shoppers' memory over the steps are
        :func:`recapp.experiment.sessions.run_sessions`'s; each slate's response
        is :meth:`serve`'s. Returns a :class:`SimulationResult`.
        """
        return run_sessions(self, policies, n_steps=n_steps, sessions_per_step=sessions_per_step, weights=weights,
                            salt=salt, progress=progress)

    def serve(self, policy, arm, uidx, draws, t, step, j, sessions, returning, drift_state, memory):
        """Show one slate of ``policy`` to each shopper in ``uidx`` and sample their response from ``draws``.

        ``draws`` holds three uniforms per shopper (click, cart, purchase), drawn
        by the caller before the policy is asked, so outcomes do not depend on
        the policy; ``t``, ``step``, ``j`` (slate in the session), ``sessions``
        and ``returning`` label the rows. Returns (impressions, slates,
        feedback): the impression rows, one summary row per slate (clicks,
        expected and oracle clicks, regret) and the feedback the policy observes.
        A slate that shows one item twice is refused (its attraction would count twice).
        """
        k, n = self.k, len(uidx)
        user_ids = self.user_ids[uidx]
        shown = np.asarray(policy.slates(user_ids, k))
        if shown.shape != (n, k):
            raise ValueError(f"policy {getattr(policy, 'name', policy)!r} returned slates of shape {shown.shape}; expected {(n, k)}")
        iidx = pd.Index(self.item_ids).get_indexer(pd.Index(shown.ravel())).reshape(n, k)
        if (iidx < 0).any():
            raise ValueError(f"policy {getattr(policy, 'name', policy)!r} showed item id(s) outside the catalogue: {shown[iidx < 0][:5].tolist()}")
        check_distinct_slates(f"policy {getattr(policy, 'name', policy)!r}'s slates", iidx, shown)
        z = self._z(uidx[:, None], iidx, drift_state, memory)
        att = self.examination_ * np.exp(self.choice_scale * z)
        total = att.sum(axis=1)
        p_click = att / (self.no_click_weight_ + total)[:, None]
        # Position j is chosen when the uniform draw falls in its slice of [0, 1); past the last slice: no click.
        cum = np.cumsum(p_click, axis=1)
        choice = (draws[:, :1] > cum).sum(axis=1)           # k means no click
        clicked = choice < k
        click = np.zeros((n, k), dtype=np.int64)
        click[np.flatnonzero(clicked), choice[clicked]] = 1
        ci = np.where(clicked, iidx[np.arange(n), np.minimum(choice, k - 1)], 0)
        zc = z[np.arange(n), np.minimum(choice, k - 1)]
        p_cart = _sigmoid(_logit(self.cart_rate) + self.funnel_slope * zc - self.price_sensitivity * self.log_price_ratio_[ci])
        carted = clicked & (draws[:, 1] < p_cart)
        bought = carted & (draws[:, 2] < self.purchase_rate)
        cart = np.zeros_like(click)
        buy = np.zeros_like(click)
        cart[np.flatnonzero(carted), choice[carted]] = 1
        buy[np.flatnonzero(bought), choice[bought]] = 1
        price = self.prices[iidx]
        revenue = buy * price
        expected = total / (self.no_click_weight_ + total)
        best = self.oracle_slates(user_ids, k, drift_state, memory)
        z_best = self._z(uidx[:, None], best, drift_state, memory)
        att_best = (self.examination_ * np.exp(self.choice_scale * z_best)).sum(axis=1)
        oracle = att_best / (self.no_click_weight_ + att_best)
        memory.record(uidx, iidx, click)      # after the oracle, which judges this slate on the utilities it met
        imp = pd.DataFrame({
            "request": np.repeat(np.arange(n), k), "step": step, "slate": j, "session": np.repeat(sessions, k),
            TIME_COL: np.repeat(t, k), USER_COL: np.repeat(user_ids, k), ARM_COL: arm, ITEM_COL: shown.ravel(),
            "position": np.tile(np.arange(1, k + 1), n), "price": price.ravel(), "click": click.ravel(),
            "cart": cart.ravel(), "purchase": buy.ravel(), "revenue": revenue.ravel(),
        })
        sl = pd.DataFrame({
            "step": step, "slate": j, "session": sessions, TIME_COL: t, USER_COL: user_ids, ARM_COL: arm,
            "returning": returning, "clicks": clicked.astype(np.int64), "purchases": bought.astype(np.int64),
            "revenue": revenue.sum(axis=1), "expected_clicks": expected, "oracle_clicks": oracle, "regret": oracle - expected,
        })
        return imp, sl, imp


class OraclePolicy(Policy):
    """Shows each shopper the slate with the highest expected clicks under the (drift- and fatigue-free) truth."""

    name = "oracle"

    def __init__(self, simulator: ShopperSimulator):
        self.simulator = simulator

    def slates(self, users, k):
        """The k most attractive items per shopper."""
        return self.simulator.item_ids[self.simulator.oracle_slates(users, k)]
