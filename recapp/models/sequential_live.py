"""GRU4Rec and SASRec served live: the encoder re-reads the shopper's latest events after each one."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from recapp.models.live import LiveScorer

if TYPE_CHECKING:  # sequential imports this module for live_scorer(); a runtime import back would be a cycle
    from recapp.models.sequential import _Sequential


class SequenceScorer(LiveScorer):
    """GRU4Rec / SASRec live: the encoder re-reads the shopper's last ``max_len`` events (items and event types)."""

    def __init__(self, model: "_Sequential"):
        E = model.item_vectors()
        super().__init__(model, E.shape[0])
        self.E = np.ascontiguousarray(E, dtype=np.float32)

    def query(self, state, history):
        items, events = history.sequence(self.n_items, self.model._seq_len())
        return self.model.encode(items, events)

    def scores(self, state, history):
        return self.E @ self.query(state, history)

    def item_vectors(self):
        return self.E

    def explain_weights(self, history, hist):
        # The encoder weighs the latest events most.
        return 0.8 ** np.arange(len(hist))


__all__ = ["SequenceScorer"]
