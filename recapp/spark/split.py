"""Temporal and per-user chronological splits of a Spark DataFrame, as :mod:`recapp.split` defines them.

:func:`temporal_split` cuts at one global time; its default cutoff is the
``quantile`` of the timestamps computed exactly as pandas' ``Series.quantile``
(linear interpolation between the two neighbouring order statistics), without
sorting the whole log: an approximate quantile narrows the window, then the
few values in it are collected. :func:`chrono_split` gives each user's (or
item's) earliest ``ratio`` share to train with recommenders'
``python_chrono_split`` rule, equal timestamps kept in input order. Argument
checks and messages are recapp.split's own.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recapp.schema import ITEM_COL, TIME_COL, USER_COL, SchemaError
from recapp.spark.checks import count_rows, missing_cell, refuse_counted
from recapp.spark.events import col
from recapp.spark.report import require_frame
from recapp.split import _as_epoch, _check_min_rating, _check_quantile, _check_ratio, _split_column


# ---- the exact quantile ---------------------------------------------------------------------
def linear_quantile(lower: float, upper: float, n: int, q: float) -> tuple[int, float]:
    """The position and the value pandas' ``Series.quantile(q)`` takes between two order statistics.

    pandas calls ``np.quantile(values, q)`` (method "linear"), which interpolates at
    the virtual index ``(n - 1) q`` between the sorted values ``lower`` (at the
    floor of that position) and ``upper`` (the next one). Returns ``(floor
    position, value)``; call it first with any ``lower``/``upper`` to learn which
    order statistics are needed.
    """
    # numpy's virtual index for the "linear" method, its floor and the weight gamma.
    virtual = (n - 1) * float(q)
    below = min(max(math.floor(virtual), 0), n - 1)
    gamma = virtual - math.floor(virtual)
    a, b = float(lower), float(upper)
    diff = b - a
    value = b - diff * (1.0 - gamma) if gamma >= 0.5 else a + diff * gamma
    return int(below), float(value)


def exact_quantile(sdf: DataFrame, column: str, q: float, *, relative_error: float = 1e-4) -> float:
    """``pandas.Series.quantile(q)`` of a numeric Spark column (nulls and NaN skipped), computed exactly.

    Three passes: a count, an approximate quantile pair that brackets the needed
    order statistics, and a count below the bracket plus the few values inside it.
    Falls back to a wider bracket when the approximation misses.
    """
    v = col(column).cast("double")
    values = sdf.select(v.alias("v")).filter(F.col("v").isNotNull() & ~F.isnan("v"))
    n = values.count()
    if n == 0:
        return math.nan
    below, _ = linear_quantile(0.0, 0.0, n, q)
    need = (below, min(below + 1, n - 1))
    eps = float(relative_error)
    while True:
        lo_q, hi_q = max(0.0, q - 3 * eps), min(1.0, q + 3 * eps)
        if lo_q <= 0.0 and hi_q >= 1.0:
            lo, hi = -math.inf, math.inf
        else:
            lo, hi = values.approxQuantile("v", [lo_q, hi_q], eps)
            lo = -math.inf if lo_q <= 0.0 else lo
            hi = math.inf if hi_q >= 1.0 else hi
        counts = values.agg(F.sum((F.col("v") < lo).cast("long")).alias("below"),
                            F.sum(((F.col("v") >= lo) & (F.col("v") <= hi)).cast("long")).alias("inside")).collect()[0]
        n_below, n_inside = int(counts["below"] or 0), int(counts["inside"] or 0)
        if n_below <= need[0] and need[1] < n_below + n_inside:
            inside = np.sort(np.array([r[0] for r in values.filter((F.col("v") >= lo) & (F.col("v") <= hi)).collect()],
                                      dtype=np.float64))
            a, b = inside[need[0] - n_below], inside[need[1] - n_below]
            return linear_quantile(a, b, n, q)[1]
        eps *= 10.0


# ---- input checks (recapp.split's _check_ids and _check_times) --------------------------------
#: Spark types a time split can cut at one instant: numbers (UTC seconds) and timestamps.
_INSTANT_TYPES = (T.NumericType, T.TimestampType)
#: Spark types a per-user chronological split can order: those, and local times and dates.
_ORDERED_TYPES = (*_INSTANT_TYPES, T.TimestampNTZType, T.DateType)


def _check_time_type(sdf: DataFrame, column: str, accepted: tuple = _INSTANT_TYPES) -> T.DataType:
    """The Spark type of ``column``; SchemaError unless it is one of ``accepted`` (default numbers or timestamps)."""
    dtype = sdf.schema[column].dataType
    # Text would sort as text ('2024-1-10' before '2024-1-9'), and under ANSI a text cutoff fails the job.
    if not isinstance(dtype, accepted):
        what = "UTC seconds or timestamps" if accepted == _INSTANT_TYPES else "UTC seconds, timestamps or dates"
        raise SchemaError(f"column {column!r} holds {dtype.simpleString()} values, not times: a time split needs "
                          f"{what}; run recapp.spark.validate first")
    return dtype


def _check_rows(sdf: DataFrame, ids: tuple, col_timestamp: str, shown: list, extra: dict | None = None):
    """One Spark job: SchemaError for a missing id in ``ids`` or a missing (null or NaN) time; returns the aggregate row.

    ``extra`` adds named aggregate columns computed in the same job.
    """
    conds = {f"id{j}": missing_cell(sdf.schema[c].dataType, col(c)) for j, c in enumerate(ids)}
    conds["time"] = missing_cell(sdf.schema[col_timestamp].dataType, col(col_timestamp))
    row = count_rows(sdf, conds, shown, *[v.alias(k) for k, v in (extra or {}).items()]).collect()[0]

    def named(c: str) -> str:
        # A brace in a column name would be read as a placeholder by refuse_counted's str.format.
        return repr(c).replace("{", "{{").replace("}", "}}")

    refuse_counted(row, [
        *[(f"id{j}", SchemaError, f"column {named(c)} has {{n}} missing id(s), e.g. the row {{row}}; "
           "run recapp.spark.validate first") for j, c in enumerate(ids)],
        ("time", SchemaError, f"column {named(col_timestamp)} has {{n}} missing time(s), e.g. the row {{row}}; "
         "a time split cannot place them"),
    ])
    return row


# ---- splits --------------------------------------------------------------------------------
def temporal_split(sdf: DataFrame, cutoff=None, quantile: float = 0.8, *, col_timestamp: str = TIME_COL):
    """Split at one global time: events with timestamp < ``cutoff`` train, the rest test.

    :func:`recapp.split.temporal_split` on Spark: ``cutoff`` defaults to the exact
    ``quantile`` of the timestamps (:func:`exact_quantile`, the value pandas gives);
    a date string or datetime is read as UTC. Nothing is filtered: users and
    items of test may be new. Returns ``(train, test)`` (lazy DataFrames).
    A time column that is not numbers or timestamps, or a missing (null or NaN)
    time, raises SchemaError as in recapp.split (one Spark job checks it);
    a timestamp column is cut at the same instant, compared in UTC seconds.
    """
    require_frame(sdf, "sdf", col_timestamp)
    dtype = _check_time_type(sdf, col_timestamp)
    is_instant = isinstance(dtype, T.TimestampType)
    if cutoff is None:
        quantile = _check_quantile(quantile)
    else:
        # recapp.split's refusals: NaN, unreadable dates, a number against a datetime column.
        if is_instant:
            _as_epoch(cutoff, pd.Series([], dtype="datetime64[ns, UTC]", name=col_timestamp))
        cutoff = _as_epoch(cutoff, pd.Series([], dtype="float64"))
    _check_rows(sdf, (), col_timestamp, [c for c in (USER_COL, ITEM_COL, col_timestamp) if c in sdf.columns])
    if cutoff is None:
        cutoff = exact_quantile(sdf, col_timestamp, quantile)
    # A Spark timestamp cast to double is its UTC seconds, whatever the session time zone.
    ts = col(col_timestamp).cast("double") if is_instant else col(col_timestamp)
    return sdf.filter(ts < F.lit(cutoff)), sdf.filter(~(ts < F.lit(cutoff)) | ts.isNull())


def chrono_split(
    sdf: DataFrame,
    ratio=0.75,
    *,
    filter_by: str = "user",
    min_rating: int = 1,
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
    col_timestamp: str = TIME_COL,
    order_col: str | None = None,
):
    """Split each user's (or item's) rows by time: the earliest ``ratio`` share is train.

    :func:`recapp.split.chrono_split` on Spark: groups with fewer than
    ``min_rating`` rows are dropped; rows are ordered by timestamp, equal
    timestamps by the DataFrame's row order (or by ``order_col`` when given: a
    DataFrame that went through a shuffle, such as :func:`recapp.spark.validate`'s
    de-duplication, has no meaningful row order, so pass one to make ties
    deterministic); each group of ``n`` rows is cut after its first
    ``round(cumsum(ratio) * n)`` rows, half to even. A float ``ratio`` returns ``(train, test)``, a list one frame per ratio.
    One Spark job checks the input as recapp.split does: a missing id in the
    ``filter_by`` column, a missing time or a time column that is not numbers,
    timestamps or dates raises SchemaError; the groups ``min_rating`` drops are counted in a UserWarning.
    """
    multi, ratios = _check_ratio(ratio)
    split_col = _split_column(filter_by, col_user, col_item)
    min_rating = _check_min_rating(min_rating)
    require_frame(sdf, "sdf", col_user, col_item, col_timestamp, *([order_col] if order_col else []))
    _check_time_type(sdf, col_timestamp, _ORDERED_TYPES)
    order = "__recapp_order__"
    data = sdf.withColumn(order, col(order_col) if order_col else F.monotonically_increasing_id())
    group = Window.partitionBy(col(split_col))
    data = data.withColumn("__n__", F.count(F.lit(1)).over(group))
    shown = [col_user, col_item, col_timestamp]
    if min_rating > 1:
        small = F.col("__n__") < min_rating
        row = _check_rows(data, (split_col,), col_timestamp, shown, {
            "__rows__": F.count(F.lit(1)), "__small__": F.coalesce(F.sum(small.cast("long")), F.lit(0)),
            "__groups__": F.count_distinct(F.when(small, col(split_col)))})
        if row["__small__"]:
            # Documented (recommenders drops them too), but the caller should see how much went.
            warnings.warn(f"min_rating={min_rating} dropped {row['__groups__']:,} {filter_by}(s) with fewer rows, "
                          f"{row['__small__']:,} of {row['__rows__']:,} rows", UserWarning, stacklevel=2)
        data = data.filter(F.col("__n__") >= min_rating)
    else:
        _check_rows(sdf, (split_col,), col_timestamp, shown)
    position = F.row_number().over(Window.partitionBy(col(split_col)).orderBy(col(col_timestamp), F.col(order)))
    data = data.withColumn("__pos__", position)
    # recapp.split's cut: round(cumsum(ratio) * n) half to even (bround), the last cut n itself.
    cuts = [F.bround(F.lit(float(t)) * F.col("__n__").cast("double"), 0) for t in np.cumsum(ratios)[:-1]]
    cuts.append(F.col("__n__"))
    splits, prev = [], None
    for cut in cuts:
        cond = F.col("__pos__") <= cut
        if prev is not None:
            cond = cond & (F.col("__pos__") > prev)
        splits.append(data.filter(cond).drop(order, "__n__", "__pos__"))
        prev = cut
    return splits if multi else (splits[0], splits[1])


__all__ = ["temporal_split", "chrono_split", "exact_quantile", "linear_quantile"]
