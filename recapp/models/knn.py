"""Neighbourhood collaborative filtering: item-based and user-based k-nearest neighbours."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recapp.interactions import Interactions
from recapp.models.base import Recommender, check_param

SIMILARITIES = ("cosine", "jaccard", "asymmetric_cosine")


def _prepare(X: sp.csr_matrix, binary: bool) -> sp.csr_matrix:
    X = X.astype(np.float32).tocsr(copy=True)
    if binary:
        X.data[:] = 1.0
    return X


def similarity_matrix(X: sp.csr_matrix, *, similarity: str = "cosine", shrink: float = 0.0, alpha: float = 0.5,
                      neighbours: int = 100, block: int = 512) -> sp.csr_matrix:
    """Column-wise item similarity of ``X`` (rows are users) pruned to each item's top ``neighbours``.

    Returns a sparse (n_items x n_items) matrix S with S[i, j] the similarity of
    item i to target item j; the diagonal is zero. Computed in column blocks so a
    large catalogue never needs a dense n_items^2 array.
    """
    check_param("similarity", similarity, choices=SIMILARITIES)
    X = X.tocsc()
    if similarity == "jaccard":
        # Jaccard counts users, so it works on the binary overlap.
        X = X.copy()
        X.data[:] = 1.0
    n = X.shape[1]
    co = (X.T @ X).tocsc()
    sq = np.asarray(X.multiply(X).sum(axis=0)).ravel()
    counts = np.diff(X.indptr).astype(np.float64)
    norms = np.sqrt(sq)
    k = min(neighbours, max(n - 1, 1))
    rows, cols, vals = [], [], []
    for start in range(0, n, block):
        stop = min(start + block, n)
        C = co[:, start:stop].toarray()
        if similarity == "cosine":
            denom = np.outer(norms, norms[start:stop]) + shrink
        elif similarity == "jaccard":
            denom = counts[:, None] + counts[None, start:stop] - C + shrink
        else:
            denom = np.outer(np.power(sq, alpha), np.power(sq[start:stop], 1.0 - alpha)) + shrink
        with np.errstate(divide="ignore", invalid="ignore"):
            S = np.where(denom > 0, C / denom, 0.0)
        S[np.arange(start, stop), np.arange(stop - start)] = 0.0
        if k < n:
            idx = np.argpartition(-S, k - 1, axis=0)[:k]
        else:
            idx = np.tile(np.arange(n)[:, None], (1, stop - start))
        v = np.take_along_axis(S, idx, axis=0)
        keep = v > 0
        rows.append(idx[keep])
        cols.append((np.arange(start, stop)[None, :].repeat(idx.shape[0], axis=0))[keep])
        vals.append(v[keep])
    return sp.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


class ItemKNN(Recommender):
    """Item-based CF: a user's score for item j sums the similarities of j to the items in their history.

    ``similarity`` is ``"cosine"``, ``"jaccard"`` or ``"asymmetric_cosine"``
    (Aiolli 2013, exponent ``alpha``); ``neighbours`` keeps each item's most
    similar items; ``shrink`` damps similarities supported by few users.
    """

    history_based = True

    def __init__(self, neighbours: int = 200, similarity: str = "cosine", shrink: float = 50.0,
                 alpha: float = 0.5, binary: bool = True):
        self.neighbours = neighbours
        self.similarity = similarity
        self.shrink = shrink
        self.alpha = alpha
        self.binary = binary

    def _validate_params(self) -> None:
        check_param("neighbours", self.neighbours, low=1, integer=True)
        check_param("similarity", self.similarity, choices=SIMILARITIES)
        check_param("shrink", self.shrink, low=0)
        check_param("alpha", self.alpha, low=0, high=1)
        check_param("binary", self.binary, choices=(True, False))

    def _fit(self, inter: Interactions, **kwargs) -> None:
        X = _prepare(inter.matrix, self.binary)
        self.similarity_ = similarity_matrix(X, similarity=self.similarity, shrink=self.shrink,
                                             alpha=self.alpha, neighbours=self.neighbours)

    def _scores(self, user_rows: sp.csr_matrix, uidx: np.ndarray) -> np.ndarray:
        X = _prepare(user_rows[:, : self.similarity_.shape[0]], self.binary)
        return (X @ self.similarity_).toarray()

    def _state(self) -> dict:
        S = self.similarity_
        return {"S_data": S.data, "S_indices": S.indices, "S_indptr": S.indptr, "S_shape": np.array(S.shape)}

    def _set_state(self, a: dict) -> None:
        self.similarity_ = sp.csr_matrix((a["S_data"], a["S_indices"], a["S_indptr"]), shape=tuple(a["S_shape"]))


class UserKNN(Recommender):
    """User-based CF: a user's score for item j is the similarity-weighted vote of their nearest users.

    Similar users are found among the training users by cosine similarity of
    history rows (with ``shrink``), so a user with new events is re-matched at once.

    Defaults: the best of neighbours {50, 100, 200, 400} x shrink {0, 10, 50} by
    mean validation NDCG@10 over three validation splits of the ML-100K training
    split (``benchmarks/tune_baselines.py``).
    """

    history_based = True

    def __init__(self, neighbours: int = 200, shrink: float = 0.0, binary: bool = True):
        self.neighbours = neighbours
        self.shrink = shrink
        self.binary = binary

    def _validate_params(self) -> None:
        check_param("neighbours", self.neighbours, low=1, integer=True)
        check_param("shrink", self.shrink, low=0)
        check_param("binary", self.binary, choices=(True, False))

    def _fit(self, inter: Interactions, **kwargs) -> None:
        X = _prepare(inter.matrix, self.binary)
        self.X_ = X
        self.norms_ = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())

    def _scores(self, user_rows: sp.csr_matrix, uidx: np.ndarray) -> np.ndarray:
        R = _prepare(user_rows[:, : self.X_.shape[1]], self.binary)
        norms = np.sqrt(np.asarray(R.multiply(R).sum(axis=1)).ravel())
        S = (R @ self.X_.T).toarray() / (np.outer(norms, self.norms_) + self.shrink + 1e-12)
        # A user is not their own neighbour (known users' rows match their training row).
        for r, u in enumerate(uidx):
            if 0 <= u < S.shape[1]:
                S[r, u] = 0.0
        k = min(self.neighbours, S.shape[1])
        if k < S.shape[1]:
            cut = np.partition(S, S.shape[1] - k, axis=1)[:, S.shape[1] - k][:, None]
            S = np.where(S >= cut, S, 0.0)
        return (sp.csr_matrix(S) @ self.X_).toarray()

    def _state(self) -> dict:
        X = self.X_
        return {"X_data": X.data, "X_indices": X.indices, "X_indptr": X.indptr, "X_shape": np.array(X.shape), "norms": self.norms_}

    def _set_state(self, a: dict) -> None:
        self.X_ = sp.csr_matrix((a["X_data"], a["X_indices"], a["X_indptr"]), shape=tuple(a["X_shape"]))
        self.norms_ = a["norms"]
