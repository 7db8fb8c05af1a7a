"""A/B tests with sound statistics: assignment, sample-ratio checks, per-user metrics and tests.

Assignment and the sample-ratio check are in :mod:`recapp.experiment.assignment`
(re-exported here: ``assign``, ``hash_unit``, ``srm_check``, ``SRMResult``).

The randomisation unit is the shopper, so every metric is first aggregated per
user and every test treats users, not events, as the independent draws:

* conversion (share of users who bought) is a proportion: ``statsmodels``
  ``test_proportions_2indep`` / ``confint_proportions_2indep``;
* revenue per user is a mean: Welch's t-test and interval from
  ``statsmodels.stats.weightstats``;
* click-through rate (clicks / views over all users of an arm) is a ratio of
  two per-user sums, whose variance the delta method gives (Deng, Knoblich
  and Lu, "Applying the Delta Method in Metric Analytics", KDD 2018). Testing
  it as if every view were independent understates the variance;
  :func:`recapp.experiment.ab_calibration.calibration` shows the inflated
  false-positive rate that causes.

Several arms or metrics are corrected with ``statsmodels`` ``multipletests``;
power and sample size come from ``NormalIndPower``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_effectsize, test_proportions_2indep
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttest_ind

from recapp.experiment._checks import (arms_of_users, check_counts, check_experiment_arms, check_finite_columns, check_level,
                                        check_mean_arms, check_power_args, check_purchase_values, check_ratio_arm,
                                        check_sizing, distinct_names, report_dropped)
# Assignment and the SRM check live in their own module; these names stay importable from here.
from recapp.experiment.assignment import ARM_COL, SRM_THRESHOLD, SRMResult, assign, hash_unit, srm_check  # noqa: F401
from recapp.models.base import check_param
from recapp.schema import EVENT_COL, USER_COL, VALUE_COL, check_event_types, require_columns

METRICS = ("ctr", "conversion", "revenue_per_user")
#: ``analyze`` corrections: "none" or a ``statsmodels`` ``multipletests`` method.
CORRECTIONS = ("none", "bonferroni", "sidak", "holm-sidak", "holm", "simes-hochberg", "hommel", "fdr_bh", "fdr_by",
               "fdr_tsbh", "fdr_tsbky")


# ---- per-user metrics ---------------------------------------------------------------
def user_metrics(events: pd.DataFrame, assignment: pd.Series | None = None, *, col_user: str = USER_COL,
                 col_event: str = EVENT_COL, col_value: str = VALUE_COL, col_arm: str = ARM_COL) -> pd.DataFrame:
    """One row per user: arm, views, clicks, carts, purchases, revenue, converted, ctr.

    ``events`` is a schema event log in which ``view`` is an impression (as the
    simulator writes it) and ``value`` on purchases is the revenue. The arm
    comes from ``assignment`` (index user_id) or from an ``arm`` column. Users
    assigned but without events get zeros: dropping them would bias every metric.

    A user listed twice in ``assignment`` (or with events in two arms), a purchase whose value is NaN, or an event
    type outside the schema's is a ValueError: none can be counted soundly; so is ``events`` without the user or
    event column (``assignment`` not a Series: TypeError). Events whose user is missing, and users with events but
    no arm, are left out, counted in ``attrs["dropped"]`` (events_without_user, unassigned_users,
    unassigned_events) and reported with a RuntimeWarning.
    """
    require_columns(events, "events", col_user, col_event)
    if assignment is None and col_arm not in events.columns:
        raise ValueError(f"pass an assignment Series or an {col_arm!r} column in events")
    if assignment is not None and not isinstance(assignment, pd.Series):
        raise TypeError(f"assignment must be a pandas Series of arms indexed by user, got {type(assignment).__name__}")
    no_user = events[col_user].isna().to_numpy()
    ev = events[col_event].to_numpy(dtype=object)
    check_event_types(f"events[{col_event!r}]", map(str, pd.unique(ev)))    # "VIEW" or NaN would count as nothing
    value = events[col_value].to_numpy(dtype=np.float64) if col_value in events.columns else np.zeros(len(ev))
    check_purchase_values(events, ev, value, no_user, col_user, col_value)
    frame = pd.DataFrame({
        col_user: events[col_user].to_numpy(),
        "views": ev == "view", "clicks": ev == "click", "carts": ev == "cart", "purchases": ev == "purchase",
        "revenue": np.where(ev == "purchase", value, 0.0),
    })[~no_user]
    per_user = frame.groupby(col_user, sort=True).sum()
    per_user[["views", "clicks", "carts", "purchases"]] = per_user[["views", "clicks", "carts", "purchases"]].astype("int64")
    arms = arms_of_users(events, assignment, ~no_user, col_user, col_arm)
    dropped = report_dropped(no_user, frame[col_user], per_user.index, arms.index, col_user)
    per_user = per_user.reindex(arms.index, fill_value=0)
    per_user.insert(0, col_arm, arms.to_numpy())
    per_user["converted"] = (per_user["purchases"] > 0).astype("int64")
    with np.errstate(invalid="ignore", divide="ignore"):
        per_user["ctr"] = per_user["clicks"] / per_user["views"].where(per_user["views"] > 0)
    per_user.index.name = col_user
    per_user.attrs["dropped"] = dropped
    return per_user


# ---- tests -------------------------------------------------------------------------
def delta_ratio(num, den, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ratio of sums ``sum(num) / sum(den)`` and its delta-method variance, along ``axis``.

    With per-user pairs (x_u, y_u), n users, means mx, my, variances sxx, syy
    and covariance sxy (Deng et al. 2018, eq. 2)::

        Var(mx / my) ~= (sxx / my**2 - 2 * mx * sxy / my**3 + mx**2 * syy / my**4) / n

    Vectorised: 2-D input gives one ratio per column (one experiment per column).
    Refused (ValueError): a missing or infinite value, ``num`` and ``den`` of
    different shapes, an ``axis`` the input lacks, fewer than 2 users along it,
    a ``den`` summing to 0 (the ratio is undefined).
    """
    # No sign check: the delta method holds for any pairs, not only counts.
    return _delta_ratio(*check_ratio_arm("", num, den, axis, names=("num", "den"), low=None), axis)


def _delta_ratio(x: np.ndarray, y: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[axis]
    mx, my = x.mean(axis=axis), y.mean(axis=axis)
    dx, dy = x - np.expand_dims(mx, axis), y - np.expand_dims(my, axis)
    sxx = (dx * dx).sum(axis=axis) / (n - 1)
    syy = (dy * dy).sum(axis=axis) / (n - 1)
    sxy = (dx * dy).sum(axis=axis) / (n - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = mx / my
        var = (sxx / my**2 - 2.0 * mx * sxy / my**3 + mx**2 * syy / my**4) / n
    return ratio, var


def compare_ratio(num_c, den_c, num_t, den_t, alpha: float = 0.05, axis: int = 0) -> dict:
    """Two-sided z-test and interval for ``ratio_t - ratio_c`` with delta-method variances.

    Inputs are per-user numerators and denominators (clicks and views) of the
    control and treatment arms. Returns a dict of arrays (scalars for 1-D input):
    control, treatment, diff, se, statistic, pvalue, ci_low, ci_high. Where
    both arms show the same ratio with zero variance (no clicks at all, say)
    the statistic is 0 and the p-value 1, as in :func:`compare_proportions`.
    Each arm needs two users or more along ``axis`` (an axis of the input) and a positive denominator sum;
    values are finite and >= 0; 2-D arms hold the same number of tests (or one, compared with each of the other's).
    """
    check_level("alpha", alpha)
    rc, vc = _delta_ratio(*check_ratio_arm("c", num_c, den_c, axis), axis)
    rt, vt = _delta_ratio(*check_ratio_arm("t", num_t, den_t, axis), axis)
    try:
        np.broadcast_shapes(np.shape(rc), np.shape(rt))
    except ValueError:      # numpy's "could not be broadcast" would name neither arm
        raise ValueError(f"num_c/den_c give {np.size(rc)} test(s) and num_t/den_t {np.size(rt)} (shapes {np.shape(rc)} and "
                         f"{np.shape(rt)} without axis {axis}); 2-D arms need one column per test each") from None
    diff, se = rt - rc, np.sqrt(vc + vt)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where((se == 0) & (diff == 0), 0.0, diff / se)[()]
    # The arms are independent, so the difference is asymptotically normal with the summed variances.
    zcrit = stats.norm.ppf(1 - alpha / 2)
    return {"control": rc, "treatment": rt, "diff": diff, "se": se, "statistic": z,
            "pvalue": 2 * stats.norm.sf(np.abs(z)), "ci_low": diff - zcrit * se, "ci_high": diff + zcrit * se}


PROPORTION_TESTS = ("wald", "agresti-caffo", "score")
PROPORTION_INTERVALS = ("wald", "agresti-caffo", "newcomb", "score")


def compare_proportions(count_c, nobs_c, count_t, nobs_t, alpha: float = 0.05, method: str = "wald",
                        ci_method: str | None = None) -> dict:
    """Test and interval for ``p_t - p_c`` with statsmodels; arrays give one comparison per element.

    ``method`` is the test (``test_proportions_2indep``): "wald",
    "agresti-caffo" or "score". ``ci_method`` is the interval
    (``confint_proportions_2indep``): "wald", "agresti-caffo", "newcomb" or
    "score"; None uses ``method``. Newcomb is an interval only: ask for it with
    ``ci_method="newcomb"`` (``method="newcomb"`` raises). Inputs broadcast
    against each other; statsmodels' score test and interval take scalars
    only, so with arrays they run element by element (slower).

    When both arms show the same degenerate rate (0 of n in both, or n of n in
    both) there is no evidence of a difference and the Wald/score variance
    is 0: the statistic is 0 and the p-value 1 (not NaN). Where statsmodels'
    root finder cannot solve the score interval (about half of all small
    counts, such as 2/50 vs 9/60, and 0 of n in both arms) the same statsmodels
    score test is inverted here: the ends are the differences whose p-value is
    ``alpha``. An end stays NaN only where that test is itself NaN between the
    estimate and the end (an arm with no or few successes, e.g. 11/32 vs 0/39);
    the Newcomb and Agresti-Caffo intervals are always defined.
    Returns a dict of arrays (scalars for scalar input): control, treatment,
    diff, statistic, pvalue, ci_low, ci_high. Counts and nobs must be finite
    with ``0 <= count <= nobs`` and ``nobs > 0`` (ValueError naming the first bad one).
    """
    if method not in PROPORTION_TESTS:
        hint = ' (an interval only: pass ci_method="newcomb" with a test method)' if method == "newcomb" else ""
        raise ValueError(f"method={method!r} is not a test method{hint}; accepted: {list(PROPORTION_TESTS)}")
    ci_method = method if ci_method is None else ci_method
    if ci_method not in PROPORTION_INTERVALS:
        raise ValueError(f"ci_method={ci_method!r} is not accepted; accepted: {list(PROPORTION_INTERVALS)}")
    check_level("alpha", alpha)
    arrays = check_counts(count_c, nobs_c, count_t, nobs_t)
    shape = arrays[0].shape
    count_c, nobs_c, count_t, nobs_t = (a.ravel() for a in arrays)

    def _one(fn, i, m, on_error, **kw):
        counts = (float(count_t[i]), float(nobs_t[i]), float(count_c[i]), float(nobs_c[i]))
        try:
            return fn(*counts, compare="diff", method=m, **kw)
        except ValueError:
            if on_error is None:
                raise
            return on_error(*counts)

    def _run(fn, m, on_error=None, **kw):
        if m == "score":
            return [_one(fn, i, m, on_error, **kw) for i in range(len(count_c))]
        return fn(count_t, nobs_t, count_c, nobs_c, compare="diff", method=m, **kw)

    with np.errstate(invalid="ignore", divide="ignore"):
        res = _run(test_proportions_2indep, method)
        if isinstance(res, list):
            stat = np.array([float(r.statistic) for r in res])
            pvalue = np.array([float(r.pvalue) for r in res])
        else:
            stat = np.asarray(res.statistic, dtype=np.float64).reshape(-1)
            pvalue = np.asarray(res.pvalue, dtype=np.float64).reshape(-1)
        # statsmodels' score-interval bracket starts where its test is NaN: there the interval is inverted here.
        ci = _run(confint_proportions_2indep, ci_method, on_error=lambda *c: _score_interval(*c, alpha=alpha), alpha=alpha)
        if isinstance(ci, list):
            low, high = np.array([float(c[0]) for c in ci]), np.array([float(c[1]) for c in ci])
        else:
            low, high = (np.asarray(v, dtype=np.float64).reshape(-1) for v in ci)
        pc, pt = count_c / nobs_c, count_t / nobs_t
    same = ((count_c == 0) & (count_t == 0)) | ((count_c == nobs_c) & (count_t == nobs_t))
    stat = np.where(same, 0.0, stat)
    pvalue = np.where(same, 1.0, pvalue)
    out = {"control": pc, "treatment": pt, "diff": pt - pc, "statistic": stat, "pvalue": pvalue, "ci_low": low, "ci_high": high}
    return {k: (v.reshape(shape) if shape else v.reshape(())[()]) for k, v in out.items()}


def _score_interval(count_t: float, nobs_t: float, count_c: float, nobs_c: float, alpha: float) -> tuple[float, float]:
    """The differences ``p_t - p_c`` whose score test (``test_proportions_2indep``) has p-value ``alpha``.

    statsmodels brackets each end at -1 or 1, where its test is NaN; here each bracket is found by walking
    from the estimate toward -1 or 1 until the test rejects. An end the test never reaches is -1 or 1; one
    with no finite p-value before the rejection, or a NaN inside the bracket, is NaN.
    """
    def pvalue(v):
        return float(test_proportions_2indep(count_t, nobs_t, count_c, nobs_c, value=v, compare="diff", method="score").pvalue)

    diff = count_t / nobs_t - count_c / nobs_c
    ends = []
    for end in (-1.0, 1.0):
        if diff == end:         # all of one arm against none of the other: that end is the estimate
            ends.append(end)
            continue
        inner, outer = None, end
        # A rate of 0 or 1 can make the test NaN at the estimate itself (0/0): step off it first.
        for step in (0.0, 1e-9, 1e-6, 1e-3, *(1 - 0.5**k for k in range(1, 60))):
            v = diff + (end - diff) * step
            p = pvalue(v)
            if np.isfinite(p) and p < alpha:
                outer = v
                break
            if np.isfinite(p):
                inner = v
        if inner is None or outer == end:
            ends.append(np.nan if inner is None else end)
            continue
        try:
            ends.append(optimize.brentq(lambda v: pvalue(v) - alpha, min(inner, outer), max(inner, outer), xtol=1e-14))
        except ValueError:      # the test is NaN somewhere inside the bracket: no end to report
            ends.append(np.nan)
    return ends[0], ends[1]


def compare_means(x_c, x_t, alpha: float = 0.05) -> dict:
    """Welch's t-test and interval for ``mean_t - mean_c`` (statsmodels; 2-D input: one test per column).

    Each arm needs at least 2 users with finite values; 2-D arms need the same number of columns (or one
    column, compared with every column of the other arm). When both arms are
    constant and equal (every user 0 revenue, say) there is no evidence of a
    difference: statistic 0, p-value 1 and the interval [0, 0]. Both constant
    but different leaves Welch's test undefined (zero standard error): ValueError.
    """
    check_level("alpha", alpha)
    x_c, x_t, flat = check_mean_arms(x_c, x_t)
    mc, mt = x_c.mean(axis=0), x_t.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        stat, pvalue, _ = ttest_ind(x_t, x_c, usevar="unequal")
        low, high = CompareMeans(DescrStatsW(x_t), DescrStatsW(x_c)).tconfint_diff(alpha=alpha, usevar="unequal")
    stat, pvalue = np.where(flat, 0.0, stat), np.where(flat, 1.0, pvalue)
    low, high = np.where(flat, 0.0, low), np.where(flat, 0.0, high)
    if np.ndim(mc) == 0:
        stat, pvalue, low, high = (float(v) for v in (stat, pvalue, low, high))
    return {"control": mc, "treatment": mt, "diff": mt - mc, "statistic": stat, "pvalue": pvalue, "ci_low": low, "ci_high": high}


#: The per-user columns each built-in metric reads (any other metric is a column of its own name).
METRIC_COLUMNS = {"ctr": ("clicks", "views"), "conversion": ("converted",), "revenue_per_user": ("revenue",)}


def _compare_metric(metric: str, c: pd.DataFrame, t: pd.DataFrame, alpha: float) -> dict:
    if metric == "ctr":
        if c["views"].sum() <= 0 or t["views"].sum() <= 0:
            # No views in an arm: its CTR is undefined, a row of NaN that is never significant.
            return dict.fromkeys(("control", "treatment", "diff", "se", "statistic", "pvalue", "ci_low", "ci_high"), np.nan)
        return compare_ratio(c["clicks"], c["views"], t["clicks"], t["views"], alpha)
    if metric == "conversion":
        return compare_proportions(c["converted"].sum(), len(c), t["converted"].sum(), len(t), alpha)
    if metric == "revenue_per_user":
        return compare_means(c["revenue"], t["revenue"], alpha)
    if metric in c.columns:
        return compare_means(c[metric], t[metric], alpha)
    raise ValueError(f"unknown metric {metric!r}; accepted: {list(METRICS)} or a numeric column of the per-user frame")


def analyze(per_user: pd.DataFrame, control: str = "control", metrics=METRICS, alpha: float = 0.05,
            correction: str = "holm", col_arm: str = ARM_COL) -> pd.DataFrame:
    """Compare every arm with ``control`` on every metric; one tidy row per (arm, metric).

    ``per_user`` comes from :func:`user_metrics`. Columns: arm, metric, users, control, treatment, diff, lift
    (relative), ci_low, ci_high, pvalue, pvalue_adj and significant (after ``correction``, one of
    :data:`CORRECTIONS`, over all rows; "none" skips it). Unadjusted intervals are at level ``1 - alpha``. A row
    whose test is undefined (CTR with no views in an arm) keeps pvalue and pvalue_adj NaN and is not significant;
    it still counts as one test in the correction (as p = 1, conservative). Refused (ValueError): a user without
    an arm, an arm of one user, a column a metric reads missing or holding a missing or infinite value,
    ``metrics`` empty, repeated or a bare string.
    """
    check_level("alpha", alpha)
    check_param("correction", correction, choices=CORRECTIONS)
    metrics = distinct_names("metrics", metrics, f"name each of {list(METRICS)} or a numeric column of per_user once")
    require_columns(per_user, "per_user", *(c for m in metrics for c in METRIC_COLUMNS.get(m, ())))
    arms = check_experiment_arms(per_user, col_arm, control)
    # A NaN would fail deep in a test as "x_c[0] = nan", naming neither the column nor the user.
    check_finite_columns(per_user, "per_user", [c for m in metrics for c in METRIC_COLUMNS.get(m, (m,)) if c in per_user.columns])
    c = per_user[per_user[col_arm] == control]
    rows = []
    for arm in arms:
        t = per_user[per_user[col_arm] == arm]
        for metric in metrics:
            r = {k: float(v) for k, v in _compare_metric(metric, c, t, alpha).items()}
            rows.append({"arm": arm, "metric": metric, "users": len(t), "control": r["control"], "treatment": r["treatment"],
                         "diff": r["diff"], "lift": r["diff"] / r["control"] if r["control"] else np.nan,
                         "ci_low": r["ci_low"], "ci_high": r["ci_high"], "pvalue": r["pvalue"]})
    out = pd.DataFrame(rows)
    if correction == "none":
        out["pvalue_adj"] = out["pvalue"]
    else:
        adj = multipletests(out["pvalue"].fillna(1.0).to_numpy(), alpha=alpha, method=correction)[1]
        out["pvalue_adj"] = np.where(out["pvalue"].isna(), np.nan, adj)
    out["significant"] = out["pvalue_adj"] < alpha
    return out


# ---- power -------------------------------------------------------------------------
def sample_size(baseline: float, mde: float, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0,
                relative: bool = True) -> int:
    """Users per control arm to detect a conversion change with ``NormalIndPower``.

    ``mde`` is the minimum detectable effect: relative (0.05 = +5%) or absolute.
    The effect size is Cohen's h (``proportion_effectsize``); the treatment arm
    gets ``ratio`` times as many users. ``alpha < power < 1``, ``ratio > 0`` and
    ``mde != 0``; anything else is a ValueError.
    """
    check_sizing(baseline, mde, alpha, power, ratio)
    target = baseline * (1 + mde) if relative else baseline + mde
    if not (0 < baseline < 1 and 0 < target < 1):
        raise ValueError(f"baseline={baseline!r} and the target rate {target!r} must lie in (0, 1)")
    h = proportion_effectsize(target, baseline)
    n = NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=power, ratio=ratio, alternative="two-sided")
    return int(np.ceil(n))


def predicted_power(baseline: float, target: float, nobs: int, alpha: float = 0.05, ratio: float = 1.0) -> float:
    """Power of a two-sided two-proportion test with ``nobs`` control users (``NormalIndPower``).

    ``baseline`` and ``target`` lie in [0, 1], ``nobs > 0``, ``ratio > 0``, alpha in (0, 1).
    """
    check_param("baseline", baseline, low=0.0, high=1.0)
    check_param("target", target, low=0.0, high=1.0)
    check_param("nobs", nobs, low=0, low_inclusive=False)
    check_power_args(alpha, ratio)
    h = proportion_effectsize(target, baseline)
    return float(NormalIndPower().power(effect_size=h, nobs1=nobs, alpha=alpha, ratio=ratio, alternative="two-sided"))
