"""Evaluation metrics: ranking accuracy, rating error and beyond-accuracy.

Semantics follow Microsoft Recommenders'
``recommenders/evaluation/python_evaluation.py`` so that numbers measured here
can be set beside numbers published there; where recapp differs, the function's
docstring says how and why.

Conventions shared by the ranking metrics:

* ``rating_true`` lists the relevant (user, item) pairs, e.g. a test split.
  Relevance is binary: every pair is relevant, whatever its rating; a pair that
  occurs several times (repeat views) counts once.
* ``rating_pred`` holds (user, item, score) rows, e.g. ``model.recommend(...)``.
  Each user's rows are ranked by ``col_prediction`` descending; ties keep their
  row order (a stable sort, as in recommenders). Only the top ``k`` count.
* Users evaluated are those present in **both** frames, as recommenders'
  ``merge_ranking_true_pred`` does: a test user the model returned nothing for
  is not counted. Averages are over those users, each weighing the same.
* Discounts are ``1 / log2(rank + 1)`` with 1-based ranks.

Beyond-accuracy metrics take recommenders' argument order: the training
interactions first (``train_df``), the recommendations second (``reco_df``).
``catalog_coverage(reco_df, catalog)`` and ``distributional_coverage(reco_df)``
need no training frame and take the recommendations first.
"""
from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.metrics import roc_auc_score

from recapp.schema import ITEM_COL, PREDICTION_COL, RATING_COL, SCORE_COL, USER_COL, SchemaError, require_columns

DEFAULT_K = 10

#: Names :func:`ranking_metrics` computes by default, in this order.
RANKING_METRICS = ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "mrr_at_k", "hit_rate_at_k")
_ALIASES = {name[: -len("_at_k")]: name for name in RANKING_METRICS}


# ---- checks ----------------------------------------------------------------------
def _check_id_kinds(a: pd.DataFrame, a_name: str, b: pd.DataFrame, b_name: str, *cols: str) -> None:
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


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
        raise ValueError(f"k={k!r} is invalid; accepted: an integer >= 1")
    return int(k)


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

    Users are those in both frames (see the module docstring). Each metric lies
    in [0, 1]; the averages of its columns are what the ``*_at_k`` functions return.
    """
    k = _check_k(k)
    require_columns(rating_true, "rating_true", col_user, col_item)
    require_columns(rating_pred, "rating_pred", col_user, col_item, col_prediction)
    _check_id_kinds(rating_true, "rating_true", rating_pred, "rating_pred", col_user, col_item)

    true_pairs = rating_true[[col_user, col_item]].drop_duplicates()
    users = pd.Index(pd.unique(true_pairs[col_user].to_numpy()))
    users = users[users.isin(pd.unique(rating_pred[col_user].to_numpy()))]
    n = len(users)
    true_pairs = true_pairs[true_pairs[col_user].isin(users)]
    pred = rating_pred[rating_pred[col_user].isin(users)]

    # Top k per user: sort by (user, score desc, row position) so ties keep row order.
    ucode = users.get_indexer(pred[col_user])
    score = pred[col_prediction].to_numpy(dtype=np.float64)
    order = np.lexsort((np.arange(len(pred)), -score, ucode))
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
    ``meanAveragePrecisionAt``); averaged over users.
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
    (``"precision"``, ``"recall"``, ``"ndcg"``, ``"map"``, ``"mrr"``, ``"hit_rate"``);
    keys are the names as given. Every value lies in [0, 1].
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

    ``per_user=False`` (default) is the global AUC over all rows, as recommenders'
    ``auc`` computes with ``sklearn.metrics.roc_auc_score``. ``per_user=True``
    averages each user's AUC (ties count one half) over users having both a
    relevant and an irrelevant candidate ("group AUC").
    """
    require_columns(rating_true, "rating_true", col_user, col_item)
    require_columns(rating_pred, "rating_pred", col_user, col_item, col_prediction)
    _check_id_kinds(rating_true, "rating_true", rating_pred, "rating_pred", col_user, col_item)
    common = rating_pred[col_user].isin(rating_true[col_user])
    pred = rating_pred[common.to_numpy()]
    relevant = pd.MultiIndex.from_frame(rating_true[[col_user, col_item]].drop_duplicates())
    labels = pd.MultiIndex.from_frame(pred[[col_user, col_item]]).isin(relevant) if len(pred) else np.zeros(0, bool)
    scores = pred[col_prediction].to_numpy(dtype=np.float64)
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


# ---- rating error ----------------------------------------------------------------
def _aligned(rating_true, rating_pred, col_user, col_item, col_rating, col_prediction):
    require_columns(rating_true, "rating_true", col_user, col_item, col_rating)
    require_columns(rating_pred, "rating_pred", col_user, col_item, col_prediction)
    _check_id_kinds(rating_true, "rating_true", rating_pred, "rating_pred", col_user, col_item)
    t = rating_true[[col_user, col_item, col_rating]].rename(columns={col_rating: "__true__"})
    p = rating_pred[[col_user, col_item, col_prediction]].rename(columns={col_prediction: "__pred__"})
    merged = t.merge(p, on=[col_user, col_item], how="inner")
    if merged.empty:
        raise ValueError("rating_true and rating_pred share no (user, item) pair; nothing to compare")
    return merged["__true__"].to_numpy(np.float64), merged["__pred__"].to_numpy(np.float64)


def rmse(rating_true, rating_pred, *, col_user=USER_COL, col_item=ITEM_COL, col_rating=RATING_COL, col_prediction=PREDICTION_COL) -> float:
    """Root mean squared error, range [0, inf), over (user, item) pairs present in both frames.

    Frames are joined on (user, item) as recommenders' ``merge_rating_true_pred``
    does; each frame is assumed to hold each pair once.
    """
    y, p = _aligned(rating_true, rating_pred, col_user, col_item, col_rating, col_prediction)
    return float(np.sqrt(np.mean((y - p) ** 2)))


def mae(rating_true, rating_pred, *, col_user=USER_COL, col_item=ITEM_COL, col_rating=RATING_COL, col_prediction=PREDICTION_COL) -> float:
    """Mean absolute error, range [0, inf), over (user, item) pairs present in both frames."""
    y, p = _aligned(rating_true, rating_pred, col_user, col_item, col_rating, col_prediction)
    return float(np.mean(np.abs(y - p)))


# ---- beyond accuracy -------------------------------------------------------------
def catalog_coverage(reco_df: pd.DataFrame, catalog=None, *, n_items: int | None = None, col_item: str = ITEM_COL) -> float:
    """Share of the catalog that is recommended to anyone, range [0, 1].

    ``catalog`` is the number of items, a DataFrame whose distinct ``col_item``
    values are the catalog (recommenders passes ``train_df``), or a collection of
    item ids; ``n_items=`` gives the number by keyword instead.
    Note the order: recommendations first, unlike recommenders' ``(train_df, reco_df)``. The numerator is the number of distinct recommended items, as in
    recommenders, so the value exceeds 1 only if items outside the catalog are recommended.
    """
    require_columns(reco_df, "reco_df", col_item)
    if (catalog is None) == (n_items is None):
        raise ValueError("catalog_coverage needs exactly one of catalog (items, DataFrame or ids) and n_items")
    if n_items is not None:
        catalog = n_items
    if isinstance(catalog, pd.DataFrame):
        require_columns(catalog, "catalog", col_item)
        n_items = catalog[col_item].nunique()
    elif isinstance(catalog, Integral) and not isinstance(catalog, bool):
        n_items = int(catalog)
    elif isinstance(catalog, (pd.Series, pd.Index, np.ndarray, list, tuple, set, frozenset)):
        n_items = len(pd.unique(np.asarray(list(catalog) if isinstance(catalog, (set, frozenset)) else catalog)))
    else:
        raise ValueError(
            f"catalog must be a number of items, a DataFrame with column {col_item!r} or a collection of item ids; "
            f"got {type(catalog).__name__}"
        )
    if n_items < 1:
        raise ValueError(f"catalog has {n_items} items; accepted: a non-empty catalog")
    return float(reco_df[col_item].nunique() / n_items)


def distributional_coverage(reco_df: pd.DataFrame, *, col_item: str = ITEM_COL) -> float:
    """Shannon entropy (bits) of how often each item is recommended, range [0, log2(n distinct items)].

    p(i) = recommendations of item i / all recommendations; the value is
    -sum p(i) log2 p(i) (recommenders' ``distributional_coverage``, Shani &
    Gunawardana eq. 21). 0 means everyone gets the same item; higher is more even.
    """
    require_columns(reco_df, "reco_df", col_item)
    if len(reco_df) == 0:
        return 0.0
    p = reco_df[col_item].value_counts().to_numpy(np.float64) / len(reco_df)
    return float(-(p * np.log2(p)).sum())


def _unique_pairs(df: pd.DataFrame, col_user: str, col_item: str) -> pd.DataFrame:
    return df[[col_user, col_item]].drop_duplicates()


def _item_vectors(train_df, item_features, col_user, col_item):
    """Item index and a matrix whose rows are unit vectors (zero rows where undefined),
    so that the dot product of two rows is the items' cosine similarity."""
    if item_features is not None:
        feats = item_features
        if not isinstance(feats, pd.DataFrame):
            raise ValueError(f"item_features must be a DataFrame (items x features); got {type(feats).__name__}")
        if col_item in feats.columns:
            feats = feats.set_index(col_item)
        obj_cols = [c for c in feats.columns if feats[c].dtype == object]
        if len(feats.columns) == 1 and obj_cols:
            # recommenders' layout: one column holding a feature vector per item
            mat = np.vstack([np.asarray(v, dtype=np.float64) for v in feats.iloc[:, 0]])
        else:
            num = feats.select_dtypes("number")
            if num.shape[1] == 0:
                raise ValueError("item_features has no numeric feature columns")
            mat = num.to_numpy(np.float64)
        norms = np.linalg.norm(mat, axis=1)
        mat = np.divide(mat, norms[:, None], out=np.zeros_like(mat), where=norms[:, None] > 0)
        return pd.Index(feats.index), mat
    if train_df is None:
        raise ValueError("item similarity needs train_df (co-occurrence cosine) or item_features (feature cosine)")
    require_columns(train_df, "train_df", col_user, col_item)
    pairs = _unique_pairs(train_df, col_user, col_item)
    icode, items = pd.factorize(pairs[col_item])
    ucode, _ = pd.factorize(pairs[col_user])
    # Binary item x user matrix scaled by 1/sqrt(item count): row dot products are
    # co-occurrence / sqrt(count_i * count_j), recommenders' "item_cooccurrence_count" cosine.
    counts = np.bincount(icode).astype(np.float64)
    vals = 1.0 / np.sqrt(counts[icode])
    mat = sp.csr_matrix((vals, (icode, ucode)), shape=(len(items), int(ucode.max()) + 1 if len(ucode) else 0))
    return pd.Index(items), mat


def _with_zero_row(mat):
    """Append a zero row so that index -1 (unknown item) maps to similarity 0."""
    if sp.issparse(mat):
        return sp.vstack([mat, sp.csr_matrix((1, mat.shape[1]))], format="csr")
    return np.vstack([mat, np.zeros((1, mat.shape[1]))])


def _row_dot(a, b) -> np.ndarray:
    if sp.issparse(a) or sp.issparse(b):
        a = a if sp.issparse(a) else sp.csr_matrix(a)
        return np.asarray(a.multiply(b).sum(axis=1)).ravel()
    return np.einsum("ij,ij->i", a, b)


def _indicator(rows: np.ndarray, cols: np.ndarray, shape) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)


def intra_list_diversity(
    train_df: pd.DataFrame | None,
    reco_df: pd.DataFrame,
    *,
    item_features: pd.DataFrame | None = None,
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
) -> float:
    """1 - mean pairwise cosine similarity within each user's list, averaged over users.

    Range [0, 1] for co-occurrence similarity or non-negative features (up to 2
    if features can be negative). Similarity is the cosine of item feature vectors
    when ``item_features`` is given (rows = items, indexed by item id or with a
    ``col_item`` column), else recommenders' co-occurrence cosine from
    ``train_df`` (which may be None when features are given): users in common /
    sqrt(users of i * users of j). Item pairs with
    no information have similarity 0, and users with fewer than two recommended
    items are skipped (recommenders' ``diversity``).
    """
    require_columns(reco_df, "reco_df", col_user, col_item)
    index, vec = _item_vectors(train_df, item_features, col_user, col_item)
    vec = _with_zero_row(vec)
    reco = _unique_pairs(reco_df, col_user, col_item)
    ucode, users = pd.factorize(reco[col_user])
    icode = index.get_indexer(reco[col_item])  # -1 -> the zero row
    a = _indicator(ucode, np.where(icode < 0, vec.shape[0] - 1, icode), (len(users), vec.shape[0]))
    s = a @ vec
    # sum over pairs i<j of v_i.v_j = (|sum v|^2 - sum |v_i|^2) / 2, so the mean over
    # the n(n-1)/2 pairs needs no explicit pair list.
    sq = _row_dot(s, s)
    self_sq = a @ _row_dot(vec, vec)
    n = np.bincount(ucode, minlength=len(users)).astype(np.float64)
    ok = n >= 2
    if not ok.any():
        raise ValueError("intra_list_diversity needs at least one user with two or more recommended items")
    mean_sim = (sq[ok] - self_sq[ok]) / (n[ok] * (n[ok] - 1))
    return float(np.mean(1.0 - mean_sim))


def serendipity(
    train_df: pd.DataFrame,
    reco_df: pd.DataFrame,
    *,
    item_features: pd.DataFrame | None = None,
    rating_true: pd.DataFrame | None = None,
    col_relevance: str | None = None,
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
) -> float:
    """Relevance times unexpectedness of recommendations, range [0, 1] (recommenders' ``serendipity``).

    For each recommended (user, item): ``relevance * (1 - mean similarity of the
    item to the items in the user's train history)``; averaged per user, then over
    users. Similarity is as in :func:`intra_list_diversity`. Relevance is 1 if the
    pair is in ``rating_true`` (when given, e.g. the test split) and 0 otherwise;
    else ``reco_df[col_relevance]``; else 1 for every item, as recommenders
    defaults. Recommendations for users with no train history are skipped.
    """
    require_columns(reco_df, "reco_df", col_user, col_item, *([col_relevance] if col_relevance else []))
    require_columns(train_df, "train_df", col_user, col_item)
    index, vec = _item_vectors(train_df, item_features, col_user, col_item)
    vec = _with_zero_row(vec)
    zero = vec.shape[0] - 1

    cols = [col_user, col_item] + ([col_relevance] if col_relevance and rating_true is None else [])
    reco = reco_df[cols].drop_duplicates([col_user, col_item])
    if rating_true is not None:
        require_columns(rating_true, "rating_true", col_user, col_item)
        rel = pd.MultiIndex.from_frame(reco[[col_user, col_item]]).isin(
            pd.MultiIndex.from_frame(_unique_pairs(rating_true, col_user, col_item))
        ).astype(np.float64)
    elif col_relevance:
        rel = reco[col_relevance].to_numpy(np.float64)
    else:
        rel = np.ones(len(reco))

    ucode, users = pd.factorize(reco[col_user])
    icode = index.get_indexer(reco[col_item])
    icode = np.where(icode < 0, zero, icode)
    hist = _unique_pairs(train_df, col_user, col_item)
    hu = users.get_indexer(hist[col_user])
    hi = index.get_indexer(hist[col_item])
    keep = hu >= 0
    hu, hi = hu[keep], np.where(hi[keep] < 0, zero, hi[keep])
    h = _indicator(hu, hi, (len(users), vec.shape[0]))
    n_hist = np.bincount(hu, minlength=len(users)).astype(np.float64)

    # sum_{j in history(u)} sim(i, j) = (H @ V @ V[R].T)[u, i] over the distinct
    # recommended items R, taken in chunks so the dense blocks stay a few MB.
    r_codes, r_items = pd.factorize(icode)
    sim_sum = np.zeros(len(reco))
    chunk = max(1, int(4_000_000 // max(vec.shape[0], len(users), 1)))
    for start in range(0, len(r_items), chunk):
        block = r_items[start:start + chunk]
        gram = vec @ vec[block].T                      # all items x block
        gram = gram.toarray() if sp.issparse(gram) else np.asarray(gram)
        per_user = np.asarray(h @ gram)                # users x block
        rows = np.flatnonzero((r_codes >= start) & (r_codes < start + len(block)))
        sim_sum[rows] = per_user[ucode[rows], r_codes[rows] - start]
    has_hist = n_hist[ucode] > 0
    if not has_hist.any():
        raise ValueError("serendipity needs at least one recommended user with history in train_df")
    value = (1.0 - sim_sum[has_hist] / n_hist[ucode[has_hist]]) * rel[has_hist]
    per_user = pd.Series(value).groupby(ucode[has_hist]).mean()
    return float(per_user.mean())


def novelty(
    train_df: pd.DataFrame,
    reco_df: pd.DataFrame,
    *,
    relative_to: str = "interactions",
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
) -> float:
    """Mean self-information of recommended items, -log2(popularity), range [0, inf); higher is more novel.

    Popularity is counted on distinct (user, item) pairs of ``train_df``.
    ``relative_to="interactions"`` (default): item pairs / all pairs, recommenders'
    ``novelty`` (Castells et al.'s item choice model). ``relative_to="users"``:
    item's users / all users (Zhou et al. 2010). The mean is over all
    recommendation rows; as in recommenders, items never seen in train add 0.
    """
    if relative_to not in ("interactions", "users"):
        raise ValueError(f"relative_to={relative_to!r} is not supported; accepted: ['interactions', 'users']")
    require_columns(reco_df, "reco_df", col_item)
    require_columns(train_df, "train_df", col_user, col_item)
    if len(reco_df) == 0:
        return 0.0
    pairs = _unique_pairs(train_df, col_user, col_item)
    counts = pairs[col_item].value_counts()
    total = len(pairs) if relative_to == "interactions" else pairs[col_user].nunique()
    info = -np.log2(counts.to_numpy(np.float64) / total)
    per_row = pd.Series(info, index=counts.index).reindex(reco_df[col_item].to_numpy()).fillna(0.0)
    return float(per_row.sum() / len(reco_df))


def popularity_bias(
    train_df: pd.DataFrame,
    reco_df: pd.DataFrame,
    *,
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
) -> float:
    """Average recommendation popularity (ARP, Abdollahpouri et al.), normalised, range [0, 1].

    An item's popularity is the share of train users who interacted with it (0 for
    items unseen in train); each user's list scores the mean popularity of its
    items; the value is the mean over users. Higher means recommendations lean on
    the head of the catalog.
    """
    require_columns(reco_df, "reco_df", col_user, col_item)
    require_columns(train_df, "train_df", col_user, col_item)
    if len(reco_df) == 0:
        return 0.0
    pairs = _unique_pairs(train_df, col_user, col_item)
    share = pairs[col_item].value_counts() / max(pairs[col_user].nunique(), 1)
    pop = share.reindex(reco_df[col_item].to_numpy()).fillna(0.0).to_numpy()
    return float(pd.Series(pop).groupby(reco_df[col_user].to_numpy()).mean().mean())


def calibration_kl(
    train_df: pd.DataFrame,
    reco_df: pd.DataFrame,
    items: pd.DataFrame,
    *,
    col_category: str = "genres",
    sep: str = "|",
    alpha: float = 0.01,
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
) -> float:
    """Miscalibration (Steck, RecSys 2018): mean over users of KL(p || q~) in nats, range [0, log(1/alpha)]; lower is better.

    ``items[col_category]`` holds each item's categories (``"A|B"``, split on
    ``sep``); an item's mass is split evenly over them. ``p`` is the category
    distribution of the user's distinct ``train_df`` items (uncategorised ones
    ignored); ``q`` that of the user's rows in ``reco_df``, each weighing
    1/len(list) (an uncategorised recommendation dilutes ``q``); ``q~ = (1 - alpha) q
    + alpha p``. The same definition :func:`recapp.rerank.calibrated` optimises.
    Users without categorised history are skipped.
    """
    require_columns(reco_df, "reco_df", col_user, col_item)
    require_columns(train_df, "train_df", col_user, col_item)
    require_columns(items, "items", col_item, col_category)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha={alpha!r} is out of range; it must be in (0, 1)")
    if len(reco_df) == 0:
        return 0.0
    cats = items[[col_item, col_category]].dropna()
    labels = cats[col_category].astype(str).str.split(sep, regex=False)
    long = pd.DataFrame({col_item: np.repeat(cats[col_item].to_numpy(), labels.str.len().to_numpy()),
                         "category": np.concatenate([np.asarray(x, dtype=object) for x in labels] or [np.array([], object)])})
    long = long[long["category"] != ""]
    long["w"] = 1.0 / long.groupby(col_item)["category"].transform("size")
    hist = _unique_pairs(train_df, col_user, col_item).merge(long, on=col_item)
    p = hist.groupby([col_user, "category"])["w"].sum()
    p = p / p.groupby(level=0).transform("sum")
    recs = reco_df[[col_user, col_item]]
    n_list = recs.groupby(col_user).size()
    q = recs.merge(long, on=col_item).groupby([col_user, "category"])["w"].sum()
    q = q / n_list.reindex(q.index.get_level_values(0)).to_numpy()
    frame = p.rename("p").to_frame().join(q.rename("q"), how="left").fillna({"q": 0.0})
    frame = frame[frame.index.get_level_values(0).isin(n_list.index)]
    if len(frame) == 0:
        raise ValueError("calibration_kl needs at least one recommended user with categorised history in train_df")
    pv, qv = frame["p"].to_numpy(), frame["q"].to_numpy()
    term = pd.Series(pv * np.log(pv / ((1.0 - alpha) * qv + alpha * pv)), index=frame.index)
    return float(term.groupby(level=0).sum().mean())


__all__ = [
    "DEFAULT_K", "RANKING_METRICS",
    "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "mrr_at_k", "hit_rate_at_k",
    "ranking_metrics", "per_user_ranking_metrics", "auc", "rmse", "mae",
    "catalog_coverage", "distributional_coverage", "intra_list_diversity", "serendipity",
    "novelty", "popularity_bias", "calibration_kl",
]
