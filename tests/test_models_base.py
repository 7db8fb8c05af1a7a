"""The shared Recommender contract, checked on the baseline models."""
import numpy as np
import pandas as pd
import pytest

from recapp import models
from recapp.models.base import NotFittedError

BASELINES = [models.Popularity, models.ItemKNN, models.UserKNN, models.EASE]


@pytest.fixture(scope="module")
def train():
    rng = np.random.default_rng(0)
    n_users, n_items = 60, 40
    # Two taste groups so that collaborative models have something to learn.
    rows = []
    for u in range(n_users):
        group = u % 2
        pool = np.arange(n_items // 2) + group * (n_items // 2)
        for i in rng.choice(pool, size=8, replace=False):
            rows.append((f"u{u}", int(i), float(rng.integers(1, 6)), float(rng.integers(0, 10_000)), "rating"))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp", "event"])


@pytest.mark.parametrize("cls", BASELINES)
def test_recommend_shape_and_exclusion(cls, train):
    m = cls().fit(train)
    users = train.user_id.unique()[:10]
    recs = m.recommend(users, k=5)
    assert list(recs.columns) == ["user_id", "item_id", "score", "rank", "fallback"]
    assert recs.groupby("user_id").size().eq(5).all()
    assert set(recs.user_id) == set(users)
    seen = set(zip(train.user_id, train.item_id))
    assert not any((u, i) in seen for u, i in zip(recs.user_id, recs.item_id))
    assert (recs.groupby("user_id")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()
    assert not recs.fallback.any()


@pytest.mark.parametrize("cls", BASELINES)
def test_unknown_user_gets_popularity_fallback(cls, train):
    m = cls().fit(train)
    recs = m.recommend(["nobody"], k=3)
    assert recs.fallback.all()
    pop = train.groupby("item_id").user_id.nunique().sort_values(ascending=False, kind="stable")
    assert recs.item_id.tolist() == pop.index[:3].tolist()


@pytest.mark.parametrize("cls", BASELINES)
def test_errors_before_fit_and_bad_k(cls, train):
    with pytest.raises(NotFittedError, match="fit"):
        cls().recommend(["u1"])
    m = cls().fit(train)
    with pytest.raises(ValueError, match="k="):
        m.recommend(["u1"], k=0)


@pytest.mark.parametrize("cls", BASELINES)
def test_save_load_roundtrip(cls, train, tmp_path):
    m = cls().fit(train)
    m.save(tmp_path / "m")
    assert not list((tmp_path / "m").glob("*.pkl"))
    m2 = models.load(tmp_path / "m")
    assert type(m2) is cls and m2.get_params() == m.get_params()
    np.testing.assert_array_equal(m2.interactions_.seq_order, m.interactions_.seq_order)
    np.testing.assert_array_equal(m2.interactions_.seq_items, m.interactions_.seq_items)
    users = train.user_id.unique()[:7]
    pd.testing.assert_frame_equal(m.recommend(users, k=5), m2.recommend(users, k=5))


@pytest.mark.parametrize("cls", [models.ItemKNN, models.UserKNN, models.EASE])
def test_update_serves_new_events_without_refit(cls, train):
    m = cls().fit(train)
    # A brand-new user who touched group-0 items should be recommended group-0 items.
    new = pd.DataFrame({"user_id": ["new"] * 3, "item_id": [0, 1, 2], "timestamp": [1.0, 2.0, 3.0], "event": ["purchase"] * 3})
    m.update(new)
    recs = m.recommend(["new"], k=5)
    assert not recs.fallback.any()
    assert (recs.item_id < 20).mean() >= 0.8
    assert not set(recs.item_id) & {0, 1, 2}


def test_score_matrix_and_items(train):
    m = models.EASE().fit(train)
    s = m.score(["u1", "u2"])
    assert s.shape == (2, train.item_id.nunique())
    sub = m.score(["u1"], items=[0, 1])
    assert list(sub.columns) == [0, 1]
    with pytest.raises(KeyError, match="unknown item"):
        m.score(["u1"], items=[12345])


@pytest.mark.parametrize("bad", [dict(l2=-1.0), dict(l2=float("nan")), dict(binary="yes")])
def test_ease_rejects_bad_hyperparameters(bad, train):
    with pytest.raises(ValueError, match=list(bad)[0]):
        models.EASE(**bad).fit(train)


def test_knn_rejects_bad_similarity(train):
    with pytest.raises(ValueError, match="similarity"):
        models.ItemKNN(similarity="pearson").fit(train)


def test_trending_popularity_prefers_recent(train):
    old = pd.DataFrame({"user_id": [f"x{i}" for i in range(5)], "item_id": [0] * 5, "timestamp": [0.0] * 5, "event": ["view"] * 5})
    new = pd.DataFrame({"user_id": [f"y{i}" for i in range(3)], "item_id": [1] * 3, "timestamp": [1e6] * 3, "event": ["view"] * 3})
    df = pd.concat([old, new])
    assert models.Popularity().fit(df).recommend(["z"], k=1).item_id.iloc[0] == 0
    assert models.Popularity(half_life=3600.0).fit(df).recommend(["z"], k=1).item_id.iloc[0] == 1


def test_ease_matches_closed_form(train):
    from recapp.interactions import Interactions
    inter = Interactions.from_frame(train)
    X = inter.binary().toarray()
    G = X.T @ X + 50.0 * np.eye(X.shape[1])
    P = np.linalg.inv(G)
    B = -P / np.diag(P)
    np.fill_diagonal(B, 0.0)
    m = models.EASE(l2=50.0).fit(inter)
    np.testing.assert_allclose(m.B_, B, rtol=1e-4, atol=1e-6)
