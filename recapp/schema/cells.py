"""The per-cell rules (missing ids, numbers, timestamps, event names), each as a scalar for one live event
and as a column for a batch, so :func:`~recapp.schema.validate`, :func:`~recapp.schema.check_events` and
:func:`~recapp.schema.check_event` cannot disagree.
"""
from __future__ import annotations

import datetime
import decimal
import math

import numpy as np
import pandas as pd

from recapp.schema.columns import EVENT_ALIASES, EVENT_TYPES


def _is_text_dtype(values: pd.Series) -> bool:
    # pandas 3 reads text as the ``str`` dtype, not ``object``; both may hold strings.
    return pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)


# A cell is missing when it is None, NaN, NA, NaT or a blank string. A number is an int, float or
# Decimal (never a bool) or text that reads as one; anything else is not a number.
_NUMBER_TYPES = (int, float, np.integer, np.floating, decimal.Decimal)
_EPOCH = pd.Timestamp(0, tz="UTC")


def _plain(v):
    """numpy scalars as Python values, so ids, keys and messages stay simple."""
    return v.item() if isinstance(v, np.generic) else v


def _missing(v) -> bool:
    if v is None:
        return True
    if isinstance(v, str):
        return not v.strip()
    if isinstance(v, (float, np.floating)):
        return v != v
    if isinstance(v, (np.datetime64, np.timedelta64)):
        return bool(np.isnat(v))
    if isinstance(v, decimal.Decimal):
        return v.is_nan()
    return v is pd.NA or v is pd.NaT


def _blank(values: pd.Series) -> np.ndarray:
    """:func:`_missing` for a column."""
    miss = values.isna().to_numpy(dtype=bool).copy()
    if _is_text_dtype(values):
        miss |= values.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(dtype=bool)
    return miss


def _is_number(v) -> bool:
    return isinstance(v, _NUMBER_TYPES) and not isinstance(v, (bool, np.bool_))


def _number(v) -> float:
    """``v`` as a float, or NaN when it is not a number."""
    try:
        if _is_number(v):
            return float(v)
        # float() also reads '1_000' and non-ASCII digits, which pandas does not.
        if isinstance(v, str) and v.isascii() and "_" not in v:
            return float(v)
    except (ValueError, OverflowError):
        pass
    return math.nan


def _numeric(values: pd.Series) -> np.ndarray:
    """:func:`_number` for a column."""
    out = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan).copy()
    if pd.api.types.is_bool_dtype(values):
        out[:] = np.nan
    elif pd.api.types.infer_dtype(values, skipna=True) not in ("string", "integer", "floating", "mixed-integer-float", "decimal", "empty"):
        out[values.map(lambda v: not (isinstance(v, str) or _is_number(v))).to_numpy(dtype=bool)] = np.nan
    return out


def _scalar_timestamp(value) -> float:
    """:func:`parse_timestamps` for one value."""
    v = _number(value)
    if math.isfinite(v):
        return float(_epoch_seconds(np.float64(v)))
    if isinstance(value, (str, datetime.datetime, np.datetime64)):
        try:
            ts = pd.to_datetime(value, utc=True, format="mixed")
            return math.nan if ts is pd.NaT else (ts - _EPOCH).total_seconds()
        except (ValueError, TypeError, OverflowError):
            pass
    return math.nan


# (above this magnitude, divide by): nano-, micro- and milliseconds, finest first. Each finer unit
# starts where the coarser one would pass the year 5138 (1e11 s), so the scale is unambiguous for any
# date after 1973 in the finer unit. The Spark layer reads numbers by the same table.
EPOCH_UNITS = ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3))


def _epoch_seconds(v):
    """Epoch numbers in seconds, milliseconds, microseconds or nanoseconds, as seconds (see ``EPOCH_UNITS``)."""
    a = np.abs(v)
    out = v
    for above, per_second in reversed(EPOCH_UNITS):
        out = np.where(a > above, v / per_second, out)
    return out


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Convert epoch seconds (or milli-, micro-, nanoseconds) or ISO strings to float UTC seconds.

    Values that cannot be parsed (or are not finite) become NaN; the caller
    decides what that means.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        ts = pd.to_datetime(values, utc=True)
        return (ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    if _is_text_dtype(values):
        is_text = values.map(lambda v: isinstance(v, (str, datetime.datetime, np.datetime64))).to_numpy(dtype=bool)
    else:
        is_text = np.zeros(len(values), bool)
    num = _numeric(values)
    out = pd.Series(np.where(np.isfinite(num), _epoch_seconds(num), np.nan), index=values.index)
    need_text = out.isna().to_numpy() & is_text
    if need_text.any():
        parsed = pd.to_datetime(values[need_text].astype(object), utc=True, errors="coerce", format="mixed")
        secs = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        out.loc[need_text] = secs.to_numpy(dtype="float64", na_value=np.nan)
    return out


# A log's whole time column of 8-digit integers such as 20240115 is a column of dates (a warehouse's
# day partitions), not epoch seconds: as seconds every one would fall between April 1970 and
# September 1970, months before any shop logged anything. Only a whole log is judged so (by
# validate, here and in the Spark layer); one live event carries epoch time.
DATE_NUMBERS = (19000101, 21001231)
#: What an unparseable time is told, by validate here and in the Spark layer.
ACCEPTED_TIMES = ("Accepted: epoch seconds (or milli-, micro-, nanoseconds), ISO 8601 strings, "
                  "or a column of YYYYMMDD date numbers")
DATE_NUMBERS_NOTE = ("timestamps read as YYYYMMDD dates (midnight UTC): every one is an 8-digit date, "
                     "which as epoch seconds would fall in 1970")


def date_number_seconds(values: pd.Series, seconds: np.ndarray) -> np.ndarray | None:
    """UTC seconds of a time column whose every cell is a YYYYMMDD date number (1900-2100), else None.

    ``seconds`` is :func:`parse_timestamps` of ``values``: a column it did not read
    as such numbers is ruled out without looking at the cells again.
    """
    low, high = DATE_NUMBERS
    seconds = np.asarray(seconds, dtype=np.float64)
    if not len(seconds) or not ((seconds >= low) & (seconds <= high) & (seconds == np.floor(seconds))).all():
        return None
    num = _numeric(values)
    if not (num == seconds).all():       # the same seconds from ISO text (a date in 1970) are not date numbers
        return None
    days = pd.to_datetime(pd.Series(num.astype(np.int64).astype(str)), format="%Y%m%d", errors="coerce")
    if days.isna().any():          # 20240231 is no date: the column is numbers after all
        return None
    return ((days - pd.Timestamp(0)).dt.total_seconds()).to_numpy(dtype=np.float64)


def normalise_event(value) -> str | None:
    """An event name in the schema (aliases such as ``addtocart`` mapped), or None if unknown."""
    if not isinstance(value, str):
        return None
    v = value.strip().lower()
    v = EVENT_ALIASES.get(v, v)
    return v if v in EVENT_TYPES else None


def _normalise_events(values: pd.Series) -> np.ndarray:
    """:func:`normalise_event` for a column, as an object array."""
    # Normalise each distinct value once: logs have millions of rows but a handful of event names.
    # (Working on plain Python strings also sidesteps Arrow-backed string dtypes whose all-missing
    # slices refuse to be compared with a list of strings.)
    codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
    lookup = np.array([normalise_event(v) for v in uniques] + [None], dtype=object)  # the last slot serves the NA code -1
    return lookup[codes]
