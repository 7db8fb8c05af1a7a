"""Input checks shared by recapp.experiment: the statistics (abtest, cuped, interleaving, ope, sequential), the simulator and the bandits.

Each raises ``ValueError`` naming the argument, the first offending position
and value, and what is accepted, so bad data never turn into a NaN, an
infinite statistic or an out-of-range figure reported as a result.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from recapp.experiment._sim_checks import (check_feedback, check_own_policies, check_slate_size,  # noqa: F401 (re-exported)
                                           finite_array, positive_entries)
from recapp.models.base import check_param
from recapp.schema.cells import _missing, _plain
from recapp.schema.errors import _quote_rows


def check_level(name: str, value) -> float:
    """A probability strictly inside (0, 1): alpha, power, a significance threshold."""
    check_param(name, value)
    if not 0 < value < 1:
        raise ValueError(f"{name}={value!r} is out of range; it must lie in (0, 1)")
    return float(value)


def check_values(name: str, values, *, low=None, high=None, low_inclusive: bool = True, ndim=None,
                 min_size: int = 0) -> np.ndarray:
    """``values`` as a float array, every element finite and within [low, high] (or (low, high] when not ``low_inclusive``)."""
    try:
        a = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must hold numbers: {exc}") from None
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if a.size < min_size:
        raise ValueError(f"{name} needs at least {min_size} value(s), got {a.size}")
    bad = ~np.isfinite(a)
    what = "a finite number"
    if low is not None:
        bad |= (a < low) if low_inclusive else (a <= low)
        what = f"a number {'>=' if low_inclusive else '>'} {low}"
    if high is not None:
        bad |= a > high
        what += f" and <= {high}"
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        label = name if not pos else f"{name}[{pos[0] if len(pos) == 1 else ', '.join(map(str, pos))}]"
        raise ValueError(f"{label} = {float(a[pos])!r} is not accepted ({int(bad.sum())} such value(s)); "
                         f"each value must be {what}")
    return a


def name_list(name: str, value) -> list:
    """``value`` (metrics, estimators, covariates) as a list of names; a bare string is refused, since it would be
    read letter by letter and the error would name single letters."""
    if isinstance(value, str):
        raise ValueError(f"{name}={value!r} is a single string; pass a list of names, e.g. [{value!r}]")
    return list(value)


def distinct_names(name: str, value, hint: str) -> list:
    """``value`` (metrics, arms) as a non-empty list of distinct names, none missing or blank: a bare string is refused
    as by :func:`name_list`, a repeat would count one test twice, and a NaN arm drops out of every per-arm groupby."""
    names = name_list(name, value)
    if not names:
        raise ValueError(f"{name} is empty; {hint}")
    for i, v in enumerate(names):
        if _missing(v) or v in names[:i]:
            what = "is missing or blank" if _missing(v) else "repeats an earlier name"
            raise ValueError(f"{name}[{i}] = {_plain(v)!r} {what} (in {[_plain(n) for n in names]!r}); {hint}")
    return names


def check_same_length(**arrays) -> int:
    """The common length of 1-D arrays; ``ValueError`` naming the ones that differ."""
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"these arrays must have one value per round, the same length: {lengths}")
    return next(iter(lengths.values()))


def check_weights(target: np.ndarray, ps: np.ndarray, w: np.ndarray) -> None:
    """Refuse importance weights ``w = target / ps`` that are undefined (``ps`` 0 where ``target`` > 0) or overflow to inf."""
    bad = np.flatnonzero((ps <= 0) & (target > 0))
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"logging propensity pscore[{i}] = {float(ps[i])} <= 0 while target_prob[{i}] = {float(target[i])} > 0 "
                         f"({len(bad)} such row(s)): the importance weight is undefined; the logging policy must give "
                         "positive probability to every action the target policy may take")
    over = np.flatnonzero(~np.isfinite(w))
    if len(over):
        i = int(over[0])
        raise ValueError(f"importance weight target_prob[{i}] / pscore[{i}] = {float(target[i])} / {float(ps[i])!r} "
                         f"overflows to inf ({len(over)} such row(s)): a propensity this small is no usable probability "
                         "(a logging error, or a 0 stored as a denormal?); fix pscore")


def check_finite_estimates(estimates: dict, w: np.ndarray, ps: np.ndarray, reward: np.ndarray, *,
                           resample: bool = False) -> None:
    """Refuse an off-policy estimate that overflowed (inf, or NaN from inf - inf), naming the largest weight and its pscore.

    SNIPW may be NaN (all weights 0, already warned about), never infinite.
    """
    for name, values in estimates.items():
        v = np.asarray(values, dtype=np.float64)
        bad = np.isinf(v) if name == "SNIPW" else ~np.isfinite(v)
        if bad.any():
            j, k = int(np.argmax(w)), int(np.argmin(ps))
            raise ValueError(f"the {name} estimate{' of a bootstrap resample' if resample else ''} overflows to "
                             f"{float(v[bad][0])}: importance weights reach {float(w[j]):.3g} at row {j} (pscore[{j}] = "
                             f"{float(ps[j])!r}; smallest pscore[{k}] = {float(ps[k])!r}) and |reward| reaches "
                             f"{float(np.abs(reward).max()):.3g}, whose products exceed floating point; a propensity "
                             "this small is usually a logging error: fix pscore or evaluate a policy that avoids such actions")


def check_logged(logged) -> int:
    """Logged rounds whose indices point where they claim: ``action`` in [0, actions), ``position`` in [0, n_positions),
    integers, one per round like reward, pscore, context and affinity. Returns the number of rounds.

    numpy would read action -1 as the last item and a slot past the last as
    another item's, silently; other mistakes fail inside numpy, naming nothing.
    """
    check_param("n_positions", logged.n_positions, low=1, integer=True)
    if len(logged.action_ids) < 1:
        raise ValueError("logged.action_ids is empty: there is no action to evaluate")
    n = check_same_length(action=logged.action, position=logged.position, reward=logged.reward, pscore=logged.pscore)
    for name, values, size, what in (("action", logged.action, len(logged.action_ids), "action_ids"),
                                     ("position", logged.position, logged.n_positions, "the n_positions slots")):
        a = np.asarray(values)
        if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
            raise ValueError(f"logged.{name} must be a 1-D array of integers (0-based indices into {what}), "
                             f"got dtype {a.dtype} and shape {a.shape}")
        bad = np.flatnonzero((a < 0) | (a >= size))
        if len(bad):
            i = int(bad[0])
            raise ValueError(f"logged.{name}[{i}] = {int(a[i])} is outside [0, {size - 1}] ({len(bad)} such round(s)); "
                             f"it is a 0-based index into {what}")
    if logged.context is not None and len(logged.context) != n:
        raise ValueError(f"logged.context has {len(logged.context)} row(s); expected one per round ({n})")
    if logged.affinity is not None and np.shape(logged.affinity) != (n, len(logged.action_ids)):
        raise ValueError(f"logged.affinity has shape {np.shape(logged.affinity)}; expected (rounds, actions) = "
                         f"{(n, len(logged.action_ids))}")
    return n


def check_resampling(alpha, n_bootstrap) -> None:
    """A bootstrap's level in (0, 1) and its number of resamples, an integer >= 2 (an interval needs two)."""
    check_level("alpha", alpha)
    check_param("n_bootstrap", n_bootstrap, low=2, integer=True)


def warn_snipw(estimators, w: np.ndarray) -> None:
    """Warn that SNIPW is NaN when every importance weight is 0 (nothing to normalise by)."""
    if "SNIPW" in estimators and not (w > 0).any():     # w >= 0; a sum could overflow
        warnings.warn("SNIPW is undefined (NaN): every importance weight is 0, i.e. the target policy gives probability 0 "
                      "to every logged action, so the logs hold no round to normalise by", RuntimeWarning, stacklevel=3)


def check_per_arm(name: str, values, accepted: str, ok) -> None:
    """Every value of a per-arm Series finite and ``ok``; ``ValueError`` naming the first bad arm."""
    v = values.to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(v) & ok(np.nan_to_num(v)))
    if bad.any():
        raise ValueError(f"{name}[{_plain(values.index[bad][0])!r}] = {float(v[bad][0])!r} is not accepted; "
                         f"per-arm values must be {accepted}")


def check_one_arm(multi, what: str) -> None:
    """``multi`` maps users to the several arms they were found in; any is a ``ValueError``."""
    if len(multi):
        raise ValueError(f"user {_plain(multi.index[0])!r} {what} ({list(multi.iloc[0])}; {len(multi)} such user(s)): "
                         "each user must belong to exactly one arm")


def check_counts(count_c, nobs_c, count_t, nobs_t) -> list[np.ndarray]:
    """Two-proportion inputs, broadcast: finite, ``nobs > 0`` and ``0 <= count <= nobs``."""
    arrays = np.broadcast_arrays(check_values("count_c", count_c, low=0.0),
                                 check_values("nobs_c", nobs_c, low=0.0, low_inclusive=False),
                                 check_values("count_t", count_t, low=0.0),
                                 check_values("nobs_t", nobs_t, low=0.0, low_inclusive=False))
    for arm, count, nobs in (("c", arrays[0], arrays[1]), ("t", arrays[2], arrays[3])):
        over = np.argwhere(count > nobs)
        if len(over):
            i = tuple(int(k) for k in over[0])
            where = f" at position {i[0] if len(i) == 1 else i}" if i else ""
            raise ValueError(f"count_{arm} = {float(count[i])!r} exceeds nobs_{arm} = {float(nobs[i])!r}{where}; "
                             "a count must lie in [0, nobs]")
    return arrays


def check_mean_arms(x_c, x_t, names: tuple[str, str] = ("x_c", "x_t")):
    """Welch inputs: finite, at least 2 users per arm, 2-D arms with matching columns (or one column, compared with
    each of the other's). Returns the arrays and the mask of tests whose arms are both constant and equal; both
    constant but different is a ``ValueError`` (zero standard error). ``names`` name the arms in errors."""
    nc, nt = names
    x_c, x_t = check_values(nc, x_c), check_values(nt, x_t)
    if x_c.ndim not in (1, 2) or x_t.ndim not in (1, 2) or min(len(x_c), len(x_t)) < 2:
        raise ValueError(f"each arm needs at least 2 users (1-D, or 2-D users x tests), got shapes {x_c.shape} ({nc}) "
                         f"and {x_t.shape} ({nt})")
    if x_c.ndim != x_t.ndim or x_c.shape[1:] != x_t.shape[1:] and 1 not in (x_c.shape[1], x_t.shape[1]):
        # numpy would fail with "operands could not be broadcast", or fail converting a result, naming neither arm.
        raise ValueError(f"{nc} and {nt} must both be 1-D, or both 2-D (users x tests) with one column per test, got "
                         f"shapes {x_c.shape} and {x_t.shape}")
    mc, mt = x_c.mean(axis=0), x_t.mean(axis=0)
    flat = (x_c.var(axis=0) == 0) & (x_t.var(axis=0) == 0)
    apart = np.argwhere(flat & (mc != mt))
    if len(apart):
        i = tuple(int(k) for k in apart[0])
        mc_i, mt_i = (float(m[i]) for m in np.broadcast_arrays(mc, mt))    # one control column may serve several
        raise ValueError(f"{nc} and {nt} are both constant ({mc_i!r} and {mt_i!r}{f' in column {i[0]}' if i else ''}): "
                         "zero variance, Welch's test is undefined")
    return x_c, x_t, flat


def check_axis(axis, ndim: int) -> int:
    """An integer naming one of the ``ndim`` axes of an input (negative counts from the end)."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise ValueError(f"axis={axis!r} is not an axis of the {ndim}-D input; pass an integer in [{-ndim}, {ndim - 1}]")
    return int(axis)


def check_ratio_arm(arm: str, num, den, axis: int, *, names: tuple[str, str] | None = None,
                    low: float | None = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """One arm of a ratio metric: finite per-user sums (>= ``low`` unless None), two users or more along an existing
    ``axis``, a non-zero denominator total. ``names`` (default ``num_{arm}``, ``den_{arm}``) name the arguments."""
    nn, dn = names or (f"num_{arm}", f"den_{arm}")
    x, y = check_values(nn, num, low=low), check_values(dn, den, low=low)
    if x.shape != y.shape:
        raise ValueError(f"{nn} and {dn} must have one value per user each; shapes {x.shape} and {y.shape}")
    if x.ndim == 0 or x.shape[check_axis(axis, x.ndim)] < 2:
        raise ValueError(f"{nn}/{dn} hold {0 if x.ndim == 0 else x.shape[axis]} user(s) along axis {axis}; "
                         "the delta method needs at least 2 per arm")
    empty = y.sum(axis=axis) == 0      # with counts (low=0) the same as <= 0
    if np.any(empty):
        raise ValueError(f"{dn} sums to 0 (no views, say){'' if y.ndim == 1 else f' in column {int(np.flatnonzero(empty)[0])}'}; "
                         "the ratio is undefined")
    return x, y


def check_user_ids(name: str, users) -> np.ndarray:
    """User ids as a 1-D object array, none missing: a NaN or None id would be hashed like the text "nan" or "None"."""
    a = np.atleast_1d(np.asarray(users, dtype=object))
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D list of user ids, got shape {a.shape}")
    bad = np.flatnonzero(pd.isna(a))     # the test user_metrics uses for an event without a user
    if len(bad):
        raise ValueError(f"{name}[{int(bad[0])}] = {_plain(a[bad[0]])!r} is a missing user id ({len(bad)} such); "
                         "every user needs an id")
    return a


def check_power_args(alpha, ratio) -> None:
    """The level and the treatment/control size ratio of a power calculation."""
    check_level("alpha", alpha)
    check_param("ratio", ratio, low=0.0, low_inclusive=False)


def check_purchase_values(events, ev: np.ndarray, value: np.ndarray, skip: np.ndarray, col_user: str, col_value: str):
    """Every purchase (outside ``skip``) carries a finite value: revenue would otherwise be understated silently."""
    lost = np.flatnonzero((ev == "purchase") & ~np.isfinite(value) & ~skip)
    if len(lost):
        i = int(lost[0])
        raise ValueError(f"{col_value} is {value[i]} on {len(lost)} purchase event(s), e.g. row {_plain(events.index[i])!r} "
                         f"(user {_plain(events[col_user].iloc[i])!r}); revenue needs a finite value on every purchase")


def arms_of_users(events, assignment, keep: np.ndarray, col_user: str, col_arm: str):
    """Each user's one arm, from ``assignment`` or the events' arm column; a user in two arms is a ``ValueError``.

    Users whose events carry no arm label are left out (the caller counts them).
    """
    if assignment is None:
        labelled = events.loc[keep, [col_user, col_arm]]
        by_user = labelled.groupby(col_user, sort=True)[col_arm]
        n_arms = by_user.nunique()
        multi = labelled[labelled[col_user].isin(n_arms.index[n_arms > 1])].dropna()
        check_one_arm(multi.groupby(col_user)[col_arm].agg(lambda a: list(a.unique())), "has events in several arms")
        return by_user.first()[n_arms == 1]
    arms = assignment.rename(col_arm)
    check_one_arm(arms[arms.index.duplicated(keep=False)].groupby(level=0).agg(list), "is assigned more than once")
    if arms.isna().any():
        raise ValueError(f"assignment has no arm for user {_plain(arms.index[arms.isna().to_numpy()][0])!r} "
                         f"({int(arms.isna().sum())} such user(s)); every assigned user needs an arm")
    return arms


def check_sizing(baseline, mde, alpha, power, ratio) -> None:
    """Sample-size inputs: finite, ``mde != 0``, ``alpha < power < 1``, ``ratio > 0``."""
    check_param("baseline", baseline)
    check_param("mde", mde)
    if mde == 0:
        raise ValueError("mde=0 is not accepted: no sample size detects a zero effect; pass a non-zero change")
    check_plan(alpha, power, ratio)


def check_plan(alpha, power, ratio) -> None:
    """The level, power and treatment/control size ratio of a sample size: ``alpha < power < 1``, ``ratio > 0``."""
    check_power_args(alpha, ratio)
    check_level("power", power)
    if not power > alpha:
        raise ValueError(f"power={power!r} must exceed alpha={alpha!r} (a test with no effect already rejects at rate alpha)")


def check_finite_columns(frame: pd.DataFrame, name: str, columns, hint: str = "", low: float | None = None) -> None:
    """Every listed column of ``frame`` numeric and finite (and ``>= low`` when given: counts); ``ValueError`` naming
    the column, the count and the first rows.

    A NaN must not reach a statistic that would skip it or read it as a
    constant; ``hint`` says how to fill it.
    """
    for col in columns:
        values = frame[col]
        if not pd.api.types.is_numeric_dtype(values):      # bool counts: a 0/1 indicator is a number
            raise ValueError(f"{name}[{col!r}] has dtype {values.dtype}; it must hold numbers{hint}")
        v = values.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(v)
        if bad.any():
            raise ValueError(f"{name}[{col!r}] is missing or infinite in {int(bad.sum())} row(s), e.g. "
                             f"{_quote_rows(frame, bad, col)}{hint}")
        below = v < low if low is not None else None
        if below is not None and below.any():
            raise ValueError(f"{name}[{col!r}] is below {low} in {int(below.sum())} row(s), e.g. "
                             f"{_quote_rows(frame, below, col)}{hint}")


def check_cumulative_counts(**counts) -> list[np.ndarray]:
    """Counts per look along the last axis (more axes: more experiments): finite, >= 0, one shape, never falling.

    Returns them as float arrays; a NaN look would otherwise be skipped and a
    shape mismatch fail inside numpy.
    """
    arrays = [check_values(name, v, low=0.0) for name, v in counts.items()]
    shapes = {name: a.shape for name, a in zip(counts, arrays)}
    if len(set(shapes.values())) > 1 or arrays[0].ndim == 0 or arrays[0].shape[-1] == 0:
        raise ValueError(f"{', '.join(counts)} must be arrays of one shape with at least one look along the last "
                         f"axis, got shapes {shapes}")
    for name, a in zip(counts, arrays):
        fall = np.argwhere(np.diff(a, axis=-1) < 0)
        if len(fall):
            i = tuple(int(k) for k in fall[0])
            j = i[:-1] + (i[-1] + 1,)
            raise ValueError(f"{name}[{', '.join(map(str, j))}] = {a[j]:g} is below the previous look's {a[i]:g} "
                             f"({len(fall)} such drop(s)); the counts must be cumulative, never decreasing from one "
                             "look to the next")
    return arrays


def check_experiment_arms(per_user: pd.DataFrame, col_arm: str, control) -> list:
    """The treatment arms of a per-user frame, sorted; ``ValueError`` for a user without an arm, no ``control``
    or no other arm, or an arm of fewer than 2 users (a variance needs two values)."""
    if col_arm not in per_user.columns:
        raise ValueError(f"per_user has no {col_arm!r} column; build it with user_metrics")
    no_arm = per_user[col_arm].isna().to_numpy()
    if no_arm.any():
        # A NaN arm would be compared as an arm of its own, with no users equal to it.
        raise ValueError(f"per_user[{col_arm!r}] is missing for {int(no_arm.sum())} user(s), e.g. "
                         f"{_plain(per_user.index[no_arm][0])!r}; give every user an arm or drop the unassigned ones")
    arms = [a for a in pd.unique(per_user[col_arm]) if a != control]
    if control not in set(per_user[col_arm]) or not arms:
        found = sorted(map(str, set(per_user[col_arm])))
        raise ValueError(f"need the control arm {control!r} and at least one other arm; found {found}")
    sizes = per_user[col_arm].value_counts()
    if (sizes < 2).any():
        raise ValueError(f"arm {_plain(sizes.index[sizes < 2][0])!r} has {int(sizes[sizes < 2].iloc[0])} user(s); each arm "
                         "needs at least 2 (a variance needs two values)")
    return sorted(arms, key=str)


def report_dropped(no_user: np.ndarray, users, per_user_index, arms_index, col_user: str) -> dict:
    """Count what ``user_metrics`` leaves out (events with no user; users with no arm) and warn when anything was."""
    unassigned = per_user_index[~per_user_index.isin(arms_index)]
    dropped = {"events_without_user": int(no_user.sum()), "unassigned_users": len(unassigned),
               "unassigned_events": int(users.isin(unassigned).sum())}
    if dropped["events_without_user"] or dropped["unassigned_users"]:
        warnings.warn(f"user_metrics left out {dropped['events_without_user']} event(s) with no {col_user} and "
                      f"{dropped['unassigned_users']} user(s) with no arm ({dropped['unassigned_events']} event(s))",
                      RuntimeWarning, stacklevel=3)
    return dropped
