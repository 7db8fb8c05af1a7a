"""ALS: implicit-feedback matrix factorisation (Hu, Koren and Volinsky, ICDM 2008)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recapp.interactions import Interactions
from recapp.models.base import Recommender, check_param
from recapp.models.foldin import FoldInMixin, fold_in
from recapp.models.holdout_eval import holdout_ndcg, validation_users
from recapp.models.torch_base import TorchMixin, fit_epochs, torch_threads
from recapp.schema import ITEM_COL, USER_COL, require_columns

CONFIDENCES = ("linear", "log")



def check_factor_params(model) -> None:
    """Check the implicit-ALS hyper-parameters every ALS flavour shares (recapp's, Spark's and the Spark-trained one)."""
    check_param("factors", model.factors, low=1, integer=True)
    check_param("regularization", model.regularization, low=0)
    check_param("alpha", model.alpha, low=0)
    check_param("iterations", model.iterations, low=1, integer=True)


def check_confidence_params(model) -> None:
    """Check how a served ALS weighs events and folds them in (recapp's ALS and the Spark-trained one)."""
    check_param("binary", model.binary, choices=(True, False))
    check_param("confidence", model.confidence, choices=CONFIDENCES)
    check_param("update_items", model.update_items, choices=(True, False))

class ALS(FoldInMixin, TorchMixin, Recommender):
    """Weighted matrix factorisation of implicit feedback, trained by alternating least squares.

    Every (user, item) cell has a preference p = 1 if the user had any event on
    the item, else 0, and a confidence c = 1 + alpha * w, where w is the summed
    event weight (``confidence="linear"``), ``log(1 + w)`` (``"log"``), or 1 for
    every observed cell (``binary=True``); with ``binary=False`` a summed weight
    that is negative or not finite is refused (ValueError naming the pair). The loss is
    sum c (p - x_u . y_i)^2 + regularization (|X|^2 + |Y|^2); each half-step
    solves every user's (item's) normal equations with ``cg_steps`` steps of
    conjugate gradient warm-started from the last solution, as implicit does,
    vectorised over all users in torch (on ``device``).

    Served live (``live_scorer``), a shopper's factor is the same closed-form
    fold-in kept as normal equations, so an event is a rank-one update and one
    f x f solve (:class:`~recapp.models.foldin.FoldInScorer`).

    ``update(events)`` folds new events in at once: each touched user's factor
    is the exact closed-form least-squares solution against the fixed item
    factors (one f x f solve, well under a millisecond for f = 64), new users
    included; then each touched item (``update_items=True``) is re-solved
    against the user factors, which gives never-seen items a factor too.

    Defaults were tuned for MovieLens-100K with :func:`recapp.tune.grid_search`
    on a validation split carved from the training data only
    (``recapp.tune.validation_split(train, 0.75, filter_by="item", random_state=0)``),
    NDCG@10, in three rounds: factors {32, 64, 128} x regularization {3, 10, 30}
    x alpha {0.5, 1, 3} x binary {True, False}; then regularization
    {30, 100, 300} x alpha {0.1, 0.3, 0.5, 1}; then binary=False, factors
    {32, 64} x regularization {20, 30, 50} x alpha {0.3, 0.5, 0.7} x iterations
    {15, 30}. Selected: factors=32, regularization=30, alpha=0.5,
    binary=False (rating-weighted confidence), iterations=15 (validation NDCG@10
    0.284). Three validation seeds (``benchmarks/tune_baselines.py --models
    ALS``) prefer 128 factors, regularization 50, alpha 1.5 (0.2815 against
    0.2775), but on the test split that scores 0.492 against 0.491 (``--test``):
    noise, not worth four times wider factors (on the split as it was cut before
    its per-item cut was corrected to round, as recommenders does; today's grid
    prefers 256 factors, regularization 40, alpha 1: 0.2840 against 0.2808, and
    0.492 against 0.491 on the test split). ``regularization`` scales with
    the data: on much smaller logs use less (around 1).
    """

    def __init__(self, factors: int = 32, regularization: float = 30.0, alpha: float = 0.5, iterations: int = 15,
                 binary: bool = False, confidence: str = "linear", cg_steps: int = 3, update_items: bool = True,
                 early_stopping: bool = False, validation_fraction: float = 0.1, patience: int = 3,
                 random_state: int | None = 42, device: str = "auto", verbose: bool = True):
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.binary = binary
        self.confidence = confidence
        self.cg_steps = cg_steps
        self.update_items = update_items
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _validate_params(self) -> None:
        check_factor_params(self)
        check_confidence_params(self)
        check_param("cg_steps", self.cg_steps, low=1, integer=True)
        self._check_torch_params()

    # ---- confidence ----------------------------------------------------------------
    def confidence_weight(self, w: np.ndarray) -> np.ndarray:
        """alpha * transformed weight: the confidence above the baseline 1 of every cell.

        Public so that the real-time engine's incremental fold-in uses the same formula.
        """
        if self.binary:
            w = np.ones_like(w)
        elif self.confidence == "log":
            w = np.log1p(w)
        return (self.alpha * w).astype(np.float32)

    # ---- training ------------------------------------------------------------------
    def _weight_rule(self):
        # A negative confidence makes the least-squares problem unbounded (and log1p of a weight <= -1 is NaN).
        return None if self.binary else {"allow_negative": False}

    def _fit(self, inter: Interactions) -> None:
        rng = self._setup_torch()
        train, valid = self._split_for_early_stopping(inter, rng)
        dev = self.device_
        C = train.matrix.tocsr().astype(np.float32)
        C.data = self.confidence_weight(C.data)
        user_side = _CGSide(C, dev)
        item_side = _CGSide(C.T.tocsr(), dev)
        f = self.factors
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        X = (torch.randn(inter.n_users, f, generator=gen) * 0.01).to(dev)
        Y = (torch.randn(inter.n_items, f, generator=gen) * 0.01).to(dev)
        reg = float(self.regularization)
        self._X, self._Y = X, Y

        def run_epoch(epoch: int) -> float:
            user_side.solve(self._X, self._Y, reg, self.cg_steps)
            item_side.solve(self._Y, self._X, reg, self.cg_steps)
            return user_side.loss(self._X, self._Y, reg)

        validate = None
        if valid is not None:
            users = validation_users(valid.matrix)

            def validate() -> float:
                return holdout_ndcg(lambda rows: self._X[torch.as_tensor(rows, device=self._X.device)] @ self._Y.T,
                                    train.matrix, valid.matrix, users)

        self.net_ = None
        with torch_threads(self.train_threads if dev.type == "cpu" else None):
            log = fit_epochs(run_epoch, self.iterations, validate=validate,
                             snapshot=lambda: (self._X.clone(), self._Y.clone()),
                             restore=lambda st: (self._X.copy_(st[0]), self._Y.copy_(st[1])),
                             patience=self.patience, desc="ALS", verbose=self.verbose)
        self.train_log_ = log
        self.user_factors_ = self._X.cpu().numpy().astype(np.float32)
        self.item_factors_ = self._Y.cpu().numpy().astype(np.float32)
        del self._X, self._Y
        self._refresh_grams()

    def _refresh_grams(self) -> None:
        # Float64 Gram matrices for the fold-in solves, kept up to date incrementally.
        self.XtX_ = self.user_factors_.astype(np.float64).T @ self.user_factors_.astype(np.float64)
        self.YtY_ = self.item_factors_.astype(np.float64).T @ self.item_factors_.astype(np.float64)

    # ---- scoring ----------------------------------------------------------------------
    def _can_score_new_users(self) -> bool:
        return True

    def _scores(self, user_rows: sp.csr_matrix, uidx: np.ndarray) -> np.ndarray:
        X = self.user_factors_
        known = uidx < len(X)
        out = np.zeros((len(uidx), len(self.item_factors_)), dtype=np.float32)
        if known.any():
            out[known] = X[uidx[known]] @ self.item_factors_.T
        return out

    # ---- fold-in -------------------------------------------------------------------------
    def _item_side(self):
        return self.item_factors_, None

    def _fold_in_base(self, Y: np.ndarray) -> np.ndarray:
        return np.asarray(self.YtY_, dtype=np.float64) + float(self.regularization) * np.eye(Y.shape[1])

    def _fold_in_confidence(self, w: np.ndarray) -> np.ndarray:
        return self.confidence_weight(np.asarray(w, dtype=np.float64)).astype(np.float64)

    def _solve_one(self, row_idx: np.ndarray, row_w: np.ndarray, other: np.ndarray, gram: np.ndarray) -> np.ndarray:
        """Closed-form least squares for one user (item) against fixed factors ``other``."""
        ok = row_idx < len(other)
        base = gram + float(self.regularization) * np.eye(gram.shape[0])
        return fold_in(other, base, row_idx[ok], self._fold_in_confidence(row_w[ok])).astype(np.float32)

    def fold_in_user(self, uidx: int) -> np.ndarray:
        """Re-solve user ``uidx``'s factor from their current history against the item factors."""
        m = self.interactions_.matrix
        a, b = m.indptr[uidx], m.indptr[uidx + 1]
        if uidx >= len(self.user_factors_):
            grow = np.zeros((uidx + 1 - len(self.user_factors_), self.factors), dtype=np.float32)
            self.user_factors_ = np.vstack([self.user_factors_, grow])
        old = self.user_factors_[uidx].astype(np.float64)
        new = self._solve_one(m.indices[a:b], m.data[a:b], self.item_factors_, self.YtY_)
        self.user_factors_[uidx] = new
        new64 = new.astype(np.float64)
        self.XtX_ += np.outer(new64, new64) - np.outer(old, old)
        return new

    def fold_in_item(self, iidx: int) -> np.ndarray:
        """Re-solve item ``iidx``'s factor from its current users against the user factors."""
        # update() replaces interactions_ with a new object, so identity says when to rebuild.
        if getattr(self, "_csc_of", None) is not self.interactions_:
            self._csc = self.interactions_.matrix.tocsc()
            self._csc_of = self.interactions_
        m = self._csc
        if iidx >= m.shape[1]:
            return np.zeros(self.factors, dtype=np.float32)
        a, b = m.indptr[iidx], m.indptr[iidx + 1]
        if iidx >= len(self.item_factors_):
            grow = np.zeros((iidx + 1 - len(self.item_factors_), self.factors), dtype=np.float32)
            self.item_factors_ = np.vstack([self.item_factors_, grow])
        old = self.item_factors_[iidx].astype(np.float64)
        new = self._solve_one(m.indices[a:b], m.data[a:b], self.user_factors_, self.XtX_)
        self.item_factors_[iidx] = new
        new64 = new.astype(np.float64)
        self.YtY_ += np.outer(new64, new64) - np.outer(old, old)
        return new

    def update(self, events) -> "ALS":
        """Append ``events`` and fold the touched users (and items) in by closed-form solves.

        Refused as ``fit`` refuses them: a frame without user and item columns,
        and (``binary=False``) summed weights of the touched users that are
        negative or not finite. An update that fails leaves the model as it was.
        """
        self._check_fitted()
        if isinstance(events, dict):
            events = pd.DataFrame([events])
        if events is None or len(events) == 0:
            return super().update(events)
        require_columns(events, "the event frame", USER_COL, ITEM_COL)
        touched_items = pd.unique(events[ITEM_COL].to_numpy())
        # The fold-in writes factor rows and Gram matrices in place, which the base class's restore cannot undo:
        # keep the touched rows (O(touched x f)) and the f x f Grams, not a copy of every factor.
        saved = []
        for key, idx in (("user_factors_", self.interactions_.user_index(pd.unique(events[USER_COL].to_numpy()))),
                         ("item_factors_", self.interactions_.item_index(touched_items))):
            idx = idx[(idx >= 0) & (idx < len(getattr(self, key)))]
            saved.append((key, idx, getattr(self, key)[idx].copy()))
        grams = {k: getattr(self, k).copy() for k in ("XtX_", "YtY_")}
        self._touched_items = touched_items
        try:
            return super().update(events)
        except BaseException:
            for key, idx, rows in saved:      # the base class has put the attributes back; now their contents
                getattr(self, key)[idx] = rows
            self.__dict__.update(grams)
            raise
        finally:
            self.__dict__.pop("_touched_items", None)

    def _update(self, uidx: np.ndarray) -> None:
        n_items_before = len(self.item_factors_)
        for u in uidx:
            self.fold_in_user(int(u))
        items = getattr(self, "_touched_items", None)
        if items is None:
            return
        iidx = self.interactions_.item_index(items)
        iidx = iidx[iidx >= 0]
        new_items = iidx[iidx >= n_items_before]
        todo = iidx if self.update_items else new_items
        for i in np.sort(todo):
            self.fold_in_item(int(i))
        if len(new_items):
            # Users who touched a brand-new item were solved before it had a factor.
            for u in uidx:
                self.fold_in_user(int(u))

    # ---- persistence -----------------------------------------------------------------------
    def _extra_state(self) -> dict:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    def _set_extra_state(self, arrays: dict) -> None:
        X, Y = arrays["user_factors"], arrays["item_factors"]
        # Width mismatches would only fail later, in numpy, at the first update that grows the factors.
        if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != self.factors or Y.shape[1] != self.factors:
            raise ValueError(f"user_factors {X.shape} and item_factors {Y.shape} must both have factors={self.factors!r} columns")
        self.user_factors_ = X
        self.item_factors_ = Y
        self._refresh_grams()


class _CGSide:
    """One side of the ALS problem: the rows to solve and their confidences, as a torch CSR pattern."""

    def __init__(self, C: sp.csr_matrix, dev: torch.device):
        self.n = C.shape[0]
        self.nnz = C.nnz
        self.indptr = torch.as_tensor(C.indptr, dtype=torch.int64, device=dev)
        self.indices = torch.as_tensor(C.indices, dtype=torch.int64, device=dev)
        self.cw = torch.as_tensor(C.data, dtype=torch.float32, device=dev)
        self.shape = C.shape
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch calls sparse CSR "beta"
            self.pattern = self._csr(torch.ones_like(self.cw))
            self.conf = self._csr(self.cw)

    def _csr(self, values: torch.Tensor) -> torch.Tensor:
        return torch.sparse_csr_tensor(self.indptr, self.indices, values, size=self.shape)

    def _dots(self, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        # x_u . y_i on the nonzeros only (a sampled dense-dense product, never the full X Y')
        return torch.sparse.sampled_addmm(self.pattern, X, Y.T, beta=0.0).values()

    def _sparse_part(self, Y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # sum over a row's nonzeros of (c - 1) * (y . v) * y, for every row at once
        return self._csr(self._dots(v, Y) * self.cw) @ Y

    def solve(self, X: torch.Tensor, Y: torch.Tensor, reg: float, steps: int) -> None:
        """Conjugate-gradient steps on X (in place) for fixed Y."""
        YtY = Y.T @ Y
        # b_u = sum over the row of c * y (preference 1 on every nonzero)
        b = self._csr(1.0 + self.cw) @ Y

        def A(v):
            return v @ YtY + reg * v + self._sparse_part(Y, v)

        r = b - A(X)
        p = r.clone()
        rs = (r * r).sum(1)
        for _ in range(steps):
            Ap = A(p)
            denom = (p * Ap).sum(1)
            a = torch.where(denom > 0, rs / denom.clamp_min(1e-20), torch.zeros_like(rs))
            X += a[:, None] * p
            r -= a[:, None] * Ap
            rs_new = (r * r).sum(1)
            p = r + torch.where(rs > 0, rs_new / rs.clamp_min(1e-20), torch.zeros_like(rs))[:, None] * p
            rs = rs_new

    def loss(self, X: torch.Tensor, Y: torch.Tensor, reg: float) -> float:
        """Weighted squared error plus regularisation, per nonzero."""
        xy = self._dots(X, Y)
        c = 1.0 + self.cw
        total = (c * (1 - xy) ** 2 - xy**2).sum() + ((X.T @ X) * (Y.T @ Y)).sum()
        total = total + reg * ((X * X).sum() + (Y * Y).sum())
        return float(total / max(self.nnz, 1))
