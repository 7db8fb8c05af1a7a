"""Neighbourhood collaborative filtering: item-based and user-based k-nearest neighbours."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recapp.interactions import Interactions
from recapp.models.base import Recommender, check_param
from recapp.models.live import ItemItemScorer, LiveScorer

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
    large catalogue never needs a dense n_items^2 array. Refused (ValueError):
    the settings :class:`ItemKNN` refuses, and a ``block`` that is not an integer >= 1.
    """
    check_param("similarity", similarity, choices=SIMILARITIES)
    check_param("shrink", shrink, low=0)
    check_param("alpha", alpha, low=0, high=1)
    check_param("neighbours", neighbours, low=1, integer=True)
    check_param("block", block, low=1, integer=True)
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
    similar items; ``shrink`` damps similarities supported by few users. With
    ``binary=False`` a summed event weight that is not finite is refused by fit and update (ValueError).
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

    def _weight_rule(self):
        return None if self.binary else {}

    def _fit(self, inter: Interactions) -> None:
        X = _prepare(inter.matrix, self.binary)
        self.similarity_ = similarity_matrix(X, similarity=self.similarity, shrink=self.shrink,
                                             alpha=self.alpha, neighbours=self.neighbours)

    def _scores(self, user_rows: sp.csr_matrix, uidx: np.ndarray) -> np.ndarray:
        X = _prepare(user_rows[:, : self.similarity_.shape[0]], self.binary)
        return (X @ self.similarity_).toarray()

    def live_scorer(self):
        """The item's few neighbours per event (:class:`~recapp.models.live.ItemItemScorer`, sparse)."""
        self._check_fitted()
        return ItemItemScorer(self, self.similarity_, binary=self.binary)

    def _state(self) -> dict:
        S = self.similarity_
        return {"S_data": S.data, "S_indices": S.indices, "S_indptr": S.indptr, "S_shape": np.array(S.shape)}

    def _set_state(self, a: dict) -> None:
        self.similarity_ = sp.csr_matrix((a["S_data"], a["S_indices"], a["S_indptr"]), shape=tuple(a["S_shape"]))


class UserKNN(Recommender):
    """User-based CF: a user's score for item j is the similarity-weighted vote of their nearest users.

    Similar users are found among the training users by cosine similarity of
    history rows (with ``shrink``), so a user with new events is re-matched at once.
    Every user tied with the ``neighbours``-th similarity is kept (so ties can
    give more neighbours), which keeps the lists independent of the order of
    users in the log and of their ids.
    With ``binary=False`` a summed event weight that is not finite is refused by fit and update (ValueError).

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

    def _weight_rule(self):
        return None if self.binary else {}

    def _fit(self, inter: Interactions) -> None:
        X = _prepare(inter.matrix, self.binary)
        self.X_ = X
        self.norms_ = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())

    def _scores(self, user_rows: sp.csr_matrix, uidx: np.ndarray) -> np.ndarray:
        R = _prepare(user_rows[:, : self.X_.shape[1]], self.binary)
        norms = np.sqrt(np.asarray(R.multiply(R).sum(axis=1)).ravel())
        return self.vote((R @ self.X_.T).toarray(), norms, uidx)

    def vote(self, dots: np.ndarray, norms: np.ndarray, uidx) -> np.ndarray:
        """Scores from history-row dot products with every training user (rows) and the rows' norms."""
        S = np.atleast_2d(dots) / (np.outer(norms, self.norms_) + self.shrink + 1e-12)
        # A user is not their own neighbour (known users' rows match their training row).
        for r, u in enumerate(np.atleast_1d(uidx)):
            if 0 <= u < S.shape[1]:
                S[r, u] = 0.0
        k = min(self.neighbours, S.shape[1])
        if k < S.shape[1]:
            cut = np.partition(S, S.shape[1] - k, axis=1)[:, S.shape[1] - k][:, None]
            S = np.where(S >= cut, S, 0.0)
        return (sp.csr_matrix(S) @ self.X_).toarray()

    def live_scorer(self) -> "UserNeighbourScorer":
        """Dot products with every training user, one item column per event (:class:`UserNeighbourScorer`)."""
        self._check_fitted()
        return UserNeighbourScorer(self)

    def _state(self) -> dict:
        X = self.X_
        return {"X_data": X.data, "X_indices": X.indices, "X_indptr": X.indptr, "X_shape": np.array(X.shape), "norms": self.norms_}

    def _set_state(self, a: dict) -> None:
        self.X_ = sp.csr_matrix((a["X_data"], a["X_indices"], a["X_indptr"]), shape=tuple(a["X_shape"]))
        self.norms_ = a["norms"]


class UserNeighbourScorer(LiveScorer):
    """UserKNN live: the history's dot product with every training user, kept per event.

    An event adds one column of the training matrix (the item's users) to the
    dot products, so re-matching the neighbours costs O(users) per request, not a
    pass over the matrix. Scores equal ``UserKNN.score_history`` on the same history.
    """

    sparse = True

    def __init__(self, model: UserKNN):
        super().__init__(model, model.X_.shape[1])
        self.binary = bool(model.binary)
        self.Xc = model.X_.tocsc()

    def _value(self, history, item) -> float:
        return 1.0 if self.binary else history.summed_weight(item)

    def start(self, history):
        idx, w = history.weights(self.n_items)
        v = np.ones(len(idx)) if self.binary else w
        row = sp.csr_matrix((v, (np.zeros(len(idx), dtype=np.int64), idx)), shape=(1, self.n_items))
        dots = np.asarray((row @ self.model.X_.T).todense(), dtype=np.float64).ravel()
        return {"dots": dots, "sq": float(v @ v), "values": dict(zip(idx.tolist(), v.tolist())), "scale": history.scale}

    def fold(self, state, history, item, delta, vec):
        if not self.binary and state["scale"] != history.scale:
            state.update(self.start(history))
            return False
        old = state["values"].get(item, 0.0)
        new = self._value(history, item)
        if new != old:
            a, b = self.Xc.indptr[item], self.Xc.indptr[item + 1]
            state["dots"][self.Xc.indices[a:b]] += (new - old) * self.Xc.data[a:b]
            state["sq"] += new * new - old * old
            state["values"][item] = new
        return False

    def scores(self, state, history):
        norm = np.sqrt(max(state["sq"], 0.0))
        return self.model.vote(state["dots"][None, :], np.array([norm]), [history.uidx])[0].astype(np.float32)
