"""Calibrated (Steck 2018) and exposure-aware (smooth xQuAD) re-ranking, offline and live through the engine."""
import math

import numpy as np
import pandas as pd
import pytest

from recapp import metrics, rerank
from recapp.fairness import rerank_recommendations
from recapp.realtime import Engine


# ---- calibration ------------------------------------------------------------------------------
def test_category_matrix_splits_mass_evenly():
    m, names = rerank.category_matrix(["Action|Drama", "Drama", None, "Comedy|"])
    assert names == ["Action", "Comedy", "Drama"]
    np.testing.assert_allclose(m, [[0.5, 0, 0.5], [0, 0, 1], [0, 0, 0], [0, 1, 0]])
    fixed, _ = rerank.category_matrix([["Drama", "Western"]], ["Drama"])
    np.testing.assert_allclose(fixed, [[1.0]])                 # unknown names are dropped, the mass split over the rest


def test_calibrated_follows_the_history_mix():
    # Four action films score above two dramas; the user watched as much drama as action.
    cats, _ = rerank.category_matrix(["A", "A", "A", "A", "D", "D"])
    scores = np.array([1.0, 0.95, 0.9, 0.85, 0.8, 0.75])
    p = np.array([0.5, 0.5])
    plain = rerank.calibrated(np.arange(6), scores, cats, p, 4, lam=0.0)
    assert plain.tolist() == [0, 1, 2, 3]
    half = rerank.calibrated(np.arange(6), scores, cats, p, 4, lam=0.5)
    assert half.tolist() == [0, 4, 1, 2]             # one drama early; a fourth action film still outscores it
    fair = rerank.calibrated(np.arange(6), scores, cats, p, 4, lam=0.9)
    assert sorted(fair.tolist()) == [0, 1, 4, 5]
    kl = {name: rerank.kl_divergence(p, rerank.category_distribution(cats[lst])) for name, lst in
          (("plain", plain), ("fair", fair))}
    assert kl["fair"] < 1e-9 < kl["plain"]
    # q~ = 0.99 * (1, 0) + 0.01 * (0.5, 0.5)
    assert kl["plain"] == pytest.approx(0.5 * math.log(0.5 / 0.995) + 0.5 * math.log(0.5 / 0.005), rel=1e-9)


def test_lam_zero_and_beta_zero_keep_the_order_exactly():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 40).astype(float)              # many ties: broken by position, as top_k does
    cats = rng.dirichlet(np.ones(4), 40)
    cand = np.arange(100, 140)
    expected = cand[np.lexsort((np.arange(40), -scores))[:10]]
    assert rerank.calibrated(cand, scores, cats, np.full(4, 0.25), 10, lam=0.0).tolist() == expected.tolist()
    assert rerank.exposure_aware(cand, scores, rng.random(40) < 0.5, 10, beta=0.0).tolist() == expected.tolist()
    assert rerank.calibrated(cand, scores, cats, np.zeros(4), 10, lam=0.9).tolist() == expected.tolist()  # no history


def test_calibrated_never_worse_than_relevance_order_on_random_instances():
    rng = np.random.default_rng(1)
    for _ in range(20):
        cats = rng.dirichlet(np.full(5, 0.3), 30)
        p = rng.dirichlet(np.ones(5))
        scores = rng.random(30)
        base = rerank.calibrated(np.arange(30), scores, cats, p, 8, lam=0.0)
        cal = rerank.calibrated(np.arange(30), scores, cats, p, 8, lam=1.0)
        assert len(set(cal.tolist())) == 8
        kl = [rerank.kl_divergence(p, rerank.category_distribution(cats[x])) for x in (base, cal)]
        assert kl[1] <= kl[0] + 1e-12


def test_calibration_kl_metric_matches_the_definition():
    items = pd.DataFrame({"item_id": [1, 2, 3, 4, 5], "genres": ["A", "B", "A|B", "C", None]})
    train = pd.DataFrame({"user_id": [1, 1, 1, 1, 2], "item_id": [1, 1, 2, 5, 3]})
    recs = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [1, 3, 4, 5, 1]})
    cats, _ = rerank.category_matrix(items["genres"], ["A", "B", "C"])
    row = {i: n for n, i in enumerate(items["item_id"])}
    expected = []
    for hist, lst in (([1, 2, 5], [1, 3]), ([3], [4, 5])):            # user 3 has no history: skipped
        p = rerank.category_distribution(cats[[row[i] for i in hist]])
        expected.append(rerank.kl_divergence(p / p.sum(), rerank.category_distribution(cats[[row[i] for i in lst]])))
    assert metrics.calibration_kl(train, recs, items) == pytest.approx(np.mean(expected), rel=1e-12)
    assert expected[1] == pytest.approx(math.log(1 / 0.01))           # no overlap: the largest value, log(1/alpha)
    with pytest.raises(ValueError, match="alpha"):
        metrics.calibration_kl(train, recs, items, alpha=0)
    with pytest.raises(ValueError, match="categorised history"):
        metrics.calibration_kl(train, recs[recs["user_id"] == 3], items)


# ---- exposure ----------------------------------------------------------------------------------
def test_head_items_top_share_ties_by_index_and_never_zero():
    pop = np.array([5, 9, 5, 0, 1, 0, 0, 0, 0, 0], dtype=float)
    assert np.flatnonzero(rerank.head_items(pop, 0.2)).tolist() == [0, 1]          # 9, then the first 5
    assert np.flatnonzero(rerank.head_items(pop, 0.9)).tolist() == [0, 1, 2, 4]
    with pytest.raises(ValueError, match="head_share"):
        rerank.head_items(pop, 1.0)


def test_exposure_aware_brings_in_the_tail():
    head = np.array([True] * 6 + [False] * 4)
    scores = np.linspace(1.0, 0.1, 10)                            # every head item scores above every tail item
    plain = rerank.exposure_aware(np.arange(10), scores, head, 4, beta=0.0)
    fair = rerank.exposure_aware(np.arange(10), scores, head, 4, beta=0.8, user_head_share=0.5)
    assert head[plain].all() and head[fair].sum() == 2
    personal = rerank.exposure_aware(np.arange(10), scores, head, 4, beta=0.8, user_head_share=1.0)
    assert head[personal].all()                                   # a user who only likes the head keeps it


@pytest.mark.parametrize("call,match", [
    (lambda: rerank.calibrated(np.arange(3), np.ones(3), np.ones((3, 2)), np.ones(2), 2, lam=1.5), "lam"),
    (lambda: rerank.calibrated(np.arange(3), np.ones(3), np.ones((2, 2)), np.ones(2), 2, lam=0.5), "item_categories"),
    (lambda: rerank.exposure_aware(np.arange(3), np.ones(3), np.ones(3, bool), 2, beta=-0.1), "beta"),
    (lambda: rerank.exposure_aware(np.arange(3), np.ones(3), np.ones(2, bool), 2, beta=0.5), "is_head"),
    (lambda: rerank.exposure_aware(np.arange(3), np.ones(3), np.ones(3, bool), 2, user_head_share=2.0), "user_head_share"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---- offline on a model's lists ----------------------------------------------------------------
@pytest.fixture(scope="module")
def candidates(shop, ease):
    return ease.recommend(shop.events["user_id"].unique()[:80], k=50)


def test_rerank_recommendations_trade_offs(shop, candidates):
    train, items = shop.events, shop.items
    plain = rerank_recommendations(candidates, train, k=10)
    top10 = candidates[candidates["rank"] <= 10].reset_index(drop=True)
    pd.testing.assert_frame_equal(plain, top10[["user_id", "item_id", "score", "rank"]], check_dtype=False)
    cal = rerank_recommendations(candidates, train, k=10, calibration=0.7, items=items, categories="category")
    assert metrics.calibration_kl(train, cal, items, col_category="category") < \
        metrics.calibration_kl(train, plain, items, col_category="category")
    exp = rerank_recommendations(candidates, train, k=10, exposure=0.9, exposure_target=0.2)
    assert metrics.popularity_bias(train, exp) < metrics.popularity_bias(train, plain)
    # Personalised, each list follows its user's head share: here the histories hold more head than EASE's
    # lists, so popularity bias goes up, not down (the docstring's caveat).
    own = rerank_recommendations(candidates, train, k=10, exposure=0.9)
    assert metrics.popularity_bias(train, own) > metrics.popularity_bias(train, plain)
    assert cal.groupby("user_id").size().eq(10).all() and exp.groupby("user_id").size().eq(10).all()
    with pytest.raises(ValueError, match="choose one"):
        rerank_recommendations(candidates, train, calibration=0.5, exposure=0.5, items=items)


# ---- live through the engine --------------------------------------------------------------------
def _lists(engine, users, **kw):
    return pd.concat([engine.recommend(u, k=10, **kw).assign(user_id=u) for u in users], ignore_index=True)


def test_engine_calibration_and_exposure_live(shop, ease):
    train, items = shop.events, shop.items
    users = train["user_id"].unique()[:40]
    engine = Engine(ease, items=items, explain=False)
    plain = _lists(engine, users)
    pd.testing.assert_frame_equal(_lists(engine, users, calibration=0.0, exposure=0.0), plain)
    cal = _lists(engine, users, calibration=0.7)
    assert metrics.calibration_kl(train, cal, items, col_category="category") < \
        metrics.calibration_kl(train, plain, items, col_category="category")
    exp = _lists(Engine(ease, items=items, exposure=0.9, exposure_target=0.2, explain=False), users)
    assert metrics.popularity_bias(train, exp) < metrics.popularity_bias(train, plain)
    # An exposure-aware list depends on everyone's counts: anyone's event makes the cached one stale.
    live = Engine(ease, items=items, exposure=0.5)
    live.recommend(users[0])
    live.ingest({"user_id": users[1], "item_id": int(items["item_id"].iloc[0]), "event": "view"})
    misses = live.stats()["cache_misses"]
    live.recommend(users[0])
    assert live.stats()["cache_misses"] == misses + 1


def test_a_call_that_sets_one_reranker_turns_the_default_one_off(shop, ease):
    items, users = shop.items, list(range(8))
    by_default = Engine(ease, items=items, exposure=0.9, exposure_target=0.0, explain=False)
    plain = Engine(ease, items=items, explain=False)

    def lists(engine, **kw):          # rank_change depends on the calls before, so compare the lists alone
        return _lists(engine, users, **kw)[["user_id", "item_id", "score"]]

    assert not lists(by_default).equals(lists(plain))                                  # the default re-ranker acts
    pd.testing.assert_frame_equal(lists(by_default, diversity=0.3), lists(plain, diversity=0.3))   # a call's MMR replaces it
    pd.testing.assert_frame_equal(lists(by_default, exposure=0.0), lists(plain))
    assert by_default.recommend(users[0], k=3)["rank"].tolist() == [1, 2, 3]       # k overrides alone


def test_engine_rejects_conflicting_or_impossible_reranking(shop, ease):
    with pytest.raises(ValueError, match="diversity and calibration"):
        Engine(ease, items=shop.items, diversity=0.5, calibration=0.5)
    with pytest.raises(ValueError, match="exposure_target"):
        Engine(ease, exposure=0.5, exposure_target=1.5)
    with pytest.raises(ValueError, match="calibration=0.5 needs items"):
        Engine(ease, calibration=0.5)
    with pytest.raises(ValueError, match="'genres'"):
        Engine(ease, items=shop.items, calibration=0.5, categories="genres")
    engine = Engine(ease, items=shop.items)
    with pytest.raises(ValueError, match="exposure"):
        engine.recommend(0, exposure=1.5)
    with pytest.raises(ValueError, match="calibration and exposure"):
        engine.recommend(0, calibration=0.2, exposure=0.2)
    with pytest.raises(ValueError, match="'genres' column"):          # a per-call override checks too
        Engine(ease, items=shop.items, categories="genres").recommend(0, calibration=0.3)


def test_top_k_breaks_ties_by_the_lower_index():
    scores = np.zeros(1000)
    scores[[900, 901]] = 2.0
    scores[-1] = -np.inf
    got = rerank.top_k(scores, 5)
    assert got.tolist() == [900, 901, 0, 1, 2]
    assert rerank.top_k(np.array([1.0, np.nan, 1.0, -np.inf]), 3).tolist() == [0, 2]


def test_top_k_skips_non_finite_scores_without_losing_a_slot():
    scores = np.array([np.inf, 1.0, 2.0])
    assert rerank.top_k(scores, 2).tolist() == [2, 1]
    assert np.isinf(scores[0])                                      # the caller's array is untouched
    assert rerank.top_k(np.array([np.nan, 1.0, 2.0, np.inf, 0.5, -np.inf]), 3).tolist() == [2, 1, 4]
    assert rerank.top_k(np.array([np.inf, 1.0]), 5).tolist() == [1]
    top, vals = rerank.top_k_rows(np.array([[np.inf, 1.0, 2.0], [3.0, np.nan, np.inf]]), 2)
    assert top[0].tolist() == [2, 1] and vals[0].tolist() == [2.0, 1.0]
    assert top[1, 0] == 0 and vals[1, 0] == 3.0 and not np.isfinite(vals[1, 1])     # callers drop the second


def test_rerankers_never_pick_a_non_finite_score():
    cand = np.array([12, 10, 11])
    rel = np.array([-np.inf, 1.0, 0.5])                             # -inf: never recommend
    for lam in (0.7, 1.0):
        assert rerank.mmr(cand, rel, np.eye(3), k=2, lam=lam).tolist() == [10, 11]
        assert rerank.mmr(cand, rel, np.eye(3), k=3, lam=lam).tolist() == [10, 11]      # k capped at the finite ones
    cats = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    for lam in (0.0, 0.5):
        assert rerank.calibrated(cand, rel, cats, np.array([0.5, 0.5]), 3, lam).tolist() == [10, 11]
    for beta in (0.0, 0.5):
        got = rerank.exposure_aware(cand, rel, np.array([True, True, False]), 3, beta, user_head_share=0.2)
        assert sorted(got.tolist()) == [10, 11]
    nan_rel = np.array([1.0, np.nan, 0.5])
    assert rerank.mmr(cand, nan_rel, np.eye(3), k=3, lam=0.7).tolist() == [12, 11]
