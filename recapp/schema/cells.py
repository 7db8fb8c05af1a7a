"""The per-cell rules (missing ids, numbers, timestamps, event names), each as a scalar for one live event
and as a column for a batch, so :func:`~recapp.schema.validate`, :func:`~recapp.schema.check_events` and
:func:`~recapp.schema.check_event` cannot disagree.
"""
from __future__ import annotations

import datetime
import decimal
import itertools
import math
import warnings

import numpy as np
import pandas as pd

from recapp.schema.columns import EVENT_ALIASES, EVENT_TYPES
from recapp.schema.errors import SchemaError, _quote_rows


def _is_text_dtype(values: pd.Series) -> bool:
    # pandas 3 reads text as the ``str`` dtype, not ``object``; both may hold strings.
    return pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)


# A cell is missing when it is None, NaN, NA, NaT or a blank string. A number is an int, float or
# Decimal (never a bool) or text that reads as one; anything else is not a number.
_NUMBER_TYPES = (int, float, np.integer, np.floating, decimal.Decimal)
# In seconds: subtracting it keeps each time's own unit, where a nanosecond epoch would overflow past 2262.
_EPOCH = pd.Timestamp(0, tz="UTC").as_unit("s")


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


def id_problem(v) -> str | None:
    """Why ``v`` cannot be a user or item id (None when it can): a boolean would merge with 0 or 1, and an id must be hashable."""
    if isinstance(v, (bool, np.bool_)):
        return "is a boolean, not an id (True would be the same shopper or item as 1)"
    try:
        hash(v)
    except TypeError:
        return f"is a {type(v).__name__}, not an id (ids are text or numbers)"
    return None


def id_problems(values: pd.Series) -> np.ndarray:
    """:func:`id_problem` for a column: the reason per cell, None where the cell can be an id."""
    out = np.full(len(values), None, dtype=object)
    # Only these dtypes can hold a boolean or an unhashable cell.
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_object_dtype(values):
        out[:] = [id_problem(v) for v in values.tolist()]
    return out


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
    """:func:`parse_timestamps` for one value (a live event): epoch numbers, ISO 8601 text or a datetime.

    Text in any other form is NaN: one value cannot show whether 01/02/2024 is
    January or February, and guessing per event would read a stream two ways.
    """
    v = _number(value)
    if math.isfinite(v):
        return float(_in_range(_epoch_seconds(np.float64(v))))
    if isinstance(value, (str, datetime.datetime, np.datetime64)):
        try:
            ts = pd.to_datetime(value.strip() if isinstance(value, str) else value, utc=True, format="ISO8601")
        except (ValueError, TypeError, OverflowError):
            return math.nan
        return math.nan if ts is pd.NaT else float(_in_range((ts - _EPOCH).total_seconds()))
    return math.nan


# (above this magnitude, divide by): nano-, micro- and milliseconds, finest first. Each finer unit
# starts where the coarser one would pass the year 5138 (1e11 s), so the scale is unambiguous for any
# date after 1973 in the finer unit. The Spark layer reads numbers by the same table.
EPOCH_UNITS = ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3))
#: The years a time may fall in (UTC, both included), after the unit conversion. Nothing real is logged
#: outside them, while one stray 1e300 would read as a year in the billions and, in a live model, make
#: every later event look infinitely old. The Spark layer checks the same bounds.
TIME_YEARS = (1900, 2200)
#: :data:`TIME_YEARS` as epoch seconds: from the first (included) up to the second (excluded).
TIME_BOUNDS = tuple((pd.Timestamp(year=y, month=1, day=1, tz="UTC") - _EPOCH).total_seconds()
                    for y in (TIME_YEARS[0], TIME_YEARS[1] + 1))


def _epoch_seconds(v):
    """Epoch numbers in seconds, milliseconds, microseconds or nanoseconds, as seconds (see ``EPOCH_UNITS``)."""
    a = np.abs(v)
    out = v
    for above, per_second in reversed(EPOCH_UNITS):
        out = np.where(a > above, v / per_second, out)
    return out


def _in_range(seconds):
    """``seconds`` where they fall within :data:`TIME_BOUNDS`, else NaN (an array, 0-d for a scalar)."""
    low, high = TIME_BOUNDS
    s = np.asarray(seconds, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where((s >= low) & (s < high), s, np.nan)


def _since_epoch(times: pd.Series) -> np.ndarray:
    # A copy: pandas may hand back a read-only view, and the callers fill in cells.
    return (times - _EPOCH).dt.total_seconds().to_numpy(dtype="float64", na_value=np.nan, copy=True)


def _formatted_seconds(texts: pd.Series, text_format: str) -> np.ndarray:
    """UTC seconds of time text read with one strptime format (NaN where it does not fit or is out of range)."""
    stripped = texts.astype(object).map(lambda v: v.strip() if isinstance(v, str) else v)
    return _in_range(_since_epoch(pd.to_datetime(stripped, utc=True, errors="coerce", format=text_format)))


def _read_times(values: pd.Series, text_format: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(UTC seconds, other_text)``: the rules of :func:`parse_timestamps`, and which cells are text that is
    neither a number nor ISO 8601. Those are read with ``text_format``, and are NaN without one."""
    other = np.zeros(len(values), bool)
    if pd.api.types.is_datetime64_any_dtype(values):
        return _in_range(_since_epoch(pd.to_datetime(values, utc=True))), other
    if _is_text_dtype(values):
        is_text = values.map(lambda v: isinstance(v, (str, datetime.datetime, np.datetime64))).to_numpy(dtype=bool)
    else:
        is_text = np.zeros(len(values), bool)
    num = _numeric(values)
    seconds = np.where(np.isfinite(num), _epoch_seconds(num), np.nan)
    need_text = ~np.isfinite(num) & is_text
    if need_text.any():
        cells = values[need_text].astype(object).map(lambda v: v.strip() if isinstance(v, str) else v)
        # ISO 8601 says which field is which, so those cells never need a column-wide format.
        text = _since_epoch(pd.to_datetime(cells, utc=True, errors="coerce", format="ISO8601"))
        rest = np.isnan(text) & cells.map(lambda v: isinstance(v, str) and v != "").to_numpy(dtype=bool)
        if text_format and rest.any():
            text[rest] = _formatted_seconds(cells[rest], text_format)
        seconds[need_text] = text
        other[need_text] = rest
    return _in_range(seconds), other


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Convert epoch seconds (or milli-, micro-, nanoseconds), ISO 8601 strings or datetimes to float UTC seconds.

    Values that cannot be parsed, are not finite or fall outside the years
    :data:`TIME_YEARS` (UTC) become NaN; the caller decides what that means.
    Text in other forms (01/02/2024) is NaN here: :func:`read_times` reads a
    whole log's column of it with one format.
    """
    return pd.Series(_read_times(values)[0], index=values.index)


def utc_seconds(frame: pd.DataFrame, name: str, col: str, *, hint: str = "") -> np.ndarray:
    """``frame[col]`` as UTC seconds by :func:`parse_timestamps`' rule; SchemaError naming the count and first rows of
    times that are missing, unreadable or outside :data:`TIME_YEARS` (``hint`` ends the message: why every row needs one).
    """
    seconds = parse_timestamps(frame[col]).to_numpy(dtype=np.float64)
    bad = np.isnan(seconds)
    if bad.any():
        raise SchemaError(f"column {col!r} of {name} has {int(bad.sum()):,} missing or unreadable timestamp(s), at rows "
                          f"{_quote_rows(frame, bad, col)}; accepted: epoch numbers (seconds, milli-, micro- or "
                          f"nanoseconds), ISO 8601 text or datetimes between {TIME_YEARS[0]} and {TIME_YEARS[1]}{hint}")
    return seconds


#: How many of a column's non-ISO time texts (in line order) are tried for a format before giving up.
_GUESS_TRIES = 100


def guess_text_format(texts) -> tuple[str, str] | None:
    """``(format, sample)``: the strptime format pandas guesses from the first of ``texts`` (time text that is
    not ISO 8601, in line order) it can read with a year in it; None if none of the first ``_GUESS_TRIES`` can.

    Where day and month are ambiguous (01/02/2024) pandas reads month first; a
    later 13/02/2024 then does not fit the format and is reported.
    """
    from pandas.tseries.api import guess_datetime_format

    for text in itertools.islice(texts, _GUESS_TRIES):
        if not isinstance(text, str):
            continue
        with warnings.catch_warnings():
            # pandas warns when it must read day first; the note and the messages name the format instead.
            warnings.simplefilter("ignore", UserWarning)
            fmt = guess_datetime_format(text.strip())
        if fmt and ("%Y" in fmt or "%y" in fmt):
            return fmt, text
    return None


def check_flag(name: str, value) -> None:
    """Raise ``SchemaError`` unless ``value`` is True or False: any non-empty text is truthy, so "no" would mean yes."""
    if not isinstance(value, (bool, np.bool_)):
        raise SchemaError(f"{name}={value!r} must be True or False")


def check_time_format(time_format: str | None) -> None:
    """Raise ``SchemaError`` unless ``time_format`` is None or a strptime format with a year and known directives."""
    if time_format is None:
        return
    if not (isinstance(time_format, str) and ("%Y" in time_format or "%y" in time_format)):
        raise SchemaError(f"time_format={time_format!r} must be a strptime format with a year (%Y or %y), "
                          "such as '%d/%m/%Y'")
    try:
        # A directive strptime does not know is only found by using the format.
        pd.to_datetime(pd.Series(["x"]), format=time_format, errors="coerce")
    except ValueError as exc:
        raise SchemaError(f"time_format={time_format!r} is not a strptime format ({exc}); "
                          "give one such as '%d/%m/%Y'") from None


def text_format_for(texts, time_format: str | None) -> tuple[str, str | None] | None:
    """``(format, sample)`` for a column's non-ISO time ``texts`` (None when there are none): ``time_format``
    as given (sample None), else :func:`guess_text_format`'s guess."""
    texts = list(itertools.islice(texts, _GUESS_TRIES))
    if not texts:
        return None
    return (time_format, None) if time_format else guess_text_format(texts)


def read_times(values: pd.Series, time_format: str | None = None) -> tuple[np.ndarray, tuple[str, str | None] | None]:
    """A whole log's time column as :func:`~recapp.schema.validate` reads it: ``(UTC seconds, guess)``.

    :func:`parse_timestamps`, except that text neither a number nor ISO 8601 is
    read with one format for the whole column: ``time_format`` when given, else
    the one :func:`guess_text_format` guesses (``guess`` is ``(format, sample)``,
    sample None for a given format; None when there is no such text or no
    format); text that does not fit that format is NaN.
    """
    seconds, other = _read_times(values)
    guess = text_format_for(values[other], time_format) if other.any() else None
    if guess is not None:
        seconds[other] = _formatted_seconds(values[other], guess[0])
    return seconds, guess


# A log's whole time column of 8-digit integers such as 20240115 is a column of dates (a warehouse's
# day partitions), not epoch seconds: as seconds every one would fall between April 1970 and
# September 1970, months before any shop logged anything. Only a whole log is judged so (by
# validate, here and in the Spark layer); one live event carries epoch time.
DATE_NUMBERS = (19000101, 21001231)
#: What an unparseable time is told, by validate here and in the Spark layer.
_EPOCH_FORMS = "epoch seconds (or milli-, micro-, nanoseconds)"
_YEARS = f"from the year {TIME_YEARS[0]} to {TIME_YEARS[1]} (UTC)"
ACCEPTED_TIMES = (f"Accepted: {_EPOCH_FORMS}, ISO 8601 strings, or a column of YYYYMMDD date numbers, {_YEARS}; "
                  "other date text in one format for the whole column")
#: What a live event's refused time is told: a stream has no whole column to read other date text by.
LIVE_TIMES = f"; accepted: {_EPOCH_FORMS}, ISO 8601 text or a datetime, {_YEARS}"
DATE_NUMBERS_NOTE = ("timestamps read as YYYYMMDD dates (midnight UTC): every one is an 8-digit date, "
                     "which as epoch seconds would fall in 1970")


def _format_source(guess: tuple[str, str | None]) -> str:
    fmt, sample = guess
    return f"{fmt!r}, as time_format gives it" if sample is None else f"{fmt!r}, guessed from the first such text {sample!r}"


def text_format_note(guess: tuple[str, str | None]) -> str:
    """The report's note for a column whose non-ISO time text was read with one format (see :func:`read_times`)."""
    return (f"timestamps not in ISO 8601 read with one format for the whole column, {_format_source(guess)} "
            "(times without a zone read as UTC)")


def unparseable_times_hint(guess: tuple[str, str | None] | None) -> str:
    """What validate tells about unparseable times: :data:`ACCEPTED_TIMES`, and the format it read text with."""
    if guess is None:
        return ACCEPTED_TIMES
    hint = f"{ACCEPTED_TIMES}; here {_format_source(guess)}"
    # A guessed day/month order can be the wrong one; say how to give the log's own.
    return hint if guess[1] is None else hint + " (pass time_format='...' to read the column with another format)"


def date_number_cells(values: pd.Series, seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(whether each cell is a YYYYMMDD date number, its UTC seconds as that date or NaN).

    ``seconds`` is :func:`parse_timestamps` of ``values``. A cell counts when it is a
    whole number (not ISO text whose seconds happen to look like one) between
    19000101 and 21001231 naming a day that exists (20240231 does not).
    """
    low, high = DATE_NUMBERS
    seconds = np.asarray(seconds, dtype=np.float64)
    is_date = (seconds >= low) & (seconds <= high) & (seconds == np.floor(seconds))
    days = np.full(len(seconds), np.nan)
    if not is_date.any():
        return is_date, days
    num = _numeric(values)
    is_date &= num == seconds           # the same seconds from ISO text (a date in 1970) are not date numbers
    text = pd.Series(np.where(is_date, num, 0).astype(np.int64).astype(str))
    parsed = pd.to_datetime(text.where(is_date), format="%Y%m%d", errors="coerce")
    is_date &= parsed.notna().to_numpy()
    days[is_date] = (parsed[is_date] - pd.Timestamp(0)).dt.total_seconds().to_numpy(dtype=np.float64)
    return is_date, days


def mixed_date_numbers_note(n_dates: int, n: int, example_date: str = "", example_other: str = "") -> str:
    """The report's note for a time column where some but not all cells are YYYYMMDD date numbers.

    The column is read as epoch seconds, as the other cells demand, which puts the
    date-like cells in 1970; the analyst is told so rather than left to find it.
    ``example_date`` / ``example_other`` quote one cell of each kind ("line 3: 20240115").
    """
    date, other = (f" ({example_date})", f" ({example_other})") if example_date and example_other else ("", "")
    return (f"{n_dates:,} of {n:,} timestamps look like YYYYMMDD date numbers{date} and the rest do not{other}, "
            f"so the whole column was read as epoch seconds, which puts those {n_dates:,} in 1970; "
            "give the column one form to read them as dates")


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
