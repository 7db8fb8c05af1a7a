"""NDCG@k on a validation holdout, scored a block of users at a time.

Early stopping scores every validation user against every item once per
epoch. As one dense (users x items) matrix that is 8 GB at 100,000 shoppers
and 20,000 items, enough to have the kernel killed; here the users are
scored ``batch_size`` at a time, and at most ``max_users`` of them (a fixed,
seeded sample, the same every epoch, so epochs stay comparable) take part.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp

from recapp.models.base import check_param
from recapp.models.torch_base import ndcg_from_scores


def validation_users(valid_rows: sp.csr_matrix, max_users: int = 5000, random_state: int = 0) -> np.ndarray:
    """Rows of ``valid_rows`` with at least one validation item: all, or a seeded sample of ``max_users``, sorted."""
    return sample_users(np.flatnonzero(np.diff(valid_rows.tocsr().indptr) > 0), max_users, random_state)


def sample_users(users: np.ndarray, max_users: int = 5000, random_state: int = 0) -> np.ndarray:
    """``users`` sorted, or a seeded sample of ``max_users`` of them when there are more."""
    check_param("max_users", max_users, low=1, integer=True)
    users = np.sort(np.asarray(users))
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(random_state).choice(users, max_users, replace=False))
    return users


def holdout_ndcg(score_rows: Callable[[np.ndarray], object], train_rows: sp.csr_matrix, valid_rows: sp.csr_matrix,
                 users: np.ndarray, k: int = 10, batch_size: int = 1024) -> float:
    """Mean NDCG@k over ``users`` (see :func:`validation_users`), train items excluded.

    ``score_rows(rows)`` returns the (len(rows), n_items) scores of those user
    rows, as a numpy array or tensor; it is called ``batch_size`` rows at a time,
    so memory stays at ``batch_size x n_items`` whatever the number of users.
    """
    check_param("batch_size", batch_size, low=1, integer=True)
    if len(users) == 0:
        return 0.0
    train_rows, valid_rows = train_rows.tocsr(), valid_rows.tocsr()
    total = 0.0
    for start in range(0, len(users), batch_size):
        rows = users[start:start + batch_size]
        # Every row has validation items, so the block's mean weighs each user once.
        total += ndcg_from_scores(score_rows(rows), train_rows[rows], valid_rows[rows], k) * len(rows)
    return total / len(users)
