"""TwoStageRanker: retrievers' candidates re-ranked by LightGBM LambdaRank (recapp.models.twostage)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import recapp.models.twostage as twostage
from recapp.interactions import EVENT_CODES, Interactions
from recapp.models import EASE, ItemKNN, Popularity, Recommender, TwoStageRanker, load
from recapp.models.holdout_eval import ndcg_from_scores
from recapp.models.live import LiveHistory
from recapp.models.ranking_features import carve_holdout
from recapp.models.ranking_stage import group_ndcg
from recapp.realtime import Engine
from recapp.split import stratified_split

torch.set_num_threads(1)

RETRIEVERS = [Popularity(), ItemKNN(neighbours=30)]


def planted_log(n_users=300, n_items=200, n_cats=8, per_user=30, seed=0):
    """Events where relevance is planted in the catalogue: each user mostly picks items of one favourite category.

    Items are popular regardless of category (a Zipf law), so popularity alone ranks poorly and the share
    of the history in an item's category (the ranker's ``category_match`` feature) is what matters.
    """
    rng = np.random.default_rng(seed)
    cat = rng.integers(n_cats, size=n_items)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    rows = []
    for u in range(n_users):
        fav = rng.integers(n_cats)
        w = pop * np.where(cat == fav, 12.0, 1.0)
        items = rng.choice(n_items, size=per_user, replace=False, p=w / w.sum())
        t0 = 1.7e9 + rng.uniform(0, 30 * 86_400)
        rows += [(u, int(i), t0 + 60.0 * j, "click") for j, i in enumerate(items)]
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event"])
    items = pd.DataFrame({"item_id": np.arange(n_items), "category": [f"c{c}" for c in cat]})
    return events, items


@pytest.fixture(scope="module")
def planted():
    events, items = planted_log()
    train, test = stratified_split(events, 0.75, filter_by="user", random_state=1)
    return train, test, items


@pytest.fixture(scope="module")
def ranker(planted):
    train, _, items = planted
    return TwoStageRanker(retrievers=RETRIEVERS, n_candidates=60).fit(train, items=items)


def _ndcg(model, train, test):
    inter = model.interactions_
    users = inter.user_index(test["user_id"].unique())
    test_rows = Interactions.from_frame(test, user_ids=inter.user_ids, item_ids=inter.item_ids).matrix
    scores = model.score(inter.user_ids[users]).to_numpy(copy=True)
    return ndcg_from_scores(scores, inter.matrix[users], test_rows[users][:, : inter.n_items])


def test_ranker_beats_its_best_retriever_when_a_planted_feature_decides(planted, ranker):
    train, test, items = planted
    ours = _ndcg(ranker, train, test)
    alone = {type(r).__name__: _ndcg(type(r)(**r.get_params()).fit(train), train, test) for r in RETRIEVERS}
    assert ours > 1.08 * max(alone.values()), (ours, alone)
    imp = ranker.feature_importances_
    assert list(imp.columns) == ["feature", "gain", "split", "gain_share"]
    assert imp["feature"].iloc[0] == "category_match" and imp["gain_share"].sum() == pytest.approx(1.0)


def test_ranker_training_only_sees_the_training_events(planted, monkeypatch):
    """Every holdout, remainder and retriever fit is made of training events; the test split never appears."""
    train, test, items = planted
    key = lambda f: set(zip(f["user_id"], f["item_id"], f["timestamp"]))  # noqa: E731
    train_keys, test_keys = key(train), key(test)
    seen = []
    real_carve, real_fit = twostage.carve_holdout, Recommender.fit_with_items

    def spy_carve(inter, *args, **kwargs):
        held, rest = real_carve(inter, *args, **kwargs)
        seen.append(("holdout", key(inter.frame[held])))
        seen.append(("remainder", key(inter.frame[rest])))
        assert not (held & rest).any()
        return held, rest

    def spy_fit(model, inter, items=None):
        seen.append(("retriever", key(inter.frame)))
        return real_fit(model, inter, items)

    monkeypatch.setattr(twostage, "carve_holdout", spy_carve)
    monkeypatch.setattr(Recommender, "fit_with_items", spy_fit)
    TwoStageRanker(retrievers=RETRIEVERS, n_folds=2, n_estimators=20).fit(train, items=items)
    kinds = [k for k, _ in seen]
    assert kinds.count("holdout") == 2 and kinds.count("retriever") == 3 * len(RETRIEVERS)
    for kind, keys in seen:
        assert keys and keys <= train_keys and not keys & test_keys, kind


def test_time_holdout_holds_out_each_users_latest_events(planted):
    train, _, _ = planted
    inter = TwoStageRanker(retrievers=[Popularity()], n_estimators=5).fit(train).interactions_
    held, rest = carve_holdout(inter, "time", 0.2, 5, fold=0)
    f = inter.frame
    last_rest = f[rest].groupby("uidx")["timestamp"].max()
    first_held = f[held].groupby("uidx")["timestamp"].min()
    assert (first_held >= last_rest.reindex(first_held.index)).all()
    assert held.sum() == pytest.approx(0.2 * len(f), rel=0.1)


def test_save_load_round_trip_gives_identical_recommendations(ranker, planted, tmp_path):
    users = planted[1]["user_id"].unique()[:50]
    before = ranker.recommend(users, k=10)
    ranker.save(tmp_path / "ts")
    assert not list(tmp_path.glob("**/*.pkl")) and (tmp_path / "ts" / "config.json").exists()
    back = load(tmp_path / "ts")
    assert isinstance(back, TwoStageRanker)
    pd.testing.assert_frame_equal(back.recommend(users, k=10), before)
    pd.testing.assert_frame_equal(back.feature_importances_, ranker.feature_importances_)
    assert back.base_retriever_ == ranker.base_retriever_


def test_live_scores_equal_score_history_and_the_engine_follows_an_event(ranker):
    scorer = ranker.live_scorer()
    hist = LiveHistory()
    for j, item in enumerate([3, 17, 40, 41, 90]):
        hist.add(item, EVENT_CODES["click"], 1.8e9 + j, 2.0)
    live = scorer.scores(scorer.start(hist), hist).astype(np.float64)
    expected = ranker.score_history(*hist.weights(scorer.n_items))
    assert np.array_equal(np.isfinite(live), np.isfinite(expected)) and np.isfinite(live).sum() >= 10
    ok = np.isfinite(live)
    np.testing.assert_allclose(live[ok], expected[ok], rtol=1e-4, atol=1e-4)

    engine = Engine(ranker, k=10, explain=False)
    ids = ranker.interactions_.item_ids
    history = {}

    def top_of_score_history():
        s = ranker.score_history(np.array(list(history)), np.array(list(history.values())))
        s[list(history)] = -np.inf
        return ids[np.argsort(-s, kind="stable")[:10]].tolist()

    for j, item in enumerate([3, 17, 40]):
        engine.ingest({"user_id": "new", "item_id": ids[item], "timestamp": 1.8e9 + j, "event": "purchase"})
        history[item] = history.get(item, 0.0) + 5.0
    before = engine.recommend("new")["item_id"].tolist()
    assert before == top_of_score_history()
    engine.ingest({"user_id": "new", "item_id": before[0], "timestamp": 1.8e9 + 10, "event": "purchase"})
    history[ids.get_loc(before[0])] = 5.0
    after = engine.recommend("new")["item_id"].tolist()
    assert after != before and before[0] not in after
    assert after == top_of_score_history()


def test_blended_base_averages_the_named_retrievers_ranks_and_survives_save_load(planted, tmp_path):
    train, test, items = planted
    retrievers = [EASE(l2=50.0), ItemKNN(neighbours=30), Popularity()]
    blend = TwoStageRanker(retrievers=retrievers, init_from="blend", n_estimators=5).fit(train, items=items)
    assert blend.base_retrievers_ == ["EASE"]                   # the members of BLEND among the retrievers
    named = TwoStageRanker(retrievers=retrievers, init_from=["EASE", "ItemKNN"], n_estimators=5).fit(train, items=items)
    assert named.base_retrievers_ == ["EASE", "ItemKNN"] and named.base_retriever_ == "EASE+ItemKNN"
    assert named.ranker_log_["base_ndcg@10"] > 0
    fallback = TwoStageRanker(retrievers=RETRIEVERS, init_from="blend", n_estimators=5).fit(train)
    assert fallback.base_retrievers_ == [max(fallback.ranker_log_["retriever_ndcg@10"].items(), key=lambda kv: kv[1])[0]]
    users = test["user_id"].unique()[:30]
    named.save(tmp_path / "blend")
    back = load(tmp_path / "blend")
    assert back.base_retrievers_ == ["EASE", "ItemKNN"]
    pd.testing.assert_frame_equal(back.recommend(users, k=10), named.recommend(users, k=10))


def test_default_retrievers_are_collaborative_and_content_retrievers_join_on_request(planted):
    """Item text no longer adds TfidfContent by default; named in ``retrievers`` it gets the catalogue and new items."""
    train, _, items = planted
    text = items.assign(title=[f"film {c} {i}" for i, c in zip(items["item_id"], items["category"])])
    default = TwoStageRanker(n_estimators=5).fit(train, items=text)
    assert [s["class"] for s in default.retriever_specs_] == ["EASE", "ALS", "ItemKNN", "Popularity"]
    assert default.retriever_names_ == ["EASE", "ALS", "ItemKNN", "Popularity"]
    cold = pd.DataFrame({"item_id": [10_000], "category": [items["category"].iloc[0]], "title": ["film brand new"]})
    catalogue = pd.concat([text, cold], ignore_index=True)
    content = TwoStageRanker(retrievers=[Popularity(), {"class": "TfidfContent", "params": {}}], n_candidates=500,
                             n_estimators=5).fit(train, items=catalogue)
    scores = content.score(train["user_id"].unique()[:5])
    assert np.isfinite(scores[10_000]).all()                  # the catalogue's item without events is scored
    assert content.retriever_names_ == ["Popularity", "TfidfContent"]
    # The ranker learns from the content retriever's score and rank; the default one has no such column.
    assert {"TfidfContent_score", "TfidfContent_rank"} <= set(content.feature_names_)
    assert not any(name.startswith("TfidfContent") for name in default.feature_names_)


def test_update_folds_new_users_in_through_every_retriever(ranker):
    model = TwoStageRanker(retrievers=[EASE(l2=50.0), Popularity()], n_estimators=10).fit(ranker.interactions_)
    model.update(pd.DataFrame({"user_id": ["fresh"] * 3, "item_id": [1, 2, 3], "timestamp": [1.9e9] * 3, "event": ["click"] * 3}))
    recs = model.recommend(["fresh"], k=5)
    assert len(recs) == 5 and not recs["fallback"].any() and not set(recs["item_id"]) & {1, 2, 3}


def test_group_ndcg_orders_each_group_by_score_with_graded_gains():
    # Two groups, each with its one relevant row ranked second: NDCG 1 / log2(3) in both.
    assert group_ndcg(np.array([0, 0, 0, 1, 1]), np.array([3.0, 2.0, 1.0, 1.0, 2.0]),
                      np.array([0, 1, 0, 1, 0])) == pytest.approx(1 / np.log2(3))
    # Graded: gains 2**y - 1; the better item (y=2, gain 3) ranked second.
    dcg, idcg = 1 + 3 / np.log2(3), 3 + 1 / np.log2(3)
    assert group_ndcg(np.array([0, 0]), np.array([1.0, 2.0]), np.array([2, 1])) == pytest.approx(dcg / idcg)
    assert group_ndcg(np.array([0, 0]), np.array([1.0, 2.0]), np.array([0, 0])) == 0.0   # no relevant row: no group counts


@pytest.mark.parametrize("params, name", [
    ({"n_candidates": 0}, "n_candidates"), ({"holdout": "future"}, "holdout"), ({"holdout_fraction": 1.5}, "holdout_fraction"),
    ({"n_folds": 5, "holdout_fraction": 0.25}, "n_folds"), ({"label": "clicks"}, "label"), ({"retrievers": []}, "retrievers"),
    ({"retrievers": [TwoStageRanker()]}, "TwoStageRanker"), ({"learning_rate": 0}, "learning_rate"),
    ({"features": "ALS_rank"}, "features"), ({"features": ["no_such_feature"]}, "no_such_feature"),
    ({"init_from": "NoSuchRetriever"}, "init_from"), ({"init_from": ["Popularity", "Nope"]}, "init_from"),
    ({"init_from": []}, "init_from"), ({"early_stopping_rounds": 0}, "early_stopping_rounds"),
])
def test_bad_params_raise_clear_errors(planted, params, name):
    train, _, _ = planted
    with pytest.raises(ValueError, match=name):
        TwoStageRanker(**{"retrievers": [Popularity()], **params}).fit(train)


def test_log_compares_base_and_boosted_order_on_the_same_early_stopping_users(planted, ranker):
    train, _, items = planted
    log = ranker.ranker_log_
    # The planted category signal is what the trees add over ItemKNN's order, on the same held-out users.
    assert log["validation_ndcg@10"] > log["validation_base_ndcg@10"] + 0.02, log
    # Trees that move no score leave the boosted figure equal to the base's: the two are one metric on one set of users.
    still = TwoStageRanker(retrievers=RETRIEVERS, n_candidates=60, learning_rate=1e-9, n_estimators=2).fit(train, items=items)
    assert still.ranker_log_["validation_ndcg@10"] == pytest.approx(still.ranker_log_["validation_base_ndcg@10"], abs=1e-9)
    unwatched = TwoStageRanker(retrievers=RETRIEVERS, n_candidates=60, early_stopping_rounds=None, n_estimators=2).fit(train)
    assert unwatched.ranker_log_["validation_base_ndcg@10"] is None and unwatched.ranker_log_["validation_ndcg@10"] is None
