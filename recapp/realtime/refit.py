"""Learning the item side while serving: refit a copy of the model in the background and swap it in.

Per-event scoring folds a shopper's events in against the model's fixed item
side, so an item launched after training is only ever reached through "popular
now". The refitter keeps every event the engine applies; after ``every`` of
them it fits a fresh copy of the model (same class and hyperparameters) on the
served model's log (training plus the events earlier refits learned) plus the
events since the last successful refit, in a background thread, with the engine's item
order, so indices line up; then :meth:`Engine.swap_model` replaces the model
atomically under the engine's lock. ``ingest`` and ``recommend`` go on while
the copy trains; at most one refit runs at a time.

A refit that fails is counted (``refit_failures`` in ``engine.stats()``, with
its error) and tried again after twice as many events each time, up to
:data:`MAX_BACKOFF` times ``every``, so a model that can no longer fit does not
refit the whole log every ``every`` events; a warning is logged when a run of
failures starts or its error changes. A refit that succeeds clears both. The
events kept for the next refit are at most :data:`MAX_LOG` (or ``4 * every``):
beyond that the oldest are dropped, counted (``refit_rows_dropped``) and warned
about once; they stay in the shoppers' histories and the store, but that model
does not learn them.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque

import pandas as pd

from recapp.interactions import Interactions
from recapp.models.base import check_param
from recapp.realtime.threads import background_fit
from recapp.schema import EVENT_COL, ITEM_COL, RATING_COL, TIME_COL, USER_COL

log = logging.getLogger(__name__)

#: A failed refit is tried again after ``every * 2**failures`` events, at most this many times ``every``.
MAX_BACKOFF = 64
#: Events kept for the next refit (or ``4 * every`` when larger), as the engine's SeenIds keeps event ids.
MAX_LOG = 1_000_000


class Refitter:
    """Background refits of ``engine.model`` every ``every`` ingested events (an integer >= 1, not a bool)."""

    def __init__(self, engine, every: int):
        # check_param refuses True (an int to isinstance, which refitted after every event) and takes numpy integers.
        check_param("refit_every", every, low=1, integer=True)
        self.engine = engine
        self.every = int(every)
        self.max_log = max(MAX_LOG, 4 * self.every)
        self._log: deque = deque()
        self._log_start = 0            # rows ever removed from the front of _log (learned or dropped)
        self._since = 0
        self._due = self.every         # events after which the next refit starts (grows while refits fail)
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._done.set()
        self.n_refits = 0
        self.last_seconds = None
        self.last_error = None
        self.n_failures = 0            # failed refits since the last one that succeeded
        self.n_dropped = 0

    def _failed(self, error: str, what: str) -> None:
        """Count a failure (under the engine's lock); warn when a run of failures starts or its error changes."""
        self.n_failures += 1
        if self.n_failures == 1 or error != self.last_error:
            log.warning("%s; the engine keeps serving the current model (failure %d in a row): %s",
                        what, self.n_failures, error)
        else:
            log.debug("%s again (failure %d in a row): %s", what, self.n_failures, error)
        self.last_error = error

    def after_ingest(self, rows: list) -> None:
        """Record applied rows; start a refit when enough arrived and none is running."""
        with self.engine._lock:
            self._log.extend(rows)
            self._since += len(rows)
            excess = len(self._log) - self.max_log
            if excess > 0:
                for _ in range(excess):
                    self._log.popleft()
                self._log_start += excess
                if self.n_dropped == 0:
                    log.warning("the refit log holds at most %d events; the oldest are dropped and the next refit "
                                "does not learn them (refit_rows_dropped in engine.stats())", self.max_log)
                self.n_dropped += excess
            if self._since < self._due or not self._done.is_set():
                return
            since, self._since = self._since, 0
            snapshot = list(self._log)
            end = self._log_start + len(snapshot)
            item_ids = list(self.engine.catalogue.ids)
            model = self.engine.model
            self._done.clear()
        # Not a daemon: a refit still running when the interpreter exits is waited for, because
        # killing a thread inside torch or BLAS aborts the whole process.
        thread = threading.Thread(target=self._run, args=(model, snapshot, end, item_ids), daemon=False,
                                  name="recapp-refit")
        try:
            thread.start()
        except Exception as exc:  # noqa: BLE001 - e.g. "can't start new thread"; the events are applied
            with self.engine._lock:
                self._since += since           # the refit is still due: the next ingest tries again
                self._failed(f"{type(exc).__name__}: {exc}", "could not start a background refit")
                self._done.set()
            return
        self._thread = thread

    def _run(self, model, rows: list, end: int, item_ids: list) -> None:
        t0 = time.perf_counter()
        try:
            base = model.interactions_
            live = pd.DataFrame(rows, columns=[USER_COL, ITEM_COL, TIME_COL, EVENT_COL, RATING_COL])
            cols = [c for c in (USER_COL, ITEM_COL, TIME_COL, EVENT_COL, RATING_COL) if c in base.frame.columns]
            frame = pd.concat([base.frame[cols], live[[c for c in cols if c in live.columns]]], ignore_index=True)
            inter = Interactions.from_frame(frame, event_weights=base.event_weights, item_ids=pd.Index(item_ids))
            params = model.get_params()
            if "verbose" in params:
                params["verbose"] = False      # no progress bar from a background thread
            with background_fit():
                fresh = type(model)(**params).fit(inter)
            with self.engine._lock:
                self.engine.swap_model(fresh)
                # The served model now holds these events and the next refit starts from its log, so they
                # leave ours, or they would be trained on again (and weigh twice). Events applied during
                # this refit stay; no other refit took a snapshot (_done is clear). Rows dropped at the
                # front meanwhile were snapshot rows, hence the count from _log_start.
                for _ in range(max(0, end - self._log_start)):
                    self._log.popleft()
                self._log_start = max(self._log_start, end)
                if self.n_failures:
                    log.info("background refit succeeded after %d failed one(s)", self.n_failures)
                self.n_refits += 1
                self.last_error, self.n_failures, self._due = None, 0, self.every
        except Exception as exc:  # a failed refit must never stop serving
            with self.engine._lock:
                self._failed(f"{type(exc).__name__}: {exc}", "background refit failed")
                # Each try fits the whole log again: wait longer after each failure.
                self._due = self.every * min(2 ** min(self.n_failures, 30), MAX_BACKOFF)
        finally:
            self.last_seconds = time.perf_counter() - t0
            self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no refit is running; False on timeout (None or a number of seconds >= 0, else ValueError)."""
        if timeout is not None:
            check_param("timeout", timeout, low=0)
        return self._done.wait(timeout)

    def stats(self) -> dict:
        """Refits done, the last one's seconds, failures since the last success and the last error (None after a
        success), and events dropped from the refit log."""
        return {"refits": self.n_refits, "refit_seconds": self.last_seconds, "refit_error": self.last_error,
                "refit_failures": self.n_failures, "refit_rows_dropped": self.n_dropped}
