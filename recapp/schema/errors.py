"""The schema's error and the checks that raise it, naming what is wrong and where."""
from __future__ import annotations

import numpy as np
import pandas as pd

from recapp.schema.columns import EVENT_TYPES


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


def _quote_rows(df: pd.DataFrame, mask: np.ndarray, column: str, limit: int = 5) -> str:
    """The first offending rows as 'line N: value' (by the ``__line__`` column), else 'index label: value'."""
    bad = df.loc[mask]
    where = (f"line {int(line)}" for line in bad["__line__"][:limit]) if "__line__" in bad.columns \
        else (repr(label) for label in bad.index[:limit])
    shown = ", ".join(f"{w}: {val!r}" for w, val in zip(where, bad[column][:limit]))
    more = f" (and {len(bad) - limit:,} more)" if len(bad) > limit else ""
    return shown + more
