"""Column names, event types and weights, and the one check of event rows.

Every other module takes these constants as keyword defaults, so a log whose
columns are named differently only needs renaming once, here or in
:func:`validate` through ``aliases``. One set of per-cell rules (missing ids,
timestamps, event names and aliases, numbers) serves three callers: :func:`validate`
for a whole log (raises, reports dropped rows), :func:`check_events` for a batch of
live rows and :func:`check_event` for one live event (both never raise).
"""
from __future__ import annotations

import datetime
import decimal
import math
import time as _time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

USER_COL = "user_id"
ITEM_COL = "item_id"
TIME_COL = "timestamp"
EVENT_COL = "event"
RATING_COL = "rating"
VALUE_COL = "value"
SCORE_COL = "score"
RANK_COL = "rank"
PREDICTION_COL = "prediction"

REQUIRED_COLUMNS = (USER_COL, ITEM_COL, TIME_COL, EVENT_COL)
OPTIONAL_COLUMNS = (RATING_COL, VALUE_COL)

EVENT_TYPES = ("view", "click", "cart", "purchase", "rating")
FUNNEL = ("view", "click", "cart", "purchase")

#: Default implicit weights; a ``rating`` event weighs its rating (or 1 when absent).
DEFAULT_EVENT_WEIGHTS = {"view": 1.0, "click": 2.0, "cart": 3.0, "purchase": 5.0, "rating": None}

#: Names seen in public e-commerce logs, mapped to ours.
COLUMN_ALIASES = {
    "user": USER_COL, "userid": USER_COL, "visitorid": USER_COL, "visitor_id": USER_COL,
    "customer_id": USER_COL, "session_id": USER_COL,
    "item": ITEM_COL, "itemid": ITEM_COL, "product_id": ITEM_COL, "productid": ITEM_COL,
    "movie_id": ITEM_COL, "sku": ITEM_COL,
    "time": TIME_COL, "ts": TIME_COL, "event_time": TIME_COL, "datetime": TIME_COL,
    "unix_timestamp": TIME_COL,
    "behavior": EVENT_COL, "behavior_type": EVENT_COL, "behaviour": EVENT_COL,
    "event_type": EVENT_COL, "action": EVENT_COL, "type": EVENT_COL,
    "price": VALUE_COL, "revenue": VALUE_COL,
}

#: Event names seen in public logs, mapped to ours.
EVENT_ALIASES = {
    "pv": "view", "page_view": "view", "impression": "view", "detail": "view",
    "fav": "click", "clicked": "click",
    "addtocart": "cart", "add_to_cart": "cart", "add-to-cart": "cart", "basket": "cart",
    "buy": "purchase", "transaction": "purchase", "order": "purchase", "checkout": "purchase",
}


class SchemaError(ValueError):
    """An event log that cannot be used as it is; the message says what and where."""


def require_columns(df, name: str, *cols: str) -> None:
    """Raise unless ``df`` is a DataFrame with every column in ``cols``; the error names ``name``."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise SchemaError(f"{name} is missing column(s) {missing}; columns found: {list(df.columns)}")


def check_event_types(name: str, events) -> None:
    """Raise ``ValueError`` naming ``name`` unless every one of ``events`` is in :data:`EVENT_TYPES`."""
    bad = set(events) - set(EVENT_TYPES)
    if bad:
        raise ValueError(f"{name} has unknown event type(s) {sorted(bad)}; accepted: {list(EVENT_TYPES)}")


class ReportSummary:
    """The readable summary every validation report shares: needs ``n_input``, ``n_output``,
    ``n_dropped``, ``counts()`` and ``renamed``."""

    def summary(self) -> str:
        """One human-readable paragraph."""
        parts = [f"{self.n_input:,} rows in, {self.n_output:,} kept, {self.n_dropped:,} dropped"]
        for reason, n in self.counts().items():
            parts.append(f"  {n:,} {reason}")
        if self.renamed:
            parts.append("  renamed columns: " + ", ".join(f"{a}->{b}" for a, b in self.renamed.items()))
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.summary()


@dataclass
class ValidationReport(ReportSummary):
    """What :func:`validate` did: rows in, rows out, and every dropped row with its reason."""

    n_input: int
    n_output: int
    dropped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["line", "reason"]))
    renamed: dict = field(default_factory=dict)

    @property
    def n_dropped(self) -> int:
        """Number of rows removed."""
        return int(len(self.dropped))

    def counts(self) -> pd.Series:
        """Dropped rows per reason."""
        if self.dropped.empty:
            return pd.Series(dtype="int64", name="rows")
        return self.dropped["reason"].value_counts().rename("rows")



def _quote_rows(df: pd.DataFrame, mask: np.ndarray, column: str, limit: int = 5) -> str:
    """The first offending rows as 'line N: value' (by the ``__line__`` column), else 'index label: value'."""
    bad = df.loc[mask]
    where = (f"line {int(line)}" for line in bad["__line__"][:limit]) if "__line__" in bad.columns \
        else (repr(label) for label in bad.index[:limit])
    shown = ", ".join(f"{w}: {val!r}" for w, val in zip(where, bad[column][:limit]))
    more = f" (and {len(bad) - limit:,} more)" if len(bad) > limit else ""
    return shown + more


def _is_text_dtype(values: pd.Series) -> bool:
    # pandas 3 reads text as the ``str`` dtype, not ``object``; both may hold strings.
    return pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)


# ---- the per-cell rules, each as a scalar (one live event) and a column (a batch) -----------------
# A cell is missing when it is None, NaN, NA, NaT or a blank string. A number is an int, float or
# Decimal (never a bool) or text that reads as one; anything else is not a number.
_NUMBER_TYPES = (int, float, np.integer, np.floating, decimal.Decimal)
_EPOCH = pd.Timestamp(0, tz="UTC")


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


def _epoch_seconds(v):
    """Epoch numbers in seconds, milliseconds, microseconds or nanoseconds, as seconds.

    Each finer unit starts where the coarser one would pass the year 5138 (1e11 s),
    so the scale is unambiguous for any date after 1973 in the finer unit.
    """
    a = np.abs(v)
    return np.where(a > 1e17, v / 1e9, np.where(a > 1e14, v / 1e6, np.where(a > 1e11, v / 1e3, v)))


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


def column_renames(columns, aliases: Mapping | None = None) -> dict:
    """The renaming :func:`validate` applies to these column names, ``{old: new}``.

    A name is matched case-insensitively against :data:`COLUMN_ALIASES`, then ``aliases``
    (which win), then the schema's own column names; it is renamed unless its target is
    already a column or already taken by an earlier column.
    """
    mapping = {**COLUMN_ALIASES, **{str(k).strip().lower(): v for k, v in (aliases or {}).items()}}
    rename = {}
    present = set(columns)
    for c in columns:
        key = str(c).strip().lower()
        target = mapping.get(key, key if key in REQUIRED_COLUMNS + OPTIONAL_COLUMNS else None)
        if target and target != c and target not in present and target not in rename.values():
            rename[c] = target
    return rename


def validate(
    df: pd.DataFrame,
    *,
    aliases: dict | None = None,
    drop_duplicates: bool = True,
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
    col_time: str = TIME_COL,
    col_event: str = EVENT_COL,
    default_event: str | None = None,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Check an event log against the schema and return ``(clean_frame, report)``.

    Raises :class:`SchemaError` for problems that cannot be fixed by dropping rows
    (empty input, missing columns, unparseable timestamps, unknown event types),
    quoting the first offending lines (1-based, as in the source file after its header).
    Rows with a missing user or item id and exact duplicates are removed and listed
    in the report, never silently.
    """
    if not isinstance(df, pd.DataFrame):
        raise SchemaError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0:
        raise SchemaError("the event log is empty: no rows to validate")
    dupes = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
    if dupes:
        raise SchemaError(f"duplicate column name(s) {dupes}; columns found: {list(df.columns)}")
    renamed = column_renames(df.columns, aliases)
    out = df.rename(columns=renamed).copy()
    if col_event not in out.columns and default_event is not None:
        out[col_event] = default_event
    missing = [c for c in (col_user, col_item, col_time, col_event) if c not in out.columns]
    if missing:
        raise SchemaError(
            f"missing required column(s) {missing}; columns found: {list(df.columns)}. "
            f"Required: {list(REQUIRED_COLUMNS)} (aliases such as 'behavior' are accepted)"
        )
    out["__line__"] = np.arange(1, len(out) + 1)
    dropped = []

    missing_id = _blank(out[col_user]) | _blank(out[col_item])
    if missing_id.any():
        dropped.append(pd.DataFrame({"line": out["__line__"][missing_id], "reason": "missing user or item id"}))
        out = out.loc[~missing_id]

    ts = parse_timestamps(out[col_time])
    bad_ts = ts.isna().to_numpy()
    if bad_ts.any():
        raise SchemaError(
            f"column {col_time!r}: {int(bad_ts.sum()):,} unparseable timestamp(s): {_quote_rows(out, bad_ts, col_time)}. "
            "Accepted: epoch seconds, epoch milliseconds or ISO 8601 strings"
        )
    out[col_time] = ts.to_numpy()

    ev = _normalise_events(out[col_event])
    bad_ev = pd.isna(ev)
    if bad_ev.any():
        raise SchemaError(
            f"column {col_event!r}: {int(bad_ev.sum()):,} unknown event type(s): {_quote_rows(out, bad_ev, col_event)}. "
            f"Accepted: {list(EVENT_TYPES)}"
        )
    out[col_event] = ev

    for col in (RATING_COL, VALUE_COL):
        if col in out.columns:
            num = _numeric(out[col])
            for bad, what in ((np.isnan(num) & ~_blank(out[col]), "non-numeric"), (np.isinf(num), "infinite")):
                if bad.any():
                    raise SchemaError(f"column {col!r}: {int(bad.sum()):,} {what} value(s): {_quote_rows(out, bad, col)}")
            out[col] = num

    if drop_duplicates:
        data_cols = [c for c in out.columns if c != "__line__"]
        dup = out.duplicated(subset=data_cols, keep="first").to_numpy()
        if dup.any():
            dropped.append(pd.DataFrame({"line": out["__line__"][dup], "reason": "exact duplicate"}))
            out = out.loc[~dup]

    dropped_df = (
        pd.concat(dropped, ignore_index=True) if dropped else pd.DataFrame({"line": pd.Series(dtype="int64"), "reason": pd.Series(dtype=object)})
    )
    out = out.drop(columns="__line__").reset_index(drop=True)
    if len(out) == 0:
        raise SchemaError(f"no valid rows left after validation: {ValidationReport(len(df), 0, dropped_df, renamed).summary()}")
    return out, ValidationReport(n_input=len(df), n_output=len(out), dropped=dropped_df, renamed=renamed)


# ---- the row check for live events: never raises, a reason for every row it refuses ------------------
def _plain(v):
    """numpy scalars as Python values, so ids, keys and messages stay simple."""
    return v.item() if isinstance(v, np.generic) else v


def check_event(event: Mapping) -> tuple[tuple | None, str | None]:
    """Check one event dict; returns ``((user, item, t, event, rating), None)`` or ``(None, reason)``.

    The fast path of :func:`check_events` for a live stream, with the same rules and
    reasons: a missing timestamp means now, numpy scalars come back as Python
    values, ``t`` is UTC seconds and ``rating`` is None when absent. A key that is
    absent counts as a missing value (a frame without the column at all is
    refused by :func:`check_events` as a missing required column instead).
    """
    user, item, raw_t, raw_ev = (event.get(c) for c in (USER_COL, ITEM_COL, TIME_COL, EVENT_COL))
    if _missing(user):
        return None, f"missing {USER_COL}"
    if _missing(item):
        return None, f"missing {ITEM_COL}"
    t = _time.time() if _missing(raw_t) else _scalar_timestamp(raw_t)
    if math.isnan(t):
        return None, f"unparseable {TIME_COL} {_plain(raw_t)!r}"
    if _missing(raw_ev):
        return None, f"missing {EVENT_COL}"
    ev = normalise_event(raw_ev)
    if ev is None:
        return None, f"unknown {EVENT_COL} {_plain(raw_ev)!r}; accepted: {list(EVENT_TYPES)}"
    rating = None
    for col in (RATING_COL, VALUE_COL):
        v = event.get(col)
        if not _missing(v):
            x = _number(v)
            if not math.isfinite(x):
                return None, f"{'non-numeric' if math.isnan(x) else 'infinite'} {col} {_plain(v)!r}"
            rating = x if col == RATING_COL else rating
    return (_plain(user), _plain(item), t, ev, rating), None


def check_events(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check an event frame row by row: returns ``(clean, rejected)``; never raises for bad rows.

    ``clean`` has the store's columns (user_id, item_id, timestamp in UTC seconds,
    event normalised to the schema's names, rating, value) for the rows that pass,
    under their input index labels; a missing timestamp (cell or column) means now.
    ``rejected`` has one row per failing input row: ``row`` (the input as a dict)
    and ``reason`` (the first problem found: a missing required column, a missing
    id, an unparseable timestamp, a missing or unknown event type, a non-numeric
    rating or value).
    Unlike :func:`validate` it never raises, because a live stream must go on;
    :func:`check_event` is the same check for one dict.
    """
    n = len(df)
    reason = np.full(n, None, dtype=object)

    def flag(mask, why, col=None, suffix=""):
        for i in np.flatnonzero(np.asarray(mask, dtype=bool) & pd.isna(reason)):
            reason[i] = why if col is None else f"{why} {_plain(df[col].iloc[i])!r}{suffix}"

    for col in (USER_COL, ITEM_COL, EVENT_COL):
        if col not in df.columns:
            flag(np.ones(n, bool), f"missing required column {col!r}")
    for col in (USER_COL, ITEM_COL):
        if col in df.columns:
            flag(_blank(df[col]), f"missing {col}")
    times = np.full(n, _time.time())
    if TIME_COL in df.columns and n:
        given = ~_blank(df[TIME_COL])
        parsed = parse_timestamps(df[TIME_COL]).to_numpy(dtype=np.float64)
        times[given] = parsed[given]
        flag(np.isnan(times), f"unparseable {TIME_COL}", TIME_COL)
    events = np.full(n, None, dtype=object)
    if EVENT_COL in df.columns and n:
        absent = _blank(df[EVENT_COL])
        flag(absent, f"missing {EVENT_COL}")
        events = _normalise_events(df[EVENT_COL])
        flag(pd.isna(events), f"unknown {EVENT_COL}", EVENT_COL, f"; accepted: {list(EVENT_TYPES)}")
    numbers = {}
    for col in (RATING_COL, VALUE_COL):
        numbers[col] = np.full(n, np.nan)
        if col in df.columns and n:
            numbers[col] = _numeric(df[col])
            flag(np.isnan(numbers[col]) & ~_blank(df[col]), f"non-numeric {col}", col)
            flag(np.isinf(numbers[col]), f"infinite {col}", col)
    ok = pd.isna(reason)
    clean = pd.DataFrame({
        USER_COL: df[USER_COL].to_numpy()[ok] if USER_COL in df.columns else [],
        ITEM_COL: df[ITEM_COL].to_numpy()[ok] if ITEM_COL in df.columns else [],
        TIME_COL: times[ok], EVENT_COL: events[ok], RATING_COL: numbers[RATING_COL][ok], VALUE_COL: numbers[VALUE_COL][ok],
    }, index=df.index[ok])
    bad_rows = np.flatnonzero(~ok)
    records = df.iloc[bad_rows].to_dict(orient="records") if len(bad_rows) else []
    rejected = pd.DataFrame({"row": records, "reason": list(reason[bad_rows])}, columns=["row", "reason"])
    return clean, rejected
