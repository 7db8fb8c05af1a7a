"""Replacing what the engine scores with: the approximate-search index, and a whole model swapped in.

Kept apart from :mod:`.engine`, whose façade holds the flow of ``ingest`` and
``recommend``: a swap touches the scorer, every shopper's state, the index and
the cache, and must leave all of them on one model or the other.
"""
from __future__ import annotations

from recapp.realtime.index import FaissIndex


def item_index(ann: str | None, scorer, model) -> FaissIndex | None:
    """The approximate-search index over ``scorer``'s item vectors for ``ann="faiss"``, or None (``ann=None``: exact).

    Refused (ValueError): ``ann`` set for a model whose live scorer has no item vectors.
    """
    if ann is None:
        return None
    vectors = scorer.item_vectors()
    if vectors is None:
        raise ValueError(f"ann={ann!r} needs a model whose live scorer has item vectors (ALS, BPR, LightGCN, "
                         f"GRU4Rec, SASRec, ...); {type(model).__name__}'s has none")
    return FaissIndex(vectors)


def build_index(engine) -> None:
    """Give ``engine``'s ranker the index its ``ann`` setting asks for over the served scorer (None: exact search)."""
    engine.ranker.index = None        # and it stays None when the new one cannot be built
    engine.ranker.index = item_index(engine.ann, engine.scorer, engine.model)


def swap_model(engine, model) -> None:
    """Serve ``model`` in ``engine`` from now on; histories are kept (see :meth:`Engine.swap_model`).

    A swap that fails part-way (the scorer, the shoppers' restart or the index) serves the old model again and raises.
    """
    scorer = model.live_scorer()
    with engine._lock:
        old = engine.model, engine.scorer
        try:
            engine.model, engine.scorer = model, scorer
            scorer.add_items(len(engine.catalogue))
            engine.shoppers.restart(model.interactions_)
            build_index(engine)
        except BaseException:
            # Half swapped, the engine would score with one model through the other's state and index.
            engine.model, engine.scorer = old
            engine.shoppers.restart(old[0].interactions_)
            build_index(engine)
            raise
        finally:
            engine.cache.clear()


__all__ = ["build_index", "item_index", "swap_model"]
