"""Re-ranking: exclusion, business filters, MMR diversity, calibration, exposure, explanations and rank changes.

Plain functions on numpy arrays of scores indexed by internal item index, so
the real-time engine, notebooks and tests share them. A score of ``-inf``
means "never recommend"; every function here keeps that convention.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

# Calibration and exposure-aware re-ranking live in recapp.fairness; they are re-ranking options, so here too.
from recapp.fairness import (  # noqa: F401
    CALIBRATION_ALPHA, calibrated, category_distribution, category_matrix, exposure_aware, head_items, kl_divergence,
)
from recapp.fairness import _unit_relevance, check_k, check_unique, finite_candidates
from recapp.schema import ITEM_COL
from recapp.schema.cells import _plain

#: Explanation of an item that comes from the popularity fallback.
POPULAR_NOW = "popular now"


def exclude(scores: np.ndarray, items) -> np.ndarray:
    """Set ``scores[items] = -inf`` in place (items are internal indices) and return ``scores``.

    Indices outside ``scores`` are ignored, so a caller may pass a history that
    mentions items the scorer does not cover.
    """
    idx = np.fromiter(items, dtype=np.int64) if not isinstance(items, np.ndarray) else items.astype(np.int64, copy=False)
    idx = idx[(idx >= 0) & (idx < len(scores))]
    scores[idx] = -np.inf
    return scores


def _condition(values: pd.Series, cond) -> np.ndarray:
    """Boolean mask for one column: a callable, a (low, high) range, a collection or one value."""
    if callable(cond):
        return np.asarray(cond(values), dtype=bool)
    if isinstance(cond, tuple) and len(cond) == 2 and not isinstance(values.dtype, pd.CategoricalDtype) and pd.api.types.is_numeric_dtype(values):
        low, high = cond
        v = values.to_numpy(dtype=np.float64, na_value=np.nan)
        ok = ~np.isnan(v)
        if low is not None:
            ok &= v >= low
        if high is not None:
            ok &= v <= high
        return ok
    if isinstance(cond, (list, set, frozenset, tuple, np.ndarray, pd.Index, pd.Series)):
        return values.isin(list(cond)).to_numpy(dtype=bool)
    return (values == cond).fillna(False).to_numpy(dtype=bool)


def _callable_mask(got, n: int) -> np.ndarray:
    """A callable filter's answer as a boolean mask, refused unless it is one boolean per item."""
    if isinstance(got, pd.Series) and pd.api.types.is_bool_dtype(got.dtype):
        got = got.fillna(False).to_numpy(dtype=bool)
    arr = np.asarray(got)
    if arr.shape != (n,) or arr.dtype != bool:
        what = f"{arr.dtype} values of shape {arr.shape}" if arr.ndim else f"a single {type(got).__name__}"
        raise ValueError(f"a callable filter must return one boolean per row of the items frame it is given "
                         f"({n} rows); it returned {what}")
    return arr


def filter_mask(items: pd.DataFrame | None, filters, item_ids: Sequence | np.ndarray, *, col_item: str = ITEM_COL) -> np.ndarray | None:
    """Which items pass the business ``filters``: a boolean array aligned with ``item_ids``.

    ``filters`` is None (no filter), a callable ``items_frame -> bool mask``, or a
    mapping ``{column: condition}`` combined with AND, where a condition is one
    value (``{"category": "shoes"}``), a list/set of values, a ``(low, high)``
    range for a numeric column (either end may be None; both ends inclusive, e.g.
    ``{"price": (10, 50)}``) or a callable ``column -> bool mask``. Items missing
    from ``items`` (for example items first seen in the stream) fail every filter.
    Raises ``KeyError`` naming an unknown column.
    """
    if filters is None or (isinstance(filters, Mapping) and not filters):
        return None
    ids = np.asarray(item_ids)
    if items is None:
        raise ValueError("filters need an items table: pass items=... (a DataFrame with an item_id column) to the engine")
    table = items.set_index(col_item) if col_item in items.columns else items
    # Align the table to the item space once; unknown items become all-NaN rows that fail.
    aligned = table.reindex(pd.Index(ids))
    if callable(filters) and not isinstance(filters, Mapping):
        mask = _callable_mask(filters(aligned.reset_index(names=col_item)), len(ids))
    else:
        mask = np.ones(len(ids), dtype=bool)
        for col, cond in filters.items():
            if col not in aligned.columns:
                raise KeyError(f"filter column {col!r} is not in the items table; columns: {list(aligned.columns)}")
            mask &= _condition(aligned[col], cond)
    known = table.index.get_indexer(pd.Index(ids)) >= 0
    return mask & known


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest finite scores, best first (ties by lower index); ``k`` is an integer >= 0."""
    k = check_k(k)
    finite = np.isfinite(scores)
    n_finite = int(finite.sum())
    k = min(k, n_finite)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = _top_part(scores, k)
    if not np.isfinite(scores[part]).all():
        # A +inf (or NaN) took a place and would be dropped, losing a slot: pick again with it as -inf.
        # Checking the k picks, not every score, keeps the usual call (excluded items at -inf) to one pass.
        scores = np.where(finite, scores, -np.inf)
        part = _top_part(scores, k)
    order = np.lexsort((part, -scores[part]))
    return part[order][:k].astype(np.int64)


def _top_part(scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best indices of ``scores`` in no order, ties with the k-th going to the lower index."""
    if k >= len(scores):
        return np.arange(len(scores))
    # The items above the k-th score, then the lowest-index items tied with it, so ties go to the
    # lower index as promised (argpartition alone keeps arbitrary ones) without sorting every tie.
    kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
    part = np.flatnonzero(scores >= kth)
    if len(part) > k:
        v = scores[part]
        above = v > kth
        part = part[above | (np.cumsum(~above) <= k - np.count_nonzero(above))]
    return part


def top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-``k`` of a (users x items) score block: column indices and their scores, best first.

    Ties keep argpartition's order (a stable sort after it), the rule every batch
    ``recommend`` uses, so the Spark layer reproduces recapp's lists exactly.
    Non-finite scores rank below every finite one and come back as ``-inf`` when
    a row has fewer than ``k`` finite scores; callers drop them.
    """
    k_eff = min(k, scores.shape[1])
    top = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    top_scores = np.take_along_axis(scores, top, axis=1)
    if not (top_scores < np.inf).all():
        # A +inf (or NaN) won a place the caller then drops, leaving its row one short: partition again
        # with those as -inf. Checking the k picks, not the block, keeps the usual case free of a full pass.
        scores = np.where(scores < np.inf, scores, -np.inf)
        top = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
        top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)


def mmr(candidates: np.ndarray, relevance: np.ndarray, similarity: np.ndarray, k: int, lam: float = 0.7) -> np.ndarray:
    """Maximal marginal relevance (Carbonell and Goldstein 1998): pick ``k`` of ``candidates``.

    Each step takes the candidate maximising ``lam * rel - (1 - lam) * max_sim``,
    with relevance min-max scaled to [0, 1] over the candidates and ``max_sim`` its
    largest similarity (``similarity`` is a candidates x candidates matrix) to the
    items already chosen. ``lam=1`` keeps the relevance order; smaller values trade
    relevance for diversity. A candidate whose relevance is not finite is never
    picked, so fewer than ``k`` may come back. Returns the chosen candidates in pick order.
    ``k`` must be an integer >= 0, the candidates distinct and every similarity finite.
    """
    k = check_k(k)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam={lam!r} is out of range; it must be in [0, 1] (1 = relevance only)")
    candidates = np.asarray(candidates)
    check_unique(candidates)
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.shape != (len(candidates), len(candidates)):
        raise ValueError(f"similarity has shape {sim.shape}; expected candidates x candidates "
                         f"({len(candidates)}, {len(candidates)})")
    bad = ~np.isfinite(sim)
    if bad.any():
        # A NaN similarity propagates through max_sim and argmax picks it first: a wrong order, no error.
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"similarity has {int(bad.sum())} value(s) that are not finite numbers; the first is "
                         f"{_plain(sim[r, c])!r} at row {r}, column {c} (candidates {_plain(candidates[r])!r} and "
                         f"{_plain(candidates[c])!r})")
    candidates, rel, keep = finite_candidates(candidates, relevance, "relevance")
    n = len(candidates)
    k = min(k, n)
    if k == 0:
        return candidates[:0]
    rel = _unit_relevance(rel)
    if lam >= 1.0:
        return candidates[np.lexsort((np.arange(n), -rel))[:k]]
    if keep is not None:
        sim = sim[np.ix_(keep, keep)]
    chosen = [int(np.argmax(rel))]
    max_sim = sim[chosen[0]].copy()
    available = np.ones(n, dtype=bool)
    available[chosen[0]] = False
    for _ in range(k - 1):
        gain = lam * rel - (1.0 - lam) * max_sim
        gain[~available] = -np.inf
        j = int(np.argmax(gain))
        chosen.append(j)
        available[j] = False
        np.maximum(max_sim, sim[j], out=max_sim)
    return candidates[np.asarray(chosen)]


def cosine_similarity_matrix(vectors: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of a small (n x d) array, for :func:`mmr`."""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    v = v / np.where(norms > 0, norms, 1.0)
    return v @ v.T


def explanation(contributors: Sequence, *, names: Callable | Mapping | None = None, max_items: int = 3) -> str:
    """A short reason: ``"because of A, B"`` from the history items that contributed most.

    ``contributors`` are item ids, most important first; ``names`` maps an id
    to a display name (a title). No contributors gives :data:`POPULAR_NOW`.
    """
    shown = list(contributors)[:max_items]
    if not shown:
        return POPULAR_NOW
    if names is None:
        label = [str(i) for i in shown]
    elif callable(names):
        label = [str(names(i)) for i in shown]
    else:
        label = [str(names.get(i, i)) for i in shown]
    return "because of " + ", ".join(label)


def top_contributors(contrib: np.ndarray, history: np.ndarray, max_items: int = 3) -> list[list]:
    """For a (history x recommended) contribution matrix, each column's top history items.

    Only positive contributions count, so an item that lowered a score is never
    given as its reason. Returns one list per recommended item, best first.
    """
    contrib = np.asarray(contrib, dtype=np.float64)
    if contrib.ndim != 2 or contrib.shape[1] == 0:
        return []
    m = min(max_items, contrib.shape[0])
    if m == 0:
        return [[] for _ in range(contrib.shape[1])]
    part = np.argpartition(-contrib, m - 1, axis=0)[:m] if m < contrib.shape[0] else np.tile(np.arange(contrib.shape[0])[:, None], (1, contrib.shape[1]))
    vals = np.take_along_axis(contrib, part, axis=0)
    order = np.argsort(-vals, axis=0, kind="stable")
    part = np.take_along_axis(part, order, axis=0)
    vals = np.take_along_axis(vals, order, axis=0)
    history = list(history)
    return [[history[h] for h in part[vals[:, c] > 0, c].tolist()] for c in range(contrib.shape[1])]


def rank_changes(items: Sequence, previous: Mapping | None) -> pd.arrays.IntegerArray:
    """Rank change of each item in ``items`` (best first) against the ``previous`` {item: rank}.

    Positive means the item moved up (``previous_rank - rank``), 0 unchanged, and
    ``<NA>`` new in this list (or no previous list). Returns a nullable Int64 array.
    """
    n = len(items)
    values = np.zeros(n, dtype=np.int64)
    missing = np.ones(n, dtype=bool)
    if previous:
        for pos, item in enumerate(items):
            before = previous.get(item)
            if before is not None:
                values[pos] = int(before) - (pos + 1)
                missing[pos] = False
    return pd.arrays.IntegerArray(values, missing)


__all__ = [
    "POPULAR_NOW", "CALIBRATION_ALPHA", "exclude", "filter_mask", "top_k", "mmr", "category_matrix",
    "category_distribution", "kl_divergence", "calibrated", "head_items", "exposure_aware", "cosine_similarity_matrix",
    "explanation", "top_contributors", "rank_changes",
]
