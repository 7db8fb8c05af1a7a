"""Inputs the classic recommenders (ALS, EASE, ItemKNN, UserKNN, Popularity) used to misread, and their mends."""
import json

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file, save_file

from recapp.models import ALS, EASE, ItemKNN, Popularity, UserKNN, load


def shop(rating=None):
    """Six shoppers with three items each out of five."""
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}", float(3 * u + j), "rating" if rating is not None else "view")
            for u in range(6) for j, i in enumerate(rng.choice(5, 3, replace=False))]
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event"])
    if rating is not None:
        df["rating"] = rating
    return df


def als(**kw):
    return ALS(**{"factors": 4, "iterations": 3, "regularization": 1.0, "verbose": False, **kw})


ONE_ITEM = pd.DataFrame({"user_id": ["a", "b", "c"], "item_id": ["x", "x", "x"]})

WEIGHT_READERS = [lambda: als(binary=False), lambda: EASE(binary=False), lambda: ItemKNN(binary=False),
                  lambda: UserKNN(binary=False), lambda: Popularity(weighted=True)]


@pytest.mark.parametrize("make", WEIGHT_READERS)
def test_models_reading_weights_refuse_an_infinite_rating(make):
    # Before: ALS and UserKNN served no list at all (NaN scores), ItemKNN and Popularity ranked on inf, EASE said
    # only "not positive definite".
    rating = np.where(np.arange(18) == 0, np.inf, 3.0)
    with pytest.raises(ValueError, match=r"1 \(user, item\) pair\(s\) have a summed event weight that is not a finite "
                                         r"number, e\.g\. user 'u0', item 'i\d': inf"):
        make().fit(shop(rating))


@pytest.mark.parametrize("make", [lambda: als(binary=True), EASE, ItemKNN, UserKNN, Popularity])
def test_models_that_ignore_weights_still_fit_an_infinite_rating(make):
    rating = np.where(np.arange(18) == 0, np.inf, 3.0)
    assert len(make().fit(shop(rating)).recommend(["u0"], k=2)) == 2


@pytest.mark.parametrize("confidence", ["linear", "log"])
def test_als_refuses_negative_weights_it_would_use_as_confidences(confidence):
    # Before: "log" gave NaN factors and an empty recommendation list; "linear" solved with negative confidences.
    rating = np.where(np.arange(18) % 2, -5.0, 3.0)
    with pytest.raises(ValueError, match=r"ALS\(binary=False\).*9 \(user, item\) pair\(s\) have a summed event weight "
                                         r"that is negative, e\.g\. user 'u0'.*>= 0, or binary=True"):
        als(binary=False, confidence=confidence).fit(shop(rating))
    assert len(als(binary=True, confidence=confidence).fit(shop(rating)).recommend(["u0"], k=2)) == 2


def test_als_update_refuses_a_negative_rating_and_changes_nothing():
    model = als(binary=False).fit(shop())
    before = model.recommend(["u0", "u1"], k=3)
    bad = pd.DataFrame({"user_id": ["u0", "new"], "item_id": ["i1", "i9"], "event": ["rating", "view"], "rating": [-9.0, None]})
    with pytest.raises(ValueError, match=r"summed event weight that is negative, e\.g\. user 'u0', item 'i1'"):
        model.update(bad)
    assert model.interactions_.n_items == 5 and model.interactions_.n_users == 6
    pd.testing.assert_frame_equal(model.recommend(["u0", "u1"], k=3), before)


def test_als_update_names_a_missing_column():
    # Before: KeyError: 'item_id'.
    with pytest.raises(Exception, match=r"the event frame is missing column\(s\) \['item_id'\]"):
        als().fit(shop()).update(pd.DataFrame({"user_id": ["u1"]}))
    with pytest.raises(TypeError, match="the event frame must be a pandas DataFrame, got Series"):
        als().fit(shop()).update(shop().iloc[0])


def test_als_update_that_cannot_solve_names_the_ridge_and_changes_nothing():
    # 4 factors over one item with no ridge: the fold-in's normal equations are singular.
    # Before: numpy's "Singular matrix", with the new events appended to the model's history.
    model = als(regularization=0.0).fit(ONE_ITEM)
    X, Y, G = model.user_factors_.copy(), model.item_factors_.copy(), model.XtX_.copy()
    with pytest.raises(ValueError, match=r"singular 4 x 4 normal equations.*regularization > 0"):
        model.update(pd.DataFrame({"user_id": ["a", "new"], "item_id": ["x", "y"]}))
    assert len(model.interactions_) == 3 and model.interactions_.n_users == 3 and model.interactions_.n_items == 1
    np.testing.assert_array_equal(model.user_factors_, X)
    np.testing.assert_array_equal(model.item_factors_, Y)
    np.testing.assert_array_equal(model.XtX_, G)
    assert not hasattr(model, "_touched_items")


def test_als_update_of_valid_events_is_unchanged_and_round_trips(tmp_path):
    model = als().fit(shop())
    model.update(pd.DataFrame({"user_id": ["new", "new", "u0"], "item_id": ["i1", "zz", "zz"]}))
    rec = model.recommend(["new", "u0"], k=3)
    assert model.item_factors_.shape == (6, 4) and not rec["fallback"].any()
    pd.testing.assert_frame_equal(load(model.save(tmp_path / "m")).recommend(["new", "u0"], k=3), rec)


def test_load_refuses_als_factors_edited_away_from_the_arrays(tmp_path):
    # Before: it loaded, and the first update that added a user stopped in numpy.vstack.
    path = als().fit(shop()).save(tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    config["params"]["factors"] = 5
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"does not match class ALS: user_factors \(6, 4\) and item_factors \(5, 4\) "
                                         r"must both have factors=5 columns"):
        load(path)


def test_load_refuses_popularity_counts_shorter_than_the_items(tmp_path):
    # A file without array_shapes (written before they were saved). Before: the last items scored -inf, unserved.
    path = Popularity().fit(shop()).save(tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    del config["array_shapes"]
    (path / "config.json").write_text(json.dumps(config))
    arrays = load_file(str(path / "state.safetensors"))
    arrays["model.counts"] = arrays["model.counts"][:3].copy()
    save_file(arrays, str(path / "state.safetensors"))
    with pytest.raises(ValueError, match=r"counts has shape \(3,\) but the model has 5 items"):
        load(path)


def test_score_history_with_no_ridge_names_the_ridge():
    # Before: numpy's "Singular matrix".
    with pytest.raises(ValueError, match="singular 4 x 4 normal equations"):
        als(regularization=0.0).fit(ONE_ITEM).score_history([0])


def test_valid_weighted_fits_score_as_before():
    rating = np.tile([1.0, 2.0, 5.0], 6)
    for model in (als(binary=False), EASE(binary=False), ItemKNN(binary=False), UserKNN(binary=False),
                  Popularity(weighted=True)):
        s = model.fit(shop(rating)).score(["u0"])
        assert np.isfinite(s.to_numpy()).all()


@pytest.mark.parametrize(("confidence", "weight", "shown"), [("log", -3.0, "nan"), ("log", -1.0, "-inf"),
                                                             ("linear", -3.0, "-0.5")])
def test_als_score_history_refuses_a_weight_with_no_positive_confidence(confidence, weight, shown):
    # Before: "log" scored every item NaN; "linear" solved with a negative confidence.
    model = als(alpha=0.5, confidence=confidence).fit(shop())
    with pytest.raises(ValueError, match=rf"weights\[1\] = {weight} gives item 2 a confidence 1 \+ c = {shown}, not above 0"):
        model.score_history([0, 2], [1.0, weight])


def test_als_score_history_of_small_negative_or_zero_weights_is_unchanged():
    model = als(alpha=0.5).fit(shop())
    y, b = model.item_factors_.astype(np.float64), model.YtY_ + np.eye(4)
    for w in ([1.0, -0.5], [0.0, 2.0]):
        c = 0.5 * np.array(w)
        A = b + (y[[0, 2]].T * c) @ y[[0, 2]]
        expected = y @ np.linalg.solve(A, y[[0, 2]].T @ (1 + c))
        np.testing.assert_allclose(model.score_history([0, 2], w), expected, rtol=1e-6)


@pytest.mark.parametrize(("items", "events", "times", "weights", "message"), [
    ([0, 1], [0], [0.0, 1.0], [1.0, 1.0], r"events has 1 code\(s\) for 2 item\(s\)"),
    ([0, 1], [0, 0], [0.0, 1.0], [1.0], r"weights has 1 value\(s\) for 2 item\(s\)"),
    ([0, 1], [0, 0], [0.0], [1.0, 1.0], r"times has 1 value\(s\) for 2 item\(s\)"),
    ([-1, 1], [0, 0], [0.0, 1.0], [1.0, 1.0], r"items\[0\] = -1 is negative"),
    ([0.5, 1], [0, 0], [0.0, 1.0], [1.0, 1.0], r"items must be the model's internal item indices \(integers\)"),
    ([0, 1], [0, 9], [0.0, 1.0], [1.0, 1.0], r"events\[1\] = 9 is not an event code"),
])
def test_live_history_from_sequence_refuses_what_it_used_to_misread(items, events, times, weights, message):
    # Before: short weights were broadcast, short events and times kept, 0.5 read as item 0, -1 kept as an item.
    from recapp.models.live import LiveHistory

    with pytest.raises(ValueError, match=message):
        LiveHistory.from_sequence(items, events, times, weights)


def test_live_history_from_sequence_of_valid_events_is_unchanged():
    from recapp.models.live import LiveHistory

    h = LiveHistory.from_sequence(np.array([0, 1, 0]), np.array([0, 3, 1], dtype=np.int8), [0, 1, 2], [1.0, 2.0, 3.0],
                                  recency=0.5, uidx=4)
    assert h.items == [0, 1, 0] and h.events == [0, 3, 1] and h.uidx == 4
    assert h.raw == {0: 1.0 * 0.25 + 3.0, 1: 2.0 * 0.5} and h.latest == {0: 1.0, 1: 0.5}
    assert LiveHistory.from_sequence([], [], [], []).raw == {}


@pytest.mark.parametrize("extra", [[], None, "x"])
def test_load_refuses_an_extra_that_is_not_an_object(extra, tmp_path):
    # Before: ALS stopped with AttributeError ("'list' object has no attribute 'get'"); EASE ignored it.
    path = als().fit(shop()).save(tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    config["extra"] = extra
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config\.json: extra must be an object"):
        load(path)


def test_load_refuses_dp_counts_without_their_release_count(tmp_path):
    # Before: it loaded and privacy_spent_ said None, as if no privacy had been spent.
    path = Popularity(epsilon=1.0, random_state=0).fit(shop()).save(tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    config["extra"] = {}
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="the state holds DP counts but extra has no n_releases"):
        load(path)
    model = Popularity(epsilon=1.0, random_state=0).fit(shop())
    assert load(model.save(tmp_path / "ok")).privacy_spent_ == (1.0, 0.0)


@pytest.mark.parametrize(("kw", "message"), [({"neighbours": 0}, r"neighbours=0 is out of range"),
                                             ({"neighbours": 2.5}, r"neighbours=2\.5 must be an integer"),
                                             ({"block": 0}, r"block=0 is out of range"),
                                             ({"shrink": -1.0}, r"shrink=-1\.0 is out of range"),
                                             ({"alpha": 2.0}, r"alpha=2\.0 is out of range")])
def test_similarity_matrix_refuses_settings_itemknn_refuses(kw, message):
    # Before: neighbours=0 gave an empty matrix, block=0 "range() arg 3 must not be zero", 2.5 a numpy TypeError.
    from recapp.models.knn import similarity_matrix

    X = ItemKNN().fit(shop()).interactions_.matrix
    with pytest.raises(ValueError, match=message):
        similarity_matrix(X, **kw)


@pytest.mark.parametrize("make", [ItemKNN, EASE, UserKNN, Popularity])
def test_an_interrupted_update_keeps_its_events_out(make):
    # Before: Ctrl-C (or any failure) inside _update left the new events in the history, so the model served a
    # shopper from events its learned state never saw, and a retried update added them twice.
    m = make().fit(shop())
    events = pd.DataFrame({"user_id": ["u0", "new"], "item_id": ["i4", "i0"], "timestamp": [100.0, 101.0]})
    before = len(m.interactions_), m.interactions_.n_users, m.recommend(["u0"], k=3)

    def interrupted(uidx):
        raise KeyboardInterrupt

    m._update = interrupted
    with pytest.raises(KeyboardInterrupt):
        m.update(events)
    del m._update
    assert (len(m.interactions_), m.interactions_.n_users) == before[:2]
    pd.testing.assert_frame_equal(m.recommend(["u0"], k=3), before[2])
    assert len(m.update(events).interactions_) == before[0] + 2


def test_a_failed_ease_refit_leaves_it_unfitted_and_holds_no_old_matrix():
    # EASE frees its items x items B before refitting so that a refit never holds two; a failed refit must not
    # keep the old one alive to restore it (that would double the peak memory of every refit).
    import gc
    import weakref

    from recapp.models import NotFittedError

    m = EASE(binary=False).fit(shop(rating=3.0))
    old = weakref.ref(m.B_)
    with pytest.raises(ValueError, match="not a finite number"):
        m.fit(shop(rating=np.where(np.arange(18) == 0, np.inf, 3.0)))
    gc.collect()
    assert old() is None
    with pytest.raises(NotFittedError):
        m.recommend(["u0"], k=3)
    assert len(m.fit(shop(rating=3.0)).recommend(["u0"], k=2)) == 2
