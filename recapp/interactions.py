"""Interactions: the shared currency between data, models and the engine.

It holds the external <-> internal id maps, a CSR user x item matrix of summed
event weights, and every user's time-ordered sequence of (item, event, time).
Event codes and weights live in :mod:`recapp.event_weights`, log fingerprints in
:mod:`recapp.fingerprint` and the save format in :mod:`recapp.interactions_saved`;
their public names are importable from here too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recapp.event_weights import EVENT_CODES, event_weights_for, resolve_event_weights
from recapp.fingerprint import _schema_frame, events_fingerprint
from recapp.interactions_saved import _check_saved_events, _ids_from_json, _ids_to_json
from recapp.schema import (
    EVENT_COL,
    EVENT_TYPES,
    ITEM_COL,
    RATING_COL,
    TIME_COL,
    USER_COL,
    SchemaError,
    require_columns,
)


@dataclass
class Interactions:
    """Id maps, a CSR matrix and time-ordered sequences built from an event frame.

    Build with :meth:`from_frame`. Internal indices are positions in
    ``user_ids`` / ``item_ids``; ``matrix[u, i]`` sums the weights of all of
    user ``u``'s events on item ``i``.
    """

    frame: pd.DataFrame           # the events, with columns uidx, iidx, weight, event_code
    user_ids: pd.Index
    item_ids: pd.Index
    matrix: sp.csr_matrix
    seq_indptr: np.ndarray        # user u's events are seq_*[seq_indptr[u]:seq_indptr[u+1]]
    seq_items: np.ndarray
    seq_events: np.ndarray
    seq_times: np.ndarray
    event_weights: dict
    seq_order: np.ndarray | None = None  # frame row positions in seq_* order: seq_items == frame["iidx"][seq_order]

    def __post_init__(self):
        if self.seq_order is None:
            self.seq_order = _user_time_order(self.frame)

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        *,
        event_weights: dict | None = None,
        user_ids: pd.Index | None = None,
        item_ids: pd.Index | None = None,
        col_user: str = USER_COL,
        col_item: str = ITEM_COL,
        col_time: str = TIME_COL,
        col_event: str = EVENT_COL,
        col_rating: str = RATING_COL,
    ) -> "Interactions":
        """Build from a DataFrame in the schema of :mod:`recapp.schema`.

        ``user_ids`` / ``item_ids`` fix the id space (new ids are appended after
        them), so a test frame can share a training frame's indices.
        """
        require_columns(df, "the event frame", col_user, col_item)
        if len(df) and (df[col_user].isna().any() or df[col_item].isna().any()):
            raise SchemaError(f"columns {col_user!r} and {col_item!r} must not contain missing ids; run recapp.schema.validate first")
        user_ids = _extend_index(user_ids, df[col_user])
        item_ids = _extend_index(item_ids, df[col_item])
        frame = _schema_frame(df, col_user, col_item, col_time, col_event, col_rating)
        unknown_events = ~pd.Series(frame[EVENT_COL]).isin(EVENT_TYPES).to_numpy()
        if unknown_events.any():
            bad = sorted(set(frame[EVENT_COL][unknown_events].astype(str)))[:5]
            raise SchemaError(f"column {col_event!r} has unknown event type(s) {bad}; accepted: {list(EVENT_TYPES)}")
        frame["uidx"] = user_ids.get_indexer(frame[USER_COL]).astype(np.int64)
        frame["iidx"] = item_ids.get_indexer(frame[ITEM_COL]).astype(np.int64)
        frame["weight"] = event_weights_for(frame, event_weights)
        frame["event_code"] = frame[EVENT_COL].map(EVENT_CODES).to_numpy(dtype=np.int8)
        return cls._assemble(frame, user_ids, item_ids, event_weights or {})

    @classmethod
    def _assemble(cls, frame: pd.DataFrame, user_ids: pd.Index, item_ids: pd.Index, event_weights: dict) -> "Interactions":
        n_users, n_items = len(user_ids), len(item_ids)
        matrix = sp.csr_matrix(
            (frame["weight"].to_numpy(np.float32), (frame["uidx"].to_numpy(), frame["iidx"].to_numpy())),
            shape=(n_users, n_items),
        )
        matrix.sum_duplicates()
        order = _user_time_order(frame)
        uidx_sorted = frame["uidx"].to_numpy()[order]
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.add.at(indptr, uidx_sorted + 1, 1)
        indptr = np.cumsum(indptr)
        return cls(
            frame=frame.reset_index(drop=True),
            user_ids=user_ids,
            item_ids=item_ids,
            matrix=matrix,
            seq_indptr=indptr,
            seq_items=frame["iidx"].to_numpy()[order],
            seq_events=frame["event_code"].to_numpy()[order],
            seq_times=frame[TIME_COL].to_numpy()[order],
            event_weights=event_weights,
            seq_order=order,
        )

    # ---- sizes and id maps -------------------------------------------------
    @property
    def n_users(self) -> int:
        """Number of users in the id map."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Number of items in the id map."""
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return f"Interactions({len(self):,} events, {self.n_users:,} users, {self.n_items:,} items, nnz={self.matrix.nnz:,})"

    def user_index(self, users) -> np.ndarray:
        """Internal indices of external user ids; -1 for unknown users."""
        return self.user_ids.get_indexer(pd.Index(np.atleast_1d(np.asarray(users, dtype=object if self.user_ids.dtype == object else None))))

    def item_index(self, items) -> np.ndarray:
        """Internal indices of external item ids; -1 for unknown items."""
        return self.item_ids.get_indexer(pd.Index(np.atleast_1d(np.asarray(items, dtype=object if self.item_ids.dtype == object else None))))

    def fingerprint(self) -> str:
        """:func:`events_fingerprint` of the events held here (equal to that of the frame they were built from)."""
        return events_fingerprint(self.frame)  # the frame holds from_frame's filled-in columns

    # ---- views ---------------------------------------------------------------
    def binary(self) -> sp.csr_matrix:
        """The matrix with every stored weight set to 1."""
        b = self.matrix.copy()
        b.data[:] = 1.0
        return b

    def sequence(self, uidx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """User ``uidx``'s time-ordered (items, event codes, times)."""
        a, b = self.seq_indptr[uidx], self.seq_indptr[uidx + 1]
        return self.seq_items[a:b], self.seq_events[a:b], self.seq_times[a:b]

    def user_events(self, uidx: int) -> pd.DataFrame:
        """User ``uidx``'s rows of :attr:`frame`, oldest first (equal times in row order)."""
        return self.frame.iloc[self.seq_order[self.seq_indptr[uidx]:self.seq_indptr[uidx + 1]]]

    def subset(self, mask) -> "Interactions":
        """The events where ``mask`` (a boolean mask over :attr:`frame`) is True, with the same id maps so indices line up."""
        frame = self.frame.loc[np.asarray(mask, dtype=bool)].reset_index(drop=True)
        return Interactions._assemble(frame, self.user_ids, self.item_ids, self.event_weights)

    def sequences(self) -> list[np.ndarray]:
        """Every user's time-ordered internal item indices."""
        return np.split(self.seq_items, self.seq_indptr[1:-1])

    def item_popularity(self) -> np.ndarray:
        """Number of distinct users per item."""
        return np.bincount(self.matrix.indices, minlength=self.n_items).astype(np.float64)

    # ---- growth --------------------------------------------------------------
    def append(self, df: pd.DataFrame) -> "Interactions":
        """A new Interactions with ``df``'s events added; new users and items get new indices."""
        new = Interactions.from_frame(df, event_weights=self.event_weights, user_ids=self.user_ids, item_ids=self.item_ids)
        frame = pd.concat([self.frame, new.frame], ignore_index=True)
        return Interactions._assemble(frame, new.user_ids, new.item_ids, self.event_weights)

    def with_catalog(self, item_ids) -> "Interactions":
        """These events with every id of ``item_ids`` not yet known appended to the item id map (items with no events)."""
        ids = _extend_index(self.item_ids, pd.Series(np.asarray(item_ids)))
        return self if ids is self.item_ids else Interactions._assemble(self.frame, self.user_ids, ids, self.event_weights)

    # ---- saving --------------------------------------------------------------
    def to_saved(self) -> tuple[dict, dict]:
        """``(arrays, config)``: the events as ``inter.*`` arrays for safetensors, the id maps and weights as JSON."""
        f = self.frame
        arrays = {
            "inter.uidx": f["uidx"].to_numpy(np.int64), "inter.iidx": f["iidx"].to_numpy(np.int64),
            "inter.time": f[TIME_COL].to_numpy(np.float64), "inter.event_code": f["event_code"].to_numpy(np.int8),
            "inter.weight": f["weight"].to_numpy(np.float64),
        }
        if RATING_COL in f.columns:
            arrays["inter.rating"] = f[RATING_COL].to_numpy(np.float64)
        config = {"user_ids": _ids_to_json(self.user_ids, "user_ids"), "item_ids": _ids_to_json(self.item_ids, "item_ids"),
                  "event_weights": self.event_weights}
        return arrays, config

    @classmethod
    def from_saved(cls, arrays: dict, config: dict) -> "Interactions":
        """The Interactions that :meth:`to_saved` wrote (``config`` may hold other keys too).

        Raises ``ValueError`` naming the id map or array that is malformed or does not fit the others.
        """
        user_ids, item_ids = _ids_from_json(config.get("user_ids"), "user_ids"), _ids_from_json(config.get("item_ids"), "item_ids")
        _check_saved_events(arrays, len(user_ids), len(item_ids))
        codes = arrays["inter.event_code"]
        frame = pd.DataFrame({
            USER_COL: user_ids.to_numpy()[arrays["inter.uidx"]],
            ITEM_COL: item_ids.to_numpy()[arrays["inter.iidx"]],
            TIME_COL: arrays["inter.time"],
            EVENT_COL: np.array(EVENT_TYPES, dtype=object)[codes],
        })
        if "inter.rating" in arrays:
            frame[RATING_COL] = arrays["inter.rating"]
        frame["uidx"], frame["iidx"] = arrays["inter.uidx"], arrays["inter.iidx"]
        frame["weight"], frame["event_code"] = arrays["inter.weight"], codes
        return cls._assemble(frame, user_ids, item_ids, config.get("event_weights") or {})


def _user_time_order(frame: pd.DataFrame) -> np.ndarray:
    """Row positions of ``frame`` by user, then time, then row (each user's events in time order)."""
    # lexsort: the last key is primary.
    return np.lexsort((np.arange(len(frame)), frame[TIME_COL].to_numpy(), frame["uidx"].to_numpy()))


def _extend_index(base: pd.Index | None, values: pd.Series) -> pd.Index:
    uniq = pd.unique(values.to_numpy())
    if base is None:
        try:
            uniq = np.sort(uniq)
        except TypeError:
            pass
        return pd.Index(uniq)
    new = uniq[base.get_indexer(pd.Index(uniq)) < 0]
    if len(new) == 0:
        return base
    return base.append(pd.Index(new))


def as_interactions(data, **kwargs) -> Interactions:
    """Accept an :class:`Interactions` or an event DataFrame and return Interactions."""
    if isinstance(data, Interactions):
        return data
    if isinstance(data, pd.DataFrame):
        if len(data) == 0:
            raise SchemaError("cannot build Interactions from an empty DataFrame")
        return Interactions.from_frame(data, **kwargs)
    raise TypeError(f"expected a DataFrame or Interactions, got {type(data).__name__}")


__all__ = ["Interactions", "as_interactions", "events_fingerprint", "EVENT_CODES", "resolve_event_weights",
           "event_weights_for"]
