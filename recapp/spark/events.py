"""Read and validate an event log into a Spark DataFrame, with the rules of :mod:`recapp.schema`.

:func:`validate` is :func:`recapp.schema.validate` on a Spark DataFrame: the
same column aliases (matched case-insensitively), the same required columns,
the same per-cell rules and the same outcomes. Rows with a missing user or
item id and exact duplicates are dropped and counted by reason; unparseable
timestamps, unknown event types and non-numeric ratings or values raise
:class:`~recapp.schema.SchemaError` quoting the first offending lines (1-based,
as in the source after its header). Where a rule is not plain arithmetic the
Spark side calls recapp's own function: :func:`recapp.schema.normalise_event`
on each distinct event name, the schema's time rule on text timestamps (the
one format for non-ISO text is guessed on the driver from the first such texts
in line order, as pandas does) and the schema's number rule on text ratings (in
pandas UDFs), so a log validates to the same rows on Spark as in pandas. Times
outside the years :data:`recapp.schema.cells.TIME_YEARS` are unparseable in every column type.

:func:`event_weights` is :func:`recapp.interactions.event_weights_for` as a
Spark column: the implicit weight of each event (a rating weighs its rating).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recapp.data.events import CSV_SUFFIXES, PARQUET_SUFFIXES, _suffix
from recapp.interactions import resolve_event_weights
from recapp.schema import (
    EVENT_COL,
    EVENT_TYPES,
    ITEM_COL,
    RATING_COL,
    REQUIRED_COLUMNS,
    TIME_COL,
    USER_COL,
    VALUE_COL,
    SchemaError,
    column_renames,
    normalise_event,
)
from recapp.schema.cells import (
    _GUESS_TRIES,
    DATE_NUMBERS,
    DATE_NUMBERS_NOTE,
    EPOCH_UNITS,
    TIME_BOUNDS,
    _normalise_events,
    _numeric,
    _read_times,
    check_flag,
    check_time_format,
    mixed_date_numbers_note,
    text_format_for,
    text_format_note,
    unparseable_times_hint,
)
from recapp.spark.checks import check_id_columns
from recapp.spark.report import _PART, _ROW, LazyLines, SparkValidationReport, col, line_numbers, persist_counted

MISSING_ID = "missing user or item id"
DUPLICATE = "exact duplicate"
#: A text cell counts as blank when Python's ``str.strip`` would leave nothing: Unicode
#: White_Space plus the separators U+001C..U+001F, which ``str.isspace`` also accepts.
_BLANK_TEXT = r"(?U)^[\s\x{1c}-\x{1f}]*\z"
#: Above this many distinct event names the names are normalised in a pandas UDF instead of a lookup.
_MAX_EVENT_NAMES = 10_000
_NUMERIC = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.DecimalType)
FORMATS = ("csv", "tsv", "parquet", "json")


# ---- column rules ------------------------------------------------------------------------
def _blank(dtype: T.DataType, c: Column) -> Column:
    """The schema's missing-cell rule: null, NaN, or text that is only whitespace."""
    if isinstance(dtype, T.StringType):
        return c.isNull() | c.rlike(_BLANK_TEXT)
    if isinstance(dtype, (T.FloatType, T.DoubleType)):
        return c.isNull() | F.isnan(c)
    return c.isNull()


@F.pandas_udf(T.DoubleType())
def _parse_text_timestamps(values: pd.Series, text_format: pd.Series) -> pd.Series:
    # The format comes as a constant column ('' for none): a pandas UDF takes columns only.
    fmt = (text_format.iloc[0] if len(text_format) else "") or None
    return pd.Series(_read_times(values.astype(object), fmt)[0], index=values.index)


@F.pandas_udf(T.BooleanType())
def _other_time_text(values: pd.Series) -> pd.Series:
    return pd.Series(_read_times(values.astype(object))[1], index=values.index)


@F.pandas_udf(T.DoubleType())
def _text_numbers(values: pd.Series) -> pd.Series:
    return pd.Series(_numeric(values.astype(object)), index=values.index)


@F.pandas_udf(T.StringType())
def _text_events(values: pd.Series) -> pd.Series:
    return pd.Series(_normalise_events(values.astype(object)), index=values.index, dtype=object)


def _finite(v: Column) -> Column:
    return v.isNotNull() & ~F.isnan(v) & (F.abs(v) != F.lit(math.inf))


def _in_range(seconds: Column) -> Column:
    low, high = TIME_BOUNDS
    return F.when((seconds >= low) & (seconds < high), seconds)


def _timestamps(dtype: T.DataType, c: Column, text_format: str | None = None) -> Column:
    """UTC seconds as :func:`recapp.schema.cells.read_times` reads them (non-ISO text with ``text_format``);
    null where unparseable or outside :data:`~recapp.schema.cells.TIME_BOUNDS`."""
    if isinstance(dtype, _NUMERIC):
        v = c.cast("double")
        seconds = v
        for above, per_second in reversed(EPOCH_UNITS):      # milli-, micro-, nanoseconds, as recapp.schema reads them
            seconds = F.when(F.abs(v) > above, v / per_second).otherwise(seconds)
        return F.when(_finite(v), _in_range(seconds))
    if isinstance(dtype, T.TimestampType):
        return _in_range(F.unix_micros(c) / 1e6)
    if isinstance(dtype, T.TimestampNTZType):
        # A naive time is read as UTC, as pandas' to_datetime(utc=True) does.
        return _in_range(F.unix_micros(F.make_timestamp(F.year(c), F.month(c), F.dayofmonth(c), F.hour(c), F.minute(c),
                                                        F.date_part(F.lit("SECOND"), c), F.lit("UTC"))) / 1e6)
    if isinstance(dtype, T.DateType):
        return _in_range(F.unix_date(c).cast("double") * 86_400.0)
    if isinstance(dtype, T.StringType):
        v = _parse_text_timestamps(c, F.lit(text_format or ""))
        return F.when(_finite(v), v)
    return F.lit(None).cast("double")


def _text_format(out: DataFrame, dtype: T.DataType, c: Column, keep: Column,
                 time_format: str | None) -> tuple[str, str | None] | None:
    """The one format for a text time column's non-ISO cells: :func:`~recapp.schema.cells.text_format_for` on the
    first such cells of the kept rows in line order, as pandas' validate finds it (one Spark job)."""
    if not isinstance(dtype, T.StringType):
        return None
    firsts = out.filter(keep & _other_time_text(c)).orderBy(_ROW).limit(_GUESS_TRIES).select(c).collect()
    return text_format_for((r[0] for r in firsts), time_format)


def _date_numbers(dtype: T.DataType, c: Column, ts: Column) -> tuple[Column, Column]:
    """(whether the cell is a YYYYMMDD date number, its date) as :func:`recapp.schema.cells.date_number_cells` reads them.

    ``ts`` is the cell read as epoch seconds; only numbers (not ISO text) whose seconds
    fall in the date-number range count, and the date must exist (20240231 does not).
    """
    if isinstance(dtype, _NUMERIC):
        v = c.cast("double")
    elif isinstance(dtype, T.StringType):
        v = c.try_cast("double")
    else:
        return F.lit(False), F.lit(None).cast("date")
    low, high = DATE_NUMBERS
    candidate = ts.between(low, high) & (ts == F.floor(ts)) & (v == ts)
    day = F.when(candidate, F.try_to_date(v.cast("long").cast("string"), "yyyyMMdd"))
    return F.coalesce(day.isNotNull(), F.lit(False)), day


def _numbers(dtype: T.DataType, c: Column) -> tuple[Column, Column]:
    """(the cell as a double or null, whether it is a non-blank non-number) under the schema's number rule."""
    blank = _blank(dtype, c)
    if isinstance(dtype, _NUMERIC):
        v = c.cast("double")
    elif isinstance(dtype, T.StringType):
        v = _text_numbers(c)
    else:
        # Booleans and anything else are not numbers.
        v = F.lit(None).cast("double")
    ok = v.isNotNull() & ~F.isnan(v)
    return F.when(~blank & ok, v), ~blank & ~ok


def _event_lookup(sdf: DataFrame, dtype: T.DataType, c: Column, keep: Column) -> Column:
    """The event column normalised by :func:`recapp.schema.normalise_event`; null where unknown."""
    if not isinstance(dtype, T.StringType):
        return F.lit(None).cast("string")      # normalise_event accepts text only
    names = [r[0] for r in sdf.filter(keep).select(c).distinct().limit(_MAX_EVENT_NAMES + 1).collect()]
    if len(names) > _MAX_EVENT_NAMES:
        return _text_events(c)
    lookup = {v: normalise_event(v) for v in names if v is not None}
    lookup = {k: v for k, v in lookup.items() if v is not None}
    if not lookup:
        return F.lit(None).cast("string")
    table = F.create_map(*[F.lit(x) for pair in lookup.items() for x in pair])
    return F.try_element_at(table, c)


def _quote(flagged: DataFrame, cond: Column, column: str, n_bad: int, lines, limit: int = 5) -> str:
    rows = flagged.filter(cond).orderBy(_ROW).limit(limit).select(_PART, _ROW, col(column).alias("v")).collect()
    at = lines([r[0] for r in rows], [r[1] for r in rows])
    shown = ", ".join(f"line {int(line)}: {r[2]!r}" for line, r in zip(at, rows))
    more = f" (and {n_bad - limit:,} more)" if n_bad > limit else ""
    return shown + more


# ---- validate ----------------------------------------------------------------------------
def validate(
    sdf: DataFrame,
    *,
    aliases: dict | None = None,
    drop_duplicates: bool = True,
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
    col_time: str = TIME_COL,
    col_event: str = EVENT_COL,
    default_event: str | None = None,
    time_format: str | None = None,
    persist: bool = True,
) -> tuple[DataFrame, SparkValidationReport]:
    """Check a Spark event log against the schema; returns ``(clean DataFrame, report)``.

    The rules and messages of :func:`recapp.schema.validate`: columns renamed by
    :data:`~recapp.schema.COLUMN_ALIASES` (and ``aliases``); ``timestamp`` becomes
    UTC seconds (double), ``event`` a schema name, ``rating``/``value`` doubles
    (null where blank). Rows with a missing id, then exact duplicates (with
    ``drop_duplicates``), are dropped and counted in the report, never silently.
    A time column of YYYYMMDD date numbers is read as dates, as there, and noted;
    non-ISO time text is read with ``time_format`` or the one format pandas would guess, and noted.
    Raises :class:`~recapp.schema.SchemaError` for an empty log, missing columns,
    unparseable timestamps, unknown event types or non-numeric ratings/values,
    quoting the first offending lines. Runs a few Spark jobs (counts, the
    distinct event names and, for a text time column, its first non-ISO texts). With ``persist`` the clean DataFrame is persisted
    (memory, then disk) as it is counted, so the splits and fits that follow do
    not validate again (a validation that fails leaves nothing persisted); call ``unpersist()`` on it
    when done. It has no row order.
    """
    if not isinstance(sdf, DataFrame):
        raise SchemaError(f"expected a Spark DataFrame, got {type(sdf).__name__}")
    check_time_format(time_format)
    check_flag("drop_duplicates", drop_duplicates)
    dupes = sorted({c for c in sdf.columns if sdf.columns.count(c) > 1})
    if dupes:
        raise SchemaError(f"duplicate column name(s) {dupes}; columns found: {list(sdf.columns)}")
    if sdf.isEmpty():
        raise SchemaError("the event log is empty: no rows to validate")
    original = list(sdf.columns)
    renamed = column_renames(original, aliases)
    out = sdf.withColumnsRenamed(renamed) if renamed else sdf
    if col_event not in out.columns and default_event is not None:
        out = out.withColumn(col_event, F.lit(default_event))
    missing = [c for c in (col_user, col_item, col_time, col_event) if c not in out.columns]
    if missing:
        raise SchemaError(
            f"missing required column(s) {missing}; columns found: {original}. "
            f"Required: {list(REQUIRED_COLUMNS)} (aliases such as 'behavior' are accepted)"
        )
    data_cols = list(out.columns)
    types = {f.name: f.dataType for f in out.schema.fields}
    check_id_columns(out, col_user, col_item)
    out = out.select("*", F.spark_partition_id().alias(_PART), F.monotonically_increasing_id().alias(_ROW))

    missing_id = _blank(types[col_user], col(col_user)) | _blank(types[col_item], col(col_item))
    kept = ~col("__missing__")
    numbers = {c: _numbers(types[c], col(c)) for c in (RATING_COL, VALUE_COL) if c in types}
    guess = _text_format(out, types[col_time], col(col_time), ~missing_id, time_format)
    flagged = out.select(
        "*",
        missing_id.alias("__missing__"),
        _timestamps(types[col_time], col(col_time), guess[0] if guess else None).alias("__ts__"),
        *[v.alias(f"__num_{c}__") for c, (v, _) in numbers.items()],
        *[bad.alias(f"__bad_{c}__") for c, (_, bad) in numbers.items()],
    )
    flagged = flagged.withColumn("__event__", _event_lookup(flagged, types[col_event], col(col_event), kept))
    is_date, day = _date_numbers(types[col_time], col(col_time), col("__ts__"))
    conds = {
        "ts": kept & col("__ts__").isNull(),
        "event": kept & col("__event__").isNull(),
        **{c: kept & col(f"__bad_{c}__") for c in numbers},
    }
    agg = flagged.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(F.col("__missing__").cast("long")).alias("missing"),
        F.sum(F.when(kept, is_date.cast("long"))).alias("n_dates"),
        *[F.sum(cond.cast("long")).alias(name) for name, cond in conds.items()],
    ).collect()[0]
    n_input = int(agg["n"])
    n_missing = int(agg["missing"] or 0)

    def fail(name: str, column: str, what: str, accepted: str | None) -> None:
        n_bad = int(agg[name] or 0)
        if n_bad:
            lines = line_numbers(flagged)
            msg = f"column {column!r}: {n_bad:,} {what}: {_quote(flagged, conds[name], column, n_bad, lines)}"
            raise SchemaError(msg + (f". {accepted}" if accepted else ""))

    fail("ts", col_time, "unparseable timestamp(s)", unparseable_times_hint(guess))
    fail("event", col_event, "unknown event type(s)", f"Accepted: {list(EVENT_TYPES)}")
    for c in numbers:
        fail(c, c, "non-numeric value(s)", None)

    notes, n_dates = [], int(agg["n_dates"] or 0)
    if n_dates and n_dates == n_input - n_missing:    # every kept time is a YYYYMMDD date number: read them as dates
        flagged = flagged.withColumn("__ts__", F.unix_date(day).cast("double") * 86_400.0)
        notes.append(DATE_NUMBERS_NOTE)
    elif guess is not None:
        notes.append(text_format_note(guess))
    if 0 < n_dates < n_input - n_missing:
        lines = line_numbers(flagged)
        notes.append(mixed_date_numbers_note(n_dates, n_input - n_missing, *(
            _quote(flagged, kept & cond, col_time, 1, lines, limit=1) for cond in (is_date, ~is_date))))
    # Duplicates are judged on the converted values (as in pandas); dropped rows are shown as read.
    converted_name = {col_time: "__ts__", col_event: "__event__", **{c: f"__num_{c}__" for c in numbers}}
    keys = [converted_name.get(c, c) for c in data_cols]
    kept_rows = flagged.filter(kept)
    dropped_parts = [flagged.filter(col("__missing__")).select(*[col(c) for c in data_cols], _PART, _ROW)
                     .withColumn("reason", F.lit(MISSING_ID))]
    counts = {MISSING_ID: n_missing} if n_missing else {}
    deduped = kept_rows.dropDuplicates(keys) if drop_duplicates else kept_rows
    clean = deduped.select(*[col(converted_name.get(c, c)).alias(c) for c in data_cols])
    if persist:
        clean, n_output = persist_counted(clean)
    else:
        n_output = clean.count() if drop_duplicates else n_input - n_missing
    n_dup = n_input - n_missing - n_output
    if n_dup:
        from pyspark.sql import Window

        counts[DUPLICATE] = n_dup
        first = Window.partitionBy(*[col(k) for k in keys]).orderBy(_ROW)
        dropped_parts.append(kept_rows.withColumn("__n__", F.row_number().over(first)).filter(F.col("__n__") > 1)
                             .select(*[col(c) for c in data_cols], _PART, _ROW).withColumn("reason", F.lit(DUPLICATE)))
    dropped = dropped_parts[0]
    for part in dropped_parts[1:]:
        dropped = dropped.unionByName(part)
    report = SparkValidationReport(n_input, n_output, counts, renamed, dropped, LazyLines(flagged) if counts else None,
                                   notes)
    if n_output == 0:
        clean.unpersist()
        raise SchemaError(f"no valid rows left after validation: {report.summary()}")
    return clean, report


# ---- reading -------------------------------------------------------------------------------
def read_events(spark, path, *, format: str | None = None, aliases: dict | None = None, options: dict | None = None,
                **validate_kwargs) -> tuple[DataFrame, SparkValidationReport]:
    """Read an event log (CSV/TSV, Parquet or JSON lines; a file or a folder) and :func:`validate` it.

    ``format`` defaults to what the name ends with (the suffixes of
    :func:`recapp.data.events.read_events`), and to Parquet for a folder. CSV is
    read with its header and inferred column types; ``options`` adds reader
    options. Returns ``(clean DataFrame, report)``.
    """
    p = Path(os.fspath(path)).expanduser() if not str(path).startswith(("s3", "hdfs:", "gs:", "abfs")) else None
    if format is None:
        suffix = _suffix(p) if p is not None else _suffix(Path(str(path)))
        if suffix in CSV_SUFFIXES:
            format = "tsv" if suffix.startswith(".tsv") else "csv"
        elif suffix in PARQUET_SUFFIXES or (p is not None and p.is_dir()):
            format = "parquet"
        elif str(path).lower().endswith((".json", ".jsonl")):
            format = "json"
        else:
            raise ValueError(f"cannot tell the format of {path!s}; pass format= one of {list(FORMATS)}")
    if format not in FORMATS:
        raise ValueError(f"format={format!r} is not supported; accepted: {list(FORMATS)}")
    if p is not None and not p.exists():
        raise FileNotFoundError(f"event log not found: {p}")
    reader = spark.read
    if format in ("csv", "tsv"):
        reader = reader.option("header", True).option("inferSchema", True).option("sep", "\t" if format == "tsv" else ",")
    for key, value in (options or {}).items():
        reader = reader.option(key, value)
    raw = reader.format("csv" if format == "tsv" else format).load(str(p) if p is not None else str(path))
    return validate(raw, aliases=aliases, **validate_kwargs)


# ---- weights ---------------------------------------------------------------------------------
def event_weights(weights: dict | None = None, *, col_event: str = EVENT_COL, col_rating: str = RATING_COL,
                  has_rating: bool = True) -> Column:
    """Each event's implicit weight as a Spark column: :func:`recapp.interactions.event_weights_for`.

    The event's weight from :data:`~recapp.schema.DEFAULT_EVENT_WEIGHTS` updated by
    ``weights``; an event whose weight is None (``rating``) weighs its rating, or 1
    when the rating is missing (or the frame has no rating column: ``has_rating=False``).
    """
    w = resolve_event_weights(weights)
    e = col(col_event)
    out = F.lit(1.0)
    for name, weight in w.items():
        if weight is None:
            r = col(col_rating).cast("double") if has_rating else F.lit(None).cast("double")
            value = F.when(r.isNull() | F.isnan(r), F.lit(1.0)).otherwise(r)
        else:
            value = F.lit(float(weight))
        out = F.when(e == name, value).otherwise(out)
    return out


__all__ = ["SparkValidationReport", "validate", "read_events", "event_weights", "col", "MISSING_ID", "DUPLICATE"]
