"""Ranking accuracy at k (precision, recall, NDCG, MAP, MRR, hit rate) in one vectorised pass, and AUC.

Conventions: see :mod:`recapp.metrics`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from recapp.metrics.checks import check_id_kinds, check_ids, check_k, check_scores
from recapp.schema import ITEM_COL, SCORE_COL, USER_COL, require_columns

DEFAULT_K = 10

#: Names :func:`ranking_metrics` computes by default, in this order.
RANKING_METRICS = ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "mrr_at_k", "hit_rate_at_k")
_ALIASES = {name[: -len("_at_k")]: name for name in RANKING_METRICS}


# ---- ranking: one vectorised pass shared by every metric ------------------------
def per_user_ranking_metrics(
    rating_true: pd.DataFrame,
    rating_pred: pd.DataFrame,
    k: int = DEFAULT_K,
    *,
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
    col_prediction: str = SCORE_COL,
) -> pd.DataFrame:
    """One row per evaluated user: ``n_relevant``, ``n_hits`` and every ranking metric at ``k``.

    Users are those in both frames (see the module docstring). A (user, item)
    pair listed several times in ``rating_pred`` is ranked once, at its highest
    score (the first such row on a tie). Each metric lies in [0, 1]; the
    averages of its columns are what the ``*_at_k`` functions return. NaN or
    non-numeric scores raise :class:`~recapp.metrics.checks.ScoreError` (a ValueError);
    a missing user or item id in either frame raises SchemaError naming the rows.
    """
    k = check_k(k)
    require_columns(rating_true, "rating_true", col_user, col_item)
    require_columns(rating_pred, "rating_pred", col_user, col_item, col_prediction)
    check_ids(rating_true, "rating_true", col_user, col_item)
    check_ids(rating_pred, "rating_pred", col_user, col_item)
    check_id_kinds(rating_true, "rating_true", rating_pred, "rating_pred", col_user, col_item)
    # A NaN score would sort last and quietly rank the item below every other.
    all_scores = check_scores(rating_pred, "rating_pred", col_prediction)

    true_pairs = rating_true[[col_user, col_item]].drop_duplicates()
    users = pd.Index(pd.unique(true_pairs[col_user].to_numpy()))
    users = users[users.isin(pd.unique(rating_pred[col_user].to_numpy()))]
    n = len(users)
    true_pairs = true_pairs[true_pairs[col_user].isin(users)]
    in_users = rating_pred[col_user].isin(users).to_numpy()
    pred = rating_pred[in_users]

    # Top k per user: sort by (user, score desc, row position) so ties keep row order.
    ucode = users.get_indexer(pred[col_user])
    score = all_scores[in_users]
    order = np.lexsort((np.arange(len(pred)), -score, ucode))
    # A pair listed twice is one recommendation: counted twice it would push recall, NDCG and MAP above 1.
    # In this order the first row of each pair is its best-scored one.
    dup = pd.DataFrame({"u": ucode[order], "i": pred[col_item].to_numpy()[order]}).duplicated().to_numpy()
    order = order[~dup]
    su = ucode[order]
    starts = np.r_[0, np.flatnonzero(np.diff(su)) + 1] if len(su) else np.zeros(0, dtype=np.int64)
    rank = np.arange(len(su)) - np.repeat(starts, np.diff(np.r_[starts, len(su)])) + 1
    top = rank <= k
    su, rank, items = su[top], rank[top], pred[col_item].to_numpy()[order][top]

    relevant = pd.MultiIndex.from_frame(true_pairs)
    hit = pd.MultiIndex.from_arrays([users[su], items]).isin(relevant) if len(su) else np.zeros(0, dtype=bool)
    hu, hr = su[hit], rank[hit].astype(np.float64)
    # hits arrive sorted by (user, rank), so the j-th hit of a user is its j-th in rank order
    hstarts = np.r_[0, np.flatnonzero(np.diff(hu)) + 1] if len(hu) else np.zeros(0, dtype=np.int64)
    ordinal = np.arange(len(hu)) - np.repeat(hstarts, np.diff(np.r_[hstarts, len(hu)])) + 1

    n_rel = np.bincount(users.get_indexer(true_pairs[col_user]), minlength=n).astype(np.float64)
    n_hit = np.bincount(hu, minlength=n).astype(np.float64)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.r_[0.0, np.cumsum(discount)]           # ideal[m]: DCG of m hits at ranks 1..m
    dcg = np.bincount(hu, weights=discount[hr.astype(np.int64) - 1], minlength=n)
    n_rel_k = np.minimum(n_rel, k)
    rr = np.zeros(n)
    first = ordinal == 1
    rr[hu[first]] = 1.0 / hr[first]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = pd.DataFrame({
            col_user: users.to_numpy(),
            "n_relevant": n_rel.astype(np.int64),
            "n_hits": n_hit.astype(np.int64),
            "precision_at_k": n_hit / k,
            "recall_at_k": n_hit / n_rel,
            "ndcg_at_k": dcg / ideal[n_rel_k.astype(np.int64)],
            "map_at_k": np.bincount(hu, weights=ordinal / hr, minlength=n) / n_rel_k,
            "mrr_at_k": rr,
            "hit_rate_at_k": (n_hit > 0).astype(np.float64),
        })
    return out


def _mean_of(column: str, rating_true, rating_pred, k, col_user, col_item, col_prediction) -> float:
    table = per_user_ranking_metrics(
        rating_true, rating_pred, k, col_user=col_user, col_item=col_item, col_prediction=col_prediction
    )
    # recommenders returns 0.0 when nothing can be evaluated; keep that, it plots well.
    return float(table[column].mean()) if len(table) else 0.0


def precision_at_k(rating_true, rating_pred, k=DEFAULT_K, *, col_user=USER_COL, col_item=ITEM_COL, col_prediction=SCORE_COL) -> float:
    """Precision at k, range [0, 1]: hits in the top k divided by k, averaged over users.

    As in recommenders (and Spark), the divisor is k even when a user has fewer
    than k recommendations or relevant items, so the best achievable value may be < 1.
    """
    return _mean_of("precision_at_k", rating_true, rating_pred, k, col_user, col_item, col_prediction)


def recall_at_k(rating_true, rating_pred, k=DEFAULT_K, *, col_user=USER_COL, col_item=ITEM_COL, col_prediction=SCORE_COL) -> float:
    """Recall at k, range [0, 1]: hits in the top k divided by the user's relevant items, averaged over users."""
    return _mean_of("recall_at_k", rating_true, rating_pred, k, col_user, col_item, col_prediction)


def ndcg_at_k(rating_true, rating_pred, k=DEFAULT_K, *, col_user=USER_COL, col_item=ITEM_COL, col_prediction=SCORE_COL) -> float:
    """Normalised discounted cumulative gain at k, range [0, 1], binary relevance.

    DCG = sum over hits of 1 / log2(rank + 1); IDCG places min(n_relevant, k)
    hits at ranks 1, 2, ...; the user's score is DCG / IDCG, averaged over users.
    (recommenders' ``ndcg_at_k`` with ``score_type="binary"``; its default natural-log
    discount gives the same ratio.) One difference: recommenders averages nDCG over
    every user of ``rating_true``, scoring 0 for users absent from ``rating_pred``,
    while its precision and recall average over the common users; recapp uses the
    common users for every metric. The two agree whenever every test user has
    recommendations.
    """
    return _mean_of("ndcg_at_k", rating_true, rating_pred, k, col_user, col_item, col_prediction)


def map_at_k(rating_true, rating_pred, k=DEFAULT_K, *, col_user=USER_COL, col_item=ITEM_COL, col_prediction=SCORE_COL) -> float:
    """Mean average precision at k, range [0, 1].

    Per user: the sum of precision@rank over the ranks of the hits in the top k,
    divided by min(n_relevant, k) (recommenders' ``map_at_k``, after Spark's
    ``meanAveragePrecisionAt``); averaged over users. Not recommenders' ``map``,
    which divides by n_relevant and is the MAP column of its benchmark table: the
    two agree only when no user has more than k relevant items.
    """
    return _mean_of("map_at_k", rating_true, rating_pred, k, col_user, col_item, col_prediction)


def mrr_at_k(rating_true, rating_pred, k=DEFAULT_K, *, col_user=USER_COL, col_item=ITEM_COL, col_prediction=SCORE_COL) -> float:
    """Mean reciprocal rank at k, range [0, 1]: 1 / rank of the first hit in the top k (0 if none), averaged over users."""
    return _mean_of("mrr_at_k", rating_true, rating_pred, k, col_user, col_item, col_prediction)


def hit_rate_at_k(rating_true, rating_pred, k=DEFAULT_K, *, col_user=USER_COL, col_item=ITEM_COL, col_prediction=SCORE_COL) -> float:
    """Hit rate at k, range [0, 1]: the share of users with at least one relevant item in their top k."""
    return _mean_of("hit_rate_at_k", rating_true, rating_pred, k, col_user, col_item, col_prediction)


def resolve_metric_names(metrics) -> dict:
    """``{name as given: full name}`` for metric names or short forms; an unknown name is a ValueError."""
    if isinstance(metrics, str):
        metrics = (metrics,)
    resolved = {}
    for name in metrics:
        full = name if name in RANKING_METRICS else _ALIASES.get(name)
        if full is None:
            raise ValueError(f"unknown metric {name!r} in metrics; accepted: {list(RANKING_METRICS) + list(_ALIASES)}")
        resolved[name] = full
    return resolved


def ranking_metrics(
    rating_true: pd.DataFrame,
    rating_pred: pd.DataFrame,
    k: int = DEFAULT_K,
    metrics=RANKING_METRICS,
    *,
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
    col_prediction: str = SCORE_COL,
) -> dict:
    """Several ranking metrics at once (one pass over the data), as ``{name: value}``.

    ``metrics`` names any of :data:`RANKING_METRICS` or their short forms
    (``"precision"``, ``"recall"``, ``"ndcg"``, ``"map"``, ``"mrr"``, ``"hit_rate"``;
    ``"map"`` is :func:`map_at_k`, not recommenders' ``map``); keys are the names
    as given. Every value lies in [0, 1].
    """
    resolved = resolve_metric_names(metrics)
    table = per_user_ranking_metrics(
        rating_true, rating_pred, k, col_user=col_user, col_item=col_item, col_prediction=col_prediction
    )
    return {name: (float(table[full].mean()) if len(table) else 0.0) for name, full in resolved.items()}


# ---- AUC -------------------------------------------------------------------------
def auc(
    rating_true: pd.DataFrame,
    rating_pred: pd.DataFrame,
    *,
    per_user: bool = False,
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
    col_prediction: str = SCORE_COL,
) -> float:
    """ROC AUC, range [0, 1] (0.5 = random): how well scores separate relevant pairs from the rest.

    Every row of ``rating_pred`` (restricted to users in both frames) is a scored
    candidate, labelled 1 if its (user, item) pair is in ``rating_true`` and 0
    otherwise, so ``rating_pred`` must hold negatives too (e.g. scores for all
    items, or sampled ones). It is not limited to a top k.

    ``per_user=False`` (default) is the global AUC over all rows, with
    ``sklearn.metrics.roc_auc_score`` as in recommenders' ``auc``, which however
    reads the labels from ``rating_true``'s rating on the pairs both frames hold:
    the two agree when recommenders is given 1 for the listed pairs and 0 for the
    other scored ones. ``per_user=True``
    averages each user's AUC (ties count one half) over users having both a
    relevant and an irrelevant candidate ("group AUC").
    """
    require_columns(rating_true, "rating_true", col_user, col_item)
    require_columns(rating_pred, "rating_pred", col_user, col_item, col_prediction)
    check_ids(rating_true, "rating_true", col_user, col_item)
    check_ids(rating_pred, "rating_pred", col_user, col_item)
    check_id_kinds(rating_true, "rating_true", rating_pred, "rating_pred", col_user, col_item)
    # NaN scores would rank as NaN and push a user's AUC outside [0, 1].
    all_scores = check_scores(rating_pred, "rating_pred", col_prediction)
    common = rating_pred[col_user].isin(rating_true[col_user]).to_numpy()
    pred = rating_pred[common]
    relevant = pd.MultiIndex.from_frame(rating_true[[col_user, col_item]].drop_duplicates())
    labels = pd.MultiIndex.from_frame(pred[[col_user, col_item]]).isin(relevant) if len(pred) else np.zeros(0, bool)
    scores = all_scores[common]
    if not per_user:
        if labels.all() or not labels.any():
            raise ValueError(
                "auc needs both relevant and irrelevant rows in rating_pred (for users in both frames); "
                f"got {int(labels.sum())} relevant of {len(labels)}. Score negative candidates too"
            )
        return float(roc_auc_score(labels, scores))
    frame = pd.DataFrame({"u": pred[col_user].to_numpy(), "y": labels, "s": scores})
    # Mann-Whitney: AUC = (sum of positive ranks - P(P+1)/2) / (P N), average ranks for ties.
    frame["r"] = frame.groupby("u")["s"].rank(method="average")
    g = frame.groupby("u")
    pos = g["y"].sum()
    neg = g["y"].count() - pos
    rank_sum = frame["r"].where(frame["y"], 0.0).groupby(frame["u"]).sum()
    ok = (pos > 0) & (neg > 0)
    if not ok.any():
        raise ValueError("auc(per_user=True) needs at least one user with both relevant and irrelevant rows in rating_pred")
    per = (rank_sum[ok] - pos[ok] * (pos[ok] + 1) / 2) / (pos[ok] * neg[ok])
    return float(per.mean())
