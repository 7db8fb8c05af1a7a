"""Checks recapp.spark's splits and metrics share: missing cells counted, with one offending row, in one Spark job."""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recapp.schema import SchemaError
from recapp.spark.report import col


def check_id_columns(sdf: DataFrame, *cols: str) -> None:
    """Raise :class:`~recapp.schema.SchemaError` when a column of ``sdf`` has a Spark type that cannot hold ids.

    What :func:`recapp.schema.cells.id_problem` refuses per cell, a Spark column
    of boolean, array, map or struct type holds in every row (a boolean would
    merge with shopper 0 or 1).
    """
    for c in cols:
        dtype = sdf.schema[c].dataType
        if isinstance(dtype, (T.BooleanType, T.ArrayType, T.MapType, T.StructType)):
            raise SchemaError(f"column {c!r}: its values cannot be ids: Spark type {dtype.simpleString()} "
                              "(ids are text or numbers; a boolean would merge with 0 or 1)")


def missing_cell(dtype: T.DataType, c: Column) -> Column:
    """pandas' ``isna`` as a Spark condition: null, or NaN in a floating-point column (blank text is not missing)."""
    return c.isNull() | F.isnan(c) if isinstance(dtype, (T.FloatType, T.DoubleType)) else c.isNull()


def count_rows(sdf: DataFrame, conds: dict, shown: list, *extra: Column) -> DataFrame:
    """A one-row lazy DataFrame: for each named condition, the rows meeting it (column ``name``, 0 when none)
    and one such row's ``shown`` columns (a struct, column ``name + '_row'``), then the ``extra`` aggregates.

    Several cross-join into one Spark job.
    """
    row = F.struct(*[col(c).alias(c) for c in shown])
    return sdf.agg(*[F.coalesce(F.sum(cond.cast("long")), F.lit(0)).alias(name) for name, cond in conds.items()],
                   *[F.first(F.when(cond, row), ignorenulls=True).alias(name + "_row") for name, cond in conds.items()],
                   *extra)


def quote_row(row) -> str:
    """One offending row of :func:`count_rows` as the checks quote it: ``name=value, ...`` (values as repr)."""
    return ", ".join(f"{k}={v!r}" for k, v in row.asDict().items()) if row is not None else "?"


def refuse_counted(row, checks: list) -> None:
    """Raise for the first of ``checks`` met in a :func:`count_rows` ``row``.

    Each check is ``(name, error class, message)``; the message is formatted with
    ``n`` (the count, with thousands separators) and ``row`` (the quoted offending row).
    """
    for name, error, message in checks:
        n = int(row[name])
        if n:
            raise error(message.format(n=f"{n:,}", row=quote_row(row[name + "_row"])))


def id_conditions(sdf: DataFrame, *cols: str) -> dict:
    """Named :func:`missing_cell` conditions (``missing_<column>``) for the id columns ``cols`` of ``sdf``."""
    return {f"missing_{c}": missing_cell(sdf.schema[c].dataType, col(c)) for c in cols}


def bad_amount(c: Column) -> Column:
    """A summed event weight no implicit model can read as an amount: null, NaN, infinite or negative.

    The rule of :func:`recapp.models.checks.check_weight_amounts` with ``allow_negative=False``.
    """
    return c.isNull() | F.isnan(c) | (c == float("inf")) | (c < 0)


__all__ = ["check_id_columns", "missing_cell", "count_rows", "quote_row", "refuse_counted", "id_conditions",
           "bad_amount"]
