"""The live operations view without widgets: every shopper's events streamed through the engine at a set rate.

:class:`StreamSession` replays all shoppers' held-out events in time order (or,
for the synthetic shop, endless simulated shoppers who see the live engine's
lists). Each event is scored prequentially before it is ingested: did the live
engine's top-k, and the same model served statically (never ingesting), hold
the item the shopper chose next? Each batch is first appended to a DuckDB
:class:`~recapp.realtime.EventStore`, whose quarantine keeps rejected rows with
their reasons; the engine then ingests the clean rows one at a time.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter, deque
from pathlib import Path

import numpy as np
import pandas as pd

from recapp.dashboard.session import CHOICE_EVENTS, ENGINE_FIELDS, K, SERIES_POINTS, make_engine
from recapp.schema import EVENT_COL, ITEM_COL, USER_COL

#: Rates (events per second) offered in the page.
RATES = (20, 100, 500)
HIT_WINDOW = 500        # choices in the rolling prequential hit rate
LATENCY_WINDOW = 2000   # events in the latency percentiles
RATE_WINDOW_S = 3.0     # seconds over which events per second are measured


class StreamSession:
    """All shoppers of ``scenario`` streamed through a live engine beside a static one.

    ``step(n)`` handles the next ``n`` events and returns a record (see
    :meth:`step`); ``series`` keeps the rolling figures for the page's panels.
    ``close()`` removes the session's event store.
    """

    def __init__(self, scenario, model, k: int = K, random_state: int = 0):
        from recapp.realtime import EventStore

        self.scenario, self.k = scenario, int(k)
        self.live = make_engine(model, scenario, k)
        self.static = make_engine(model, scenario, k)
        self._dir = Path(tempfile.mkdtemp(prefix="recapp-stream-"))
        self.store = EventStore(self._dir / "events.duckdb")
        self._events = self._source(random_state)
        self.known_users = set(model.interactions_.user_ids.tolist())
        self.known_items = set(model.interactions_.item_ids.tolist())
        self.new_users: set = set()
        self.new_items: set = set()
        self.n_events = 0
        self.n_rejected = 0
        # Rows the store kept but the live engine refused (its model cannot read their weight), by reason.
        self.refused: Counter = Counter()
        self.done = False
        self.hits_live: deque = deque(maxlen=HIT_WINDOW)
        self.hits_static: deque = deque(maxlen=HIT_WINDOW)
        self.latency_ms: deque = deque(maxlen=LATENCY_WINDOW)
        self._rate: deque = deque()
        self.series = {n: deque(maxlen=SERIES_POINTS) for n in ("x", "hr_live", "hr_static", "rate", "p99")}

    def _source(self, random_state: int):
        if self.scenario.source == "replay":
            cols = [c for c in ENGINE_FIELDS if c in self.scenario.replay.columns]
            return iter(self.scenario.replay[cols].to_dict("records"))
        from recapp.realtime import ShopperStream

        stream = ShopperStream(self.scenario.shop, recommender=lambda user, k: self.live.recommend(user, k)[ITEM_COL].tolist(),
                               random_state=random_state)
        return (
            {k: v for k, v in ev.items() if k in ENGINE_FIELDS} for ev in stream
        )

    @property
    def remaining(self) -> int | None:
        """Events left to replay (None for simulated shoppers)."""
        return None if self.scenario.replay is None else len(self.scenario.replay) - self.n_events - self.n_rejected

    def step(self, n: int) -> dict:
        """Stream the next ``n`` events (fewer at the end of a replay); returns the record after them.

        The record: ``n_events``, ``events_per_s`` (over the last few seconds of
        wall time), ``latency_p50_ms`` / ``latency_p99_ms`` (ingest + recommend
        per event), ``hr_live`` / ``hr_static`` (rolling HR@k over the last
        ``HIT_WINDOW`` choices), ``new_users`` / ``new_items`` (first seen in the
        stream), ``rejected`` (count per reason, from the store's quarantine),
        ``popular`` (the live "popular now" list) and ``done``.
        """
        batch = [] if self.done else [ev for _, ev in zip(range(max(int(n), 0)), self._events)]
        if len(batch) < n:
            self.done = True
        if batch:
            self._stream(batch)
        now = time.perf_counter()
        self._rate.append((now, len(batch)))
        while self._rate and now - self._rate[0][0] > RATE_WINDOW_S:
            self._rate.popleft()
        span = now - self._rate[0][0] if len(self._rate) > 1 else 0.0
        rate = sum(c for _, c in list(self._rate)[1:]) / span if span > 0 else 0.0
        lat = np.asarray(self.latency_ms) if self.latency_ms else np.array([np.nan])
        rec = {
            "n_events": self.n_events, "events_per_s": rate,
            "latency_p50_ms": float(np.nanpercentile(lat, 50)) if self.latency_ms else None,
            "latency_p99_ms": float(np.nanpercentile(lat, 99)) if self.latency_ms else None,
            "hr_live": float(np.mean(self.hits_live)) if self.hits_live else None,
            "hr_static": float(np.mean(self.hits_static)) if self.hits_static else None,
            "new_users": len(self.new_users), "new_items": len(self.new_items),
            "rejected": self.rejected_by_reason(), "popular": self.live.popular(self.k), "done": self.done,
        }
        if batch:
            s = self.series
            s["x"].append(self.n_events)
            s["hr_live"].append(rec["hr_live"])
            s["hr_static"].append(rec["hr_static"])
            s["rate"].append(rate)
            s["p99"].append(rec["latency_p99_ms"])
        return rec

    def _stream(self, batch: list[dict]) -> None:
        appended = self.store.append(pd.DataFrame(batch))
        self.n_rejected += appended.n_quarantined
        clock = time.perf_counter
        for ev in appended.events[[c for c in ENGINE_FIELDS if c in appended.events.columns]].to_dict("records"):
            user, item = ev[USER_COL], ev[ITEM_COL]
            t0 = clock()
            live = self.live.recommend(user, self.k)[ITEM_COL].tolist()
            applied = self.live.ingest({k: v for k, v in ev.items() if not _missing(v)})
            if applied.n_rejected:
                self.refused[applied.rejected["reason"].iloc[0].split(":")[0]] += 1
            self.latency_ms.append((clock() - t0) * 1000)
            if ev[EVENT_COL] in CHOICE_EVENTS:
                self.hits_live.append(item in live)
                self.hits_static.append(item in self.static.recommend(user, self.k)[ITEM_COL].tolist())
            if user not in self.known_users:
                self.new_users.add(user)
            if item not in self.known_items:
                self.new_items.add(item)
            self.n_events += 1

    def rejected_by_reason(self) -> pd.Series:
        """Rows the store quarantined so far, and rows the live engine refused (kept in the store), counted by reason."""
        counts = pd.Series(self.refused, dtype="int64")
        if self.n_rejected:
            q = self.store.sql("SELECT reason, count(*) AS n FROM quarantine GROUP BY reason")
            counts = pd.concat([q.set_index("reason")["n"].astype("int64"), counts])
        return counts.sort_values(ascending=False, kind="stable").rename("rows").rename_axis("reason")

    def close(self) -> None:
        """Close the event store and remove its folder."""
        self.store.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


__all__ = ["StreamSession", "RATES"]
