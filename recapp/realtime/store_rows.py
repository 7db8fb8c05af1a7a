"""Which rows of a batch the event store may write, and how they are written as rows.

A batch that passed :func:`recapp.schema.check_events` can still not fit the
store: an id that is text, or an integer outside signed 64 bits, cannot go into
a BIGINT id column, and an ``event_id`` already stored (or earlier in the batch)
is a redelivery. :func:`screen` finds those rows; :func:`insert_frame` turns the
rest into the ``events`` table's rows. The transaction itself is
:meth:`recapp.realtime.store.EventStore.append`'s.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from recapp.realtime.ingest import EVENT_ID_COL, SeenIds
from recapp.schema import ITEM_COL, USER_COL
from recapp.schema.cells import _plain

BIGINT_MIN, BIGINT_MAX = -2 ** 63, 2 ** 63 - 1


def json_default(o):
    """``json.dumps`` fallback for a quarantined row's cells (numpy scalars, timestamps, missing values)."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (pd.Timestamp,)):
        return o.isoformat()
    if o is pd.NA or o is pd.NaT:
        return None
    return str(o)


def id_kind(values: pd.Series) -> str:
    """'BIGINT' when every id is an integer, else 'VARCHAR'."""
    if pd.api.types.is_integer_dtype(values):
        return "BIGINT"
    if pd.api.types.is_object_dtype(values) and len(values) and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return "BIGINT"
    return "VARCHAR"


def misfits(values: pd.Series, col: str, kind: str) -> list:
    """Per value, why it cannot go into the store's ``col`` column of type ``kind`` (None when it can)."""
    if kind != "BIGINT":
        return [None] * len(values)

    def why(v):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            return f"{col} {_plain(v)!r} is not an integer like the store's ids"
        if not BIGINT_MIN <= int(v) <= BIGINT_MAX:
            return f"{col} {_plain(v)!r} is outside the range of the store's BIGINT {col} column (signed 64-bit)"
        return None

    return [why(v) for v in values]


class Screened(NamedTuple):
    """What :func:`screen` keeps and refuses."""

    rows: pd.DataFrame       # the clean rows the store may write, index 0..n-1
    event_ids: list          # their normalised event ids (None: no id)
    rejected: list           # (row dict, reason), in the order they are quarantined
    new_ids: list            # event ids to remember once the batch is committed


def screen(clean: pd.DataFrame, frame: pd.DataFrame, eids: list, types: dict, seen: SeenIds) -> Screened:
    """Split checked rows into those the store may write and those it refuses.

    ``clean`` is ``check_events(frame)``'s clean part (``frame``'s index labels),
    ``eids`` its normalised event ids, ``types`` the ``events`` column types and
    ``seen`` the stored event ids. A row is refused for the first id (user, then
    item) that does not fit its column, else as a duplicate ``event_id``;
    ``seen`` is only read, so a batch that fails to commit leaves it unchanged.
    """
    bad = np.zeros(len(clean), dtype=bool)
    extra, new_ids = [], []
    for col in (USER_COL, ITEM_COL):
        for i, why in enumerate(misfits(clean[col], col, types[col])):
            if why is not None and not bad[i]:
                extra.append((clean.iloc[i].to_dict(), why))
                bad[i] = True
    # Idempotent delivery: an event_id already stored, or earlier in this batch, is a duplicate.
    batch_ids = set()
    for i, eid in enumerate(eids):
        if eid is None or bad[i]:
            continue
        if eid in seen or eid in batch_ids:
            # The input row, not the checked one: it shows the event_id as it was sent.
            extra.append((frame.loc[clean.index[i]].to_dict(), f"duplicate {EVENT_ID_COL} {_plain(frame.at[clean.index[i], EVENT_ID_COL])!r}"))
            bad[i] = True
        else:
            batch_ids.add(eid)
            new_ids.append(eid)
    kept_ids = [e for e, b in zip(eids, bad) if not b]
    return Screened(clean.loc[~bad].reset_index(drop=True), kept_ids, extra, new_ids)


def insert_frame(rows: pd.DataFrame, eids: list, types: dict, *, batch_id: int, first_seq: int, now: float) -> pd.DataFrame:
    """``rows`` (index 0..n-1) as the ``events`` table takes them, with ids converted to its column types.

    Adds seq (from ``first_seq``), batch_id, ingested_at and event_id; an integer
    id becomes its text in a VARCHAR column, so what is returned matches a replay.
    """
    ins = rows.copy()
    ins.insert(0, "batch_id", batch_id)
    ins.insert(0, "seq", np.arange(first_seq, first_seq + len(ins), dtype=np.int64))
    ins["ingested_at"] = now
    for col in (USER_COL, ITEM_COL):
        if types[col] == "VARCHAR":
            ins[col] = ins[col].astype(str).to_numpy(dtype=object)
        else:
            ins[col] = ins[col].to_numpy(dtype=np.int64)
    ins[EVENT_ID_COL] = pd.Series(eids, dtype=object)
    return ins


__all__ = ["BIGINT_MIN", "BIGINT_MAX", "Screened", "id_kind", "insert_frame", "json_default", "misfits", "screen"]
