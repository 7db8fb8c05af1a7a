"""ALSWR: recapp's ALS with Spark MLlib's penalty, so a Spark-trained model serves live in recapp.

Spark's implicit ALS (``pyspark.ml.recommendation.ALS``, ``implicitPrefs=True``)
solves, for each user, the normal equations of Hu, Koren and Volinsky with a
ridge that grows with the user's number of items (the "weighted-lambda" of
Zhou et al.'s ALS-WR)::

    (Y'Y + sum_i c_i y_i y_i' + regParam * n_u I) x_u = sum_i (1 + c_i) y_i,   c_i = alpha * r_ui

and the same for each item against the user factors; its last half-step solves
the users against the final item factors. :class:`recapp.models.ALS` uses one
ridge for everyone, so it cannot fold a shopper in the way Spark trained them.
:class:`ALSWR` is that ALS with Spark's ridge in every solve: ``update``'s
closed-form re-solves, ``score_history`` and the live scorer the real-time
engine uses, whose per-event rank-one update also adds ``regularization`` to
the diagonal when an event brings a new item. A training user folded in from
their history therefore gets Spark's own factor back (to float32 rounding),
and :class:`~recapp.realtime.Engine` serves the model with Spark's scores.

``ALSWR.fit`` trains the same model on one machine by exact alternating solves
(items first, then users, as Spark does); ``fit(data, user_factors=...,
item_factors=...)`` adopts factors learned elsewhere instead, which is how
:meth:`recapp.spark.SparkALS.to_recapp` builds one. This module needs neither
pyspark nor Java.

``recapp.models.REGISTRY`` lists recapp's own model families (the dashboard
offers each one), so ALSWR is declared ``listed=False`` and stays out of it; a
saved ALSWR (``model.save(path)``, recapp's safetensors + JSON format) is read
back with :func:`load`, which reads every other saved recapp model too.
"""
from __future__ import annotations

import numpy as np

from recapp.interactions import Interactions
from recapp.models.als import ALS, check_confidence_params, check_factor_params
from recapp.models import saved
from recapp.models.foldin import FoldInScorer, fold_in
from recapp.models.torch_base import fit_epochs


class WeightedFoldInScorer(FoldInScorer):
    """:class:`~recapp.models.foldin.FoldInScorer` whose ridge is ``reg`` times the number of history items.

    ``base`` is ``Y'Y`` without a ridge; ``start`` adds ``reg * n I`` for a history of
    ``n`` distinct items, and ``fold`` adds ``reg I`` when an event brings a new item.
    """

    def __init__(self, model, Y: np.ndarray, base: np.ndarray, confidence, reg: float):
        super().__init__(model, Y, base, confidence)
        self.reg = float(reg)

    def start(self, history):
        state = super().start(history)
        state["A"] = state["A"] + self.reg * len(state["c"]) * np.eye(state["A"].shape[0])
        return state

    def fold(self, state, history, item, delta, vec):
        if state["scale"] != history.scale:
            return super().fold(state, history, item, delta, vec)     # rebuilt through start()
        new_item = item not in state["c"]
        out = super().fold(state, history, item, delta, vec)
        if new_item:
            diag = np.einsum("ii->i", state["A"])
            diag += self.reg
        return out


class ALSWR(ALS, listed=False):
    """Implicit ALS with Spark MLlib's ridge: ``regularization`` times each user's (item's) number of items.

    Parameters are Spark's under recapp's names: ``factors`` (rank),
    ``regularization`` (regParam, per interaction), ``alpha``, ``iterations``
    (maxIter). Confidence is ``1 + alpha * w`` for the summed event weight
    ``w`` of a cell (``confidence="log"`` and ``binary=True`` as in
    :class:`~recapp.models.ALS`, though Spark itself only knows the linear
    form). With ``binary=False`` a summed weight that is negative or not
    finite is refused (ValueError naming the pair), as :class:`~recapp.models.ALS`
    refuses it.

    ``fit(data)`` trains by exact alternating least squares on one machine,
    starting from random unit vectors as Spark does (its per-row Python loop is
    meant for logs that fit in memory; train large logs with
    :class:`recapp.spark.SparkALS`). ``fit(data, user_factors=U,
    item_factors=V)`` adopts factors aligned with the id maps of ``data``
    instead; rows of NaN are solved (items first, then users). Refused
    (ValueError): factors of another shape, not numbers, or infinite.
    """

    def __init__(self, factors: int = 32, regularization: float = 0.3, alpha: float = 0.3, iterations: int = 15,
                 binary: bool = False, confidence: str = "linear", update_items: bool = True,
                 random_state: int | None = 42, verbose: bool = True):
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.binary = binary
        self.confidence = confidence
        self.update_items = update_items
        self.random_state = random_state
        self.verbose = verbose

    def _validate_params(self) -> None:
        check_factor_params(self)
        check_confidence_params(self)
        self._check_torch_params()

    # ---- the one solve every path uses ---------------------------------------------------
    def _solve_one(self, row_idx: np.ndarray, row_w: np.ndarray, other: np.ndarray, gram: np.ndarray) -> np.ndarray:
        """Spark's normal equations for one user (item) against fixed factors ``other``."""
        ok = row_idx < len(other)
        base = gram + self._history_ridge(int(ok.sum())) * np.eye(gram.shape[0])
        return fold_in(other, base, row_idx[ok], self._fold_in_confidence(row_w[ok])).astype(np.float32)

    def _solve_rows(self, M, other: np.ndarray, rows=None) -> np.ndarray:
        """Solve every row of the CSR matrix ``M`` (or only ``rows``) against ``other``; float32 factors."""
        other = np.asarray(other, dtype=np.float32)
        gram = other.astype(np.float64).T @ other.astype(np.float64)
        rows = range(M.shape[0]) if rows is None else rows
        out = np.zeros((M.shape[0], self.factors), dtype=np.float32)
        for r in rows:
            a, b = M.indptr[r], M.indptr[r + 1]
            out[r] = self._solve_one(M.indices[a:b], M.data[a:b], other, gram)
        return out

    # ---- training ----------------------------------------------------------------------------
    def _fit(self, inter: Interactions, user_factors=None, item_factors=None) -> None:
        rng = self._setup_torch()
        C = inter.matrix.tocsr()
        Ct = C.T.tocsr()
        f = self.factors
        if (user_factors is None) != (item_factors is None):
            raise ValueError("pass both user_factors and item_factors (factors learned elsewhere), or neither")
        if user_factors is not None:
            X = self._adopt("user_factors", user_factors, inter.n_users)
            Y = self._adopt("item_factors", item_factors, inter.n_items)
            todo_items = np.flatnonzero(np.isnan(Y).any(axis=1))
            todo_users = np.flatnonzero(np.isnan(X).any(axis=1))
            if len(todo_items):
                known = np.nan_to_num(X, nan=0.0)
                Y[todo_items] = self._solve_rows(Ct, known, todo_items)[todo_items]
            if len(todo_users):
                X[todo_users] = self._solve_rows(C, Y, todo_users)[todo_users]
            self.user_factors_, self.item_factors_ = X, Y
            self.train_log_ = None
        else:
            # Random unit vectors, as Spark initialises its factors.
            def unit(n):
                v = rng.standard_normal((n, f))
                return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

            self.user_factors_, self.item_factors_ = unit(inter.n_users), unit(inter.n_items)

            def run_epoch(epoch: int) -> float:
                self.item_factors_ = self._solve_rows(Ct, self.user_factors_)
                self.user_factors_ = self._solve_rows(C, self.item_factors_)
                return self._loss(C)

            self.train_log_ = fit_epochs(run_epoch, self.iterations, desc="ALSWR", verbose=self.verbose)
        self.net_ = None
        self._refresh_grams()

    def _adopt(self, name: str, factors, n: int) -> np.ndarray:
        try:
            a = np.array(factors, dtype=np.float32, copy=True)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be an array of numbers, one row per id of the data; got {factors!r:.80}") from None
        if a.ndim != 2 or a.shape != (n, self.factors):
            raise ValueError(f"{name} must have shape ({n}, {self.factors}) (one row per id of the data, factors "
                             f"columns); got {a.shape}")
        # NaN marks a row to solve; an infinite value (or one past float32) would make every score NaN.
        bad = np.isinf(a)
        if bad.any():
            r, c = (int(v[0]) for v in np.nonzero(bad))
            raise ValueError(f"{name} has {int(bad.any(axis=1).sum()):,} row(s) with an infinite value (or one too "
                             f"large for float32), e.g. row {r}, column {c}; give finite factors, or NaN rows to solve")
        return a

    def _loss(self, C) -> float:
        """Spark's objective per stored cell: weighted squared error plus the weighted ridge."""
        X, Y = self.user_factors_.astype(np.float64), self.item_factors_.astype(np.float64)
        rows = np.repeat(np.arange(C.shape[0]), np.diff(C.indptr))
        xy = np.einsum("nf,nf->n", X[rows], Y[C.indices])
        c = 1.0 + self._fold_in_confidence(C.data)
        total = float((c * (1.0 - xy) ** 2 - xy**2).sum() + ((X.T @ X) * (Y.T @ Y)).sum())
        n_u, n_i = np.diff(C.indptr), np.bincount(C.indices, minlength=C.shape[1])
        total += float(self.regularization) * float((n_u * (X * X).sum(1)).sum() + (n_i * (Y * Y).sum(1)).sum())
        return total / max(C.nnz, 1)

    # ---- fold-in and live serving ---------------------------------------------------------------
    def _fold_in_base(self, Y: np.ndarray) -> np.ndarray:
        # Y'Y only: the ridge depends on the history (fold_in_vector and the live scorer add it).
        return np.asarray(self.YtY_, dtype=np.float64)

    def _history_ridge(self, n_items: int) -> float:
        """Spark's weighted-lambda ridge: ``regularization`` times the number of items solved against."""
        return float(self.regularization) * n_items

    def live_scorer(self) -> WeightedFoldInScorer:
        """Rank-one updates of Spark's normal equations per event (:class:`WeightedFoldInScorer`)."""
        self._check_fitted()
        Y = self.item_factors_
        return WeightedFoldInScorer(self, Y, self._fold_in_base(Y), self._fold_in_confidence, self.regularization)


def load(path):
    """:func:`recapp.models.load` that also reads a saved :class:`ALSWR` (any other saved model as it does)."""
    return saved.load(path, unlisted=True)


__all__ = ["ALSWR", "WeightedFoldInScorer", "load"]
