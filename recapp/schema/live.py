"""The row check for live events: never raises, a reason for every row it refuses.

:func:`events_frame` turns a batch of event dicts into the frame :func:`check_events` reads.
"""
from __future__ import annotations

import math
import time as _time
from collections.abc import Mapping

import numpy as np
import pandas as pd

from recapp.schema.cells import (
    LIVE_TIMES,
    _blank,
    _missing,
    _normalise_events,
    _number,
    _numeric,
    _plain,
    _scalar_timestamp,
    id_problem,
    id_problems,
    normalise_event,
    parse_timestamps,
)
from recapp.schema.columns import (
    EVENT_COL,
    EVENT_ID_COL,
    EVENT_TYPES,
    ITEM_COL,
    RATING_COL,
    TIME_COL,
    USER_COL,
    VALUE_COL,
)

#: Columns whose cells are identities: kept as the values sent, never converted to a column dtype.
ID_COLUMNS = (USER_COL, ITEM_COL, EVENT_ID_COL)


def events_frame(events) -> pd.DataFrame:
    """A batch of event dicts as a DataFrame whose id cells are exactly the values sent.

    pandas gives each column one dtype, so an integer id column with one missing
    cell would become float64: 7 would be read back as 7.0 (another id in a text
    store) and ids above 2**53 would round into one another. The id columns
    (:data:`ID_COLUMNS`) are therefore object columns of the values as sent.
    Raises TypeError when ``events`` is not a list of dicts, naming the first entry that is not one.
    """
    try:
        if isinstance(events, (str, bytes)):
            raise TypeError
        rows = list(events)
    except TypeError:
        raise TypeError(f"events must be a dict, a list of dicts or a DataFrame; got {type(events).__name__}") from None
    for pos, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"events[{pos}] is a {type(row).__name__} ({_plain(row)!r:.80}), not an event dict; "
                            "nothing in this batch was applied")
    frame = pd.DataFrame(rows)
    ids = {c: pd.Series([row.get(c) for row in rows], index=frame.index, dtype=object)
           for c in ID_COLUMNS if c in frame.columns}
    return frame.assign(**ids) if ids else frame


def check_event(event: Mapping) -> tuple[tuple | None, str | None]:
    """Check one event dict; returns ``((user, item, t, event, rating), None)`` or ``(None, reason)``.

    The fast path of :func:`check_events` for a live stream, with the same rules and
    reasons: a missing timestamp means now, numpy scalars come back as Python
    values, ``t`` is UTC seconds and ``rating`` is None when absent. A key that is
    absent counts as a missing value (a frame without the column at all is
    refused by :func:`check_events` as a missing required column instead).
    Anything that is not a mapping is refused as such, with a reason, not an exception.
    """
    if not isinstance(event, Mapping):
        return None, f"the event is a {type(event).__name__} ({_plain(event)!r:.80}), not an event dict"
    user, item, raw_t, raw_ev = (event.get(c) for c in (USER_COL, ITEM_COL, TIME_COL, EVENT_COL))
    if _missing(user):
        return None, f"missing {USER_COL}"
    if _missing(item):
        return None, f"missing {ITEM_COL}"
    for col, v in ((USER_COL, user), (ITEM_COL, item)):
        why = id_problem(v)
        if why is not None:
            return None, f"{col} {_plain(v)!r:.80} {why}"
    t = _time.time() if _missing(raw_t) else _scalar_timestamp(raw_t)
    if math.isnan(t):
        return None, f"unparseable {TIME_COL} {_plain(raw_t)!r}{LIVE_TIMES}"
    if _missing(raw_ev):
        return None, f"missing {EVENT_COL}"
    ev = normalise_event(raw_ev)
    if ev is None:
        return None, f"unknown {EVENT_COL} {_plain(raw_ev)!r}; accepted: {list(EVENT_TYPES)}"
    rating = None
    for col in (RATING_COL, VALUE_COL):
        v = event.get(col)
        if not _missing(v):
            x = _number(v)
            if not math.isfinite(x):
                return None, f"{'non-numeric' if math.isnan(x) else 'infinite'} {col} {_plain(v)!r}"
            rating = x if col == RATING_COL else rating
    return (_plain(user), _plain(item), t, ev, rating), None


def check_events(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check an event frame row by row: returns ``(clean, rejected)``; never raises for bad rows.

    ``clean`` has the store's columns (user_id, item_id, timestamp in UTC seconds,
    event normalised to the schema's names, rating, value) for the rows that pass,
    under their input index labels; a missing timestamp (cell or column) means now.
    ``rejected`` has one row per failing input row: ``row`` (the input as a dict)
    and ``reason`` (the first problem found: a missing required column, a missing
    id or one that cannot be an id (a boolean, a list), an unparseable
    timestamp, a missing or unknown event type, a non-numeric rating or value).
    Unlike :func:`validate` it never raises, because a live stream must go on;
    :func:`check_event` is the same check for one dict. The frame itself must be
    a DataFrame with distinct column names (``TypeError`` / ``ValueError`` otherwise).
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"check_events expects a pandas DataFrame (events_frame turns event dicts into one), "
                        f"got {type(df).__name__}")
    repeated = df.columns[df.columns.duplicated()].unique().tolist()
    if repeated:
        # df[col] would be a frame, and each check would fail on it with a message naming nothing.
        raise ValueError(f"the events have repeated column name(s) {repeated} (columns: {list(df.columns)})")
    n = len(df)
    reason = np.full(n, None, dtype=object)

    def flag(mask, why, col=None, suffix=""):
        for i in np.flatnonzero(np.asarray(mask, dtype=bool) & pd.isna(reason)):
            reason[i] = why if col is None else f"{why} {_plain(df[col].iloc[i])!r}{suffix}"

    for col in (USER_COL, ITEM_COL, EVENT_COL):
        if col not in df.columns:
            flag(np.ones(n, bool), f"missing required column {col!r}")
    for col in (USER_COL, ITEM_COL):
        if col in df.columns:
            flag(_blank(df[col]), f"missing {col}")
    for col in (USER_COL, ITEM_COL):
        if col in df.columns:
            whys = id_problems(df[col])
            for i in np.flatnonzero(pd.notna(whys) & pd.isna(reason)):
                reason[i] = f"{col} {_plain(df[col].iloc[i])!r:.80} {whys[i]}"
    times = np.full(n, _time.time())
    if TIME_COL in df.columns and n:
        given = ~_blank(df[TIME_COL])
        parsed = parse_timestamps(df[TIME_COL]).to_numpy(dtype=np.float64)
        times[given] = parsed[given]
        flag(np.isnan(times), f"unparseable {TIME_COL}", TIME_COL, LIVE_TIMES)
    events = np.full(n, None, dtype=object)
    if EVENT_COL in df.columns and n:
        absent = _blank(df[EVENT_COL])
        flag(absent, f"missing {EVENT_COL}")
        events = _normalise_events(df[EVENT_COL])
        flag(pd.isna(events), f"unknown {EVENT_COL}", EVENT_COL, f"; accepted: {list(EVENT_TYPES)}")
    numbers = {}
    for col in (RATING_COL, VALUE_COL):
        numbers[col] = np.full(n, np.nan)
        if col in df.columns and n:
            numbers[col] = _numeric(df[col])
            flag(np.isnan(numbers[col]) & ~_blank(df[col]), f"non-numeric {col}", col)
            flag(np.isinf(numbers[col]), f"infinite {col}", col)
    ok = pd.isna(reason)
    clean = pd.DataFrame({
        USER_COL: df[USER_COL].to_numpy()[ok] if USER_COL in df.columns else [],
        ITEM_COL: df[ITEM_COL].to_numpy()[ok] if ITEM_COL in df.columns else [],
        TIME_COL: times[ok], EVENT_COL: events[ok], RATING_COL: numbers[RATING_COL][ok], VALUE_COL: numbers[VALUE_COL][ok],
    }, index=df.index[ok])
    bad_rows = np.flatnonzero(~ok)
    records = df.iloc[bad_rows].to_dict(orient="records") if len(bad_rows) else []
    rejected = pd.DataFrame({"row": records, "reason": list(reason[bad_rows])}, columns=["row", "reason"])
    return clean, rejected
