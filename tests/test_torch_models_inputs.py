"""Inputs the torch recommenders used to misread, train on silently, crash on with a library error, or half-apply."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from recapp.interactions import Interactions
from recapp.models import BPR, GRU4Rec, LightGCN, MultVAE, NeuMF, RatingMF, SASRec, load
from recapp.schema import SchemaError

ITEMS = [f"i{j}" for j in range(6)]


def shop(n_users: int = 8, per_user: int = 4, **extra) -> pd.DataFrame:
    rows = [(f"u{u}", ITEMS[(u * 2 + n) % 6], float(u * 10 + n)) for u in range(n_users) for n in range(per_user)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(**extra)


def small(cls, **kw):
    base = {"verbose": False, "n_epochs": 2, "device": "cpu", "random_state": 0}
    base.update({GRU4Rec: {"embedding_dim": 8, "max_len": 5, "early_stopping": False},
                 SASRec: {"embedding_dim": 8, "max_len": 5, "early_stopping": False},
                 NeuMF: {"gmf_factors": 4, "mlp_factors": 4, "layers": (8,)},
                 MultVAE: {"hidden": 8, "latent": 4}}.get(cls, {"factors": 4}))
    return cls(**{**base, **kw})


@pytest.fixture(scope="module")
def fitted():
    return {cls: small(cls).fit(shop()) for cls in (GRU4Rec, NeuMF)}


# ---- fit ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [BPR, GRU4Rec, RatingMF])
def test_fit_refuses_keyword_arguments_it_does_not_take(cls):
    # Before: items= (a catalogue) and typos such as epochs= were dropped without a word.
    with pytest.raises(ValueError, match=r"unknown keyword argument\(s\) \['items'\].*fit_with_items"):
        small(cls).fit(shop(), items=pd.DataFrame({"item_id": ITEMS + ["extra"]}))
    with pytest.raises(ValueError, match=r"\['epochs'\]"):
        small(cls).fit(shop(), epochs=3)
    assert small(cls).fit_with_items(shop(), pd.DataFrame({"item_id": ITEMS})).n_items_ == 6


def test_a_failed_refit_leaves_the_model_as_it_was():
    m = small(BPR, binary=False).fit(shop())
    before = m.recommend(k=3)
    other = shop(event="rating", rating=0.0).assign(user_id=lambda d: d.user_id + "x")
    with pytest.raises(ValueError, match=r"BPR\(binary=False\).*summed event weight that is 0"):
        m.fit(other)
    # Before: the new events replaced interactions_ and were scored with the previous fit's factors.
    assert list(m.interactions_.user_ids) == [f"u{u}" for u in range(8)]
    pd.testing.assert_frame_equal(m.recommend(k=3), before)


@pytest.mark.parametrize("cls", [NeuMF, MultVAE, LightGCN, BPR, RatingMF])
def test_interactions_without_events_are_refused(cls):
    empty = Interactions.from_frame(shop()).subset(np.zeros(32, dtype=bool))
    # Before: ZeroDivisionError, numpy's IndexError or "zero-size array to reduction operation".
    with pytest.raises(SchemaError, match=rf"{cls.__name__} cannot fit on Interactions\(0 events.*holds no events"):
        small(cls).fit(empty)


@pytest.mark.parametrize("cls", [GRU4Rec, SASRec])
def test_sequence_models_need_a_user_with_two_events(cls):
    # Before: no window to learn from, so the fit silently served its random initial embeddings.
    with pytest.raises(ValueError, match=r"none of the 8 user\(s\) has 2 or more events"):
        small(cls).fit(shop(per_user=1))


def test_a_seed_past_torchs_range_is_named():
    # Before: numpy's "ufunc 'isfinite' not supported for the input types".
    with pytest.raises(ValueError, match=r"random_state=18446744073709551616 is out of range; it must be <= 18446744073709551615"):
        small(BPR, random_state=2**64).fit(shop())


@pytest.mark.parametrize("cls", [GRU4Rec, SASRec, MultVAE])
def test_dropout_of_one_is_refused(cls):
    # Before: the sequence models trained with every input zeroed.
    with pytest.raises(ValueError, match=r"dropout=1\.0 is out of range; it must be < 1"):
        small(cls, dropout=1.0).fit(shop())


@pytest.mark.parametrize("cls", [BPR, MultVAE])
def test_weighted_models_refuse_negative_or_all_zero_weights(cls):
    # Before: BPR stopped in numpy ("Probabilities contain NaN"); MultVAE trained on nothing or on negative amounts.
    with pytest.raises(ValueError, match=r"binary=False.*summed event weight that is 0 \(every one of them\)"):
        small(cls, binary=False).fit(shop(event="rating", rating=0.0))
    ratings = np.where(np.arange(32) % 2, -1.0, 3.0)
    with pytest.raises(ValueError, match=r"16 \(user, item\) pair\(s\) have a summed event weight that is negative, e\.g\. user 'u0'"):
        small(cls, binary=False).fit(shop(event="rating", rating=ratings))
    assert small(cls, binary=True).fit(shop(event="rating", rating=ratings)).is_fitted


@pytest.mark.parametrize("cls", [NeuMF, LightGCN, RatingMF, GRU4Rec])
def test_early_stopping_with_no_validation_events_trains_every_epoch(cls):
    # Two events per user: nobody has enough to hold one out. Before: every epoch validated as 0 (RatingMF: NaN with
    # numpy warnings), so training stopped after `patience` epochs and kept the first epoch's state.
    m = small(cls, early_stopping=True, n_epochs=6, patience=2)
    with pytest.warns(UserWarning, match="early_stopping is on but the validation split is empty"):
        m.fit(shop(per_user=2))
    assert len(m.train_log_.losses) == 6 and m.train_log_.best_epoch == 5


# ---- score_history, encode ------------------------------------------------------------------------
BAD_HISTORIES = [
    (["i1"], None, r"internal item indices \(integers\), got dtype <U2"),
    ([0.0, 1.0], None, "got dtype float64"),
    ([3, -1], None, r"items\[1\] = -1 is negative"),
    ([0, 1], [1.0], r"weights has 1 value\(s\) for 2 item\(s\)"),
    ([0, 1], [1.0, np.nan], r"weights\[1\] = nan is not a finite number"),
]


@pytest.mark.parametrize("items, weights, message", BAD_HISTORIES)
def test_score_history_refuses_what_every_other_model_refuses(fitted, items, weights, message):
    # Before: ids failed in int(), a negative index was dropped and float indices were truncated silently.
    for m in fitted.values():
        with pytest.raises(ValueError, match=message):
            m.score_history(items, weights)


def test_valid_histories_score_as_before(fitted):
    for m in fitted.values():
        n = m.n_items_
        assert np.allclose(m.score_history([0, 2, n + 3]), m.score_history([0, 2]))
        assert m.score_history([]).shape == (n,)
    seq = fitted[GRU4Rec]
    assert np.allclose(seq.score_history([0, 1], events=np.array([0, 3], dtype=np.int8)), seq.score_history([0, 1], events=[0, 3]))


@pytest.mark.parametrize("events, message", [
    ([0], r"events has 1 code\(s\) for 3 item\(s\)"),
    ([0, 1, 99], r"events\[2\] = 99 is not an event code; accepted: \{'view': 0"),
    ([0, -1, 0], r"events\[1\] = -1 is not an event code"),
    (["view", "cart", "view"], "events must be event codes"),
])
def test_sequence_encode_refuses_events_that_are_not_codes(fitted, events, message):
    # Before: numpy's "boolean index did not match" or torch's "index out of range in self".
    with pytest.raises(ValueError, match=message):
        fitted[GRU4Rec].encode([0, 1, 2], events)


@pytest.mark.parametrize("kw, message", [({"uidx": "u1"}, r"uidx='u1' must be an integer"),
                                         ({"uidx": 1.5}, r"uidx=1\.5 must be an integer"),
                                         ({"last_time": "2020-01-01"}, "last_time='2020-01-01' must be None or a number")])
def test_neumf_score_history_refuses_a_row_or_time_it_cannot_read(fitted, kw, message):
    # Before: TypeError from a comparison or a slice, naming neither argument.
    with pytest.raises(ValueError, match=message):
        fitted[NeuMF].score_history([0, 1], **kw)


# ---- save -----------------------------------------------------------------------------------------
def test_a_torch_device_parameter_saves_and_loads(tmp_path):
    m = small(BPR, device=torch.device("cpu")).fit(shop())
    # Before: TypeError "device is not JSON-serialisable", after state.safetensors was already written.
    back = load(m.save(tmp_path / "m"))
    assert back.device == "cpu"
    pd.testing.assert_frame_equal(back.recommend(k=3), m.recommend(k=3))


def test_a_save_that_cannot_write_its_config_writes_nothing(tmp_path):
    old = small(BPR).fit(shop()).save(tmp_path / "m")
    expected = load(old).recommend(k=3)
    m = small(BPR, random_state=1, n_epochs=3).fit(shop())
    m.verbose = object()
    with pytest.raises(ValueError, match="cannot save BPR: a parameter is not JSON-serialisable"):
        m.save(old)
    # Before: the new weights replaced the old ones beside the old config.json, and loaded as the old model.
    pd.testing.assert_frame_equal(load(old).recommend(k=3), expected)


# ---- RatingMF -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rated():
    log = shop(event="rating", rating=(np.arange(32) % 5 + 1).astype(float))
    return small(RatingMF).fit(log)


def test_ratingmf_refuses_infinite_ratings():
    ratings = np.where(np.arange(32) == 5, np.inf, 3.0)
    # Before: the mean became inf and recommend returned an empty frame.
    with pytest.raises(ValueError, match=r"1 event\(s\) have an infinite rating, e\.g\. user 'u1', item 'i3': inf"):
        small(RatingMF).fit(shop(event="rating", rating=ratings))


def test_ratingmf_predict_refuses_pairs_it_cannot_read(rated):
    with pytest.raises(ValueError, match=r"pairs is missing column\(s\) \['item_id'\]"):
        rated.predict(pd.DataFrame({"user_id": ["u1"], "item": ["i1"]}))
    with pytest.raises(ValueError, match=r"pairs is missing column\(s\) \['item_id'\]"):
        rated.predict_frame(pd.DataFrame({"user_id": ["u1"]}))
    # Before: the one item was paired with both users.
    with pytest.raises(ValueError, match=r"2 user id\(s\) and 1 item id\(s\)"):
        rated.predict(["u1", "u2"], ["i1"])
    assert rated.predict("u1", ["i1", "i2"]).shape == (2,)


@pytest.mark.parametrize("test, message", [
    (pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["i1", "i2"], "rating": [3.0, np.nan]}),
     r"column 'rating' of test has 1 NaN or infinite rating\(s\), at rows 1: nan"),
    (pd.DataFrame({"user_id": ["u1"], "item_id": ["i1"], "rating": ["x"]}), r"1 non-numeric rating\(s\), at rows 0: 'x'"),
    (pd.DataFrame({"user_id": [], "item_id": [], "rating": []}), "test has no rows"),
    (pd.DataFrame({"user_id": ["u1"], "rating": [3.0]}), r"test is missing column\(s\) \['item_id'\]"),
])
def test_rating_metrics_refuses_ratings_it_cannot_score(rated, test, message):
    # Before: {"rmse": nan, "mae": nan} (with numpy warnings when empty), or a KeyError.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=message):
            rated.rating_metrics(test)


@pytest.mark.parametrize("name", ["ALS", "EASE", "ItemKNN", "UserKNN", "Popularity", "Item2Vec"])
def test_every_model_refuses_fit_keywords_it_does_not_take(name):
    # Before: the non-torch models' _fit took **kwargs, so ALS().fit(log, items=...) dropped the catalogue unsaid.
    import recapp.models as models

    with pytest.raises(ValueError, match=r"unknown keyword argument\(s\) \['items'\].*fit_with_items"):
        getattr(models, name)().fit(shop(), items=pd.DataFrame({"item_id": ITEMS}))
