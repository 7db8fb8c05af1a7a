"""Training progress for whoever is waiting: a per-thread callback that training loops report to.

The dashboard trains in a background thread and shows a progress bar; the
loops (``torch_base.fit_epochs``) call :func:`report_progress` and never know who listens.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable

_local = threading.local()


@contextmanager
def training_progress(callback: Callable[[int, int], None]):
    """Within the block, on this thread, training loops report ``callback(done, total)`` after each epoch."""
    previous = getattr(_local, "callback", None)
    _local.callback = callback
    try:
        yield
    finally:
        _local.callback = previous


def report_progress(done: int, total: int) -> None:
    """Tell this thread's listener (if any) that ``done`` of ``total`` steps of training are finished."""
    callback = getattr(_local, "callback", None)
    if callback is not None:
        callback(int(done), int(total))


def progress_listened() -> bool:
    """Whether this thread has a progress listener (a loop may then skip its own console bar)."""
    return getattr(_local, "callback", None) is not None
