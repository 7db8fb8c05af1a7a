"""Leftovers of the models' input probing: the caller's torch randomness, memory sizes as text, UserKNN ties, DP popularity.

* A torch fit seeds torch's global generator; it used to leave it reseeded, so
  an analyst's own torch code after ``model.fit`` drew other numbers.
* ``parse_bytes`` refused Kubernetes' ``8Gi`` and read ``8iB`` as 8 bytes.
* A DP release whose noisy counts were all <= 0 served the noise's order
  silently, and a refit reset ``privacy_spent_`` to a single release.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from recapp.data.synthetic import synthetic_shop
from recapp.models import ALS, BPR, MultVAE, Popularity, UserKNN, load
from recapp.models.memory import available_memory, parse_bytes


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
