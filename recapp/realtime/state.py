"""Per-shopper state: the history, what to exclude, the model scorer's state and a cached score vector."""
from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from recapp.models.live import LiveHistory, LiveScorer
from recapp.realtime.cache import plain

log = logging.getLogger(__name__)

# Logged the first time each kind of history holds items the live scorer cannot fold in (then only counted).
_UNREAD = {
    "training": "the live model cannot fold in some training users' event weights (the first: user %r, item %r); "
                "those items are left out of their live history (engine.stats()['training_events_unread'] counts them)",
    "swap": "the swapped-in model cannot fold in the summed event weights of some items held from before the swap "
            "(the first: user %r, item %r); they are left out of the live history and still never recommended "
            "again when consumed (engine.stats()['events_unread_after_swap'] counts them)",
}


@dataclass
class UserState:
    """What the engine knows about one shopper (internal item indices)."""

    history: LiveHistory
    consumed: set = field(default_factory=set)     # purchased (or rated) items: never recommended again
    seen: set = field(default_factory=set)         # every item with an event
    state: object = None                           # the scorer's own state (from LiveScorer.start)
    vec: np.ndarray | None = None                  # cached score vector (scorer units), None = stale
    generation: int = 0                            # the model generation ``state`` was built for


def _hashable(v) -> bool:
    try:
        hash(v)
    except TypeError:
        return False
    return True


class Shoppers:
    """Every shopper's :class:`UserState`.

    Training users are loaded from the model's Interactions when first touched
    (vectorised, no per-event loop); score vectors live in a bounded LRU so a
    large audience does not hold one vector each. ``item_ids`` is the engine's id
    list by internal index (items added live included), which the warnings name items by.
    """

    def __init__(self, inter, exclude_codes: frozenset, recency: float, max_vectors: int, item_ids: list):
        self.inter = inter
        # The engine's list, appended to in place as items arrive: the model's ids stop at its own catalogue.
        self.item_ids = item_ids
        self.exclude_codes = exclude_codes
        self.recency = float(recency)
        self.max_vectors = int(max_vectors)
        self.users: dict = {}
        self._pos: dict = {v: i for i, v in enumerate(inter.user_ids.tolist())}
        self._weights = inter.frame["weight"].to_numpy(dtype=np.float64)[inter.seq_order]
        self._lru: OrderedDict = OrderedDict()
        self.generation = 0
        self.unread = dict.fromkeys(_UNREAD, 0)   # events left out of live histories: the live model cannot read their weight
        self.n_trimmed = 0                        # events cut from the held histories' sequences (reported by LiveHistory)
        self._warned: set = set()

    def __len__(self) -> int:
        return len(self.users)

    def counts(self) -> dict:
        """Events left out of live histories (training ones, and those held across a model swap, counted in the
        held sequence: their summed weight is one the live model cannot fold in), and events cut from the held
        histories' sequences (:class:`LiveHistory` keeps the most recent ``HISTORY_MAX_EVENTS``; their weights
        still count every event)."""
        return {"training_events_unread": self.unread["training"], "events_unread_after_swap": self.unread["swap"],
                "history_events_trimmed": self.n_trimmed}

    def _count_trim(self, cut: int) -> None:
        self.n_trimmed += cut

    def training_index(self, user) -> int:
        """The user's row in the model's training data, or -1."""
        return self._pos.get(user, -1) if _hashable(user) else -1

    def get(self, user, scorer: LiveScorer, create: bool) -> UserState | None:
        """The user's state; a training user is loaded, a new one created when ``create``. A state built for an
        earlier model is rebuilt, less the items whose summed weight ``scorer`` cannot fold in (counted in :meth:`counts`)."""
        st = self.users.get(user)
        if st is not None:
            if st.generation != self.generation:
                # The model was swapped since this state was built: rebuild it from the history, less the items the new
                # scorer cannot fold in (EASE reads no weight; BPR folds a rating of -7 as a confidence below 0), or the
                # shopper could never be served again. They stay in seen / consumed, as a training user's do.
                st.history.uidx = self.training_index(user)
                st.history.drop_items(self._unread("swap", user, st.history, scorer, st.history.items))
                st.state, st.vec, st.generation = scorer.start(st.history), None, self.generation
            return st
        u = self.training_index(user)
        if u < 0 and not create:
            return None
        st = self._load(u, scorer) if u >= 0 else UserState(LiveHistory())
        st.state, st.generation = scorer.start(st.history), self.generation
        self.users[user] = st
        # Each later cut reports itself, so stats() need not sum over every shopper.
        self.n_trimmed += st.history.trimmed
        st.history.on_trim = self._count_trim
        return st

    def _unread(self, kind: str, user, hist: LiveHistory, scorer: LiveScorer, events) -> np.ndarray:
        """The items of ``hist`` whose summed weight ``scorer`` cannot fold in; the ``events`` (item indices) on them
        are counted under ``kind`` and the first such item of each kind is logged. The caller leaves them out."""
        idx, w = hist.summed()
        unread = idx[scorer.unreadable(w)] if scorer.personal and len(idx) else idx[:0]
        if len(unread):
            if kind not in self._warned:
                self._warned.add(kind)
                log.warning(_UNREAD[kind], plain(user), plain(self.item_ids[int(unread[0])]))
            self.unread[kind] += int(np.isin(np.asarray(events, dtype=np.int64), unread).sum())
        return unread

    def _load(self, u: int, scorer: LiveScorer) -> UserState:
        inter = self.inter
        a, b = inter.seq_indptr[u], inter.seq_indptr[u + 1]
        items, events = inter.seq_items[a:b], inter.seq_events[a:b].astype(np.int64)
        times, weights = inter.seq_times[a:b], self._weights[a:b]
        hist = LiveHistory.from_sequence(items, events, times, weights, self.recency, uidx=u)
        unread = self._unread("training", inter.user_ids[u], hist, scorer, items)
        if len(unread):
            # A model whose fit ignores weights may fold them in live (BPR: a rating of -5 is a confidence below 0).
            # Rebuilt from the sequence without them, as if ingest had refused them (a held history, whose per-event
            # weights are gone, drops them in place instead: LiveHistory.drop_items).
            keep = ~np.isin(items, unread)
            hist = LiveHistory.from_sequence(items[keep], events[keep], times[keep], weights[keep], self.recency, uidx=u)
        consumed = np.isin(events, list(self.exclude_codes))
        return UserState(hist, consumed=set(items[consumed].tolist()), seen=set(items.tolist()))

    def vector(self, user, st: UserState, scorer: LiveScorer) -> np.ndarray:
        """The user's score vector, computed when stale and kept in the LRU."""
        if st.vec is None:
            st.vec = scorer.scores(st.state, st.history)
        self.touch(user)
        return st.vec

    def touch(self, user) -> None:
        """Mark ``user``'s vector as recently used; evict the oldest beyond ``max_vectors``."""
        self._lru[user] = None
        self._lru.move_to_end(user)
        while len(self._lru) > self.max_vectors:
            old, _ = self._lru.popitem(last=False)
            other = self.users.get(old)
            if other is not None and old != user:
                other.vec = None

    def warm(self, scorer: LiveScorer, users: list | None = None) -> int:
        """Load ``users`` (default: every training user, up to ``max_vectors``) and their vectors, batched."""
        users = (self.inter.user_ids.tolist() if users is None else list(users))[: self.max_vectors]
        states = [(u, self.get(u, scorer, create=True)) for u in users]
        if scorer.personal:
            todo = [(u, st) for u, st in states if st.vec is None and st.history.has_items(scorer.n_items)]
            for (u, st), v in zip(todo, scorer.scores_many([st.state for _, st in todo], [st.history for _, st in todo])):
                st.vec = v
                self.touch(u)
        return len(states)

    def restart(self, inter) -> None:
        """After a model swap: new training rows; every shopper's scorer state is rebuilt when next touched."""
        self.inter = inter
        self._pos = {v: i for i, v in enumerate(inter.user_ids.tolist())}
        self._weights = inter.frame["weight"].to_numpy(dtype=np.float64)[inter.seq_order]
        self.generation += 1
        self._lru.clear()

    def drop(self, user) -> None:
        """Forget one user."""
        st = self.users.pop(user, None)
        if st is not None:
            self.n_trimmed -= st.history.trimmed
        self._lru.pop(user, None)
