"""Input checks of the shopper simulator, its sessions and the bandit policies (the first ones re-exported by
:mod:`recapp.experiment._checks`, where the other experiment checks live), and the seed, shape and count
checks the simulators share with the sequential tests.

Each raises ``ValueError`` naming the argument, the first offending position
and value, and what is accepted.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from recapp.models.base import check_param
from recapp.params import check_seed  # noqa: F401  (the simulators import it from here)
from recapp.schema import ITEM_COL
from recapp.schema.cells import _plain


# ---- the shopper simulator and the bandit policies ------------------------------------------------
def finite_array(name: str, value, *, shape: tuple | None = None, ndim: int | None = None) -> np.ndarray:
    """``value`` as a float64 array, refused unless it has ``shape`` (or ``ndim`` dimensions) and every entry is finite."""
    from recapp.experiment._checks import check_values    # _checks imports this module: a top-level import would cycle
    a = check_values(name, value, ndim=ndim)
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}; expected {shape}")
    return a


def positive_entries(name: str, a: np.ndarray, *, allow_zero: bool) -> None:
    """Refuse a negative entry of ``a`` (and a zero one unless ``allow_zero``), naming its position."""
    from recapp.experiment._checks import check_values
    check_values(name, a, low=0.0, low_inclusive=allow_zero)


def check_slate_size(k, n_candidates: int,
                     what: str = "the candidates per shopper: n_candidates or the catalogue, whichever is smaller") -> None:
    """Refuse a slate size ``k`` that is not an integer in [1, ``n_candidates``] (numpy's partition would fail obscurely);
    ``what`` says what ``n_candidates`` counts."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_candidates:
        raise ValueError(f"k={k!r} is not accepted; it must be an integer in [1, {n_candidates}] ({what})")


def check_knobs(n_items: int, *, k, session_length, target_ctr, cart_rate, choice_scale, position_decay, purchase_rate,
                funnel_slope, price_sensitivity, drift, start, drift_dim, step_seconds) -> None:
    """The choice-model knobs of :class:`~recapp.experiment.simulator.ShopperSimulator`, each refused out of range."""
    check_param("k", k, low=1, integer=True)
    if k > n_items:
        raise ValueError(f"k={k} exceeds the catalogue of {n_items} items")
    check_param("session_length", session_length, low=1)
    if not 0 < check_param("target_ctr", target_ctr) < 1:
        raise ValueError(f"target_ctr={target_ctr!r} must lie in (0, 1)")
    if not 0 < check_param("cart_rate", cart_rate) < 1:      # its logit is the funnel's intercept
        raise ValueError(f"cart_rate={cart_rate!r} is out of range; it must lie in (0, 1)")
    # choice_scale < 0 or position_decay < 0 would make the oracle (top utilities, best on top) wrong.
    for name, value, low, high in (("choice_scale", choice_scale, 0, None), ("position_decay", position_decay, 0, None),
                                   ("purchase_rate", purchase_rate, 0, 1), ("funnel_slope", funnel_slope, None, None),
                                   ("price_sensitivity", price_sensitivity, None, None), ("drift", drift, 0, None),
                                   ("start", start, None, None)):
        check_param(name, value, low=low, high=high)
    check_param("drift_dim", drift_dim, low=1, integer=True)
    check_param("step_seconds", step_seconds, low=0, low_inclusive=False)


def check_feedback(feedback: pd.DataFrame, item_idx: np.ndarray, columns) -> None:
    """Refuse feedback with an item outside the catalogue (``item_idx`` -1) or a reward column not in [0, 1].

    ``Policy.observe`` takes the outcome of the policy's own last slates, so an
    unknown item is a caller's mistake, not a row to skip; numpy would count it
    for the last item (index -1). A NaN reward would stay in the sums for good.
    """
    unknown = np.flatnonzero(item_idx < 0)
    if len(unknown):
        items = feedback[ITEM_COL].to_numpy()[unknown[:5]].tolist()
        raise ValueError(f"feedback rows {unknown[:5].tolist()} have {ITEM_COL} {items} outside the catalogue; "
                         f"observe takes the feedback of this policy's own slates (catalogue items only)")
    for col in columns:
        try:
            r = feedback[col].to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"feedback[{col!r}] must hold numbers in [0, 1]; {err}") from None
        bad = ~((r >= 0.0) & (r <= 1.0))          # NaN fails both comparisons
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"feedback[{col!r}] holds {float(r[row])!r} at row {row}; rewards must be finite numbers "
                             f"in [0, 1] (each impression is one Bernoulli trial)")


def check_own_policies(policies: Mapping) -> None:
    """Refuse one policy (or model) object given to two arms: it would learn from both arms' feedback.

    Shared by every runner that serves arms side by side (``run_sessions``,
    ``simulate_with_pre_period``); each arm needs its own copy.
    """
    first = {}
    for arm, p in policies.items():
        if id(p) in first:
            raise ValueError(f"policies[{arm!r}] is the same object as policies[{first[id(p)]!r}]; each arm needs its own "
                             "policy, or its learned state would mix both arms' feedback: pass each arm a copy "
                             "(copy.deepcopy(policy))")
        first[id(p)] = arm


def check_ids(name: str, ids, n: int) -> np.ndarray:
    """``ids`` as a 1-D array of ``n`` distinct ids, none missing: a repeated id makes pandas' lookups fail obscurely,
    and a NaN id drops its rows out of every groupby of the results."""
    a = np.asarray(ids)
    if a.ndim != 1 or len(a) != n:
        raise ValueError(f"{name} has shape {a.shape}; expected {n} id(s), one per row of the truth")
    missing = np.flatnonzero(pd.isna(a))
    if len(missing):
        raise ValueError(f"{name}[{int(missing[0])}] is missing ({len(missing)} such); every id must be a real value")
    dup = pd.Index(a).duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise ValueError(f"{name}[{i}] = {_plain(a[i])!r} repeats an earlier id "
                         f"({int(dup.sum())} repeat(s)); ids must be distinct")
    return a


def check_slate_shape(name: str, slates, n_rows: int, *, min_k: int = 1, max_k: int | None = None) -> np.ndarray:
    """``slates`` as a 2-D array of ``n_rows`` rows and between ``min_k`` and ``max_k`` columns (one row per shopper)."""
    a = np.asarray(slates)
    ok = a.ndim == 2 and a.shape[0] == n_rows and a.shape[1] >= min_k and (max_k is None or a.shape[1] <= max_k)
    if not ok:
        cols = f"{min_k} to {max_k}" if max_k is not None else f"at least {min_k}"
        raise ValueError(f"{name} has shape {a.shape}; expected a 2-D array of {n_rows} row(s) (one per shopper) "
                         f"and {cols} column(s)")
    return a


def check_item_indices(name: str, idx: np.ndarray, n_items: int) -> np.ndarray:
    """Refuse catalogue positions that are not integers in [0, ``n_items``): -1 would silently read the last item."""
    if idx.dtype.kind not in "iu":
        raise ValueError(f"{name} has dtype {idx.dtype}; it holds item indices (integers in [0, {n_items})), "
                         "not item ids: map ids with simulator.environment().item_index(ids)")
    bad = np.argwhere((idx < 0) | (idx >= n_items))
    if len(bad):
        pos = tuple(int(i) for i in bad[0])
        raise ValueError(f"{name}[{', '.join(map(str, pos))}] = {int(idx[pos])} is outside the catalogue "
                         f"({len(bad)} such); item indices lie in [0, {n_items})")
    return idx


def check_distinct_slates(name: str, slates: np.ndarray, shown: np.ndarray | None = None) -> None:
    """Refuse a slate (row of item indices ``slates``; ``shown``: their ids, for the message) that shows one item
    twice: the choice model would count its attraction twice."""
    srt = np.sort(slates, axis=1)
    rep = np.flatnonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1))
    if len(rep):
        r = int(rep[0])
        row = (slates if shown is None else np.asarray(shown))[r]
        raise ValueError(f"{name} row {r} shows an item twice ({[_plain(v) for v in row]}; {len(rep)} such row(s)); "
                         "each slate must hold distinct items")


def check_event_names(name: str, events, accepted) -> tuple:
    """``events`` as a tuple of names from ``accepted``: a bare string would be read letter by letter (or by substring),
    and an unknown name would silently select nothing."""
    from recapp.experiment._checks import name_list    # _checks imports this module: a top-level import would cycle

    out = tuple(name_list(name, events))
    unknown = [e for e in out if e not in accepted]
    if unknown:
        raise ValueError(f"{name} holds {unknown!r}; accepted event names: {list(accepted)}")
    return out


def check_broadcast(**arrays) -> list[np.ndarray]:
    """The arrays broadcast to one shape; ``ValueError`` naming each one's shape when numpy cannot (its own error
    names no argument)."""
    try:
        return np.broadcast_arrays(*arrays.values())
    except ValueError:
        shapes = {k: np.shape(v) for k, v in arrays.items()}
        raise ValueError(f"{', '.join(arrays)} must have one shape (or broadcast to one), got shapes {shapes}") from None


def whole_numbers(name: str, a: np.ndarray) -> None:
    """Refuse a count that is not a whole number, naming its row: 100.5 users is a data error, not a count."""
    frac = np.flatnonzero(a != np.round(a))
    if len(frac):
        i = int(frac[0])
        raise ValueError(f"{name} = {float(a[i])!r} at row {i} is not a whole number ({len(frac)} such); counts of "
                         "users and conversions are integers")


def by_ids(name: str, value, ids: np.ndarray, id_name: str, label: str = "index"):
    """A pandas Series or DataFrame ``value`` put in the order of ``ids`` by its index; anything else unchanged
    (an array is read by position). ``label="columns"`` says, in messages, that ``value`` is a DataFrame transposed
    so that its columns are matched.

    Reading a Series by position gave each id another id's value whenever its
    index was in another order. Refused, with the counts and the first ones: an
    index that repeats an id, ids of ``id_name`` it lacks, and ids it has beyond them.
    """
    if not isinstance(value, (pd.Series, pd.DataFrame)):
        return value
    index = value.index
    dup = index.duplicated()
    if dup.any():
        raise ValueError(f"{name}'s {label} repeats {_plain(index[dup][0])!r} ({int(dup.sum())} repeat(s)); a Series or "
                         f"DataFrame is matched to {id_name} by its {label}, one entry per id")
    pos = index.get_indexer(pd.Index(ids))
    used = np.zeros(len(index), dtype=bool)
    used[pos[pos >= 0]] = True
    missing, extra = np.asarray(ids)[pos < 0], index[~used]
    if len(missing) or len(extra):
        parts = [f"lacks {len(missing)} of the {len(ids)} {id_name} (first: {[_plain(v) for v in missing[:5]]})"
                 ] if len(missing) else []
        parts += [f"has {len(extra)} id(s) not in {id_name} (first: {[_plain(v) for v in extra[:5]]})"] if len(extra) else []
        how = "index it" if label == "index" else f"label its {label}"
        raise ValueError(f"{name} is matched to {id_name} by its {label}, but its {label} {' and '.join(parts)}; {how} "
                         f"by {id_name}, or pass an array (read by position)")
    return value.iloc[pos]


def labelled(name: str, value, ids, id_name: str, label: str = "index"):
    """``(ids, value)`` for one axis of the simulator's truth: a pandas ``value`` gives the ids by its ``label``
    ("index", or "columns" of a DataFrame: the items of a utility matrix) when ``ids`` is None, and is put in the
    order of ``ids`` by :func:`by_ids` otherwise. Anything else comes back unchanged (an array is read by position).

    Read by position, a labelled frame's rows met other shoppers' ids, or got ids 0..n-1 in place of its labels.
    """
    if not isinstance(value, pd.DataFrame if label == "columns" else (pd.Series, pd.DataFrame)):
        return ids, value
    v = value.T if label == "columns" else value
    if ids is None:
        return check_ids(f"{name}'s {label}", v.index.to_numpy(), len(v)), value
    ids = check_ids(id_name, ids, len(v))
    v = by_ids(name, v, ids, id_name, label=label)
    return ids, v.T if label == "columns" else v


def truth_arrays(utility, user_factors, item_factors, item_bias, user_ids, item_ids) -> tuple:
    """The truth of :class:`~recapp.experiment.simulator.ShopperSimulator` checked, as
    ``(utility, user_factors, item_factors, item_bias, user_ids, item_ids)`` (utility or the factors None).

    A pandas frame is read by its labels (:func:`labelled`), an ``item_bias`` Series by item id (:func:`by_ids`),
    arrays by position. Refused: a utility matrix together with factors or with ``item_bias`` (either would be
    silently ignored), entries that are not finite, shapes that do not fit, ids that do not fit the truth.
    """
    if (utility is None) == (user_factors is None or item_factors is None):
        raise ValueError("pass a utility matrix, or user_factors and item_factors, not both")
    if utility is not None:
        if item_bias is not None:
            raise ValueError("item_bias is not accepted with a utility matrix: it is used only with user_factors and "
                             "item_factors (utility = U V' + b) and would be silently ignored; add it to the utility's "
                             "columns instead")
        user_ids, utility = labelled("utility", utility, user_ids, "user_ids")
        item_ids, utility = labelled("utility", utility, item_ids, "item_ids", label="columns")
        utility = finite_array("utility", utility, ndim=2)
        n_users, n_items = utility.shape
        user_factors = item_factors = None
        item_bias = np.zeros(n_items)
    else:
        user_ids, user_factors = labelled("user_factors", user_factors, user_ids, "user_ids")
        item_ids, item_factors = labelled("item_factors", item_factors, item_ids, "item_ids")
        user_factors = finite_array("user_factors", user_factors, ndim=2)
        n_users, n_items = len(user_factors), len(item_factors)
        item_factors = finite_array("item_factors", item_factors, shape=(n_items, user_factors.shape[1]))
        item_ids = np.arange(n_items) if item_ids is None else check_ids("item_ids", item_ids, n_items)
        item_bias = (np.zeros(n_items) if item_bias is None else
                     finite_array("item_bias", by_ids("item_bias", item_bias, item_ids, "item_ids"), shape=(n_items,)))
    user_ids = np.arange(n_users) if user_ids is None else check_ids("user_ids", user_ids, n_users)
    item_ids = np.arange(n_items) if item_ids is None else check_ids("item_ids", item_ids, n_items)
    return utility, user_factors, item_factors, item_bias, user_ids, item_ids


def align_rounds(**values) -> dict:
    """Per-round inputs (one value or row per logged round), each pandas Series or DataFrame put in the order of the
    first one's index by :func:`by_ids`; None, arrays and lists come back unchanged (read by position).

    Read by position, two Series of one log sorted differently paired one round's reward with another's propensity.
    """
    frames = [k for k, v in values.items() if isinstance(v, (pd.Series, pd.DataFrame))]
    if len(frames) < 2:
        return values
    ref = values[frames[0]].index
    # The first is matched to itself too, so that a repeated label in it is refused like one in the others.
    return {k: by_ids(k, v, ref, f"rounds in {frames[0]}'s index") if k in frames else v for k, v in values.items()}


def shopper_arrays(user_ids: np.ndarray, item_ids: np.ndarray, prices, activity,
                   user_context) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The simulator's ``prices`` (one per item, each > 0), ``activity`` (one per shopper, >= 0, not all 0) and
    ``user_context`` (one row per shopper) as float arrays; a pandas Series or DataFrame is matched to the ids
    by its index (:func:`by_ids`), an array by position. Each is refused, named, when it does not fit."""
    prices = finite_array("prices", by_ids("prices", prices, item_ids, "item_ids"), shape=(len(item_ids),))
    # Prices enter the funnel as log(price / median), so a free item has no defined cart rate.
    positive_entries("prices", prices, allow_zero=False)
    activity = finite_array("activity", by_ids("activity", activity, user_ids, "user_ids"), shape=(len(user_ids),))
    positive_entries("activity", activity, allow_zero=True)
    if not activity.sum() > 0:
        raise ValueError("activity is all zero; at least one shopper must have a positive activity to arrive")
    context = finite_array("user_context", by_ids("user_context", user_context, user_ids, "user_ids"), ndim=2)
    if len(context) != len(user_ids):
        raise ValueError(f"user_context has {len(context)} rows; expected one per shopper ({len(user_ids)})")
    return prices, activity, context
