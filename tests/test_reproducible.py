"""A fit is a function of its ``random_state``: the same seed gives the same scores, whatever torch's thread count.

The README's figures come from named commands and must come back on a fresh
clone; for the stochastic models that holds only if a seed fixes every draw
(shuffles, negatives, initial weights) and no kernel's result depends on how
many threads ran it. Small data and few epochs: these check repeatability,
not accuracy.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recapp.data.synthetic import synthetic_shop
from recapp.models import ALS, BPR, LightGCN, MultVAE, NeuMF
from recapp.models.torch_base import deterministic_kernels

# Small, quick settings per model (as in test_models_zoo).
QUICK = {
    BPR: dict(factors=8, n_epochs=3, batch_size=512),
    ALS: dict(factors=8, iterations=5),
    NeuMF: dict(gmf_factors=8, mlp_factors=8, layers=(16, 8), n_epochs=2),
    MultVAE: dict(hidden=32, latent=8, n_epochs=3),
    LightGCN: dict(factors=8, layers=2, n_epochs=2, batch_size=1024),
}


@pytest.fixture(scope="module")
def events():
    """A small synthetic shop's events: 120 shoppers, 80 items, 4,000 events."""
    return synthetic_shop(n_users=120, n_items=80, n_events=4000, random_state=5).events


def fitted_scores(cls, events, *, threads: int = 1, **kw) -> np.ndarray:
    """Every user's scores from ``cls`` fitted on ``events`` with torch using ``threads`` CPU threads to train."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = cls(**{**QUICK[cls], "verbose": False, "device": "cpu", **kw})
        model.train_threads = None  # train on every thread torch has, so the thread count is what varies
        model.fit(events)
        return model.score(events.user_id.unique()).to_numpy()
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("cls", list(QUICK), ids=lambda c: c.__name__)
def test_two_fits_with_the_same_random_state_give_the_same_scores(cls, events):
    a = fitted_scores(cls, events, random_state=7)
    b = fitted_scores(cls, events, random_state=7)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", list(QUICK), ids=lambda c: c.__name__)
def test_the_score_does_not_depend_on_the_thread_count(cls, events):
    one = fitted_scores(cls, events, threads=1, random_state=7)
    two = fitted_scores(cls, events, threads=2, random_state=7)
    np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-6)


def test_bpr_fits_with_the_same_seed_rank_identically_on_one_and_two_threads(events):
    # The benchmark's figure is a top-10 ranking: equal scores must give equal lists.
    one = fitted_scores(BPR, events, threads=1, random_state=3)
    two = fitted_scores(BPR, events, threads=2, random_state=3)
    np.testing.assert_array_equal(np.argsort(-one, axis=1)[:, :10], np.argsort(-two, axis=1)[:, :10])


def test_a_different_random_state_gives_different_scores(events):
    # Otherwise the tests above could not fail: the seed must reach the draws.
    assert not np.array_equal(fitted_scores(BPR, events, random_state=7), fitted_scores(BPR, events, random_state=8))


def test_deterministic_kernels_restores_the_previous_setting():
    before = torch.are_deterministic_algorithms_enabled()
    with deterministic_kernels():
        assert torch.are_deterministic_algorithms_enabled()
    assert torch.are_deterministic_algorithms_enabled() == before
    with deterministic_kernels(False):
        assert torch.are_deterministic_algorithms_enabled() == before


def test_the_accuracy_benchmark_names_its_seeds_and_threads():
    # `make bench` starts with these lines, so a figure can be re-run with the same settings.
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy.py"
    spec = importlib.util.spec_from_file_location("accuracy_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    lines = bench.run_settings({"BPR": BPR(random_state=42)}, SimpleNamespace(name="a split, seed 42"))
    text = "\n".join(lines)
    assert "seed 42" in text and "BPR=42" in text
    assert f"{torch.get_num_threads()} intra-op" in text and "OMP_NUM_THREADS=" in text and "OPENBLAS_NUM_THREADS=" in text
