"""Item2Vec (skip-gram over sessions) and TfidfContent's word-vector representation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recapp.interactions import Interactions
from recapp.models import Item2Vec, TfidfContent, load
from recapp.models.item2vec import sessions
from recapp.realtime import Engine

#: Small settings that learn the planted structure in a second or two.
QUICK = dict(vector_size=16, window=5, negative=5, epochs=30, learning_rate=0.05, neighbours=9)


@pytest.fixture(scope="module")
def clustered():
    """300 shoppers, each browsing 8 items of one of 4 clusters of 10 items (item c*10 + j), in random order."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(300):
        c = u % 4
        for t, j in enumerate(rng.choice(10, size=8, replace=False)):
            rows.append((u, c * 10 + int(j), 1.7e9 + u * 1e4 + t * 60, "click"))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event"])


@pytest.fixture(scope="module")
def model(clustered):
    return Item2Vec(**QUICK).fit(clustered)


def test_items_that_share_sessions_are_nearest_neighbours(model):
    """Known truth: every item's 9 nearest items by cosine are the other 9 of its cluster."""
    for item in range(40):
        near = model.similar_items(item, k=9)["item_id"].to_numpy()
        assert set(near // 10) == {item // 10}, (item, near)
    S = model.similarity_.toarray()
    assert (S[:10, :10].sum() > 5 * S[:10, 10:].sum())


def test_sessions_cut_at_gaps_and_collapse_repeats():
    df = pd.DataFrame({"user_id": [1, 1, 1, 1, 1, 2, 2, 3], "item_id": [10, 10, 11, 12, 13, 10, 11, 12],
                       "timestamp": [0, 1, 2, 5000, 5001, 0, 1, 0], "event": "view"})
    inter = Interactions.from_frame(df)
    tok = lambda ids: [str(i) for i in inter.item_index(ids)]  # noqa: E731
    assert sessions(inter) == [tok([10, 11, 12, 13]), tok([10, 11])]
    # A one-hour gap splits user 1; user 3's lone event has nothing to predict.
    assert sessions(inter, 3600.0) == [tok([10, 11]), tok([12, 13]), tok([10, 11])]


def test_recommend_excludes_seen_and_serves_new_users(model, clustered):
    users = [0, 1, 2, 3]
    recs = model.recommend(users, k=2)
    seen = set(zip(clustered.user_id, clustered.item_id))
    assert len(recs) == 8 and not any((u, i) in seen for u, i in zip(recs.user_id, recs.item_id))
    # The two unseen items of a shopper's cluster are their top 2.
    assert (recs.item_id // 10 == recs.user_id % 4).all()
    model_new = Item2Vec(**QUICK).fit(clustered)
    model_new.update(pd.DataFrame({"user_id": ["new"], "item_id": [25], "timestamp": [1.9e9], "event": ["view"]}))
    out = model_new.recommend(["new"], k=5)
    assert not out.fallback.any() and set(out.item_id // 10) == {2}


def test_training_is_repeatable_from_random_state(clustered):
    a = Item2Vec(**QUICK, random_state=3).fit(clustered).vectors_
    b = Item2Vec(**QUICK, random_state=3).fit(clustered).vectors_
    c = Item2Vec(**QUICK, random_state=4).fit(clustered).vectors_
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and not np.allclose(a, c)


@pytest.mark.parametrize("neighbours", [9, None])
def test_save_load_round_trip_gives_identical_scores(clustered, neighbours, tmp_path):
    m = Item2Vec(**{**QUICK, "neighbours": neighbours}).fit(clustered)
    m.save(tmp_path / "m")
    assert not list(tmp_path.glob("m/*.pkl"))
    loaded = load(tmp_path / "m")
    assert isinstance(loaded, Item2Vec) and loaded.get_params() == m.get_params()
    np.testing.assert_array_equal(m.score([0, 5, 7]).to_numpy(), loaded.score([0, 5, 7]).to_numpy())
    np.testing.assert_array_equal(m.vectors_, loaded.vectors_)


@pytest.mark.parametrize("neighbours", [9, None])
def test_engine_serves_item2vec_live_as_score_history_says(clustered, neighbours):
    """Each event moves the engine's list to the top of ``score_history`` on the updated history."""
    model = Item2Vec(**{**QUICK, "neighbours": neighbours}).fit(clustered)
    engine = Engine(model, k=5, explain=False, exclude_viewed=True)
    assert type(model.live_scorer()).__name__ == "ItemItemScorer"
    ids = model.interactions_.item_ids
    history, lists = [], []
    for t, item in enumerate([3, 5, 31, 33, 35]):
        engine.ingest({"user_id": "shopper", "item_id": item, "timestamp": 2e9 + t, "event": "click"})
        history.append(int(ids.get_loc(item)))
        s = model.score_history(np.array(history))
        s[history] = -np.inf
        want = ids[np.argsort(-s, kind="stable")[:5]].tolist()
        got = engine.recommend("shopper")["item_id"].tolist()
        assert got == want
        lists.append(got)
    # Two cluster-0 items, then three of cluster 3: the list moves from cluster 0 to cluster 3.
    assert set(np.array(lists[1]) // 10) == {0} and set(np.array(lists[-1]) // 10) == {3}


def test_a_dense_similarity_too_large_for_memory_names_the_sparse_alternative(clustered, monkeypatch):
    from recapp.models.memory import ModelTooLargeError

    monkeypatch.setenv("RECAPP_MEMORY_LIMIT", "1K")
    with pytest.raises(ModelTooLargeError, match="neighbours="):
        Item2Vec(**{**QUICK, "neighbours": None}).fit(clustered)
    assert Item2Vec(**QUICK).fit(clustered).similarity_.nnz <= 40 * 9


@pytest.mark.parametrize("params, name", [
    (dict(vector_size=0), "vector_size"), (dict(window=0), "window"), (dict(negative=0), "negative"),
    (dict(epochs=0), "epochs"), (dict(min_count=0), "min_count"), (dict(sample=-0.1), "sample"),
    (dict(ns_exponent=2.0), "ns_exponent"), (dict(learning_rate=0.0), "learning_rate"),
    (dict(session_gap=0.0), "session_gap"), (dict(neighbours=0), "neighbours"), (dict(binary="yes"), "binary"),
    (dict(shuffle="no"), "shuffle"), (dict(random_state=-1), "random_state"), (dict(workers=0), "workers"),
])
def test_out_of_range_parameters_name_the_argument(clustered, params, name):
    with pytest.raises(ValueError, match=name):
        Item2Vec(**params).fit(clustered)


# ---- TfidfContent(representation="word2vec") ---------------------------------------------------------------
THEMES = {
    "coffee": "espresso coffee grinder barista roast bean brew crema arabica kettle".split(),
    "garden": "hose garden rake soil seed lawn mower shovel compost hedge".split(),
}


@pytest.fixture(scope="module")
def catalogue():
    """40 items described by words of one of two themes, and shoppers who touch coffee items only."""
    rng = np.random.default_rng(1)
    rows = []
    for k in range(40):
        theme = "coffee" if k < 20 else "garden"
        words = rng.choice(THEMES[theme], size=5, replace=False)
        rows.append({"item_id": k, "title": " ".join(words), "category": theme})
    items = pd.DataFrame(rows)
    events = pd.DataFrame({"user_id": np.repeat(np.arange(30), 3), "item_id": rng.integers(0, 20, 90),
                           "timestamp": np.arange(90, dtype=float), "event": "view"})
    # Two cold items (no events): one coffee-like, one garden-like; words only, no category.
    cold = pd.DataFrame([{"item_id": 100, "title": "barista espresso grinder", "category": None},
                         {"item_id": 101, "title": "lawn hose rake", "category": None}])
    return pd.concat([items, cold], ignore_index=True), events


def test_word_vectors_rank_a_cold_item_with_matching_text_first(catalogue, tmp_path):
    items, events = catalogue
    m = TfidfContent(representation="word2vec", vector_size=16, epochs=100).fit(events, items=items)
    assert m.item_vectors_.dtype == np.float32 and m.item_vectors_.shape == (42, 16)
    s = m.score(events.user_id.unique()[:10], items=[100, 101]).to_numpy()
    assert (s[:, 0] > s[:, 1]).all()
    ranks = m.recommend([0, 1, 2], k=42).pivot(index="user_id", columns="item_id", values="rank")
    assert (ranks[100] < ranks[101]).all()
    # Items described later get vectors from the learned words; save/load keeps every score.
    m.add_items(pd.DataFrame([{"item_id": 102, "title": "crema roast kettle", "category": "coffee"}]))
    s2 = m.score([0], items=[102, 101]).to_numpy()
    assert s2[0, 0] > s2[0, 1]
    m.save(tmp_path / "c")
    np.testing.assert_array_equal(load(tmp_path / "c").score([0, 1]).to_numpy(), m.score([0, 1]).to_numpy())


def test_content_representation_is_checked(catalogue):
    items, events = catalogue
    with pytest.raises(ValueError, match="representation"):
        TfidfContent(representation="bert").fit(events, items=items)
    with pytest.raises(ValueError, match="vector_size"):
        TfidfContent(representation="word2vec", vector_size=0).fit(events, items=items)
