"""Checking a whole event log: :func:`validate` raises for what cannot be fixed and reports every dropped row."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recapp.schema.cells import (
    DATE_NUMBERS_NOTE,
    check_flag,
    check_time_format,
    _blank,
    _normalise_events,
    _numeric,
    date_number_cells,
    id_problems,
    mixed_date_numbers_note,
    read_times,
    text_format_note,
    unparseable_times_hint,
)
from recapp.schema.columns import (
    COLUMN_ALIASES,
    EVENT_COL,
    EVENT_TYPES,
    ITEM_COL,
    OPTIONAL_COLUMNS,
    RATING_COL,
    REQUIRED_COLUMNS,
    TIME_COL,
    USER_COL,
    VALUE_COL,
)
from recapp.schema.errors import SchemaError, _quote_rows


class ReportSummary:
    """The readable summary every validation report shares: needs ``n_input``, ``n_output``,
    ``n_dropped``, ``counts()``, ``renamed`` and ``notes`` (how a column was read)."""

    def summary(self) -> str:
        """One human-readable paragraph."""
        parts = [f"{self.n_input:,} rows in, {self.n_output:,} kept, {self.n_dropped:,} dropped"]
        for reason, n in self.counts().items():
            parts.append(f"  {n:,} {reason}")
        if self.renamed:
            parts.append("  renamed columns: " + ", ".join(f"{a}->{b}" for a, b in self.renamed.items()))
        parts.extend(f"  {note}" for note in self.notes)
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
    notes: list = field(default_factory=list)

    @property
    def n_dropped(self) -> int:
        """Number of rows removed."""
        return int(len(self.dropped))

    def counts(self) -> pd.Series:
        """Dropped rows per reason."""
        if self.dropped.empty:
            return pd.Series(dtype="int64", name="rows")
        return self.dropped["reason"].value_counts().rename("rows")


def column_renames(columns, aliases: Mapping | None = None) -> dict:
    """The renaming :func:`validate` applies to these column names, ``{old: new}``.

    A name is matched case-insensitively against :data:`COLUMN_ALIASES`, then ``aliases``
    (which win), then the schema's own column names; it is renamed unless its target is
    already a column or already taken by an earlier column. ``aliases`` that is not
    a mapping of names to text raises :class:`SchemaError`.
    """
    if aliases is not None and not isinstance(aliases, Mapping):
        raise SchemaError(f"aliases must be a dict {{your_column: schema_column}}, got {type(aliases).__name__} {aliases!r:.80}")
    bad = [(k, v) for k, v in (aliases or {}).items() if not isinstance(v, str)]
    if bad:
        # A None or number target would leave the column silently unrenamed.
        raise SchemaError(f"aliases must map each column to a schema column name (text); {bad[0][0]!r} maps to {bad[0][1]!r}")
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
    time_format: str | None = None,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Check an event log against the schema and return ``(clean_frame, report)``.

    Raises :class:`SchemaError` for problems that cannot be fixed by dropping rows
    (empty input, missing columns, unparseable timestamps, unknown event types),
    quoting the first offending lines (1-based, as in the source file after its header).
    Rows with a missing user or item id and exact duplicates are removed and listed
    in the report, never silently. A time column whose every value is a YYYYMMDD
    date number (20240115) is read as those dates, and the report says so; time
    text that is not ISO 8601 (01/02/2024) is read with one format for the whole
    column, ``time_format`` (a strptime format such as ``"%d/%m/%Y"``) or else
    guessed from the first such text, and the report names it. A time outside
    the years 1900 to 2200 (UTC) counts as unparseable.
    """
    if not isinstance(df, pd.DataFrame):
        raise SchemaError(f"expected a pandas DataFrame, got {type(df).__name__}")
    check_time_format(time_format)
    check_flag("drop_duplicates", drop_duplicates)
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

    for col in (col_user, col_item):
        whys = id_problems(out[col])
        bad = pd.notna(whys)
        if bad.any():
            raise SchemaError(f"column {col!r}: {int(bad.sum()):,} value(s) that cannot be ids: {_quote_rows(out, bad, col)}. "
                              f"The first {whys[bad][0]}")

    ts, guess = read_times(out[col_time], time_format)
    bad_ts = np.isnan(ts)
    if bad_ts.any():
        raise SchemaError(
            f"column {col_time!r}: {int(bad_ts.sum()):,} unparseable timestamp(s): {_quote_rows(out, bad_ts, col_time)}. "
            + unparseable_times_hint(guess)
        )
    is_date, days = date_number_cells(out[col_time], ts)
    every_date = bool(len(is_date)) and bool(is_date.all())     # an empty column is no column of dates
    notes = [DATE_NUMBERS_NOTE] if every_date else [text_format_note(guess)] if guess is not None else []
    if is_date.any() and not every_date:
        notes.append(mixed_date_numbers_note(int(is_date.sum()), len(is_date), *(
            _quote_rows(out, mask & (mask.cumsum() == 1), col_time) for mask in (is_date, ~is_date))))
    out[col_time] = days if every_date else ts

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
        raise SchemaError(f"no valid rows left after validation: {ValidationReport(len(df), 0, dropped_df, renamed, notes).summary()}")
    return out, ValidationReport(n_input=len(df), n_output=len(out), dropped=dropped_df, renamed=renamed, notes=notes)
