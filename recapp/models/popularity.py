"""Popularity: the baseline every recommender must beat, optionally time-decayed ("trending")."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recapp.interactions import Interactions
from recapp.models.base import Recommender, check_param


class Popularity(Recommender):
    """Recommend the items with the most distinct users.

    With ``half_life`` (seconds) each event counts ``0.5 ** (age / half_life)``
    relative to the newest event, so recent activity dominates ("trending").
    ``weighted=True`` sums event weights (a purchase counts more than a view)
    instead of counting users. Counting users (the default) scored higher on
    validation splits of ML-100K (``benchmarks/tune_baselines.py``).
    """

    def __init__(self, half_life: float | None = None, weighted: bool = False):
        self.half_life = half_life
        self.weighted = weighted

    def _validate_params(self) -> None:
        if self.half_life is not None:
            check_param("half_life", self.half_life, low=0, low_inclusive=False)
        check_param("weighted", self.weighted, choices=(True, False))

    def _fit(self, inter: Interactions, **kwargs) -> None:
        self.counts_ = self._counts(inter)

    def _counts(self, inter: Interactions) -> np.ndarray:
        f = inter.frame
        if self.half_life is None and not self.weighted:
            return inter.item_popularity()
        w = f["weight"].to_numpy() if self.weighted else np.ones(len(f))
        if self.half_life is not None:
            t = f["timestamp"].to_numpy()
            self.reference_time_ = float(t.max()) if len(t) else 0.0
            w = w * np.power(0.5, (self.reference_time_ - t) / self.half_life)
        return np.bincount(f["iidx"].to_numpy(), weights=w, minlength=inter.n_items)

    def _can_score_new_users(self) -> bool:
        return True

    def _scores(self, user_rows: sp.csr_matrix, uidx: np.ndarray) -> np.ndarray:
        return np.tile(self.counts_, (len(uidx), 1))

    def _update(self, uidx: np.ndarray) -> None:
        self.counts_ = self._counts(self.interactions_)
        self.n_items_ = self.interactions_.n_items

    def _fallback_scores(self, n: int) -> np.ndarray:
        full = np.zeros(self.interactions_.n_items)
        full[: len(self.counts_)] = self.counts_
        return np.tile(full, (n, 1))

    def _state(self) -> dict:
        return {"counts": self.counts_}

    def _set_state(self, arrays: dict) -> None:
        self.counts_ = arrays["counts"]
