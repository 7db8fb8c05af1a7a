"""Event-log fingerprints, and the one rule for filling what a log leaves out (time 0, event "rating").

:func:`events_fingerprint` hashes an event log's content in any row order;
:class:`~recapp.interactions.Interactions` builds its frame with the same
:func:`_schema_frame`, so a model's training data can be recognised from the log.
Mixed text/number id columns are hashed with each id's kind (:func:`_typed_ids`).
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from recapp.schema import (
    EVENT_COL,
    ITEM_COL,
    RATING_COL,
    TIME_COL,
    USER_COL,
    require_columns,
)


def events_fingerprint(df: pd.DataFrame, *, col_user: str = USER_COL, col_item: str = ITEM_COL,
                       col_time: str = TIME_COL, col_event: str = EVENT_COL, col_rating: str = RATING_COL) -> str:
    """A hex digest of an event log's content (user, item, time, event, rating), the same in any row order.

    Two logs with the same events give the same fingerprint, so a model trained
    on one can be recognised as trained on the other (the dashboard's model cache
    and its list of saved models use this). Columns that
    :meth:`~recapp.interactions.Interactions.from_frame` fills in are filled the same way here (time 0,
    event ``"rating"``, no rating), so ``events_fingerprint(df) ==
    Interactions.from_frame(df).fingerprint()``. Other columns (such as ``value``)
    are not hashed: Interactions does not keep them, and no model sees them.
    """
    require_columns(df, "df", col_user, col_item)
    part = _schema_frame(df, col_user, col_item, col_time, col_event, col_rating)
    if RATING_COL not in part.columns:
        part[RATING_COL] = np.nan
    part[TIME_COL] = _canonical_float(part[TIME_COL])
    part[RATING_COL] = _canonical_float(part[RATING_COL])
    part[USER_COL] = _typed_ids(part[USER_COL])
    part[ITEM_COL] = _typed_ids(part[ITEM_COL])
    rows = np.sort(pd.util.hash_pandas_object(part, index=False).to_numpy())
    return hashlib.sha256(rows.tobytes()).hexdigest()


def _schema_frame(df: pd.DataFrame, col_user: str, col_item: str, col_time: str, col_event: str,
                  col_rating: str) -> pd.DataFrame:
    """``df``'s events under the schema's names, missing times as 0 and missing events as ``"rating"``.

    The one rule for filling what a log leaves out: :meth:`~recapp.interactions.Interactions.from_frame`
    builds on it and :func:`events_fingerprint` hashes it, so the two agree.
    """
    n = len(df)
    frame = pd.DataFrame({
        USER_COL: df[col_user].to_numpy(),
        ITEM_COL: df[col_item].to_numpy(),
        TIME_COL: _floats(df[col_time], col_time) if col_time in df.columns else np.zeros(n),
        EVENT_COL: df[col_event].to_numpy(dtype=object) if col_event in df.columns else np.full(n, "rating", dtype=object),
    })
    if col_rating in df.columns:
        frame[RATING_COL] = _floats(df[col_rating], col_rating, what="numbers")
    return frame


def _floats(values: pd.Series, col: str, what: str = "UTC seconds") -> np.ndarray:
    """``values`` as float64, or ``ValueError`` naming the column and the first value that is not a number."""
    try:
        return values.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        bad = next(v for v in values.tolist() if not _is_float(v))
        raise ValueError(f"column {col!r} must hold {what}; it holds {bad!r:.80} "
                         "(recapp.data.read_events or recapp.schema.validate reads times and ratings first)") from None


def _is_float(v) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _canonical_float(values: np.ndarray) -> np.ndarray:
    # Hashing reads a float's bits: give every NaN one bit pattern, and -0.0 that of 0.0.
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isnan(values), np.nan, values + 0.0)


def _typed_ids(values: pd.Series) -> pd.Series:
    """An id column whose text says each id's kind where the column mixes text and numbers.

    ``hash_pandas_object`` hashes an object column's values as text, so shopper
    1 and shopper "1" would hash alike and ``[1, "2"]`` like ``["1", 2]``. Columns
    of one kind (all text, or numbers of one dtype) are returned as they are, so
    their fingerprints do not change; ids that are equal as keys (1, 1.0,
    ``np.int64(1)``) get one token, as they are one id in the id maps.
    """
    if values.dtype != object or pd.api.types.infer_dtype(values, skipna=False) == "string":
        return values
    return pd.Series([_id_token(v) for v in values.tolist()], index=values.index, dtype=object)


def _id_token(v) -> str:
    if isinstance(v, str):
        return "s:" + v
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        f = float(v)
        if np.isfinite(f) and f.is_integer():
            return f"n:{int(v)}"
        return f"n:{f!r}"
    return f"{type(v).__name__}:{v!r}"

