"""Which rows of a batch the event store may write, and how they are written as rows.

A batch that passed :func:`recapp.schema.check_events` can still not fit the
store: an id that is text, or an integer outside signed 64 bits, cannot go into
a BIGINT id column, and an ``event_id`` already stored (or earlier in the batch)
is a redelivery. :func:`screen` finds those rows; :func:`insert_frame` turns the
rest into the ``events`` table's rows, and :func:`sent_ids` reads them back as sent
(a VARCHAR id column marks each number it holds as text, so 7 comes back 7, not "7"). The transaction itself is
:meth:`recapp.realtime.store.EventStore.append`'s.
:func:`events_filter` and :func:`stored_ids` match a read's window and users the same way, and
:func:`foreign_tables` tells a store's file from another program's database.
"""
from __future__ import annotations

import json
import math
from typing import NamedTuple

import numpy as np
import pandas as pd

from recapp.realtime.ingest import EVENT_ID_COL, SeenIds
from recapp.schema import EVENT_COL, ITEM_COL, RATING_COL, TIME_COL, USER_COL, VALUE_COL
from recapp.schema.cells import LIVE_TIMES, _missing, _plain, _scalar_timestamp, id_problem

BIGINT_MIN, BIGINT_MAX = -2 ** 63, 2 ** 63 - 1


#: The columns each table of a store has (``event_id`` is added to an older file's ``events`` on opening).
TABLE_COLUMNS = {
    "events": ("seq", "batch_id", USER_COL, ITEM_COL, TIME_COL, EVENT_COL, RATING_COL, VALUE_COL, "ingested_at"),
    "batches": ("batch_id", "n_rows", "n_quarantined", "committed_at"),
    "quarantine": ("batch_id", "reason", "row_json", "received_at"),
    "meta": ("key", "value"),
}


def foreign_tables(columns) -> str | None:
    """Why a database's ``(table, column)`` pairs are not a store's: a table of a store's name lacking its columns."""
    found: dict = {}
    for table, col in columns:
        found.setdefault(table, set()).add(col)
    for table, cols in TABLE_COLUMNS.items():
        lacking = [c for c in cols if table in found and c not in found[table]]
        if lacking:
            return f"its table {table!r} lacks column(s) {lacking} (it has {sorted(found[table])})"
    return None


def json_default(o):
    """``json.dumps`` fallback for a quarantined row's cells (numpy scalars, timestamps, missing values)."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (pd.Timestamp,)):
        return o.isoformat()
    if o is pd.NA or o is pd.NaT:
        return None
    return str(o)


def row_json(row: dict) -> str:
    """A quarantined row as JSON; a column name JSON cannot key (a tuple) becomes its text rather than failing the batch."""
    plain = row if all(isinstance(k, (str, int, float, bool)) or k is None for k in row) else {str(k): v for k, v in row.items()}
    return json.dumps(plain, default=json_default)


def id_kind(values: pd.Series) -> str:
    """'BIGINT' when every id is an integer, else 'VARCHAR'."""
    if pd.api.types.is_integer_dtype(values):
        return "BIGINT"
    if pd.api.types.is_object_dtype(values) and len(values) and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return "BIGINT"
    return "VARCHAR"


#: Per id column, the column that says which ids in a VARCHAR column were numbers when sent
#: (NULL: text, or any id of a BIGINT column); added to an older file's ``events`` on opening.
KIND_COLUMNS = {USER_COL: "user_id_kind", ITEM_COL: "item_id_kind"}
# A number's kind and how its stored text is read back: the engine keys ids as sent, so 7 and "7"
# are two shoppers while 7 and 7.0 are one; the text alone ("7") would merge the first pair.
_READ_BACK = {"int": int, "float": float}


def _text_kind(v) -> str | None:
    """The kind marking ``v`` in a VARCHAR id column: None for text, "int"/"float" for a number, "" when it cannot go there."""
    if isinstance(v, str):
        return None
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return "int"
    if isinstance(v, (float, np.floating)):
        return "float"
    return ""


def _as_text(v, kind: str | None) -> str:
    # repr of a Python float reads back as the same float ("0.1", "1e+20"); str() of a numpy float32 would not.
    return str(v) if kind is None else str(int(v)) if kind == "int" else repr(float(v))


def misfits(values: pd.Series, col: str, kind: str) -> list:
    """Per value, why it cannot go into the store's ``col`` column of type ``kind`` (None when it can).

    A VARCHAR column holds text, integers and floats (marked so they read back as sent); an id of
    another type (bytes, a Decimal, a tuple) would come back as different text, so it is refused.
    """
    if kind != "BIGINT":
        if pd.api.types.infer_dtype(values, skipna=False) == "string":
            return [None] * len(values)
        return [None if _text_kind(v) != "" else
                f"{col} {_plain(v)!r:.80} is a {type(v).__name__}; the store's text {col} column keeps text, "
                "integers and floats, so it would not read back as sent" for v in values]

    def why(v):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            return f"{col} {_plain(v)!r} is not an integer like the store's ids"
        if not BIGINT_MIN <= int(v) <= BIGINT_MAX:
            return f"{col} {_plain(v)!r} is outside the range of the store's BIGINT {col} column (signed 64-bit)"
        return None

    return [why(v) for v in values]


def stored_ids(values, kind: str) -> list:
    """``values`` (one id or a collection) as an id column of type ``kind`` holds them, for a filter.

    Text is matched as text in a VARCHAR column, and an integer as its text there
    (:func:`insert_frame` writes it so); a value the column cannot hold (missing,
    text or out of range in a BIGINT column) is left out, as no row can have it.
    """
    if isinstance(values, (str, bytes)) or not np.iterable(values):
        values = [values]
    out = []
    for v in map(_plain, values):
        if _missing(v) or id_problem(v) is not None:
            continue
        if kind != "BIGINT":
            out.append(str(v))
        elif misfits(pd.Series([v], dtype=object), "", kind)[0] is None:
            out.append(int(v))
    return out


def events_filter(since, until, users, user_kind: str | None) -> tuple[list, list]:
    """SQL conditions and their parameters for :meth:`EventStore.events`'s time window and users.

    Raises ``ValueError`` naming a bound that is not a time, or ``since`` after ``until``.
    ``user_kind`` is the store's user id column type (needed only with ``users``).
    """
    where, params = [], []
    for name, bound, op in (("since", since, ">="), ("until", until, "<")):
        if bound is not None:
            where.append(f"{TIME_COL} {op} ?")
            params.append(_bound_seconds(name, bound))
    if since is not None and until is not None and params[0] > params[1]:
        raise ValueError(f"since={since!r:.80} is after until={until!r:.80}; the window [since, until) holds no time")
    if users is not None:
        wanted = stored_ids(users, user_kind)
        # "IN ()" is a DuckDB syntax error; FALSE keeps the columns' types in the empty answer.
        where.append(f"{USER_COL} IN ({', '.join('?' for _ in wanted)})" if wanted else "FALSE")
        params.extend(wanted)
    return where, params


def _bound_seconds(name: str, value) -> float:
    """A time window's end as UTC seconds, read as an event's time is; ValueError naming it otherwise."""
    t = _scalar_timestamp(value)
    if math.isnan(t):
        raise ValueError(f"{name}={value!r:.80} is not a time{LIVE_TIMES}")
    return t


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

    Adds seq (from ``first_seq``), batch_id, ingested_at, event_id and the id kind
    columns; a number in a VARCHAR column is written as its text, marked with its kind
    (:data:`KIND_COLUMNS`), so :func:`sent_ids` gives back the id sent.
    """
    ins = rows.copy()
    ins.insert(0, "batch_id", batch_id)
    ins.insert(0, "seq", np.arange(first_seq, first_seq + len(ins), dtype=np.int64))
    ins["ingested_at"] = now
    for col in (USER_COL, ITEM_COL):
        if types[col] == "VARCHAR" and pd.api.types.infer_dtype(ins[col], skipna=False) == "string":
            # All text, the usual text store's batch: nothing to mark, and no per-id Python work.
            ins[col] = ins[col].to_numpy(dtype=object)
            ins[KIND_COLUMNS[col]] = pd.Series([None] * len(ins), index=ins.index, dtype=object)
        elif types[col] == "VARCHAR":
            values = [_plain(v) for v in ins[col].tolist()]
            kinds = [_text_kind(v) for v in values]
            ins[col] = pd.Series([_as_text(v, k) for v, k in zip(values, kinds)], index=ins.index, dtype=object)
            ins[KIND_COLUMNS[col]] = pd.Series(kinds, index=ins.index, dtype=object)
        else:
            ins[col] = ins[col].to_numpy(dtype=np.int64)
            ins[KIND_COLUMNS[col]] = pd.Series([None] * len(ins), index=ins.index, dtype=object)
    ins[EVENT_ID_COL] = pd.Series(eids, dtype=object)
    return ins


def sent_ids(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` of the ``events`` table with each id as it was sent and the kind columns dropped.

    A number a VARCHAR column holds as text is read back as that number; text, the ids
    of a BIGINT column and rows written before kinds were kept are returned as stored.
    """
    kinds = [c for c in KIND_COLUMNS.values() if c in rows.columns]
    out = rows.drop(columns=kinds)
    for col, kcol in KIND_COLUMNS.items():
        if kcol in rows.columns and rows[kcol].notna().any():
            out[col] = pd.Series([v if k is None or k != k else _READ_BACK[k](v)
                                  for v, k in zip(rows[col].tolist(), rows[kcol].tolist())], index=rows.index, dtype=object)
    return out


__all__ = ["BIGINT_MIN", "BIGINT_MAX", "KIND_COLUMNS", "Screened", "id_kind", "insert_frame", "sent_ids", "json_default", "misfits", "screen", "stored_ids",
           "TABLE_COLUMNS", "foreign_tables", "events_filter", "row_json"]
