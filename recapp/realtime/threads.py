"""One BLAS thread while the engine serves an event.

A shopper's event costs a few small products (an f x f solve, one items x f
matrix-vector product). Spread over BLAS's threads they cost more than they
save: the threads must wake for each call, and on a busy machine they wait
for a core. Measured on the 2-core development machine under load, a
20,000 x 64 float32 matrix-vector product took 6.0 ms (p50) with OpenBLAS's
two threads and 0.2 ms with one. Fitting keeps every thread.
"""
from __future__ import annotations

import contextlib
import sys
import threading

_blas_libraries = None
_modules_seen = -1
_init_lock = threading.Lock()


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


class _OneThread:
    """Set every BLAS library to one thread on entry and back to its own count on exit.

    Calls the libraries directly: threadpoolctl's ``limit`` re-reads every
    library's settings on each entry, which costs three times as much per event.
    """

    def __init__(self, libraries):
        self.libraries = libraries

    def __enter__(self):
        self.saved = [lib.num_threads for lib in self.libraries]
        for lib, n in zip(self.libraries, self.saved):
            if n != 1:
                lib.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        for lib, n in zip(self.libraries, self.saved):
            if n != 1:
                lib.set_num_threads(n)
        return False


def one_blas_thread():
    """A context in which numpy's BLAS (and any other loaded BLAS) runs on one thread."""
    try:
        return _OneThread(_blas())
    except Exception:  # noqa: BLE001 - no threadpool information is no reason to fail an event
        return contextlib.nullcontext()
