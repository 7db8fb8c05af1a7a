"""Off-policy evaluation: what would a new policy have earned, judged from another policy's logs?

Estimators of the value ``V(pi_e) = E_x sum_a pi_e(a | x) q(x, a)`` from rounds
(x_i, a_i, r_i) logged by a policy that chose a_i with probability ``p_i``
(the propensity), with importance weight ``w_i = pi_e(a_i | x_i) / p_i``:

* IPW (Horvitz and Thompson 1952): ``mean(w r)``, unbiased when the
  propensities are right, high variance when weights are large;
* SNIPW, self-normalised: ``sum(w r) / sum(w)``, slightly biased, less variance;
* DM, the direct method: ``mean(sum_a pi_e(a | x) q_hat(x, a))`` with a
  reward model q_hat, biased when the model is;
* DR, doubly robust (Dudik, Langford and Li 2011): ``DM + mean(w (r - q_hat(x, a_i)))``,
  unbiased when either the propensities or the model are right.

Confidence intervals are percentile bootstraps over rounds. When the reward
model was fitted on the same logs, :func:`evaluate` refits it inside every
resample, so DM and DR intervals include the model's own uncertainty.

For the Open Bandit Dataset (Saito et al., NeurIPS 2021 datasets track) each
round is one item shown in one of three slots and ``propensity_score`` is the
logging policy's probability of that item in that slot; an evaluation policy
gives a distribution over items for the round's slot.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recapp.experiment._checks import (check_finite_estimates, check_resampling, check_same_length, check_values,
                                       check_weights, warn_snipw)
from recapp.experiment.reward_models import ItemPositionModel, LogisticRewardModel, make_reward_model  # noqa: F401  (re-exported)
from recapp.models.base import check_param
from recapp.schema import ITEM_COL

ESTIMATORS = ("IPW", "SNIPW", "DM", "DR")
MODEL_ESTIMATORS = ("DM", "DR")
#: Full-data click-through rates on the "all" campaign (Saito et al. 2021, Table 2).
PUBLISHED_CTR = {"random": 0.0035, "bts": 0.0050}


# ---- logged data ---------------------------------------------------------------------
@dataclass
class LoggedFeedback:
    """Logged bandit rounds as arrays: action (index into ``action_ids``), position (0-based), reward, pscore.

    ``context`` holds categorical user features (one column each) and
    ``affinity`` an optional (rounds x actions) user-item feature.
    """

    action: np.ndarray
    position: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    action_ids: np.ndarray
    n_positions: int
    context: pd.DataFrame | None = None
    affinity: np.ndarray | None = None
    source: str = ""

    @property
    def n_rounds(self) -> int:
        """Number of logged rounds."""
        return len(self.action)

    @property
    def n_actions(self) -> int:
        """Number of actions (items)."""
        return len(self.action_ids)

    def subset(self, idx, features: bool = True) -> "LoggedFeedback":
        """The rounds ``idx`` (a bootstrap resample or a split); ``features=False`` drops context and affinity (faster)."""
        keep = features and self.context is not None
        return LoggedFeedback(self.action[idx], self.position[idx], self.reward[idx], self.pscore[idx], self.action_ids,
                              self.n_positions, self.context.iloc[idx].reset_index(drop=True) if keep else None,
                              self.affinity[idx] if features and self.affinity is not None else None, self.source)


def from_open_bandit(ob, action_ids=None) -> LoggedFeedback:
    """Arrays from :func:`recapp.data.load_open_bandit` rounds: click is the reward, slot 1..3 becomes 0..2.

    ``action_ids`` fixes the action space (default: the item context's items),
    so logs of two policies share indices.
    """
    r = ob.rounds
    ids = np.sort(ob.item_context[ITEM_COL].unique()) if action_ids is None else np.asarray(action_ids)
    action = pd.Index(ids).get_indexer(r[ITEM_COL].to_numpy())
    if (action < 0).any():
        raise ValueError(f"{int((action < 0).sum())} logged item id(s) are not in action_ids, e.g. {r[ITEM_COL].to_numpy()[action < 0][:5].tolist()}")
    user_cols = [c for c in r.columns if c.startswith("user_feature_")]
    aff_cols = [f"user-item_affinity_{i}" for i in ids]
    affinity = r[aff_cols].to_numpy(np.float64) if all(c in r.columns for c in aff_cols) else None
    return LoggedFeedback(action=action.astype(np.int64), position=r["position"].to_numpy(np.int64) - 1,
                          reward=r["click"].to_numpy(np.float64), pscore=r["propensity_score"].to_numpy(np.float64),
                          action_ids=ids, n_positions=int(r["position"].max()),
                          context=r[user_cols].reset_index(drop=True) if user_cols else None, affinity=affinity,
                          source=f"Open Bandit {ob.policy}/{ob.campaign} ({ob.source})")


# ---- estimators ----------------------------------------------------------------------
def _point(est: str, r, w, q_logged, q_expected, axis=-1):
    if est == "IPW":
        return (w * r).mean(axis)
    if est == "SNIPW":
        w = _unit(w)[0]        # the ratio is scale-free; unscaled, huge weights would overflow
        total = w.sum(axis)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, (w * r).sum(axis) / np.where(total > 0, total, 1.0), np.nan)
    if est == "DM":
        return q_expected.mean(axis)
    if est == "DR":
        return (q_expected + w * (r - q_logged)).mean(axis)
    raise ValueError(f"unknown estimator {est!r}; accepted: {list(ESTIMATORS)}")


def _unit(x):
    """``(x / s, s)``, s the largest power of two <= max|x|: exact, and keeps huge or tiny values from over/underflow."""
    m = float(np.max(np.abs(x))) if np.size(x) else 0.0
    s = float(np.ldexp(1.0, int(np.frexp(m)[1]) - 1)) if 0 < m < np.inf else 1.0
    return x / s, s


def _points(estimators, r, w, ql, qe, ps) -> dict:
    """Each estimator's value on the full logs, refused if it overflowed."""
    with np.errstate(over="ignore", invalid="ignore"):
        point = {e: _point(e, r, w, ql, qe) for e in estimators}
    check_finite_estimates(point, w, ps, r)
    return point


def importance_weights(target_prob, pscore) -> np.ndarray:
    """``w_i = pi_e(a_i | x_i) / pi_0(a_i | x_i)``, checked.

    Both are probabilities: a NaN or a value outside [0, 1] is a ValueError
    naming the array and the first bad row. A round whose logged action has
    propensity 0 cannot have been logged, and one the target policy might
    take there (target_prob > 0) has no finite weight: ValueError naming the
    first such row; so does a propensity so small (e.g. 1e-320) that the weight
    overflows to inf. Where both are 0 the weight is 0 (the target policy never
    takes that action).
    """
    target = check_values("target_prob", target_prob, low=0.0, high=1.0)
    ps = check_values("pscore", pscore, low=0.0, high=1.0)
    target, ps = np.broadcast_arrays(target, ps)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        w = np.where(target == 0, 0.0, target / np.where(ps > 0, ps, 1.0))
    check_weights(target, ps, w)
    return w


def _check_estimators(estimators, have_model: bool):
    estimators = tuple(estimators)
    bad = [e for e in estimators if e not in ESTIMATORS]
    if bad:
        raise ValueError(f"unknown estimator(s) {bad}; accepted: {list(ESTIMATORS)}")
    if not have_model and any(e in MODEL_ESTIMATORS for e in estimators):
        raise ValueError("DM and DR need reward-model predictions (q_logged and q_expected, or a reward_model)")
    return estimators


def _table(estimators, point, boots, alpha, n, w, ps, r):
    check_finite_estimates(boots, w, ps, r, resample=True)
    u = _unit(w)[0]     # (sum w)^2 / sum w^2 overflows for weights near 1e160 and underflows to 0 near 1e-160
    ess = float(u.sum() ** 2 / (u**2).sum()) if u.any() else 0.0
    rows = []
    for e in estimators:
        b = np.asarray(boots[e], dtype=np.float64)
        b = b[~np.isnan(b)]     # SNIPW is undefined in a resample whose weights are all 0
        bu, s = _unit(b)        # so that the squares in the spread neither overflow nor underflow
        # An undefined estimate gets no interval, whatever the resamples say.
        low, high, se = ((float(np.quantile(b, alpha / 2)), float(np.quantile(b, 1 - alpha / 2)), float(bu.std(ddof=1) * s))
                         if len(b) > 1 and np.isfinite(point[e]) else (np.nan, np.nan, np.nan))
        rows.append({"estimator": e, "estimate": float(point[e]), "ci_low": low, "ci_high": high,
                     "se": se, "n_rounds": n, "ess": n if e == "DM" else ess})
    return pd.DataFrame(rows)


def estimate(reward, pscore, target_prob, q_logged=None, q_expected=None, estimators=ESTIMATORS, alpha: float = 0.05,
             n_bootstrap: int = 1000, random_state=0) -> pd.DataFrame:
    """Policy-value estimates with percentile-bootstrap intervals, from per-round arrays.

    ``target_prob`` is pi_e(a_i | x_i) for each logged action, ``q_logged``
    the reward model at the logged action and ``q_expected`` its expectation
    under pi_e (``sum_a pi_e(a | x_i) q_hat(x_i, a)``), both needed only for DM
    and DR. The model is held fixed across resamples. Returns estimator,
    estimate, ci_low, ci_high, se (bootstrap), n_rounds and ess (the effective
    sample size ``(sum w)^2 / sum w^2`` of the weights, computed without overflow).

    Every array has one finite value per round (probabilities in [0, 1]),
    at least one round; ``alpha`` lies in (0, 1) and ``n_bootstrap`` >= 2.
    Anything else is a ValueError naming the argument and the first bad row,
    as is an estimate that overflows (weights near 1e300 from a tiny pscore).
    """
    r = check_values("reward", reward, ndim=1, min_size=1)
    target, ps = check_values("target_prob", target_prob, ndim=1), check_values("pscore", pscore, ndim=1)
    have = q_logged is not None and q_expected is not None
    estimators = _check_estimators(estimators, have)
    ql = check_values("q_logged", q_logged, ndim=1) if have else np.zeros_like(r)
    qe = check_values("q_expected", q_expected, ndim=1) if have else np.zeros_like(r)
    n = check_same_length(reward=r, pscore=ps, target_prob=target, **({"q_logged": ql, "q_expected": qe} if have else {}))
    check_resampling(alpha, n_bootstrap)
    w = importance_weights(target, ps)
    warn_snipw(estimators, w)
    point = _points(estimators, r, w, ql, qe, ps)
    rng = np.random.default_rng(random_state)
    boots = {e: [] for e in estimators}
    chunk = max(1, min(n_bootstrap, 2_000_000 // max(n, 1)))
    done = 0
    while done < n_bootstrap:
        m = min(chunk, n_bootstrap - done)
        idx = rng.integers(0, n, (m, n))
        with np.errstate(over="ignore", invalid="ignore"):     # overflow is refused by _table, by name
            for e in estimators:
                boots[e].append(_point(e, r[idx], w[idx], ql[idx], qe[idx], axis=1))
        done += m
    return _table(estimators, point, {e: np.concatenate(v) for e, v in boots.items()}, alpha, n, w, ps, r)


def evaluate(logged: LoggedFeedback, action_dist, reward_model="item_position", estimators=ESTIMATORS,
             alpha: float = 0.05, n_bootstrap: int = 500, refit: bool = True, random_state=0) -> pd.DataFrame:
    """Estimate the value of a policy on logged rounds with every estimator.

    ``action_dist`` is the evaluation policy's distribution over actions for
    each round's slot, shape (rounds, actions) (or (actions,) when it does not
    depend on the round). ``reward_model`` (a name or an object with
    fit/predict) is fitted on ``logged``; with ``refit`` it is refitted in
    every bootstrap resample, so DM and DR intervals reflect its uncertainty.
    Columns as in :func:`estimate`, with its checks; each row of
    ``action_dist`` must be a distribution (values in [0, 1] summing to 1).
    """
    dist = check_values("action_dist", action_dist, low=0.0, high=1.0)
    if dist.ndim == 1:
        dist = np.broadcast_to(dist, (logged.n_rounds, logged.n_actions))
    if dist.shape != (logged.n_rounds, logged.n_actions):
        raise ValueError(f"action_dist has shape {dist.shape}; expected ({logged.n_rounds}, {logged.n_actions})")
    off = np.flatnonzero(~np.isclose(dist.sum(axis=1), 1.0, rtol=0.0, atol=1e-6))
    if len(off):
        raise ValueError(f"action_dist rows must sum to 1; row {int(off[0])} sums to {float(dist[off[0]].sum())!r} "
                         f"({len(off)} such row(s))")
    check_values("reward", logged.reward, ndim=1, min_size=1)
    check_resampling(alpha, n_bootstrap)
    use_model = any(e in MODEL_ESTIMATORS for e in estimators)
    estimators = _check_estimators(estimators, use_model or reward_model is not None)
    rows = np.arange(logged.n_rounds)
    target = dist[rows, logged.action]
    w = importance_weights(target, logged.pscore)      # fails fast, before any model is fitted
    if not use_model:
        return estimate(logged.reward, logged.pscore, target, estimators=estimators, alpha=alpha,
                        n_bootstrap=n_bootstrap, random_state=random_state)
    model = make_reward_model(reward_model).fit(logged)
    q = check_values("reward_model predictions", model.predict(logged))
    ql, qe = q[rows, logged.action], np.einsum("na,na->n", dist, q)
    if not refit:
        return estimate(logged.reward, logged.pscore, target, ql, qe, estimators, alpha, n_bootstrap, random_state)
    warn_snipw(estimators, w)
    point = _points(estimators, logged.reward, w, ql, qe, logged.pscore)
    rng = np.random.default_rng(random_state)
    boots = {e: np.empty(n_bootstrap) for e in estimators}
    for b in range(n_bootstrap):
        idx = rng.integers(0, logged.n_rounds, logged.n_rounds)
        sub = logged.subset(idx, features=getattr(model, "uses_features", True))
        fresh = make_reward_model(reward_model) if isinstance(reward_model, str) else model
        qb = fresh.fit(sub).predict(sub)
        sb = np.arange(len(idx))
        qlb, qeb = qb[sb, sub.action], np.einsum("na,na->n", dist[idx], qb)
        with np.errstate(over="ignore", invalid="ignore"):
            for e in estimators:
                boots[e][b] = _point(e, sub.reward, w[idx], qlb, qeb)
    if not isinstance(reward_model, str):
        model.fit(logged)       # leave the caller's model fitted on the full logs
    return _table(estimators, point, boots, alpha, logged.n_rounds, w, logged.pscore, logged.reward)


# ---- policies to evaluate -------------------------------------------------------------------
def uniform_policy(logged: LoggedFeedback) -> np.ndarray:
    """The uniform-random policy: 1 / n_actions for every item in every slot (shape (actions,))."""
    return np.full(logged.n_actions, 1.0 / logged.n_actions)


def policy_from_scores(scores, top_k: int | None = None, temperature: float | None = None,
                       epsilon: float = 0.0) -> np.ndarray:
    """Turn (rounds, actions) scores into an action distribution.

    ``top_k``: uniform over each round's k best items; ``temperature``:
    softmax of scores / temperature; neither: greedy (one best item per round). ``epsilon``
    mixes in the uniform policy, which keeps importance weights bounded.
    ``top_k`` lies in [1, actions], ``temperature`` > 0, ``epsilon`` in [0, 1];
    scores may be -inf (ranked last) but not NaN or +inf, and every round
    needs one finite score.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.size == 0:
        raise ValueError(f"scores must be a non-empty (rounds, actions) array, got shape {s.shape}")
    n, A = s.shape
    check_values("scores", np.where(s == -np.inf, 0.0, s))
    dead = np.flatnonzero(~np.isfinite(s).any(axis=1))
    if len(dead):
        raise ValueError(f"scores row {int(dead[0])} is all -inf ({len(dead)} such row(s)): no action to choose")
    check_param("epsilon", epsilon, low=0.0, high=1.0)
    if top_k is not None:
        check_param("top_k", top_k, low=1, high=A, integer=True)
    if temperature is not None:
        check_param("temperature", temperature, low=0.0, low_inclusive=False)
        z = (s - s.max(axis=1, keepdims=True)) / temperature
        dist = np.exp(z)
    else:
        k = 1 if top_k is None else top_k
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        dist = np.zeros_like(s)
        np.put_along_axis(dist, top, 1.0, axis=1)
    dist /= dist.sum(axis=1, keepdims=True)
    return (1 - epsilon) * dist + epsilon / A


# ---- the Open Bandit studies ------------------------------------------------------------------
def random_policy_study(campaign: str = "all", estimators=ESTIMATORS, reward_model="item_position",
                        n_bootstrap: int = 500, alpha: float = 0.05, random_state=0, data_path=None) -> pd.DataFrame:
    """Estimate the uniform-random policy's CTR from the Bernoulli TS logs and check it against the random logs.

    The truth is the click rate measured in the random policy's own logs,
    with a Wilson interval (statsmodels). One row per estimator with estimate,
    ci_low, ci_high, se, ess, truth, truth_ci_low, truth_ci_high,
    relative_error (|estimate - truth| / truth), covers_truth (the truth inside
    the interval), published_random (Saito et al. 2021, full data, "all"),
    logged_ctr (the BTS policy's own CTR in these logs) and clicks (in the BTS logs).
    """
    from statsmodels.stats.proportion import proportion_confint

    from recapp.data.openbandit import load_open_bandit

    bts = load_open_bandit("bts", campaign, data_path)
    rnd = load_open_bandit("random", campaign, data_path)
    logged = from_open_bandit(bts)
    truth_clicks, truth_n = int(rnd.rounds["click"].sum()), len(rnd.rounds)
    truth = truth_clicks / truth_n
    low, high = proportion_confint(truth_clicks, truth_n, alpha=alpha, method="wilson")
    out = evaluate(logged, uniform_policy(logged), reward_model, estimators, alpha, n_bootstrap, True, random_state)
    out["truth"], out["truth_ci_low"], out["truth_ci_high"] = truth, low, high
    out["relative_error"] = (out["estimate"] - truth).abs() / truth
    out["covers_truth"] = (out["ci_low"] <= truth) & (truth <= out["ci_high"])
    out["published_random"] = PUBLISHED_CTR["random"] if campaign == "all" else np.nan
    out["logged_ctr"] = float(logged.reward.mean())
    out["clicks"] = int(logged.reward.sum())
    return out


def learned_policy_study(campaign: str = "all", top_k: int = 10, epsilon: float = 0.0, C: float = 0.1,
                         estimators=ESTIMATORS, n_bootstrap: int = 500, alpha: float = 0.05, random_state=0,
                         data_path=None) -> pd.DataFrame:
    """Learn a contextual click model on the BTS logs and evaluate its policy offline on the random logs.

    The policy shows, for each round, one of the ``top_k`` items that
    :class:`LogisticRewardModel` (user features, segment x item, affinity)
    rates highest, uniformly (mixed with ``epsilon`` uniform). The random logs
    have known propensities (1 / n_items), so IPW is exact in expectation; DM
    and DR use an :class:`ItemPositionModel` fitted on the random logs. Rows
    per estimator, plus random_ctr (the random logs' CTR, the baseline to beat),
    lift (estimate / random_ctr - 1) and bts_ctr (the BTS logs' CTR).
    """
    from recapp.data.openbandit import load_open_bandit

    bts = load_open_bandit("bts", campaign, data_path)
    rnd = load_open_bandit("random", campaign, data_path)
    train = from_open_bandit(bts)
    test = from_open_bandit(rnd, action_ids=train.action_ids)
    scores = LogisticRewardModel(C=C).fit(train).predict(test)
    dist = policy_from_scores(scores, top_k=top_k, epsilon=epsilon)
    out = evaluate(test, dist, "item_position", estimators, alpha, n_bootstrap, True, random_state)
    out.insert(0, "policy", f"logistic top-{top_k}" + (f" + {epsilon:g} uniform" if epsilon else ""))
    out["random_ctr"] = float(test.reward.mean())
    out["lift"] = out["estimate"] / out["random_ctr"] - 1
    out["bts_ctr"] = float(train.reward.mean())
    return out


# ---- synthetic logs with a known truth --------------------------------------------------------
def synthetic_logged(n_rounds: int = 2000, n_actions: int = 5, n_contexts: int = 200, dim: int = 3,
                     logging_temperature: float = 2.0, target_temperature: float = 1.0, random_state=0,
                     problem_seed: int = 12345) -> dict:
    """Logged rounds from a known problem, with the evaluation policy's exact value.

    Contexts are drawn uniformly from a fixed pool (``problem_seed`` fixes the
    pool, the true click model and both policies), so the true value
    ``mean_x sum_a pi_e(a | x) q(x, a)`` is exact. ``random_state`` draws the
    rounds. Returns a dict with reward, pscore, target_prob (pi_e of the logged
    action), action, context (pool index), q_true (pool x actions), target_dist
    (pool x actions) and truth.
    """
    prob = np.random.default_rng(problem_seed)
    X = prob.standard_normal((n_contexts, dim))
    theta = prob.standard_normal((dim, n_actions))
    bias = prob.normal(-1.0, 0.5, n_actions)
    q = 1.0 / (1.0 + np.exp(-(X @ theta + bias)))
    def _softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    logging = _softmax(X @ prob.standard_normal((dim, n_actions)) / logging_temperature)
    target = _softmax(X @ theta / target_temperature)        # a policy that knows something about q
    truth = float((target * q).sum(axis=1).mean())
    rng = np.random.default_rng(random_state)
    ctx = rng.integers(0, n_contexts, n_rounds)
    cum = np.cumsum(logging[ctx], axis=1)
    action = np.minimum((rng.random(n_rounds)[:, None] > cum).sum(axis=1), n_actions - 1)
    reward = (rng.random(n_rounds) < q[ctx, action]).astype(np.float64)
    return {"reward": reward, "pscore": logging[ctx, action], "target_prob": target[ctx, action], "action": action,
            "context": ctx, "q_true": q, "target_dist": target, "truth": truth}
