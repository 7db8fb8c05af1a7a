"""The live-scoring contract: how a fitted model scores a shopper whose history changes event by event.

Every :class:`~recapp.models.base.Recommender` hands a real-time caller (the
engine) a :class:`LiveScorer` through ``model.live_scorer()``. The scorer

(a) ``start(history)`` builds a shopper's live state from a history,
(b) ``fold(state, history, item, delta, vec)`` folds one event into that state,
(c) ``scores(state, history)`` returns the score vector over the model's items,
(d) ``contributions(...)`` says how much each history item adds to a recommended
    item (for explanations), and
(e) ``query(state, history)`` gives a vector for approximate inner-product search.

The base :class:`LiveScorer` re-scores the whole history exactly through
``model.score_history``, so every model is live; families override it with a
fast path (:class:`ItemItemScorer` adds one row per event, :class:`~recapp.models.foldin.FoldInScorer`
keeps the user's normal equations and makes a rank-one update). The caller never
asks what kind of model it has. Same spirit as implicit's ``recalculate_user``
and SAR's scoring from seed items.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recapp.models.live_history import LiveHistory
from recapp.rerank import cosine_similarity_matrix


class LiveScorer:
    """The default: exact re-scoring of the history with ``model.score_history`` after each event.

    Subclasses override what they can do faster. Score vectors are float32 over
    the model's ``n_items`` items, in "raw units"; ``output_scale`` turns them into
    the reported scores (item-item scorers keep the recency decay out of the vector).
    """

    #: False: every shopper gets the same list (popularity); the history is not used.
    personal = True
    #: True: a zero score means "no evidence" and the caller backfills from popularity.
    sparse = False
    #: True: an item's history weight is 1 from its latest event (times any recency decay);
    #: False: the event weights add up (a purchase after a view counts both).
    binary = False

    def __init__(self, model, n_items: int | None = None):
        self.model = model
        self.n_items = int(model.n_items_ if n_items is None else n_items)

    # (a) --------------------------------------------------------------------------
    def start(self, history: LiveHistory):
        """The shopper's live state built from ``history`` (None when the scorer keeps none)."""
        return None

    def unreadable(self, summed: np.ndarray) -> np.ndarray:
        """Which of the items' summed event weights ``summed`` this scorer cannot fold in (a boolean mask):
        those that are not finite, unless the scorer reads no weights (``binary``)."""
        summed = np.asarray(summed, dtype=np.float64)
        return np.zeros(summed.shape, dtype=bool) if self.binary else ~np.isfinite(summed)

    def weight_problem(self, summed: float) -> str | None:
        """Why this scorer cannot fold in an item whose summed event weight would become ``summed``, or None.

        Asked before an event changes anything (:meth:`LiveHistory.summed_after`), so a
        caller such as the engine can refuse the event instead of failing half-way.
        """
        return f"a summed event weight {summed!r} is not a finite number" if self.unreadable([summed])[0] else None

    # (b) --------------------------------------------------------------------------
    def fold(self, state, history: LiveHistory, item: int, delta: tuple, vec: np.ndarray | None) -> bool:
        """Fold one event on ``item`` into ``state`` (the history already holds it).

        ``delta`` is the (summed, binary) change of the item's raw weights.

        When ``vec`` (the cached score vector) is given and this scorer can keep it
        exact in place, do so and return True; return False to mark it stale.
        """
        return False

    # (c) --------------------------------------------------------------------------
    def scores(self, state, history: LiveHistory) -> np.ndarray:
        """The shopper's score vector over the model's items."""
        idx, w = history.weights(self.n_items)
        s = self.model.score_history(idx, w)
        return np.asarray(s, dtype=np.float32)[: self.n_items]

    def scores_many(self, states: list, histories: list) -> list[np.ndarray]:
        """Score vectors for several shoppers (a server's warm-up); subclasses may batch."""
        return [self.scores(s, h) for s, h in zip(states, histories)]

    def output_scale(self, history: LiveHistory) -> float:
        """Factor from the vector's units to reported scores."""
        return 1.0

    # (d) --------------------------------------------------------------------------
    def explain_weights(self, history: LiveHistory, hist: np.ndarray) -> np.ndarray:
        """Weights of the history items ``hist`` (newest first) in explanations."""
        d = history.latest if self.binary else history.raw
        return np.array([d.get(i, 0.0) * history.scale for i in hist.tolist()])

    def contributions(self, state, history: LiveHistory, hist: np.ndarray, w: np.ndarray, recs: np.ndarray):
        """(len(hist) x len(recs)) share of each history item in each recommended item's score, or None.

        The default uses the item vectors when the model has them (as implicit's
        ``explain``: similarity of each history item to the recommended one).
        """
        V = self.item_vectors()
        if V is None:
            return None
        return w[:, None] * (V[hist] @ V[recs].T)

    # (e) --------------------------------------------------------------------------
    def query(self, state, history: LiveHistory) -> np.ndarray | None:
        """A vector q with scores = item_vectors() @ q, for approximate search; None if there is none."""
        return None

    def detached(self) -> "LiveScorer | None":
        """A copy that scores without the model (to ship to other processes), or None where it needs the model."""
        return None

    def item_vectors(self) -> np.ndarray | None:
        """One row per model item (the search index and MMR similarity), or None."""
        return None

    def similarity(self, idx: np.ndarray) -> np.ndarray | None:
        """(len(idx) x len(idx)) item similarity for diversity re-ranking, or None."""
        V = self.item_vectors()
        return None if V is None else cosine_similarity_matrix(V[idx])

    # shared counters and the item space ------------------------------------------
    def observe(self, item: int, t: float, weight: float, first: bool) -> None:
        """Every event of every shopper (``first``: the shopper's first event on the item); default: nothing."""

    def add_items(self, n_items: int) -> None:
        """The caller's item space now holds ``n_items`` items; scorers that can rank new ones extend ``n_items``."""


class ItemItemScorer(LiveScorer):
    """scores = history weights @ M for an item-item matrix M (dense EASE ``B``, sparse ItemKNN similarity).

    An event adds ``delta`` times one row of M to the cached vector (O(n_items)
    dense, O(neighbours) sparse). The weights are used as the caller gives them,
    so a recency decay reaches the scores.
    """

    def __init__(self, model, M, binary: bool = True):
        super().__init__(model, M.shape[0])
        self.binary = bool(binary)
        self.is_sparse = sp.issparse(M)
        self.M = M.tocsr() if self.is_sparse else np.ascontiguousarray(M, dtype=np.float32)
        self.sparse = self.is_sparse
        self._csc = None

    def scores(self, state, history):
        idx, w = history.raw_weights(self.n_items, self.binary)
        if len(idx) == 0:
            return np.zeros(self.n_items, dtype=np.float32)
        if self.is_sparse:
            return np.asarray(self.M[idx].T @ w, dtype=np.float32).ravel()
        return (w @ self.M[idx]).astype(np.float32)

    def scores_many(self, states, histories):
        out = [np.zeros(self.n_items, dtype=np.float32) for _ in histories]
        parts = [h.raw_weights(self.n_items, self.binary) for h in histories]
        todo = [j for j, (idx, _) in enumerate(parts) if len(idx)]
        if not todo:
            return out
        rows = np.repeat(np.arange(len(todo)), [len(parts[j][0]) for j in todo])
        cols = np.concatenate([parts[j][0] for j in todo])
        vals = np.concatenate([parts[j][1] for j in todo])
        R = sp.csr_matrix((vals.astype(np.float32), (rows, cols)), shape=(len(todo), self.n_items))
        V = R @ self.M
        V = V.toarray() if sp.issparse(V) else np.asarray(V)
        for r, j in enumerate(todo):
            out[j] = np.ascontiguousarray(V[r], dtype=np.float32)
        return out

    def fold(self, state, history, item, delta, vec):
        if not self.binary:
            history.summed_weight(item)  # refuses a weight that would make the vector NaN or infinite
        if vec is None:
            return False
        d = delta[1] if self.binary else delta[0]
        if d != 0.0:
            if self.is_sparse:
                a, b = self.M.indptr[item], self.M.indptr[item + 1]
                vec[self.M.indices[a:b]] += np.float32(d) * self.M.data[a:b]
            else:
                vec += np.float32(d) * self.M[item]
        return True

    def output_scale(self, history):
        return history.scale

    def contributions(self, state, history, hist, w, recs):
        if not self.is_sparse:
            return w[:, None] * self.M[np.ix_(hist, recs)]
        if self._csc is None:
            self._csc = self.M.tocsc()
        C = self._csc
        out = np.zeros((len(hist), len(recs)))
        order = np.argsort(hist, kind="stable")
        hs = hist[order]
        # Column j of M holds the few neighbours of item j: match them against the sorted history.
        for c, j in enumerate(recs.tolist()):
            rows, vals = C.indices[C.indptr[j]:C.indptr[j + 1]], C.data[C.indptr[j]:C.indptr[j + 1]]
            pos = np.minimum(np.searchsorted(hs, rows), len(hs) - 1)
            hit = hs[pos] == rows
            out[order[pos[hit]], c] = vals[hit]
        return w[:, None] * out

    def similarity(self, idx):
        if self.is_sparse:
            rows = self.M[idx]
            norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
            norms[norms == 0] = 1.0
            return (rows @ rows.T).toarray() / np.outer(norms, norms)
        return cosine_similarity_matrix(self.M[idx])


__all__ = ["LiveHistory", "LiveScorer", "ItemItemScorer"]
