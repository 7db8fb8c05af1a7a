"""TwoStageRanker served live: every retriever's own live scorer, then the ranker over the shopper's candidates."""
from __future__ import annotations

import numpy as np

from recapp.models.members import CompositeScorer


class TwoStageScorer(CompositeScorer):
    """TwoStageRanker live: every retriever's own live scorer, then the ranker over the shopper's candidates.

    The state keeps each retriever's state and score vector (an event costs what
    each retriever's fold costs), and the candidates' features come from the
    engine's history of the shopper. Item-side counters are not moved by other
    shoppers' events (``observe``): they stay as fitted, like the ranker's item
    features, so the scores equal :meth:`TwoStageRanker.score_history`.
    """

    def __init__(self, model):
        super().__init__(model, [m.live_scorer() for m in model.retrievers_], len(model.item_side_.stats))

    def _vectors(self, state, history) -> list:
        return [v.astype(np.float64) * s.output_scale(history) for v, s in zip(self.part_vectors(state, history), self.parts)]

    def scores(self, state, history):
        idx, w = history.weights(self.n_items)
        return self.model.rank_history(self._vectors(state, history), idx, w).astype(np.float32)

    def contributions(self, state, history, hist, w, recs):
        for j, s in enumerate(self.parts):
            got = s.contributions(state["states"][j], history, hist, s.explain_weights(history, hist), recs)
            if got is not None:
                return got
        return None


__all__ = ["TwoStageScorer"]
