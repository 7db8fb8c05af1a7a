"""Read an event log from CSV, Parquet or a DataFrame and validate it against the schema."""
from __future__ import annotations

import lzma
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from recapp.schema import ITEM_COL, USER_COL, SchemaError, ValidationReport, column_renames, validate

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


def _checked_path(path: str | os.PathLike) -> tuple[Path, str]:
    path = Path(path).expanduser()
    suffix = _suffix(path)
    if suffix is None:
        raise ValueError(f"cannot read {path}: unsupported file type {''.join(path.suffixes) or '(none)'!r}; accepted suffixes: {list(ACCEPTED_SUFFIXES)}")
    if not path.is_file():
        raise FileNotFoundError(f"event log not found: {path}")
    return path, suffix


def read_raw(path: str | os.PathLike, *, text_columns=()) -> pd.DataFrame:
    """Read a CSV/TSV (optionally compressed) or Parquet file as it is, without validation.

    CSV/TSV columns named in ``text_columns`` are read as text (blank cells stay
    missing) instead of letting pandas guess their type. A file that cannot be
    parsed as its suffix says raises ``ValueError`` naming the file.
    """
    path, suffix = _checked_path(path)
    if suffix in PARQUET_SUFFIXES:
        try:
            return pd.read_parquet(path)
        except (FileNotFoundError, PermissionError):
            raise
        except (ValueError, OSError) as exc:
            # pyarrow's ArrowInvalid (a ValueError) and its IO errors; raised as read_raw's CSV errors are.
            raise ValueError(f"cannot read {path} as {suffix} (a Parquet file): {type(exc).__name__}: {exc}") from exc
    # Compression is inferred from the suffix by pandas.
    frame = _read_csv(path, suffix, dtype={c: str for c in text_columns} or None)
    # pandas renames a repeated header name ("item_id.1"), which would hide it from validate's check.
    header = _read_csv(path, suffix, header=None, nrows=1, dtype=str).iloc[0].tolist()
    dupes = sorted({str(c) for c in header if header.count(c) > 1})
    if dupes:
        raise SchemaError(f"{path}: duplicate column name(s) {dupes} in the header; columns found: {header}")
    return frame


def _read_csv(path: Path, suffix: str, **kwargs) -> pd.DataFrame:
    """``pd.read_csv`` of a checked path, its parser, encoding and compression errors naming the file."""
    sep = "\t" if suffix.startswith(".tsv") else ","
    try:
        return pd.read_csv(path, sep=sep, **kwargs)
    except (FileNotFoundError, PermissionError):
        raise
    except (ValueError, EOFError, OSError, zipfile.BadZipFile, lzma.LZMAError) as exc:
        raise ValueError(f"cannot read {path} as {suffix} (UTF-8 text, {'tab' if sep == chr(9) else 'comma'}-separated, "
                         f"with a header row): {type(exc).__name__}: {exc}") from exc


def _csv_id_columns(path: Path, suffix: str, aliases: dict | None, id_cols) -> list[str]:
    """The file's header names that :func:`~recapp.schema.validate` will treat as the id columns."""
    if suffix in PARQUET_SUFFIXES:
        return []  # Parquet stores its column types; nothing is guessed
    header = _read_csv(path, suffix, nrows=0).columns
    renamed = column_renames(header, aliases)
    return [c for c in header if renamed.get(c, c) in id_cols]


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _exact_int(v, tail: str = "") -> bool:
    """Whether ``v`` is an int64 written canonically (``str(int(...)) == ...``), followed by ``tail``."""
    if not (isinstance(v, str) and v.endswith(tail)):
        return False
    digits = v[: len(v) - len(tail)]
    try:
        n = int(digits)
    except ValueError:
        return False
    return str(n) == digits and _INT64_MIN <= n <= _INT64_MAX


def _ids_from_text(ids: pd.Series) -> pd.Series:
    # Ids read as text become int64 only when every one reads back exactly as written:
    # "007", " 7", "+7" or "-0" keep the whole column as text, so no two ids merge. A column
    # written entirely as "<int>.0" (how pandas writes integer ids next to a blank cell) is
    # converted too: one uniform form maps distinct ids to distinct ints; a mix ("1", "1.0") is not.
    if not len(ids):
        return ids
    values = ids.to_numpy(dtype=object)
    for tail in ("", ".0"):
        if all(_exact_int(v, tail) for v in values):
            return pd.Series([int(v[: len(v) - len(tail)]) for v in values], index=ids.index, name=ids.name, dtype="int64")
    return ids


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
    own ``{your_column: schema_column}``. In a CSV/TSV file the user and item id
    columns (found after alias resolution) are read as text, so ``007`` and ``7``
    stay two ids and long ids keep every digit; such a column becomes int64 only
    when every id reads back exactly as written (``str(int(v)) == v``), or when
    every id is written as ``<int>.0`` (as pandas writes integer ids beside a blank
    cell), and stays text otherwise. Whole-number float ids in a DataFrame or
    Parquet file become int64 once rows with a missing id are dropped. Returns the clean frame, or
    ``(frame, report)`` when ``return_report`` is true; the report's summary is
    also kept in ``frame.attrs["validation_report"]``. Raises
    :class:`~recapp.schema.SchemaError` for a log that cannot be used.
    """
    id_cols = (validate_kwargs.get("col_user", USER_COL), validate_kwargs.get("col_item", ITEM_COL))
    text_ids = []
    if isinstance(path_or_frame, pd.DataFrame):
        raw = path_or_frame
    elif isinstance(path_or_frame, (str, os.PathLike)):
        path, suffix = _checked_path(path_or_frame)
        text_ids = _csv_id_columns(path, suffix, aliases, id_cols)
        raw = read_raw(path, text_columns=text_ids)
    else:
        raise TypeError(f"read_events expects a file path or a pandas DataFrame, got {type(path_or_frame).__name__}")
    clean, report = validate(raw, aliases=aliases, **validate_kwargs)
    for col in id_cols:
        clean[col] = _ids_from_text(clean[col]) if text_ids else _integral_ids(clean[col])
    clean.attrs["validation_report"] = report.summary()
    return (clean, report) if return_report else clean
