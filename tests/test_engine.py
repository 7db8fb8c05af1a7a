"""The real-time engine: state per event, re-ranking, explanations, cold start, cache, fold-in."""
import numpy as np
import pandas as pd
import pytest

from recapp import rerank
from recapp.models import ALS, ItemKNN, Popularity
from recapp.realtime import Engine


@pytest.fixture(scope="module")
def knn(shop):
    return ItemKNN(neighbours=30).fit(shop.events)


def _ev(user, item, t, event="view", **kw):
    return {"user_id": user, "item_id": item, "timestamp": t, "event": event, **kw}


@pytest.mark.parametrize("name", ["ease", "knn"])
def test_matches_model_recommend_for_training_users(request, shop, name):
    model = request.getfixturevalue(name)
    engine = Engine(model, exclude_viewed=True, explain=False)
    users = shop.events["user_id"].unique()[:15]
    expected = model.recommend(users, k=10, exclude_seen=True)
    for u in users:
        got = engine.recommend(u)
        exp = expected[expected["user_id"] == u]
        # Items the sparse model has no evidence for are backfilled by popularity; compare the evidenced ones.
        n = int((exp["score"] > 0).sum()) if name == "knn" else len(exp)
        assert got["item_id"].tolist()[:n] == exp["item_id"].tolist()[:n]
        np.testing.assert_allclose(got["score"].to_numpy()[:n], exp["score"].to_numpy()[:n], rtol=1e-4, atol=1e-6)


def test_result_columns_and_types(ease):
    out = Engine(ease).recommend(0, k=5)
    assert list(out.columns) == ["item_id", "score", "rank", "explanation", "rank_change"]
    assert out["rank"].tolist() == [1, 2, 3, 4, 5]
    assert str(out["rank_change"].dtype) == "Int64"


@pytest.mark.parametrize("recency", [1.0, 0.8])
@pytest.mark.parametrize("name", ["ease", "knn"])
def test_ingest_path_equals_vectorised_load(request, shop, name, recency):
    """A new user who replays a training user's events scores exactly like that user."""
    model = request.getfixturevalue(name)
    engine = Engine(model, recency=recency, explain=False)
    ev = shop.events
    u = ev["user_id"].value_counts().index[0]
    mine = ev[ev["user_id"] == u].sort_values("timestamp", kind="stable")
    for row in mine.itertuples(index=False):
        engine.ingest(_ev("clone", row.item_id, row.timestamp, row.event))
    a, b = engine.recommend(u, k=10), engine.recommend("clone", k=10)
    assert a["item_id"].tolist() == b["item_id"].tolist()
    np.testing.assert_allclose(a["score"], b["score"], rtol=1e-4)


def test_ingest_updates_only_that_user_at_once(ease):
    engine = Engine(ease, explain=False, half_life=None)
    before_other = engine.recommend(1)
    # Cart events are not exclusions by default, so the state (not the filter) must change the list.
    engine.ingest(_ev("new", 5, 2e9, "cart"))
    engine.ingest(_ev("new", 7, 2e9 + 1, "cart"))
    expected = ease.score_history(np.array([5, 7]))
    got = engine.recommend("new", k=10)
    top = np.argsort(-expected, kind="stable")[:10]
    assert set(got["item_id"]) == set(ease.interactions_.item_ids[top])
    pd.testing.assert_frame_equal(engine.recommend(1)[["item_id", "score"]], before_other[["item_id", "score"]])


def test_purchases_excluded_and_viewed_optionally(ease):
    engine = Engine(ease, explain=False)
    first = engine.recommend("shopper")["item_id"].tolist()
    engine.ingest(_ev("shopper", first[0], 2e9, "purchase", value=9.5))
    engine.ingest(_ev("shopper", first[1], 2e9 + 1, "view"))
    # Asking for the whole catalogue shows exactly what is eligible, whatever the scores.
    everything = engine.recommend("shopper", k=engine.n_items)["item_id"].tolist()
    assert first[0] not in everything                        # a purchase is excluded
    assert first[1] in everything                            # a view stays eligible by default
    assert len(everything) == engine.n_items - 1             # and nothing else is excluded
    strict = engine.recommend("shopper", k=engine.n_items, exclude_viewed=True)["item_id"].tolist()
    assert set(strict) == set(everything) - {first[1]}


def test_business_filters(shop, ease):
    engine = Engine(ease, items=shop.items, explain=False)
    cat = shop.items["category"].iloc[0]
    out = engine.recommend(3, k=5, filters={"category": cat, "price": (None, 10_000)})
    assert len(out) > 0
    cats = shop.items.set_index("item_id").loc[out["item_id"], "category"]
    assert (cats == cat).all()
    lo, hi = shop.items["price"].quantile([0.25, 0.75])
    out = engine.recommend(3, k=10, filters={"price": (lo, hi)})
    prices = shop.items.set_index("item_id").loc[out["item_id"], "price"]
    assert ((prices >= lo) & (prices <= hi)).all()
    with pytest.raises(KeyError, match="colour"):
        engine.recommend(3, filters={"colour": "red"})


def test_mmr_function_and_engine_diversity(shop, ease):
    sim = np.array([[1, .99, 0], [.99, 1, 0], [0, 0, 1.]])
    assert rerank.mmr(np.array([10, 11, 12]), np.array([1.0, 0.9, 0.5]), sim, 2, lam=1.0).tolist() == [10, 11]
    assert rerank.mmr(np.array([10, 11, 12]), np.array([1.0, 0.9, 0.5]), sim, 2, lam=0.5).tolist() == [10, 12]
    engine = Engine(ease, items=shop.items, explain=False)
    cats = shop.items.set_index("item_id")["category"]
    plain = [cats.loc[engine.recommend(u, k=10)["item_id"]].nunique() for u in range(20)]
    diverse = [cats.loc[engine.recommend(u, k=10, diversity=0.3)["item_id"]].nunique() for u in range(20)]
    assert np.mean(diverse) >= np.mean(plain)


def test_explanations_and_rank_changes(shop, ease):
    engine = Engine(ease, items=shop.items)
    cold = engine.recommend("visitor")
    assert (cold["explanation"] == rerank.POPULAR_NOW).all()
    assert cold["rank_change"].isna().all()
    engine.ingest(_ev("visitor", 4, 2e9, "cart"))
    warm = engine.recommend("visitor")
    title = shop.items.set_index("item_id").loc[4, "title"]
    assert warm["explanation"].str.contains(title, regex=False).any()
    again = engine.recommend("visitor")     # the same list, from the cache
    assert again["rank_change"].tolist() == warm["rank_change"].tolist()
    engine.ingest(_ev("visitor", 9, 2e9 + 5, "view"))
    moved = engine.recommend("visitor")
    prev = dict(zip(warm["item_id"], warm["rank"]))
    for item, rank, change in zip(moved["item_id"], moved["rank"], moved["rank_change"]):
        assert (pd.isna(change) and item not in prev) or change == prev[item] - rank


def test_cold_start_users_and_items_never_raise(ease):
    engine = Engine(ease, half_life=3600.0)
    assert len(engine.recommend("nobody", k=10)) == 10
    for i, u in enumerate(["a", "b", "c"]):
        engine.ingest(_ev(u, "new-sku", 2e9 + i, "view"))
    assert "new-sku" in engine.popular(3)["item_id"].tolist()
    assert "new-sku" in engine.recommend("d", k=5)["item_id"].tolist()
    out = engine.recommend("a", k=10)           # history only on an item the model never saw
    assert len(out) == 10
    assert engine.history("a")["item_id"].tolist() == ["new-sku"]
    engine.ingest(_ev(("tuple", "id"), 3, 2e9 + 9, "click"))
    assert len(engine.recommend(("tuple", "id"))) == 10


def test_cache_hits_and_invalidation(ease):
    engine = Engine(ease, explain=False)
    a = engine.recommend(2)
    engine.recommend(2)
    assert engine.stats()["cache_hits"] == 1
    a.loc[0, "score"] = -1.0                     # editing a result does not touch the cache
    assert engine.recommend(2)["score"].iloc[0] != -1.0
    engine.ingest(_ev(2, int(a["item_id"].iloc[0]), 2e9, "purchase"))
    b = engine.recommend(2)
    assert int(a["item_id"].iloc[0]) not in b["item_id"].tolist()
    assert engine.stats()["cache_misses"] == 2


def test_rejected_events_change_nothing(ease):
    engine = Engine(ease)
    res = engine.ingest({"user_id": 1, "item_id": 2, "timestamp": 1e9, "event": "teleport"})
    assert res.n_ingested == 0 and res.n_rejected == 1 and "teleport" in res.rejected["reason"].iloc[0]
    frame = pd.DataFrame([_ev(1, 2, 1e9), _ev(None, 2, 1e9), _ev(1, 2, "not a time"), _ev(1, 3, "2024-01-01T00:00:00Z", "addtocart")])
    res = engine.ingest(frame)
    assert res.n_ingested == 2 and res.n_rejected == 2
    assert engine.history(1)["event"].tolist()[-2:] == ["view", "cart"]


def test_popularity_model_is_live(shop):
    # The model's own half-life decides its live counts (the engine's is for "popular now" backfill).
    pop = Popularity(half_life=60.0).fit(shop.events)
    engine = Engine(pop)
    for i in range(5):
        engine.ingest(_ev(f"u{i}", 77, 3e9 + i, "view"))
    assert engine.recommend("anyone")["item_id"].iloc[0] == 77


def test_als_fold_in_matches_model(shop):
    model = ALS(factors=8, iterations=3, verbose=False, device="cpu").fit(shop.events)
    engine = Engine(model, explain=True)
    events = [_ev("fresh", 3, 2e9, "view"), _ev("fresh", 8, 2e9 + 1, "purchase"), _ev("fresh", 11, 2e9 + 2, "click")]
    for e in events:
        engine.ingest(e)
    got = engine.recommend("fresh", k=10, exclude_viewed=True)
    model.update(pd.DataFrame(events))
    u = model.interactions_.user_index(["fresh"])[0]
    scores = model.user_factors_[u] @ model.item_factors_.T
    scores[[3, 8, 11]] = -np.inf
    top = model.interactions_.item_ids[np.argsort(-scores, kind="stable")[:10]]
    assert got["item_id"].tolist() == list(top)


def test_ann_search_agrees_with_exact(shop):
    model = ALS(factors=16, iterations=3, verbose=False, device="cpu").fit(shop.events)
    exact = Engine(model, explain=False)
    approx = Engine(model, ann="faiss", explain=False)
    assert approx.stats()["ann"] == "faiss"
    overlap = [len(set(exact.recommend(u)["item_id"]) & set(approx.recommend(u)["item_id"])) / 10 for u in range(30)]
    assert np.mean(overlap) >= 0.9


def test_warm_loads_vectors(ease):
    engine = Engine(ease, explain=False)
    n = engine.warm()
    assert n == ease.interactions_.n_users
    before = engine.recommend(0)
    cold = Engine(ease, explain=False).recommend(0)
    pd.testing.assert_frame_equal(before, cold)


def test_bad_arguments(ease):
    with pytest.raises(ValueError, match="diversity"):
        Engine(ease, diversity=1.5)
    with pytest.raises(ValueError, match="exclude_events"):
        Engine(ease, exclude_events=("refund",))
    with pytest.raises(ValueError, match="recency"):
        Engine(ease, recency=0.0)
    with pytest.raises(ValueError, match="k="):
        Engine(ease).recommend(1, k=0)


def test_sparse_and_dense_contributions_agree(knn):
    from recapp.models.live import ItemItemScorer, LiveHistory

    S = knn.similarity_
    sparse, dense = ItemItemScorer(knn, S), ItemItemScorer(knn, S.toarray())
    hist, recs, w = np.array([5, 1, 40, 7]), np.array([3, 9, 40, 77]), np.array([1.0, 0.5, 0.25, 2.0])
    h = LiveHistory()
    np.testing.assert_allclose(sparse.contributions(None, h, hist, w, recs), dense.contributions(None, h, hist, w, recs), rtol=1e-6)


def test_engine_serves_each_event_on_one_blas_thread_unless_a_fit_runs_beside_it(ease, monkeypatch):
    from threadpoolctl import threadpool_info, threadpool_limits

    from recapp.realtime.threads import background_fit

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    engine = Engine(ease)
    seen = []
    observe, scores = engine.scorer.observe, engine.scorer.scores
    monkeypatch.setattr(engine.scorer, "observe", lambda *a: (seen.append(blas_threads()), observe(*a))[1])
    monkeypatch.setattr(engine.scorer, "scores", lambda *a: (seen.append(blas_threads()), scores(*a))[1])
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        assert before and all(n == 2 for n in before)
        engine.ingest(_ev("blas-user", ease.interactions_.item_ids[0], 1.0))
        engine.recommend("blas-user")
        assert seen and all(n == 1 for threads in seen for n in threads), seen
        assert blas_threads() == before
        # A fit running in another thread: events leave the thread count alone.
        seen.clear()
        with background_fit():
            engine.ingest(_ev("blas-user", ease.interactions_.item_ids[1], 2.0))
            engine.recommend("blas-user")
        assert seen and all(threads == before for threads in seen), seen
        assert blas_threads() == before
