"""Read an event log from CSV, Parquet or a DataFrame and validate it against the schema."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from recapp.schema import ITEM_COL, USER_COL, ValidationReport, validate

#: Accepted file endings, longest first so ".csv.gz" wins over ".gz".
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zip", ".tsv", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
ACCEPTED_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in sorted(ACCEPTED_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return None


def read_raw(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV/TSV (optionally compressed) or Parquet file as it is, without validation."""
    path = Path(path).expanduser()
    suffix = _suffix(path)
    if suffix is None:
        raise ValueError(f"cannot read {path}: unsupported file type {''.join(path.suffixes) or '(none)'!r}; accepted suffixes: {list(ACCEPTED_SUFFIXES)}")
    if not path.is_file():
        raise FileNotFoundError(f"event log not found: {path}")
    if suffix in PARQUET_SUFFIXES:
        return pd.read_parquet(path)
    sep = "\t" if suffix.startswith(".tsv") else ","
    # Compression is inferred from the suffix by pandas.
    return pd.read_csv(path, sep=sep)


def _integral_ids(ids: pd.Series) -> pd.Series:
    # A CSV id column with a blank cell is read as float (1.0, 2.0, NaN); once validate has
    # dropped those rows, give the ids back their integer type so they match other tables.
    if pd.api.types.is_float_dtype(ids) and len(ids) and np.isfinite(ids).all() and (ids == np.round(ids)).all() \
            and ids.abs().max() < 2**53:
        return ids.astype("int64")
    return ids


def read_events(
    path_or_frame: str | os.PathLike | pd.DataFrame,
    *,
    aliases: dict | None = None,
    return_report: bool = False,
    **validate_kwargs,
) -> pd.DataFrame | tuple[pd.DataFrame, ValidationReport]:
    """Load an event log and validate it with :func:`recapp.schema.validate`.

    Accepts a path to ``.csv``, ``.csv.gz`` (and other compressed CSV/TSV) or
    ``.parquet`` files, or a DataFrame. Column aliases (``behavior`` -> event,
    ``visitorid`` -> user_id, ...) and timestamps in epoch seconds,
    milliseconds or ISO 8601 are handled by ``validate``; ``aliases`` adds your
    own ``{your_column: schema_column}``. Whole-number float ids (what a CSV
    with a blank id cell gives) become int64 once those rows are dropped. Returns the clean frame, or
    ``(frame, report)`` when ``return_report`` is true; the report's summary is
    also kept in ``frame.attrs["validation_report"]``. Raises
    :class:`~recapp.schema.SchemaError` for a log that cannot be used.
    """
    if isinstance(path_or_frame, pd.DataFrame):
        raw = path_or_frame
    elif isinstance(path_or_frame, (str, os.PathLike)):
        raw = read_raw(path_or_frame)
    else:
        raise TypeError(f"read_events expects a file path or a pandas DataFrame, got {type(path_or_frame).__name__}")
    clean, report = validate(raw, aliases=aliases, **validate_kwargs)
    for col in (validate_kwargs.get("col_user", USER_COL), validate_kwargs.get("col_item", ITEM_COL)):
        clean[col] = _integral_ids(clean[col])
    clean.attrs["validation_report"] = report.summary()
    return (clean, report) if return_report else clean
