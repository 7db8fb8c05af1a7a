"""Reading the event store: SQL, events in a window, the quarantine, batches, and replay into an engine.

:class:`StoreReads` is the reading half of :class:`recapp.realtime.store.EventStore`
(which opens the file and appends); it uses the store's connection, lock and checks.
"""
from __future__ import annotations

import pandas as pd

from recapp.models.base import check_param
from recapp.realtime.store_rows import KIND_COLUMNS, events_filter, sent_ids
from recapp.schema import EVENT_COL, ITEM_COL, RATING_COL, TIME_COL, USER_COL, VALUE_COL

STORE_COLUMNS = (USER_COL, ITEM_COL, TIME_COL, EVENT_COL, RATING_COL, VALUE_COL)


class StoreReads:
    """The read methods of :class:`~recapp.realtime.store.EventStore`."""

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
        Ids are returned as stored (a number in a text store as its text); :meth:`iter_batches` gives them as sent.
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
        Ids come as they were sent (a number in a text store as that number), as ``append`` returned them.
        """
        check_param("batch_size", batch_size, low=1, integer=True)
        with self._lock:
            if "events" not in self._tables():
                return
            top = self.con.execute("SELECT max(seq) FROM events").fetchall()[0][0]
            # A read_only file written before id kinds were kept has no kind columns.
            kinds = [c for c in KIND_COLUMNS.values() if c in self._id_types()]
        if top is None:
            return
        cols = ", ".join(STORE_COLUMNS + tuple(kinds))
        after, params = "", [int(top)]
        while True:
            # Keyset paging on (timestamp, seq), so rows committed mid-replay shift nothing.
            page = self.sql(f"SELECT {cols}, seq FROM events WHERE seq <= ?{after} "
                            f"ORDER BY {TIME_COL}, seq LIMIT {int(batch_size)}", params)
            if not len(page):
                return
            last_t, last_seq = float(page[TIME_COL].iloc[-1]), int(page["seq"].iloc[-1])
            yield sent_ids(page.drop(columns="seq"))
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


__all__ = ["STORE_COLUMNS", "StoreReads"]
