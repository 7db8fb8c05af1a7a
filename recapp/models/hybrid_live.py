"""Hybrid served live: every member's own live scorer, blended per shopper with the model's weights."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from recapp.models.members import CompositeScorer

if TYPE_CHECKING:  # hybrid imports this module for live_scorer(); a runtime import back would be a cycle
    from recapp.models.hybrid import Hybrid


class HybridScorer(CompositeScorer):
    """Hybrid live: every member's own live scorer (fast paths included), blended per shopper.

    The state keeps each member's state and score vector, so an event costs what
    each member's fold costs plus one blend over the items.
    """

    def __init__(self, model: Hybrid):
        self.members = [m.live_scorer() for w, m in zip(model.weights_, model.members_) if w > 0]
        self.switch = model.switch_model_.live_scorer() if model._uses_switch() else None
        super().__init__(model, self.members + ([self.switch] if self.switch is not None else []),
                         max(s.n_items for s in self.members))

    def observe(self, item, t, weight, first):
        for s in self.parts:
            s.observe(item, t, weight, first)

    def _vectors(self, state, history) -> list:
        return [v * np.float32(s.output_scale(history)) for v, s in zip(self.part_vectors(state, history), self.parts)]

    def scores(self, state, history):
        vecs = self._vectors(state, history)
        k = len(self.members)
        n_hist = sum(1 for i in history.raw if i < self.n_items)
        return self.model.blend_history(vecs[:k], vecs[k] if self.switch is not None else None, n_hist).astype(np.float32)

    def contributions(self, state, history, hist, w, recs):
        total = None
        active = [x for x in self.model.weights_ if x > 0]
        for j, (s, bw) in enumerate(zip(self.members, active)):
            c = s.contributions(state["states"][j], history, hist, s.explain_weights(history, hist), recs)
            if c is None:
                continue
            v = state["vecs"][j]
            span = float(v.max() - v.min()) if v is not None and len(v) else 1.0
            part = bw * c / (span if span > 0 else 1.0)
            total = part if total is None else total + part
        return total


__all__ = ["HybridScorer"]
