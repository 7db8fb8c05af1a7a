"""Are the A/B tests calibrated? Simulated experiments with known lift, each test's rejection rate.

:func:`simulate_users` draws per-user outcomes with the spread real shoppers
have; :func:`calibration` runs every test of :mod:`~recapp.experiment.abtest`
on many simulated experiments: with no lift its rejection rate is the
false-positive rate (it should be alpha), with a lift its power.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from recapp.experiment.abtest import compare_means, compare_proportions, compare_ratio, predicted_power


def simulate_users(n_experiments: int, n_users: int, *, conversion: float = 0.1, ctr: float = 0.05,
                   views_mean: float = 8.0, ctr_concentration: float = 5.0, order_value: float = 40.0,
                   lift: float = 0.0, random_state=0) -> dict:
    """Per-user outcomes of one arm for many experiments at once (arrays of shape (n_users, n_experiments)).

    Shoppers differ: views are 1 + Poisson, each shopper's click probability is
    Beta with mean ``ctr`` (``ctr_concentration`` sets how much they differ),
    conversion is Bernoulli and a buyer's revenue is log-normal around
    ``order_value``. ``lift`` multiplies ctr, conversion and order value.
    Returns views, clicks, converted and revenue.
    """
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
    conversion; NaN elsewhere).
    """
    from statsmodels.stats.proportion import proportion_confint

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
