"""EASE: embarrassingly shallow autoencoder (Steck, WWW 2019)."""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from recapp.interactions import Interactions
from recapp.models.base import Recommender, check_param


class EASE(Recommender):
    """Closed-form item-item model: B = I - P / diag(P) with P = (X'X + l2 I)^-1, diag(B) = 0.

    Trained on the binary user x item matrix (``binary=True``, the paper's
    setting) or on the event weights. A user's scores are their history row times
    B, so users with new events are served at once with no refit.

    Default ``l2=500``: the best of {100, 200, 500, 1000, 2000} by mean
    validation NDCG@10 over three validation splits of the ML-100K training
    split (``benchmarks/tune_baselines.py``).
    """

    history_based = True

    def __init__(self, l2: float = 500.0, binary: bool = True):
        self.l2 = l2
        self.binary = binary

    def _validate_params(self) -> None:
        check_param("l2", self.l2, low=0, low_inclusive=False)
        check_param("binary", self.binary, choices=(True, False))

    def _input(self, rows: sp.csr_matrix) -> sp.csr_matrix:
        if not self.binary:
            return rows
        b = rows.copy()
        b.data[:] = 1.0
        return b

    def _fit(self, inter: Interactions, **kwargs) -> None:
        X = self._input(inter.matrix).astype(np.float64)
        G = (X.T @ X).toarray()
        G[np.diag_indices_from(G)] += self.l2
        P = scipy.linalg.inv(G, overwrite_a=True, check_finite=False)
        B = P / (-np.diag(P))
        B[np.diag_indices_from(B)] = 0.0
        self.B_ = B.astype(np.float32)

    def _scores(self, user_rows: sp.csr_matrix, uidx: np.ndarray) -> np.ndarray:
        X = self._input(user_rows)[:, : self.B_.shape[0]]
        return np.asarray(X @ self.B_)

    def live_scorer(self):
        """A row of B per event (:class:`~recapp.models.live.ItemItemScorer`)."""
        from recapp.models.live import ItemItemScorer

        self._check_fitted()
        return ItemItemScorer(self, self.B_, binary=self.binary)

    def _state(self) -> dict:
        return {"B": self.B_}

    def _set_state(self, arrays: dict) -> None:
        self.B_ = arrays["B"]
