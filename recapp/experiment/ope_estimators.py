"""Off-policy estimators on per-round arrays: importance weights, IPW, SNIPW, DM and DR with bootstrap intervals.

The estimators of :mod:`recapp.experiment.ope` (see there for the formulas),
computed from one value per logged round: the reward, the logging
propensity, the target policy's probability of the logged action and, for DM
and DR, a reward model's predictions held fixed. :func:`estimate` is the
entry point; :mod:`~recapp.experiment.ope` builds these arrays from logged
feedback and refits the reward model per resample. Both names stay
importable from :mod:`recapp.experiment.ope`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from recapp.experiment._checks import (
    check_finite_estimates,
    check_resampling,
    check_same_length,
    check_values,
    check_weights,
    name_list,
    warn_snipw,
)
from recapp.experiment._sim_checks import align_rounds

ESTIMATORS = ("IPW", "SNIPW", "DM", "DR")
MODEL_ESTIMATORS = ("DM", "DR")


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
    estimators = tuple(name_list("estimators", estimators))
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

    Pandas Series are matched by index to the first of them (a label one
    lacks, an extra one or a repeat is refused; read by position, two Series
    sorted differently paired one round's reward with another's pscore);
    arrays are read by position.
    Every array has one finite value per round (probabilities in [0, 1]),
    at least one round; ``alpha`` lies in (0, 1) and ``n_bootstrap`` >= 2.
    Anything else is a ValueError naming the argument and the first bad row,
    as is an estimate that overflows (weights near 1e300 from a tiny pscore).
    """
    reward, pscore, target_prob, q_logged, q_expected = align_rounds(
        reward=reward, pscore=pscore, target_prob=target_prob, q_logged=q_logged, q_expected=q_expected).values()
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
