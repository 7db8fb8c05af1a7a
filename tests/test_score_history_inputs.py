"""score_history takes a history as internal indices and weights: what it cannot read is refused, for every model."""
import numpy as np
import pandas as pd
import pytest

from recapp.models import ALS, EASE, Hybrid, ItemKNN, TwoStageRanker
from recapp.models.base import history_arrays


@pytest.fixture(scope="module")
def log():
    rng = np.random.default_rng(0)
    n = 600
    return pd.DataFrame({"user_id": rng.integers(0, 60, n), "item_id": [f"i{j}" for j in rng.integers(0, 30, n)],
                         "timestamp": np.arange(n, dtype=float), "event": "view"})


@pytest.fixture(scope="module")
def models(log):
    return [EASE(l2=10.0).fit(log), ALS(factors=4, iterations=3, verbose=False).fit(log), ItemKNN().fit(log),
            Hybrid(models=[EASE(l2=10.0), ItemKNN()], weights=[0.5, 0.5]).fit(log)]


BAD = [
    (["i1"], None, r"internal item indices \(integers\), got dtype <U2, e\.g\. 'i1'; map item ids"),
    ([0.0, 1.0], None, "got dtype float64"),
    ([3, -1], None, r"items\[1\] = -1 is negative"),
    ([0, 1], [1.0], r"weights has 1 value\(s\) for 2 item\(s\)"),
    ([0, 1], [1.0, np.nan], r"weights\[1\] = nan is not a finite number"),
    ([0], [np.inf], r"weights\[0\] = inf"),
    ([0], ["x"], "weights must be numbers"),
]


@pytest.mark.parametrize("items, weights, message", BAD)
def test_every_model_refuses_a_history_it_cannot_read(models, items, weights, message):
    # Before: "invalid literal for int()" for ids, a numpy IndexError for short weights, and a negative
    # index or a NaN weight dropped or scored silently.
    for m in models:
        with pytest.raises(ValueError, match=message):
            m.score_history(items, weights)


def test_the_two_stage_ranker_checks_before_its_retrievers(log):
    m = TwoStageRanker(retrievers=[EASE(l2=10.0), ItemKNN()], n_candidates=10).fit(log)
    with pytest.raises(ValueError, match="is negative"):
        m.score_history([-2])
    assert np.isfinite(m.score_history([0, 1])).any()


def test_valid_histories_score_as_before(models):
    for m in models:
        n = m.interactions_.n_items
        # Indices past the model's items are items it never learned (an engine's newer ones): left out.
        assert np.allclose(m.score_history([0, 2, n + 5], [1.0, 2.0, 3.0]), m.score_history([0, 2], [1.0, 2.0]))
        assert np.allclose(m.score_history(np.array([0, 2], dtype=np.int32)), m.score_history([0, 2], [1.0, 1.0]))
        assert m.score_history([]).shape == (n,)
    assert history_arrays([], None)[0].dtype == np.int64
