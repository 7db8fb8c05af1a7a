"""Event types as codes, and the implicit weight each event adds to the user x item matrix."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from recapp.schema import (
    DEFAULT_EVENT_WEIGHTS,
    EVENT_COL,
    EVENT_TYPES,
    RATING_COL,
    check_event_types,
)

EVENT_CODES = {name: code for code, name in enumerate(EVENT_TYPES)}


def resolve_event_weights(weights: dict | None = None) -> dict:
    """:data:`~recapp.schema.DEFAULT_EVENT_WEIGHTS` updated by ``weights``.

    Unknown event types raise, and so does a weight that is not a finite number
    (None, "use the rating", is accepted): a NaN weight would spread NaN through
    every model's matrix.
    """
    w = {**DEFAULT_EVENT_WEIGHTS, **(weights or {})}
    check_event_types("event_weights", w)
    bad = {e: v for e, v in w.items()
           if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))
                                 or not np.isfinite(v))}
    if bad:
        raise ValueError(f"event_weights has weight(s) that are not finite numbers: {bad}; "
                         "give a number per event type (None for 'rating' uses the rating)")
    return w


def event_weight(weights: dict, event: str, rating) -> float:
    """One event's implicit weight under resolved ``weights``, as :func:`event_weights_for` weighs a row:
    the event's weight, or for a ``None`` weight the rating (1 when absent)."""
    w = weights.get(event)
    if w is None:
        return 1.0 if rating is None or (isinstance(rating, float) and math.isnan(rating)) else float(rating)
    return float(w)


def event_weights_for(df: pd.DataFrame, weights: dict | None = None, *, col_event: str = EVENT_COL, col_rating: str = RATING_COL) -> np.ndarray:
    """Per-row implicit weight: the event's weight, or for ``rating`` the rating (1 when absent)."""
    w = resolve_event_weights(weights)
    if col_event not in df.columns:
        events = np.full(len(df), "rating", dtype=object)
    else:
        events = df[col_event].to_numpy(dtype=object)
    out = np.ones(len(df), dtype=np.float64)
    rating = df[col_rating].to_numpy(dtype=np.float64) if col_rating in df.columns else np.full(len(df), np.nan)
    for name, weight in w.items():
        mask = events == name
        if not mask.any():
            continue
        if weight is None:
            out[mask] = np.where(np.isnan(rating[mask]), 1.0, rating[mask])
        else:
            out[mask] = float(weight)
    return out
