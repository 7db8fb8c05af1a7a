"""Leftovers of the models' input probing: the caller's torch randomness, memory sizes as text, UserKNN ties, DP popularity,
new users with only new items, the DP budget across epsilons, sequence lengths too large for memory.

* A torch fit seeds torch's global generator; it used to leave it reseeded, so
  an analyst's own torch code after ``model.fit`` drew other numbers.
* ``parse_bytes`` refused Kubernetes' ``8Gi`` and read ``8iB`` as 8 bytes.
* A DP release whose noisy counts were all <= 0 served the noise's order
  silently, and a refit reset ``privacy_spent_`` to a single release.
* A user added by ``update`` whose events were all on items added after fit was
  scored from an empty history and flagged ``fallback=False``.
* ``privacy_spent_`` priced every release at the current epsilon, so a
  ``set_params(epsilon=...)`` between releases rewrote what had been spent.
* SASRec built its max_len x max_len mask (and GRU4Rec its padded windows) with
  no memory check: a huge max_len failed in torch's allocator or killed the kernel.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from recapp.data.synthetic import synthetic_shop
from recapp.models import ALS, BPR, EASE, GRU4Rec, ItemKNN, MultVAE, Popularity, SASRec, UserKNN, load
from recapp.models.memory import ModelTooLargeError, available_memory, parse_bytes


@pytest.fixture(scope="module")
def events():
    return synthetic_shop(n_users=50, n_items=30, n_events=1000, random_state=5).events


# ---- 1. the caller's torch random state --------------------------------------------------
QUICK = [(BPR, dict(factors=4, n_epochs=1, verbose=False)), (ALS, dict(factors=4, iterations=1, verbose=False)),
         (MultVAE, dict(hidden=8, latent=4, n_epochs=1, verbose=False))]


@pytest.mark.parametrize("cls,kw", QUICK, ids=[c.__name__ for c, _ in QUICK])
@pytest.mark.parametrize("random_state", [0, None])
def test_a_fit_leaves_the_callers_torch_and_numpy_random_state_alone(events, cls, kw, random_state):
    torch.manual_seed(123)
    np.random.seed(7)
    want_torch, want_np = torch.rand(4), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(7)
    cls(random_state=random_state, device="cpu", **kw).fit(events)
    assert torch.equal(torch.rand(4), want_torch)          # before: the fit's seed was left in place
    assert np.array_equal(np.random.rand(3), want_np)


def test_a_seeded_fit_is_the_same_whatever_the_callers_torch_state(events):
    scores = []
    for caller_seed in (1, 2):
        torch.manual_seed(caller_seed)
        model = BPR(factors=4, n_epochs=2, random_state=3, device="cpu", verbose=False).fit(events)
        scores.append(model.score(model.interactions_.user_ids[:5]).to_numpy())
    np.testing.assert_array_equal(scores[0], scores[1])


# ---- 2. memory sizes as text ---------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("8Gi", 8 << 30), ("8 Mi", 8 << 20), ("8 GiB", 8 << 30), ("8gb", 8 << 30), ("8G", 8 << 30), ("1.5G", 3 << 29),
    (".5G", 1 << 29), ("512M", 512 << 20), ("100", 100), ("8KiB", 8 << 10),
])
def test_common_memory_sizes_are_read(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text,what", [
    ("8iB", "not a memory size"), ("8ib", "not a memory size"), ("", "not a memory size"),
    ("8XB", "not a memory size"), ("1e9", "not a memory size"), ("-1G", "negative"), ("9" * 400, "too large"),
])
def test_other_memory_sizes_are_refused_naming_the_accepted_forms(text, what):
    with pytest.raises(ValueError, match=what) as err:
        parse_bytes(text)
    assert "8Gi" in str(err.value) and "1024**3" in str(err.value)


def test_the_memory_limit_variable_reads_kubernetes_units(monkeypatch):
    monkeypatch.setenv("RECAPP_MEMORY_LIMIT", "2Mi")
    assert available_memory() <= 2 << 20


# ---- 3. UserKNN ties ------------------------------------------------------------------------
def _tied_log() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [(f"u{u:02d}", f"i{i:02d}") for u in range(40) for i in rng.choice(12, size=3, replace=False)]
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


def test_userknn_lists_do_not_depend_on_the_order_or_names_of_users():
    log = _tied_log()
    base = UserKNN(neighbours=3).fit(log).recommend(k=5).sort_values(["user_id", "rank"]).reset_index(drop=True)
    for seed in range(3):
        shuffled = UserKNN(neighbours=3).fit(log.sample(frac=1.0, random_state=seed)).recommend(k=5)
        pd.testing.assert_frame_equal(shuffled.sort_values(["user_id", "rank"]).reset_index(drop=True), base)
    # Renamed users sort in the opposite order, so their indices are reversed.
    renamed = log.assign(user_id="z" + log["user_id"].str.slice(1).map(lambda s: str(99 - int(s))))
    got = UserKNN(neighbours=3).fit(renamed).recommend(k=5)
    got["user_id"] = "u" + got["user_id"].str.slice(1).map(lambda s: f"{99 - int(s):02d}")
    pd.testing.assert_frame_equal(got.sort_values(["user_id", "rank"]).reset_index(drop=True), base)


# ---- 4. DP popularity ------------------------------------------------------------------------
TINY = pd.DataFrame({"user_id": [1, 2, 3, 4, 5, 6], "item_id": [1, 1, 2, 2, 3, 4], "timestamp": np.arange(6.0)})


def test_a_release_with_no_positive_noisy_count_warns():
    warned_any = False
    for seed in range(60):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = Popularity(epsilon=0.01, random_state=seed).fit(TINY)
        warned = [w for w in caught if "noisy counts is <= 0" in str(w.message)]
        assert bool(warned) == bool((model.dp_counts_ <= 0).all())
        if warned:
            assert "epsilon=0.01" in str(warned[0].message) and "noise" in str(warned[0].message)
            warned_any = True
    assert warned_any  # at epsilon=0.01 (noise scale 5000) some seed gives four counts <= 0


def test_a_refit_adds_to_the_privacy_spent_and_keeps_its_noise(tmp_path, events):
    model = Popularity(epsilon=0.5, random_state=4).fit(events)
    first = model.dp_counts_.copy()
    model.fit(events)
    assert model.privacy_spent_ == (1.0, 0.0)                   # before: (0.5, 0.0), as if the first fit cost nothing
    np.testing.assert_array_equal(model.dp_counts_, first)     # a seeded refit draws the same noise as before
    model.update(events.head(5))
    assert model.privacy_spent_ == (1.5, 0.0)
    assert load(model.save(tmp_path / "pop")).privacy_spent_ == (1.5, 0.0)


# ---- 5. new users whose events are all on items added after fit -------------------------------
def _shop_log() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"user_id": [f"u{u}" for u in rng.integers(0, 30, 400)],
                         "item_id": [f"i{i}" for i in rng.integers(0, 15, 400)], "timestamp": np.arange(400.0)})


NEW_USER_MODELS = {
    "EASE": lambda: EASE(), "ItemKNN": lambda: ItemKNN(), "UserKNN": lambda: UserKNN(),
    "ALS": lambda: ALS(factors=4, iterations=2, device="cpu", verbose=False),
    "SASRec": lambda: SASRec(n_epochs=1, early_stopping=False, device="cpu", verbose=False),
}


@pytest.mark.parametrize("name", sorted(NEW_USER_MODELS))
def test_a_new_user_with_only_new_items_gets_the_flagged_popularity_fallback(name):
    model = NEW_USER_MODELS[name]().fit(_shop_log())
    model.update(pd.DataFrame({"user_id": ["newbie", "newbie", "mixed"], "item_id": ["brand_new", "other_new", "i3"],
                               "timestamp": [500.0, 501.0, 502.0]}))
    recs = model.recommend(["newbie", "mixed", "nobody"], k=4, exclude_seen=False)
    flags = recs.groupby("user_id")["fallback"].agg(["all", "any"])
    assert flags.loc["newbie", "all"]            # before: False, with a list ordered from an empty history
    assert not flags.loc["mixed", "any"]         # one event on a fitted item is a history the model reads
    assert flags.loc["nobody", "all"]
    scores = model.score(["newbie", "nobody"])
    np.testing.assert_array_equal(scores.loc["newbie"].to_numpy(), scores.loc["nobody"].to_numpy())


# ---- 6. the DP budget of releases at different epsilons ---------------------------------------
def test_the_privacy_spent_adds_each_release_at_its_own_epsilon_and_delta(tmp_path, events):
    model = Popularity(epsilon=1.0, random_state=0).fit(events)
    model.set_params(epsilon=0.1).update(events.head(3))
    assert model.privacy_spent_ == pytest.approx((1.1, 0.0))   # before: (0.2, 0.0), both releases at the new epsilon
    gauss = Popularity(epsilon=0.5, delta=1e-6, mechanism="gaussian", random_state=0).fit(events)
    gauss.set_params(epsilon=2.0, delta=1e-5).fit(events)
    assert gauss.privacy_spent_ == pytest.approx((2.5, 1.1e-5))
    assert load(gauss.save(tmp_path / "gauss")).privacy_spent_ == pytest.approx((2.5, 1.1e-5))
    # Turning DP off afterwards does not give back what was spent (before: None).
    model.set_params(epsilon=None).fit(events)
    assert model.privacy_spent_ == pytest.approx((1.1, 0.0))
    assert load(model.save(tmp_path / "off")).privacy_spent_ == pytest.approx((1.1, 0.0))
    assert Popularity().fit(events).privacy_spent_ is None


def test_a_file_saved_before_the_budget_was_kept_reads_count_times_epsilon(tmp_path, events):
    model = Popularity(epsilon=0.7, random_state=0).fit(events)
    model.update(events.head(2))
    path = model.save(tmp_path / "pop")
    config = json.loads((path / "config.json").read_text())
    del config["extra"]["dp_releases"]                       # as written by the earlier version
    (path / "config.json").write_text(json.dumps(config))
    assert load(path).privacy_spent_ == (2 * 0.7, 0.0)
    config["extra"]["dp_releases"] = [[0.7, 0.0, 0]]
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"dp_releases entry \[0\.7, 0\.0, 0\] is not \[epsilon > 0, delta >= 0, count >= 1\]"):
        load(path)


# ---- 7. a max_len too large for memory ----------------------------------------------------------
SHORT = pd.DataFrame({"user_id": [1, 1, 1, 2, 2], "item_id": [1, 2, 3, 2, 3], "timestamp": np.arange(5.0)})


def test_sasrec_refuses_a_max_len_whose_attention_cannot_fit_before_allocating_it():
    model = SASRec(max_len=10**6, n_epochs=1, early_stopping=False, device="cpu", verbose=False)
    # Before: torch's allocator failed on the 4 TB mask (RuntimeError), or at smaller sizes the kernel was killed.
    with pytest.raises(ModelTooLargeError, match=r"SASRec cannot fit here: the max_len=1,000,000 \(padded training "
                                                 r"windows, causal mask and attention\).*Alternatives: a smaller max_len"):
        model.fit(SHORT)
    assert not model.is_fitted


def test_gru4rec_refuses_a_max_len_whose_padded_windows_exceed_the_memory_limit(monkeypatch):
    monkeypatch.setenv("RECAPP_MEMORY_LIMIT", "16Mi")
    with pytest.raises(ModelTooLargeError, match=r"GRU4Rec cannot fit here: the max_len=1,000,000 \(padded training windows\)"):
        GRU4Rec(max_len=10**6, n_epochs=1, early_stopping=False, device="cpu", verbose=False).fit(SHORT)
