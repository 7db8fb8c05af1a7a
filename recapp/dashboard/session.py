"""One shopper watched live, without widgets: the engine, the event source and the rolling series.

:class:`LiveSession` is what the Live tab shows; ``step()`` handles one event and
returns a record, so everything the page draws can be checked without a browser.
"""
from __future__ import annotations

import time
from collections import deque

import numpy as np
import pandas as pd

from recapp.dashboard.sources import open_source
from recapp.realtime import Engine
from recapp.realtime.engine import EXPLANATION_COL, RANK_CHANGE_COL
from recapp.schema import EVENT_COL, ITEM_COL, RANK_COL, RATING_COL, SCORE_COL, TIME_COL, USER_COL, VALUE_COL

K = 10
HIT_WINDOW = 20          # events in the rolling hit rate
SERIES_POINTS = 300      # points kept per live series, so each redraw costs the same
FEED_ROWS = 10
TIMING_POINTS = 1000     # per-tick timings kept for the status line's percentiles
#: Events that are a shopper's choice of item (a funnel's click, cart and purchase follow a view).
CHOICE_EVENTS = ("view", "rating")
#: What the engine is given of each event; a simulated shopper's extra fields (source, slate_rank) are for display.
ENGINE_FIELDS = (USER_COL, ITEM_COL, TIME_COL, EVENT_COL, RATING_COL, VALUE_COL)


def make_engine(model, scenario, k: int = K) -> Engine:
    """The real-time engine for one session; it never changes ``model``, so a cached model serves every session."""
    # The engine explains with the catalogue's title column: give it the labels the page shows.
    items = scenario.items.assign(title=scenario.items[ITEM_COL].map(scenario.title))
    # One contributor per reason keeps "because you viewed X" readable when titles contain commas.
    return Engine(model, k=k, items=items, n_explain=1)


class LiveSession:
    """One shopper of ``scenario`` served live by ``model``: each :meth:`step` ingests one event and re-ranks.

    ``current`` is the list on screen; ``feed`` the latest events (newest first);
    ``series`` the rolling hit rate over the last ``HIT_WINDOW`` choices, the
    engine's ingest + recommend time, the whole tick's time (set by the page
    through :meth:`record_tick`) and, for a simulated shopper, the share of lists clicked.
    """

    def __init__(self, scenario, model, user_id, k: int = K, random_state: int = 0):
        self.scenario, self.user_id, self.k = scenario, user_id, int(k)
        self.engine = make_engine(model, scenario, k)
        self.current = self.engine.recommend(user_id, self.k)
        self.source = open_source(scenario, user_id, lambda: self.current[ITEM_COL].tolist(), random_state)
        self.n_events = 0
        # Events the engine refused (counted among n_events): the page shows the count beside the latest reason.
        self.n_rejected = 0
        self.done = False
        self.hits: deque = deque(maxlen=HIT_WINDOW)
        self.feed: deque = deque(maxlen=FEED_ROWS)
        self.series = {n: deque(maxlen=SERIES_POINTS) for n in ("x", "hit", "engine", "tick", "ctr")}
        # Bounded, so a session left playing for hours holds the same memory as one of a minute.
        self.engine_ms: deque = deque(maxlen=TIMING_POINTS)
        self.tick_ms: deque = deque(maxlen=TIMING_POINTS)

    @property
    def remaining(self) -> int | None:
        """Events left to replay (None for a simulated shopper)."""
        return None if self.source.total is None else self.source.total - self.n_events

    def step(self) -> dict | None:
        """Ingest the next event and re-rank; returns a record of it, or None when the replay is over.

        The record: ``event``, ``hit`` (whether the list on screen before a choice
        held the chosen item; None for funnel steps), ``engine_ms``, ``rejected``
        (the engine's reason, or None), ``n_rejected`` (the session's refused events so far),
        ``recommendations`` (the new list) and ``ctr``.
        """
        if self.done:
            return None
        shown = self.current[ITEM_COL].tolist()
        ev = self.source.next_event()
        if ev is None:
            self.done = True
            return None
        hit = ev[ITEM_COL] in shown if ev[EVENT_COL] in CHOICE_EVENTS else None
        if hit is not None:
            self.hits.append(hit)
        t0 = time.perf_counter()
        result = self.engine.ingest({k: v for k, v in ev.items() if k in ENGINE_FIELDS})
        self.current = self.engine.recommend(self.user_id, self.k)
        engine_ms = (time.perf_counter() - t0) * 1000
        self.n_events += 1
        self.feed.appendleft(ev)
        ctr = self.source.click_through_rate
        ctr = None if ctr is None or not np.isfinite(ctr) else float(ctr)
        s = self.series
        s["x"].append(self.n_events)
        s["hit"].append(float(np.mean(self.hits)) if self.hits else None)
        s["engine"].append(engine_ms)
        # The whole-tick series lags one event: a tick's own redraw cannot be timed before it happens.
        s["tick"].append(self.tick_ms[-1] if self.tick_ms else engine_ms)
        s["ctr"].append(ctr)
        self.engine_ms.append(engine_ms)
        rejected = result.rejected["reason"].iloc[0] if result.n_rejected else None
        self.n_rejected += rejected is not None
        return {"event": ev, "hit": hit, "engine_ms": engine_ms, "rejected": rejected, "n_rejected": self.n_rejected,
                "recommendations": self.current, "ctr": ctr, "n_events": self.n_events}

    def record_tick(self, ms: float) -> None:
        """The page's whole handling time of the last tick (ingest, re-rank and redraw)."""
        self.tick_ms.append(float(ms))

    @staticmethod
    def empty_list() -> pd.DataFrame:
        """An empty recommendation list with the engine's columns."""
        return pd.DataFrame(columns=[ITEM_COL, SCORE_COL, RANK_COL, EXPLANATION_COL, RANK_CHANGE_COL])
