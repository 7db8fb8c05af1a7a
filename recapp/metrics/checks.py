"""Input checks every metric shares: ids of one kind in both frames, no missing ids, numeric scores, a valid k."""
from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd

from recapp.schema import SchemaError
from recapp.schema.cells import _plain
from recapp.schema.errors import _quote_rows


class ScoreError(ValueError):
    """A score, prediction or relevance column a metric cannot use: missing (NaN) or non-numeric values.

    Its own class so that a search (:func:`recapp.tune.grid_search`) can tell a
    diverged candidate from a mistake in the call.
    """


def check_id_kinds(a: pd.DataFrame, a_name: str, b: pd.DataFrame, b_name: str, *cols: str) -> None:
    """Raise SchemaError when a column holds numeric ids in one frame and non-numeric in the other."""
    # Integer ids in one frame and string ids in the other never match; say so
    # instead of returning a silent 0.
    for c in cols:
        na, nb = pd.api.types.is_numeric_dtype(a[c]), pd.api.types.is_numeric_dtype(b[c])
        if na != nb and len(a) and len(b):
            kinds = {True: "numeric", False: "non-numeric"}
            raise SchemaError(
                f"column {c!r} is {kinds[na]} ({a[c].dtype}) in {a_name} but {kinds[nb]} ({b[c].dtype}) in {b_name}; "
                "ids must have the same type in both frames"
            )


def check_k(k) -> int:
    """``k`` as an int; a ValueError naming it unless it is an integer >= 1."""
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
        raise ValueError(f"k={k!r} is invalid; accepted: an integer >= 1")
    return int(k)


def check_ids(df: pd.DataFrame, name: str, *cols: str) -> None:
    """Raise SchemaError naming the rows of ``df`` whose id in ``cols`` is missing."""
    # A missing id would vanish in a groupby or count as an item of its own; neither is a sound figure.
    for c in cols:
        missing = df[c].isna().to_numpy()
        if missing.any():
            raise SchemaError(f"column {c!r} of {name} has {int(missing.sum()):,} missing id(s), at rows "
                              f"{_quote_rows(df, missing, c)}; accepted: ids present in every row")


def check_one_value_per_id(df: pd.DataFrame, name: str, col_id, col_value: str) -> None:
    """Raise SchemaError when an id of ``df`` (a column, or a list of columns for a pair) is repeated with
    different ``col_value`` values (missing counts as a value)."""
    # Repeats that agree are harmless (a catalogue cut from an event log has many); repeats that
    # disagree would be merged silently into an entry that no row states, or counted twice.
    keys = [col_id] if isinstance(col_id, str) else list(col_id)
    if not df.duplicated(keys).any():
        return
    n = df.groupby(keys, sort=False)[col_value].nunique(dropna=False)
    bad = n.index[n.to_numpy() > 1]
    if len(bad):
        first = bad[0] if isinstance(bad[0], tuple) else (bad[0],)
        rows = np.logical_and.reduce([(df[k] == v).to_numpy() for k, v in zip(keys, first)])
        values = [_plain(v) for v in pd.unique(df.loc[rows, col_value])]
        shown = tuple(_plain(v) for v in first) if len(keys) > 1 else _plain(first[0])
        where = f"column {keys[0]!r}" if len(keys) == 1 else f"columns {keys}"
        raise SchemaError(f"column {col_value!r} of {name} differs between the rows of {len(bad):,} repeated id(s) "
                          f"of {where}, e.g. {shown!r}: {values}; accepted: one {col_value!r} value per id "
                          "(repeated rows must agree)")


def check_scores(df: pd.DataFrame, name: str, col: str, *, what: str = "score", finite: bool = False) -> np.ndarray:
    """``df[col]`` as float64; a ScoreError naming the column and the first bad rows if any is NaN or non-numeric.

    ``finite=True`` refuses infinities too (a rating error of inf is no figure);
    ranking keeps them, since -inf is a common way to mask an item.
    """
    values = df[col]
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        coerced = pd.to_numeric(values, errors="coerce")
        bad = (coerced.isna() & values.notna()).to_numpy()
        if bad.any():
            raise ScoreError(f"column {col!r} of {name} has {int(bad.sum()):,} non-numeric {what}(s), at rows "
                             f"{_quote_rows(df, bad, col)}; accepted: numbers")
        values = coerced
    out = values.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(out) if finite else np.isnan(out)
    if bad.any():
        kind = "NaN or infinite" if finite else "NaN"
        raise ScoreError(f"column {col!r} of {name} has {int(bad.sum()):,} {kind} {what}(s), at rows "
                         f"{_quote_rows(df, bad, col)}; accepted: {'finite ' if finite else ''}numbers"
                         + (" (NaN from a model usually means its fit diverged)" if what in ("score", "prediction") else ""))
    return out
