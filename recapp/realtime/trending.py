"""The engine's "popular now": time-decayed item counts moved on by every event.

The counting is :class:`recapp.models.popularity.DecayedCounts`, the same
definition the :class:`~recapp.models.Popularity` model fits with. A model
that released differentially private counts (``dp_counts_``, see
:mod:`recapp.privacy`) seeds the counters with them instead of the exact
training log, so "popular now" spends no further privacy budget; the live
events counted after that are exact (not DP).
"""
from __future__ import annotations

import numpy as np

from recapp import rerank
from recapp.interactions import Interactions
from recapp.models.popularity import DecayedCounts
from recapp.schema import TIME_COL


class Trending:
    """Decayed event counts per item (every event counts 1), seeded from the model's training log."""

    def __init__(self, inter: Interactions, half_life: float | None, released: np.ndarray | None = None):
        f = inter.frame
        if released is not None:
            # Released counts stand for the training log, as counted at its latest event.
            now = float(f[TIME_COL].max()) if len(f) else 0.0
            self.counts = DecayedCounts.from_counts(released, now, half_life)
            return
        self.counts = DecayedCounts.from_events(f["iidx"].to_numpy(), f[TIME_COL].to_numpy(dtype=np.float64), None,
                                                inter.n_items, half_life)

    @property
    def now(self) -> float:
        """Time of the latest event counted."""
        return self.counts.now

    def add(self, item: int, t: float) -> None:
        """Count one event."""
        self.counts.add(item, t, 1.0)

    def key(self, n_items: int) -> np.ndarray:
        """Ranking key over the first ``n_items`` items (decayed count, ties broken by all-time count)."""
        return self.counts.rank_key(n_items)

    def candidates(self, n_items: int, n: int, drop, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` most popular items now, leaving out ``drop`` (indices) and items outside ``mask``."""
        s = self.key(n_items)
        if drop:
            rerank.exclude(s, np.fromiter(drop, dtype=np.int64, count=len(drop)))
        if mask is not None:
            s[~mask] = -np.inf
        top = rerank.top_k(s, n)
        return top, self.counts.current(n_items, top)
