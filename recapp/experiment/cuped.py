"""CUPED: narrower A/B intervals from each shopper's behaviour before the experiment.

Controlled-experiment Using Pre-Experiment Data (Deng, Xu, Kohavi and Walker,
WSDM 2013). A shopper's metric in the experiment, ``y``, is partly predictable
from the same shopper's behaviour before assignment, ``x`` (their pre-period
conversion, revenue or click-through). The adjusted metric::

    y_cuped = y - theta * (x - mean(x)),    theta = cov(y, x) / var(x)

has the same expected difference between arms (``x`` is fixed before the
randomisation, so ``E[mean_t(x) - mean_c(x)] = 0``) and a variance smaller by
the factor ``1 - corr(y, x)**2``; several covariates make ``theta`` the OLS
slopes and the factor ``1 - R**2``.

* **theta is estimated on both arms pooled**, as Deng et al. do. One ``theta``
  for both arms makes the adjustment ``theta * (mean_t(x) - mean_c(x))`` a
  term whose expectation is zero under randomisation, so the difference stays
  unbiased; a separate ``theta`` per arm would let each arm's outcomes choose
  its own correction (the two corrections no longer cancel when the arms'
  slopes differ) and halves the data behind each estimate. Pooled, it is the
  OLS slope of ``y`` on ``x`` over all users, the same for every
  re-randomisation of an A/A test.
* **Shoppers without pre-period data** (first visit in the experiment) get
  covariate 0 plus an indicator ``has_pre`` (Deng et al. 2013, "Handling
  Missing Pre-Experiment Data"): with the indicator among the covariates any
  fill value gives the same estimate, and the indicator is itself a stratum
  (new against returning shoppers) that reduces variance further. When every
  shopper has pre-period data the indicator is constant and dropped.
* **Ratio metrics** such as click-through (clicks / views summed over an arm's
  users) are linearised first: ``l_u = R + (clicks_u - R * views_u) / mean(views)``
  has mean ``R`` and ``var(l) / n`` equal to the delta-method variance of
  :func:`recapp.experiment.abtest.delta_ratio` (Deng, Knoblich and Lu,
  "Applying the Delta Method in Metric Analytics", KDD 2018). The pre-period
  CTR is linearised the same way, around the pooled pre-period ratio (a
  shopper with no pre-period views gets the pooled ratio, i.e. no adjustment,
  and the indicator), and CUPED adjusts ``l`` with it (Deng et al. 2013,
  appendix B). With ``theta=0`` the test is exactly :func:`~recapp.experiment.abtest.compare_ratio`.

How this complements :func:`recapp.experiment.abtest.analyze`: ``analyze``
tests the experiment period alone. :func:`analyze_cuped` takes the same
per-user frame extended by :func:`add_pre_period` (or built by
:func:`simulate_with_pre_period`) and returns, per (arm, metric), an
``adjustment="none"`` row (the same estimates as ``analyze``; conversion with
Welch's test on 0/1, which equals the Wald two-proportion test up to
``n / (n - 1)``) next to an ``adjustment="cuped"`` row with the same expected
difference, a narrower interval and the measured ``variance_reduction``;
:func:`sample_size_cuped` turns the measured per-user standard deviation into
shoppers per arm. CUPED only needs a covariate the treatment cannot move, so
the pre-period must be served identically to both arms.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from recapp.experiment._checks import (check_experiment_arms, check_finite_columns, check_level, check_mean_arms, check_plan,
                                       check_values, name_list)
from recapp.experiment.abtest import ARM_COL, CORRECTIONS, METRICS, compare_means
from recapp.models.base import check_param

#: Prefix of the pre-period columns that :func:`add_pre_period` adds.
PRE_PREFIX = "pre_"
#: The 0/1 column: did the shopper appear in the pre-period?
INDICATOR = "has_pre"
#: Per-user counts of :func:`~recapp.experiment.abtest.user_metrics` copied from the pre-period.
PRE_COLUMNS = ("views", "clicks", "carts", "purchases", "revenue", "converted")


# ---- the adjustment -------------------------------------------------------------------
def _vector(name: str, v, n: int | None = None) -> np.ndarray:
    """One finite number per user, or with ``n`` an (n, p) matrix of covariates; errors name ``name`` and the first bad row."""
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must hold numbers: {exc}") from None
    if n is None and a.ndim != 1:
        raise ValueError(f"{name} must be one value per user (1-D), got shape {a.shape}")
    a = a[:, None] if n is not None and a.ndim == 1 else a
    if n is not None and (a.ndim != 2 or a.shape[0] != n):
        raise ValueError(f"{name} must have one row per user ({n}), got shape {np.shape(v)}")
    bad = np.argwhere(~np.isfinite(a))
    if len(bad):
        hint = "CUPED needs a number per user" if n is None else \
            f"fill users without pre-period data with 0 and add the {INDICATOR!r} indicator"
        raise ValueError(f"{name} has {len(bad)} missing or infinite value(s), the first {float(a[tuple(bad[0])])!r} in "
                         f"row {int(bad[0][0])}; {hint}")
    return a


def _theta(theta, p: int) -> np.ndarray:
    """A given theta as p finite slopes: a NaN would turn every adjusted value into NaN."""
    th = np.atleast_1d(check_values("theta", theta))
    if th.shape != (p,):
        raise ValueError(f"theta must have one value per covariate ({p}), got {th.tolist()}")
    return th


def cuped_theta(y, x):
    """The CUPED coefficient: ``cov(y, x) / var(x)``, the OLS slope of ``y`` on ``x`` with an intercept.

    ``y`` has one value per user; ``x`` is one covariate (1-D, returns a
    float) or several (2-D, n x p, returns p slopes). Pass both arms pooled.
    Raises ValueError on a length mismatch, missing values, fewer than 3 users
    or a constant covariate column (it says nothing about ``y``: CUPED cannot adjust).
    """
    y = _vector("y", y)
    X = _vector("x", x, len(y))
    if len(y) < 3:
        raise ValueError(f"need at least 3 users to estimate theta, got {len(y)}")
    Xc = X - X.mean(axis=0)
    flat = np.flatnonzero(np.ptp(X, axis=0) == 0)
    if len(flat):
        raise ValueError(f"x column(s) {flat.tolist()} are constant: a covariate that never varies cannot adjust y "
                         f"(no pre-period data?); drop it or analyse without CUPED")
    theta = np.linalg.lstsq(Xc, y - y.mean(), rcond=None)[0]
    return float(theta[0]) if np.ndim(x) == 1 else theta


def cuped_adjust(y, x, theta=None) -> np.ndarray:
    """``y - (x - mean(x)) @ theta``: the CUPED-adjusted metric; same mean as ``y``, variance ``(1 - R**2) var(y)`` at the OLS theta.

    ``theta=None`` estimates it with :func:`cuped_theta` on the data given
    (pass both arms pooled, then split the result by arm). A given theta must
    hold one finite number per covariate.
    """
    y = _vector("y", y)
    X = _vector("x", x, len(y))
    if theta is None:
        theta = cuped_theta(y, x)
    return y - (X - X.mean(axis=0)) @ _theta(theta, X.shape[1])


def linearize_ratio(num, den) -> np.ndarray:
    """Per-user values ``R + (num - R * den) / mean(den)``, ``R = sum(num) / sum(den)``.

    Their mean is exactly ``R`` and their variance over ``n`` is the delta-method
    variance of ``R`` (Deng, Knoblich and Lu 2018), so a test on them is the
    delta-method test, and CUPED can adjust them like any per-user metric.
    Both are per-user counts (clicks and views), as in
    :func:`~recapp.experiment.abtest.compare_ratio`. Raises ValueError, naming
    the argument and the first bad row, on a length mismatch, missing values, a
    negative ``num`` or ``den``, a ``den`` summing to 0, or sums too large for
    floating point.
    """
    return _linearize(num, den, "num", "den")


def _linearize(num, den, num_name: str, den_name: str) -> np.ndarray:
    """:func:`linearize_ratio` with errors naming the caller's arguments."""
    num, den = _vector(num_name, num), _vector(den_name, den)
    if len(num) != len(den):
        raise ValueError(f"{num_name} and {den_name} must have one value per user each, got {len(num)} and {len(den)}")
    # A negative count is a data error a positive total would hide; compare_ratio (theta=0 here) refuses it too.
    num, den = check_values(num_name, num, low=0.0), check_values(den_name, den, low=0.0)
    with np.errstate(over="ignore"):
        total_num, total_den = num.sum(), den.sum()
    if not (np.isfinite(total_num) and np.isfinite(total_den)):     # the ratio would be 0 or NaN, silently
        raise ValueError(f"{num_name} and {den_name} sum to {float(total_num)!r} and {float(total_den)!r}, beyond floating point: "
                         "the ratio is undefined; are these counts?")
    if total_den <= 0:
        raise ValueError(f"{den_name} sums to 0 (no views?): the ratio is undefined")
    ratio = total_num / total_den
    return ratio + (num - ratio * den) / den.mean()


# ---- tests -----------------------------------------------------------------------------------
def _compare(v_c: np.ndarray, v_t: np.ndarray, alpha: float, test: str) -> dict:
    """Welch t (``test="t"``) or z test of ``mean(v_t) - mean(v_c)`` with statsmodels, plus se and the per-user sd."""
    check_level("alpha", alpha)
    var_c, var_t = v_c.var(ddof=1), v_t.var(ddof=1)
    if test == "t":
        out = {k: float(v) for k, v in compare_means(v_c, v_t, alpha).items()}
    else:
        cm = CompareMeans(DescrStatsW(v_t), DescrStatsW(v_c))
        with np.errstate(invalid="ignore", divide="ignore"):
            z, p = cm.ztest_ind(usevar="unequal")
        low, high = cm.zconfint_diff(alpha=alpha, usevar="unequal")
        if var_c == var_t == 0 and v_t.mean() == v_c.mean():    # as compare_ratio (no clicks at all): no evidence, not NaN
            z, p = 0.0, 1.0
        out = {"control": float(v_c.mean()), "treatment": float(v_t.mean()), "diff": float(v_t.mean() - v_c.mean()),
               "statistic": float(z), "pvalue": float(p), "ci_low": float(low), "ci_high": float(high)}
    out["se"] = float(np.sqrt(var_c / len(v_c) + var_t / len(v_t)))
    out["sd"] = float(np.sqrt((var_c + var_t) / 2))
    return out


def _cuped(y_c, y_t, X_c, X_t, alpha, theta, test) -> dict:
    y = np.concatenate([y_c, y_t])
    X = np.vstack([X_c, X_t])
    th = np.atleast_1d(cuped_theta(y, X)) if theta is None else _theta(theta, X.shape[1])
    mean_x = X.mean(axis=0)
    adj_c, adj_t = y_c - (X_c - mean_x) @ th, y_t - (X_t - mean_x) @ th
    if test == "t":     # checked here so an error names the adjusted metric, not compare_means' x_c/x_t (our covariates)
        check_mean_arms(adj_c, adj_t, names=("the CUPED-adjusted y_c", "the CUPED-adjusted y_t"))
    out = _compare(adj_c, adj_t, alpha, test)
    raw_c, raw_t = y_c.var(ddof=1) / len(y_c), y_t.var(ddof=1) / len(y_t)
    out["theta"] = float(th[0]) if len(th) == 1 else th
    out["variance_reduction"] = float(1.0 - out["se"] ** 2 / (raw_c + raw_t)) if raw_c + raw_t > 0 else 0.0
    return out


def _check_arms(y_c: np.ndarray, y_t: np.ndarray) -> None:
    if min(len(y_c), len(y_t)) < 2:
        raise ValueError(f"each arm needs at least 2 users, got {len(y_c)} (control) and {len(y_t)} (treatment)")


def compare_means_cuped(y_c, y_t, x_c, x_t, alpha: float = 0.05, theta=None) -> dict:
    """Welch's test of ``mean_t - mean_c`` on CUPED-adjusted per-user values.

    ``y_c``, ``y_t`` are the experiment-period metric per user of the control and treatment arms (conversion 0/1,
    revenue...); ``x_c``, ``x_t`` the pre-period covariate(s) of the same users (1-D or n x p). ``theta=None``
    estimates it on both arms pooled; ``theta=0`` gives the unadjusted test. Returns the keys of
    :func:`~recapp.experiment.abtest.compare_means` (control and treatment are adjusted means, statistic, pvalue,
    ci_low, ci_high at level ``1 - alpha``) plus se, sd (per-user standard deviation of the adjusted metric), theta
    and variance_reduction (``1 - se**2 / se_unadjusted**2``: close to ``corr(y, x)**2``, below 1, and slightly
    negative only by chance when the covariate is useless). Both arms' adjusted metric constant but different is a
    ValueError saying so (Welch's test is undefined).
    """
    y_c, y_t = _vector("y_c", y_c), _vector("y_t", y_t)
    _check_arms(y_c, y_t)
    return _cuped(y_c, y_t, _vector("x_c", x_c, len(y_c)), _vector("x_t", x_t, len(y_t)), alpha, theta, "t")


def compare_ratio_cuped(num_c, den_c, num_t, den_t, pre_num_c, pre_den_c, pre_num_t, pre_den_t, alpha: float = 0.05,
                        theta=None, extra_c=None, extra_t=None) -> dict:
    """z-test of ``ratio_t - ratio_c`` (clicks / views) with the delta method and CUPED.

    Per-user experiment numerators and denominators of each arm are linearised
    with :func:`linearize_ratio` around the arm's own ratio; the pre-period ones
    (``pre_num_*``, ``pre_den_*``, zeros for shoppers without pre-period
    data) around the ratio of both arms pooled, and that is the covariate;
    ``extra_c`` / ``extra_t`` (n x q) add covariates such as the ``has_pre``
    indicator. ``theta=0`` gives exactly :func:`~recapp.experiment.abtest.compare_ratio`.
    Returns the keys of :func:`compare_means_cuped`. Numerators and denominators are
    counts: a negative or missing one is a ValueError naming the argument and row.
    """
    y_c, y_t = _linearize(num_c, den_c, "num_c", "den_c"), _linearize(num_t, den_t, "num_t", "den_t")
    _check_arms(y_c, y_t)
    pre = {}
    for name, v, n in (("pre_num_c", pre_num_c, len(y_c)), ("pre_den_c", pre_den_c, len(y_c)),
                       ("pre_num_t", pre_num_t, len(y_t)), ("pre_den_t", pre_den_t, len(y_t))):
        pre[name] = _vector(name, v)
        if len(pre[name]) != n:
            raise ValueError(f"{name} must have one value per user of its arm ({n}), got {len(pre[name])}")
        check_values(name, pre[name], low=0.0)     # pre-period counts, named here rather than as num/den
    pre_num = np.concatenate([pre["pre_num_c"], pre["pre_num_t"]])
    pre_den = np.concatenate([pre["pre_den_c"], pre["pre_den_t"]])
    if pre_den.sum() <= 0:
        raise ValueError("pre_den_c and pre_den_t sum to 0: no pre-period views, so no pre-period ratio to adjust with")
    x = linearize_ratio(pre_num, pre_den)
    X_c, X_t = x[: len(y_c), None], x[len(y_c):, None]
    if (extra_c is None) != (extra_t is None):
        raise ValueError("pass extra_c and extra_t together (the same covariates for both arms)")
    if extra_c is not None:
        X_c = np.hstack([X_c, _vector("extra_c", extra_c, len(y_c))])
        X_t = np.hstack([X_t, _vector("extra_t", extra_t, len(y_t))])
    return _cuped(y_c, y_t, X_c, X_t, alpha, theta, "z")


def sample_size_cuped(sd: float, effect: float, variance_reduction: float = 0.0, alpha: float = 0.05, power: float = 0.8,
                      ratio: float = 1.0) -> int:
    """Users per control arm to detect an absolute ``effect`` on a metric with per-user standard deviation ``sd``.

    ``NormalIndPower`` with effect size ``effect / (sd * sqrt(1 - variance_reduction))``:
    CUPED divides the users needed by ``1 / (1 - variance_reduction)``. For a
    ratio metric ``sd`` is that of the linearised values (the ``sd`` of
    :func:`compare_ratio_cuped` at ``theta=0``). Unlike
    :func:`~recapp.experiment.abtest.sample_size` (Cohen's h for a
    proportion), this works for any metric from its measured spread. Refused:
    ``sd <= 0``, ``effect = 0``, ``variance_reduction`` outside [0, 1),
    ``alpha``/``power`` outside (0, 1) or ``power <= alpha``, ``ratio <= 0``.
    """
    check_param("sd", sd, low=0.0, low_inclusive=False)
    check_param("effect", effect)
    if effect == 0:
        raise ValueError(f"effect must be a non-zero number (absolute difference to detect), got {effect!r}")
    check_param("variance_reduction", variance_reduction, low=0.0)
    if not variance_reduction < 1:
        raise ValueError(f"variance_reduction must lie in [0, 1), got {variance_reduction!r}")
    check_plan(alpha, power, ratio)
    es = abs(effect) / (sd * np.sqrt(1 - variance_reduction))
    n = NormalIndPower().solve_power(effect_size=es, alpha=alpha, power=power, ratio=ratio, alternative="two-sided")
    return int(np.ceil(n))


# ---- the analysis table -----------------------------------------------------------------------
def _spec(metric: str, per_user: pd.DataFrame, covariates: dict, prefix: str, indicator: str) -> dict:
    """What to compare and adjust with for one metric; raises when the frame lacks a column."""
    extra = name_list(f"covariates[{metric!r}]", covariates.get(metric, [indicator]))
    if metric == "ctr":
        need = ["clicks", "views", prefix + "clicks", prefix + "views"]
        spec = {"kind": "ratio", "counts": need}
    else:
        y = {"conversion": "converted", "revenue_per_user": "revenue"}.get(metric, metric)
        if y not in per_user.columns or not pd.api.types.is_numeric_dtype(per_user[y]):
            raise ValueError(f"unknown metric {metric!r}; accepted: {list(METRICS)} or a numeric column of per_user")
        extra = name_list(f"covariates[{metric!r}]", covariates.get(metric, [prefix + y, indicator]))
        need, spec = [y], {"kind": "mean", "y": y}
    missing = [c for c in need + extra if c not in per_user.columns]
    if missing:
        raise ValueError(f"per_user lacks {missing} for metric {metric!r}; add the pre-period with add_pre_period "
                         f"or name existing columns in covariates")
    spec["covariates"], spec["columns"] = extra, need + extra
    return spec


def _row_values(spec: dict, c: pd.DataFrame, t: pd.DataFrame, both: pd.DataFrame, prefix: str,
                alpha: float) -> tuple[dict, dict, list[str], str]:
    """The unadjusted and the CUPED comparison of one metric (``both``: the two arms' rows), the covariates used and a note."""
    usable = [k for k in spec["covariates"] if np.ptp(both[k].to_numpy(dtype=np.float64)) > 0]
    dropped = [k for k in spec["covariates"] if k not in usable]
    note = f"constant, dropped: {', '.join(dropped)}" if dropped else ""
    if spec["kind"] == "ratio":
        raw = _compare(linearize_ratio(c["clicks"], c["views"]), linearize_ratio(t["clicks"], t["views"]), alpha, "z")
        pre_num, pre_den = both[prefix + "clicks"].to_numpy(dtype=np.float64), both[prefix + "views"].to_numpy(dtype=np.float64)
        if pre_den.sum() <= 0 or np.ptp(linearize_ratio(pre_num, pre_den)) == 0:
            return raw, None, [], "pre-period CTR is missing or the same for everyone: unadjusted"
        ex = {"extra_c": c[usable].to_numpy(dtype=np.float64), "extra_t": t[usable].to_numpy(dtype=np.float64)} if usable else {}
        cup = compare_ratio_cuped(c["clicks"], c["views"], t["clicks"], t["views"], c[prefix + "clicks"], c[prefix + "views"],
                                  t[prefix + "clicks"], t[prefix + "views"], alpha, **ex)
        return raw, cup, [f"{prefix}clicks/{prefix}views"] + usable, note
    y_c, y_t = c[spec["y"]].to_numpy(dtype=np.float64), t[spec["y"]].to_numpy(dtype=np.float64)
    raw = _compare(y_c, y_t, alpha, "t")
    if not usable:
        return raw, None, [], f"no usable covariate ({note}): unadjusted"
    cup = compare_means_cuped(y_c, y_t, c[usable].to_numpy(dtype=np.float64), t[usable].to_numpy(dtype=np.float64), alpha)
    return raw, cup, usable, note


def analyze_cuped(per_user: pd.DataFrame, control: str = "control", metrics=METRICS, covariates: dict | None = None,
                  alpha: float = 0.05, correction: str = "holm", col_arm: str = ARM_COL, prefix: str = PRE_PREFIX,
                  indicator: str = INDICATOR) -> pd.DataFrame:
    """Every arm against ``control`` on every metric, without and with CUPED: two tidy rows per (arm, metric).

    ``per_user`` is :func:`~recapp.experiment.abtest.user_metrics` plus the
    pre-period columns of :func:`add_pre_period`. Default covariates: the same
    metric in the pre-period plus ``has_pre`` (conversion: ``pre_converted``;
    revenue_per_user: ``pre_revenue``; another numeric column ``m``:
    ``pre_m``; ctr: the linearised pre-period CTR plus ``has_pre``).
    ``covariates`` maps a metric to the columns to use instead (for ctr: the
    columns added to the pre-period CTR). Columns: arm, metric, adjustment
    ("none" or "cuped"), users, control, treatment, diff, lift, se, ci_low,
    ci_high, pvalue, pvalue_adj, significant (``correction`` over the rows of
    each adjustment; "none" skips it), sd (per-user), variance_reduction (0
    for "none"), theta, covariates and note (a constant covariate is dropped;
    with none left the "cuped" row repeats the unadjusted one and says so).

    Refused (ValueError): a user without an arm, an arm of one user, no metrics,
    a missing or infinite value in a column a metric uses (covariates included:
    give shoppers without pre-period data 0), a negative click or view count
    (ctr), ``alpha`` outside (0, 1), an unknown ``correction``.
    """
    from statsmodels.stats.multitest import multipletests

    check_level("alpha", alpha)
    try:
        if correction != "none":     # statsmodels' aliases ("bonf") stay accepted
            multipletests([1.0], method=correction)
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"correction={correction!r} is not accepted; accepted values: {list(CORRECTIONS)}") from None
    arms = check_experiment_arms(per_user, col_arm, control)
    metrics = name_list("metrics", metrics)
    if not metrics:
        raise ValueError(f"metrics is empty; name at least one of {list(METRICS)} or a numeric column of per_user")
    covariates = dict(covariates or {})
    specs = {m: _spec(m, per_user, covariates, prefix, indicator) for m in metrics}
    used = list(dict.fromkeys(c for spec in specs.values() for c in spec["columns"]))
    check_finite_columns(per_user, "per_user", used, hint=f"; CUPED needs a number per user: give shoppers without "
                         f"pre-period data 0 and the {indicator!r} indicator 0 (add_pre_period does both)")
    # Named by column and row label here; linearize_ratio would say num/den and a position within the arm.
    check_finite_columns(per_user, "per_user", specs.get("ctr", {}).get("counts", ()), "; clicks and views are counts", low=0.0)
    c = per_user[per_user[col_arm] == control]
    rows = []
    for arm in sorted(arms, key=str):
        t = per_user[per_user[col_arm] == arm]
        both = pd.concat([c, t])
        for metric, spec in specs.items():
            raw, cup, used, note = _row_values(spec, c, t, both, prefix, alpha)
            for adjustment, r in (("none", raw), ("cuped", cup if cup is not None else {**raw, "variance_reduction": 0.0})):
                rows.append({"arm": arm, "metric": metric, "adjustment": adjustment, "users": len(t), "control": r["control"],
                             "treatment": r["treatment"], "diff": r["diff"],
                             "lift": r["diff"] / r["control"] if r["control"] else np.nan, "se": r["se"],
                             "ci_low": r["ci_low"], "ci_high": r["ci_high"], "pvalue": r["pvalue"], "sd": r["sd"],
                             "variance_reduction": r.get("variance_reduction", 0.0) if adjustment == "cuped" else 0.0,
                             "theta": tuple(np.atleast_1d(r["theta"]).tolist()) if "theta" in r else (),
                             "covariates": ", ".join(used) if adjustment == "cuped" else "",
                             "note": note if adjustment == "cuped" else ""})
    out = pd.DataFrame(rows)
    out["pvalue_adj"] = out["pvalue"]
    if correction != "none":
        for _, idx in out.groupby("adjustment").groups.items():
            pvalues = out.loc[idx, "pvalue"].fillna(1.0).to_numpy()
            out.loc[idx, "pvalue_adj"] = multipletests(pvalues, alpha=alpha, method=correction)[1]
    out["significant"] = out["pvalue_adj"] < alpha
    cols = ["arm", "metric", "adjustment", "users", "control", "treatment", "diff", "lift", "se", "ci_low", "ci_high", "pvalue",
            "pvalue_adj", "significant", "sd", "variance_reduction", "theta", "covariates", "note"]
    return out[cols]


__all__ = ["PRE_COLUMNS", "PRE_PREFIX", "INDICATOR", "cuped_theta", "cuped_adjust", "linearize_ratio", "compare_means_cuped",
           "compare_ratio_cuped", "sample_size_cuped", "analyze_cuped"]
