"""The real-time engine: ``ingest(event)`` updates one shopper's state, ``recommend(user)`` re-ranks.

A thin façade. The model says how to score a changing history (its
:class:`~recapp.models.live.LiveScorer`, from ``model.live_scorer()``); the
pieces of this package do the rest: per-shopper state (:mod:`.state`), the
"popular now" counters (:mod:`.trending`), a list's settings and per-call
overrides (:mod:`.options`), candidates, filters, MMR, explanations and rank
changes (:mod:`.ranking`), the frames it returns (:mod:`.frames`), the item space
(:mod:`.catalogue`), approximate search (:mod:`.index`), the result cache
(:mod:`.cache`), how one event changes that state (:mod:`.apply`), what the
constructor refuses (:mod:`.engine_args`), the sizes and counters it reports
(:mod:`.engine_summary`), the model swap (:mod:`.swap`) and the background refit
that learns new items (:mod:`.refit`).
The engine never asks what kind of model it has.

>>> engine = Engine(EASE().fit(train), items=items_table)
>>> engine.ingest({"user_id": 7, "item_id": 42, "timestamp": 1.7e9, "event": "view"})
>>> engine.recommend(7, k=10)          # item_id, score, rank, explanation, rank_change
"""
from __future__ import annotations

import logging
import threading

import pandas as pd

from recapp.event_weights import EVENT_CODES, resolve_event_weights
from recapp.models.base import check_param
from recapp.realtime.apply import apply_rows
from recapp.realtime.cache import ResultCache, plain
from recapp.realtime.catalogue import Catalogue
from recapp.realtime.engine_args import check_engine_args, check_model
from recapp.realtime.engine_summary import EngineSummary
from recapp.realtime.frames import EVENT_NAMES  # noqa: F401 - moved to .frames; still importable from here
from recapp.realtime.frames import EXPLANATION_COL, RANK_CHANGE_COL, RESULT_COLUMNS, history_frame, result_frame
from recapp.realtime.index import faiss_available
from recapp.realtime.ingest import IngestResult, SeenIds, event_rows, frame_rows
from recapp.realtime.options import ListOptions
from recapp.realtime.ranking import MIN_LAST_LISTS, Ranker
from recapp.realtime.refit import Refitter
from recapp.realtime.state import Shoppers
from recapp.realtime.swap import build_index, swap_model
from recapp.realtime.threads import one_blas_thread
from recapp.realtime.trending import Trending
from recapp.schema import ITEM_COL, SCORE_COL
from recapp.schema.cells import id_problem

log = logging.getLogger(__name__)

DAY = 86_400.0


class Engine(EngineSummary):
    """Serve recommendations that follow each shopper's events as they happen.

    Parameters
    ----------
    model : any fitted :class:`~recapp.models.base.Recommender`; it is served
        through ``model.live_scorer()``.
    k : default list length.
    items : optional catalogue (item_id plus columns such as category, price,
        title) for business filters, titles in explanations and category-based
        diversity; new items may be added with :meth:`add_items`.
    exclude_events : event types whose items are never recommended again to
        that user (default purchases and ratings: what was bought or rated once).
    exclude_viewed : also exclude every item the user has had any event on.
    diversity : MMR lambda in [0, 1]; 1 (default) keeps the model's order.
    calibration : Steck's lambda in [0, 1] (:func:`recapp.rerank.calibrated`): the list's
        category mix follows the shopper's history; 0 (default) keeps the model's order.
        Needs ``items`` with a ``categories`` column.
    exposure : beta in [0, 1] of the popularity-tail re-ranker
        (:func:`recapp.rerank.exposure_aware`), head and tail from the engine's all-time
        counts; 0 (default) keeps the model's order. Each list aims at the head share
        of the shopper's history, or at ``exposure_target`` (in [0, 1]) for everyone.
        At most one of ``diversity`` < 1, ``calibration`` > 0 and ``exposure`` > 0 may be on.
    categories : the items-table column calibration reads ("A|B" labels for several).
    diversity_categories : the items-table column MMR compares (same label: similar) where the scorer has no similarity
        (default "category", used when present; another name ``items`` lacks is refused).
    filters : default business filters (see :func:`recapp.rerank.filter_mask`).
    half_life : seconds of event time for the "popular now" counters to halve (None: no decay).
    recency : per-event decay of history weights in (0, 1]; 1 weighs the whole
        history as ``model.recommend`` does, 0.9 makes the latest events dominate.
        Sequence models read the order anyway.
    ann : None (exact), ``"faiss"`` (HNSW inner-product search over the scorer's
        item vectors) or ``"auto"`` (faiss from ``ann_min_items`` items when installed).
    store : an :class:`~recapp.realtime.store.EventStore` (or a path); every batch is
        validated and committed there before it changes any state.
    cache_size : entries of the LRU cache of ``recommend`` results (0 disables it); the last list
        of that many shoppers (at least 1,024), least recently served dropped first, is kept for
        ``rank_change``.
    explain : whether to compute explanations.
    pseudonymizer : a :class:`~recapp.privacy.Pseudonymizer`: user ids are replaced by
        pseudonyms as events arrive and when ``recommend``, ``history``, ``warm`` and
        ``reset_user`` are called, so callers keep passing raw ids while the engine's
        state, the store and every refit hold only pseudonyms. The model must have been
        fitted on pseudonyms (``model.fit(pseudonymizer.frame(train))``). A model with
        ``dp_counts_`` (``Popularity(epsilon=...)``) seeds "popular now" with them.
    refit_every : refit a copy of the model on the training log plus every event
        ingested since, in a background thread, after this many events, and swap
        it in atomically (None: never). This is how items launched while serving
        get learned by the model and not only through popularity.
    """

    def __init__(self, model, k: int = 10, *, items: pd.DataFrame | None = None,
                 exclude_events=("purchase", "rating"), exclude_viewed: bool = False,
                 diversity: float = 1.0, filters=None, half_life: float | None = 7 * DAY,
                 recency: float = 1.0, ann: str | None = None, ann_min_items: int = 50_000,
                 store=None, cache_size: int = 1024, explain: bool = True, n_explain: int = 3,
                 event_weights: dict | None = None, max_user_vectors: int | None = None,
                 refit_every: int | None = None, calibration: float = 0.0, exposure: float = 0.0,
                 categories: str = "category", exposure_target: float | None = None, pseudonymizer=None,
                 diversity_categories: str = "category"):
        check_model(model)
        options = ListOptions(k, filters, exclude_viewed, diversity, calibration, exposure, categories, exposure_target,
                              diversity_categories)
        check_engine_args(model, options, items, exclude_events=exclude_events, pseudonymizer=pseudonymizer,
                          recency=recency, half_life=half_life, cache_size=cache_size, n_explain=n_explain, ann=ann)
        self.model = model
        self.options = options
        self.exclude_codes = frozenset(EVENT_CODES[e] for e in exclude_events)
        self.pseudonymizer = pseudonymizer
        self.half_life = half_life
        self.recency = float(recency)
        inter = model.interactions_
        self.event_weights = resolve_event_weights({**(inter.event_weights or {}), **(event_weights or {})})
        self._lock = threading.RLock()
        self.catalogue = Catalogue(inter.item_ids.tolist())
        self.trending = Trending(inter, half_life, getattr(model, "dp_counts_", None))
        self.scorer = model.live_scorer()
        if max_user_vectors is None:
            # About 256 MB of cached score vectors, and never fewer than 64 users.
            max_user_vectors = max(64, int(256e6 / (4 * max(self.scorer.n_items, 1))))
        self.shoppers = Shoppers(inter, self.exclude_codes, self.recency, max_user_vectors, self.catalogue.ids)
        self.ranker = Ranker(self.catalogue, self.trending, explain=explain, n_explain=n_explain,
                             max_shoppers=max(cache_size, MIN_LAST_LISTS))
        self.cache = ResultCache(cache_size)
        if items is not None:
            self.add_items(items)
        self.n_ingested_ = 0
        self.n_rejected_ = 0
        self._seen_ids = SeenIds()
        if ann == "auto":
            ann = "faiss" if (len(self.catalogue) >= ann_min_items and faiss_available()) else None
        self.ann = ann
        build_index(self)
        self.store = None
        if store is not None:
            from recapp.realtime.store import EventStore

            self.store = EventStore.for_writer(store, pseudonymizer)
        self.refitter = Refitter(self, refit_every) if refit_every is not None else None

    # ---- the item space ------------------------------------------------------------
    def add_items(self, items: pd.DataFrame) -> None:
        """Add or replace catalogue rows (item_id plus attributes); new ids join the item space."""
        with self._lock:
            for item in self.catalogue.add_table(items):
                self.catalogue.add(item)
            self.scorer.add_items(len(self.catalogue))
            self.cache.clear()

    # ---- ingest ----------------------------------------------------------------------
    def _user(self, user_id):
        """The id the engine keys a shopper by: the pseudonym when pseudonymising.

        Refused (ValueError): what cannot be an id (:func:`recapp.schema.cells.id_problem`):
        ``True`` would be served as shopper 1, and a list fails in a dict lookup naming nothing.
        """
        problem = id_problem(user_id)
        if problem is not None:
            raise ValueError(f"user_id={user_id!r:.80} {problem}")
        user_id = plain(user_id)
        return self.pseudonymizer(user_id) if self.pseudonymizer is not None else user_id

    def as_policy(self, **kwargs):
        """This engine as a slate policy for the shopper simulator (an :class:`~recapp.experiment.EnginePolicy`)."""
        from recapp.experiment.policies import EnginePolicy

        return EnginePolicy(self, **kwargs)

    def ingest(self, events, *, pseudonymised: bool = False) -> IngestResult:
        """Apply one event (a dict) or many (a DataFrame or a list of dicts) at once.

        Each row needs user_id, item_id and event (view, click, cart, purchase or
        rating); timestamp defaults to the current time; rating and value are
        optional. A batch is applied in timestamp order; separate calls in arrival
        order (an out-of-order timestamp is applied when it arrives). Rows that
        fail validation change nothing and come back in ``result.rejected`` with
        the reason (and, with a store, in its quarantine table); so does a valid
        row whose weight the served model's live scorer cannot fold in (ALS reading
        a rating of -5 as a confidence below 0), which a store keeps, as another
        model may read it. An item never
        seen before joins the catalogue and is served from popularity until the
        model learns it (``refit_every``). Returns an :class:`IngestResult`.
        With a pseudonymizer, user ids are replaced before anything else (rejected
        rows come back with pseudonyms too); ``pseudonymised=True`` says they
        already are (a replay from a pseudonymised store).
        A row whose ``event_id`` was seen before is refused as a duplicate; with a
        store the store does this check (ids kept in its file, so it survives a
        restart) and the engine is fed the rows the store wrote, ids as sent (as a replay
        from the store gives them back).
        """
        if self.pseudonymizer is not None and not pseudonymised:
            events = self.pseudonymizer.events(events)
        with self._lock, one_blas_thread():
            if self.store is not None:
                res = self.store.append(events, pseudonymised=self.pseudonymizer is not None or pseudonymised)
                rows, rejected = frame_rows(res.events), res.rejected
            else:
                rows, rejected = event_rows(events, self._seen_ids)
            rows, rejected = apply_rows(self, rows, rejected)
            result = IngestResult(len(rows), rejected)
            self.n_ingested_ += len(rows)
            if result.n_rejected:
                self.n_rejected_ += result.n_rejected
                log.warning("engine rejected %d event(s): %s", result.n_rejected, result.rejected["reason"].iloc[0])
        if self.refitter is not None and rows:
            self.refitter.after_ingest(rows)
        return result

    # ---- recommend -----------------------------------------------------------------
    def recommend(self, user_id, k: int | None = None, *, filters=None, exclude_viewed: bool | None = None,
                  diversity: float | None = None, calibration: float | None = None,
                  exposure: float | None = None) -> pd.DataFrame:
        """Top-``k`` items for one shopper as DataFrame[item_id, score, rank, explanation, rank_change].

        Works for any user id, known or not (no history: "popular now"). Items the
        user purchased (``exclude_events``) never appear; ``exclude_viewed``,
        ``filters``, ``diversity``, ``calibration`` and ``exposure`` override the
        engine's defaults for this call (a call that sets one re-ranker turns the
        engine's default one off).
        ``score`` is the model's score, or the decayed event count for "popular now"
        items; ``rank_change`` is previous rank minus rank against the shopper's last
        list (<NA> for a new entry, or no last list: one for the ``cache_size`` most
        recently served shoppers, at least 1,024, is kept). The same list served again
        with no event of the shopper's in between repeats its rank changes. Repeated
        calls with no ingest in between come from an LRU cache, with the same values.
        """
        opts = self.options.override(k, filters=filters, exclude_viewed=exclude_viewed, diversity=diversity,
                                     calibration=calibration, exposure=exposure)
        user_id = self._user(user_id)
        with self._lock, one_blas_thread():
            key = (user_id, *opts.cache_key())
            arrays = self.cache.get(key)
            if arrays is None:
                st = self.shoppers.get(user_id, self.scorer, create=False)
                arrays, uses_pop = self.ranker.rank(self.scorer, self.shoppers, user_id, st, opts)
                self.cache.put(key, arrays, uses_pop)
            # Computed on every serve, cached or not: a cached copy would keep the changes of the
            # list it was first compared with, whatever the shopper was served in between.
            changes = self.ranker.last_lists.changes(user_id, arrays[0])
            # Each call builds its own frame, so a caller that edits it cannot change the next.
            return result_frame(*arrays, changes)

    def popular(self, k: int | None = None) -> pd.DataFrame:
        """The "popular now" list: item_id and score (decayed event count, newest events weigh most)."""
        k = self.k if k is None else k
        check_param("k", k, low=1, integer=True)
        with self._lock:
            top, scores = self.trending.candidates(len(self.catalogue), k, set(), None)
            return pd.DataFrame({ITEM_COL: [self.catalogue.ids[i] for i in top], SCORE_COL: scores})

    def warm(self, users=None) -> int:
        """Load state and score vectors for ``users`` (default: every training user) ahead of traffic.

        A server does this at start-up so a known shopper's first request does not
        pay for loading their history. Returns the number of users warmed.
        """
        with self._lock, one_blas_thread():
            return self.shoppers.warm(self.scorer, None if users is None else [self._user(u) for u in users])

    # ---- inspection ------------------------------------------------------------------
    def history(self, user_id) -> pd.DataFrame:
        """A user's events as the engine holds them: item_id, event, timestamp (time order); a long history holds
        its most recent events only (:data:`~recapp.models.live_history.HISTORY_MAX_EVENTS` to twice that; stats() counts the cut)."""
        with self._lock:
            st = self.shoppers.get(self._user(user_id), self.scorer, create=False)
            return history_frame(None if st is None else st.history, self.catalogue.ids)

    def reset_user(self, user_id) -> None:
        """Forget the engine's state for one user (they are reloaded from the model's training data)."""
        with self._lock:
            user_id = self._user(user_id)
            self.shoppers.drop(user_id)
            self.ranker.last_lists.drop(user_id)
            self.cache.invalidate(user_id)

    def swap_model(self, model) -> None:
        """Serve ``model`` from now on (fitted on this engine's item order, e.g. by the refitter); histories are kept,
        less items whose summed weight ``model`` cannot fold in (stats() counts them; still never recommended when
        consumed). A swap that fails part-way (the scorer, the shoppers' restart or the index) serves the old model again and raises.
        """
        swap_model(self, model)

    def wait_for_refit(self, timeout: float | None = None) -> bool:
        """Block until a running background refit is swapped in; False on timeout (or no refitter)."""
        return self.refitter.wait(timeout) if self.refitter is not None else False

    @classmethod
    def from_store(cls, model, store, *, batch_size: int = 10_000, **kwargs) -> "Engine":
        """A fresh engine with every event of ``store`` replayed in timestamp order (store not attached).

        A pseudonymised store's rows are ingested as the pseudonyms they are; its key
        must be the engine's ``pseudonymizer``'s. ``store`` is an EventStore or a path;
        a path is opened read-only and closed again before this returns (or raises).
        DuckDB lets one process write a file and refuses to open it a second time
        alongside, so a store a writer holds (an engine's ``store=``, an open
        EventStore) must be passed as that writer's EventStore object, not its path.
        The replay is a snapshot: events appended while it runs are not included.
        """
        engine = cls(model, **kwargs)
        from recapp.realtime.store import EventStore

        if isinstance(store, EventStore):
            return store.replay(engine, batch_size)
        with EventStore(store, read_only=True) as st:
            return st.replay(engine, batch_size)


__all__ = ["Engine", "IngestResult", "EXPLANATION_COL", "RANK_CHANGE_COL", "RESULT_COLUMNS"]
