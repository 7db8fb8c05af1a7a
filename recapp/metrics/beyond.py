"""Beyond accuracy: coverage, diversity, serendipity, novelty, popularity bias and calibration.

Argument order follows Microsoft Recommenders: the training interactions first, then the recommendations.
Missing user or item ids in either frame raise SchemaError naming the rows: a
groupby would drop them unseen and a count would treat them as an item.
"""
from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recapp.metrics.checks import check_ids, check_one_value_per_id, check_scores
from recapp.schema import ITEM_COL, USER_COL, require_columns


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
    check_ids(reco_df, "reco_df", col_item)
    if (catalog is None) == (n_items is None):
        raise ValueError("catalog_coverage needs exactly one of catalog (items, DataFrame or ids) and n_items")
    if n_items is not None:
        catalog = n_items
    if isinstance(catalog, (pd.Series, pd.Index, np.ndarray, list, tuple, set, frozenset)):
        catalog = pd.DataFrame({col_item: np.asarray(list(catalog) if isinstance(catalog, (set, frozenset)) else catalog)})
    if isinstance(catalog, pd.DataFrame):
        require_columns(catalog, "catalog", col_item)
        # nunique would skip a missing id and shrink the catalog, inflating the share
        check_ids(catalog, "catalog", col_item)
        n_items = catalog[col_item].nunique()
    elif isinstance(catalog, Integral) and not isinstance(catalog, bool):
        n_items = int(catalog)
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
    check_ids(reco_df, "reco_df", col_item)
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
        dup = feats.index.duplicated(keep=False)
        if dup.any():
            shown = list(pd.unique(feats.index[dup]))
            raise ValueError(f"item_features has {int(dup.sum()):,} rows for {len(shown):,} repeated item id(s) "
                             f"{shown[:5]}{' ...' if len(shown) > 5 else ''}; accepted: one row per item")
        obj_cols = [c for c in feats.columns if feats[c].dtype == object]
        if len(feats.columns) == 1 and obj_cols:
            # recommenders' layout: one column holding a feature vector per item
            mat = np.vstack([np.asarray(v, dtype=np.float64) for v in feats.iloc[:, 0]])
        else:
            num = feats.select_dtypes("number")
            if num.shape[1] == 0:
                raise ValueError("item_features has no numeric feature columns")
            mat = num.to_numpy(np.float64)
        bad = ~np.isfinite(mat).all(axis=1) if mat.size else np.zeros(len(mat), bool)
        if bad.any():
            # A NaN feature would zero the item's vector and pass for "no information".
            raise ValueError(f"item_features has {int(bad.sum()):,} item(s) with NaN or infinite features, e.g. "
                             f"{list(feats.index[bad][:5])}; accepted: finite numbers")
        norms = np.linalg.norm(mat, axis=1)
        mat = np.divide(mat, norms[:, None], out=np.zeros_like(mat), where=norms[:, None] > 0)
        return pd.Index(feats.index), mat
    if train_df is None:
        raise ValueError("item similarity needs train_df (co-occurrence cosine) or item_features (feature cosine)")
    require_columns(train_df, "train_df", col_user, col_item)
    check_ids(train_df, "train_df", col_user, col_item)
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
    items are skipped (recommenders' ``diversity``). ``item_features`` must hold
    one row of finite values per item; repeated ids or NaN features raise ValueError.
    """
    require_columns(reco_df, "reco_df", col_user, col_item)
    check_ids(reco_df, "reco_df", col_user, col_item)
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
    else ``reco_df[col_relevance]`` (a NaN or non-numeric relevance raises
    ScoreError; kept in float64, where recommenders rounds it to float16); else 1
    for every item, as recommenders defaults. Recommendations for users with no train history are skipped.
    """
    require_columns(reco_df, "reco_df", col_user, col_item, *([col_relevance] if col_relevance else []))
    require_columns(train_df, "train_df", col_user, col_item)
    check_ids(reco_df, "reco_df", col_user, col_item)
    check_ids(train_df, "train_df", col_user, col_item)
    index, vec = _item_vectors(train_df, item_features, col_user, col_item)
    vec = _with_zero_row(vec)
    zero = vec.shape[0] - 1

    cols = [col_user, col_item] + ([col_relevance] if col_relevance and rating_true is None else [])
    reco = reco_df[cols].drop_duplicates([col_user, col_item])
    if rating_true is not None:
        require_columns(rating_true, "rating_true", col_user, col_item)
        check_ids(rating_true, "rating_true", col_user, col_item)
        rel = pd.MultiIndex.from_frame(reco[[col_user, col_item]]).isin(
            pd.MultiIndex.from_frame(_unique_pairs(rating_true, col_user, col_item))
        ).astype(np.float64)
    elif col_relevance:
        # A NaN relevance would drop out of the user's mean and raise it.
        rel = check_scores(reco, "reco_df", col_relevance, what="relevance")
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
    check_ids(reco_df, "reco_df", col_item)
    check_ids(train_df, "train_df", col_user, col_item)
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
    check_ids(reco_df, "reco_df", col_user, col_item)
    check_ids(train_df, "train_df", col_user, col_item)
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
    Users without categorised history are skipped. ``items`` rows without an item
    id, or repeating an id with a different ``col_category`` entry, raise SchemaError
    naming them (repeated rows that agree are fine).
    """
    require_columns(reco_df, "reco_df", col_user, col_item)
    require_columns(train_df, "train_df", col_user, col_item)
    check_ids(reco_df, "reco_df", col_user, col_item)
    check_ids(train_df, "train_df", col_user, col_item)
    require_columns(items, "items", col_item, col_category)
    # An id-less row's categories belong to no item, and an item listed with two category
    # entries would silently get their union: refuse both, as item_features does.
    check_ids(items, "items", col_item)
    check_one_value_per_id(items, "items", col_item, col_category)
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
