"""recapp's metrics and splits against Microsoft Recommenders, whose benchmark protocol the README follows.

The reference formulas below are restated from recommenders (commit b02c95e, 2025-09) in small pandas
code, each naming the file and function it follows: ``recommenders/evaluation/python_evaluation.py``
and ``recommenders/datasets/python_splitters.py``. The package itself is not installed (it pins old
libraries). Each test is a match to 1e-10, or a documented difference stated as such. The stratified and
chronological splits are checked against recommenders' rule in tests/test_split.py.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, roc_auc_score
from sklearn.model_selection import train_test_split

from recapp import metrics as M
from recapp.schema import ITEM_COL, PREDICTION_COL, RATING_COL, SCORE_COL, USER_COL
from recapp.split import random_split

U, I, P, R = USER_COL, ITEM_COL, SCORE_COL, RATING_COL
TOL = 1e-10


# ---- reference: python_evaluation.py ---------------------------------------------------------
def ref_top_k(df, k):
    """get_top_k_items: sort by (user, prediction desc), head(k) per user, rank = position."""
    top = df.sort_values([U, P], ascending=[True, False]).groupby(U, as_index=False).head(k).reset_index(drop=True)
    top["rank"] = top.groupby(U, sort=False).cumcount() + 1
    return top


def ref_merge(rt, rp, k):
    """merge_ranking_true_pred: hits in the top k of the users common to both frames."""
    common = set(rt[U]).intersection(set(rp[U]))
    rtc, rpc = rt[rt[U].isin(common)], rp[rp[U].isin(common)]
    hit = pd.merge(ref_top_k(rpc, k), rtc, on=[U, I])[[U, I, "rank"]]
    count = pd.merge(hit.groupby(U, as_index=False)[U].agg(hit="count"),
                     rtc.groupby(U, as_index=False)[U].agg(actual="count"), on=U)
    return hit, count, len(common)


def ref_precision(rt, rp, k):
    """precision_at_k."""
    hit, count, n = ref_merge(rt, rp, k)
    return 0.0 if hit.shape[0] == 0 else (count["hit"] / k).sum() / n


def ref_recall(rt, rp, k):
    """recall_at_k."""
    hit, count, n = ref_merge(rt, rp, k)
    return 0.0 if hit.shape[0] == 0 else (count["hit"] / count["actual"]).sum() / n


def ref_ndcg(rt, rp, k):
    """ndcg_at_k with its defaults score_type="binary", discfun_type="loge"."""
    hit, _, _ = ref_merge(rt, rp, k)
    if hit.shape[0] == 0:
        return 0.0
    d = hit.merge(rp, on=[U, I]).merge(rt, on=[U, I], how="outer", suffixes=("_left", None))
    d["rel"] = 1
    d["dcg"] = d["rel"] / np.log(1 + d["rank"])
    ideal = d.sort_values([U, R], ascending=False)
    ideal["irank"] = ideal.groupby(U, as_index=False, sort=False)[R].rank("first", ascending=False)
    ideal["idcg"] = ideal["rel"] / np.log(1 + ideal["irank"])
    user = d.groupby(U, as_index=False, sort=False).agg({"dcg": "sum"})
    user = user.merge(ideal.groupby(U, as_index=False, sort=False).head(k)
                      .groupby(U, as_index=False, sort=False).agg({"idcg": "sum"}), on=U)
    return (user["dcg"] / user["idcg"]).mean()


def _ref_rr(rt, rp, k):
    """_get_reciprocal_rank: per user, the sum over hits of (hit ordinal) / rank."""
    hit, count, n = ref_merge(rt, rp, k)
    if hit.shape[0] == 0:
        return None, n
    hit = hit.copy()
    hit["rr"] = (hit.groupby(U).cumcount() + 1) / hit["rank"]
    return pd.merge(hit.groupby(U).agg({"rr": "sum"}).reset_index(), count, on=U), n


def ref_map_at_k(rt, rp, k):
    """map_at_k: divided by min(relevant, k)."""
    m, n = _ref_rr(rt, rp, k)
    return 0.0 if m is None else (m["rr"] / m["actual"].apply(lambda x: min(x, k))).sum() / n


def ref_map(rt, rp, k):
    """map (the MAP column of recommenders' benchmark table): divided by all relevant items."""
    m, n = _ref_rr(rt, rp, k)
    return 0.0 if m is None else (m["rr"] / m["actual"]).sum() / n


def ref_auc(rt, rp):
    """auc: roc_auc_score of rating_true's rating against the prediction, on the pairs both frames hold."""
    both = pd.merge(rt, rp, on=[U, I])
    return roc_auc_score(both[R], both[P])


def ref_catalog_coverage(train, reco):
    """catalog_coverage: distinct recommended items / distinct train items."""
    return reco[I].nunique() / train[I].nunique()


def ref_distributional_coverage(reco):
    """distributional_coverage: entropy (bits) of the recommended items."""
    p = reco.groupby(I).size() / reco.shape[0]
    return -(p * np.log2(p)).sum()


def ref_novelty(train, reco):
    """historical_item_novelty + novelty: mean -log2(item rows / train rows); unseen items add 0."""
    info = -np.log2(train.groupby(I).size() / train.shape[0])
    count = reco.groupby(I).size()
    both = count.index.intersection(info.index)
    return (count[both] * info[both]).sum() / reco.shape[0]


def _ref_pairs(df):
    """_get_pairwise_items: (user, i1, i2) with i1 <= i2."""
    m = pd.merge(df[[U, I]].rename(columns={I: "i1"}), df[[U, I]].rename(columns={I: "i2"}), on=U)
    return m[m["i1"] <= m["i2"]][[U, "i1", "i2"]].reset_index(drop=True)


def ref_cooccurrence_sim(train):
    """_get_cooccurrence_similarity: users with both / sqrt(users of i1 * users of i2)."""
    pairs = _ref_pairs(train).groupby(["i1", "i2"]).size().rename("count").reset_index()
    root = np.sqrt(train.groupby(I).size())
    pairs["sim"] = pairs["count"] / (root[pairs["i1"]].to_numpy() * root[pairs["i2"]].to_numpy())
    return pairs[["i1", "i2", "sim"]]


def ref_feature_sim(features: dict):
    """_get_item_feature_similarity: cosine of feature vectors, i1 <= i2."""
    return pd.DataFrame([(a, b, float(fa @ fb / (np.linalg.norm(fa) * np.linalg.norm(fb))))
                         for a, fa in features.items() for b, fb in features.items() if a <= b],
                        columns=["i1", "i2", "sim"])


def ref_diversity(sim, reco):
    """_get_intralist_similarity + diversity: 1 - mean similarity over the pairs of a list, mean over users.

    recommenders writes ``item_pair_sim[col_sim].fillna(0, inplace=True)``, which under pandas'
    copy-on-write no longer fills; the fill it means is done here."""
    p = _ref_pairs(reco).merge(sim, on=["i1", "i2"], how="left")
    p["sim"] = p["sim"].fillna(0)
    p = p[p["i1"] != p["i2"]]
    return (1 - p.groupby(U)["sim"].mean()).mean()


def ref_serendipity(sim, train, reco, col_relevance=None, float16=True):
    """user_item_serendipity + serendipity: (1 - mean similarity to the user's train items) * relevance,
    the relevance column cast to float16 as recommenders' input check does (``float16=False`` skips it)."""
    r = reco[[U, I]].copy()
    if col_relevance is None:
        r["rel"] = 1.0
    else:
        r["rel"] = reco[col_relevance].astype(np.float16 if float16 else np.float64).astype(float).to_numpy()
    m = r.merge(train[[U, I]].rename(columns={I: "t"}), on=U)
    m["i1"], m["i2"] = m[[I, "t"]].min(axis=1), m[[I, "t"]].max(axis=1)
    m = m.merge(sim, on=["i1", "i2"], how="left")
    m["sim"] = m["sim"].fillna(0)
    per_item = m.groupby([U, I]).agg(avg=("sim", "mean")).reset_index().merge(r, on=[U, I])
    per_item["s"] = (1 - per_item["avg"]) * per_item["rel"]
    return per_item.groupby(U)["s"].mean().mean()


# ---- data -----------------------------------------------------------------------------------------
def ranking_data(seed, ties, n_users=30, n_items=25):
    """Predictions of 1..24 items per user (scores with many ties when ``ties``); test rows for 5 more
    users than have predictions, of 1..19 items each, some of them items no prediction holds."""
    rng = np.random.default_rng(seed)
    pred = []
    for u in range(n_users):
        for i in rng.choice(n_items, size=int(rng.integers(1, n_items)), replace=False):
            pred.append((u, int(i), float(rng.integers(0, 4)) if ties else float(rng.random())))
    true = [(u, int(i), float(rng.integers(1, 6)))
            for u in range(n_users + 5) for i in rng.choice(n_items + 10, size=int(rng.integers(1, 20)), replace=False)]
    return pd.DataFrame(true, columns=[U, I, R]), pd.DataFrame(pred, columns=[U, I, P])


def beyond_data(seed, n_users=25, n_items=20):
    """Train histories of 1..11 items (every 7th user has none) and 1..7 recommendations not in the
    history; items n_items.. are recommended but never in train."""
    rng = np.random.default_rng(seed)
    train, reco = [], []
    for u in range(n_users):
        items = rng.permutation(n_items + 5)
        n_train, n_reco = (0 if u % 7 == 0 else int(rng.integers(1, 12))), int(rng.integers(1, 8))
        train += [(u, int(i)) for i in items[:n_train] if i < n_items]
        reco += [(u, int(i), float(rng.random())) for i in items[n_train:n_train + n_reco]]
    return pd.DataFrame(train, columns=[U, I]), pd.DataFrame(reco, columns=[U, I, "rel"])


# ---- ranking ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_ranking_metrics_match_recommenders(seed, ties):
    rt, rp = ranking_data(seed, ties)
    common = rt[rt[U].isin(rp[U])]
    n_common, n_all = common[U].nunique(), rt[U].nunique()
    assert n_common < n_all     # the data has test users without predictions
    for k in (1, 3, 10):
        got = M.ranking_metrics(rt, rp, k=k)
        assert abs(got["precision_at_k"] - ref_precision(rt, rp, k)) < TOL
        assert abs(got["recall_at_k"] - ref_recall(rt, rp, k)) < TOL
        assert abs(got["map_at_k"] - ref_map_at_k(rt, rp, k)) < TOL
        # nDCG: the same on the common users; recommenders averages over every test user (documented).
        assert abs(got["ndcg_at_k"] - ref_ndcg(common, rp, k)) < TOL
        assert abs(got["ndcg_at_k"] * n_common / n_all - ref_ndcg(rt, rp, k)) < TOL


def test_ranking_hand_made_edge_cases_match_recommenders():
    # user 1: tied scores (row order decides: c before a), 2 predictions for k=3, 1 relevant item
    # user 2: 5 relevant items, more than k; user 3: a relevant item only in test, no hit at all
    rt = pd.DataFrame([(1, "a", 4.0), (2, "p", 5.0), (2, "q", 3.0), (2, "r", 2.0), (2, "s", 1.0), (2, "t", 1.0),
                       (3, "z", 2.0)], columns=[U, I, R])
    rp = pd.DataFrame([(1, "c", 0.5), (1, "a", 0.5), (2, "x", 0.9), (2, "q", 0.8), (2, "p", 0.8), (2, "r", 0.1),
                       (3, "y", 1.0)], columns=[U, I, P])
    got = M.ranking_metrics(rt, rp, k=3)
    # user 1: a at rank 2; user 2: q, p at ranks 2, 3 (r is 4th); user 3: nothing
    assert got["precision_at_k"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3, abs=TOL)
    assert got["map_at_k"] == pytest.approx(((1 / 2) / 1 + (1 / 2 + 2 / 3) / 3 + 0) / 3, abs=TOL)
    for name, ref in (("precision_at_k", ref_precision), ("recall_at_k", ref_recall), ("map_at_k", ref_map_at_k),
                      ("ndcg_at_k", ref_ndcg)):
        assert abs(got[name] - ref(rt, rp, 3)) < TOL, name


def test_map_at_k_is_recommenders_map_at_k_not_its_map():
    """recommenders' benchmark table reports ``map`` (divided by all relevant items); recapp's
    ``map_at_k`` (and the README's map@10) divides by min(relevant, k): equal only when no user
    has more than k relevant items."""
    rt, rp = ranking_data(0, False)
    k = 3
    assert (rt[rt[U].isin(rp[U])].groupby(U).size() > k).any()
    assert abs(M.map_at_k(rt, rp, k=k) - ref_map_at_k(rt, rp, k)) < TOL
    assert M.map_at_k(rt, rp, k=k) > ref_map(rt, rp, k) + 0.01
    few = rt.groupby(U).head(k)
    assert abs(M.map_at_k(few, rp, k=k) - ref_map(few, rp, k)) < TOL


def test_repeated_pairs_are_the_documented_difference():
    """recapp ranks a pair predicted twice once, at its best score, and counts a test pair listed
    twice once; recommenders assumes neither happens. On the de-duplicated frames they agree."""
    rt, rp = ranking_data(1, True)
    rt2 = pd.concat([rt, rt.iloc[::4]], ignore_index=True)
    rp2 = pd.concat([rp, rp.iloc[::3].assign(**{P: rp[P].iloc[::3] - 1.0})], ignore_index=True)
    best = rp2.sort_values(P, ascending=False, kind="stable").drop_duplicates([U, I]).sort_index()
    for name, ref in (("precision_at_k", ref_precision), ("recall_at_k", ref_recall), ("map_at_k", ref_map_at_k)):
        got = M.ranking_metrics(rt2, rp2, k=5)[name]
        assert abs(got - ref(rt, best, 5)) < TOL, name


def test_auc_matches_recommenders_with_labels_in_rating_true():
    """recommenders reads the labels from rating_true's rating on the pairs both frames hold;
    recapp labels each predicted pair by whether rating_true lists it. Same number when
    rating_true lists the relevant pairs and the reference is given them as 1, the rest as 0."""
    rt, rp = ranking_data(2, True)
    labelled = rp[[U, I]].merge(rt[[U, I]].assign(**{R: 1.0}), on=[U, I], how="left").fillna({R: 0.0})
    common = rp[rp[U].isin(rt[U])]
    assert abs(M.auc(rt, rp) - ref_auc(labelled, common)) < TOL


def test_rmse_mae_match_recommenders():
    rt, rp = ranking_data(3, False)
    rp = rp.rename(columns={P: PREDICTION_COL}).assign(**{PREDICTION_COL: lambda d: 1 + 4 * d[PREDICTION_COL]})
    both = pd.merge(rt, rp, on=[U, I])      # merge_rating_true_pred
    assert abs(M.rmse(rt, rp) - np.sqrt(mean_squared_error(both[R], both[PREDICTION_COL]))) < TOL
    assert abs(M.mae(rt, rp) - mean_absolute_error(both[R], both[PREDICTION_COL])) < TOL


# ---- beyond accuracy ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(3))
def test_beyond_accuracy_matches_recommenders(seed):
    train, reco = beyond_data(seed)
    assert not reco[I].isin(train[I]).all()                  # some recommended items are unseen in train
    assert (~reco[U].isin(train[U])).any()                   # some users have no history
    assert abs(M.catalog_coverage(reco, train) - ref_catalog_coverage(train, reco)) < TOL
    assert abs(M.distributional_coverage(reco) - ref_distributional_coverage(reco)) < TOL
    assert abs(M.novelty(train, reco) - ref_novelty(train, reco)) < TOL
    sim = ref_cooccurrence_sim(train)
    assert abs(M.intra_list_diversity(train, reco) - ref_diversity(sim, reco)) < TOL
    assert abs(M.serendipity(train, reco) - ref_serendipity(sim, train, reco)) < TOL
    binary = reco.assign(rel=(reco["rel"] > 0.5).astype(float))
    assert abs(M.serendipity(train, binary, col_relevance="rel") - ref_serendipity(sim, train, binary, "rel")) < TOL
    # a graded relevance stays float64 in recapp (documented); recommenders rounds it to float16
    graded = M.serendipity(train, reco, col_relevance="rel")
    assert abs(graded - ref_serendipity(sim, train, reco, "rel", float16=False)) < TOL
    assert 0 < abs(graded - ref_serendipity(sim, train, reco, "rel")) < 1e-3


def test_diversity_and_serendipity_with_item_features_match_recommenders():
    train, reco = beyond_data(4)
    rng = np.random.default_rng(4)
    vectors = {i: rng.normal(size=4) for i in range(20)}    # items 20.. have no features: similarity 0
    features = pd.DataFrame(np.vstack(list(vectors.values())), index=pd.Index(list(vectors), name=I))
    sim = ref_feature_sim(vectors)
    assert abs(M.intra_list_diversity(train, reco, item_features=features) - ref_diversity(sim, reco)) < TOL
    assert abs(M.serendipity(train, reco, item_features=features) - ref_serendipity(sim, train, reco)) < TOL


# ---- splits ------------------------------------------------------------------------------------------
def split_data(seed=0, n_users=40, n_items=15):
    """Users of 1..20 events over few items, so item groups of many sizes; ties in time."""
    rng = np.random.default_rng(seed)
    rows = [(u, int(rng.integers(n_items)), float(rng.integers(0, 30)))
            for u in range(n_users) for _ in range(1 + u % 20)]
    return pd.DataFrame(rows, columns=[U, I, "timestamp"])


def test_random_split_matches_recommenders():
    df = split_data(1)
    train, test = random_split(df, 0.75, random_state=42)
    ref_train, ref_test = train_test_split(df, test_size=None, train_size=0.75, random_state=42)
    assert train.index.equals(ref_train.index) and test.index.equals(ref_test.index)
    # split_pandas_data_with_ratios(shuffle=True): df.sample(frac=1), cut at round(cumsum * n)
    parts = random_split(df, [0.33, 0.33, 0.34], random_state=7)     # cuts at 138.6 and 277.2 rows
    shuffled = df.sample(frac=1, random_state=7).index
    cuts = [round(x * len(df)) for x in np.cumsum([0.33, 0.33, 0.34])[:-1]]
    assert [p.index.tolist() for p in parts] == [a.tolist() for a in np.split(shuffled, cuts)]
