"""Factor models served live: the shopper's vector folded in from fixed item factors.

The closed form of implicit ALS (Hu, Koren and Volinsky 2008) solved for one
shopper against the item side, kept as normal equations so that an event is a
rank-one update. ALS uses it with its own confidence and penalty; BPR, LightGCN
and RatingMF reuse their learned item factors through :class:`FoldInMixin`.
"""
from __future__ import annotations

import copy

import numpy as np

from recapp.models.base import history_arrays
from recapp.models.live import LiveScorer
from recapp.rerank import cosine_similarity_matrix


def fold_in(Y: np.ndarray, base: np.ndarray, idx: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """Closed-form implicit least squares: solve ``(base + sum_i c_i y_i y_i') x = sum_i (1 + c_i) y_i``.

    ``base`` is ``Y'Y + reg I`` (every unobserved item a zero preference with
    confidence 1); ``conf`` is each history item's confidence above that baseline.
    Refused (ValueError): normal equations that are singular, which only a ridge
    of 0 allows.
    """
    V = np.asarray(Y, dtype=np.float64)[idx]
    c = np.asarray(conf, dtype=np.float64)
    A = base + (V.T * c) @ V
    b = V.T @ (1.0 + c)
    try:
        return np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        f = A.shape[0]
        raise ValueError(f"the fold-in of a history of {len(idx)} item(s) has singular {f} x {f} normal equations: the "
                         f"item factors span fewer than {f} dimensions and the ridge does not make up for it; use a "
                         "ridge > 0 (ALS: regularization > 0) or fewer factors") from None


def check_confidences(items: np.ndarray, w: np.ndarray, conf: np.ndarray, label) -> None:
    """Refuse (ValueError) a history item whose confidence ``1 + c`` is not a finite number above 0: the fold-in has no meaning.

    ``label(j)`` names the j-th weight in the message (``weights[3]``, or the live history's item).
    """
    conf = np.asarray(conf, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(conf) & (1.0 + conf > 0))
    if bad.any():
        j = int(np.argmax(bad))
        raise ValueError(f"{label(j)} = {float(w[j])!r} gives item {int(items[j])} a confidence 1 + c = "
                         f"{1.0 + float(conf[j])!r}, {'not a finite number' if conf[j] == np.inf else 'not above 0'}; "
                         "give weights >= 0")


def _live_label(j: int) -> str:
    return "the live history's summed event weight"


class FoldInScorer(LiveScorer):
    """A factor model's user vector folded in from its fixed item factors, updated per event.

    The user factor solves :func:`fold_in` against the item factors ``Y``; the sums
    are kept per user, so an event is a rank-one update and one f x f solve, the
    same closed form as the model's own ``score_history``. ``confidence`` maps
    history weights to confidences; ``bias`` (per item) is added to every score.
    """

    def __init__(self, model, Y: np.ndarray, base: np.ndarray, confidence, bias: np.ndarray | None = None):
        Y = np.ascontiguousarray(Y, dtype=np.float32)
        super().__init__(model, Y.shape[0])
        self.Y = Y
        self.Y64 = Y.astype(np.float64)
        self.base = np.asarray(base, dtype=np.float64)
        self.confidence = confidence
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float32)[: Y.shape[0]]

    def detached(self) -> "FoldInScorer":
        """This scorer without the model: the item factors, the ridge and the confidence rule only."""
        out = copy.copy(self)
        out.model = None
        if getattr(self.confidence, "__self__", None) is self.model:
            # The same rule, bound to an unfitted copy that holds only the hyperparameters.
            out.confidence = getattr(type(self.model)(**self.model.get_params()), self.confidence.__name__)
        return out

    def _conf(self, w: float) -> float:
        return float(self.confidence(np.array([w], dtype=np.float64))[0])

    def unreadable(self, summed: np.ndarray) -> np.ndarray:
        """Summed weights whose confidence ``1 + c`` is not a finite number above 0 cannot be folded in
        (a rule that ignores weights, as a binary ALS's, reads every one)."""
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):   # log1p of a weight <= -1
            conf = np.asarray(self.confidence(np.asarray(summed, dtype=np.float64)), dtype=np.float64)
            return ~(np.isfinite(conf) & (1.0 + conf > 0))

    def weight_problem(self, summed: float) -> str | None:
        """Why ``summed`` cannot be folded in (:meth:`unreadable`), naming its confidence, or None."""
        problem = super().weight_problem(summed)
        if problem is not None and np.isfinite(summed):
            with np.errstate(invalid="ignore", divide="ignore"):
                problem = f"a summed event weight {summed!r} gives the item a confidence 1 + c = {1.0 + self._conf(summed)!r}, not a number above 0"
        return problem

    def start(self, history):
        """The shopper's normal equations; refused (ValueError) as ``score_history`` refuses the weights."""
        idx, w = history.summed()          # judged by the confidences they give: a binary rule reads none
        idx, w = idx[idx < self.n_items], w[idx < self.n_items]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            c = np.asarray(self.confidence(w), dtype=np.float64)
        check_confidences(idx, w, c, _live_label)
        V = self.Y64[idx]
        return {"A": self.base + (V.T * c) @ V, "b": V.T @ (1.0 + c), "c": dict(zip(idx.tolist(), c.tolist())),
                "scale": history.scale}

    def fold(self, state, history, item, delta, vec):
        if state["scale"] != history.scale:
            # A recency decay changed every weight: rebuild the sums (O(history x f^2)).
            state.update(self.start(history))
            return False
        old = state["c"].get(item)
        w = history.raw.get(item, 0.0) * history.scale
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            new = self._conf(w)
        # Before the sums change, so a refused event leaves the state as it was.
        check_confidences(np.array([item]), np.array([w]), np.array([new]), _live_label)
        y = self.Y64[item]
        if old is None:
            state["b"] += (1.0 + new) * y
            state["A"] += new * np.outer(y, y)
        elif new != old:
            state["b"] += (new - old) * y
            state["A"] += (new - old) * np.outer(y, y)
        state["c"][item] = new
        return False

    def query(self, state, history):
        return np.linalg.solve(state["A"], state["b"]).astype(np.float32)

    def scores(self, state, history):
        s = self.Y @ self.query(state, history)
        return s if self.bias is None else s + self.bias

    def item_vectors(self):
        return self.Y if self.bias is None else None

    def similarity(self, idx):
        return cosine_similarity_matrix(self.Y[idx])

    def contributions(self, state, history, hist, w, recs):
        return w[:, None] * (self.Y[hist] @ self.Y[recs].T)


class FoldInMixin:
    """``score_history`` and the live scorer of a factor model whose item side stays fixed.

    A shopper's vector is the regularised least-squares fold-in of their history
    against the item factors (:func:`fold_in`, the implicit-ALS objective: every
    item of the history a preference of 1 with confidence ``1 + alpha * weight``,
    every other item 0 with confidence 1, ridge ``lambda``), so a new shopper is
    served from their first event and an event costs a rank-one update. Models
    trained with another loss (BPR, LightGCN, RatingMF) reuse their learned item
    factors and item biases this way: a closed form needs no learning rate and no
    sampling, and it is exact, so live scores equal ``score_history``. Their
    ``lambda`` is ``fold_in_regularization`` times the mean of diag(Y'Y), so the
    setting does not depend on the scale of the embeddings.
    """

    #: ridge strength relative to the mean squared item-factor norm per dimension (class attribute).
    fold_in_regularization: float = 1.0
    #: confidence of a history item above the baseline 1 is ``fold_in_alpha * weight``.
    fold_in_alpha: float = 1.0
    #: whether the model's item biases are added to the folded-in scores.
    fold_in_bias: bool = True

    def _item_side(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(item factors Y, per-item bias or None) over the fitted items."""
        raise NotImplementedError

    def _fold_in_base(self, Y: np.ndarray) -> np.ndarray:
        G = Y.astype(np.float64).T @ Y.astype(np.float64)
        lam = self.fold_in_regularization * float(np.trace(G)) / max(G.shape[0], 1)
        return G + lam * np.eye(G.shape[0])

    def _fold_in_confidence(self, w: np.ndarray) -> np.ndarray:
        return self.fold_in_alpha * np.asarray(w, dtype=np.float64)

    def _history_ridge(self, n_items: int) -> float:
        """The part of the ridge that grows with a history of ``n_items`` items (none here; Spark's ALS has one)."""
        return 0.0

    def fold_in_vector(self, items, weights=None) -> np.ndarray:
        """The shopper vector folded in from a history (internal item indices, summed event weights).

        Refused (ValueError) besides what :func:`history_arrays` refuses: a weight
        whose confidence ``1 + c`` is not a number above 0 (a negative weight of a
        large enough size; with ALS's ``confidence="log"`` any weight <= -1), for
        which the least-squares fold-in has no meaning.
        """
        self._check_fitted()
        Y, _ = self._item_side()
        items, w = history_arrays(items, weights)
        ok = items < len(Y)
        base, ridge = self._fold_in_base(Y), self._history_ridge(int(ok.sum()))
        if ridge:
            base = base + ridge * np.eye(base.shape[0])
        with np.errstate(invalid="ignore", divide="ignore"):  # log1p of a weight <= -1; refused just below
            conf = np.asarray(self._fold_in_confidence(w[ok]), dtype=np.float64)
        where = np.flatnonzero(ok)
        check_confidences(items[ok], w[ok], conf, lambda j: f"weights[{int(where[j])}]")
        return fold_in(Y, base, items[ok], conf)

    def _served_side(self) -> tuple[np.ndarray, np.ndarray | None]:
        Y, bias = self._item_side()
        return Y, (bias if self.fold_in_bias else None)

    def score_history(self, items, weights=None) -> np.ndarray:
        """Scores over the fitted items for the history ``items`` (see :meth:`fold_in_vector`)."""
        Y, bias = self._served_side()
        s = Y.astype(np.float64) @ self.fold_in_vector(items, weights)
        return s if bias is None else s + bias

    def live_scorer(self) -> FoldInScorer:
        """Rank-one updates of the shopper's normal equations (:class:`FoldInScorer`)."""
        self._check_fitted()
        Y, bias = self._served_side()
        return FoldInScorer(self, Y, self._fold_in_base(Y), self._fold_in_confidence, bias)


__all__ = ["FoldInMixin", "FoldInScorer", "check_confidences", "fold_in"]
