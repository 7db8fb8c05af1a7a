"""Event sources for the engine: a replayed real log (:class:`Replay`) here; simulated shoppers who react to what
they see in :mod:`recapp.realtime.simulated_shoppers`.

Both are plain iterators of event dicts in the schema of :mod:`recapp.schema`,
so a notebook, the dashboard and a test drive them the same way::

    stream = replay_movielens(speed=3600)        # one hour of log time per second
    engine = Engine(EASE().fit(stream.history))
    for event in stream:
        engine.ingest(event)
"""
from __future__ import annotations

import itertools
import math
import time as _time
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from recapp.models.base import check_param
from recapp.schema import TIME_COL, utc_seconds
from recapp.schema.cells import _is_number

def replay_seconds(events: pd.DataFrame, name: str) -> np.ndarray:
    """``events[TIME_COL]`` as UTC seconds by the schema's rule (epoch numbers in any unit, ISO 8601 text, datetimes).

    SchemaError naming the count and first rows of times that are missing, unreadable or out of the schema's years.
    """
    # A replay cannot put such rows in order, and the engine would stamp them "now".
    return utc_seconds(events, name, TIME_COL, hint=", in every row (a replay puts events in time order)")


class Replay:
    """Replay an event log in timestamp order, as fast as possible or at ``speed`` times real time.

    ``speed=None`` (or 0) never waits; ``speed=60`` plays one minute of log time
    per second of wall time (gaps longer than ``max_gap`` seconds of wall time are
    cut to it, so a quiet night does not stall a demo). ``batch_size=1`` yields
    dicts; larger values yield DataFrames of up to that many rows. ``history``
    holds the events before the replayed part (the training data), when known.
    Timestamps are read as the schema reads them (epoch seconds or milli-, micro-,
    nanoseconds, ISO 8601 text, datetimes); a missing or unreadable one raises
    :class:`~recapp.schema.SchemaError`; a NaN ``speed`` and a ``max_gap`` that is
    NaN, 0 or less raise ValueError.
    """

    def __init__(self, events: pd.DataFrame, *, speed: float | None = None, batch_size: int = 1,
                 history: pd.DataFrame | None = None, max_gap: float = 1.0,
                 clock: Callable[[], float] = _time.monotonic, sleep: Callable[[float], None] = _time.sleep):
        if not isinstance(events, pd.DataFrame):
            raise TypeError(f"events must be a pandas DataFrame, got {type(events).__name__}")
        if TIME_COL not in events.columns:
            raise KeyError(f"events need a {TIME_COL!r} column to be replayed in order; columns: {list(events.columns)}")
        # NaN would silently never wait (speed) or never cut a gap (max_gap); inf is a real choice for both.
        if speed is not None and not (_is_number(speed) and not math.isnan(speed) and speed >= 0):
            raise ValueError(f"speed={speed!r} must be a number >= 0 or None (0 or None: as fast as possible)")
        check_param("batch_size", batch_size, low=1, integer=True)
        if not (_is_number(max_gap) and not math.isnan(max_gap) and max_gap > 0):
            # 0 or less would never wait, whatever the speed.
            raise ValueError(f"max_gap={max_gap!r} must be a number of seconds > 0 (inf: never cut a gap)")
        seconds = replay_seconds(events, "events")
        order = np.argsort(seconds, kind="stable")
        self.events = events.iloc[order].reset_index(drop=True)
        # The schedule runs on UTC seconds, whatever the column holds (milliseconds, text, datetimes).
        self._seconds = seconds[order].tolist()
        self.speed = speed or None
        self.batch_size = int(batch_size)
        self.history = history
        self.max_gap = float(max_gap)
        self._clock, self._sleep = clock, sleep
        self.position = 0
        self._records = None

    def __len__(self) -> int:
        return len(self.events)

    @property
    def remaining(self) -> int:
        """Events not yet yielded."""
        return len(self.events) - self.position

    def __iter__(self) -> Iterator:
        if self._records is None:
            # Converted once, so take(1) in a loop stays O(1) per event.
            self._records = self.events.to_dict(orient="records")
        records = self._records
        t_log0 = t_wall0 = None
        while self.position < len(records):
            start = self.position
            stop = min(start + self.batch_size, len(records))
            t_log = self._seconds[start]
            if self.speed is not None:
                now = self._clock()
                if t_log0 is None:
                    t_log0, t_wall0 = t_log, now
                due = t_wall0 + (t_log - t_log0) / self.speed
                wait = due - now
                if wait > self.max_gap:
                    # Shift the schedule instead of sleeping through a long quiet spell.
                    t_wall0 -= wait - self.max_gap
                    wait = self.max_gap
                if wait > 0:
                    self._sleep(wait)
            self.position = stop
            if self.batch_size == 1:
                yield _clean_record(records[start])
            else:
                yield self.events.iloc[start:stop].reset_index(drop=True)

    def take(self, n: int) -> list:
        """The next ``n`` items (dicts or frames) as a list; the replay remembers where it stopped."""
        return list(itertools.islice(iter(self), n))


def _clean_record(rec: dict) -> dict:
    # NaN ratings / values from a frame become absent keys, as a live event would have them.
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in rec.items()
            if not (isinstance(v, float) and math.isnan(v))}


def replay_movielens(quantile: float = 0.8, *, speed: float | None = None, batch_size: int = 1, limit: int | None = None) -> Replay:
    """Replay the last ``1 - quantile`` of MovieLens-100K by time (default the last 20%).

    ``replay.history`` is the first part, to train a model on. ``limit`` keeps
    only the first ``limit`` replayed events (an integer >= 1, checked before the data are loaded).
    """
    check_limit(limit)
    from recapp.data.movielens import load_movielens
    from recapp.split import temporal_split

    train, test = temporal_split(load_movielens().interactions, quantile=quantile)
    test = test.sort_values(TIME_COL, kind="stable")
    if limit is not None:
        test = test.iloc[:limit]
    return Replay(test, speed=speed, batch_size=batch_size, history=train)


def check_limit(limit) -> None:
    """ValueError unless ``limit`` is None or an integer >= 1 (a negative one would cut from the end)."""
    if limit is not None:
        check_param("limit", limit, low=1, integer=True)


__all__ = ["Replay", "replay_movielens"]
