"""Validation NDCG scored in blocks equals the dense computation and never asks for more than a block."""
import numpy as np
import pytest
import scipy.sparse as sp

from recapp.models.holdout_eval import holdout_ndcg, ndcg_from_scores, validation_users


@pytest.fixture
def holdout():
    rng = np.random.default_rng(0)
    train = sp.random(300, 80, density=0.1, format="csr", random_state=1)
    valid = sp.random(300, 80, density=0.03, format="csr", random_state=2)
    valid = valid - valid.multiply(train > 0)        # a pair is in train or in validation, not both
    scores = rng.normal(size=(300, 80)).astype(np.float32)
    return train.tocsr(), sp.csr_matrix(valid), scores


def test_blocks_give_the_dense_figure(holdout):
    train, valid, scores = holdout
    users = validation_users(valid, max_users=10_000)
    asked = []

    def score_rows(rows):
        asked.append(len(rows))
        return scores[rows]

    blocked = holdout_ndcg(score_rows, train, valid, users, k=10, batch_size=37)
    assert blocked == pytest.approx(ndcg_from_scores(scores, train, valid, k=10), abs=1e-12)
    assert max(asked) <= 37 and sum(asked) == len(users) > 37


def test_a_sample_of_users_is_fixed_and_bounded(holdout):
    _, valid, _ = holdout
    a, b = validation_users(valid, max_users=50), validation_users(valid, max_users=50)
    assert len(a) == 50 and np.array_equal(a, b) and np.all(np.diff(a) > 0)
    assert np.all(np.diff(valid.indptr)[a] > 0)
    with pytest.raises(ValueError, match="max_users"):
        validation_users(valid, max_users=0)
