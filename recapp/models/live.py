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

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recapp.models.checks import check_finite_weights, event_codes, history_arrays
from recapp.rerank import cosine_similarity_matrix

# The most recent events a live history keeps in its sequence (LiveHistory trims older ones): far beyond what a
# model reads back (sequential models: the last max_len, a few hundred; NeuMF: fold_in_max_items).
HISTORY_MAX_EVENTS = 10_000


@dataclass
class LiveHistory:
    """One shopper's history as a live caller holds it (internal item indices, time order).

    Two weights per distinct item, both divided by ``scale``: ``raw`` sums the
    event weights (a purchase after a view counts both), ``latest`` is 1 from the
    item's latest event (the binary view). With a per-event recency decay r every
    weight is multiplied by r at each event; keeping that as one ``scale`` factor
    makes an event cost O(1). ``uidx`` is the shopper's row in the model's
    training data (-1 for a shopper the model never saw).

    The event sequence (``items``, ``events``, ``times``) is bounded so one
    shopper sending millions of events (a bot, a load test) cannot grow a
    long-running engine without limit: when it reaches ``2 * HISTORY_MAX_EVENTS``
    events it is cut back to the last :data:`HISTORY_MAX_EVENTS` (so it holds
    between N and 2N once it has passed N; cutting in chunks keeps an event O(1)), ``trimmed`` counts
    the events cut and ``on_trim`` (when set) is called with each cut, so an owner keeps a running total.
    The per-item weights (``raw``, ``latest``) still count every event: trimming never changes them.
    """

    items: list = field(default_factory=list)
    events: list = field(default_factory=list)
    times: list = field(default_factory=list)
    raw: dict = field(default_factory=dict)
    latest: dict = field(default_factory=dict)
    scale: float = 1.0
    uidx: int = -1
    trimmed: int = 0
    on_trim: object = field(default=None, repr=False, compare=False)

    def _trim(self) -> None:
        cut = len(self.items) - HISTORY_MAX_EVENTS
        if cut > 0:
            del self.items[:cut], self.events[:cut], self.times[:cut]
            self.trimmed += cut
            if self.on_trim is not None:
                self.on_trim(cut)

    @classmethod
    def from_sequence(cls, items, events, times, weights, recency: float = 1.0, uidx: int = -1) -> "LiveHistory":
        """The history after a time-ordered sequence of events, built at once (same weights and sequence bound as :meth:`add`).

        Refused (ValueError): items that are not internal indices
        (:func:`~recapp.models.checks.history_arrays`), events that are not event
        codes (:func:`~recapp.models.checks.event_codes`), and times or weights
        of another length than ``items``. Weight values are taken as given: an
        engine loading a training user must not fail on one odd rating (a
        scorer that reads the summed weights refuses one it cannot use).
        """
        items, _ = history_arrays(items)
        codes = event_codes(events, len(items))
        times, weights = np.asarray(times, dtype=np.float64).ravel(), np.asarray(weights, dtype=np.float64).ravel()
        for name, values in (("times", times), ("weights", weights)):
            if len(values) != len(items):
                raise ValueError(f"{name} has {len(values)} value(s) for {len(items)} item(s); give one per event")
        # Only the sequence is cut to the last HISTORY_MAX_EVENTS; the weights below sum every event.
        cut = max(len(items) - HISTORY_MAX_EVENTS, 0)
        h = cls(items=items[cut:].tolist(), events=codes[cut:].tolist(), times=times[cut:].tolist(), uidx=int(uidx),
                trimmed=cut)
        if len(items) == 0:
            return h
        # recency ** (events since), the weights the per-event path gives.
        decay = np.power(recency, np.arange(len(items) - 1, -1, -1, dtype=np.float64)) if recency < 1.0 else np.ones(len(items))
        uniq, last = np.unique(items[::-1], return_index=True)
        h.latest = dict(zip(uniq.tolist(), decay[::-1][last].tolist()))
        uniq, inv = np.unique(items, return_inverse=True)
        summed = np.bincount(inv, weights=np.asarray(weights, dtype=np.float64) * decay, minlength=len(uniq))
        h.raw = dict(zip(uniq.tolist(), summed.tolist()))
        return h

    def _next(self, item: int, weight: float, recency: float) -> tuple[float, float | None, float]:
        """(scale, rebase factor or None, ``item``'s raw weight) once an event is added: shared by :meth:`add` and
        :meth:`summed_after`, so a check made before an event sees the very float the event stores."""
        scale, factor = (self.scale * recency if recency < 1.0 else self.scale), None
        if scale < 1e-20:
            # Rebase while raw weights (1 / scale) still fit a float32 score vector; rankings do not change.
            factor, scale = scale, 1.0
        return scale, factor, self.raw.get(item, 0.0) * (1.0 if factor is None else factor) + weight / scale

    def add(self, item: int, code: int, t: float, weight: float, recency: float = 1.0) -> tuple[float, float] | None:
        """Append one event; returns the (summed, binary) raw weight changes of ``item``, or None after a rebase.

        A rebase (every weight rescaled when ``scale`` gets tiny) changes every
        raw value, so the caller rebuilds whatever it derived from them. The
        sequence is cut back to the last :data:`HISTORY_MAX_EVENTS` events when it
        reaches twice that (see the class docstring); the weights are not.
        """
        self.items.append(item)
        self.events.append(code)
        self.times.append(t)
        if len(self.items) >= 2 * HISTORY_MAX_EVENTS:
            self._trim()
        self.scale, factor, new = self._next(item, weight, recency)
        if factor is not None:
            for d in (self.raw, self.latest):
                for key in d:
                    d[key] *= factor
        old_sum, old_bin = self.raw.get(item, 0.0), self.latest.get(item, 0.0)
        self.raw[item] = new
        self.latest[item] = 1.0 / self.scale
        return None if factor is not None else (self.raw[item] - old_sum, self.latest[item] - old_bin)

    def drop_items(self, items) -> None:
        """Forget ``items``: their weights and their events in the sequence (the decay they gave the others stays)."""
        gone = {int(i) for i in items}
        if not gone:
            return
        for i in gone:
            self.raw.pop(i, None), self.latest.pop(i, None)
        keep = [j for j, i in enumerate(self.items) if i not in gone]
        self.items, self.events, self.times = ([seq[j] for j in keep] for seq in (self.items, self.events, self.times))

    def raw_weights(self, n_items: int | None = None, binary: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(items, weights / ``scale``) of the distinct items below ``n_items``: summed, or binary (``latest``).

        Refused (ValueError, :func:`~recapp.models.checks.check_finite_weights`):
        a summed weight that is not finite, which no scorer can use (it would
        serve NaN or infinite scores); ``score_history`` refuses the same.
        """
        d = self.latest if binary else self.raw
        idx = np.fromiter(d.keys(), dtype=np.int64, count=len(d))
        w = np.fromiter(d.values(), dtype=np.float64, count=len(d))
        if n_items is not None:
            ok = idx < n_items
            idx, w = idx[ok], w[ok]
        if not binary:
            check_finite_weights(idx, w * self.scale)
        return idx, w

    def summed_weight(self, item: int) -> float:
        """The current summed event weight of ``item`` (0 if it has none); refused as :meth:`raw_weights` refuses."""
        w = self.raw.get(item, 0.0) * self.scale
        check_finite_weights([item], [w])
        return w

    def summed(self) -> tuple[np.ndarray, np.ndarray]:
        """(items, current summed weights) as they are, unchecked: for a caller that judges them
        (the engine, through :meth:`LiveScorer.unreadable`)."""
        idx = np.fromiter(self.raw.keys(), dtype=np.int64, count=len(self.raw))
        return idx, np.fromiter(self.raw.values(), dtype=np.float64, count=len(self.raw)) * self.scale

    def summed_after(self, item: int, weight: float, recency: float = 1.0) -> float:
        """``item``'s summed event weight once an event of ``weight`` is added with ``recency``, unchanged here: the
        very float :meth:`summed_weight` gives after :meth:`add` (a check made first decides as the fold-in would)."""
        scale, _, raw = self._next(item, float(weight), recency)
        return raw * scale

    def weights(self, n_items: int | None = None, binary: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(items, current weights) of the distinct items below ``n_items``: summed, or binary (``latest``)."""
        idx, w = self.raw_weights(n_items, binary)
        return idx, w * self.scale

    def has_items(self, n_items: int) -> bool:
        """Whether any event was on one of the first ``n_items`` items (the model's)."""
        return any(i < n_items for i in self.raw)

    def sequence(self, n_items: int, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """The last ``limit`` (item, event code) pairs on items below ``n_items``, oldest first."""
        items, events = self.items[-4 * limit:], self.events[-4 * limit:]
        keep = [(i, e) for i, e in zip(items, events) if i < n_items][-limit:]
        if not keep:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        a = np.asarray(keep, dtype=np.int64)
        return a[:, 0], a[:, 1]

    def recent(self, n_items: int, limit: int = 50) -> np.ndarray:
        """The most recent distinct items below ``n_items``, newest first."""
        out, seen = [], set()
        for i in reversed(self.items):
            if i < n_items and i not in seen:
                seen.add(i)
                out.append(i)
                if len(out) >= limit:
                    break
        return np.asarray(out, dtype=np.int64)


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


__all__ = ["HISTORY_MAX_EVENTS", "LiveHistory", "LiveScorer", "ItemItemScorer"]
