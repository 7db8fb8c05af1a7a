"""Tests for recapp.metrics: hand-computed cases, scikit-learn cross-checks, brute-force references."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import mean_absolute_error, mean_squared_error, ndcg_score, roc_auc_score

from recapp import metrics as M
from recapp.schema import ITEM_COL, PREDICTION_COL, RATING_COL, SCORE_COL, USER_COL

L2 = math.log2


def frame(rows, cols=(USER_COL, ITEM_COL)):
    return pd.DataFrame(rows, columns=list(cols))


@pytest.fixture
def truth():
    # user 1 likes a, b, c; user 2 likes d; user 3 has no recommendations (not evaluated)
    return frame([(1, "a"), (1, "b"), (1, "c"), (2, "d"), (3, "e")])


@pytest.fixture
def recs():
    # user 4 has recommendations but no test rows (not evaluated); rows deliberately unsorted
    return frame([(1, "b", 0.7), (1, "a", 0.9), (1, "x", 0.8),
                  (2, "y", 0.9), (2, "w", 0.6), (2, "d", 0.7), (2, "z", 0.8),
                  (4, "a", 1.0)], (USER_COL, ITEM_COL, SCORE_COL))


# ---- ranking: hand-computed ------------------------------------------------------
def test_ranking_by_hand_k3(truth, recs):
    # user 1 top 3: a (hit, rank 1), x, b (hit, rank 3); user 2 top 3: y, z, d (hit, rank 3)
    idcg1 = 1 + 1 / L2(3) + 1 / L2(4)
    expected = {
        "precision_at_k": (2 / 3 + 1 / 3) / 2,
        "recall_at_k": (2 / 3 + 1 / 1) / 2,
        "ndcg_at_k": ((1 + 1 / L2(4)) / idcg1 + (1 / L2(4)) / 1) / 2,
        "map_at_k": ((1 / 1 + 2 / 3) / 3 + (1 / 3) / 1) / 2,
        "mrr_at_k": (1 + 1 / 3) / 2,
        "hit_rate_at_k": 1.0,
    }
    got = M.ranking_metrics(truth, recs, k=3)
    assert got == pytest.approx(expected)
    for name, value in expected.items():
        assert getattr(M, name)(truth, recs, k=3) == pytest.approx(value)


def test_ranking_by_hand_k2(truth, recs):
    # user 1 top 2: a (hit), x; user 2 top 2: y, z (no hit)
    assert M.precision_at_k(truth, recs, k=2) == pytest.approx((1 / 2 + 0) / 2)
    assert M.recall_at_k(truth, recs, k=2) == pytest.approx((1 / 3 + 0) / 2)
    assert M.ndcg_at_k(truth, recs, k=2) == pytest.approx((1 / (1 + 1 / L2(3)) + 0) / 2)
    assert M.map_at_k(truth, recs, k=2) == pytest.approx((1 / min(3, 2) + 0) / 2)
    assert M.mrr_at_k(truth, recs, k=2) == pytest.approx(0.5)
    assert M.hit_rate_at_k(truth, recs, k=2) == pytest.approx(0.5)


def test_per_user_table(truth, recs):
    table = M.per_user_ranking_metrics(truth, recs, k=3).set_index(USER_COL)
    assert list(table.index) == [1, 2]            # the intersection of users
    assert table.loc[1, "n_relevant"] == 3 and table.loc[1, "n_hits"] == 2
    assert table.loc[2, "mrr_at_k"] == pytest.approx(1 / 3)


def test_ties_keep_row_order_and_duplicates_count_once():
    truth = frame([(1, "b"), (1, "b")])             # a repeated event is one relevant item
    recs = frame([(1, "a", 1.0), (1, "b", 1.0)], (USER_COL, ITEM_COL, SCORE_COL))
    assert M.mrr_at_k(truth, recs, k=2) == pytest.approx(1 / 2)
    assert M.recall_at_k(truth, recs, k=2) == 1.0
    assert M.precision_at_k(truth, recs, k=1) == 0.0


def test_perfect_and_empty():
    truth = frame([(u, i) for u in range(3) for i in range(4)])
    recs = frame([(u, i, 10.0 - i) for u in range(3) for i in range(4)], (USER_COL, ITEM_COL, SCORE_COL))
    for name in M.RANKING_METRICS:
        if name != "precision_at_k":
            assert getattr(M, name)(truth, recs, k=4) == pytest.approx(1.0), name
    assert M.precision_at_k(truth, recs, k=10) == pytest.approx(0.4)   # divisor is k, as in recommenders
    disjoint = recs.assign(**{USER_COL: recs[USER_COL] + 100})
    assert M.ranking_metrics(truth, disjoint) == dict.fromkeys(M.RANKING_METRICS, 0.0)


def test_ranking_metrics_aliases_and_errors(truth, recs):
    got = M.ranking_metrics(truth, recs, k=3, metrics=("ndcg", "precision_at_k"))
    assert list(got) == ["ndcg", "precision_at_k"]
    assert got["ndcg"] == pytest.approx(M.ndcg_at_k(truth, recs, k=3))
    with pytest.raises(ValueError, match=r"unknown metric 'auc'.*accepted"):
        M.ranking_metrics(truth, recs, metrics=("auc",))
    with pytest.raises(ValueError, match="k=0"):
        M.precision_at_k(truth, recs, k=0)
    with pytest.raises(ValueError, match=SCORE_COL):
        M.ndcg_at_k(truth, recs.drop(columns=SCORE_COL))
    with pytest.raises(ValueError, match=f"{USER_COL!r} is numeric"):
        M.recall_at_k(truth, recs.astype({USER_COL: str}))


def test_custom_column_names(truth, recs):
    t = truth.rename(columns={USER_COL: "u", ITEM_COL: "i"})
    r = recs.rename(columns={USER_COL: "u", ITEM_COL: "i", SCORE_COL: "p"})
    assert M.map_at_k(t, r, k=3, col_user="u", col_item="i", col_prediction="p") == pytest.approx(M.map_at_k(truth, recs, k=3))


# ---- ranking: against scikit-learn and a brute-force reference ---------------------
def random_case(seed, n_users=15, n_items=30):
    rng = np.random.default_rng(seed)
    truth = frame([(u, i) for u in range(n_users) for i in rng.choice(n_items, rng.integers(1, 8), replace=False)])
    scores = rng.random((n_users, n_items))
    recs = frame([(u, i, scores[u, i]) for u in range(n_users) for i in range(n_items)], (USER_COL, ITEM_COL, SCORE_COL))
    return truth, recs, scores


@pytest.mark.parametrize("k", [1, 5, 10, 30])
def test_ndcg_matches_sklearn(k):
    truth, recs, scores = random_case(k)
    rel = np.zeros_like(scores)
    rel[truth[USER_COL], truth[ITEM_COL]] = 1
    per_user = [ndcg_score(rel[[u]], scores[[u]], k=k) for u in range(len(scores))]
    assert M.ndcg_at_k(truth, recs, k=k) == pytest.approx(np.mean(per_user))
    # one user, the textbook case
    one = truth[truth[USER_COL] == 0]
    assert M.ndcg_at_k(one, recs, k=k) == pytest.approx(ndcg_score(rel[[0]], scores[[0]], k=k))


def brute(truth, recs, k):
    """Per-user metrics straight from the definitions, one loop per user."""
    users = sorted(set(truth[USER_COL]) & set(recs[USER_COL]))
    out = {m: [] for m in M.RANKING_METRICS}
    for u in users:
        rel = set(truth.loc[truth[USER_COL] == u, ITEM_COL])
        r = recs[recs[USER_COL] == u]
        ranked = [i for _, i in sorted(zip(-r[SCORE_COL].to_numpy(), range(len(r))))][:k]
        top = list(r[ITEM_COL].to_numpy()[ranked])
        hits = [j + 1 for j, i in enumerate(top) if i in rel]
        out["precision_at_k"].append(len(hits) / k)
        out["recall_at_k"].append(len(hits) / len(rel))
        idcg = sum(1 / L2(j + 1) for j in range(1, min(len(rel), k) + 1))
        out["ndcg_at_k"].append(sum(1 / L2(h + 1) for h in hits) / idcg)
        out["map_at_k"].append(sum((n + 1) / h for n, h in enumerate(hits)) / min(len(rel), k))
        out["mrr_at_k"].append(1 / hits[0] if hits else 0.0)
        out["hit_rate_at_k"].append(float(bool(hits)))
    return {m: (np.mean(v) if v else 0.0) for m, v in out.items()}


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 9)), min_size=1, max_size=30),
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 9), st.integers(0, 4)), min_size=1, max_size=40),
    st.integers(1, 6),
)
def test_ranking_matches_brute_force(true_rows, pred_rows, k):
    truth = frame(true_rows)
    recs = frame(pred_rows, (USER_COL, ITEM_COL, SCORE_COL)).drop_duplicates([USER_COL, ITEM_COL])
    got = M.ranking_metrics(truth, recs, k=k)
    assert got == pytest.approx(brute(truth, recs, k))
    assert all(0.0 <= v <= 1.0 + 1e-12 for v in got.values())


# ---- AUC ------------------------------------------------------------------------
def test_auc_global_and_per_user_match_sklearn():
    truth, recs, scores = random_case(0)
    labels = np.zeros_like(scores, dtype=bool)
    labels[truth[USER_COL], truth[ITEM_COL]] = True
    assert M.auc(truth, recs) == pytest.approx(roc_auc_score(labels.ravel(), scores.ravel()))
    per_user = np.mean([roc_auc_score(labels[u], scores[u]) for u in range(len(scores))])
    assert M.auc(truth, recs, per_user=True) == pytest.approx(per_user)


def test_auc_by_hand_with_ties():
    truth = frame([(1, "a")])
    recs = frame([(1, "a", 0.5), (1, "b", 0.5), (1, "c", 0.1)], (USER_COL, ITEM_COL, SCORE_COL))
    # the positive beats c and ties b: (1 + 0.5) / 2
    assert M.auc(truth, recs) == pytest.approx(0.75)
    assert M.auc(truth, recs, per_user=True) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="irrelevant"):
        M.auc(truth, recs[recs[ITEM_COL] == "a"])


# ---- rating error ---------------------------------------------------------------
def test_rmse_mae_by_hand_and_sklearn():
    truth = frame([(1, "a", 4.0), (1, "b", 2.0), (2, "a", 5.0), (3, "z", 1.0)], (USER_COL, ITEM_COL, RATING_COL))
    pred = frame([(2, "a", 4.0), (1, "b", 3.0), (1, "a", 4.0), (9, "q", 0.0)], (USER_COL, ITEM_COL, PREDICTION_COL))
    # aligned pairs: (1,a) 4 vs 4, (1,b) 2 vs 3, (2,a) 5 vs 4
    assert M.rmse(truth, pred) == pytest.approx(math.sqrt(2 / 3))
    assert M.mae(truth, pred) == pytest.approx(2 / 3)
    y, p = [4.0, 2.0, 5.0], [4.0, 3.0, 4.0]
    assert M.rmse(truth, pred) == pytest.approx(math.sqrt(mean_squared_error(y, p)))
    assert M.mae(truth, pred) == pytest.approx(mean_absolute_error(y, p))
    same = pred.rename(columns={PREDICTION_COL: RATING_COL})
    assert M.mae(truth, same, col_prediction=RATING_COL) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="no \\(user, item\\) pair"):
        M.rmse(truth, pred[pred[USER_COL] == 9])
    with pytest.raises(ValueError, match=RATING_COL):
        M.mae(truth.drop(columns=RATING_COL), pred)


# ---- beyond accuracy -------------------------------------------------------------
@pytest.fixture
def train():
    # a: users 1, 2, 3; b: users 1, 2; c: user 3 (a repeated event counts once)
    return frame([(1, "a"), (1, "b"), (2, "a"), (2, "b"), (3, "a"), (3, "c"), (3, "c")])


def test_catalog_coverage(train):
    reco = frame([(1, "c"), (2, "c"), (3, "b")])
    assert M.catalog_coverage(reco, train) == pytest.approx(2 / 3)
    assert M.catalog_coverage(reco, 10) == pytest.approx(0.2)
    assert M.catalog_coverage(reco, n_items=10) == pytest.approx(0.2)
    assert M.catalog_coverage(reco, ["a", "b", "c", "d"]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="catalog"):
        M.catalog_coverage(reco, 0)
    with pytest.raises(ValueError, match="exactly one"):
        M.catalog_coverage(reco)
    with pytest.raises(ValueError, match="catalog"):
        M.catalog_coverage(reco, "abc")


def test_distributional_coverage():
    reco = frame([(1, "a"), (2, "a"), (1, "b"), (2, "c")])  # p = 1/2, 1/4, 1/4
    assert M.distributional_coverage(reco) == pytest.approx(1.5)
    assert M.distributional_coverage(frame([(1, "a"), (2, "a")])) == 0.0


def test_novelty(train):
    reco = frame([(1, "c"), (2, "c"), (3, "b"), (3, "new")])
    # distinct pairs: a 3, b 2, c 1 of 6; an item unseen in train adds 0 (recommenders)
    expected = (2 * -L2(1 / 6) + -L2(2 / 6) + 0) / 4
    assert M.novelty(train, reco) == pytest.approx(expected)
    expected_users = (2 * -L2(1 / 3) + -L2(2 / 3)) / 4
    assert M.novelty(train, reco, relative_to="users") == pytest.approx(expected_users)
    with pytest.raises(ValueError, match=r"relative_to='items'.*'interactions', 'users'"):
        M.novelty(train, reco, relative_to="items")


def test_popularity_bias(train):
    reco = frame([(1, "c"), (3, "b"), (3, "new")])
    # shares of users: a 1, b 2/3, c 1/3; user 1 -> 1/3, user 3 -> (2/3 + 0) / 2
    assert M.popularity_bias(train, reco) == pytest.approx((1 / 3 + 1 / 3) / 2)


def test_intra_list_diversity_cooccurrence(train):
    # cosine: sim(a,b) = 2/sqrt(3*2), sim(a,c) = 1/sqrt(3*1), sim(b,c) = 0
    reco = frame([(1, "a"), (1, "b"), (1, "c"), (2, "b"), (2, "c"), (3, "a")])
    user1 = 1 - (2 / math.sqrt(6) + 1 / math.sqrt(3) + 0) / 3
    user2 = 1 - 0
    assert M.intra_list_diversity(train, reco) == pytest.approx((user1 + user2) / 2)  # user 3 has one item: skipped


def test_intra_list_diversity_features():
    feats = pd.DataFrame({ITEM_COL: ["a", "b", "c"], "f1": [1.0, 0.0, 1.0], "f2": [0.0, 1.0, 1.0]})
    reco = frame([(1, "a"), (1, "b"), (1, "c"), (2, "a"), (2, "z")])
    s = 1 / math.sqrt(2)
    user1 = 1 - (0 + s + s) / 3
    user2 = 1 - 0  # z has no features: similarity 0
    assert M.intra_list_diversity(None, reco, item_features=feats) == pytest.approx((user1 + user2) / 2)
    vectors = pd.DataFrame({"features": [np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([1.0, 1.0])]},
                           index=pd.Index(["a", "b", "c"], name=ITEM_COL))
    assert M.intra_list_diversity(None, reco, item_features=vectors) == pytest.approx((user1 + user2) / 2)
    with pytest.raises(ValueError, match="train_df"):
        M.intra_list_diversity(None, reco)


def test_serendipity_by_hand(train):
    # user 3 (history a, c) gets b: sims 2/sqrt(6), 0; user 1 (history a, b) gets c: sims 1/sqrt(3), 0
    reco = frame([(3, "b"), (1, "c"), (7, "a")])  # user 7 has no history: skipped
    s3 = 1 - (2 / math.sqrt(6) + 0) / 2
    s1 = 1 - (1 / math.sqrt(3) + 0) / 2
    assert M.serendipity(train, reco) == pytest.approx((s3 + s1) / 2)
    relevant = frame([(3, "b")])
    assert M.serendipity(train, reco, rating_true=relevant) == pytest.approx((s3 + 0) / 2)
    weighted = reco.assign(rel=[1.0, 0.5, 1.0])
    assert M.serendipity(train, weighted, col_relevance="rel") == pytest.approx((s3 + 0.5 * s1) / 2)


def reference_similarity(train):
    pairs = train.drop_duplicates()
    users = {i: set(g[USER_COL]) for i, g in pairs.groupby(ITEM_COL)}
    return lambda i, j: (len(users[i] & users[j]) / math.sqrt(len(users[i]) * len(users[j]))
                         if i in users and j in users else 0.0)


def test_diversity_and_serendipity_match_pairwise_reference():
    rng = np.random.default_rng(1)
    train = frame([(u, int(i)) for u in range(12) for i in rng.choice(25, 6, replace=False)])
    reco = frame([(u, int(i)) for u in range(14) for i in rng.choice(30, 4, replace=False)])
    sim = reference_similarity(train)
    div = [1 - np.mean([sim(i, j) for i, j in itertools.combinations(g[ITEM_COL], 2)]) for _, g in reco.groupby(USER_COL)]
    assert M.intra_list_diversity(train, reco) == pytest.approx(np.mean(div))
    hist = train.groupby(USER_COL)[ITEM_COL].apply(list)
    ser = [np.mean([1 - np.mean([sim(i, j) for j in hist[u]]) for i in g[ITEM_COL]])
           for u, g in reco.groupby(USER_COL) if u in hist.index]
    assert M.serendipity(train, reco) == pytest.approx(np.mean(ser))


# ---- real data: ranges ---------------------------------------------------------------
def test_ml100k_popularity_baseline_is_in_range():
    from recapp.data.cache import DataSourceError
    from recapp.data.movielens import load_movielens
    from recapp.split import stratified_split

    try:
        df = load_movielens().interactions
    except DataSourceError as exc:
        pytest.skip(f"MovieLens-100K unavailable: {exc}")
    train, test = stratified_split(df, 0.75, filter_by="item", random_state=42)
    pop = train[ITEM_COL].value_counts()
    users = test[USER_COL].unique()
    cand = pd.DataFrame({USER_COL: np.repeat(users, 60), ITEM_COL: np.tile(pop.index[:60], len(users)),
                         SCORE_COL: np.tile(pop.to_numpy()[:60], len(users)).astype(float)})
    seen = pd.MultiIndex.from_frame(train[[USER_COL, ITEM_COL]])
    cand = cand[~pd.MultiIndex.from_frame(cand[[USER_COL, ITEM_COL]]).isin(seen)]
    reco = cand.groupby(USER_COL).head(10)
    acc = M.ranking_metrics(test, reco, k=10)   # how long metrics take: metrics_s of benchmarks/accuracy.py
    beyond = [M.catalog_coverage(reco, train), M.distributional_coverage(reco), M.novelty(train, reco),
              M.intra_list_diversity(train, reco), M.serendipity(train, reco), M.popularity_bias(train, reco)]
    assert all(0.0 <= v <= 1.0 for v in acc.values())
    assert 0.05 < acc["precision_at_k"] < 0.5     # most-popular on ML-100K is a known, modest baseline
    assert 0.0 < beyond[0] < 0.1 and beyond[2] > 0 and np.isfinite(beyond).all()


def test_duplicate_predictions_count_once_at_their_best_score():
    truth = frame([(1, "a"), (1, "b")])
    recs = frame([(1, "a", 0.5), (1, "x", 0.9), (1, "a", 1.0), (1, "a", 0.7)], (USER_COL, ITEM_COL, SCORE_COL))
    row = M.per_user_ranking_metrics(truth, recs, k=3).iloc[0]
    # "a" ranks first at its best score, "x" second; the other "a" rows are dropped, so one hit
    assert row["n_hits"] == 1
    assert row["recall_at_k"] == pytest.approx(0.5) and row["mrr_at_k"] == 1.0
    assert row["precision_at_k"] == pytest.approx(1 / 3)
    assert row["ndcg_at_k"] == pytest.approx(1 / (1 + 1 / L2(3)))
    one = frame([(1, "a")])
    got = M.ranking_metrics(one, recs, k=3)
    assert all(0.0 <= v <= 1.0 for v in got.values()), got
