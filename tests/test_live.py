"""Every model serves live: the live-scoring contract, each family's fast path against its own scoring."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import recapp.models as models
from recapp.interactions import EVENT_CODES
from recapp.models import REGISTRY
from recapp.models.live import LiveHistory
from recapp.realtime import Engine

torch.set_num_threads(1)

# Quick settings per model: these tests check the live path, not accuracy.
QUICK = {
    "ALS": dict(factors=8, iterations=5, verbose=False),
    "BPR": dict(factors=8, n_epochs=3, batch_size=512, verbose=False),
    "RatingMF": dict(factors=8, n_epochs=3, verbose=False),
    "NeuMF": dict(gmf_factors=8, mlp_factors=8, layers=(16, 8), n_epochs=2, verbose=False),
    "MultVAE": dict(hidden=32, latent=8, n_epochs=3, verbose=False),
    "LightGCN": dict(factors=8, layers=2, n_epochs=2, batch_size=1024, verbose=False),
    "GRU4Rec": dict(embedding_dim=16, n_epochs=2, max_len=20, verbose=False),
    "SASRec": dict(embedding_dim=16, n_epochs=2, max_len=20, verbose=False),
    "EASE": dict(l2=50.0),
    "ItemKNN": dict(neighbours=30),
    "UserKNN": dict(neighbours=30),
    "Hybrid": dict(models=[{"class": "EASE", "params": {"l2": 50.0}},
                           {"class": "ALS", "params": {"factors": 8, "iterations": 5, "verbose": False}}]),
}


@pytest.fixture(scope="module")
def fitted(shop):
    """Every registry model, fitted once (lazily) on the shop."""
    cache = {}

    def get(name):
        if name not in cache:
            model = REGISTRY[name](**QUICK.get(name, {}))
            kwargs = {"items": shop.items} if name == "TfidfContent" else {}
            cache[name] = model.fit(shop.events, **kwargs)
        return cache[name]

    return get


def _history(model, shop, n=12, seed=0):
    """A new shopper's history: ``n`` distinct model items with event codes and weights, built event by event."""
    rng = np.random.default_rng(seed)
    items = rng.choice(model.n_items_, size=n, replace=False)
    events = rng.choice(["view", "click", "cart", "purchase"], size=n)
    return [(int(i), EVENT_CODES[e], 1_700_000_000.0 + j, {"view": 1.0, "click": 2.0, "cart": 3.0, "purchase": 5.0}[e])
            for j, (i, e) in enumerate(zip(items, events))]


def test_registry_holds_exactly_the_public_models():
    assert not [name for name in REGISTRY if name.startswith("_")]
    public = {name for name in models.__all__ if isinstance(getattr(models, name), type)
              and issubclass(getattr(models, name), models.Recommender) and name != "Recommender"}
    assert set(REGISTRY) == public


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_registry_model_is_served_live(fitted, shop, name):
    model = fitted(name)
    engine = Engine(model, k=5)
    user = "live-shopper"
    items = model.interactions_.item_ids[:6].tolist()
    for t, item in enumerate(items):
        res = engine.ingest({"user_id": user, "item_id": item, "timestamp": 1.8e9 + t, "event": "click"})
        assert res.n_ingested == 1 and res.n_rejected == 0
    recs = engine.recommend(user)
    assert len(recs) == 5 and recs["item_id"].is_unique
    assert recs["rank"].tolist() == [1, 2, 3, 4, 5]
    # A known shopper is served too, with their training history.
    known = model.interactions_.user_ids[0]
    assert len(engine.recommend(known)) == 5


def _fold_events(scorer, hist, events, recency):
    """Fold events one at a time, as the engine does; returns the final (state, live score vector)."""
    state = scorer.start(hist)
    vec = None
    for j, (item, code, t, w) in enumerate(events):
        delta = hist.add(item, code, t, w, recency)
        if delta is None:
            state, vec = scorer.start(hist), None
        elif not scorer.fold(state, hist, item, delta, vec):
            vec = None
        if vec is None or j % 4 == 0:
            vec = scorer.scores(state, hist).copy()
    return state, vec.astype(np.float64) * scorer.output_scale(hist)


NON_SEQUENCE = [n for n in sorted(REGISTRY) if n not in ("GRU4Rec", "SASRec")]


def assert_scores_close(live, expected, rtol=2e-4):
    """Same items excluded (-inf, e.g. outside a ranker's candidates), and the rest close at the scores' own scale."""
    live, expected = np.asarray(live, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(live[~finite], expected[~finite])
    scale = max(1.0, np.abs(expected[finite]).max()) if finite.any() else 1.0
    np.testing.assert_allclose(live[finite], expected[finite], rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("name", NON_SEQUENCE)
def test_live_scores_equal_the_models_own_scoring(fitted, shop, name):
    """Folding events one at a time gives the scores ``score_history`` gives for the whole history."""
    model = fitted(name)
    scorer = model.live_scorer()
    hist = LiveHistory()
    _, live = _fold_events(scorer, hist, _history(model, shop), 1.0)
    if name == "NeuMF":
        expected = model.score_history(np.asarray(hist.items), None, last_time=hist.times[-1])
    else:
        expected = model.score_history(*hist.weights(scorer.n_items))[: scorer.n_items]
    # float32 vectors folded event by event against a float64 recomputation.
    assert_scores_close(live, expected)


@pytest.mark.parametrize("name", NON_SEQUENCE)
def test_live_folding_with_recency_equals_scoring_from_scratch(fitted, shop, name):
    """With a recency decay (every weight changes at each event) the fast path still matches a rebuild."""
    model = fitted(name)
    scorer = model.live_scorer()
    hist = LiveHistory()
    state, live = _fold_events(scorer, hist, _history(model, shop, n=15, seed=1), 0.8)
    fresh = scorer.scores(scorer.start(hist), hist).astype(np.float64) * scorer.output_scale(hist)
    assert_scores_close(live, fresh)


@pytest.mark.parametrize("name", ["GRU4Rec", "SASRec"])
def test_sequence_scores_equal_encoding_the_last_events(fitted, shop, name):
    model = fitted(name)
    scorer = model.live_scorer()
    hist = LiveHistory()
    for item, code, t, w in _history(model, shop, n=30):
        hist.add(item, code, t, w)
    items, events = hist.sequence(scorer.n_items, model.max_len)
    assert len(items) == model.max_len
    np.testing.assert_allclose(scorer.scores(scorer.start(hist), hist), model.score_history(items, None, events),
                               rtol=1e-5, atol=1e-5)


def test_engine_list_is_the_top_of_score_history(fitted, shop):
    """Through the public engine: a new shopper's list is the top of the model's own scores, consumed items out."""
    model = fitted("ALS")
    engine = Engine(model, k=10, explain=False)
    hist = _history(model, shop, n=8, seed=4)
    ids = model.interactions_.item_ids
    names = {v: k for k, v in EVENT_CODES.items()}
    for item, code, t, _ in hist:
        engine.ingest({"user_id": "u-new", "item_id": ids[item], "timestamp": t, "event": names[code]})
    got = engine.recommend("u-new")["item_id"].tolist()
    weights = {}
    for item, code, _, w in hist:
        weights[item] = weights.get(item, 0.0) + w
    s = model.score_history(np.array(list(weights)), np.array(list(weights.values())))
    s[[i for i, c, _, _ in hist if names[c] == "purchase"]] = -np.inf
    assert got == ids[np.argsort(-s, kind="stable")[:10]].tolist()


def test_hybrid_live_blends_its_members_live_scorers(fitted, shop):
    model = fitted("Hybrid")
    scorer = model.live_scorer()
    assert [type(s) for s in scorer.members] == [type(m.live_scorer()) for m in model.members_]
    hist = LiveHistory()
    for item, code, t, w in _history(model, shop, n=10, seed=2):
        hist.add(item, code, t, w)
    state = scorer.start(hist)
    members = [m.score_history(*hist.weights(m.n_items_)) for m in model.members_]
    np.testing.assert_allclose(scorer.scores(state, hist), model.blend_history(members, None, 10), rtol=1e-4, atol=1e-5)


def test_popularity_live_honours_half_life_and_weights(shop):
    model = models.Popularity(half_life=3600.0, weighted=True).fit(shop.events)
    engine = Engine(model, k=3, half_life=None)
    t = float(shop.events["timestamp"].max()) + 10 * 86_400
    cold = model.interactions_.item_ids[np.argsort(model.counts_)[0]]
    # One purchase (weight 5) of a cold item, well after the log: with a one-hour half-life it leads at once.
    engine.ingest({"user_id": "a", "item_id": cold, "timestamp": t, "event": "purchase"})
    assert engine.recommend("someone")["item_id"].iloc[0] == cold
    plain = Engine(models.Popularity().fit(shop.events), k=3, half_life=None)
    plain.ingest({"user_id": "a", "item_id": cold, "timestamp": t, "event": "purchase"})
    assert plain.recommend("someone")["item_id"].iloc[0] != cold


def test_fold_in_models_update_per_event_for_new_shoppers(fitted):
    """BPR, LightGCN and RatingMF serve a brand-new shopper from their history, not the popularity fallback."""
    for name in ("BPR", "LightGCN", "RatingMF"):
        model = fitted(name)
        engine = Engine(model, k=5)
        ids = model.interactions_.item_ids
        engine.ingest({"user_id": "fresh", "item_id": ids[3], "timestamp": 1.9e9, "event": "purchase"})
        out = engine.recommend("fresh")
        assert (out["explanation"] != "popular now").any(), name
