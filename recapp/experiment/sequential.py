"""Sequential monitoring: looking at an A/B test before it ends without inflating false positives.

Checking a fixed-horizon test every day and stopping at the first p < 0.05
raises the false-positive rate far above 5% (:func:`peeking_simulation`
measures it). Two remedies:

* group-sequential boundaries from an alpha-spending function (Lan and DeMets,
  Biometrika 1983): the O'Brien-Fleming-type function, which spends
  ``alpha / 2`` on each side, ``alpha(t) = 2 * (2 - 2 * Phi(z_{1-alpha/4} / sqrt(t)))``
  (the gsDesign / ldbounds convention; :func:`alpha_spent`), spends almost
  nothing early, so the final look keeps nearly the fixed-horizon critical value;
* the mixture sequential probability ratio test (mSPRT; Johari, Pekelis and
  Walsh, "Always valid inference", Operations Research 2022), whose p-value
  and confidence sequence stay valid however often and whenever one looks.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats

from recapp.experiment._checks import check_axis, check_level, check_values
from recapp.experiment._sim_checks import check_broadcast, check_seed, whole_numbers
from recapp.experiment.abtest import compare_proportions
from recapp.models.base import check_param

SPENDING = ("obrien_fleming", "pocock")


def _wald_looks(xc, nc, xt, nt, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wald z, its p-value and the per-pair variance ``pc(1 - pc) + pt(1 - pt)`` the mSPRT uses, per look.

    Where both arms' rates are 0 or 1 and differ (0 of 1 against 1 of 1), that plug-in variance is 0: the Wald z
    would be infinite and the mixture ratio overflow, so one user per arm would stop the test for good. Such a look
    uses the pooled (null) variance instead, which is positive there; every other look keeps the Wald numbers.
    """
    res = compare_proportions(xc, nc, xt, nt, alpha=alpha, method="wald")
    z = np.array(res["statistic"], dtype=np.float64)
    p = np.array(res["pvalue"], dtype=np.float64)
    pc, pt = xc / nc, xt / nt
    var = pc * (1 - pc) + pt * (1 - pt)
    flat = (var == 0) & (pc != pt)
    if flat.any():
        pooled = (xc + xt) / (nc + nt)
        null_var = pooled * (1 - pooled)
        z = np.where(flat, (pt - pc) / np.sqrt(np.where(flat, null_var * (1 / nc + 1 / nt), 1.0)), z)
        p = np.where(flat, 2 * stats.norm.sf(np.abs(z)), p)
        var = np.where(flat, 2 * null_var, var)
    return z, p, var


def alpha_spent(t, alpha: float = 0.05, spending: str = "obrien_fleming") -> np.ndarray:
    """Cumulative two-sided type-I error allowed by information fraction ``t`` in (0, 1].

    Symmetric two-sided boundaries spend ``alpha / 2`` on each side (the
    convention of Lan and DeMets 1983, gsDesign and ldbounds). O'Brien-Fleming
    type, per side at level a = alpha / 2: ``2 - 2 Phi(z_{1-a/2} / sqrt(t))``;
    Pocock type: ``alpha * log(1 + (e - 1) t)``. Both reach ``alpha`` at t = 1.
    ``alpha`` lies in (0, 1); a ``t`` outside (0, 1] is a ValueError.
    """
    check_level("alpha", alpha)
    t = np.asarray(t, dtype=np.float64)
    t = check_values("t", np.where(np.abs(t - 1.0) <= 1e-12, 1.0, t), low=0.0, high=1.0, low_inclusive=False)
    if spending == "obrien_fleming":
        per_side = alpha / 2
        return 2.0 * (2.0 - 2.0 * stats.norm.cdf(stats.norm.ppf(1 - per_side / 2) / np.sqrt(t)))
    if spending == "pocock":
        return alpha * np.log(1 + (np.e - 1) * t)
    raise ValueError(f"spending={spending!r} is not accepted; accepted values: {list(SPENDING)}")


def spending_boundaries(information, alpha: float = 0.05, spending: str = "obrien_fleming",
                        grid_points: int = 801) -> pd.DataFrame:
    """Two-sided z-boundaries for looks at the given information fractions.

    ``information`` is increasing in (0, 1] (e.g. users so far / planned users);
    the last look should be 1. At look k the boundary c_k solves
    ``P(no crossing before k, |Z_k| >= c_k) = alpha(t_k) - alpha(t_{k-1})`` under the
    null, computed by recursive numerical integration of the Brownian-motion
    density over the continuation region (Armitage, McPherson and Rowe 1969;
    Jennison and Turnbull 2000, ch. 19). Returns look, information,
    alpha_spent (cumulative), alpha_increment, z_boundary and nominal_p (the
    two-sided p-value that crosses it). Information that is not numbers is refused like any other bad value.
    """
    check_level("alpha", alpha)
    check_param("spending", spending, choices=SPENDING)
    check_param("grid_points", grid_points, low=3, integer=True)
    try:
        t = np.asarray(information, dtype=np.float64)
    except (TypeError, ValueError):
        t = np.empty(0)         # numpy's conversion error names no argument; the check below does
    if t.ndim != 1 or len(t) == 0 or not np.isfinite(t).all() or (t <= 0).any() or (t > 1 + 1e-12).any() or (np.diff(t) <= 0).any():
        raise ValueError(f"information must be increasing fractions in (0, 1], got {information!r}")
    cum = alpha_spent(t, alpha, spending)
    inc = np.diff(np.r_[0.0, cum])
    bounds = np.empty(len(t))
    # Look 1: a single normal.
    bounds[0] = stats.norm.isf(inc[0] / 2) if inc[0] > 0 else np.inf
    # Work on the B-value scale B(t) = Z(t) sqrt(t): a Brownian motion with independent increments.
    b = bounds[0] * np.sqrt(t[0])
    x = np.linspace(-b, b, grid_points) if np.isfinite(b) else np.linspace(-12 * np.sqrt(t[0]), 12 * np.sqrt(t[0]), grid_points)
    dens = stats.norm.pdf(x, scale=np.sqrt(t[0]))
    for k in range(1, len(t)):
        sd = np.sqrt(t[k] - t[k - 1])
        wts = np.full(len(x), x[1] - x[0])      # trapezoid weights on the current grid
        wts[[0, -1]] /= 2
        mass = dens * wts

        def _crossing(c, mass=mass, x=x, sd=sd, k=k):
            edge = c * np.sqrt(t[k])
            return float((mass * (stats.norm.cdf((-edge - x) / sd) + stats.norm.sf((edge - x) / sd))).sum())

        target = inc[k]
        if target <= _crossing(40.0):
            bounds[k] = np.inf
        else:
            bounds[k] = optimize.brentq(lambda c: _crossing(c) - target, 0.0, 40.0, xtol=1e-10)
        edge = bounds[k] * np.sqrt(t[k]) if np.isfinite(bounds[k]) else 12 * np.sqrt(t[k])
        y = np.linspace(-edge, edge, grid_points)
        dens = (stats.norm.pdf((y[:, None] - x[None, :]) / sd) / sd) @ mass
        x = y
    return pd.DataFrame({"look": np.arange(1, len(t) + 1), "information": t, "alpha_spent": cum,
                         "alpha_increment": inc, "z_boundary": bounds, "nominal_p": 2 * stats.norm.sf(bounds)})


def msprt_statistic(diff, variance, n, tau: float) -> np.ndarray:
    """Mixture likelihood ratio of the mSPRT for a difference in means, normal mixture N(0, tau^2).

    With ``n`` observations per arm, observed difference ``diff`` and per-pair
    variance ``variance`` (sigma_c^2 + sigma_t^2), Johari et al. (2022, eq. 11)::

        Lambda_n = sqrt(V / (V + n tau^2)) * exp(n^2 tau^2 diff^2 / (2 V (V + n tau^2)))

    Reject H0: no difference as soon as ``Lambda_n >= 1 / alpha``. ``tau`` is in the
    metric's units; a value near the effect one hopes to detect works well.
    Every input must be finite (``variance`` and ``n`` >= 0, ``tau`` > 0): a NaN
    would make every later always-valid p-value NaN. ``diff``, ``variance`` and ``n``
    must broadcast to one shape.
    """
    check_param("tau", tau, low=0.0, low_inclusive=False)
    diff, v, n = (check_values("diff", diff), check_values("variance", variance, low=0.0), check_values("n", n, low=0.0))
    check_broadcast(diff=diff, variance=v, n=n)
    v = np.maximum(v, 1e-300)
    denom = v + n * tau**2
    log_lam = 0.5 * np.log(v / denom) + (n**2 * tau**2 * diff**2) / (2 * v * denom)
    return np.exp(np.minimum(log_lam, 700.0))


def always_valid_pvalues(lam, axis: int = -1) -> np.ndarray:
    """Always-valid p-values ``p_n = min(1, min_{m <= n} 1 / Lambda_m)`` along ``axis`` (the looks); ``lam`` >= 0, not NaN.

    A single number is one look; ``axis`` must name an axis of ``lam``.
    """
    try:
        lam = np.asarray(lam, dtype=np.float64)
    except (TypeError, ValueError):
        check_values("lam", lam)                   # raises, naming the argument
    if np.isnan(lam).any() or (lam < 0).any():
        check_values("lam", np.where(np.isinf(lam), 0.0, lam), low=0.0)     # names the first bad look
    if lam.ndim == 0:
        return np.minimum(1.0, 1.0 / np.maximum(lam, 1e-300))
    axis = check_axis(axis, lam.ndim)
    return np.minimum(1.0, np.minimum.accumulate(1.0 / np.maximum(lam, 1e-300), axis=axis))


def msprt_interval(diff, variance, tau: float, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """The differences the mSPRT does not reject at one look: ``diff -/+ radius`` (open interval).

    ``variance`` is the variance of the estimate ``diff`` itself (``V / n`` in
    :func:`msprt_statistic`'s terms; the statistic depends on ``V`` and ``n``
    only through it). Testing H0: difference = theta uses ``Lambda(diff - theta)``,
    which grows with ``|diff - theta|``, so the values with ``Lambda < 1 / alpha``
    form an interval; solving ``log Lambda = log(1 / alpha)`` with ``s2 = variance``::

        radius = sqrt(s2 (s2 + tau^2) / tau^2 * (2 log(1 / alpha) + log((s2 + tau^2) / s2)))

    (the always-valid interval of Johari et al. 2022). Since ``2 log(1 / alpha) >= z_{1-alpha/2}^2``
    the interval always contains the fixed-horizon ``1 - alpha`` interval of the
    same look. Intersect the looks (:func:`confidence_sequence`) for intervals
    valid at every look at once.
    """
    check_level("alpha", alpha)
    check_param("tau", tau, low=0.0, low_inclusive=False)
    diff = check_values("diff", diff)
    s2 = np.maximum(check_values("variance", variance, low=0.0), 1e-300)
    check_broadcast(diff=diff, variance=s2)
    t2 = float(tau) ** 2
    radius = np.sqrt(s2 * (s2 + t2) / t2 * (2.0 * np.log(1.0 / alpha) + np.log1p(t2 / s2)))
    return diff - radius, diff + radius


def confidence_sequence(diff, variance, tau: float, alpha: float = 0.05, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Always-valid intervals along ``axis`` (the looks): the running intersection of :func:`msprt_interval`.

    With probability at least ``1 - alpha`` every interval of the sequence holds
    the true difference at once, so it may be read at any look. 0 lies outside
    the interval at look n exactly when :func:`always_valid_pvalues` of the
    same looks is ``<= alpha``. An empty interval (low > high) means the data
    contradict a constant difference.
    """
    low, high = msprt_interval(diff, variance, tau, alpha)
    return np.maximum.accumulate(low, axis=axis), np.minimum.accumulate(high, axis=axis)


def monitor(looks: pd.DataFrame, planned_users: int, alpha: float = 0.05, tau: float | None = None,
            spending: str = "obrien_fleming", baseline_rate: float | None = None) -> pd.DataFrame:
    """Monitor a conversion A/B test look by look with three rules side by side.

    ``looks`` has cumulative columns ``users_c``, ``conversions_c``, ``users_t``,
    ``conversions_t`` (one row per look). ``planned_users`` (per arm) sets the
    information fraction. Adds columns z (Wald, :func:`~recapp.experiment.abtest.compare_proportions`; at a look
    where both rates are 0 or 1 and differ, whose Wald variance is 0, the pooled-variance z), naive_p,
    naive_reject (p < alpha at this look), information, past_plan,
    z_boundary / obf_reject (the alpha-spending boundary), msprt_p (always
    valid) / msprt_reject, and ``stop``.

    Looks past the plan: the group-sequential design ends at its final
    analysis, the first look whose information reaches 1 (all of alpha is
    spent there). Later looks are reported (z, naive_p, msprt_p) and flagged
    ``past_plan``, but their ``z_boundary`` is ``inf``, so they cannot reject:
    each would otherwise be one more full level-alpha test (5 extra looks
    roughly double the false-positive rate). ``obf_reject`` of those looks is
    False; the boundary verdict is the one reached by the final analysis
    (``stop`` carries it forward). Only the mSPRT may keep looking.

    ``tau`` (the mSPRT mixture scale, in conversion-rate units) must be fixed
    before the data are seen, or re-running ``monitor`` as looks arrive would
    change earlier always-valid p-values. When ``tau`` is None it is a tenth of
    ``baseline_rate`` (the planned control rate; a 10% relative lift) when
    given, else a tenth of the pooled rate at the first look with a
    conversion: fixed from that look on, so appending looks never changes the
    p-values already reported. Pass ``tau`` or ``baseline_rate`` to make it
    part of the design.

    ``stop``: the rules run together, each at ``alpha / 2`` (Bonferroni): stop
    once ``|z|`` crosses the spending boundary for ``alpha / 2`` (within the
    plan) or the mSPRT p-value falls below ``alpha / 2``. The union of two
    level-alpha rules is not a level-alpha rule (its false-positive rate can
    reach 2 alpha), so ``stop`` is the one column whose error rate is alpha for
    the combination; ``obf_reject`` and ``msprt_reject`` are each valid at
    ``alpha`` only when that rule alone was chosen in advance.

    Every look needs at least one user per arm and ``0 <= conversions <= users``, in whole numbers;
    the counts are cumulative, so none may fall from one look to the next.
    Anything else (a NaN, text or fractional count included) is a ValueError naming the column and row.
    """
    if not isinstance(looks, pd.DataFrame):
        raise TypeError(f"looks must be a DataFrame with one row per look, got a {type(looks).__name__}")
    need = ["users_c", "conversions_c", "users_t", "conversions_t"]
    missing = [c for c in need if c not in looks.columns]
    if missing:
        raise ValueError(f"looks is missing column(s) {missing}; required: {need}")
    check_param("planned_users", planned_users, low=0, low_inclusive=False)
    check_level("alpha", alpha)
    check_param("spending", spending, choices=SPENDING)
    if baseline_rate is not None:
        check_level("baseline_rate", baseline_rate)
    if tau is not None:
        check_param("tau", tau, low=0.0, low_inclusive=False)
    _check_looks(looks)
    out = looks.copy().reset_index(drop=True)
    nc, xc = out["users_c"].to_numpy(float), out["conversions_c"].to_numpy(float)
    nt, xt = out["users_t"].to_numpy(float), out["conversions_t"].to_numpy(float)
    # The Wald test of abtest.compare_proportions: z 0 and p 1 (not NaN) while both arms have no conversion.
    z, naive_p, var = _wald_looks(xc, nc, xt, nt, alpha)
    z, naive_p = z.reshape(-1), naive_p.reshape(-1)
    out["z"] = z
    out["naive_p"] = naive_p
    out["naive_reject"] = out["naive_p"] < alpha
    raw = (nc + nt) / (2.0 * planned_users)
    info = np.minimum(raw, 1.0)
    # The design ends at the first look reaching information 1; later looks spend nothing.
    reached = np.flatnonzero(raw >= 1.0)
    last = int(reached[0]) if len(reached) else len(info) - 1
    past = np.arange(len(info)) > last

    def _bounds(level):
        b = np.full(len(info), np.inf)
        if last >= 0:
            within = info[: last + 1]
            uniq, inv = np.unique(within, return_inverse=True)   # duplicate fractions merged for the recursion
            b[: last + 1] = spending_boundaries(uniq, level, spending)["z_boundary"].to_numpy()[inv]
        return b

    out["information"] = info
    out["past_plan"] = past
    out["z_boundary"] = _bounds(alpha)
    out["obf_reject"] = np.abs(z) >= out["z_boundary"].to_numpy()
    pc, pt = xc / nc, xt / nt
    if tau is None:
        if baseline_rate is not None:
            tau = 0.1 * float(baseline_rate)
        else:
            seen = np.flatnonzero(xc + xt > 0)
            tau = 0.1 * float((xc[seen[0]] + xt[seen[0]]) / (nc[seen[0]] + nt[seen[0]])) if len(seen) else np.nan
    if not tau > 0:
        raise ValueError(f"tau={tau!r} must be > 0 (no conversions yet: pass tau or baseline_rate)")
    out["msprt_p"] = always_valid_pvalues(msprt_statistic(pt - pc, var, np.minimum(nc, nt), tau))
    out["msprt_reject"] = out["msprt_p"] < alpha
    either = (np.abs(z) >= _bounds(alpha / 2)) | (out["msprt_p"].to_numpy() < alpha / 2)
    out["stop"] = np.logical_or.accumulate(either)
    return out


def _look_column(looks: pd.DataFrame, c: str) -> np.ndarray:
    try:
        return looks[c].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        return looks[c].to_numpy()      # text: check_values refuses it, naming the column


def _check_looks(looks: pd.DataFrame) -> None:
    cols = {c: _look_column(looks, c) for c in ("users_c", "conversions_c", "users_t", "conversions_t")}
    for c, v in cols.items():
        cols[c] = v = check_values(f"looks[{c!r}]", v, low=1.0 if c.startswith("users") else 0.0, ndim=1, min_size=1)
        whole_numbers(f"looks[{c!r}]", v)
        fell = np.flatnonzero(np.diff(v) < 0) + 1
        if len(fell):
            i = int(fell[0])
            raise ValueError(f"looks row {i}: {c} falls from {v[i - 1]:g} to {v[i]:g}; looks must hold cumulative "
                             "counts in time order")
    for arm in ("c", "t"):
        over = np.flatnonzero(cols[f"conversions_{arm}"] > cols[f"users_{arm}"])
        if len(over):
            i = int(over[0])
            raise ValueError(f"looks row {i}: conversions_{arm} = {cols[f'conversions_{arm}'][i]:g} exceeds "
                             f"users_{arm} = {cols[f'users_{arm}'][i]:g}; conversions must lie in [0, users]")


def peeking_simulation(n_experiments: int = 2000, n_per_arm: int = 10_000, n_looks: int = 10, rate: float = 0.1,
                       lift: float = 0.0, alpha: float = 0.05, tau: float | None = None, random_state=0,
                       return_paths: bool = False):
    """How often each monitoring rule declares a winner over many simulated experiments.

    Each experiment accrues ``n_per_arm`` users per arm in ``n_looks`` equal
    batches (conversion ``rate`` in control, ``rate * (1 + lift)`` in
    treatment). Rules: ``fixed horizon`` (one test at the end), ``naive
    peeking`` (stop at the first look with p < alpha), ``O'Brien-Fleming``
    (alpha-spending boundary) and ``mSPRT`` (always-valid p < alpha). With
    ``lift=0`` the rejection rate is the false-positive rate: peeking inflates
    it, the other rules keep it at or below alpha. Returns a DataFrame (rule,
    rejection_rate, ci_low, ci_high, mean_stop_look); with ``return_paths``
    also the z-statistics (experiments x looks) and the boundaries frame. z and the mSPRT variance are
    those of :func:`monitor` (pooled where the Wald variance is 0). With a few users per look the normal
    approximation behind every rule is anti-conservative (tens of users per arm at the first look keep it near alpha).
    ``random_state`` is None, an integer >= 0 or a numpy Generator.
    """
    from statsmodels.stats.proportion import proportion_confint

    check_param("n_experiments", n_experiments, low=1, integer=True)
    check_param("n_looks", n_looks, low=1, integer=True)
    check_param("n_per_arm", n_per_arm, low=n_looks, integer=True)     # every look adds at least one user
    check_level("rate", rate)
    check_param("lift", lift, low=-1.0, low_inclusive=False)
    check_level("rate * (1 + lift)", rate * (1 + lift))
    check_level("alpha", alpha)
    if tau is not None:
        check_param("tau", tau, low=0.0, low_inclusive=False)
    rng = np.random.default_rng(check_seed(random_state, generators=True))
    batch = np.diff(np.linspace(0, n_per_arm, n_looks + 1).round().astype(np.int64))
    n = np.cumsum(batch)
    xc = np.cumsum(rng.binomial(batch, rate, (n_experiments, n_looks)), axis=1).astype(np.float64)
    xt = np.cumsum(rng.binomial(batch, rate * (1 + lift), (n_experiments, n_looks)), axis=1).astype(np.float64)
    nn = np.broadcast_to(n, xc.shape).astype(np.float64)
    z, p, var = _wald_looks(xc, nn, xt, nn, alpha)
    bounds = spending_boundaries(n / n_per_arm, alpha)
    pc, pt = xc / nn, xt / nn
    tau = 0.1 * rate if tau is None else tau
    msprt_p = always_valid_pvalues(msprt_statistic(pt - pc, var, nn, tau), axis=1)
    rules = {
        "fixed horizon": np.c_[np.zeros((n_experiments, n_looks - 1), bool), p[:, -1:] < alpha],
        "naive peeking": p < alpha,
        "O'Brien-Fleming": np.abs(z) >= bounds["z_boundary"].to_numpy()[None, :],
        "mSPRT": msprt_p < alpha,
    }
    rows = []
    for rule, hit in rules.items():
        any_hit = hit.any(axis=1)
        k = int(any_hit.sum())
        low, high = proportion_confint(k, n_experiments, alpha=0.05, method="wilson")
        first = np.where(any_hit, hit.argmax(axis=1) + 1, n_looks)
        rows.append({"rule": rule, "rejection_rate": k / n_experiments, "ci_low": low, "ci_high": high,
                     "mean_stop_look": float(first.mean())})
    table = pd.DataFrame(rows)
    if return_paths:
        return table, z, bounds
    return table
