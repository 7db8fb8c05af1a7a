"""The Live tab: one shopper, their events one per tick, the list re-ranked and explained as they arrive."""
from __future__ import annotations

import numpy as np

from recapp.dashboard import figures, views
from recapp.dashboard.clock import Clock
from recapp.dashboard.jobs import DATA
from recapp.dashboard.scenarios import UnknownUserError
from recapp.dashboard.session import HIT_WINDOW, K, LiveSession

#: Play interval (ms) per speed. The browser schedules each tick only after it has run the last
#: one and redrawn the page (tens of ms on a busy machine), so 1x asks for 150 ms to deliver
#: at least 5 events per second.
SPEEDS = {"0.5x": 300, "1x": 150, "2x": 75, "4x": 40}
#: The list panel while no model is served on the data.
WAITING = "<i style='color:#888'>The list appears once a model is served on this data.</i>"


class LiveTab:
    """Widgets for one shopper's live session; the session itself is a :class:`LiveSession`."""

    def __init__(self, app):
        W = app.W
        self.app = app
        self.session: LiveSession | None = None
        self.user_id = None
        self._quiet = False
        self.user_box = W.Combobox(placeholder="type a user id, or search by profile", ensure_option=False,
                                   continuous_update=False, description="User", layout=W.Layout(width="380px"))
        self.clock = Clock(W, SPEEDS["1x"], app.throttle, "recapp-play", description="Play")
        self.play = self.clock.play
        self.speed_dd = W.Dropdown(options=list(SPEEDS.items()), value=SPEEDS["1x"], description="Speed",
                                   layout=W.Layout(width="160px"))
        self.reset_btn = W.Button(description="Reset", icon="undo", layout=W.Layout(width="90px"))
        self.profile, self.feed, self.recs, self.status = (W.HTML("") for _ in range(4))
        for w, cls in ((self.profile, "recapp-profile"), (self.feed, "recapp-feed"), (self.recs, "recapp-recs"),
                       (self.status, "recapp-status"), (self.user_box, "recapp-user"), (self.reset_btn, "recapp-reset")):
            w.add_class(cls)
        # Built for the data shown: whether the CTR panel applies is part of the figure, not a later change.
        self.slot = figures.FigureSlot(W, lambda: figures.live_figure(HIT_WINDOW, self._simulated()))
        self.user_box.observe(app.guarded(self._on_user), "value")
        self.speed_dd.observe(app.guarded(self._on_speed), "value")
        self.reset_btn.on_click(app.guarded(self._on_reset))
        self.clock.on_tick(self.step, app.guarded)
        clock_row = W.HBox([self.user_box, self.play, self.speed_dd, self.reset_btn, self.status],
                           layout=W.Layout(align_items="center", flex_flow="row wrap"))
        feed_box = W.VBox([W.HTML("<b>Event feed</b>"), self.feed], layout=W.Layout(width="38%", padding="0 12px 0 0"))
        recs_box = W.VBox([W.HTML(f"<b>Top-{K} now</b>"), self.recs], layout=W.Layout(width="62%"))
        self.root = W.VBox([clock_row, self.profile, W.HBox([feed_box, recs_box]), self.slot.box])

    @property
    def fig(self):
        """The figure the session draws into (a new one for each session)."""
        return self.slot.fig

    def _simulated(self) -> bool:
        return self.app.scenario is not None and self.app.scenario.source == "simulated"

    # ---- app events --------------------------------------------------------------------------
    def stop(self) -> None:
        """Pause the clock."""
        self.clock.stop()

    def on_data(self) -> None:
        """New data: fill the user list, pick its most interesting shopper, and clear what the old data showed.

        The list holds the first ``views.USER_OPTIONS`` users (the data report says so); others can be typed.
        """
        sc = self.app.scenario
        ids = sc.user_ids()[:views.USER_OPTIONS]
        self.session = None
        self.clock.reset()
        self._set_box(options=[sc.user_label(u) for u in ids], value=sc.user_label(ids[0]))
        self.user_id = ids[0]
        # Until a model is served on the new data (or if none can be), nothing of the old data stays.
        self._show_waiting()

    def _show_waiting(self) -> None:
        # The shopper without a list: no model is served on this data (yet).
        sc = self.app.scenario
        self.profile.value = views.profile(sc, self.user_id, self.app.model_label) if self.user_id is not None else ""
        self.recs.value = WAITING
        self.feed.value = views.feed(sc, [])
        self.status.value = ""
        self.slot.renew()

    def _on_speed(self, change) -> None:
        self.clock.set_interval(change["new"])

    def _on_reset(self, _button) -> None:
        self.reset()

    def on_model(self) -> None:
        """A new model is served: start the session again; the status line says so if one was under way."""
        played = self.session.n_events if self.session is not None else 0
        note = (f"started again with model {self.app.model_label} ({played} events played with the previous one)"
                if played else None)
        self.reset(note)

    def _set_box(self, **values) -> None:
        self._quiet = True
        try:
            for k, v in values.items():
                setattr(self.user_box, k, v)
        finally:
            self._quiet = False

    def _on_user(self, change) -> None:
        if not self._quiet:
            self.select_user(change["new"])

    def select_user(self, text) -> None:
        """Switch to the user that ``text`` names (an id or a list entry) and reset the session.

        Refused with :class:`UnknownUserError` (a message in the page) for an unknown id, or before any data is
        open (the message says so, or that the first log is still being read).
        """
        app = self.app
        sc = app.scenario
        if sc is None and app.job is not None and app.job.purpose == DATA:
            raise UnknownUserError(f"{app._training_note()}; pick a user when it is open.")
        if sc is None:
            raise UnknownUserError("No data is open: pick one in Data, then a user.")
        uid = sc.parse_user(text)
        self.user_id = uid
        self._set_box(value=sc.user_label(uid))
        self.app.show_message("")
        self.reset()

    # ---- the session -------------------------------------------------------------------------
    def reset(self, note: str | None = None) -> None:
        """Stop the clock and start the session again from the model as trained; ``note`` leads the status line."""
        self.clock.reset()
        self.play.interval = int(self.speed_dd.value)
        self.clock.base_interval = int(self.speed_dd.value)
        app = self.app
        if app.model is None or self.user_id is None:
            self.session = None
            if app.scenario is not None:
                self._show_waiting()
            return
        self.session = LiveSession(app.scenario, app.model, self.user_id, K, app.random_state)
        self.slot.renew()
        self._render(first=True, note=note)
        if self.session.remaining == 0:
            app.show_message(self._no_events(), "warn")

    def _no_events(self) -> str:
        return f"User {self.user_id} has no events in the replay window; pick another user."

    def step(self) -> dict | None:
        """Handle one event: ingest, re-rank, redraw; returns the session's record (None when it is over).

        An event the engine refuses is counted: the message gives the count so far and the latest reason.
        """
        s = self.session
        if s is None:
            self.stop()
            # A Play press with nothing to play says why, rather than doing nothing.
            self.app.show_message(self.app.not_ready() or "Pick a user to watch.", "warn")
            return None
        rec = s.step()
        if rec is None:
            self.stop()
            if s.n_events == 0:
                self.app.show_message(self._no_events(), "warn")
            else:
                rej = f" ({s.n_rejected} of them rejected by the engine)" if s.n_rejected else ""
                self.app.show_message(f"Replay finished: {s.n_events} events of user {self.user_id}{rej}. "
                                      "Press Reset to watch again, or pick another user.")
            return None
        if rec["rejected"]:
            # One message line: the count keeps the earlier rejections that the latest reason replaces.
            self.app.show_message(f"The engine rejected {s.n_rejected} event(s) of this replay so far; the latest: "
                                  f"{rec['rejected']}", "warn")
        self._render(first=False)
        if self.clock.handler_ms:
            s.record_tick(self.clock.handler_ms[-1])
        return rec

    def _render(self, first: bool, note: str | None = None) -> None:
        s, sc = self.session, self.app.scenario
        if first:
            self.profile.value = views.profile(sc, self.user_id, self.app.model_label)
        self.recs.value = views.recommendations(sc, s.current, first=s.n_events == 0)
        self.feed.value = views.feed(sc, s.feed)
        figures.update_live(self.fig, s.series, sc.source == "simulated")
        bits = ([note] if note else []) + [f"{s.n_events} events"]
        if s.n_rejected:
            bits.append(f"{s.n_rejected} rejected")
        if s.tick_ms:
            recent = np.asarray(s.tick_ms)
            bits.append(f"tick p50 {np.percentile(recent, 50):.0f} ms, p99 {np.percentile(recent, 99):.0f} ms")
        if self.clock.slowed:
            bits.append(f"clock slowed to {self.play.interval} ms to keep up")
        if self.clock.skipped:
            bits.append(f"{self.clock.skipped} late ticks skipped")
        if s.remaining is not None:
            bits.append(f"{s.remaining} left to replay")
        self.status.value = views.status(bits)
