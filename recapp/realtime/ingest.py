"""Turning what ``Engine.ingest`` is given into checked event rows, and what it reports back.

The checks are :func:`recapp.schema.check_event` / :func:`recapp.schema.check_events`,
the same rules the event store and ``schema.validate`` apply. An optional
``event_id`` makes delivery idempotent: an id seen before is refused as a
duplicate, so a stream replayed after a fault does not count events twice.
Without a store the engine remembers the latest million ids in memory
(:class:`SeenIds`); with one, the store applies the same check and keeps the
ids in its file (:func:`event_id_key` is their stored text), so a restarted
engine still refuses a redelivery.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
import pandas as pd

from recapp.schema import (EVENT_COL, EVENT_ID_COL, ITEM_COL, RATING_COL, TIME_COL, USER_COL, check_event, check_events,
                           events_frame)


class IngestResult:
    """What :meth:`Engine.ingest` did: ``n_ingested`` events applied, and ``rejected`` rows with their reason."""

    __slots__ = ("n_ingested", "_rejected")

    def __init__(self, n_ingested: int, rejected=None):
        self.n_ingested = int(n_ingested)
        self._rejected = rejected            # a DataFrame, a list of (row, reason), or None

    @property
    def rejected(self) -> pd.DataFrame:
        """DataFrame[row, reason]: every input row that was refused (built on first access)."""
        if not isinstance(self._rejected, pd.DataFrame):
            rows = self._rejected or []
            self._rejected = pd.DataFrame({"row": [r for r, _ in rows], "reason": [why for _, why in rows]},
                                          columns=["row", "reason"])
        return self._rejected

    @property
    def n_rejected(self) -> int:
        """Number of rows refused."""
        return int(len(self._rejected)) if self._rejected is not None else 0

    def __repr__(self) -> str:
        return f"IngestResult(n_ingested={self.n_ingested}, n_rejected={self.n_rejected})"


def with_refused(rejected, refused: list):
    """``rejected`` (as :class:`IngestResult` takes it) with ``refused`` checked rows ``[(row tuple, reason)]`` added."""
    fields = (USER_COL, ITEM_COL, TIME_COL, EVENT_COL, RATING_COL)
    extra = [(dict(zip(fields, row)), why) for row, why in refused]
    if isinstance(rejected, pd.DataFrame):
        return pd.concat([rejected, IngestResult(0, extra).rejected], ignore_index=True)
    return list(rejected or []) + extra


class SeenIds:
    """The most recent ``capacity`` event ids, to refuse a redelivered event.

    Ids are compared as the event store keeps them (:func:`event_id_key`), so
    ``7``, ``7.0`` and ``"7"`` are one id for the engine as for the store.
    """

    def __init__(self, capacity: int = 1_000_000):
        self.capacity = int(capacity)
        self._ids: OrderedDict = OrderedDict()

    def __contains__(self, event_id) -> bool:
        return event_id_key(event_id) in self._ids

    def check_and_add(self, event_id) -> bool:
        """True when ``event_id`` is new (and remember it); False for a duplicate."""
        key = event_id_key(event_id)
        if key in self._ids:
            return False
        self._ids[key] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


def _has_id(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and v is not pd.NA


def event_id_key(v) -> str | None:
    """An ``event_id`` as the event store keeps it (text), or None for a missing one.

    A whole float (``7.0``, as pandas makes of an integer column with gaps) is the integer's text ``"7"``.
    """
    if isinstance(v, np.generic):
        v = v.item()
    if not _has_id(v) or v is pd.NaT:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v)


def unique_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` itself; ``ValueError`` naming its repeated column names, where ``frame[col]`` would be a frame."""
    repeated = frame.columns[frame.columns.duplicated()].unique().tolist()
    if repeated:
        raise ValueError(f"the events have repeated column name(s) {repeated} (columns: {list(frame.columns)}); "
                         "nothing in this batch was applied")
    return frame


def event_rows(events, seen: SeenIds | None = None) -> tuple[list, object]:
    """Checked rows ``(user, item, t, event, rating)`` and the refused ones.

    A dict is one event; a DataFrame or a list of dicts is a batch, applied in
    timestamp order (stable for equal times). The refused come back as a list
    of ``(row, reason)`` or as a DataFrame[row, reason].
    A frame with a repeated column name is refused (``ValueError``).
    """
    if isinstance(events, Mapping):
        eid = events.get(EVENT_ID_COL)
        track = seen is not None and _has_id(eid)
        if track and eid in seen:
            return [], [(dict(events), f"duplicate {EVENT_ID_COL} {eid!r}")]
        row, reason = check_event(events)
        if row is None:
            return [], [(dict(events), reason)]
        if track:
            seen.check_and_add(eid)
        return [row], None
    frame = events if isinstance(events, pd.DataFrame) else events_frame(events)
    frame = unique_columns(frame).reset_index(drop=True)
    clean, rejected = check_events(frame)
    if seen is not None and EVENT_ID_COL in frame.columns and len(clean):
        # check_events keeps the input's index labels on the rows it accepts.
        ids = frame[EVENT_ID_COL].to_numpy(dtype=object)[clean.index.to_numpy()]
        keep = np.array([not _has_id(e) or seen.check_and_add(e) for e in ids], dtype=bool)
        if not keep.all():
            dup = frame.loc[clean.index[~keep]]
            extra = pd.DataFrame({"row": dup.to_dict(orient="records"),
                                  "reason": [f"duplicate {EVENT_ID_COL} {e!r}" for e in ids[~keep]]})
            rejected = pd.concat([rejected, extra], ignore_index=True) if len(rejected) else extra
            clean = clean.loc[keep]
    return frame_rows(clean), rejected


def frame_rows(clean: pd.DataFrame | None) -> list:
    """Rows ``(user, item, t, event, rating)`` of a checked frame, in timestamp order."""
    if clean is None or len(clean) == 0:
        return []
    clean = clean.sort_values(TIME_COL, kind="stable")
    rating = clean[RATING_COL].to_numpy(dtype=np.float64) if RATING_COL in clean.columns else np.full(len(clean), np.nan)
    return list(zip(clean[USER_COL].tolist(), clean[ITEM_COL].tolist(), clean[TIME_COL].tolist(),
                    clean[EVENT_COL].tolist(), [None if math.isnan(r) else r for r in rating.tolist()]))
