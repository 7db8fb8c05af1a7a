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
"""
from __future__ import annotations

import os
import threading
import time as _time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recapp.models.base import check_param
from recapp.realtime.ingest import EVENT_ID_COL, SeenIds, event_id_key, unique_columns
from recapp.realtime.store_rows import events_filter, foreign_tables, id_kind, insert_frame, row_json, screen
# The row check lives in recapp.schema (one definition for validate, the store and the engine);
# its names stay importable from here.
from recapp.schema import (  # noqa: F401
    EVENT_COL, ITEM_COL, RATING_COL, TIME_COL, USER_COL, VALUE_COL, check_events, events_frame, normalise_event,
)

STORE_COLUMNS = (USER_COL, ITEM_COL, TIME_COL, EVENT_COL, RATING_COL, VALUE_COL)


@dataclass
class AppendResult:
    """One committed batch: its id, the rows written to ``events`` and those quarantined."""

    batch_id: int
    n_written: int
    n_quarantined: int
    events: pd.DataFrame       # the clean rows written, in the store's columns, ids as stored
    rejected: pd.DataFrame     # row, reason


class EventStore:
    """An append-only event log in an embedded DuckDB database file.

    ``path`` is a file (created if needed; ``":memory:"`` for a throw-away store).
    Tables: ``events`` (seq, batch_id, user_id, item_id, timestamp, event,
    rating, value, ingested_at, event_id), ``quarantine`` (batch_id, reason, row as JSON,
    received_at) and ``batches`` (batch_id, n_rows, n_quarantined, committed_at).
    A file written before ``event_id`` was stored still opens (opened for writing,
    the column is added). Id columns are BIGINT when the first batch's ids are
    integers, else VARCHAR; a later id that does not fit (text, or an integer
    outside the signed 64-bit range, in a BIGINT column) is quarantined, not
    coerced. An integer id fits a VARCHAR column as its text ("7"), and that text
    is what ``append`` returns in ``AppendResult.events``, so an engine writing
    through the store holds exactly what a replay from it would. ``pseudonymizer``
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
        try:
            self.con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.Error as exc:
            # DuckDB's message may not name the file; one process opens a file with one read_only setting.
            exc.add_note(f"opening the event store {self.path} with read_only={read_only} (a file open in this process "
                         "opens again only with the same read_only)")
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
                if types is not None and EVENT_ID_COL not in types:     # a file from before event ids were kept
                    self._exec(f"ALTER TABLE events ADD COLUMN {EVENT_ID_COL} VARCHAR")
            self._check_key()
        except BaseException:
            self.con.close()
            raise

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
                ingested_at DOUBLE, {EVENT_ID_COL} VARCHAR)
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

        Returns an :class:`AppendResult` whose ``events`` are the rows written and
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
                frame = self.pseudonymizer.frame(frame)
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
                    # The engine is fed these rows, ids converted as written, so it agrees with a replay.
                    written = ins[list(STORE_COLUMNS)]
                    cols = f"seq, batch_id, {USER_COL}, {ITEM_COL}, {TIME_COL}, {EVENT_COL}, {RATING_COL}, {VALUE_COL}, ingested_at, {EVENT_ID_COL}"
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

    # ---- reading -----------------------------------------------------------------------------
    def sql(self, query: str, params=None) -> pd.DataFrame:
        """Run SQL against the store (tables ``events``, ``quarantine``, ``batches``) and return a DataFrame."""
        self._check_open()
        with self._lock:
            return self.con.execute(query, params or []).df()

    def __len__(self) -> int:
        with self._lock:
            if "events" not in self._tables():
                return 0
            return int(self.con.execute("SELECT count(*) FROM events").fetchall()[0][0])

    def events(self, *, since=None, until=None, users=None) -> pd.DataFrame:
        """Stored events in timestamp order (then arrival order), optionally a time window or some users.

        ``since`` (included) and ``until`` (excluded) are times as an event's: epoch numbers, ISO 8601 text or datetimes;
        ``since`` after ``until`` is refused. ``users`` is one id or any collection of them, matched as the store
        holds ids (an integer finds its text in a text store; an id the store cannot hold finds nothing).
        """
        with self._lock:
            return self._events(since, until, users)

    def _events(self, since, until, users) -> pd.DataFrame:
        if "events" not in self._tables():
            return pd.DataFrame(columns=list(STORE_COLUMNS))
        where, params = events_filter(since, until, users, self._id_types()[USER_COL] if users is not None else None)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        cols = ", ".join(STORE_COLUMNS)
        return self.sql(f"SELECT {cols} FROM events{clause} ORDER BY {TIME_COL}, seq", params)

    def quarantine(self) -> pd.DataFrame:
        """Rejected rows: batch_id, reason, row_json (the input row), received_at."""
        return self.sql("SELECT batch_id, reason, row_json, received_at FROM quarantine ORDER BY batch_id")

    def batches(self) -> pd.DataFrame:
        """Committed batches: batch_id, n_rows, n_quarantined, committed_at."""
        return self.sql("SELECT * FROM batches ORDER BY batch_id")

    def iter_batches(self, batch_size: int = 10_000):
        """Stored events in timestamp order as DataFrames of at most ``batch_size`` rows (for replay).

        A snapshot: the events committed when iteration starts, each exactly once;
        a batch appended meanwhile (even with earlier timestamps) is not included.
        """
        check_param("batch_size", batch_size, low=1, integer=True)
        with self._lock:
            if "events" not in self._tables():
                return
            top = self.con.execute("SELECT max(seq) FROM events").fetchall()[0][0]
        if top is None:
            return
        cols = ", ".join(STORE_COLUMNS)
        after, params = "", [int(top)]
        while True:
            # Keyset paging on (timestamp, seq), so rows committed mid-replay shift nothing.
            page = self.sql(f"SELECT {cols}, seq FROM events WHERE seq <= ?{after} "
                            f"ORDER BY {TIME_COL}, seq LIMIT {int(batch_size)}", params)
            if not len(page):
                return
            last_t, last_seq = float(page[TIME_COL].iloc[-1]), int(page["seq"].iloc[-1])
            yield page.drop(columns="seq")
            if len(page) < batch_size:
                return
            after = f" AND ({TIME_COL} > ? OR ({TIME_COL} = ? AND seq > ?))"
            params = [int(top), last_t, last_t, last_seq]

    def replay(self, engine, batch_size: int = 10_000):
        """Ingest every stored event, in timestamp order, into ``engine`` (an Engine not attached to this store)."""
        if engine.store is self:
            raise ValueError("replaying a store into an engine attached to the same store would duplicate every event")
        theirs = engine.pseudonymizer
        if self.pseudonymised and theirs is not None and theirs.key_id != self.key_id:
            raise ValueError(f"the store holds pseudonyms of key id {self.key_id!r} but the engine's pseudonymizer has "
                             f"key id {theirs.key_id!r}; replay with the store's key")
        for batch in self.iter_batches(batch_size):
            engine.ingest(batch, pseudonymised=self.pseudonymised)
        return engine

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self.con.close()
            self._closed = True

    def __enter__(self) -> "EventStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._closed:
            return f"EventStore({self.path!r}, closed)"
        return f"EventStore({self.path!r}, events={len(self):,})"


__all__ = ["EventStore", "AppendResult", "check_events", "normalise_event", "STORE_COLUMNS"]
