"""Validation holdouts carved from the training data, and NDCG@k on them.

* :func:`holdout_mask` (with :meth:`Interactions.subset
  <recapp.interactions.Interactions.subset>`; together:
  :func:`holdout_interactions`) carves a validation split out of the
  *training* Interactions (a share of each user's items, at random or the
  most recent ones), so early stopping and weight tuning never look at a test
  split.
* :func:`ndcg_from_scores` is the NDCG@k used on that split, and
  :func:`holdout_ndcg` computes it a block of users at a time.

Early stopping scores every validation user against every item once per
epoch. As one dense (users x items) matrix that is 8 GB at 100,000 shoppers
and 20,000 items, enough to have the kernel killed; :func:`holdout_ndcg`
scores the users ``batch_size`` at a time, and at most ``max_users`` of them
(a fixed, seeded sample, the same every epoch, so epochs stay comparable)
take part.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch

from recapp.interactions import Interactions
from recapp.models.base import check_param

HOLDOUT_MODES = ("random", "last")


# ---- validation split carved from the training data -----------------------------
def holdout_mask(inter: Interactions, fraction: float = 0.1, *, mode: str = "random",
                 rng: np.random.Generator | None = None, min_events: int = 3) -> np.ndarray:
    """Boolean mask over ``inter.frame`` rows that form a validation split.

    ``mode="random"`` holds out about ``fraction`` of each user's distinct items
    (every event on a held-out item goes with it, so no item is both in train and
    validation); ``mode="last"`` holds out the user's most recent ``fraction`` of
    events (at least one), the protocol sequential models are judged by. Users
    with fewer than ``min_events`` distinct items (events for ``"last"``) keep
    everything in train, so nobody loses their whole history.
    """
    check_param("fraction", fraction, low=0, high=1, low_inclusive=False)
    check_param("mode", mode, choices=HOLDOUT_MODES)
    rng = rng if rng is not None else np.random.default_rng(0)
    f = inter.frame
    u = f["uidx"].to_numpy()
    mask = np.zeros(len(f), dtype=bool)
    if mode == "last":
        indptr = inter.seq_indptr
        counts = np.diff(indptr)
        n_out = np.where(counts >= min_events, np.maximum(1, np.floor(fraction * counts)).astype(np.int64), 0)
        order = inter.seq_order  # sequence positions -> frame rows
        pos = np.arange(len(f)) - indptr[u[order]]
        keep_len = counts[u[order]] - n_out[u[order]]
        mask[order[pos >= keep_len]] = True
        return mask
    pairs = u.astype(np.int64) * inter.n_items + f["iidx"].to_numpy()
    upairs, inverse = np.unique(pairs, return_inverse=True)
    pu = upairs // inter.n_items
    counts = np.bincount(pu, minlength=inter.n_users)
    # A random key per pair, ranked within its user: the lowest ranks are held out.
    key = rng.random(len(upairs))
    order = np.lexsort((key, pu))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(upairs), dtype=np.int64)
    rank[order] = np.arange(len(upairs)) - starts[pu[order]]
    n_out = np.where(counts >= min_events, np.maximum(1, np.round(fraction * counts)).astype(np.int64), 0)
    out_pair = rank < n_out[pu]
    return out_pair[inverse]


def holdout_interactions(inter: Interactions, fraction: float = 0.1, *, mode: str = "random",
                         rng: np.random.Generator | None = None, min_events: int = 3) -> tuple[Interactions, Interactions]:
    """``(train, valid)`` Interactions carved from ``inter`` with :func:`holdout_mask`.

    ``fraction`` is the share held out for *validation* (about that share of each
    user's (user, item) pairs). Not :func:`recapp.tune.validation_split`, whose
    ``ratio`` is the share kept for training and which cuts a DataFrame.
    """
    mask = holdout_mask(inter, fraction, mode=mode, rng=rng, min_events=min_events)
    return inter.subset(~mask), inter.subset(mask)


def ndcg_from_scores(scores, train_rows: sp.csr_matrix, valid_rows: sp.csr_matrix, k: int = 10) -> float:
    """Mean NDCG@k (binary relevance) of dense ``scores`` against ``valid_rows``, train items excluded.

    ``scores`` is an (n_users, n_items) numpy array or tensor aligned with the
    rows of both matrices; users with no validation items are skipped. Range [0, 1].
    """
    s = torch.as_tensor(scores).detach().float().cpu().clone()
    n_items = s.shape[1]
    tr = train_rows[:, :n_items].tocoo()
    s[torch.as_tensor(tr.row, dtype=torch.long), torch.as_tensor(tr.col, dtype=torch.long)] = -float("inf")
    va = valid_rows[:, :n_items].tocsr()
    n_rel = np.diff(va.indptr)
    users = np.flatnonzero(n_rel > 0)
    if len(users) == 0:
        return 0.0
    kk = min(k, n_items)
    top = torch.topk(s[torch.as_tensor(users)], kk, dim=1).indices.numpy()
    # Hits: is the top item in the user's validation row?
    rows = np.repeat(np.arange(len(users)), kk)
    hits = np.asarray(va[users][rows, top.ravel()]).reshape(len(users), kk) != 0
    disc = 1.0 / np.log2(np.arange(2, kk + 2))
    dcg = (hits * disc).sum(axis=1)
    idcg = np.cumsum(disc)[np.minimum(n_rel[users], kk) - 1]
    return float(np.mean(dcg / idcg))


# ---- NDCG@k over a block of users at a time ---------------------------------------
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
