"""Weights that update and the live scorers took in silently, CUDA-saved torch models, and SASRec's history length."""
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from recapp.models import ALS, BPR, EASE, SASRec, ItemKNN, Popularity, UserKNN, load
from recapp.models.live import LiveHistory


def shop():
    """Six shoppers with three rated items each out of five."""
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}", float(3 * u + j), "rating") for u in range(6) for j, i in enumerate(rng.choice(5, 3, replace=False))]
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event"])
    df["rating"] = 3.0
    return df


def rated(value, user="u0", item="i1"):
    return pd.DataFrame({"user_id": [user], "item_id": [item], "event": ["rating"], "rating": [value], "timestamp": [99.0]})


def als(**kw):
    return ALS(**{"factors": 4, "iterations": 3, "regularization": 0.01, "verbose": False, **kw})


WEIGHT_READERS = {"EASE": lambda: EASE(binary=False), "ItemKNN": lambda: ItemKNN(binary=False),
                  "UserKNN": lambda: UserKNN(binary=False), "Popularity": lambda: Popularity(weighted=True)}


# ---- 1. update applies fit's weight rule ------------------------------------------------------
@pytest.mark.parametrize("name", sorted(WEIGHT_READERS))
def test_update_refuses_an_infinite_rating_as_fit_does_and_changes_nothing(name):
    # Before: taken in; EASE served u0 nothing (NaN scores), ItemKNN/Popularity ranked on inf, UserKNN scored NaN.
    model = WEIGHT_READERS[name]().fit(shop())
    before = model.recommend(["u0", "u1"], k=3)
    setting = "weighted=True" if name == "Popularity" else "binary=False"
    with pytest.raises(ValueError, match=rf"{name}\({setting}\) uses event weights as amounts, but 1 \(user, item\) pair\(s\) "
                                         r"have a summed event weight that is not a finite number, e\.g\. user 'u0', item 'i1': inf"):
        model.update(rated(np.inf))
    assert len(model.interactions_) == 18
    pd.testing.assert_frame_equal(model.recommend(["u0", "u1"], k=3), before)


@pytest.mark.parametrize("name", sorted(WEIGHT_READERS))
def test_update_takes_a_negative_rating_that_fit_takes(name):
    WEIGHT_READERS[name]().fit(pd.concat([shop(), rated(-5.0)], ignore_index=True))
    updated = WEIGHT_READERS[name]().fit(shop()).update(rated(-5.0))
    assert len(updated.interactions_) == 19
    assert np.isfinite(updated.score(["u0"]).to_numpy()).all()


@pytest.mark.parametrize("make", [EASE, ItemKNN, UserKNN, Popularity, lambda: als(binary=True)])
def test_models_that_ignore_weights_still_update_with_an_infinite_rating(make):
    model = make().fit(shop()).update(rated(np.inf, user="new"))
    assert len(model.recommend(["new"], k=2)) == 2


def test_als_update_keeps_refusing_a_negative_rating():
    with pytest.raises(ValueError, match=r"ALS\(binary=False\).*summed event weight that is negative, e\.g\. user 'u0'"):
        als(binary=False).fit(shop()).update(rated(-1.0))


# ---- 2. live histories are refused as score_history refuses them ----------------------------------
def history(weight):
    return LiveHistory.from_sequence([0, 1], [4, 4], [1.0, 2.0], [3.0, weight])


@pytest.mark.parametrize("make", [lambda: als(binary=False), lambda: BPR(factors=4, n_epochs=1, verbose=False)])
def test_fold_in_scorer_refuses_a_weight_whose_confidence_is_not_above_0(make):
    # Before: the live scorer solved normal equations with a negative confidence and served what came out,
    # while score_history refused the same history.
    model = make().fit(shop())
    scorer = model.live_scorer()
    with pytest.raises(ValueError, match=r"weights\[1\] = -50\.0 gives item 1 a confidence 1 \+ c = -?\d"):
        model.score_history([0, 1], [3.0, -50.0])
    with pytest.raises(ValueError, match=r"the live history's summed event weight = -50\.0 gives item 1 a confidence "
                                         r"1 \+ c = -\d+(\.\d+)?, not above 0; give weights >= 0"):
        scorer.start(history(-50.0))
    # Per event: refused before the normal equations change.
    h = history(3.0)
    state = scorer.start(h)
    kept = scorer.scores(state, h).copy()
    h.add(2, 4, 3.0, -50.0)
    with pytest.raises(ValueError, match=r"summed event weight = -50\.0 gives item 2 a confidence"):
        scorer.fold(state, h, 2, None, None)
    np.testing.assert_array_equal(scorer.scores(state, h), kept)


_NOT_FINITE = r"the live history: 1 item\(s\) have a summed event weight that is not a finite number, e\.g\. item 1: inf"


# ALS's fold-in judges the confidence it would use (inf); the item-item and user-neighbour scorers the weight.
@pytest.mark.parametrize("make, msg", [
    (lambda: als(binary=False), r"summed event weight = inf gives item 1 a confidence 1 \+ c = inf, not a finite number"),
    (lambda: EASE(binary=False), _NOT_FINITE), (lambda: ItemKNN(binary=False), _NOT_FINITE),
    (lambda: UserKNN(binary=False), _NOT_FINITE)])
def test_live_scorers_refuse_an_infinite_summed_weight(make, msg):
    # Before: NaN or infinite scores (items ranked on inf).
    scorer = make().fit(shop()).live_scorer()
    with pytest.raises(ValueError, match=msg):
        scorer.scores(scorer.start(history(np.inf)), history(np.inf))
    h = history(3.0)
    state = scorer.start(h)
    vec = scorer.scores(state, h).copy()
    delta = h.add(1, 4, 3.0, np.inf)
    with pytest.raises(ValueError, match=msg):
        scorer.fold(state, h, 1, delta, vec)
    assert np.isfinite(vec).all()


@pytest.mark.parametrize("make", [lambda: als(binary=False), lambda: EASE(binary=False), lambda: UserKNN(binary=False)])
def test_live_scores_of_an_accepted_history_equal_score_history(make):
    model = make().fit(shop())
    scorer = model.live_scorer()
    h = history(-1.0)  # negative, but its confidence (ALS: 1 - 0.5) is above 0
    np.testing.assert_allclose(scorer.scores(scorer.start(h), h), model.score_history([0, 1], [3.0, -1.0]), rtol=1e-4, atol=1e-5)


def test_a_binary_live_scorer_still_serves_a_history_with_an_odd_weight():
    model = EASE().fit(shop())
    scorer = model.live_scorer()
    h = history(np.inf)
    np.testing.assert_allclose(scorer.scores(scorer.start(h), h), model.score_history([0, 1]), rtol=1e-5, atol=1e-6)


# ---- 3. a model saved on a GPU loads on this machine ---------------------------------------------------
def seq_shop():
    rng = np.random.default_rng(1)
    rows = [(f"u{u}", f"i{rng.integers(8)}", float(20 * u + j), "view") for u in range(6) for j in range(12)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event"])


def sasrec(**kw):
    return SASRec(**{"embedding_dim": 8, "n_layers": 1, "max_len": 4, "n_epochs": 1, "early_stopping": False,
                     "verbose": False, **kw})


def cuda_devices():
    return ["cuda:99"] + ([] if torch.cuda.is_available() else ["cuda", "cuda:0"])


@pytest.mark.parametrize("device", cuda_devices())
@pytest.mark.parametrize("make", [lambda: BPR(factors=4, n_epochs=1, verbose=False), sasrec, lambda: als(binary=False)])
def test_a_model_saved_with_a_cuda_device_loads_here_on_auto(tmp_path, make, device):
    # Before: "params do not fit class ...: device='cuda' but torch sees no CUDA GPU" - the model could not be loaded.
    data = seq_shop()
    model = make().fit(data)
    path = model.save(tmp_path / "m")
    cfg = json.loads((path / "config.json").read_text())
    cfg["params"]["device"] = device
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.warns(UserWarning, match=rf"saved with device='{device}', which this machine cannot use .* loaded with "
                                         r"device='auto'"):
        loaded = load(path)
    assert loaded.device == "auto"
    assert getattr(loaded, "device_", torch.device("cpu")).type == ("cuda" if torch.cuda.is_available() else "cpu")
    users = data["user_id"].unique()[:3]
    np.testing.assert_allclose(loaded.score(users).to_numpy(), model.score(users).to_numpy(), rtol=1e-4, atol=1e-5)


def test_a_usable_device_is_loaded_as_saved_without_a_warning(tmp_path):
    path = BPR(factors=4, n_epochs=1, verbose=False, device="cpu").fit(shop()).save(tmp_path / "m")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load(path).device == "cpu"


# ---- 4. SASRec reads the most recent events, as many as it was fitted for -------------------------------
@pytest.fixture(scope="module")
def fitted_sasrec():
    return sasrec().fit(seq_shop())


LONG = np.array([0, 1, 2, 3, 4, 5, 6, 7, 0, 1])


def test_sasrec_scores_a_long_history_by_its_most_recent_events(fitted_sasrec):
    m = fitted_sasrec
    recent = m.score_history(LONG[-4:])
    np.testing.assert_allclose(m.score_history(LONG), recent, rtol=1e-5, atol=1e-6)
    scorer = m.live_scorer()
    h = LiveHistory.from_sequence(LONG, np.zeros(10, dtype=int), np.arange(10.0), np.ones(10))
    np.testing.assert_allclose(scorer.scores(None, h), recent, rtol=1e-5, atol=1e-5)
    assert not np.allclose(m.score_history(LONG[-5:-1]), recent)  # the order matters, so the window is the newest


def test_sasrec_max_len_changed_after_fit_takes_effect_at_the_next_fit(fitted_sasrec):
    # Before: RuntimeError "The size of tensor a (10) must match the size of tensor b (4)", naming nothing.
    m = sasrec().fit(seq_shop())
    scorer = m.live_scorer()
    recent, ranked = m.score_history(LONG[-4:]), m.recommend(["u0", "u1"], k=3)
    m.set_params(max_len=10)
    np.testing.assert_allclose(m.score_history(LONG), recent, rtol=1e-5, atol=1e-6)
    h = LiveHistory.from_sequence(LONG, np.zeros(10, dtype=int), np.arange(10.0), np.ones(10))
    np.testing.assert_allclose(scorer.scores(None, h), recent, rtol=1e-5, atol=1e-5)
    pd.testing.assert_frame_equal(m.recommend(["u0", "u1"], k=3), ranked)
    assert m.fit(seq_shop()).net_config_["max_len"] == 10


def test_a_saved_sasrec_whose_config_max_len_was_edited_still_scores(tmp_path, fitted_sasrec):
    path = fitted_sasrec.save(tmp_path / "s")
    cfg = json.loads((path / "config.json").read_text())
    cfg["params"]["max_len"] = 50
    (path / "config.json").write_text(json.dumps(cfg))
    np.testing.assert_allclose(load(path).score_history(LONG), fitted_sasrec.score_history(LONG), rtol=1e-5, atol=1e-6)
