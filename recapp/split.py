"""Train/test splitters for interaction logs.

Random, stratified and chronological splits follow Microsoft Recommenders'
``python_random_split``, ``python_stratified_split`` and ``python_chrono_split``
(``recommenders/datasets/python_splitters.py``) row for row, so numbers measured
here can be compared with numbers published there. ``temporal_split`` (one global
time cutoff) and ``leave_last_out`` (each user's last events) are the two
protocols that sequence and session recommenders are usually judged by.

Every splitter is deterministic: the same frame and ``random_state`` give the
same split. A float ``ratio`` returns ``(train, test)``; a list of ratios
returns a list of frames, one per ratio. Frames keep the input's index and
columns.
"""
from __future__ import annotations

import datetime as _dt
import math
import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from recapp.schema import ITEM_COL, TIME_COL, USER_COL, SchemaError, require_columns
from recapp.schema.errors import _quote_rows

FILTER_BY = ("user", "item")


# ---- argument checks ---------------------------------------------------------
def _check_quantile(quantile) -> float:
    """``quantile`` as a float strictly between 0 and 1, or raise ValueError."""
    if isinstance(quantile, bool) or not isinstance(quantile, Real) or not 0.0 < float(quantile) < 1.0:
        raise ValueError(f"quantile={quantile!r} is out of range; accepted: a float strictly between 0 and 1")
    return float(quantile)


def _check_ids(df: pd.DataFrame, *cols: str) -> None:
    """Raise SchemaError naming the rows whose id in ``cols`` is missing: a split would drop them unseen."""
    for col in cols:
        missing = df[col].isna().to_numpy()
        if missing.any():
            raise SchemaError(f"column {col!r} has {int(missing.sum()):,} missing id(s), at rows "
                              f"{_quote_rows(df, missing, col)}; run recapp.schema.validate first")


def _check_times(df: pd.DataFrame, col: str) -> None:
    """Raise SchemaError unless ``col`` holds numbers (UTC seconds) or datetimes, none missing.

    Text would sort as text ('2024-1-10' before '2024-1-9') and a missing time
    would sort last, so a time split would quietly put events on the wrong side.
    """
    values = df[col]
    if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values)) \
            or pd.api.types.is_bool_dtype(values):
        raise SchemaError(f"column {col!r} holds {values.dtype} values, not times: a time split needs UTC seconds or "
                          "datetimes; run recapp.schema.validate (or recapp.schema.parse_timestamps) first")
    missing = values.isna().to_numpy()
    if missing.any():
        raise SchemaError(f"column {col!r} has {int(missing.sum()):,} missing time(s), at rows "
                          f"{_quote_rows(df, missing, col)}; a time split cannot place them")


def _check_ratio(ratio) -> tuple[bool, list[float]]:
    """Return ``(multi, ratios)`` with ratios summing to 1, or raise ValueError."""
    if isinstance(ratio, Real) and not isinstance(ratio, bool):
        r = float(ratio)
        if not 0.0 < r < 1.0:
            raise ValueError(
                f"ratio={ratio!r} is out of range; accepted: a float strictly between 0 and 1 "
                "(the train share) or a list of floats in (0, 1) that sums to 1"
            )
        return False, [r, 1.0 - r]
    if isinstance(ratio, (list, tuple, np.ndarray)):
        ratios = list(ratio)
        ok = len(ratios) >= 2 and all(isinstance(x, Real) and not isinstance(x, bool) and 0.0 < float(x) < 1.0 for x in ratios)
        # Unlike recommenders we do not silently renormalise: a list that does not sum
        # to 1 is more often a typo than an intent.
        if not ok or not math.isclose(math.fsum(ratios), 1.0, rel_tol=0.0, abs_tol=1e-9):
            raise ValueError(
                f"ratio={ratio!r} is not a valid list of split ratios; accepted: two or more floats, "
                "each strictly between 0 and 1, summing to 1 (e.g. [0.7, 0.1, 0.2])"
            )
        return True, [float(x) for x in ratios]
    raise ValueError(
        f"ratio must be a float in (0, 1) or a list of floats summing to 1; got {type(ratio).__name__} {ratio!r}"
    )


def _check_seed(random_state, *, state_ok: bool = False):
    """``random_state`` unchanged if numpy can seed from it, else a ValueError naming it.

    Accepted: None (an unseeded, non-repeatable split) or an integer in [0, 2**32 - 1];
    with ``state_ok`` also a ``numpy.random.RandomState``. A float, a negative or a
    too-large seed would otherwise fail inside scikit-learn, pandas or numpy with a
    message that names none of this function's arguments.
    """
    if random_state is None or (state_ok and isinstance(random_state, np.random.RandomState)):
        return random_state
    if isinstance(random_state, bool) or not isinstance(random_state, Integral) or not 0 <= random_state <= 2**32 - 1:
        raise ValueError(f"random_state={random_state!r} is invalid; accepted: an integer in [0, 2**32 - 1], "
                         "or None for an unseeded split")
    return random_state


def _split_column(filter_by: str, col_user: str, col_item: str) -> str:
    if filter_by == "user":
        return col_user
    if filter_by == "item":
        return col_item
    raise ValueError(f"filter_by={filter_by!r} is not supported; accepted: {list(FILTER_BY)}")


def _check_min_rating(min_rating) -> int:
    if isinstance(min_rating, bool) or not isinstance(min_rating, (int, np.integer)) or min_rating < 1:
        raise ValueError(f"min_rating={min_rating!r} is invalid; accepted: an integer >= 1")
    return int(min_rating)


def _result(splits: list[pd.DataFrame], multi: bool):
    return splits if multi else (splits[0], splits[1])


# ---- random --------------------------------------------------------------------
def random_split(df: pd.DataFrame, ratio=0.75, random_state: int = 42):
    """Split rows uniformly at random; ``ratio`` is the train share.

    Same rows as recommenders' ``python_random_split``: a float ratio uses
    scikit-learn's ``train_test_split(train_size=ratio)``; a list shuffles with
    ``df.sample(frac=1)`` and cuts at ``round(cumsum(ratio) * len(df))``.
    Returns ``(train, test)``, or a list of frames for a list of ratios. A float
    ratio that would leave train empty (too few rows) raises ValueError, and so
    does a ``random_state`` that is not None, an integer in [0, 2**32 - 1] or a
    ``numpy.random.RandomState``.
    """
    multi, ratios = _check_ratio(ratio)
    random_state = _check_seed(random_state, state_ok=True)
    require_columns(df, "df")
    if not multi:
        if math.floor(ratios[0] * len(df)) == 0:
            # scikit-learn would refuse with a message about its own train_size.
            raise ValueError(
                f"ratio={ratio!r} of df's {len(df):,} row(s) leaves the train split empty "
                f"(floor({ratios[0]} * {len(df)}) = 0); accepted: a frame of at least "
                f"{math.ceil(1.0 / ratios[0]):,} rows for this ratio, or a larger ratio"
            )
        train, test = train_test_split(df, test_size=None, train_size=ratios[0], random_state=random_state)
        return train, test
    shuffled = df.sample(frac=1, random_state=random_state)
    cuts = [0] + [round(x * len(shuffled)) for x in np.cumsum(ratios).tolist()[:-1]] + [len(shuffled)]
    return [shuffled.iloc[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


# ---- stratified / chronological (recommenders' _do_stratification) ------------
def _stratify(df, ratio, min_rating, filter_by, order_by, col_user, col_item, random_state):
    multi, ratios = _check_ratio(ratio)
    random_state = _check_seed(random_state)
    split_col = _split_column(filter_by, col_user, col_item)
    min_rating = _check_min_rating(min_rating)
    require_columns(df, "df", col_user, col_item, *([] if order_by is None else [order_by]))
    _check_ids(df, split_col)
    if order_by is not None:
        _check_times(df, order_by)

    data = df
    if min_rating > 1:
        sizes = data.groupby(split_col)[split_col].transform("size").to_numpy()
        small = sizes < min_rating
        if small.any():
            # Documented (recommenders drops them too), but the caller should see how much went.
            n_groups = data.loc[small, split_col].nunique()
            warnings.warn(f"min_rating={min_rating} dropped {n_groups:,} {filter_by}(s) with fewer rows, "
                          f"{int(small.sum()):,} of {len(data):,} rows", UserWarning, stacklevel=3)
            data = data[~small]
    # Work on a copy: recommenders writes its helper columns into the caller's frame.
    data = data.copy()
    key = "__order__"
    while key in data.columns:
        key += "_"
    if order_by is None:
        # np.random.seed(seed); np.random.rand(n) draws the same stream as this
        # RandomState, without touching numpy's global state.
        data[key] = np.random.RandomState(random_state).rand(data.shape[0])
    else:
        data[key] = data[order_by]
    # pandas sorts on several keys with a stable lexsort, so equal timestamps keep
    # their input order, exactly as in recommenders.
    data = data.sort_values([split_col, key])
    groups = data.groupby(split_col)
    position = (groups.cumcount() + 1).to_numpy()
    size = groups[split_col].transform("count").to_numpy()
    data = data.drop(columns=key)

    # recommenders (release 1.2.0 on) cuts a group of n rows at round(cumsum(ratio) * n), half to
    # even as pandas rounds; the last cut is n itself, so no row is lost when the float sum is 0.999...
    cuts = [np.round(t * size) for t in np.cumsum(ratios)[:-1]] + [size]
    splits, prev = [], 0
    for cut in cuts:
        splits.append(data[(position <= cut) & (position > prev)])
        prev = cut
    return _result(splits, multi)


def stratified_split(
    df: pd.DataFrame,
    ratio=0.75,
    *,
    filter_by: str = "user",
    min_rating: int = 1,
    random_state: int = 42,
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
):
    """Split each user's (or item's) rows at random in the proportions ``ratio``.

    Recommenders' ``python_stratified_split`` exactly: drop groups with fewer than
    ``min_rating`` rows, draw ``np.random.RandomState(random_state).rand(n)``, sort
    by (group, draw) and cut each group of ``n`` rows after its first
    ``round(cumsum(ratio) * n)`` rows, rounding half to even. With ``ratio=0.75`` a
    group of 1 or 2 rows goes wholly to train, one of 5 puts 4 in train, one of 6
    puts 4. Frames come back sorted by group.
    Groups dropped by ``min_rating`` are counted in a UserWarning. ``random_state``
    must be None or an integer in [0, 2**32 - 1] (numpy's seed range).
    """
    return _stratify(df, ratio, min_rating, filter_by, None, col_user, col_item, random_state)


def chrono_split(
    df: pd.DataFrame,
    ratio=0.75,
    *,
    filter_by: str = "user",
    min_rating: int = 1,
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
    col_timestamp: str = TIME_COL,
):
    """Split each user's (or item's) rows by time: the earliest ``ratio`` share is train.

    Recommenders' ``python_chrono_split`` exactly (the stratified rule with rows
    ordered by timestamp instead of at random; equal timestamps keep input order).
    Every train event of a group precedes or equals in time its test events.
    """
    return _stratify(df, ratio, min_rating, filter_by, col_timestamp, col_user, col_item, None)


# ---- global time cutoff ----------------------------------------------------------
_CUTOFF_ACCEPTED = "accepted: UTC seconds (a finite number) or a date string / datetime, read as UTC"


def _as_epoch(cutoff, column: pd.Series):
    """A str/datetime cutoff read as UTC: UTC seconds for a numeric column, a Timestamp in a datetime column's zone
    (a naive column is taken as UTC); a bad cutoff is a ValueError."""
    is_date = isinstance(cutoff, (str, _dt.datetime, _dt.date, np.datetime64))
    if isinstance(cutoff, bool) or not (is_date or isinstance(cutoff, Real)):
        raise ValueError(f"cutoff={cutoff!r} ({type(cutoff).__name__}) is not a time; {_CUTOFF_ACCEPTED}")
    if not is_date and not math.isfinite(cutoff):
        # Every comparison with NaN is False: the whole frame would land in test.
        raise ValueError(f"cutoff={cutoff!r} is not a finite time; {_CUTOFF_ACCEPTED}")
    if is_date:
        try:
            ts = pd.Timestamp(cutoff)
        except (ValueError, TypeError, OverflowError) as e:
            raise ValueError(f"cutoff={cutoff!r} cannot be read as a date ({e}); {_CUTOFF_ACCEPTED}") from None
        if pd.isna(ts):
            raise ValueError(f"cutoff={cutoff!r} is a missing time; {_CUTOFF_ACCEPTED}")
    if pd.api.types.is_datetime64_any_dtype(column) and not is_date:
        raise ValueError(f"cutoff={cutoff!r} is a number but column {column.name!r} holds datetimes; "
                         "pass a date string or a datetime")
    if not is_date:
        return cutoff
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if pd.api.types.is_numeric_dtype(column):
        return ts.timestamp()
    # A Timestamp, not the raw cutoff: pandas would read a string in the column's own zone
    # (not UTC), and refuses to compare naive with aware times.
    tz = getattr(column.dtype, "tz", None)
    return ts.tz_convert(tz) if tz is not None else ts.tz_localize(None)


def temporal_split(
    df: pd.DataFrame,
    cutoff=None,
    quantile: float = 0.8,
    *,
    col_timestamp: str = TIME_COL,
):
    """Split at one global time: events with timestamp < ``cutoff`` train, the rest test.

    ``cutoff`` defaults to the ``quantile`` of the timestamps (so roughly that share
    of events trains); it may be UTC seconds, or a date string / datetime, which is
    read as UTC (also against a datetime column, naive ones being taken as UTC);
    anything else (NaN, an unreadable date, a list) raises ValueError. Users and
    items of test may be absent from train: this is the cold-start reality of a
    live shop, so nothing is filtered here.
    Returns ``(train, test)`` in input row order.
    """
    require_columns(df, "df", col_timestamp)
    _check_times(df, col_timestamp)
    ts = df[col_timestamp]
    if cutoff is None:
        cutoff = ts.quantile(_check_quantile(quantile))
    else:
        cutoff = _as_epoch(cutoff, ts)
    train_mask = (ts < cutoff).to_numpy(dtype=bool)
    return df[train_mask], df[~train_mask]


def leave_last_out(
    df: pd.DataFrame,
    n: int = 1,
    *,
    col_user: str = USER_COL,
    col_timestamp: str = TIME_COL,
):
    """Each user's last ``n`` events by timestamp go to test, the rest to train.

    Among equal timestamps the later row counts as later. Users with ``n`` events
    or fewer stay wholly in train, so every test user has history to condition on.
    Returns ``(train, test)`` in input row order. A missing user id raises
    SchemaError naming the rows (it would otherwise pool those rows as one user).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n={n!r} is invalid; accepted: an integer >= 1 (events held out per user)")
    require_columns(df, "df", col_user, col_timestamp)
    _check_ids(df, col_user)
    _check_times(df, col_timestamp)
    m = len(df)
    users = pd.factorize(df[col_user], use_na_sentinel=False)[0]
    times = df[col_timestamp].to_numpy()
    # lexsort: last key is primary, so rows sort by user, then time, then row position.
    order = np.lexsort((np.arange(m), times, users))
    sorted_users = users[order]
    counts = np.bincount(users)
    # position of each sorted row counted from its user's end (0 = the last event)
    from_end = pd.Series(sorted_users).groupby(sorted_users).cumcount(ascending=False).to_numpy()
    test_sorted = (from_end < n) & (counts[sorted_users] > n)
    test_mask = np.zeros(m, dtype=bool)
    test_mask[order] = test_sorted
    return df[~test_mask], df[test_mask]


__all__ = ["random_split", "stratified_split", "chrono_split", "temporal_split", "leave_last_out"]
