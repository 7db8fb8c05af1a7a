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

The estimators on per-round arrays (:func:`estimate`, :func:`importance_weights`)
are in :mod:`recapp.experiment.ope_estimators` and importable from here too.
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

from recapp.experiment._checks import (
    check_logged,
    check_resampling,
    check_values,
    warn_snipw,
)
from recapp.experiment._sim_checks import align_rounds
from recapp.experiment.ope_estimators import (  # estimate and importance_weights stay importable from here
    ESTIMATORS,
    MODEL_ESTIMATORS,
    _check_estimators,
    _point,
    _points,
    _table,
    estimate,
    importance_weights,
)
from recapp.experiment.reward_models import (  # noqa: F401  (re-exported)
    ItemPositionModel,
    LogisticRewardModel,
    make_reward_model,
)
from recapp.models.base import check_param
from recapp.schema import ITEM_COL

#: Full-data click-through rates on the "all" campaign (Saito et al. 2021, Table 2).
PUBLISHED_CTR = {"random": 0.0035, "bts": 0.0050}


# ---- logged data ---------------------------------------------------------------------
@dataclass
class LoggedFeedback:
    """Logged bandit rounds as arrays: action (index into ``action_ids``), position (0-based), reward, pscore.

    ``context`` holds categorical user features (one column each) and
    ``affinity`` an optional (rounds x actions) user-item feature. Pandas
    per-round fields are matched by index to the first of them (see
    :func:`~recapp.experiment._sim_checks.align_rounds`; a label it lacks, an
    extra one or a repeat is refused) and stored as arrays (context stays a
    DataFrame); arrays are read by position.
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

    def __post_init__(self):
        fields = ("action", "position", "reward", "pscore", "context", "affinity")
        if not any(isinstance(getattr(self, f), (pd.Series, pd.DataFrame)) for f in fields):
            return      # arrays (the common case): nothing to align or convert
        aligned = align_rounds(**{f: getattr(self, f) for f in fields})
        for f, v in aligned.items():
            # A Series kept its labels, so subset's self.action[idx] read labels, not rounds.
            setattr(self, f, v if f == "context" or not isinstance(v, (pd.Series, pd.DataFrame)) else v.to_numpy())

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


# ---- evaluating a policy on logged feedback -------------------------------------------------------
def evaluate(logged: LoggedFeedback, action_dist, reward_model="item_position", estimators=ESTIMATORS,
             alpha: float = 0.05, n_bootstrap: int = 500, refit: bool = True, random_state=0) -> pd.DataFrame:
    """Estimate the value of a policy on logged rounds with every estimator.

    ``action_dist`` is the evaluation policy's distribution over actions for
    each round's slot, shape (rounds, actions) (or (actions,) when it does not
    depend on the round). ``reward_model`` (a name or an object with
    fit/predict) is fitted on ``logged``; with ``refit`` it is refitted in
    every bootstrap resample, so DM and DR intervals reflect its uncertainty.
    Columns as in :func:`estimate`, with its checks; each row of
    ``action_dist`` must be a distribution (values in [0, 1] summing to 1),
    and ``logged`` must index what it claims: an action outside
    ``action_ids``, a position outside ``n_positions`` (or a non-integer
    one) or arrays of different lengths are a ValueError naming the first bad round.
    """
    check_logged(logged)
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
    """The uniform-random policy: 1 / n_actions for every item in every slot (shape (actions,)); ``logged`` is checked
    as in :func:`evaluate` (no actions is a ValueError)."""
    check_logged(logged)
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
    (pool x actions) and truth. Sizes are integers >= 1 and temperatures > 0
    (ValueError otherwise: a temperature of 0 made every propensity NaN).
    """
    for name, value in (("n_rounds", n_rounds), ("n_actions", n_actions), ("n_contexts", n_contexts), ("dim", dim)):
        check_param(name, value, low=1, integer=True)
    for name, value in (("logging_temperature", logging_temperature), ("target_temperature", target_temperature)):
        check_param(name, value, low=0.0, low_inclusive=False)
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
