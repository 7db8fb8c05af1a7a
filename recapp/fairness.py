"""Fair exposure and calibration: re-ranking a candidate list towards the user's category mix or the long tail.

Two greedy re-rankers over one user's candidates, both returning the chosen
candidates in pick order and both exactly the relevance order at strength 0:

* :func:`calibrated` (Steck, "Calibrated recommendations", RecSys 2018): the
  list's category distribution follows the user's history, measured by
  :func:`kl_divergence` (also :func:`recapp.metrics.calibration_kl`).
* :func:`exposure_aware` (smooth xQuAD for popularity, Abdollahpouri, Burke and
  Mobasher, FLAIRS 2019): long-tail items are exposed in proportion to the
  user's own taste for them, which lowers ``metrics.popularity_bias``.

:func:`rerank_recommendations` applies either to a whole ``model.recommend``
frame for offline evaluation; the real-time engine applies them per request
(``Engine(calibration=..., exposure=...)``). They are re-exported by
:mod:`recapp.rerank`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from recapp.schema import ITEM_COL, RANK_COL, SCORE_COL, USER_COL
from recapp.schema.cells import _plain

#: Steck's smoothing of the list's category distribution, so the KL divergence stays finite.
CALIBRATION_ALPHA = 0.01


def finite_candidates(candidates: np.ndarray, scores, name: str = "scores") -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The candidates with a finite score, their scores, and their positions (None when all are finite).

    ``-inf`` means "never recommend", and one non-finite score would turn the
    min-max scaling into NaN, after which argmax may pick anything.
    """
    rel = np.asarray(scores, dtype=np.float64)
    if rel.shape != (len(candidates),):
        raise ValueError(f"{name} has shape {rel.shape}; expected one score per candidate ({len(candidates)},)")
    finite = np.isfinite(rel)
    if finite.all():
        return candidates, rel, None
    keep = np.flatnonzero(finite)
    return candidates[keep], rel[keep], keep


def check_k(k) -> int:
    """``k`` as an int; ``ValueError`` unless it is a whole number >= 0.

    A negative ``k`` slices from the end and a float fails deep inside numpy, so
    both are refused here, in O(1): the real-time engine calls this per request.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k={k!r} is not accepted; it must be an integer >= 0 (the number of items to pick)")
    return int(k)


def check_unique(candidates: np.ndarray) -> None:
    """``ValueError`` naming a candidate that appears more than once (it could be picked twice)."""
    if len(candidates) > 1:
        s = np.sort(candidates)
        dup = s[1:] == s[:-1]
        if dup.any():
            raise ValueError(f"candidates hold {_plain(s[1:][dup][0])!r} more than once; each candidate must appear once")


def _check_alpha(alpha) -> None:
    # alpha = 0 lets the divergence be infinite, alpha > 1 weighs q negatively (log of a negative).
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) or not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha={alpha!r} is out of range; it must be in (0, 1] (Steck's smoothing, default {CALIBRATION_ALPHA})")


def _unit_relevance(relevance: np.ndarray) -> np.ndarray:
    rel = np.asarray(relevance, dtype=np.float64)
    span = rel.max() - rel.min() if len(rel) else 0.0
    return (rel - rel.min()) / span if span > 0 else np.ones(len(rel))


def _relevance_order(candidates: np.ndarray, rel: np.ndarray, k: int) -> np.ndarray:
    return candidates[np.lexsort((np.arange(len(rel)), -rel))[:k]]


def category_matrix(labels, categories: Sequence | None = None, *, sep: str = "|") -> tuple[np.ndarray, list]:
    """Each item's category distribution p(g|i): (items x categories) rows summing to 1, and the category names.

    ``labels`` holds one entry per item: ``"A|B"`` strings split on ``sep``, lists
    of names, or missing (an all-zero row). A multi-category item splits its mass
    evenly, as in Steck (2018). ``categories`` fixes the columns (unknown names are
    ignored, the item's mass split over the known ones); by default every name seen, sorted.
    """
    rows = []
    for v in labels:
        if isinstance(v, str):
            rows.append([g for g in v.split(sep) if g])
        elif isinstance(v, (list, tuple, set, frozenset, np.ndarray)):
            rows.append([str(g) for g in v])
        else:
            rows.append([])
    names = sorted({g for r in rows for g in r}) if categories is None else list(categories)
    col = {g: j for j, g in enumerate(names)}
    out = np.zeros((len(rows), len(names)))
    for i, r in enumerate(rows):
        js = [col[g] for g in r if g in col]
        if js:
            np.add.at(out[i], js, 1.0 / len(js))
    return out, names


def category_distribution(item_categories: np.ndarray, weights=None) -> np.ndarray:
    """p(g) of a set of items: ``sum_i w_i p(g|i) / sum_i w_i`` (zeros for an empty set)."""
    m = np.asarray(item_categories, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"item_categories must be a 2-D (items x categories) array; got shape {m.shape}")
    w = np.ones(len(m)) if weights is None else np.asarray(weights, dtype=np.float64)
    total = w.sum()
    return w @ m / total if total > 0 else np.zeros(m.shape[1])


def kl_divergence(p: np.ndarray, q: np.ndarray, alpha: float = CALIBRATION_ALPHA) -> float:
    """Steck's miscalibration ``KL(p || q~)`` in nats with ``q~ = (1 - alpha) q + alpha p``; range [0, log(1/alpha)].

    ``p`` is the target (the user's history), ``q`` the list's distribution.
    0 means the list's category mix follows the history; an empty ``p`` gives 0.
    ``alpha`` must lie in (0, 1].
    """
    _check_alpha(alpha)
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    on = p > 0
    return float(np.sum(p[on] * np.log(p[on] / ((1.0 - alpha) * q[on] + alpha * p[on]))))


def calibrated(candidates: np.ndarray, scores: np.ndarray, item_categories: np.ndarray, user_history_categories: np.ndarray,
               k: int, lam: float = 0.5, *, alpha: float = CALIBRATION_ALPHA) -> np.ndarray:
    """Calibrated recommendations (Steck, RecSys 2018): pick ``k`` of ``candidates`` greedily.

    Maximises ``(1 - lam) * sum(relevance) - lam * KL(p || q~(list))`` one item at
    a time (Steck's greedy, a (1 - 1/e) approximation), where relevance is
    ``scores`` min-max scaled to [0, 1] over the candidates, ``p`` the user's
    category distribution and ``q~`` the list's, smoothed by ``alpha`` (see
    :func:`kl_divergence`; list items weigh the same). ``item_categories`` is the
    candidates' (n x categories) p(g|i) (:func:`category_matrix`);
    ``user_history_categories`` is p(g|u) as a vector, or the history items'
    category rows (averaged). ``lam=0`` returns the relevance order exactly, as
    does a user with no categorised history. A candidate whose score is not
    finite is never picked, so fewer than ``k`` may come back. Returns the chosen candidates in pick order.
    ``k`` must be an integer >= 0, ``alpha`` in (0, 1], the candidates distinct and the
    user's category weights finite and non-negative.
    """
    k = check_k(k)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam={lam!r} is out of range; it must be in [0, 1] (0 = relevance only)")
    _check_alpha(alpha)
    candidates = np.asarray(candidates)
    check_unique(candidates)
    cats = np.asarray(item_categories, dtype=np.float64)
    p = np.asarray(user_history_categories, dtype=np.float64)
    bad = ~np.isfinite(p) | (p < 0)
    if bad.any():
        # A NaN weight fails every comparison, so the user would silently count as having no history.
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"user_history_categories holds {float(p[where])!r} at position {where if p.ndim > 1 else where[0]}; "
                         f"category weights must be finite and >= 0")
    if p.ndim == 2:
        p = category_distribution(p)
    if cats.shape != (len(candidates), len(p)):
        raise ValueError(f"item_categories has shape {cats.shape}; expected (len(candidates), n_categories) = "
                         f"({len(candidates)}, {len(p)})")
    candidates, scores, keep = finite_candidates(candidates, scores)
    if keep is not None:
        cats = cats[keep]
    k = min(k, len(candidates))
    rel = _unit_relevance(scores)
    if lam == 0.0 or k == 0 or p.sum() <= 0:
        return _relevance_order(candidates, rel, k)
    p = p / p.sum()
    on = p > 0
    pt, ct = p[on], cats[:, on]
    mass = np.zeros(on.sum())
    available = np.ones(len(candidates), dtype=bool)
    chosen = []
    for t in range(k):
        q = (mass[None, :] + ct) / (t + 1)                   # the list's distribution with each candidate added
        kl = (pt * np.log(pt / ((1.0 - alpha) * q + alpha * pt))).sum(axis=1)
        gain = (1.0 - lam) * rel - lam * kl
        gain[~available] = -np.inf
        j = int(np.argmax(gain))
        chosen.append(j)
        available[j] = False
        mass += ct[j]
    return candidates[np.asarray(chosen)]


def head_items(popularity: np.ndarray, head_share: float = 0.2) -> np.ndarray:
    """Boolean mask of the short head: the ``head_share`` most popular items (ties by index; never a 0-count item)."""
    if not 0.0 < head_share < 1.0:
        raise ValueError(f"head_share={head_share!r} is out of range; it must be in (0, 1)")
    pop = np.asarray(popularity, dtype=np.float64)
    n_head = int(np.ceil(head_share * len(pop)))
    if n_head == 0:
        return np.zeros(len(pop), dtype=bool)
    # O(n): the n_head-th largest count, then ties at it filled by lowest index.
    threshold = np.partition(pop, len(pop) - n_head)[len(pop) - n_head]
    head = pop > threshold
    tied = np.flatnonzero(pop == threshold)
    head[tied[: n_head - int(head.sum())]] = True
    return head & (pop > 0)


def exposure_aware(candidates: np.ndarray, scores: np.ndarray, is_head: np.ndarray, k: int, beta: float = 0.5, *,
                   user_head_share: float = 0.5) -> np.ndarray:
    """Popularity-aware re-ranking, smooth xQuAD (Abdollahpouri, Burke and Mobasher, FLAIRS 2019).

    Items are short head (``is_head``, see :func:`head_items`) or long tail. Each
    step takes the candidate maximising ``(1 - beta) * rel + beta * P(c|u) * (1 - share_c)``
    where ``c`` is the candidate's group, ``P(c|u)`` the user's share of that group
    (``user_head_share`` for the head, the rest for the tail; 0.5 is not
    personalised), ``share_c`` the fraction of the list so far from ``c`` (0 for an
    empty list) and ``rel`` ``scores`` min-max scaled over the candidates. A group
    already well represented earns less, so tail items are exposed in proportion
    to the user's taste for them. That lowers popularity bias when the model
    serves more head than the user's history holds (EASE on ML-100K: 91% head
    among its top-50 against 69% in the histories) but can raise it for a user
    whose history is head-heavier than the list; a fixed ``user_head_share``
    (e.g. 0.2) pulls every list towards that share. ``beta=0`` returns the relevance order exactly.
    A candidate whose score is not finite is never picked, so fewer than ``k`` may
    come back. Returns the chosen candidates in pick order. ``k`` must be an integer >= 0
    and the candidates distinct.
    """
    k = check_k(k)
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta={beta!r} is out of range; it must be in [0, 1] (0 = relevance only)")
    if not 0.0 <= user_head_share <= 1.0:
        raise ValueError(f"user_head_share={user_head_share!r} is out of range; it must be in [0, 1]")
    candidates = np.asarray(candidates)
    check_unique(candidates)
    head = np.asarray(is_head, dtype=bool)
    if head.shape != (len(candidates),):
        raise ValueError(f"is_head has shape {head.shape}; expected one flag per candidate ({len(candidates)},)")
    candidates, scores, keep = finite_candidates(candidates, scores)
    if keep is not None:
        head = head[keep]
    k = min(k, len(candidates))
    rel = _unit_relevance(scores)
    if beta == 0.0 or k == 0:
        return _relevance_order(candidates, rel, k)
    want = np.where(head, user_head_share, 1.0 - user_head_share)
    available = np.ones(len(candidates), dtype=bool)
    chosen, n_head = [], 0
    for t in range(k):
        share = np.where(head, n_head, t - n_head) / t if t else np.zeros(len(candidates))
        gain = (1.0 - beta) * rel + beta * want * (1.0 - share)
        gain[~available] = -np.inf
        j = int(np.argmax(gain))
        chosen.append(j)
        available[j] = False
        n_head += int(head[j])
    return candidates[np.asarray(chosen)]


def rerank_recommendations(recs: pd.DataFrame, train: pd.DataFrame, *, k: int = 10, calibration: float = 0.0,
                           exposure: float = 0.0, exposure_target: float | None = None,
                           items: pd.DataFrame | None = None, categories: str = "genres", head_share: float = 0.2,
                           sep: str = "|") -> pd.DataFrame:
    """Re-rank each user's candidates in ``recs`` (e.g. ``model.recommend(users, k=50)``) down to ``k``.

    One of ``calibration`` (lambda of :func:`calibrated`, categories from
    ``items[categories]``) or ``exposure`` (beta of :func:`exposure_aware`; the
    head is the ``head_share`` most popular items by distinct ``train`` users; each
    list aims at the head share of the user's ``train`` items, or at ``exposure_target``
    for everyone when it is a number). Both 0 keeps each
    user's top ``k`` by score. Returns DataFrame[user_id, item_id, score, rank]
    with the model's scores and the new ranks.
    """
    if calibration > 0.0 and exposure > 0.0:
        raise ValueError(f"calibration={calibration!r} and exposure={exposure!r} are both set; choose one re-ranking")
    if calibration > 0.0 and (items is None or categories not in items.columns):
        raise ValueError(f"calibration={calibration!r} needs items=... with a {categories!r} column")
    ids = pd.Index(pd.unique(np.concatenate([recs[ITEM_COL].to_numpy(), train[ITEM_COL].to_numpy()])))
    pairs = train[[USER_COL, ITEM_COL]].drop_duplicates()
    hist = dict(iter(pairs.assign(i=ids.get_indexer(pairs[ITEM_COL])).groupby(USER_COL)["i"]))
    if calibration > 0.0:
        labels = items.drop_duplicates(ITEM_COL).set_index(ITEM_COL)[categories].reindex(ids).to_numpy(dtype=object)
        cats, _ = category_matrix(labels, sep=sep)
    if exposure > 0.0:
        pop = pairs[ITEM_COL].value_counts().reindex(ids, fill_value=0).to_numpy(dtype=np.float64)
        head = head_items(pop, head_share)
    out = []
    for user, g in recs.groupby(USER_COL, sort=False):
        g = g.sort_values(SCORE_COL, ascending=False, kind="stable")
        cand, scores = ids.get_indexer(g[ITEM_COL]), g[SCORE_COL].to_numpy(dtype=np.float64)
        h = hist.get(user)
        h = np.zeros(0, dtype=np.int64) if h is None else h.to_numpy()
        pos = np.arange(len(cand))
        if calibration > 0.0:
            chosen = calibrated(pos, scores, cats[cand], category_distribution(cats[h]), k, calibration)
        elif exposure > 0.0:
            share = exposure_target if exposure_target is not None else float(head[h].mean()) if len(h) else 0.5
            chosen = exposure_aware(pos, scores, head[cand], k, exposure, user_head_share=share)
        else:
            chosen = pos[:k]
        top = g.iloc[chosen]
        out.append(pd.DataFrame({USER_COL: top[USER_COL].to_numpy(), ITEM_COL: top[ITEM_COL].to_numpy(),
                                 SCORE_COL: top[SCORE_COL].to_numpy(), RANK_COL: np.arange(1, len(top) + 1)}))
    if not out:
        return pd.DataFrame({USER_COL: [], ITEM_COL: [], SCORE_COL: [], RANK_COL: []})
    return pd.concat(out, ignore_index=True)


__all__ = [
    "CALIBRATION_ALPHA", "category_matrix", "category_distribution", "kl_divergence", "calibrated", "head_items",
    "exposure_aware", "rerank_recommendations",
]
