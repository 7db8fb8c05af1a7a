"""The engine's LRU cache of recommendation lists, invalidated per shopper and for popularity-based lists."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
import pandas as pd


def plain(v):
    """numpy scalars as Python values, so dict keys and DataFrame columns stay simple."""
    return v.item() if isinstance(v, np.generic) else v


class _Uncacheable:
    """The key of a filter whose results must not be cached (see :func:`freeze`)."""

    def __repr__(self) -> str:
        return "UNCACHEABLE"


UNCACHEABLE = _Uncacheable()


def cacheable(key) -> bool:
    """False for :data:`UNCACHEABLE` and for a tuple key with it as one of its parts."""
    return key is not UNCACHEABLE and not (isinstance(key, tuple) and any(p is UNCACHEABLE for p in key))


def freeze(obj):
    """A hashable key for filter specifications (dicts, lists, ranges), or :data:`UNCACHEABLE`.

    Tuples (ranges), lists (values) and sets get distinct keys, as the filters read them differently.

    A specification that holds a callable anywhere is :data:`UNCACHEABLE`: what a
    callable selects cannot be told from the object, and its ``id`` is reused
    once it is freed (a lambda built per call), so a key on it would serve one
    filter's results for another. Caches store nothing under such a key.
    """
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        parts = [(str(k), freeze(v)) for k, v in obj.items()]
        if any(v is UNCACHEABLE for _, v in parts):
            return UNCACHEABLE
        return tuple(sorted(parts))
    if isinstance(obj, (list, tuple, set, frozenset, np.ndarray, pd.Index, pd.Series)):
        items = [freeze(v) for v in obj]
        if any(v is UNCACHEABLE for v in items):
            return UNCACHEABLE
        if isinstance(obj, (set, frozenset)):
            return ("set", tuple(sorted(items, key=repr)))
        # A tuple is a (low, high) range to a filter and a list a set of values: {"price": (5, 30)}
        # and {"price": [5, 30]} select different items, so their keys must differ.
        return ("tuple", tuple(items)) if isinstance(obj, tuple) else ("list", tuple(items))
    if callable(obj):
        return UNCACHEABLE
    return plain(obj)


class ResultCache:
    """LRU of computed lists keyed by ``(user, ...)``, at most ``size`` of them (bookkeeping included).

    A shopper's event drops their entries; every event also drops the entries
    that drew on "popular now" (those lists change with anyone's events).
    """

    def __init__(self, size: int = 1024):
        self.size = int(size)
        self._data: OrderedDict = OrderedDict()
        self._by_user: dict = {}
        self._global: set = set()
        self.hits = 0
        self.misses = 0

    def get(self, key):
        """The cached value for ``key`` (counted as a hit) or None (a miss; always for an uncacheable key)."""
        value = self._data.get(key) if self.size > 0 and cacheable(key) else None
        if value is None:
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key, value, uses_popularity: bool) -> None:
        """Store ``value`` (never under an uncacheable key); ``uses_popularity``: dropped by anyone's event."""
        if self.size <= 0 or not cacheable(key):
            return
        self._data[key] = value
        self._by_user.setdefault(key[0], set()).add(key)
        if uses_popularity:
            self._global.add(key)
        while len(self._data) > self.size:
            old, _ = self._data.popitem(last=False)
            self._global.discard(old)
            ks = self._by_user.get(old[0])
            if ks is not None:
                ks.discard(old)
                if not ks:
                    # Or every shopper ever served keeps an empty entry, and the bounded cache grows without bound.
                    del self._by_user[old[0]]

    def invalidate(self, user) -> None:
        """Drop ``user``'s lists and every list drawn from popularity."""
        for key in self._by_user.pop(user, ()):
            self._data.pop(key, None)
        for key in self._global:
            self._data.pop(key, None)
            ks = self._by_user.get(key[0])
            if ks is not None:
                ks.discard(key)
                if not ks:
                    del self._by_user[key[0]]
        self._global.clear()

    def clear(self) -> None:
        """Drop everything."""
        self._data.clear()
        self._by_user.clear()
        self._global.clear()
