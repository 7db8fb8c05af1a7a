"""TwoStageRanker served live: every retriever's own live scorer, then the ranker over the shopper's candidates."""
from __future__ import annotations

import numpy as np

from recapp.models.live import LiveScorer


class TwoStageScorer(LiveScorer):
    """TwoStageRanker live: every retriever's own live scorer, then the ranker over the shopper's candidates.

    The state keeps each retriever's state and score vector (an event costs what
    each retriever's fold costs), and the candidates' features come from the
    engine's history of the shopper. Item-side counters are not moved by other
    shoppers' events (``observe``): they stay as fitted, like the ranker's item
    features, so the scores equal :meth:`TwoStageRanker.score_history`.
    """

    def __init__(self, model):
        super().__init__(model, len(model.item_side_.stats))
        self.members = [m.live_scorer() for m in model.retrievers_]

    def start(self, history):
        return {"states": [s.start(history) for s in self.members], "vecs": [None] * len(self.members)}

    def fold(self, state, history, item, delta, vec):
        for j, s in enumerate(self.members):
            if item < s.n_items and not s.fold(state["states"][j], history, item, delta, state["vecs"][j]):
                state["vecs"][j] = None
        return False

    def _vectors(self, state, history) -> list:
        vecs = state["vecs"]
        for j, s in enumerate(self.members):
            if vecs[j] is None:
                vecs[j] = s.scores(state["states"][j], history)
        return [v.astype(np.float64) * s.output_scale(history) for v, s in zip(vecs, self.members)]

    def scores(self, state, history):
        idx, w = history.weights(self.n_items)
        return self.model.rank_history(self._vectors(state, history), idx, w).astype(np.float32)

    def contributions(self, state, history, hist, w, recs):
        for j, s in enumerate(self.members):
            got = s.contributions(state["states"][j], history, hist, s.explain_weights(history, hist), recs)
            if got is not None:
                return got
        return None

    def similarity(self, idx):
        for s in self.members:
            got = s.similarity(idx)
            if got is not None:
                return got
        return None


__all__ = ["TwoStageScorer"]
