"""Input checks every model shares: hyperparameters (:func:`recapp.params.check_param`), the histories given to ``score_history`` and ``encode``, and event weights read as amounts."""
from __future__ import annotations

import numpy as np

from recapp.interactions import EVENT_CODES
from recapp.params import check_param

__all__ = ["check_param", "history_arrays", "event_codes", "check_weight_amounts", "check_finite_weights"]


def history_arrays(items, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """A history given to ``score_history``: internal item indices (int64) and their weights (float64, 1 by default).

    Refused (ValueError): indices that are not integers (ids must first be
    mapped with ``model.interactions_.item_index``), a negative index, weights
    of another length than ``items``, and weights that are missing or infinite.
    Indices past the model's items stay: they are items it has not learned (an
    engine's newer items), which every model leaves out of the scores.
    """
    raw = np.asarray(items)
    if raw.size and not (np.issubdtype(raw.dtype, np.integer) and raw.dtype != bool):
        raise ValueError(f"items must be the model's internal item indices (integers), got dtype {raw.dtype}, e.g. "
                         f"{raw.ravel()[0].tolist()!r:.40}; map item ids with model.interactions_.item_index(ids)")
    idx = raw.astype(np.int64, copy=False).ravel()
    if idx.size and idx.min() < 0:
        i = int(np.argmax(idx < 0))
        raise ValueError(f"items[{i}] = {int(idx[i])} is negative; internal item indices start at 0")
    if weights is None:
        return idx, np.ones(len(idx))
    try:
        w = np.asarray(weights, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"weights must be numbers, one per item, got {weights!r:.80}") from None
    if len(w) != len(idx):
        raise ValueError(f"weights has {len(w)} value(s) for {len(idx)} item(s); give one weight per item")
    bad = ~np.isfinite(w)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"weights[{i}] = {float(w[i])!r} is not a finite number; each item's summed event weight is one")
    return idx, w


def check_finite_weights(items, weights, what: str = "the live history") -> None:
    """Refuse summed event weights that are not finite (ValueError naming ``what``, the count and the first item).

    The rule :func:`history_arrays` applies to ``score_history``, for a history
    held elsewhere (a live shopper's): ``items`` are internal indices, one weight each.
    """
    w = np.asarray(weights, dtype=np.float64).ravel()
    bad = ~np.isfinite(w)
    if bad.any():
        j = int(np.argmax(bad))
        raise ValueError(f"{what}: {int(bad.sum()):,} item(s) have a summed event weight that is not a finite number, "
                         f"e.g. item {int(np.asarray(items).ravel()[j])}: {float(w[j])!r}; give finite event weights and ratings")


def event_codes(events, n: int) -> np.ndarray:
    """``events`` as int64 codes of ``EVENT_CODES``, one per history item; ValueError naming the first bad one."""
    raw = np.asarray(events).ravel()
    if len(raw) != n:
        raise ValueError(f"events has {len(raw)} code(s) for {n} item(s); give one event code per item")
    if raw.size and not (np.issubdtype(raw.dtype, np.integer) and raw.dtype != bool):
        raise ValueError(f"events must be event codes (integers of EVENT_CODES {EVENT_CODES}), got dtype {raw.dtype}")
    bad = (raw < 0) | (raw >= len(EVENT_CODES))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"events[{i}] = {int(raw[i])} is not an event code; accepted: {EVENT_CODES}")
    return raw.astype(np.int64)


_OPPOSITE = {"binary=False": "binary=True", "weighted=True": "weighted=False"}


def check_weight_amounts(model, X, *, allow_negative: bool = True, need_positive: bool = False, setting: str = "binary=False",
                         rows=None) -> None:
    """Refuse summed (user, item) event weights in ``X`` that a model using them as amounts cannot learn from.

    Refused (ValueError naming the model, the count and the first pair by its
    ids): weights that are not finite (an infinite rating, or ratings whose sum
    overflows float32), with ``allow_negative=False`` weights below 0, and with
    ``need_positive=True`` a matrix with no weight above 0 (nothing to learn). The
    pair's ids are read from ``model.interactions_``, so ``fit`` calls this after
    the base class has set it. ``setting`` names the option that makes the
    model read weights (its opposite is suggested); ``rows`` (user indices)
    limits the check to those users, as an ``update`` needs.
    """
    rows = None if rows is None else np.asarray(rows, dtype=np.int64)
    coo = (X if rows is None else X[rows]).tocoo()
    bad = ~np.isfinite(coo.data)
    what = "is not a finite number"
    if not bad.any() and not allow_negative:
        bad, what = coo.data < 0, "is negative"
    if not bad.any() and need_positive and not (coo.data > 0).any():
        bad, what = np.ones(len(coo.data), dtype=bool), "is 0 (every one of them)"
    if not bad.any():
        return
    j = int(np.argmax(bad))
    inter = model.interactions_
    user = coo.row[j] if rows is None else rows[coo.row[j]]
    raise ValueError(
        f"{type(model).__name__}({setting}) uses event weights as amounts, but {int(bad.sum()):,} (user, item) "
        f"pair(s) have a summed event weight that {what}, e.g. user {inter.user_ids[user]!r}, item "
        f"{inter.item_ids[coo.col[j]]!r}: {float(coo.data[j])!r}; give finite event weights and ratings"
        f"{'' if allow_negative else ' >= 0'}{' with some above 0' if need_positive else ''}, or {_OPPOSITE.get(setting, 'another setting')}")
