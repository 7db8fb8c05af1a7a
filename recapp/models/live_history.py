"""One shopper's history as a live caller holds it: the event sequence and the summed and latest weight per item.

The engine, the Spark streaming fold-in and every :class:`~recapp.models.live.LiveScorer`
read a shopper through a :class:`LiveHistory`; the scorers' contract lives in
:mod:`recapp.models.live`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recapp.models.checks import check_finite_weights, event_codes, history_arrays

# The most recent events a live history keeps in its sequence (LiveHistory trims older ones): far beyond what a
# model reads back (sequential models: the last max_len, a few hundred; NeuMF: fold_in_max_items).
HISTORY_MAX_EVENTS = 10_000


@dataclass
class LiveHistory:
    """One shopper's history as a live caller holds it (internal item indices, time order).

    Two weights per distinct item, both divided by ``scale``: ``raw`` sums the
    event weights (a purchase after a view counts both), ``latest`` is 1 from the
    item's latest event (the binary view). With a per-event recency decay r every
    weight is multiplied by r at each event; keeping that as one ``scale`` factor
    makes an event cost O(1). ``uidx`` is the shopper's row in the model's
    training data (-1 for a shopper the model never saw).

    The event sequence (``items``, ``events``, ``times``) is bounded so one
    shopper sending millions of events (a bot, a load test) cannot grow a
    long-running engine without limit: when it reaches ``2 * HISTORY_MAX_EVENTS``
    events it is cut back to the last :data:`HISTORY_MAX_EVENTS` (so it holds
    between N and 2N once it has passed N; cutting in chunks keeps an event O(1)), ``trimmed`` counts
    the events cut and ``on_trim`` (when set) is called with each cut, so an owner keeps a running total.
    The per-item weights (``raw``, ``latest``) still count every event: trimming never changes them.
    """

    items: list = field(default_factory=list)
    events: list = field(default_factory=list)
    times: list = field(default_factory=list)
    raw: dict = field(default_factory=dict)
    latest: dict = field(default_factory=dict)
    scale: float = 1.0
    uidx: int = -1
    trimmed: int = 0
    on_trim: object = field(default=None, repr=False, compare=False)

    def _trim(self) -> None:
        cut = len(self.items) - HISTORY_MAX_EVENTS
        if cut > 0:
            del self.items[:cut], self.events[:cut], self.times[:cut]
            self.trimmed += cut
            if self.on_trim is not None:
                self.on_trim(cut)

    @classmethod
    def from_sequence(cls, items, events, times, weights, recency: float = 1.0, uidx: int = -1) -> "LiveHistory":
        """The history after a time-ordered sequence of events, built at once (same weights and sequence bound as :meth:`add`).

        Refused (ValueError): items that are not internal indices
        (:func:`~recapp.models.checks.history_arrays`), events that are not event
        codes (:func:`~recapp.models.checks.event_codes`), and times or weights
        of another length than ``items``. Weight values are taken as given: an
        engine loading a training user must not fail on one odd rating (a
        scorer that reads the summed weights refuses one it cannot use).
        """
        items, _ = history_arrays(items)
        codes = event_codes(events, len(items))
        times, weights = np.asarray(times, dtype=np.float64).ravel(), np.asarray(weights, dtype=np.float64).ravel()
        for name, values in (("times", times), ("weights", weights)):
            if len(values) != len(items):
                raise ValueError(f"{name} has {len(values)} value(s) for {len(items)} item(s); give one per event")
        # Only the sequence is cut to the last HISTORY_MAX_EVENTS; the weights below sum every event.
        cut = max(len(items) - HISTORY_MAX_EVENTS, 0)
        h = cls(items=items[cut:].tolist(), events=codes[cut:].tolist(), times=times[cut:].tolist(), uidx=int(uidx),
                trimmed=cut)
        if len(items) == 0:
            return h
        # recency ** (events since), the weights the per-event path gives.
        decay = np.power(recency, np.arange(len(items) - 1, -1, -1, dtype=np.float64)) if recency < 1.0 else np.ones(len(items))
        uniq, last = np.unique(items[::-1], return_index=True)
        h.latest = dict(zip(uniq.tolist(), decay[::-1][last].tolist()))
        uniq, inv = np.unique(items, return_inverse=True)
        summed = np.bincount(inv, weights=np.asarray(weights, dtype=np.float64) * decay, minlength=len(uniq))
        h.raw = dict(zip(uniq.tolist(), summed.tolist()))
        return h

    def _next(self, item: int, weight: float, recency: float) -> tuple[float, float | None, float]:
        """(scale, rebase factor or None, ``item``'s raw weight) once an event is added: shared by :meth:`add` and
        :meth:`summed_after`, so a check made before an event sees the very float the event stores."""
        scale, factor = (self.scale * recency if recency < 1.0 else self.scale), None
        if scale < 1e-20:
            # Rebase while raw weights (1 / scale) still fit a float32 score vector; rankings do not change.
            factor, scale = scale, 1.0
        return scale, factor, self.raw.get(item, 0.0) * (1.0 if factor is None else factor) + weight / scale

    def add(self, item: int, code: int, t: float, weight: float, recency: float = 1.0) -> tuple[float, float] | None:
        """Append one event; returns the (summed, binary) raw weight changes of ``item``, or None after a rebase.

        A rebase (every weight rescaled when ``scale`` gets tiny) changes every
        raw value, so the caller rebuilds whatever it derived from them. The
        sequence is cut back to the last :data:`HISTORY_MAX_EVENTS` events when it
        reaches twice that (see the class docstring); the weights are not.
        """
        self.items.append(item)
        self.events.append(code)
        self.times.append(t)
        if len(self.items) >= 2 * HISTORY_MAX_EVENTS:
            self._trim()
        self.scale, factor, new = self._next(item, weight, recency)
        if factor is not None:
            for d in (self.raw, self.latest):
                for key in d:
                    d[key] *= factor
        old_sum, old_bin = self.raw.get(item, 0.0), self.latest.get(item, 0.0)
        self.raw[item] = new
        self.latest[item] = 1.0 / self.scale
        return None if factor is not None else (self.raw[item] - old_sum, self.latest[item] - old_bin)

    def drop_items(self, items) -> None:
        """Forget ``items``: their weights and their events in the sequence (the decay they gave the others stays)."""
        gone = {int(i) for i in items}
        if not gone:
            return
        for i in gone:
            self.raw.pop(i, None)
            self.latest.pop(i, None)
        keep = [j for j, i in enumerate(self.items) if i not in gone]
        self.items, self.events, self.times = ([seq[j] for j in keep] for seq in (self.items, self.events, self.times))

    def raw_weights(self, n_items: int | None = None, binary: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(items, weights / ``scale``) of the distinct items below ``n_items``: summed, or binary (``latest``).

        Refused (ValueError, :func:`~recapp.models.checks.check_finite_weights`):
        a summed weight that is not finite, which no scorer can use (it would
        serve NaN or infinite scores); ``score_history`` refuses the same.
        """
        d = self.latest if binary else self.raw
        idx = np.fromiter(d.keys(), dtype=np.int64, count=len(d))
        w = np.fromiter(d.values(), dtype=np.float64, count=len(d))
        if n_items is not None:
            ok = idx < n_items
            idx, w = idx[ok], w[ok]
        if not binary:
            check_finite_weights(idx, w * self.scale)
        return idx, w

    def summed_weight(self, item: int) -> float:
        """The current summed event weight of ``item`` (0 if it has none); refused as :meth:`raw_weights` refuses."""
        w = self.raw.get(item, 0.0) * self.scale
        check_finite_weights([item], [w])
        return w

    def summed(self) -> tuple[np.ndarray, np.ndarray]:
        """(items, current summed weights) as they are, unchecked: for a caller that judges them
        (the engine, through :meth:`LiveScorer.unreadable`)."""
        idx = np.fromiter(self.raw.keys(), dtype=np.int64, count=len(self.raw))
        return idx, np.fromiter(self.raw.values(), dtype=np.float64, count=len(self.raw)) * self.scale

    def summed_after(self, item: int, weight: float, recency: float = 1.0) -> float:
        """``item``'s summed event weight once an event of ``weight`` is added with ``recency``, unchanged here: the
        very float :meth:`summed_weight` gives after :meth:`add` (a check made first decides as the fold-in would)."""
        scale, _, raw = self._next(item, float(weight), recency)
        return raw * scale

    def weights(self, n_items: int | None = None, binary: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(items, current weights) of the distinct items below ``n_items``: summed, or binary (``latest``)."""
        idx, w = self.raw_weights(n_items, binary)
        return idx, w * self.scale

    def has_items(self, n_items: int) -> bool:
        """Whether any event was on one of the first ``n_items`` items (the model's)."""
        return any(i < n_items for i in self.raw)

    def sequence(self, n_items: int, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """The last ``limit`` (item, event code) pairs on items below ``n_items``, oldest first."""
        items, events = self.items[-4 * limit:], self.events[-4 * limit:]
        keep = [(i, e) for i, e in zip(items, events) if i < n_items][-limit:]
        if not keep:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        a = np.asarray(keep, dtype=np.int64)
        return a[:, 0], a[:, 1]

    def recent(self, n_items: int, limit: int = 50) -> np.ndarray:
        """The most recent distinct items below ``n_items``, newest first."""
        out, seen = [], set()
        for i in reversed(self.items):
            if i < n_items and i not in seen:
                seen.add(i)
                out.append(i)
                if len(out) >= limit:
                    break
        return np.asarray(out, dtype=np.int64)


__all__ = ["HISTORY_MAX_EVENTS", "LiveHistory"]
