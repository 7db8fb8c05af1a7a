"""The Stream tab: every shopper's events through the live engine at a chosen rate, beside the static model."""
from __future__ import annotations

import time

from recapp.dashboard import figures, views
from recapp.dashboard.clock import Clock
from recapp.dashboard.operations import HIT_WINDOW, RATES, StreamSession
from recapp.dashboard.session import K

#: The panels redraw at most this often (ms), whatever the event rate: each tick streams a batch.
TICK_MS = 250
#: The longest stretch of wall time one tick catches up on, so a stall never becomes a burst.
MAX_CATCH_UP_S = 1.0


class StreamTab:
    """Widgets for the live operations view; the work is a :class:`StreamSession`."""

    def __init__(self, app):
        W = app.W
        self.app = app
        self.session: StreamSession | None = None
        self.clock = Clock(W, TICK_MS, app.throttle, "recapp-stream-play", description="Stream")
        self.rate_dd = W.Dropdown(options=[(f"{r} events/s", r) for r in RATES], value=RATES[1], description="Rate",
                                  layout=W.Layout(width="200px"))
        self.reset_btn = W.Button(description="Reset", icon="undo", layout=W.Layout(width="90px"))
        self.panel = W.HTML("<i>Press play to stream every shopper's events through the engine.</i>")
        self.panel.add_class("recapp-stream")
        self.slot = figures.FigureSlot(W, lambda: figures.stream_figure(K, HIT_WINDOW))
        self._last: float | None = None
        self._carry = 0.0
        self.reset_btn.on_click(app.guarded(self._on_reset))
        self.rate_dd.observe(app.guarded(self._on_rate), "value")
        self.clock.on_tick(self.step, app.guarded)
        intro = W.HTML(
            "Every shopper's held-out events in time order (simulated shoppers for the synthetic shop), through the "
            "live engine: each event is first appended to a DuckDB event store (rejected rows are quarantined with "
            f"their reason), then the engine is asked for a top-{K} and ingests it. Hit rate: did the list before "
            "a choice hold the chosen item, live against the same model served statically (never updated).")
        controls = W.HBox([self.clock.play, self.rate_dd, self.reset_btn], layout=W.Layout(align_items="center"))
        self.root = W.VBox([intro, controls, self.panel, self.slot.box])

    @property
    def fig(self):
        """The figure the stream draws into (a new one for each stream)."""
        return self.slot.fig

    def stop(self) -> None:
        """Pause the stream."""
        self.clock.stop()
        self._last = None

    def on_model(self) -> None:
        """A new model: start again; a stream under way is dropped, and the panel says so."""
        played = self.session.n_events if self.session is not None else 0
        self.reset()
        if played:
            self.panel.value = (f"<i>Model {views.esc(self.app.model_label)} is served now: the stream of {played:,} "
                                "events with the previous model was dropped. Press play to stream again from the "
                                "first held-out event.</i>")

    def on_data(self) -> None:
        """New data: forget the old data's stream at once, before a model is served on the new one."""
        self.reset()

    def _on_reset(self, _button) -> None:
        self.reset()

    def _on_rate(self, _change) -> None:
        self._carry = 0.0

    def reset(self) -> None:
        """Stop and forget the stream; the next play starts from the first held-out event."""
        self.clock.reset()
        if self.session is not None:
            self.session.close()
        self.session, self._last, self._carry = None, None, 0.0
        self.slot.renew()
        self.panel.value = "<i>Press play to stream every shopper's events through the engine.</i>"

    def step(self, seconds: float | None = None) -> dict:
        """Stream the events due since the last tick (``seconds`` of them at the chosen rate) and redraw.

        Without data or a served model nothing streams: the clock stops and the page says why.
        """
        app = self.app
        if app.model is None:
            self.stop()
            app.show_message(app.not_ready() or "No model is served on this data: pick one in Model.", "warn")
            return {}
        if self.session is None:
            self.session = StreamSession(app.scenario, app.model, K, app.random_state)
            self.slot.renew()
        now = time.perf_counter()
        if seconds is None:
            seconds = TICK_MS / 1000.0 if self._last is None else min(now - self._last, MAX_CATCH_UP_S)
        self._last = now
        due = self.rate_dd.value * seconds + self._carry
        n = int(due)
        self._carry = due - n
        rec = self.session.step(n)
        self.panel.value = views.operations(app.scenario, rec, K, self.clock.handler_ms)
        figures.update_stream(self.fig, self.session.series)
        if rec["done"]:
            self.stop()
            # Quarantined rows are not among n_events: the total says every held-out event was streamed.
            total = self.session.n_events + self.session.n_rejected
            rejected = int(rec["rejected"].sum())
            rej = f", {rejected:,} of them rejected (see Rejected events)" if rejected else ""
            app.show_message(f"Stream finished: all {total:,} held-out events replayed{rej}. Press Reset to start again.")
        return rec
