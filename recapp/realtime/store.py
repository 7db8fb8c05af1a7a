"""The event store: an embedded DuckDB file, append-only, one transaction per batch.

Every batch is validated row by row; valid rows go to the ``events`` table and
rows that fail go to ``quarantine`` with the reason and the row as JSON, in
the same transaction, so nothing is dropped silently and a batch is either
wholly committed or not at all. DuckDB writes its log before a commit returns,
so a process killed mid-stream loses no committed batch.
A row with an ``event_id`` already stored (among the latest million) is
quarantined as a duplicate, so a redelivered event is neither written nor
applied twice; the ids are kept in the file, so this survives a restart.

>>> store = EventStore("shop.duckdb")
>>> store.append(events_frame)                        # AppendResult(batch_id, n_written, n_quarantined)
>>> store.sql("SELECT event, count(*) FROM events GROUP BY 1")
>>> engine = Engine.from_store(model, store)          # replay into a fresh engine

With a :class:`~recapp.privacy.Pseudonymizer` every user id is replaced by its
pseudonym before anything is written (quarantined rows included, which then
keep only the event columns), so the file never holds a raw shopper id. The
store records the key's fingerprint (table ``meta``): reopening it with another
key, or appending raw ids to it without one, is refused.

One writable ``EventStore`` per file in a process: DuckDB would let a second one write, but each
keeps its own cache of the stored event ids, so a redelivery through the other would be written
twice. A second writer is refused; share the first (an engine takes it as ``store=``).
The reading methods live in :class:`~recapp.realtime.store_reads.StoreReads`.
"""
from __future__ import annotations

import os
import threading
import time as _time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recapp.realtime.ingest import EVENT_ID_COL, SeenIds, event_id_key, unique_columns
from recapp.realtime.store_reads import STORE_COLUMNS, StoreReads
from recapp.realtime.store_rows import KIND_COLUMNS, foreign_tables, id_kind, insert_frame, row_json, screen, sent_ids
# The row check lives in recapp.schema (one definition for validate, the store and the engine);
# its names stay importable from here.
from recapp.schema import (  # noqa: F401
    EVENT_COL, ITEM_COL, RATING_COL, TIME_COL, USER_COL, VALUE_COL, check_events, events_frame, normalise_event,
)

# The writable stores open in this process, by resolved file path (see the module docstring).
_WRITERS: "weakref.WeakValueDictionary[str, EventStore]" = weakref.WeakValueDictionary()
_WRITERS_LOCK = threading.Lock()


@dataclass
class AppendResult:
    """One committed batch: its id, the rows written to ``events`` and those quarantined."""

    batch_id: int
    n_written: int
    n_quarantined: int
    events: pd.DataFrame       # the clean rows written, in the store's columns, ids as sent
    rejected: pd.DataFrame     # row, reason


class EventStore(StoreReads):
    """An append-only event log in an embedded DuckDB database file.

    ``path`` is a file (created if needed; ``":memory:"`` for a throw-away store).
    Tables: ``events`` (seq, batch_id, user_id, item_id, timestamp, event,
    rating, value, ingested_at, event_id), ``quarantine`` (batch_id, reason, row as JSON,
    received_at) and ``batches`` (batch_id, n_rows, n_quarantined, committed_at).
    A file written before ``event_id`` was stored still opens (opened for writing,
    the column is added). Id columns are BIGINT when the first batch's ids are
    integers, else VARCHAR; a later id that does not fit (text, or an integer
    outside the signed 64-bit range, in a BIGINT column; in a VARCHAR column
    anything but text, integers and floats) is quarantined, not coerced. A number
    fits a VARCHAR column as its text ("7"), marked as a number (columns
    ``user_id_kind``, ``item_id_kind``), so ``append`` (``AppendResult.events``)
    and :meth:`iter_batches` give back 7, as the engine keys it without a store:
    7 and "7" stay two shoppers, and a replay holds what the live engine held.
    A second writable store on a file this process already writes is refused
    (``ValueError``). ``pseudonymizer``
    (see the module docstring) makes the store hold pseudonyms; read methods
    return what is stored, so filter by ``pseudonymizer.many(raw_ids)``.
    One object may be shared by threads: every use of its connection holds its lock.
    """

    def __init__(self, path: str | Path = "events.duckdb", *, read_only: bool = False, pseudonymizer=None):
        import duckdb

        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a file path (str or Path), got {type(path).__name__}")
        self.path = str(path)
        if not self.path.strip():
            # DuckDB reads "" as a throw-away in-memory database: every event would be gone at exit.
            raise ValueError("path is empty; give the store's file, or ':memory:' for a throw-away store")
        if self.path != ":memory:":
            file = Path(self.path).expanduser()
            if read_only and not file.exists():
                raise FileNotFoundError(f"the store {self.path} does not exist, so it cannot be opened read_only")
            file.parent.mkdir(parents=True, exist_ok=True)
        self.read_only = read_only
        self._writer_key = None
        if not read_only and self.path != ":memory:":
            self._claim_writer(os.path.realpath(Path(self.path).expanduser()))
        try:
            self.con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.Error as exc:
            # DuckDB's message may not name the file; one process opens a file with one read_only setting.
            exc.add_note(f"opening the event store {self.path} with read_only={read_only} (a file open in this process "
                         "opens again only with the same read_only)")
            self._release_writer()
            raise
        except BaseException:
            self._release_writer()
            raise
        self._closed = False
        # Re-entrant: a DuckDB connection refuses a second call while one runs ("connection is busy"),
        # so every use of self.con holds this lock, including reads nested in append.
        self._lock = threading.RLock()
        self._seen: SeenIds | None = None      # event ids, loaded from the file on the first append
        self.pseudonymizer = pseudonymizer
        try:
            self._check_tables()
            if not read_only:
                self._exec("""
                    CREATE TABLE IF NOT EXISTS batches (batch_id BIGINT PRIMARY KEY, n_rows BIGINT, n_quarantined BIGINT,
                                                        committed_at DOUBLE);
                    CREATE TABLE IF NOT EXISTS quarantine (batch_id BIGINT, reason VARCHAR, row_json VARCHAR, received_at DOUBLE);
                    CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
                """)
                types = self._id_types()
                # A file from before event ids, or id kinds, were kept.
                for col in (EVENT_ID_COL, *KIND_COLUMNS.values()):
                    if types is not None and col not in types:
                        self._exec(f"ALTER TABLE events ADD COLUMN {col} VARCHAR")
            self._check_key()
        except BaseException:
            self.con.close()
            self._release_writer()
            raise

    def _claim_writer(self, key: str) -> None:
        with _WRITERS_LOCK:
            other = _WRITERS.get(key)
            # One still being opened has no _closed yet: it counts as open.
            if other is not None and not getattr(other, "_closed", False):
                raise ValueError(
                    f"the store {self.path} is already open for writing in this process (as {other.path!r}); "
                    "use that EventStore (an engine takes it as store=) or close it first: two writers would each "
                    "remember only their own event ids, so a redelivered event could be written twice")
            _WRITERS[key] = self
            self._writer_key = key

    def _release_writer(self) -> None:
        with _WRITERS_LOCK:
            if self._writer_key is not None and _WRITERS.get(self._writer_key) is self:
                del _WRITERS[self._writer_key]
            self._writer_key = None

    @classmethod
    def for_writer(cls, store, pseudonymizer=None) -> "EventStore":
        """The store a writer (an engine) appends through: ``store`` itself, or one opened at that path.

        Refuses a store whose pseudonymizer is not the writer's, or a pseudonymised
        store for a writer without one, so one log never mixes raw ids and pseudonyms.
        """
        opened = not isinstance(store, cls)
        store = cls(store, pseudonymizer=pseudonymizer) if opened else store
        if store.pseudonymizer != pseudonymizer or (store.pseudonymised and pseudonymizer is None):
            if opened:
                store.close()       # the writer never gets it, so nothing else would release the file
            raise ValueError(f"store has pseudonymizer {store.pseudonymizer!r} but the engine has "
                             f"{pseudonymizer!r}; give both the same one")
        return store

    # ---- pseudonyms -----------------------------------------------------------------------
    def _read_key_id(self) -> str | None:
        with self._lock:
            if "meta" not in self._tables():
                return None
            got = self.con.execute("SELECT value FROM meta WHERE key = 'pseudonym_key_id'").fetchall()
            return got[0][0] if got else None

    @property
    def pseudonymised(self) -> bool:
        """Whether the stored user ids are pseudonyms (``key_id`` is their key's fingerprint)."""
        return self.key_id is not None

    def _check_key(self) -> None:
        self.key_id = stored = self._read_key_id()
        p = self.pseudonymizer
        if p is None:
            return
        if stored is not None and stored != p.key_id:
            raise ValueError(f"pseudonymizer has key id {p.key_id!r} but the store {self.path} holds pseudonyms made "
                             f"with key id {stored!r}; use that key (a second key would split every shopper in two)")
        if stored is None:
            if len(self):
                raise ValueError(f"the store {self.path} already holds raw user ids; pseudonymise into a new store "
                                 "(append pseudonymizer.frame(store.events()) to a fresh EventStore) instead")
            if self.read_only:
                raise ValueError(f"the store {self.path} is empty and read_only, so it cannot record the pseudonymizer")
            self._exec("INSERT INTO meta VALUES ('pseudonym_key_id', ?)", [p.key_id])
            self.key_id = p.key_id

    def _exec(self, query: str, params=None) -> None:
        # DuckDB wants every result consumed before the next statement on the connection.
        with self._lock:
            self.con.execute(query, params or []).fetchall()

    # ---- schema -------------------------------------------------------------------------
    def _check_tables(self) -> None:
        """Refuse a DuckDB file whose tables of these names are not the store's (another program's database)."""
        with self._lock:
            rows = self.con.execute("SELECT table_name, column_name FROM information_schema.columns "
                                    "WHERE table_schema = 'main'").fetchall()
        why = foreign_tables(rows)
        if why:
            raise ValueError(f"{self.path} is not an event store: {why}; give the store another file")

    def _check_open(self) -> None:
        # DuckDB's own error ("Connection already closed") would not say which store.
        if self._closed:
            raise ValueError(f"the store {self.path} is closed; open it again with EventStore({self.path!r})")

    def _tables(self) -> set:
        self._check_open()
        with self._lock:
            return {r[0] for r in self.con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}

    def _id_types(self) -> dict | None:
        with self._lock:
            if "events" not in self._tables():
                return None
            rows = self.con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                    "WHERE table_schema = 'main' AND table_name = 'events'").fetchall()
            return {c: t for c, t in rows}

    def _create_events(self, clean: pd.DataFrame) -> None:
        ut, it = id_kind(clean[USER_COL]), id_kind(clean[ITEM_COL])
        self._exec(f"""
            CREATE TABLE IF NOT EXISTS events (
                seq BIGINT, batch_id BIGINT, {USER_COL} {ut} NOT NULL, {ITEM_COL} {it} NOT NULL,
                {TIME_COL} DOUBLE NOT NULL, {EVENT_COL} VARCHAR NOT NULL, {RATING_COL} DOUBLE, {VALUE_COL} DOUBLE,
                ingested_at DOUBLE, {EVENT_ID_COL} VARCHAR, {KIND_COLUMNS[USER_COL]} VARCHAR, {KIND_COLUMNS[ITEM_COL]} VARCHAR)
        """)

    def _seen_ids(self) -> SeenIds:
        """The latest event ids in the file (read once, then kept up to date by ``append``)."""
        if self._seen is None:
            seen = SeenIds()
            types = self._id_types()
            if types is not None and EVENT_ID_COL in types:
                rows = self.con.execute(
                    f"SELECT {EVENT_ID_COL} FROM (SELECT {EVENT_ID_COL}, seq FROM events WHERE {EVENT_ID_COL} IS NOT NULL "
                    f"ORDER BY seq DESC LIMIT {int(seen.capacity)}) ORDER BY seq").fetchall()
                for (eid,) in rows:
                    seen.check_and_add(eid)
            self._seen = seen
        return self._seen

    def _rollback(self, exc: BaseException) -> None:
        """Roll back the open transaction after ``exc``; a failing rollback is noted on ``exc``, never raised instead."""
        try:
            self.con.rollback()
            return
        except Exception as err:
            exc.add_note(f"rolling back the batch in {self.path} also failed: {type(err).__name__}: {err}")
        try:
            # Once more as SQL, so no transaction stays open; "no transaction is active" means none did.
            self.con.execute("ROLLBACK").fetchall()
        except Exception as err:
            exc.add_note(f"the second rollback in {self.path} failed too: {type(err).__name__}: {err}")

    # ---- writing --------------------------------------------------------------------------
    def append(self, events, *, pseudonymised: bool = False) -> AppendResult:
        """Validate and commit one batch (a dict, a list of dicts or a DataFrame) in one transaction.

        Returns an :class:`AppendResult` whose ``events`` are the rows written (ids as sent) and
        ``rejected`` those quarantined with their reason. When it returns, the batch is durable.
        With a pseudonymizer, user ids are replaced first; ``pseudonymised=True``
        says the caller (the engine) already did so with the same key.
        A frame with a repeated column name, or a closed store, is refused (``ValueError``).
        """
        self._check_open()
        if self.read_only:
            raise PermissionError(f"the store {self.path} was opened read_only")
        if not pseudonymised and self.pseudonymizer is None and self.pseudonymised:
            raise ValueError(f"the store {self.path} holds pseudonyms (key id {self.key_id!r}); open it with "
                             "pseudonymizer=Pseudonymizer.from_env() to append, so no raw id is written")
        if isinstance(events, Mapping):
            frame = pd.DataFrame([dict(events)])
        elif isinstance(events, pd.DataFrame):
            frame = events
        else:
            frame = events_frame(events)
        if TIME_COL not in frame.columns and len(frame):
            frame = frame.assign(**{TIME_COL: _time.time()})
        frame = unique_columns(frame).reset_index(drop=True)
        if self.pseudonymised:
            # Only event columns reach the file: an extra column could carry the raw id or other personal data.
            frame = frame[[c for c in frame.columns if c in STORE_COLUMNS or c == "event_id"]]
            if not pseudonymised and USER_COL in frame.columns:
                # events(), not frame(): a row whose user id cannot be one is quarantined alone, not the batch.
                frame = self.pseudonymizer.events(frame)
        clean, rejected = check_events(frame)
        # Normalised event ids (None: no id) of the clean rows; check_events keeps the input's index labels.
        eids = ([event_id_key(v) for v in frame[EVENT_ID_COL].to_numpy(dtype=object)[clean.index.to_numpy()]]
                if EVENT_ID_COL in frame.columns else [None] * len(clean))
        with self._lock:
            types = self._id_types()
            if types is None and len(clean):
                self._create_events(clean)
                types = self._id_types()
            extra, new_ids = [], []
            if types is not None and len(clean):
                clean, eids, extra, new_ids = screen(clean, frame, eids, types, self._seen_ids())
            if extra:
                more = pd.DataFrame({"row": [r for r, _ in extra], "reason": [w for _, w in extra]})
                rejected = pd.concat([rejected.astype(object), more.astype(object)], ignore_index=True) if len(rejected) else more
            written = clean
            now = _time.time()
            self.con.begin()
            try:
                batch_id = int(self.con.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM batches").fetchall()[0][0])
                if len(clean):
                    start = int(self.con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchall()[0][0])
                    ins = insert_frame(clean, eids, types, batch_id=batch_id, first_seq=start + 1, now=now)
                    # The engine is fed these rows read back as a replay reads them, so the two agree.
                    written = sent_ids(ins[list(STORE_COLUMNS) + list(KIND_COLUMNS.values())])
                    cols = (f"seq, batch_id, {USER_COL}, {ITEM_COL}, {TIME_COL}, {EVENT_COL}, {RATING_COL}, {VALUE_COL}, "
                            f"ingested_at, {EVENT_ID_COL}, {', '.join(KIND_COLUMNS.values())}")
                    self.con.register("_batch", ins)
                    try:
                        self._exec(f"INSERT INTO events ({cols}) SELECT {cols} FROM _batch")
                    finally:
                        self.con.unregister("_batch")
                if len(rejected):
                    q = pd.DataFrame({
                        "batch_id": batch_id,
                        "reason": rejected["reason"].astype(str).to_numpy(dtype=object),
                        "row_json": [row_json(r) for r in rejected["row"]],
                        "received_at": now,
                    })
                    self.con.register("_quar", q)
                    try:
                        self._exec("INSERT INTO quarantine SELECT batch_id, reason, row_json, received_at FROM _quar")
                    finally:
                        self.con.unregister("_quar")
                self._exec("INSERT INTO batches VALUES (?, ?, ?, ?)", [batch_id, len(clean), len(rejected), now])
                self.con.commit()
            except BaseException as exc:
                self._rollback(exc)
                raise
            for eid in new_ids:           # only once committed: a batch that failed may be sent again
                self._seen.check_and_add(eid)
        return AppendResult(batch_id, len(written), len(rejected), written, rejected.reset_index(drop=True))

    def close(self) -> None:
        """Close the database connection (and let this process open the file for writing again)."""
        with self._lock:
            self.con.close()
            self._closed = True
            self._release_writer()

    def __enter__(self) -> "EventStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._closed:
            return f"EventStore({self.path!r}, closed)"
        return f"EventStore({self.path!r}, events={len(self):,})"


__all__ = ["EventStore", "AppendResult", "check_events", "normalise_event", "STORE_COLUMNS"]
