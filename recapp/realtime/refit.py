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
"""
from __future__ import annotations

import logging
import threading
import time

import pandas as pd

from recapp.interactions import Interactions
from recapp.models.base import check_param
from recapp.realtime.threads import background_fit
from recapp.schema import EVENT_COL, ITEM_COL, RATING_COL, TIME_COL, USER_COL

log = logging.getLogger(__name__)


class Refitter:
    """Background refits of ``engine.model`` every ``every`` ingested events (an integer >= 1, not a bool)."""

    def __init__(self, engine, every: int):
        # check_param refuses True (an int to isinstance, which refitted after every event) and takes numpy integers.
        check_param("refit_every", every, low=1, integer=True)
        self.engine = engine
        self.every = int(every)
        self._log: list = []
        self._since = 0
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._done.set()
        self.n_refits = 0
        self.last_seconds = None
        self.last_error = None

    def after_ingest(self, rows: list) -> None:
        """Record applied rows; start a refit when enough arrived and none is running."""
        with self.engine._lock:
            self._log.extend(rows)
            self._since += len(rows)
            if self._since < self.every or not self._done.is_set():
                return
            since, self._since = self._since, 0
            snapshot = list(self._log)
            item_ids = list(self.engine.catalogue.ids)
            model = self.engine.model
            self._done.clear()
        # Not a daemon: a refit still running when the interpreter exits is waited for, because
        # killing a thread inside torch or BLAS aborts the whole process.
        thread = threading.Thread(target=self._run, args=(model, snapshot, item_ids), daemon=False,
                                  name="recapp-refit")
        try:
            thread.start()
        except Exception as exc:  # noqa: BLE001 - e.g. "can't start new thread"; the events are applied
            with self.engine._lock:
                self._since += since           # the refit is still due: the next ingest tries again
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._done.set()
            log.warning("could not start a background refit; the engine keeps serving the current model: %s",
                        self.last_error)
            return
        self._thread = thread

    def _run(self, model, rows: list, item_ids: list) -> None:
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
                # this refit stay; no other refit took a snapshot (_done is clear).
                del self._log[: len(rows)]
            self.n_refits += 1
            self.last_error = None
        except Exception as exc:  # a failed refit must never stop serving
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("background refit failed; the engine keeps serving the current model: %s", self.last_error)
        finally:
            self.last_seconds = time.perf_counter() - t0
            self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no refit is running; False on timeout (None or a number of seconds >= 0, else ValueError)."""
        if timeout is not None:
            check_param("timeout", timeout, low=0)
        return self._done.wait(timeout)

    def stats(self) -> dict:
        """Refits done, the last one's seconds and error (None when it succeeded)."""
        return {"refits": self.n_refits, "refit_seconds": self.last_seconds, "refit_error": self.last_error}
