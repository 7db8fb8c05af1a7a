"""One BLAS thread while the engine serves an event.

A shopper's event costs a few small products (an f x f solve, one items x f
matrix-vector product). Spread over BLAS's threads they cost more than they
save: the threads must wake for each call, and on a busy machine they wait
for a core. Measured on the 2-core development machine under load, a
20,000 x 64 float32 matrix-vector product took 6.0 ms (p50) with OpenBLAS's
two threads and 0.2 ms with one. Fitting keeps every thread.

The setting is process-wide, and changing it under a BLAS call running in
another thread is not safe. So a fit that runs in a thread beside live serving
(the engine's background refit, the dashboard's training) runs inside
:func:`background_fit`: it waits for events already on one thread to restore
the count, and from the moment it starts waiting until it ends, events leave
the count alone (so a steady stream of events cannot hold a fit back).
"""
from __future__ import annotations

import contextlib
import logging
import sys
import threading

log = logging.getLogger(__name__)

_blas_libraries = None
_modules_seen = -1
_init_lock = threading.Lock()
# Fits running beside serving (or waiting to), and events that have switched BLAS to one thread; guarded by _switches.
_switches = threading.Condition()
_fits_running = 0
_fits_waiting = 0
_events_switched = 0
_warned = False


def _blas() -> list:
    """threadpoolctl's controllers of the loaded BLAS libraries."""
    # Scanning the loaded libraries costs about 1.4 ms, so it is redone only when
    # a module was imported since the last scan (a new BLAS comes with one).
    global _blas_libraries, _modules_seen
    if _blas_libraries is None or len(sys.modules) != _modules_seen:
        with _init_lock:
            if _blas_libraries is None or len(sys.modules) != _modules_seen:
                from threadpoolctl import ThreadpoolController

                _blas_libraries = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
                _modules_seen = len(sys.modules)
    return _blas_libraries


def _warn_once(exc: Exception) -> None:
    """Log the first failure to change BLAS's thread count around an event (serving goes on regardless)."""
    global _warned
    if not _warned:
        _warned = True
        log.warning("could not change BLAS's thread count around an event; serving goes on: %s: %s",
                    type(exc).__name__, exc)


class _OneThread:
    """Set every BLAS library to one thread on entry and back to its own count on exit.

    Calls the libraries directly: threadpoolctl's ``limit`` re-reads every
    library's settings on each entry, which costs three times as much per event.
    """

    def __init__(self, libraries):
        self.libraries = libraries

    def __enter__(self):
        global _events_switched
        with _switches:
            # A waiting fit also stops new switches: back-to-back events would otherwise keep the count
            # above zero and hold a refit back until the stream paused (for the whole of a replay).
            self.switched = _fits_running == 0 and _fits_waiting == 0
            if self.switched:
                _events_switched += 1
        if self.switched:
            done = []
            try:
                self.saved = [lib.num_threads for lib in self.libraries]
                for lib, n in zip(self.libraries, self.saved):
                    if n != 1:
                        lib.set_num_threads(1)
                        done.append((lib, n))
            except Exception as exc:  # noqa: BLE001 - a failed switch is no reason to fail an event
                # Put back what was switched and leave the count, so background fits do not wait forever.
                for lib, n in done:
                    with contextlib.suppress(Exception):
                        lib.set_num_threads(n)
                self.switched = False
                with _switches:
                    _events_switched -= 1
                    _switches.notify_all()
                _warn_once(exc)
        return self

    def __exit__(self, *exc):
        global _events_switched
        if self.switched:
            for lib, n in zip(self.libraries, self.saved):
                if n != 1:
                    try:
                        lib.set_num_threads(n)
                    except Exception as err:  # noqa: BLE001 - the count below must come down regardless
                        _warn_once(err)
            with _switches:
                _events_switched -= 1
                _switches.notify_all()
        return False


def one_blas_thread():
    """A context in which numpy's BLAS (and any other loaded BLAS) runs on one thread."""
    try:
        return _OneThread(_blas())
    except Exception:  # noqa: BLE001 - no threadpool information is no reason to fail an event
        return contextlib.nullcontext()


@contextlib.contextmanager
def background_fit():
    """Mark a fit running in a thread beside live serving, so no event changes BLAS's threads under it.

    It waits only for the events already on one thread; events arriving meanwhile keep BLAS's count.
    """
    global _fits_running, _fits_waiting
    with _switches:
        _fits_waiting += 1
        try:
            _switches.wait_for(lambda: _events_switched == 0)
        finally:
            _fits_waiting -= 1
        _fits_running += 1
    try:
        yield
    finally:
        with _switches:
            _fits_running -= 1
