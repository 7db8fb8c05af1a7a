"""Interactions: the shared currency between data, models and the engine.

It holds the external <-> internal id maps, a CSR user x item matrix of summed
event weights, and every user's time-ordered sequence of (item, event, time).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recapp.schema import (
    DEFAULT_EVENT_WEIGHTS,
    EVENT_COL,
    EVENT_TYPES,
    ITEM_COL,
    RATING_COL,
    TIME_COL,
    USER_COL,
    SchemaError,
    check_event_types,
    require_columns,
)

EVENT_CODES = {name: code for code, name in enumerate(EVENT_TYPES)}


def events_fingerprint(df: pd.DataFrame, *, col_user: str = USER_COL, col_item: str = ITEM_COL,
                       col_time: str = TIME_COL, col_event: str = EVENT_COL, col_rating: str = RATING_COL) -> str:
    """A hex digest of an event log's content (user, item, time, event, rating), the same in any row order.

    Two logs with the same events give the same fingerprint, so a model trained
    on one can be recognised as trained on the other (the dashboard's model cache
    and its list of saved models use this). Columns that
    :meth:`Interactions.from_frame` fills in are filled the same way here (time 0,
    event ``"rating"``, no rating), so ``events_fingerprint(df) ==
    Interactions.from_frame(df).fingerprint()``. Other columns (such as ``value``)
    are not hashed: Interactions does not keep them, and no model sees them.
    """
    require_columns(df, "df", col_user, col_item)
    part = _schema_frame(df, col_user, col_item, col_time, col_event, col_rating)
    if RATING_COL not in part.columns:
        part[RATING_COL] = np.nan
    part[TIME_COL] = _canonical_float(part[TIME_COL])
    part[RATING_COL] = _canonical_float(part[RATING_COL])
    part[USER_COL] = _typed_ids(part[USER_COL])
    part[ITEM_COL] = _typed_ids(part[ITEM_COL])
    rows = np.sort(pd.util.hash_pandas_object(part, index=False).to_numpy())
    return hashlib.sha256(rows.tobytes()).hexdigest()


def _schema_frame(df: pd.DataFrame, col_user: str, col_item: str, col_time: str, col_event: str,
                  col_rating: str) -> pd.DataFrame:
    """``df``'s events under the schema's names, missing times as 0 and missing events as ``"rating"``.

    The one rule for filling what a log leaves out: :meth:`Interactions.from_frame`
    builds on it and :func:`events_fingerprint` hashes it, so the two agree.
    """
    n = len(df)
    frame = pd.DataFrame({
        USER_COL: df[col_user].to_numpy(),
        ITEM_COL: df[col_item].to_numpy(),
        TIME_COL: _floats(df[col_time], col_time) if col_time in df.columns else np.zeros(n),
        EVENT_COL: df[col_event].to_numpy(dtype=object) if col_event in df.columns else np.full(n, "rating", dtype=object),
    })
    if col_rating in df.columns:
        frame[RATING_COL] = _floats(df[col_rating], col_rating, what="numbers")
    return frame


def _floats(values: pd.Series, col: str, what: str = "UTC seconds") -> np.ndarray:
    """``values`` as float64, or ``ValueError`` naming the column and the first value that is not a number."""
    try:
        return values.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        bad = next(v for v in values.tolist() if not _is_float(v))
        raise ValueError(f"column {col!r} must hold {what}; it holds {bad!r:.80} "
                         "(recapp.data.read_events or recapp.schema.validate reads times and ratings first)") from None


def _is_float(v) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _canonical_float(values: np.ndarray) -> np.ndarray:
    # Hashing reads a float's bits: give every NaN one bit pattern, and -0.0 that of 0.0.
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isnan(values), np.nan, values + 0.0)


def _typed_ids(values: pd.Series) -> pd.Series:
    """An id column whose text says each id's kind where the column mixes text and numbers.

    ``hash_pandas_object`` hashes an object column's values as text, so shopper
    1 and shopper "1" would hash alike and ``[1, "2"]`` like ``["1", 2]``. Columns
    of one kind (all text, or numbers of one dtype) are returned as they are, so
    their fingerprints do not change; ids that are equal as keys (1, 1.0,
    ``np.int64(1)``) get one token, as they are one id in the id maps.
    """
    if values.dtype != object or pd.api.types.infer_dtype(values, skipna=False) == "string":
        return values
    return pd.Series([_id_token(v) for v in values.tolist()], index=values.index, dtype=object)


def _id_token(v) -> str:
    if isinstance(v, str):
        return "s:" + v
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        f = float(v)
        if np.isfinite(f) and f.is_integer():
            return f"n:{int(v)}"
        return f"n:{f!r}"
    return f"{type(v).__name__}:{v!r}"


def resolve_event_weights(weights: dict | None = None) -> dict:
    """:data:`~recapp.schema.DEFAULT_EVENT_WEIGHTS` updated by ``weights``.

    Unknown event types raise, and so does a weight that is not a finite number
    (None, "use the rating", is accepted): a NaN weight would spread NaN through
    every model's matrix.
    """
    w = {**DEFAULT_EVENT_WEIGHTS, **(weights or {})}
    check_event_types("event_weights", w)
    bad = {e: v for e, v in w.items()
           if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))
                                 or not np.isfinite(v))}
    if bad:
        raise ValueError(f"event_weights has weight(s) that are not finite numbers: {bad}; "
                         "give a number per event type (None for 'rating' uses the rating)")
    return w


def event_weights_for(df: pd.DataFrame, weights: dict | None = None, *, col_event: str = EVENT_COL, col_rating: str = RATING_COL) -> np.ndarray:
    """Per-row implicit weight: the event's weight, or for ``rating`` the rating (1 when absent)."""
    w = resolve_event_weights(weights)
    if col_event not in df.columns:
        events = np.full(len(df), "rating", dtype=object)
    else:
        events = df[col_event].to_numpy(dtype=object)
    out = np.ones(len(df), dtype=np.float64)
    rating = df[col_rating].to_numpy(dtype=np.float64) if col_rating in df.columns else np.full(len(df), np.nan)
    for name, weight in w.items():
        mask = events == name
        if not mask.any():
            continue
        if weight is None:
            out[mask] = np.where(np.isnan(rating[mask]), 1.0, rating[mask])
        else:
            out[mask] = float(weight)
    return out


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


# Id dtypes stored as numbers; "str" (all strings) and "object" (JSON's own str/int/float/bool, mixed) hold the rest.
_NUMERIC_ID_DTYPES = ("int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8", "float64", "float32", "bool")
_OBJECT_ID_TYPES = (str, bool, int, float, np.bool_, np.integer, np.floating)


def _ids_to_json(index: pd.Index, name: str) -> dict:
    values = index.to_numpy()
    if values.dtype.name in _NUMERIC_ID_DTYPES:
        return {"dtype": values.dtype.name, "values": values.tolist()}
    if values.dtype != object:
        raise ValueError(f"cannot save {name} of dtype {values.dtype}: ids must be integers, floats or strings")
    if all(isinstance(v, str) for v in values):
        return {"dtype": "str", "values": [str(v) for v in values]}
    bad = [v for v in values if not isinstance(v, _OBJECT_ID_TYPES)]
    if bad:
        raise ValueError(f"cannot save {name} of type {type(bad[0]).__name__} (e.g. {bad[0]!r}): "
                         "ids must be integers, floats or strings")
    # JSON keeps str, int, float and bool apart, so mixed ids come back as they were (numpy scalars as Python ones).
    return {"dtype": "object", "values": [v.item() if isinstance(v, np.generic) else v for v in values]}


def _ids_from_json(saved, name: str) -> pd.Index:
    if not isinstance(saved, dict) or not isinstance(saved.get("values"), list):
        # A bad file is a ValueError whatever is wrong in it (TRY004 would have a TypeError here).
        raise ValueError(f"{name} must be an object with a list of 'values', not {saved!r:.80}")  # noqa: TRY004
    dtype, values = saved.get("dtype"), saved["values"]
    if dtype not in ("str", "object", *_NUMERIC_ID_DTYPES):
        raise ValueError(f"{name} has unknown dtype {dtype!r}; known: {['str', 'object', *_NUMERIC_ID_DTYPES]}")
    try:
        if dtype in ("str", "object"):
            if any(not isinstance(v, str if dtype == "str" else (str, bool, int, float)) for v in values):
                raise ValueError(f"values that are not {'strings' if dtype == 'str' else 'strings or numbers'}")
            ids = np.empty(len(values), dtype=object)
            ids[:] = values
        else:
            ids = np.asarray(values, dtype=dtype)
            if ids.ndim != 1 or ids.tolist() != values:
                raise ValueError(f"values that are not all {dtype}")
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"{name} (dtype {dtype!r}) holds {e}") from e
    index = pd.Index(ids, dtype=object if dtype == "object" else None)
    if not index.is_unique:
        raise ValueError(f"{name} holds duplicate ids, e.g. {index[index.duplicated()][0]!r}")
    return index


def _check_saved_events(arrays: dict, n_users: int, n_items: int) -> None:
    # An index past its id map would raise IndexError deep in from_saved, or worse, name the wrong id.
    n = len(arrays.get("inter.uidx", ()))
    bounds = {"inter.uidx": (n_users, "user_ids"), "inter.iidx": (n_items, "item_ids"),
              "inter.event_code": (len(EVENT_TYPES), "the event types"), "inter.time": None, "inter.weight": None}
    for key, bound in {**bounds, **({"inter.rating": None} if "inter.rating" in arrays else {})}.items():
        a = arrays.get(key)
        if a is None or a.shape != (n,):
            raise ValueError(f"array {key} {'is missing' if a is None else f'has shape {a.shape}'} but inter.uidx has {n} events")
        if bound is not None and not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"array {key} has dtype {a.dtype}, not integers")
        bad = a[(a < 0) | (a >= bound[0])] if bound is not None else ()
        if len(bad):
            raise ValueError(f"array {key} holds index {bad[0]} but {bound[1]} has {bound[0]} entries")


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
