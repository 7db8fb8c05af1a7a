"""The learned model zoo: ALS, BPR, RatingMF, NeuMF, MultVAE, LightGCN, TfidfContent, Hybrid.

Fast checks on a small synthetic shop (few epochs); the accuracy checks on
MovieLens-100K are marked slow.
"""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import torch

from recapp.data.synthetic import synthetic_shop
from recapp.interactions import Interactions
from recapp.models import (
    ALS, BPR, EASE, Hybrid, LightGCN, MultVAE, NeuMF, NotFittedError, Popularity, RatingMF, TfidfContent, load,
)
from recapp.models.holdout_eval import holdout_interactions, holdout_mask, ndcg_from_scores
from recapp.models.torch_base import fit_epochs, resolve_device

torch.set_num_threads(1)

# Small, quick settings per model: a test checks behaviour, not accuracy.
QUICK = {
    ALS: dict(factors=8, iterations=5),
    BPR: dict(factors=8, n_epochs=3, batch_size=512),
    RatingMF: dict(factors=8, n_epochs=3),
    NeuMF: dict(gmf_factors=8, mlp_factors=8, layers=(16, 8), n_epochs=2),
    MultVAE: dict(hidden=32, latent=8, n_epochs=3),
    LightGCN: dict(factors=8, layers=2, n_epochs=2, batch_size=1024),
}
TORCH_MODELS = list(QUICK)


def quick(cls, **kw):
    """A model of ``cls`` with the quick settings, silent."""
    return cls(**{**QUICK.get(cls, {}), "verbose": False, **kw})


@pytest.fixture(scope="module")
def shop():
    return synthetic_shop(n_users=150, n_items=80, n_events=4000, random_state=3)


@pytest.fixture(scope="module")
def events(shop):
    return shop.events


@pytest.fixture(scope="module")
def ratings():
    """Explicit ratings from a low-rank model plus noise: 120 users x 60 items."""
    rng = np.random.default_rng(0)
    U, V = rng.normal(size=(120, 3)), rng.normal(size=(60, 3))
    bu, bi = rng.normal(scale=0.5, size=120), rng.normal(scale=0.5, size=60)
    u = rng.integers(0, 120, 4000)
    i = rng.integers(0, 60, 4000)
    df = pd.DataFrame({"user_id": u, "item_id": i}).drop_duplicates().reset_index(drop=True)
    r = 3.5 + bu[df.user_id] + bi[df.item_id] + 0.6 * (U[df.user_id] * V[df.item_id]).sum(1) + rng.normal(scale=0.3, size=len(df))
    df["rating"] = np.clip(np.round(r), 1, 5)
    df["timestamp"] = np.arange(len(df), dtype=float)
    df["event"] = "rating"
    return df


def all_models():
    return [quick(c) for c in TORCH_MODELS] + [TfidfContent(), Hybrid(models=[EASE(), quick(ALS)])]


def fit(model, events, shop):
    if isinstance(model, TfidfContent):
        return model.fit(events, items=shop.items)
    return model.fit(events)


# ---- the shared interface ---------------------------------------------------------------
@pytest.mark.parametrize("model", all_models(), ids=lambda m: type(m).__name__)
def test_recommend_excludes_seen_and_ranks(model, events, shop):
    fit(model, events, shop)
    users = events.user_id.unique()[:20]
    recs = model.recommend(users, k=5)
    assert set(recs.user_id) == set(users)
    assert (recs.groupby("user_id").size() == 5).all()
    assert (recs.groupby("user_id")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()
    seen = set(zip(events.user_id, events.item_id))
    assert not any((u, i) in seen for u, i in zip(recs.user_id, recs.item_id))
    # With exclude_seen=False a model may return seen items; the call still works.
    assert len(model.recommend(users[:3], k=5, exclude_seen=False)) == 15


@pytest.mark.parametrize("model", all_models(), ids=lambda m: type(m).__name__)
def test_save_load_round_trip_gives_identical_recommendations(model, events, shop, tmp_path):
    fit(model, events, shop)
    users = events.user_id.unique()[:15]
    before = model.recommend(users, k=10)
    model.save(tmp_path / "m")
    assert not list((tmp_path / "m").glob("*.pkl"))
    loaded = load(tmp_path / "m")
    after = loaded.recommend(users, k=10)
    pd.testing.assert_frame_equal(before[["user_id", "item_id", "rank"]], after[["user_id", "item_id", "rank"]])
    np.testing.assert_allclose(before.score.to_numpy(), after.score.to_numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", TORCH_MODELS, ids=lambda c: c.__name__)
def test_random_state_makes_training_deterministic(cls, events):
    users = events.user_id.unique()[:10]
    a = quick(cls, random_state=7).fit(events).score(users).to_numpy()
    b = quick(cls, random_state=7).fit(events).score(users).to_numpy()
    c = quick(cls, random_state=8).fit(events).score(users).to_numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("model", all_models(), ids=lambda m: type(m).__name__)
def test_recommend_before_fit_is_a_clear_error(model):
    with pytest.raises(NotFittedError, match="fit"):
        model.recommend([1], k=5)


@pytest.mark.parametrize("model, name", [
    (ALS(factors=0), "factors"), (ALS(regularization=-1.0), "regularization"), (ALS(confidence="sqrt"), "confidence"),
    (BPR(learning_rate=0.0), "learning_rate"), (BPR(n_epochs=0), "n_epochs"), (BPR(device="tpu"), "device"),
    (RatingMF(batch_size=0), "batch_size"), (NeuMF(layers=()), "layers"), (NeuMF(n_negatives=0), "n_negatives"),
    (MultVAE(dropout=1.0), "dropout"), (MultVAE(beta_max=-0.1), "beta_max"), (LightGCN(layers=-1), "layers"),
    (LightGCN(validation_fraction=0.9), "validation_fraction"), (BPR(random_state=-1), "random_state"),
    (TfidfContent(weighting="tfidf"), "weighting"), (Hybrid(weights=[1.0]), "weights"),
    (Hybrid(cold_model="random"), "cold_model"), (Hybrid(models=[]), "models"),
], ids=lambda x: x if isinstance(x, str) else type(x).__name__)
def test_out_of_range_hyperparameters_name_the_argument(model, name, events):
    with pytest.raises(ValueError, match=name):
        model.fit(events)


def test_unknown_users_get_the_flagged_popularity_fallback(events):
    m = quick(BPR).fit(events)
    recs = m.recommend(["nobody"], k=5)
    assert recs.fallback.all() and len(recs) == 5


def test_progress_bar_shows_the_loss(events, capsys):
    quick(BPR, verbose=True, n_epochs=2).fit(events)
    err = capsys.readouterr().err
    assert "BPR" in err and "loss=" in err


# ---- torch_base ---------------------------------------------------------------------------
def test_resolve_device():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


def test_holdout_is_carved_per_user_and_keeps_everyone_in_train(events):
    inter = Interactions.from_frame(events)
    mask = holdout_mask(inter, 0.2, rng=np.random.default_rng(0))
    f = inter.frame
    pairs_out = set(zip(f.uidx[mask], f.iidx[mask]))
    pairs_in = set(zip(f.uidx[~mask], f.iidx[~mask]))
    assert not pairs_out & pairs_in          # an item's events go to one side only
    assert set(f.uidx) == set(f.uidx[~mask])  # nobody loses their whole history
    share = len(pairs_out) / len(pairs_out | pairs_in)
    assert 0.12 < share < 0.28
    train, valid = holdout_interactions(inter, 0.2, rng=np.random.default_rng(0))
    assert train.user_ids.equals(inter.user_ids) and len(train) + len(valid) == len(inter)


def test_last_mode_holds_out_each_users_latest_events(events):
    inter = Interactions.from_frame(events)
    mask = holdout_mask(inter, 0.25, mode="last", min_events=4)
    assert mask.any()
    f = inter.frame
    for u, g in f.groupby("uidx"):
        m = mask[g.index.to_numpy()]
        if m.any():
            assert g.timestamp[m].min() >= g.timestamp[~m].max()


def test_fit_epochs_stops_early_and_restores_the_best_state():
    state = {"x": 0}
    scores = iter([0.1, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    log = fit_epochs(lambda e: state.__setitem__("x", e) or 1.0 / (e + 1), 7, validate=lambda: next(scores),
                     snapshot=lambda: state["x"], restore=lambda s: state.__setitem__("x", s), patience=2, verbose=False)
    assert log.best_epoch == 1 and log.stopped_early and len(log.losses) == 4 and state["x"] == 1
    assert list(log.to_frame().columns) == ["epoch", "loss", "valid"]


def test_ndcg_from_scores_matches_a_hand_computed_value():
    import scipy.sparse as sp

    scores = np.array([[3.0, 2.0, 1.0, 0.0]])
    train = sp.csr_matrix(np.array([[1, 0, 0, 0]]))
    valid = sp.csr_matrix(np.array([[0, 0, 1, 1]]))
    # item 0 is excluded; ranking 1, 2, 3 -> hits at ranks 2 and 3
    expected = (1 / np.log2(3) + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
    assert ndcg_from_scores(scores, train, valid, k=3) == pytest.approx(expected)


@pytest.mark.parametrize("cls", [BPR, MultVAE, LightGCN, NeuMF, RatingMF, ALS], ids=lambda c: c.__name__)
def test_early_stopping_validates_on_a_split_of_the_training_data(cls, events):
    m = quick(cls, early_stopping=True, patience=1, validation_fraction=0.2)
    m.fit(events)
    log = m.train_log_
    assert any(np.isfinite(v) for v in log.valid)
    assert 0 <= log.best_epoch < len(log.losses)


# ---- ALS fold-in ---------------------------------------------------------------------------
def test_als_fold_in_moves_a_users_recommendations_toward_new_items(shop, events):
    # regularization=30 is tuned for MovieLens' scale; this shop is 100x smaller.
    m = ALS(factors=16, iterations=10, regularization=1.0, verbose=False).fit(events)
    user = events.user_id.iloc[0]
    seen = set(events.item_id[events.user_id == user])
    cat_of = shop.items.set_index("item_id")["category"]
    # The category this user has touched least; they now buy three of its items.
    touched = events.item_id[events.user_id == user].map(cat_of).value_counts()
    target = min(shop.items.category.unique(), key=lambda c: touched.get(c, 0))
    pool = [i for i in shop.items.item_id[shop.items.category == target] if i not in seen]
    bought, rest = pool[:3], pool[3:]

    def mean_rank_of_rest():
        s = m.score([user]).iloc[0]
        ranks = s.drop(list(seen) + bought, errors="ignore").rank(ascending=False)
        return ranks[rest].mean()

    before = mean_rank_of_rest()
    old_factor = m.user_factors_[m.interactions_.user_index([user])[0]].copy()
    ts = float(events.timestamp.max()) + 1
    m.update(pd.DataFrame({"user_id": user, "item_id": bought, "timestamp": ts, "event": "purchase"}))
    assert not np.allclose(old_factor, m.user_factors_[m.interactions_.user_index([user])[0]])
    assert mean_rank_of_rest() < before
    assert not set(m.recommend([user], k=10).item_id) & set(bought)


def test_als_fold_in_is_the_exact_least_squares_solution(events):
    m = ALS(factors=64, iterations=10, cg_steps=3, verbose=False).fit(events)
    u = int(np.argmax(np.diff(m.interactions_.matrix.indptr)))
    row = m.interactions_.matrix[u]
    Y = m.item_factors_.astype(np.float64)
    c = 1 + m.alpha * row.data  # linear confidence on the event weights
    Yu = Y[row.indices]
    A = Y.T @ Y + Yu.T @ ((c - 1)[:, None] * Yu) + m.regularization * np.eye(64)
    x = np.linalg.solve(A, Yu.T @ c)
    # Its speed is measured per event (ingest + top-10) by benchmarks/realtime.py, the ALS rows.
    np.testing.assert_allclose(m.fold_in_user(u), x, rtol=1e-3, atol=1e-4)


def test_als_serves_new_users_and_new_items_by_fold_in(events):
    m = ALS(factors=8, iterations=5, verbose=False).fit(events)
    ts = float(events.timestamp.max()) + 1
    known_users = events.user_id.unique()[:5]
    new = pd.DataFrame({"user_id": ["newbie"] * 3 + list(known_users), "item_id": [1, 2, 3] + ["new-sku"] * 5,
                        "timestamp": ts, "event": "view"})
    m.update(new)
    recs = m.recommend(["newbie"], k=5)
    assert not recs.fallback.any()
    assert np.isfinite(m.score(["newbie"], items=["new-sku"]).to_numpy()).all()
    assert np.abs(m.item_factors_[m.interactions_.item_index(["new-sku"])[0]]).sum() > 0


def test_history_models_serve_updated_users_without_refit(events):
    m = quick(MultVAE).fit(events)
    before = m.score(["newbie"]).to_numpy()
    m.update(pd.DataFrame({"user_id": "newbie", "item_id": [1, 2], "timestamp": 1e9, "event": "cart"}))
    recs = m.recommend(["newbie"], k=5)
    assert not recs.fallback.any() and not set(recs.item_id) & {1, 2}
    assert not np.allclose(before, m.score(["newbie"]).to_numpy())


# ---- RatingMF --------------------------------------------------------------------------------
def test_ratingmf_predicts_ratings_better_than_the_mean(ratings):
    from recapp.split import random_split

    train, test = random_split(ratings, 0.75, random_state=0)
    m = RatingMF(factors=8, n_epochs=40, learning_rate=0.01, regularization=0.02, verbose=False).fit(train)
    got = m.rating_metrics(test)
    baseline = float(np.sqrt(np.mean((test.rating - train.rating.mean()) ** 2)))
    assert got["rmse"] < 0.85 * baseline and got["mae"] < got["rmse"]
    pred = m.predict(test)
    assert pred.min() >= 1.0 and pred.max() <= 5.0
    unknown = m.predict(pd.DataFrame({"user_id": ["x"], "item_id": ["y"]}))
    assert unknown[0] == pytest.approx(train.rating.mean(), abs=0.05)


# ---- NeuMF time features ---------------------------------------------------------------------
def test_neumf_time_features_use_the_users_latest_hour(events):
    m = quick(NeuMF, time_features=True, n_epochs=1).fit(events)
    user = events.user_id.iloc[0]
    before = m.score([user]).to_numpy()
    last = float(events.timestamp[events.user_id == user].max())
    m.update(pd.DataFrame({"user_id": [user], "item_id": [events.item_id.iloc[0]], "timestamp": [last + 6 * 3600], "event": ["view"]}))
    assert not np.allclose(before, m.score([user]).to_numpy())


# ---- TfidfContent -------------------------------------------------------------------------------
def test_content_needs_item_text(events):
    with pytest.raises(ValueError, match="items="):
        TfidfContent().fit(events)
    with pytest.raises(ValueError, match="text columns"):
        TfidfContent().fit(events, items=pd.DataFrame({"item_id": [1], "price": [2.0]}))


def test_content_scores_and_recommends_cold_start_items(shop, events):
    cold = shop.items.iloc[:1].assign(item_id=-1)  # a catalogue item no one has touched yet
    items = pd.concat([shop.items, cold], ignore_index=True)
    m = TfidfContent().fit(events, items=items)
    s = m.score(events.user_id.unique()[:50], items=[-1]).to_numpy()
    assert np.isfinite(s).all() and (s > 0).any()
    # A twin of an item the user touched ranks high for that user.
    twin_of = shop.items.iloc[0].item_id
    fans = events.user_id[events.item_id == twin_of].unique()
    ranks = m.recommend(fans, k=20)
    assert (ranks.item_id == -1).any()
    # Popularity can never surface it.
    assert Popularity().fit(events).score(fans[:1]).shape[1] == events.item_id.nunique()


def test_content_add_items_after_fit(shop, events):
    m = TfidfContent().fit(events, items=shop.items)
    extra = shop.items.iloc[:2].assign(item_id=[-5, -6])
    m.add_items(extra)
    s = m.score(events.user_id.unique()[:10], items=[-5, -6]).to_numpy()
    np.testing.assert_allclose(s, m.score(events.user_id.unique()[:10], items=list(shop.items.item_id[:2])).to_numpy(), rtol=1e-5)


# ---- Hybrid --------------------------------------------------------------------------------------
def test_hybrid_blends_normalised_scores_with_the_given_weights(events):
    a, b = EASE(), quick(ALS)
    h = Hybrid(models=[a, b], weights=[3, 1]).fit(events)
    users = events.user_id.unique()[:5]
    from recapp.models.hybrid import normalize_scores

    ea, al = h.members[0].score(users).to_numpy(), h.members[1].score(users).to_numpy()
    expected = 0.75 * normalize_scores(ea) + 0.25 * normalize_scores(al)
    np.testing.assert_allclose(h.score(users).to_numpy(), expected, rtol=1e-6)
    three = Hybrid(models=[EASE(), quick(ALS), Popularity()], weights=[0.5, 0.3, 0.2]).fit(events)
    assert len(three.members) == 3 and three.weights_.sum() == pytest.approx(1.0)


def test_hybrid_chooses_weights_on_a_validation_split_of_train_only(events, monkeypatch):
    from recapp import tune

    train = events.iloc[: int(len(events) * 0.8)]
    test = events.iloc[int(len(events) * 0.8):]
    seen = []
    real = tune.validation_split

    def spy(frame, *args, **kwargs):
        seen.append(frame)
        return real(frame, *args, **kwargs)

    monkeypatch.setattr(tune, "validation_split", spy)
    h = Hybrid(models=[EASE(), Popularity()], weights="auto", weight_step=0.25).fit(train)
    assert len(seen) == 1
    rows = set(zip(seen[0].user_id, seen[0].item_id, seen[0].timestamp))
    assert rows <= set(zip(train.user_id, train.item_id, train.timestamp))
    assert not rows & (set(zip(test.user_id, test.item_id, test.timestamp)) - set(zip(train.user_id, train.item_id, train.timestamp)))
    assert tuple(h.weights_) == pytest.approx(h.tuning_.iloc[0]["weights"])
    assert len(h.tuning_) == 5 and h.tuning_["ndcg@10"].is_monotonic_decreasing


def test_hybrid_switches_cold_users_to_popularity_and_cold_items_to_content(shop, events):
    counts = events.groupby("user_id").item_id.nunique()
    h = Hybrid(models=[EASE(), quick(ALS)], cold_user_threshold=int(counts.median())).fit(events)
    cold_user = counts.idxmin()
    pop = Popularity().fit(events).recommend([cold_user], k=5).item_id.tolist()
    assert h.recommend([cold_user], k=5).item_id.tolist() == pop
    items = pd.concat([shop.items, shop.items.iloc[:1].assign(item_id=-1)], ignore_index=True)
    hc = Hybrid(models=[EASE(), quick(ALS)], cold_item_threshold=1).fit(events, items=items)
    assert np.isfinite(hc.score(events.user_id.unique()[:5], items=[-1]).to_numpy()).all()
    assert hc.score(events.user_id.unique()[:5], items=[-1]).to_numpy().max() > 0


def test_default_hybrid_and_its_members(events, tmp_path):
    h = Hybrid().fit(events)
    assert [type(m).__name__ for m in h.members] == ["ALS", "MultVAE"]
    assert tuple(h.weights_) == pytest.approx((0.6, 0.4))
    h.update(pd.DataFrame({"user_id": ["newbie"], "item_id": [1], "timestamp": [1e9], "event": ["purchase"]}))
    assert not h.recommend(["newbie"], k=3).fallback.any()
    h.save(tmp_path / "h")
    assert isinstance(load(tmp_path / "h"), Hybrid)


# ---- accuracy on the real protocol (slow) -----------------------------------------------------------
@pytest.fixture(scope="module")
def movielens():
    from recapp.data.movielens import load_movielens
    from recapp.split import stratified_split

    try:
        ml = load_movielens()
    except Exception as exc:  # no network and no cache
        pytest.skip(f"MovieLens-100K unavailable: {exc}")
    train, test = stratified_split(ml.interactions, 0.75, filter_by="item", random_state=42)
    return train, test, ml.items


@pytest.mark.slow
def test_als_reaches_the_target_on_movielens(movielens):
    from recapp.metrics import ndcg_at_k

    train, test, _ = movielens
    recs = ALS(verbose=False).fit(train).recommend(test.user_id.unique(), k=10)
    assert ndcg_at_k(test, recs, k=10) >= 0.40


@pytest.mark.slow
def test_default_hybrid_beats_every_peer_figure_on_movielens(movielens):
    from recapp.metrics import ndcg_at_k

    train, test, items = movielens
    recs = Hybrid().fit(train, items=items).recommend(test.user_id.unique(), k=10)
    assert ndcg_at_k(test, recs, k=10) >= 0.49
