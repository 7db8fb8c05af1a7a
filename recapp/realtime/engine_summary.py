"""What an :class:`~recapp.realtime.Engine` holds, read-only: its sizes, default list length and counters.

Kept apart from :mod:`.engine`, whose façade holds the flow of ``ingest`` and
``recommend``: these only read the parts the engine builds (options, catalogue,
shoppers, trending, scorer, cache, refitter and the ingest counts), never change them.
"""
from __future__ import annotations


class EngineSummary:
    """The engine's sizes and counters (a base of :class:`~recapp.realtime.Engine`, which builds what they read)."""

    @property
    def k(self) -> int:
        """Default list length."""
        return self.options.k

    @property
    def n_items(self) -> int:
        """Items the engine knows (the model's plus those first seen in events or ``add_items``)."""
        return len(self.catalogue)

    @property
    def n_users(self) -> int:
        """Shoppers with state in the engine (training users are loaded when first touched)."""
        return len(self.shoppers)

    @property
    def item_ids(self) -> list:
        """External ids of every item, by internal index."""
        return list(self.catalogue.ids)

    @property
    def now_(self) -> float:
        """Event time of the latest event seen (training or live)."""
        return self.trending.now

    def stats(self) -> dict:
        """Counters: events ingested and rejected, events left out of live histories (training ones, and those held
        across swap_model: their summed weight is one the live model cannot fold in), events trimmed from the held
        histories' sequences (their weights still count), users and items, cache hits and misses, refits."""
        out = {
            "events_ingested": self.n_ingested_, "events_rejected": self.n_rejected_,
            **self.shoppers.counts(),
            "users": self.n_users, "items": self.n_items, "model_items": self.scorer.n_items,
            "cache_hits": self.cache.hits, "cache_misses": self.cache.misses, "ann": self.ann,
        }
        if self.refitter is not None:
            out.update(self.refitter.stats())
        return out

    def __repr__(self) -> str:
        return (f"Engine({type(self.model).__name__}, k={self.k}, users={self.n_users:,}, items={self.n_items:,}, "
                f"events={self.n_ingested_:,})")


__all__ = ["EngineSummary"]
