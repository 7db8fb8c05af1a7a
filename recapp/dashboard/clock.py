"""A play clock that keeps the page live: ticks that queued up are skipped, a slow kernel slows the clock.

The clock is an :class:`ipywidgets.Play` (a timer in the browser, so it keeps
running under ipykernel 7, where asyncio tasks started from a cell stop). It
does not wait for the kernel, so two protections keep the page from falling behind.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Callable

import numpy as np


#: Handler timings kept (back-pressure reads the last ten; the page's percentiles the rest).
HANDLER_POINTS = 1000


class Clock:
    """One Play timer calling ``handler()`` once per tick, with late-tick skipping and back-pressure.

    ``throttle=False`` (tests) handles every tick. ``handler_ms`` records the
    handler's time per tick; ``skipped`` counts ticks dropped for arriving too soon.
    """

    def __init__(self, W, interval: int, throttle: bool = True, css_class: str | None = None, description: str = ""):
        self.play = W.Play(value=0, min=0, max=10**7, step=1, interval=int(interval), show_repeat=False,
                           description=description)
        if css_class:
            self.play.add_class(css_class)
        self.base_interval = int(interval)
        self.throttle = throttle
        self.handler_ms: deque = deque(maxlen=HANDLER_POINTS)
        self.skipped = 0
        self._last = -np.inf

    def on_tick(self, handler: Callable[[], object], guard: Callable[[Callable], Callable]) -> None:
        """Call ``handler()`` on each tick, wrapped by ``guard`` (the page's error handling)."""
        def tick(change):
            if change["new"] == 0 or change["new"] < change["old"]:
                return  # a reset or the stop button, not a clock tick
            if self._late():
                self.skipped += 1
                return
            t0 = time.perf_counter()
            handler()
            self.handler_ms.append((time.perf_counter() - t0) * 1000)
            self._pace()
        self.play.observe(guard(tick), "value")

    @property
    def playing(self) -> bool:
        """Whether the clock runs."""
        return bool(self.play.playing)

    def stop(self) -> None:
        """Pause the clock."""
        self.play.playing = False

    def reset(self) -> None:
        """Pause, rewind and forget the timings."""
        self.play.playing = False
        self.play.value = 0
        self.handler_ms.clear()
        self.skipped, self._last = 0, -np.inf
        self.play.interval = self.base_interval

    def set_interval(self, ms: int) -> None:
        """Ask for one tick every ``ms`` milliseconds (back-pressure may keep it slower)."""
        self.base_interval = int(ms)
        self.play.interval = int(ms)

    @property
    def slowed(self) -> bool:
        """Whether back-pressure has slowed the clock below the asked-for speed."""
        return self.play.interval > self.base_interval

    def _late(self) -> bool:
        # A tick arriving much sooner than the interval is a burst queued while the kernel was busy.
        if not self.throttle:
            return False
        now = time.perf_counter()
        if now - self._last < 0.5 * self.play.interval / 1000.0:
            return True
        self._last = now
        return False

    def _pace(self) -> None:
        # Keep the interval above 1.5x the recent handler time: a kernel that cannot finish a tick
        # within the interval would fall further behind with every tick.
        if not self.throttle or len(self.handler_ms) < 3:
            return
        need = int(np.ceil(1.5 * np.percentile(list(self.handler_ms)[-10:], 90) / 10.0) * 10)
        interval = max(self.base_interval, need)
        if interval != self.play.interval:
            self.play.interval = interval
