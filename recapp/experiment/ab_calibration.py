"""Are the A/B tests calibrated? Simulated experiments with known lift, each test's rejection rate.

:func:`simulate_users` draws per-user outcomes with the spread real shoppers
have; :func:`calibration` runs every test of :mod:`~recapp.experiment.abtest`
on many simulated experiments: with no lift its rejection rate is the
false-positive rate (it should be alpha), with a lift its power.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from recapp.experiment._checks import check_level
from recapp.experiment.abtest import compare_means, compare_proportions, compare_ratio, predicted_power
from recapp.models.base import check_param


def _check_users(n_experiments, n_users, conversion, ctr, views_mean, ctr_concentration, order_value, lift) -> None:
    # numpy would fail naming only its own parameters ("a <= 0", "lam < 0"), and a NaN or out-of-range rate
    # would simulate nothing (every draw False, or True) and report a rejection rate of 0 as a result.
    check_param("n_experiments", n_experiments, low=1, integer=True)
    check_param("n_users", n_users, low=1, integer=True)
    check_param("lift", lift, low=-1.0, low_inclusive=False)
    check_param("views_mean", views_mean, low=1.0)
    check_param("ctr_concentration", ctr_concentration, low=0.0, low_inclusive=False)
    check_param("order_value", order_value, low=0.0, low_inclusive=False)
    check_param("ctr", ctr, low=0.0, high=1.0, low_inclusive=False)
    check_param("conversion", conversion, low=0.0, high=1.0)
    for name, rate, ok in (("ctr", ctr, ctr * (1 + lift) < 1), ("conversion", conversion, conversion * (1 + lift) <= 1)):
        if not ok:
            raise ValueError(f"lift={lift!r} takes {name}={rate!r} to {rate * (1 + lift)!r}, past a probability's "
                             f"range ({name} must stay {'below' if name == 'ctr' else 'at most'} 1 with the lift applied)")


def simulate_users(n_experiments: int, n_users: int, *, conversion: float = 0.1, ctr: float = 0.05,
                   views_mean: float = 8.0, ctr_concentration: float = 5.0, order_value: float = 40.0,
                   lift: float = 0.0, random_state=0) -> dict:
    """Per-user outcomes of one arm for many experiments at once (arrays of shape (n_users, n_experiments)).

    Shoppers differ: views are 1 + Poisson, each shopper's click probability is
    Beta with mean ``ctr`` (``ctr_concentration`` sets how much they differ),
    conversion is Bernoulli and a buyer's revenue is log-normal around
    ``order_value``. ``lift`` multiplies ctr, conversion and order value.
    Returns views, clicks, converted and revenue. Refused (ValueError naming the argument): counts below 1,
    ``views_mean < 1``, ``ctr`` outside (0, 1) or ``conversion`` outside [0, 1] (with the lift applied too),
    ``lift <= -1``, ``ctr_concentration`` or ``order_value`` not > 0, any NaN.
    """
    _check_users(n_experiments, n_users, conversion, ctr, views_mean, ctr_concentration, order_value, lift)
    rng = np.random.default_rng(random_state)
    shape = (n_users, n_experiments)
    views = 1 + rng.poisson(views_mean - 1, shape)
    p = ctr * (1 + lift)
    a, b = p * ctr_concentration, (1 - p) * ctr_concentration
    clicks = rng.binomial(views, rng.beta(a, b, shape))
    converted = rng.random(shape) < conversion * (1 + lift)
    revenue = np.where(converted, rng.lognormal(np.log(order_value * (1 + lift)) - 0.5, 1.0, shape), 0.0)
    return {"views": views, "clicks": clicks, "converted": converted.astype(np.int64), "revenue": revenue}


def calibration(n_experiments: int = 1000, n_users: int = 2000, lift: float = 0.0, alpha: float = 0.05,
                random_state=0, **user_kwargs) -> pd.DataFrame:
    """Rejection rates of each test over simulated experiments: the false-positive rate when ``lift=0``, power otherwise.

    Both arms of each experiment draw ``n_users`` shoppers from
    :func:`simulate_users`; the treatment arm's rates are multiplied by ``1 + lift``.
    Rows: conversion (two-proportion Wald test), revenue_per_user (Welch),
    ctr_delta (delta method over users) and ctr_naive (every view treated as
    an independent Bernoulli trial, the mistake the delta method avoids).
    Columns: metric, test, experiments, rejection_rate, ci_low, ci_high (a
    Wilson interval for the rate), predicted_power (``NormalIndPower`` for
    conversion; NaN elsewhere). Refused: ``n_users < 2`` (a variance needs two users per arm), ``alpha``
    outside (0, 1) and whatever :func:`simulate_users` refuses.
    """
    from statsmodels.stats.proportion import proportion_confint

    check_param("n_users", n_users, low=2, integer=True)
    check_level("alpha", alpha)

    seeds = np.random.SeedSequence(random_state).spawn(2)
    c = simulate_users(n_experiments, n_users, random_state=seeds[0], **user_kwargs)
    t = simulate_users(n_experiments, n_users, lift=lift, random_state=seeds[1], **user_kwargs)
    conv = compare_proportions(c["converted"].sum(0), n_users, t["converted"].sum(0), n_users, alpha)
    rev = compare_means(c["revenue"], t["revenue"], alpha)
    ctr = compare_ratio(c["clicks"], c["views"], t["clicks"], t["views"], alpha)
    naive = compare_proportions(c["clicks"].sum(0), c["views"].sum(0), t["clicks"].sum(0), t["views"].sum(0), alpha)
    base = user_kwargs.get("conversion", 0.1)
    power = predicted_power(base, base * (1 + lift), n_users, alpha) if lift else alpha
    rows = []
    for metric, test, res, pred in (("conversion", "two-proportion z (statsmodels)", conv, power),
                                    ("revenue_per_user", "Welch t (statsmodels)", rev, np.nan),
                                    ("ctr_delta", "delta-method z over users", ctr, np.nan),
                                    ("ctr_naive", "two-proportion z over views (wrong unit)", naive, np.nan)):
        k = int((np.asarray(res["pvalue"]) < alpha).sum())
        low, high = proportion_confint(k, n_experiments, alpha=0.05, method="wilson")
        rows.append({"metric": metric, "test": test, "experiments": n_experiments, "rejection_rate": k / n_experiments,
                     "ci_low": low, "ci_high": high, "predicted_power": pred})
    return pd.DataFrame(rows)


__all__ = ["calibration", "simulate_users"]
