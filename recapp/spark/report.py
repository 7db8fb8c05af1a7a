"""The report of :func:`recapp.spark.validate`: rows in and out, and every dropped row counted by reason."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from recapp.schema import ReportSummary, SchemaError

#: Columns :func:`recapp.spark.validate` adds to find an input row's line again.
_ROW = "__recapp_row__"
_PART = "__recapp_part__"


def col(name: str) -> Column:
    """A column by its exact name (dots and spaces in names are not paths)."""
    return F.col("`" + name.replace("`", "``") + "`")


def require_frame(sdf, name: str, *cols: str) -> None:
    """Raise unless ``sdf`` is a Spark DataFrame holding ``cols`` (messages name ``name`` and the columns found)."""
    if not isinstance(sdf, DataFrame):
        raise TypeError(f"{name} must be a Spark DataFrame, got {type(sdf).__name__}")
    missing = [c for c in cols if c not in sdf.columns]
    if missing:
        raise SchemaError(f"{name} is missing column(s) {missing}; columns found: {list(sdf.columns)}")


def persist_counted(sdf: DataFrame) -> tuple[DataFrame, int]:
    """``sdf`` persisted and its row count (the count fills the cache); a count that fails unpersists it again."""
    kept = sdf.persist()
    try:
        return kept, kept.count()
    except BaseException:
        # A failed (or interrupted) job leaves the plan registered as cached: later jobs would fill it for nobody.
        kept.unpersist()
        raise


@dataclass
class SparkValidationReport(ReportSummary):
    """What :func:`validate` did: rows in, rows out, and the dropped rows counted by reason.

    The counterpart of :class:`recapp.schema.ValidationReport` for a log too big to
    list row by row: ``dropped_counts`` holds every reason's count (computed),
    ``dropped`` the dropped rows themselves with a ``reason`` column (a lazy Spark
    DataFrame), and :meth:`dropped_lines` their 1-based line numbers when asked.
    """

    n_input: int
    n_output: int
    dropped_counts: dict = field(default_factory=dict)
    renamed: dict = field(default_factory=dict)
    dropped: DataFrame | None = None
    _lines: object = None
    notes: list = field(default_factory=list)

    @property
    def n_dropped(self) -> int:
        """Number of rows removed."""
        return int(sum(self.dropped_counts.values()))

    def counts(self) -> pd.Series:
        """Dropped rows per reason, most frequent first (as :meth:`ValidationReport.counts`)."""
        if not self.dropped_counts:
            return pd.Series(dtype="int64", name="rows")
        s = pd.Series(self.dropped_counts, dtype="int64", name="rows")
        s.index.name = "reason"
        return s.sort_values(ascending=False, kind="stable")


    def dropped_lines(self) -> pd.DataFrame:
        """DataFrame[line, reason] of every dropped row, by line (collects the dropped rows only)."""
        if self.dropped is None or self._lines is None:
            return pd.DataFrame({"line": pd.Series(dtype="int64"), "reason": pd.Series(dtype=object)})
        rows = self.dropped.select(_PART, _ROW, "reason").toPandas()
        lines = self._lines(rows[_PART].to_numpy(), rows[_ROW].to_numpy())
        out = pd.DataFrame({"line": lines.astype(np.int64), "reason": rows["reason"].to_numpy(dtype=object)})
        return out.sort_values("line", kind="stable", ignore_index=True)


# ---- line numbers ------------------------------------------------------------------------
def line_numbers(sdf: DataFrame):
    """A function (partition ids, row ids) -> 1-based lines of the input, from per-partition counts."""
    counts = {int(r[0]): int(r[1]) for r in sdf.groupBy(_PART).count().collect()}
    offsets = {}
    total = 0
    for p in sorted(counts):
        offsets[p] = total
        total += counts[p]

    def lines(parts: np.ndarray, rows: np.ndarray) -> np.ndarray:
        parts = np.asarray(parts, dtype=np.int64)
        local = np.asarray(rows, dtype=np.int64) - (parts << 33)   # monotonically_increasing_id's layout
        return np.array([offsets[int(p)] for p in parts], dtype=np.int64) + local + 1

    return lines


class LazyLines:
    """Line numbers computed on first use (one count per input partition)."""

    def __init__(self, flagged: DataFrame):
        self.flagged = flagged
        self.fn = None

    def __call__(self, parts, rows):
        if self.fn is None:
            self.fn = line_numbers(self.flagged)
        return self.fn(parts, rows)


__all__ = ["SparkValidationReport", "col", "line_numbers", "LazyLines"]
