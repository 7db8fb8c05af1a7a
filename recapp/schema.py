"""Column names, event types and weights, and validation of event logs.

Every other module takes these constants as keyword defaults, so a log whose
columns are named differently only needs renaming once, here or in
:func:`validate` through ``aliases``.
"""
from __future__ import annotations

import datetime
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


@dataclass
class ValidationReport:
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


def _quote_rows(df: pd.DataFrame, mask: np.ndarray, column: str, limit: int = 5) -> str:
    bad = df.loc[mask]
    shown = ", ".join(f"line {int(line)}: {val!r}" for line, val in zip(bad["__line__"][:limit], bad[column][:limit]))
    more = f" (and {len(bad) - limit:,} more)" if len(bad) > limit else ""
    return shown + more


def _is_text_dtype(values: pd.Series) -> bool:
    # pandas 3 reads text as the ``str`` dtype, not ``object``; both may hold strings.
    return pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Convert epoch seconds, epoch milliseconds or ISO strings to float UTC seconds.

    Values that cannot be parsed (or are not finite) become NaN; the caller
    decides what that means.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        ts = pd.to_datetime(values, utc=True)
        return (ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    numeric = pd.to_numeric(values, errors="coerce")
    if _is_text_dtype(values):
        is_text = values.map(lambda v: isinstance(v, (str, datetime.datetime, np.datetime64))).to_numpy(dtype=bool)
    else:
        is_text = np.zeros(len(values), bool)
    out = pd.Series(numeric.to_numpy(dtype="float64", na_value=np.nan), index=values.index)
    out = out.where(np.isfinite(out.to_numpy()))
    # Epochs in milliseconds exceed ~1e11 (year 5138 in seconds), so the scale is unambiguous.
    out = out.where(~(out.abs() > 1e11), out / 1000.0)
    need_text = out.isna().to_numpy() & is_text
    if need_text.any():
        parsed = pd.to_datetime(values[need_text].astype(object), utc=True, errors="coerce", format="mixed")
        secs = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        out.loc[need_text] = secs.to_numpy(dtype="float64", na_value=np.nan)
    return out


def _normalise_events(values: pd.Series) -> np.ndarray:
    """Canonical event names as an object array; None where the value is not a known event."""
    # Normalise each distinct value once: logs have millions of rows but a handful of event names.
    # (Working on plain Python strings also sidesteps Arrow-backed string dtypes whose all-missing
    # slices refuse to be compared with a list of strings.)
    codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
    names = []
    for v in uniques:
        key = v.strip().lower() if isinstance(v, str) else None
        key = EVENT_ALIASES.get(key, key)
        names.append(key if key in EVENT_TYPES else None)
    lookup = np.array(names + [None], dtype=object)  # the last slot serves the NA code -1
    return lookup[codes]


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
    # Column names are matched case-insensitively, so user aliases are too.
    mapping = {**COLUMN_ALIASES, **{str(k).strip().lower(): v for k, v in (aliases or {}).items()}}
    renamed = {}
    rename = {}
    present = set(df.columns)
    for c in df.columns:
        key = str(c).strip().lower()
        target = mapping.get(key, key if key in REQUIRED_COLUMNS + OPTIONAL_COLUMNS else None)
        if target and target != c and target not in present and target not in rename.values():
            rename[c] = target
            renamed[c] = target
    out = df.rename(columns=rename).copy()
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

    missing_id = out[col_user].isna().to_numpy() | out[col_item].isna().to_numpy()
    for col in (col_user, col_item):
        if _is_text_dtype(out[col]):
            missing_id |= out[col].map(lambda v: isinstance(v, str) and v.strip() == "").to_numpy(dtype=bool)
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
            num = pd.to_numeric(out[col], errors="coerce")
            bad = num.isna().to_numpy() & out[col].notna().to_numpy()
            if bad.any():
                raise SchemaError(f"column {col!r}: {int(bad.sum()):,} non-numeric value(s): {_quote_rows(out, bad, col)}")
            out[col] = num.astype("float64")

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
