"""Popularity: the baseline every recommender must beat, optionally time-decayed ("trending")."""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from recapp.interactions import Interactions
from recapp.models.base import Recommender, check_param
from recapp.models.live import LiveScorer


class DecayedCounts:
    """Per-item counts where an event weighs ``0.5 ** (age / half_life)`` (plain sums when ``half_life`` is None).

    The one definition of time-decayed popularity: the :class:`Popularity` model
    and the real-time engine's "popular now" list both count with it. Counts are
    kept relative to a reference time that moves forward with the events, so an
    event costs O(1) and the numbers stay finite.
    """

    def __init__(self, n_items: int, half_life: float | None = None):
        if half_life is not None:
            check_param("half_life", half_life, low=0, low_inclusive=False)
        self.half_life = half_life
        self.decayed = np.zeros(max(int(n_items), 1))
        self.alltime = np.zeros_like(self.decayed)       # undecayed: breaks ties among stale items
        self.t0 = 0.0
        self.now = -math.inf

    @classmethod
    def from_events(cls, items: np.ndarray, times: np.ndarray, weights: np.ndarray | None, n_items: int,
                    half_life: float | None = None) -> "DecayedCounts":
        """Counts of a whole log at once (vectorised), referenced to its latest event."""
        out = cls(n_items, half_life)
        items = np.asarray(items, dtype=np.int64)
        w = np.ones(len(items)) if weights is None else np.asarray(weights, dtype=np.float64)
        if len(items) == 0:
            return out
        t = np.asarray(times, dtype=np.float64)
        out.t0 = out.now = float(t.max())
        decay = np.ones(len(t)) if half_life is None else np.exp2((t - out.t0) / half_life)
        out.decayed[: n_items] = np.bincount(items, weights=w * decay, minlength=n_items)[: n_items]
        out.alltime[: n_items] = np.bincount(items, weights=w, minlength=n_items)[: n_items]
        return out

    def __len__(self) -> int:
        return len(self.decayed)

    def grow(self, n_items: int) -> None:
        """Make room for items up to index ``n_items - 1`` (capacity doubles)."""
        if n_items > len(self.decayed):
            extra = max(n_items, 2 * len(self.decayed)) - len(self.decayed)
            self.decayed = np.concatenate([self.decayed, np.zeros(extra)])
            self.alltime = np.concatenate([self.alltime, np.zeros(extra)])

    def add(self, item: int, t: float, weight: float = 1.0) -> None:
        """Count one event of ``weight`` on ``item`` at time ``t`` (out-of-order times are fine)."""
        self.grow(item + 1)
        self.alltime[item] += weight
        if t > self.now:
            self.now = t
        if self.half_life is None:
            self.decayed[item] += weight
            return
        e = (t - self.t0) / self.half_life
        if e > 200:
            # Rebase the reference time so the weights stay finite.
            self.decayed *= 2.0 ** (-e)
            self.t0 = t
            e = 0.0
        self.decayed[item] += weight * 2.0 ** e

    def current(self, n_items: int, idx: np.ndarray | None = None) -> np.ndarray:
        """Decayed counts as of the latest event, for the first ``n_items`` items (or the items ``idx``)."""
        self.grow(n_items)
        raw = self.decayed[:n_items] if idx is None else self.decayed[idx]
        if self.half_life is None or not math.isfinite(self.now):
            return raw.copy()
        return raw * 2.0 ** ((self.t0 - self.now) / self.half_life)

    def rank_key(self, n_items: int) -> np.ndarray:
        """Ranking key: the decayed count, ties (e.g. all stale) broken by the all-time count."""
        self.grow(n_items)
        d, a = self.decayed[:n_items], self.alltime[:n_items]
        top_d, top_a = d.max(initial=0.0), a.max(initial=0.0)
        key = d / top_d if top_d > 0 else np.zeros(n_items)
        return key + 1e-6 * (a / top_a if top_a > 0 else 0.0)


class Popularity(Recommender):
    """Recommend the items with the most distinct users.

    With ``half_life`` (seconds) each event counts ``0.5 ** (age / half_life)``
    relative to the newest event, so recent activity dominates ("trending").
    ``weighted=True`` sums event weights (a purchase counts more than a view)
    instead of counting users. Counting users (the default) scored higher on
    validation splits of ML-100K (``benchmarks/tune_baselines.py``).

    Served live, the counts follow every shopper's events with the same settings
    (:class:`DecayedCounts`); everyone gets the same list.
    """

    def __init__(self, half_life: float | None = None, weighted: bool = False):
        self.half_life = half_life
        self.weighted = weighted

    def _validate_params(self) -> None:
        if self.half_life is not None:
            check_param("half_life", self.half_life, low=0, low_inclusive=False)
        check_param("weighted", self.weighted, choices=(True, False))

    def _fit(self, inter: Interactions, **kwargs) -> None:
        self.counts_ = self._counts(inter).current(inter.n_items)

    @property
    def counts_distinct_users(self) -> bool:
        """Whether a count is the number of distinct users (no decay, no weights)."""
        return self.half_life is None and not self.weighted

    def _counts(self, inter: Interactions) -> DecayedCounts:
        f = inter.frame
        if self.counts_distinct_users:
            c = DecayedCounts(inter.n_items)
            c.decayed[: inter.n_items] = c.alltime[: inter.n_items] = inter.item_popularity()
            if len(f):
                c.now = c.t0 = float(f["timestamp"].max())
            return c
        w = f["weight"].to_numpy() if self.weighted else None
        c = DecayedCounts.from_events(f["iidx"].to_numpy(), f["timestamp"].to_numpy(), w, inter.n_items, self.half_life)
        self.reference_time_ = c.now if len(f) else 0.0
        return c

    def _can_score_new_users(self) -> bool:
        return True

    def _scores(self, user_rows: sp.csr_matrix, uidx: np.ndarray) -> np.ndarray:
        return np.tile(self.counts_, (len(uidx), 1))

    def score_history(self, items, weights=None) -> np.ndarray:
        """The counts: popularity does not depend on the history."""
        self._check_fitted()
        return np.asarray(self.counts_, dtype=np.float64).copy()

    def live_scorer(self) -> "PopularityScorer":
        """Counts that follow every event with this model's ``half_life`` and ``weighted`` settings."""
        self._check_fitted()
        return PopularityScorer(self)

    def _update(self, uidx: np.ndarray) -> None:
        self.counts_ = self._counts(self.interactions_).current(self.interactions_.n_items)
        self.n_items_ = self.interactions_.n_items

    def _fallback_scores(self, n: int) -> np.ndarray:
        full = np.zeros(self.interactions_.n_items)
        full[: len(self.counts_)] = self.counts_
        return np.tile(full, (n, 1))

    def _state(self) -> dict:
        return {"counts": self.counts_}

    def _set_state(self, arrays: dict) -> None:
        self.counts_ = arrays["counts"]


class PopularityScorer(LiveScorer):
    """The same list for everyone: the model's counts, moved on by every event (:class:`DecayedCounts`)."""

    personal = False

    def __init__(self, model: Popularity):
        super().__init__(model)
        self.counts = model._counts(model.interactions_)

    def observe(self, item, t, weight, first):
        if self.model.counts_distinct_users:
            if first:
                self.counts.add(item, t, 1.0)
        else:
            self.counts.add(item, t, weight if self.model.weighted else 1.0)

    def scores(self, state, history):
        return self.counts.current(self.n_items).astype(np.float32)

    def add_items(self, n_items: int) -> None:
        """New items are counted from their first event."""
        self.n_items = max(self.n_items, n_items)
