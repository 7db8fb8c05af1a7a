"""The real-time engine: ``ingest(event)`` updates one shopper's state, ``recommend(user)`` re-ranks.

The engine never calls the model's ``update()`` and never rebuilds
:class:`~recapp.interactions.Interactions` per event (both are O(log size)).
It keeps a small state per shopper (history, session sequence, the items
to exclude) and scores through the model's item-side state:

* EASE / ItemKNN: the user's score vector is the weighted sum of the rows of
  ``B_`` / ``similarity_`` for the items in their history, so an event adds one
  row (O(n_items) dense, O(neighbours) sparse);
* ALS: the closed-form fold-in, kept as the user's normal equations
  (``A = YtY + reg I + sum c_i y_i y_i'``), so an event is a rank-one update and
  one f x f solve;
* GRU4Rec / SASRec: only this user's last ``max_len`` events are re-encoded;
* Popularity, and everyone without history: time-decayed counters
  ("popular now"), updated by every event;
* any other ``history_based`` model: :meth:`Recommender.score_history`.

Re-ranking (exclusion, business filters, MMR diversity), explanations and
rank changes are the plain functions of :mod:`recapp.rerank`.

>>> engine = Engine(EASE().fit(train), items=items_table)
>>> engine.ingest({"user_id": 7, "item_id": 42, "timestamp": 1.7e9, "event": "view"})
>>> engine.recommend(7, k=10)          # item_id, score, rank, explanation, rank_change
"""
from __future__ import annotations

import logging
import math
import threading
import time as _time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recapp import rerank
from recapp.interactions import EVENT_CODES
from recapp.schema import DEFAULT_EVENT_WEIGHTS, EVENT_COL, EVENT_TYPES, ITEM_COL, RANK_COL, RATING_COL, SCORE_COL, TIME_COL, USER_COL

log = logging.getLogger(__name__)

EXPLANATION_COL = "explanation"
RANK_CHANGE_COL = "rank_change"
RESULT_COLUMNS = (ITEM_COL, SCORE_COL, RANK_COL, EXPLANATION_COL, RANK_CHANGE_COL)
EVENT_NAMES = tuple(EVENT_CODES)          # code -> name
DAY = 86_400.0


# ---- per-user state -----------------------------------------------------------------
@dataclass
class UserState:
    """What the engine knows about one shopper (internal item indices)."""

    items: list = field(default_factory=list)      # time-ordered item index of every event
    events: list = field(default_factory=list)     # event codes, aligned with items
    times: list = field(default_factory=list)
    raw: dict = field(default_factory=dict)        # item -> weight / scale (see _ItemItemScorer)
    scale: float = 1.0                             # history weights are scale * raw
    consumed: set = field(default_factory=set)     # purchased (or rated) items
    seen: set = field(default_factory=set)         # every item with an event
    n_model_events: int = 0                        # events on items the model can score
    vec: np.ndarray | None = None                  # cached model scores (raw units), None = stale
    aux: object = None                             # scorer-specific state (ALS normal equations)


class IngestResult:
    """What :meth:`Engine.ingest` did: ``n_ingested`` events applied, and ``rejected`` rows with their reason."""

    __slots__ = ("n_ingested", "_rejected")

    def __init__(self, n_ingested: int, rejected=None):
        self.n_ingested = int(n_ingested)
        self._rejected = rejected            # a DataFrame, a list of (row, reason), or None

    @property
    def rejected(self) -> pd.DataFrame:
        """DataFrame[row, reason]: every input row that failed validation (built on first access)."""
        if not isinstance(self._rejected, pd.DataFrame):
            self._rejected = _rejected_frame(self._rejected or [])
        return self._rejected

    @property
    def n_rejected(self) -> int:
        """Number of rows that failed validation."""
        return int(len(self._rejected)) if self._rejected is not None else 0

    def __repr__(self) -> str:
        return f"IngestResult(n_ingested={self.n_ingested}, n_rejected={self.n_rejected})"


# ---- scorers: one adapter per family of model -----------------------------------------------
class _Scorer:
    """Scores one user's state over the first ``n_items`` engine items (the model's items)."""

    incremental = False        # on_event keeps state.vec current
    sparse_support = False     # a zero score means "no evidence" (backfilled by popularity)
    uses_history = True        # False: every user gets the same list (popularity)

    def __init__(self, engine: "Engine", n_items: int):
        self.engine = engine
        self.n_items = n_items

    def full(self, st: UserState) -> np.ndarray:
        """The user's score vector from scratch (in the same units as ``state.vec``)."""
        raise NotImplementedError

    def on_event(self, st: UserState, item: int, delta: float) -> None:
        """Fold one history change in (incremental scorers); ``delta`` is the raw weight change."""

    def output_scale(self, st: UserState) -> float:
        """Factor turning ``state.vec`` units into the scores reported."""
        return 1.0

    def contributions(self, st: UserState, hist: np.ndarray, w: np.ndarray, recs: np.ndarray) -> np.ndarray | None:
        """(len(hist) x len(recs)) contribution of each recent history item to each recommended item."""
        return None

    def similarity(self, idx: np.ndarray) -> np.ndarray | None:
        """(len(idx) x len(idx)) item similarity for MMR, or None when the model has none."""
        return None

    def query(self, st: UserState):
        """(user vector, item matrix) for an inner-product ANN search, or None."""
        return None


class _ItemItemScorer(_Scorer):
    """EASE (dense ``B_``) and ItemKNN (sparse ``similarity_``): scores = history weights @ M.

    With ``recency`` r < 1 an item's weight is r ** (events since its last event),
    so the latest items count most. The decay is kept as one scale factor per user
    (weights are ``scale * raw``) so an event costs one row of M, never O(history).
    """

    incremental = True

    def __init__(self, engine, M, binary: bool):
        super().__init__(engine, M.shape[0])
        self.sparse = sp.issparse(M)
        self.M = M.tocsr() if self.sparse else np.ascontiguousarray(M, dtype=np.float32)
        self.binary = binary
        self.sparse_support = self.sparse

    def full(self, st):
        if not st.raw:
            return np.zeros(self.n_items, dtype=np.float32)
        idx = np.fromiter(st.raw.keys(), dtype=np.int64, count=len(st.raw))
        w = np.fromiter(st.raw.values(), dtype=np.float64, count=len(st.raw))
        if self.sparse:
            return np.asarray(self.M[idx].T @ w, dtype=np.float32).ravel()
        return (w @ self.M[idx]).astype(np.float32)

    def on_event(self, st, item, delta):
        if st.vec is None or delta == 0.0:
            return
        if self.sparse:
            a, b = self.M.indptr[item], self.M.indptr[item + 1]
            st.vec[self.M.indices[a:b]] += np.float32(delta) * self.M.data[a:b]
        else:
            st.vec += np.float32(delta) * self.M[item]

    def output_scale(self, st):
        return st.scale

    def contributions(self, st, hist, w, recs):
        if not self.sparse:
            return w[:, None] * self.M[np.ix_(hist, recs)]
        if getattr(self, "_csc", None) is None:
            self._csc = self.M.tocsc()
        C = self._csc
        out = np.zeros((len(hist), len(recs)))
        order = np.argsort(hist, kind="stable")
        hs = hist[order]
        # Column j of M holds the few neighbours of item j: match them against the sorted history.
        for c, j in enumerate(recs.tolist()):
            rows, vals = C.indices[C.indptr[j]:C.indptr[j + 1]], C.data[C.indptr[j]:C.indptr[j + 1]]
            pos = np.minimum(np.searchsorted(hs, rows), len(hs) - 1)
            hit = hs[pos] == rows
            out[order[pos[hit]], c] = vals[hit]
        return w[:, None] * out

    def similarity(self, idx):
        if self.sparse:
            rows = self.M[idx]
            norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
            norms[norms == 0] = 1.0
            return (rows @ rows.T).toarray() / np.outer(norms, norms)
        return rerank.cosine_similarity_matrix(self.M[idx])


class _FoldInScorer(_Scorer):
    """ALS: the user factor solves ``(YtY + reg I + sum_i c_i y_i y_i') x = sum_i (1 + c_i) y_i``.

    The sums are kept per user, so an event is a rank-one update plus one f x f solve,
    the same closed form as the model's own fold-in (``ALS.fold_in_user``).
    """

    def __init__(self, engine, model):
        Y = np.asarray(model.item_factors_, dtype=np.float32)
        super().__init__(engine, Y.shape[0])
        self.model = model
        self.Y = Y
        self.Y64 = Y.astype(np.float64)
        self.base = np.asarray(model.YtY_, dtype=np.float64) + float(model.regularization) * np.eye(Y.shape[1])

    def _conf(self, w: float) -> float:
        return float(self.model.confidence_weight(np.array([w], dtype=np.float64))[0])

    def _aux(self, st):
        if st.aux is None:
            A, b = self.base.copy(), np.zeros(self.Y.shape[1])
            cw = {}
            for item, raw in st.raw.items():
                c = self._conf(raw * st.scale)
                y = self.Y64[item]
                A += c * np.outer(y, y)
                b += (1.0 + c) * y
                cw[item] = c
            st.aux = (A, b, cw)
        return st.aux

    def user_vector(self, st) -> np.ndarray:
        """The user's folded-in factor."""
        A, b, _ = self._aux(st)
        return np.linalg.solve(A, b).astype(np.float32)

    def full(self, st):
        return self.Y @ self.user_vector(st)

    def on_event(self, st, item, delta):
        if st.aux is None:
            return
        A, b, cw = st.aux
        old = cw.get(item)
        new = self._conf(st.raw[item] * st.scale)
        y = self.Y64[item]
        if old is None:
            b += (1.0 + new) * y
            A += new * np.outer(y, y)
        elif new != old:
            b += (new - old) * y
            A += (new - old) * np.outer(y, y)
        cw[item] = new
        st.vec = None

    def contributions(self, st, hist, w, recs):
        # As implicit's ``explain``: similarity of each history item to the recommended one.
        return w[:, None] * (self.Y[hist] @ self.Y[recs].T)

    def similarity(self, idx):
        return rerank.cosine_similarity_matrix(self.Y[idx])

    def query(self, st):
        return self.user_vector(st), self.Y


class _SequenceScorer(_Scorer):
    """GRU4Rec / SASRec: re-encode this user's last ``max_len`` events (items and event types)."""

    def __init__(self, engine, model):
        E = model.item_vectors()
        super().__init__(engine, E.shape[0])
        self.model = model
        self.E = np.ascontiguousarray(E, dtype=np.float32)

    def user_vector(self, st) -> np.ndarray:
        """The encoder's output after the user's latest events."""
        L = self.model.max_len
        items = [i for i in st.items[-4 * L:] if i < self.n_items]
        events = [e for i, e in zip(st.items[-4 * L:], st.events[-4 * L:]) if i < self.n_items]
        return self.model.encode(np.asarray(items[-L:], dtype=np.int64), np.asarray(events[-L:], dtype=np.int64))

    def full(self, st):
        return self.E @ self.user_vector(st)

    def on_event(self, st, item, delta):
        st.vec = None

    def contributions(self, st, hist, w, recs):
        return w[:, None] * (self.E[hist] @ self.E[recs].T)

    def similarity(self, idx):
        return rerank.cosine_similarity_matrix(self.E[idx])

    def query(self, st):
        return self.user_vector(st), self.E


class _HistoryScorer(_Scorer):
    """Any other model: its public ``score_history(items, weights)`` on the user's weighted history."""

    sparse_support = True

    def __init__(self, engine, model, n_items):
        super().__init__(engine, n_items)
        self.model = model

    def full(self, st):
        idx = np.fromiter(st.raw.keys(), dtype=np.int64, count=len(st.raw))
        w = np.fromiter(st.raw.values(), dtype=np.float64, count=len(st.raw)) * st.scale
        return np.asarray(self.model.score_history(idx, w), dtype=np.float32)[: self.n_items]

    def on_event(self, st, item, delta):
        st.vec = None


class _PopularityScorer(_Scorer):
    """Popularity: the engine's time-decayed counters, the same list for everyone."""

    uses_history = False

    def full(self, st):
        return self.engine._pop_rank()


class _FaissIndex:
    """Inner-product search over item vectors with faiss HNSW (imported only when used)."""

    def __init__(self, vectors: np.ndarray, m: int = 32, ef_search: int = 128, ef_construction: int = 200):
        import faiss

        self.faiss = faiss
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        self.index = faiss.IndexHNSWFlat(x.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = ef_construction
        self.index.hnsw.efSearch = ef_search
        self.index.add(x)
        self.n = x.shape[0]

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and inner products for the query vector ``q``."""
        # efSearch must cover k or HNSW returns fewer than k results.
        self.index.hnsw.efSearch = max(self.index.hnsw.efSearch, k)
        d, i = self.index.search(np.ascontiguousarray(q[None, :], dtype=np.float32), min(k, self.n))
        keep = i[0] >= 0
        return i[0][keep].astype(np.int64), d[0][keep]


def _scalar_timestamp(value) -> float:
    """UTC seconds from epoch seconds / milliseconds, an ISO string or a datetime; NaN if unreadable."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        v = float(value)
    elif isinstance(value, str):
        try:
            v = float(value)
        except ValueError:
            try:
                ts = pd.Timestamp(value)
            except (ValueError, TypeError):
                return math.nan
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
            return ts.timestamp()
    elif hasattr(value, "timestamp"):
        try:
            ts = pd.Timestamp(value)
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
            return ts.timestamp()
        except (ValueError, TypeError):
            return math.nan
    else:
        return math.nan
    if not math.isfinite(v):
        return math.nan
    # Same rule as recapp.schema.parse_timestamps: beyond 1e11 the epoch is in milliseconds.
    return v / 1000.0 if abs(v) > 1e11 else v


def _missing(v) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    if isinstance(v, str) and not v.strip():
        return True
    return v is pd.NA or v is pd.NaT


class Engine:
    """Serve recommendations that follow each shopper's events as they happen.

    Parameters
    ----------
    model : a fitted :class:`~recapp.models.base.Recommender` (EASE, ItemKNN, ALS,
        GRU4Rec, SASRec, Popularity, or any ``history_based`` model).
    k : default list length.
    items : optional catalogue (item_id plus columns such as category, price,
        title) for business filters, titles in explanations and category-based
        diversity; new items may be added with :meth:`add_items`.
    exclude_events : event types whose items are never recommended again to
        that user (default purchases and ratings: what was bought or rated once).
    exclude_viewed : also exclude every item the user has had any event on.
    diversity : MMR lambda in [0, 1]; 1 (default) keeps the model's order,
        lower values trade relevance for diversity (:func:`recapp.rerank.mmr`).
    filters : default business filters (see :func:`recapp.rerank.filter_mask`).
    half_life : seconds of event time for the "popular now" counters to halve.
    recency : per-event decay of history weights for item-item models (EASE,
        ItemKNN) in (0, 1]; 1 weighs the whole history equally (as ``model.recommend``),
        0.9 makes the latest events dominate (the session-aware setting).
    ann : None (exact), ``"faiss"`` (HNSW inner-product search over the item
        vectors of embedding models: ALS, GRU4Rec, SASRec) or ``"auto"`` (faiss
        when the catalogue has at least ``ann_min_items`` items and faiss is installed).
    store : an :class:`~recapp.realtime.store.EventStore` (or a path to one); every
        batch is validated and committed there before it changes any state.
    cache_size : entries of the LRU cache of ``recommend`` results (0 disables it).
    explain : whether to compute explanations (the benchmark measures both).
    """

    def __init__(self, model, k: int = 10, *, items: pd.DataFrame | None = None,
                 exclude_events=("purchase", "rating"), exclude_viewed: bool = False,
                 diversity: float = 1.0, filters=None, half_life: float | None = 7 * DAY,
                 recency: float = 1.0, ann: str | None = None, ann_min_items: int = 50_000,
                 store=None, cache_size: int = 1024, explain: bool = True, n_explain: int = 3,
                 event_weights: dict | None = None, max_user_vectors: int | None = None):
        model._check_fitted()
        if not (isinstance(k, (int, np.integer)) and k >= 1):
            raise ValueError(f"k={k!r} must be an integer >= 1")
        bad = set(exclude_events) - set(EVENT_TYPES)
        if bad:
            raise ValueError(f"exclude_events has unknown event type(s) {sorted(bad)}; accepted: {list(EVENT_TYPES)}")
        if not 0.0 <= diversity <= 1.0:
            raise ValueError(f"diversity={diversity!r} is out of range; it must be in [0, 1] (1 = no diversification)")
        if not 0.0 < recency <= 1.0:
            raise ValueError(f"recency={recency!r} is out of range; it must be in (0, 1]")
        if half_life is not None and not half_life > 0:
            raise ValueError(f"half_life={half_life!r} must be a positive number of seconds or None")
        if ann not in (None, "faiss", "auto"):
            raise ValueError(f"ann={ann!r} is not accepted; accepted values: [None, 'faiss', 'auto']")
        self.model = model
        self.k = int(k)
        self.exclude_codes = frozenset(EVENT_CODES[e] for e in exclude_events)
        self.exclude_viewed = bool(exclude_viewed)
        self.diversity = float(diversity)
        self.filters = filters
        self.half_life = half_life
        self.recency = float(recency)
        self.explain = bool(explain)
        self.n_explain = int(n_explain)
        self.cache_size = int(cache_size)
        inter = model.interactions_
        self.event_weights = {**DEFAULT_EVENT_WEIGHTS, **(inter.event_weights or {}), **(event_weights or {})}
        self._binary = bool(getattr(model, "binary", True))
        self._lock = threading.RLock()

        # Item space: the model's items first (their indices are the model's), new ones appended.
        self._item_ids: list = inter.item_ids.tolist()
        self._item_pos: dict = {v: i for i, v in enumerate(self._item_ids)}
        self._user_ids_model = inter.user_ids
        self._user_pos: dict = {v: i for i, v in enumerate(inter.user_ids.tolist())}
        self._users: dict = {}
        self._last_ranks: dict = {}
        self._pop = np.zeros(max(16, 2 * len(self._item_ids)))
        self._pop_all = np.zeros_like(self._pop)   # undecayed counts: break ties among stale items
        self._pop_t0 = 0.0
        self.now_ = -math.inf
        self._init_popularity(inter)

        self._scorer = self._make_scorer(model)
        self._masks: dict = {}
        self._cache: OrderedDict = OrderedDict()
        self._cache_by_user: dict = {}
        self._cache_global: set = set()
        self._items_table = None
        self._names = None
        if items is not None:
            self.add_items(items)
        self.cache_hits_ = 0
        self.cache_misses_ = 0
        self.n_ingested_ = 0
        self.n_rejected_ = 0
        if max_user_vectors is None:
            # About 256 MB of cached score vectors, and never fewer than 64 users.
            max_user_vectors = max(64, int(256e6 / (4 * max(self._scorer.n_items, 1))))
        self.max_user_vectors = int(max_user_vectors)
        self._vec_lru: OrderedDict = OrderedDict()
        self._index = None
        if ann == "auto":
            ann = "faiss" if (len(self._item_ids) >= ann_min_items and _faiss_available()) else None
        self.ann = ann
        if ann is not None:
            self._build_index()
        self.store = None
        if store is not None:
            from recapp.realtime.store import EventStore

            self.store = store if isinstance(store, EventStore) else EventStore(store)

    # ---- set-up ------------------------------------------------------------------------
    def _make_scorer(self, model) -> _Scorer:
        from recapp.models.popularity import Popularity

        n_model = int(getattr(model, "n_items_", len(self._item_ids)))
        if isinstance(model, Popularity):
            return _PopularityScorer(self, 0)
        if hasattr(model, "encode") and hasattr(model, "item_vectors"):
            return _SequenceScorer(self, model)
        if getattr(model, "B_", None) is not None:
            return _ItemItemScorer(self, model.B_, self._binary)
        if getattr(model, "similarity_", None) is not None:
            return _ItemItemScorer(self, model.similarity_, self._binary)
        if getattr(model, "item_factors_", None) is not None and getattr(model, "YtY_", None) is not None:
            return _FoldInScorer(self, model)
        if model.history_based or type(model).score_history is not _base_score_history():
            return _HistoryScorer(self, model, n_model)
        raise TypeError(
            f"{type(model).__name__} cannot score a new history: the engine needs EASE, ItemKNN, ALS, GRU4Rec, SASRec, "
            "Popularity, a history_based model, or a model that implements score_history(items, weights)"
        )

    def _build_index(self) -> None:
        probe = UserState()
        q = self._scorer.query(probe) if isinstance(self._scorer, (_FoldInScorer, _SequenceScorer)) else None
        if q is None:
            raise ValueError(f"ann={self.ann!r} needs an embedding model (ALS, GRU4Rec, SASRec); got {type(self.model).__name__}")
        self._index = _FaissIndex(q[1])

    def _init_popularity(self, inter) -> None:
        f = inter.frame
        if len(f) == 0:
            return
        t = f[TIME_COL].to_numpy(dtype=np.float64)
        self._pop_t0 = float(t.max())
        self.now_ = float(t.max())
        if self.half_life is None:
            w = np.ones(len(f))
        else:
            w = np.exp2((t - self._pop_t0) / self.half_life)
        counts = np.bincount(f["iidx"].to_numpy(), weights=w, minlength=len(self._item_ids))
        self._pop[: len(counts)] = counts
        alltime = np.bincount(f["iidx"].to_numpy(), minlength=len(self._item_ids))
        self._pop_all[: len(alltime)] = alltime

    def add_items(self, items: pd.DataFrame) -> None:
        """Add or replace catalogue rows (item_id plus attributes); new ids join the item space."""
        if ITEM_COL not in items.columns:
            raise KeyError(f"items needs an {ITEM_COL!r} column; columns: {list(items.columns)}")
        with self._lock:
            table = items.drop_duplicates(ITEM_COL, keep="last").set_index(ITEM_COL)
            if self._items_table is not None:
                table = pd.concat([self._items_table.drop(index=table.index, errors="ignore"), table])
            self._items_table = table
            self._names = table["title"].to_dict() if "title" in table.columns else None
            for item in table.index:
                if item not in self._item_pos:
                    self._new_item(item)
            self._masks.clear()
            self._clear_cache()

    # ---- item space ----------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        """Items the engine knows (the model's plus those first seen in events or ``add_items``)."""
        return len(self._item_ids)

    @property
    def n_users(self) -> int:
        """Shoppers with state in the engine (training users are loaded when first touched)."""
        return len(self._users)

    @property
    def item_ids(self) -> list:
        """External ids of every item, by internal index."""
        return list(self._item_ids)

    def _new_item(self, item) -> int:
        idx = len(self._item_ids)
        self._item_ids.append(item)
        self._item_pos[item] = idx
        if idx >= len(self._pop):
            self._pop = np.concatenate([self._pop, np.zeros(len(self._pop))])
            self._pop_all = np.concatenate([self._pop_all, np.zeros(len(self._pop_all))])
        return idx

    # ---- user state ------------------------------------------------------------------------
    def _state(self, user, create: bool) -> UserState | None:
        st = self._users.get(user)
        if st is not None:
            return st
        u = self._user_pos.get(user, -1) if _hashable(user) else -1
        if u < 0 and not create:
            return None
        st = self._load_user(u) if u >= 0 else UserState()
        self._users[user] = st
        return st

    def _load_user(self, u: int) -> UserState:
        """A training user's state from the model's Interactions, vectorised (no per-event loop)."""
        inter = self.model.interactions_
        a, b = inter.seq_indptr[u], inter.seq_indptr[u + 1]
        items, events = inter.seq_items[a:b], inter.seq_events[a:b].astype(np.int64)
        st = UserState(items=items.tolist(), events=events.tolist(), times=inter.seq_times[a:b].tolist())
        st.seen = set(st.items)
        consumed = np.isin(events, list(self.exclude_codes))
        st.consumed = set(items[consumed].tolist())
        sc = self._scorer
        if not sc.uses_history:
            return st
        in_model = items < sc.n_items
        st.n_model_events = int(in_model.sum())
        if not st.n_model_events:
            return st
        m_items = items[in_model]
        w = self._seq_weights()[a:b][in_model]
        if self.recency < 1.0 and isinstance(sc, _ItemItemScorer):
            # The same weights the per-event path gives: recency ** (model events since).
            decay = np.power(self.recency, np.arange(len(m_items) - 1, -1, -1, dtype=np.float64))
        else:
            decay = np.ones(len(m_items))
        if self._binary:
            uniq, last = np.unique(m_items[::-1], return_index=True)
            weights = decay[::-1][last]
        else:
            uniq, inv = np.unique(m_items, return_inverse=True)
            weights = np.bincount(inv, weights=w * decay, minlength=len(uniq))
        st.raw = dict(zip(uniq.tolist(), weights.tolist()))
        st.scale = 1.0
        return st

    def warm(self, users=None, batch_size: int = 512) -> int:
        """Load state and score vectors for ``users`` (default: every training user) ahead of traffic.

        A server does this at start-up so the first request of a known shopper
        does not pay for loading their history. Returns the number of users warmed
        (at most ``max_user_vectors`` keep their vectors).
        """
        with self._lock:
            users = self._user_ids_model.tolist() if users is None else [_plain(u) for u in users]
            users = users[: self.max_user_vectors]
            states = [(u, self._state(u, create=True)) for u in users]
            sc = self._scorer
            if isinstance(sc, _ItemItemScorer):
                for start in range(0, len(states), batch_size):
                    chunk = [(u, st) for u, st in states[start:start + batch_size] if st.vec is None and st.raw]
                    if not chunk:
                        continue
                    rows = np.repeat(np.arange(len(chunk)), [len(st.raw) for _, st in chunk])
                    cols = np.concatenate([np.fromiter(st.raw.keys(), dtype=np.int64, count=len(st.raw)) for _, st in chunk])
                    vals = np.concatenate([np.fromiter(st.raw.values(), dtype=np.float64, count=len(st.raw)) for _, st in chunk])
                    R = sp.csr_matrix((vals.astype(np.float32), (rows, cols)), shape=(len(chunk), sc.n_items))
                    V = R @ sc.M
                    V = V.toarray() if sp.issparse(V) else np.asarray(V)
                    for r, (u, st) in enumerate(chunk):
                        st.vec = np.ascontiguousarray(V[r], dtype=np.float32)
                        self._vec_lru[u] = None
            elif sc.uses_history:
                for u, st in states:
                    if st.n_model_events:
                        self._vector(st, u)
            return len(states)

    def _seq_weights(self) -> np.ndarray:
        # Per-event weights in the order of the Interactions sequences (computed once).
        if getattr(self, "_seq_w", None) is None:
            f = self.model.interactions_.frame
            order = np.lexsort((np.arange(len(f)), f[TIME_COL].to_numpy(), f["uidx"].to_numpy()))
            self._seq_w = f["weight"].to_numpy(dtype=np.float64)[order]
        return self._seq_w

    def _event_weight(self, event: str, rating) -> float:
        w = self.event_weights.get(event)
        if w is None:
            return 1.0 if rating is None or (isinstance(rating, float) and math.isnan(rating)) else float(rating)
        return float(w)

    def _append(self, st: UserState, item: int, code: int, t: float, w: float) -> None:
        """Add one event to a user's state and keep the cached score vector current."""
        st.items.append(item)
        st.events.append(code)
        st.times.append(t)
        st.seen.add(item)
        if code in self.exclude_codes:
            st.consumed.add(item)
        sc = self._scorer
        if item >= sc.n_items or not sc.uses_history:
            return
        st.n_model_events += 1
        if self.recency < 1.0 and isinstance(sc, _ItemItemScorer):
            st.scale *= self.recency
            if st.scale < 1e-20:
                # Rebase while raw weights (1 / scale) still fit the float32 score vector; ranking is unchanged.
                for key in st.raw:
                    st.raw[key] *= st.scale
                if st.vec is not None:
                    st.vec *= np.float32(st.scale)
                st.aux = None
                st.scale = 1.0
        old = st.raw.get(item, 0.0)
        new = 1.0 / st.scale if self._binary else old + w / st.scale
        st.raw[item] = new
        sc.on_event(st, item, new - old)

    def _vector(self, st: UserState, user) -> np.ndarray:
        """The user's model scores (raw units), computed when stale and kept in a bounded LRU."""
        if st.vec is None:
            st.vec = self._scorer.full(st)
        self._vec_lru[user] = None
        self._vec_lru.move_to_end(user)
        while len(self._vec_lru) > self.max_user_vectors:
            old, _ = self._vec_lru.popitem(last=False)
            other = self._users.get(old)
            if other is not None and old != user:
                other.vec = None
        return st.vec

    # ---- popularity --------------------------------------------------------------------------
    def _bump_popularity(self, item: int, t: float) -> None:
        self._pop_all[item] += 1.0
        if self.half_life is None:
            self._pop[item] += 1.0
            return
        e = (t - self._pop_t0) / self.half_life
        if e > 200:
            # Rebase the reference time so the weights stay finite.
            self._pop *= 2.0 ** (-e)
            self._pop_t0 = t
            e = 0.0
        self._pop[item] += 2.0 ** e

    def popular(self, k: int | None = None) -> pd.DataFrame:
        """The "popular now" list: item_id and score (decayed event count, newest events weigh most)."""
        with self._lock:
            top = rerank.top_k(self._pop_rank(), k or self.k)
            return pd.DataFrame({ITEM_COL: [self._item_ids[i] for i in top], SCORE_COL: self._pop_now(self._pop[top])})

    def _pop_rank(self) -> np.ndarray:
        """Ranking key for "popular now": the decayed count, ties (e.g. all stale) broken by all-time count."""
        n = self.n_items
        d, a = self._pop[:n], self._pop_all[:n]
        top_d, top_a = d.max(initial=0.0), a.max(initial=0.0)
        key = d / top_d if top_d > 0 else np.zeros(n)
        return key + 1e-6 * (a / top_a if top_a > 0 else 0.0)

    def _pop_now(self, raw: np.ndarray) -> np.ndarray:
        # Counters are relative to _pop_t0; report them relative to the latest event.
        if self.half_life is None or not math.isfinite(self.now_):
            return raw
        return raw * 2.0 ** ((self._pop_t0 - self.now_) / self.half_life)

    # ---- ingest --------------------------------------------------------------------------------
    def ingest(self, events) -> IngestResult:
        """Apply one event (a dict) or many (a DataFrame or a list of dicts) at once.

        Each row needs user_id, item_id and event (view, click, cart, purchase or
        rating); timestamp defaults to the current time; rating and value are
        optional. Rows are applied in timestamp order. Rows that fail validation
        change nothing and come back in ``result.rejected`` with the reason (and,
        with a store, in its quarantine table). Returns an :class:`IngestResult`.
        """
        with self._lock:
            if self.store is not None:
                res = self.store.append(events)
                clean = res.events
                rejected = res.rejected
                rows = self._rows_from_frame(clean)
            elif isinstance(events, Mapping):
                row, reason = self._check_one(events)
                rows = [row] if row is not None else []
                rejected = None if row is not None else [(dict(events), reason)]
            else:
                frame = events if isinstance(events, pd.DataFrame) else pd.DataFrame(list(events))
                if TIME_COL not in frame.columns and len(frame):
                    frame = frame.assign(**{TIME_COL: _time.time()})
                from recapp.realtime.store import check_events

                clean, rejected = check_events(frame)
                rows = self._rows_from_frame(clean)
            for row in rows:
                self._apply(*row)
            result = IngestResult(len(rows), rejected)
            self.n_ingested_ += len(rows)
            if result.n_rejected:
                self.n_rejected_ += result.n_rejected
                log.warning("engine rejected %d event(s): %s", result.n_rejected, result.rejected["reason"].iloc[0])
            return result

    def _check_one(self, e: Mapping):
        """Validate one event dict; returns ((user, item, t, event, rating), None) or (None, reason)."""
        user, item = e.get(USER_COL), e.get(ITEM_COL)
        if _missing(user):
            return None, f"missing {USER_COL}"
        if _missing(item):
            return None, f"missing {ITEM_COL}"
        t = e.get(TIME_COL)
        t = _time.time() if _missing(t) else _scalar_timestamp(t)
        if math.isnan(t):
            return None, f"unparseable {TIME_COL} {e.get(TIME_COL)!r}"
        from recapp.realtime.store import normalise_event

        ev = normalise_event(e.get(EVENT_COL))
        if ev is None:
            return None, f"unknown {EVENT_COL} {e.get(EVENT_COL)!r}; accepted: {list(EVENT_TYPES)}"
        rating = e.get(RATING_COL)
        if not _missing(rating):
            try:
                rating = float(rating)
            except (TypeError, ValueError):
                return None, f"non-numeric {RATING_COL} {rating!r}"
        else:
            rating = None
        return (_plain(user), _plain(item), t, ev, rating), None

    def _rows_from_frame(self, clean: pd.DataFrame) -> list:
        if clean is None or len(clean) == 0:
            return []
        clean = clean.sort_values(TIME_COL, kind="stable")
        rating = clean[RATING_COL].to_numpy(dtype=np.float64) if RATING_COL in clean.columns else np.full(len(clean), np.nan)
        return list(zip(clean[USER_COL].tolist(), clean[ITEM_COL].tolist(), clean[TIME_COL].tolist(),
                        clean[EVENT_COL].tolist(), [None if math.isnan(r) else r for r in rating.tolist()]))

    def _apply(self, user, item, t: float, event: str, rating) -> None:
        idx = self._item_pos.get(item)
        if idx is None:
            idx = self._new_item(item)
            self._masks.clear()
        self._bump_popularity(idx, t)
        if t > self.now_:
            self.now_ = t
        st = self._state(user, create=True)
        self._append(st, idx, EVENT_CODES[event], t, self._event_weight(event, rating))
        self._invalidate(user)

    # ---- cache ----------------------------------------------------------------------------------
    def _invalidate(self, user) -> None:
        # This user's lists changed, and so did every list drawn from popularity.
        for key in self._cache_by_user.pop(user, ()):
            self._cache.pop(key, None)
        for key in self._cache_global:
            self._cache.pop(key, None)
            ks = self._cache_by_user.get(key[0])
            if ks is not None:
                ks.discard(key)
        self._cache_global.clear()

    def _clear_cache(self) -> None:
        self._cache.clear()
        self._cache_by_user.clear()
        self._cache_global.clear()

    def _cache_put(self, key, frame: pd.DataFrame, uses_popularity: bool) -> None:
        if self.cache_size <= 0:
            return
        self._cache[key] = frame
        self._cache_by_user.setdefault(key[0], set()).add(key)
        if uses_popularity:
            self._cache_global.add(key)
        while len(self._cache) > self.cache_size:
            old, _ = self._cache.popitem(last=False)
            self._cache_global.discard(old)
            ks = self._cache_by_user.get(old[0])
            if ks is not None:
                ks.discard(old)

    # ---- recommend ------------------------------------------------------------------------------
    def recommend(self, user_id, k: int | None = None, *, filters=None, exclude_viewed: bool | None = None,
                  diversity: float | None = None) -> pd.DataFrame:
        """Top-``k`` items for one shopper as DataFrame[item_id, score, rank, explanation, rank_change].

        Works for any user id, known or not (no history: "popular now"). Items the
        user purchased (``exclude_events``) never appear; ``exclude_viewed``,
        ``filters`` and ``diversity`` override the engine's defaults for this call.
        ``score`` is the model's score, or the decayed event count for "popular now"
        items; ``rank_change`` is previous rank minus rank (<NA> for a new entry).
        Repeated calls with no ingest in between come from an LRU cache.
        """
        k = self.k if k is None else k
        if not (isinstance(k, (int, np.integer)) and k >= 1):
            raise ValueError(f"k={k!r} must be an integer >= 1")
        filters = self.filters if filters is None else filters
        exclude_viewed = self.exclude_viewed if exclude_viewed is None else bool(exclude_viewed)
        diversity = self.diversity if diversity is None else float(diversity)
        if not 0.0 <= diversity <= 1.0:
            raise ValueError(f"diversity={diversity!r} is out of range; it must be in [0, 1]")
        user_id = _plain(user_id)
        with self._lock:
            key = (user_id, int(k), _freeze(filters), exclude_viewed, diversity)
            cached = self._cache.get(key) if self.cache_size > 0 else None
            if cached is not None:
                self._cache.move_to_end(key)
                self.cache_hits_ += 1
                return _result_frame(*cached)
            self.cache_misses_ += 1
            arrays, uses_pop = self._recommend(user_id, int(k), filters, exclude_viewed, diversity)
            # The cache holds the arrays, and every call builds its own frame, so a caller
            # that edits a returned frame cannot change what the next call sees.
            self._cache_put(key, arrays, uses_pop)
            return _result_frame(*arrays)

    def _recommend(self, user, k, filters, exclude_viewed, diversity):
        st = self._state(user, create=False)
        sc = self._scorer
        n = self.n_items
        mask = self._mask(filters)
        banned = set()
        if st is not None:
            banned = st.seen if exclude_viewed else st.consumed
        n_cand = k if diversity >= 1.0 else max(4 * k, 50)

        model_idx = np.zeros(0, dtype=np.int64)
        model_scores = np.zeros(0)
        personal = st is not None and st.n_model_events > 0 and sc.uses_history
        if personal:
            model_idx, model_scores = self._model_candidates(user, st, n_cand, banned, mask)
        elif not sc.uses_history:
            model_idx, model_scores = self._popular_candidates(n_cand, banned, mask, set())
        # Backfill with "popular now" when the model has too little evidence (or no history).
        need = n_cand - len(model_idx)
        pop_idx, pop_scores = self._popular_candidates(max(need, 0), banned, mask, set(model_idx.tolist())) if need > 0 else (model_idx[:0], model_scores[:0])
        uses_pop = not personal or len(pop_idx) > 0

        cand = np.concatenate([model_idx, pop_idx])
        if diversity < 1.0 and len(cand) > 1:
            # Relevance: model candidates above every popular backfill, in their order.
            rel = np.concatenate([len(cand) - np.arange(len(model_idx)), len(pop_idx) - np.arange(len(pop_idx))]).astype(float)
            rel[: len(model_idx)] += len(pop_idx)
            sim = self._similarity(cand)
            chosen = rerank.mmr(np.arange(len(cand)), rel, sim, k, diversity)
        else:
            chosen = np.arange(min(k, len(cand)))
        recs = cand[chosen]
        scores = np.concatenate([model_scores, pop_scores])[chosen]
        # Candidates are model items first, then the popular backfill.
        from_model = (chosen < len(model_idx)) if sc.uses_history else np.zeros(len(chosen), bool)

        expl = [rerank.POPULAR_NOW] * len(recs)
        if self.explain and from_model.any() and st is not None:
            expl_model = self._explanations(st, recs[from_model])
            j = 0
            for i, fm in enumerate(from_model.tolist()):
                if fm:
                    expl[i] = expl_model[j]
                    j += 1
        ids = [self._item_ids[i] for i in recs.tolist()]
        arrays = (ids, np.asarray(scores, dtype=np.float64), expl, rerank.rank_changes(ids, self._last_ranks.get(user)))
        self._last_ranks[user] = {item: r for r, item in enumerate(ids, start=1)}
        return arrays, uses_pop

    def _mask(self, filters) -> np.ndarray | None:
        if filters is None or (isinstance(filters, Mapping) and not filters):
            return None
        key = _freeze(filters)
        hit = self._masks.get(key)
        if hit is None or len(hit) != self.n_items:
            hit = rerank.filter_mask(None if self._items_table is None else self._items_table.reset_index(), filters, self._item_ids)
            self._masks[key] = hit
        return hit

    def _model_candidates(self, user, st, n_cand, banned, mask):
        sc = self._scorer
        if self._index is not None and mask is None:
            q, _ = sc.query(st)
            # Ask for enough neighbours to survive the exclusions.
            got, d = self._index.search(q, n_cand + len(banned) + 10)
            keep = np.array([g not in banned for g in got.tolist()], dtype=bool) if len(got) else np.zeros(0, bool)
            got, d = got[keep], d[keep]
            if len(got) >= n_cand:
                return got[:n_cand], d[:n_cand].astype(np.float64)
        vec = self._vector(st, user)
        s = vec.astype(np.float64) if vec.dtype != np.float64 else vec.copy()
        if sc.sparse_support:
            s[s == 0] = -np.inf
        if banned:
            rerank.exclude(s, np.fromiter(banned, dtype=np.int64, count=len(banned)))
        if mask is not None:
            s[~mask[: len(s)]] = -np.inf
        top = rerank.top_k(s, n_cand)
        return top, s[top] * sc.output_scale(st)

    def _popular_candidates(self, n_cand, banned, mask, taken):
        s = self._pop_rank()
        drop = set(banned) | taken
        if drop:
            rerank.exclude(s, np.fromiter(drop, dtype=np.int64, count=len(drop)))
        if mask is not None:
            s[~mask] = -np.inf
        top = rerank.top_k(s, n_cand)
        return top, self._pop_now(self._pop[top])

    def _similarity(self, cand: np.ndarray) -> np.ndarray:
        sc = self._scorer
        in_model = cand < sc.n_items
        sim = np.zeros((len(cand), len(cand)))
        if in_model.all():
            got = sc.similarity(cand)
            if got is not None:
                return got
        if self._items_table is not None and "category" in self._items_table.columns:
            cats = self._items_table["category"].reindex([self._item_ids[i] for i in cand.tolist()]).to_numpy(dtype=object)
            sim = (cats[:, None] == cats[None, :]).astype(float)
        elif in_model.any():
            got = sc.similarity(cand[in_model])
            if got is not None:
                sim[np.ix_(in_model, in_model)] = got
        np.fill_diagonal(sim, 1.0)
        return sim

    def _explanations(self, st: UserState, recs: np.ndarray) -> list[str]:
        sc = self._scorer
        # The user's most recent distinct model items, with their current weights.
        hist, seen = [], set()
        for i in reversed(st.items):
            if i < sc.n_items and i not in seen:
                seen.add(i)
                hist.append(i)
                if len(hist) >= 50:
                    break
        if not hist:
            return [rerank.POPULAR_NOW] * len(recs)
        hist = np.asarray(hist, dtype=np.int64)
        if st.raw:
            w = np.array([st.raw.get(i, 0.0) * st.scale for i in hist.tolist()])
        else:
            w = np.ones(len(hist))
        # Sequence models weigh the latest events most, as their encoders do.
        if isinstance(sc, _SequenceScorer):
            w = 0.8 ** np.arange(len(hist))
        contrib = sc.contributions(st, hist, w, recs[recs < sc.n_items])
        if contrib is None:
            return ["recommended for you"] * len(recs)
        names = None
        if self._names is not None:
            names = self._names
        tops = rerank.top_contributors(contrib, [self._item_ids[h] for h in hist.tolist()], self.n_explain)
        return [rerank.explanation(t, names=names, max_items=self.n_explain) if t else "recommended for you" for t in tops]

    # ---- inspection -------------------------------------------------------------------------
    def history(self, user_id) -> pd.DataFrame:
        """A user's events as the engine holds them: item_id, event, timestamp (time order)."""
        with self._lock:
            st = self._state(_plain(user_id), create=False)
            if st is None:
                return pd.DataFrame({ITEM_COL: [], EVENT_COL: [], TIME_COL: []})
            return pd.DataFrame({
                ITEM_COL: [self._item_ids[i] for i in st.items],
                EVENT_COL: [EVENT_NAMES[c] for c in st.events],
                TIME_COL: np.asarray(st.times, dtype=np.float64),
            })

    def stats(self) -> dict:
        """Counters: events ingested and rejected, users and items, cache hits and misses."""
        return {
            "events_ingested": self.n_ingested_, "events_rejected": self.n_rejected_,
            "users": self.n_users, "items": self.n_items, "model_items": self._scorer.n_items,
            "cache_hits": self.cache_hits_, "cache_misses": self.cache_misses_, "ann": self.ann,
        }

    def reset_user(self, user_id) -> None:
        """Forget the engine's state for one user (they are reloaded from the model's training data)."""
        with self._lock:
            user_id = _plain(user_id)
            self._users.pop(user_id, None)
            self._last_ranks.pop(user_id, None)
            self._vec_lru.pop(user_id, None)
            self._invalidate(user_id)

    @classmethod
    def from_store(cls, model, store, *, batch_size: int = 10_000, **kwargs) -> "Engine":
        """A fresh engine with every event of ``store`` replayed in timestamp order (store not attached)."""
        engine = cls(model, **kwargs)
        from recapp.realtime.store import EventStore

        st = store if isinstance(store, EventStore) else EventStore(store, read_only=True)
        for batch in st.iter_batches(batch_size):
            engine.ingest(batch)
        return engine

    def __repr__(self) -> str:
        return (f"Engine({type(self.model).__name__}, k={self.k}, users={self.n_users:,}, items={self.n_items:,}, "
                f"events={self.n_ingested_:,})")


def _base_score_history():
    from recapp.models.base import Recommender

    return getattr(Recommender, "score_history", None)


def _hashable(v) -> bool:
    try:
        hash(v)
    except TypeError:
        return False
    return True


def _faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _plain(v):
    """numpy scalars as Python values, so dict keys and DataFrame columns stay simple."""
    return v.item() if isinstance(v, np.generic) else v


def _freeze(obj):
    """A hashable key for filter specifications (dicts, lists, ranges, callables)."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in obj.items()))
    if isinstance(obj, (list, tuple, set, frozenset, np.ndarray, pd.Index)):
        items = [_freeze(v) for v in obj]
        return ("set", tuple(sorted(items, key=repr))) if isinstance(obj, (set, frozenset)) else tuple(items)
    if callable(obj):
        return ("callable", id(obj))
    return _plain(obj)


def _result_frame(ids, scores, expl, changes) -> pd.DataFrame:
    """The public result frame from the arrays ``_recommend`` computes."""
    return pd.DataFrame({
        ITEM_COL: ids,
        SCORE_COL: scores,
        RANK_COL: np.arange(1, len(ids) + 1, dtype=np.int64),
        # Object dtype: building a pandas 3 "str" (Arrow) column costs more than the rest of the frame.
        EXPLANATION_COL: pd.Series(expl, dtype=object),
        RANK_CHANGE_COL: changes.copy(),
    })


def _rejected_frame(rows: list) -> pd.DataFrame:
    return pd.DataFrame({"row": [r for r, _ in rows], "reason": [why for _, why in rows]}, columns=["row", "reason"])


__all__ = ["Engine", "IngestResult", "UserState", "EXPLANATION_COL", "RANK_CHANGE_COL", "RESULT_COLUMNS"]
