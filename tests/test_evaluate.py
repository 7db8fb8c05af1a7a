"""The foundation's accuracy targets on the real MovieLens-100K protocol."""
import pandas as pd
import pytest

from recapp import models
from recapp.evaluate import compare, default_models, evaluate_model, movielens_protocol


@pytest.fixture(scope="module")
def protocol():
    return movielens_protocol()


def test_protocol_is_the_recommenders_split(protocol):
    assert len(protocol.train) + len(protocol.test) == 100_000
    assert (len(protocol.train), len(protocol.test)) == (75_066, 24_934)
    assert set(protocol.train.columns) >= {"user_id", "item_id", "rating", "timestamp", "event"}
    assert (protocol.train.event == "rating").all()


@pytest.mark.slow
@pytest.mark.parametrize("cls, low, high", [
    (models.EASE, 0.48, 1.0),
    (models.ItemKNN, 0.38, 1.0),
    (models.Popularity, 0.240, 0.260),
])
def test_baseline_targets(protocol, cls, low, high):
    row = evaluate_model(cls(), protocol)
    assert low <= row["ndcg@10"] <= high, row
    assert row["users_covered"] == 1.0


def test_recommend_covers_every_test_user_and_never_a_training_item(protocol):
    model = models.EASE().fit(protocol.train)
    users = protocol.test.user_id.unique()
    recs = model.recommend(users, k=10, exclude_seen=True)
    assert set(recs.user_id) == set(users)
    assert recs.groupby("user_id").size().eq(10).all()
    train_pairs = pd.MultiIndex.from_frame(protocol.train[["user_id", "item_id"]])
    rec_pairs = pd.MultiIndex.from_frame(recs[["user_id", "item_id"]])
    assert not rec_pairs.isin(train_pairs).any()


def test_compare_is_tidy(protocol):
    table = compare({"pop": models.Popularity(), "ease": models.EASE()}, protocol, progress=False)
    assert list(table.model) == ["pop", "ease"]
    for col in ["ndcg@10", "precision@10", "recall@10", "map@10", "coverage", "novelty", "train_s"]:
        assert table[col].notna().all()
    assert table.loc[1, "ndcg@10"] > table.loc[0, "ndcg@10"]


def test_default_models_rejects_unknown_names():
    with pytest.raises(ValueError, match="available"):
        default_models(["NoSuchModel"])
