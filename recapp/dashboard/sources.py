"""Event sources for the Live tab: one shopper's held-out events replayed, or a simulated shopper."""
from __future__ import annotations

from typing import Callable, Iterable

#: Logit offset of a simulated shopper's click on a shown item: -4 (the stream's default is -1.5)
#: keeps the share of clicked lists near 0.5 for a good model rather than near 1, so the CTR
#: and hit-rate panels move and models can be told apart.
SIM_CLICK_BIAS = -4.0


class EventSource:
    """One shopper's events, one per :meth:`next_event`; ``total`` is known for a replay.

    ``stream`` is the :class:`recapp.realtime.ShopperStream` behind a simulated
    shopper (None for a replay); it reports the share of lists clicked.
    """

    def __init__(self, events: Iterable[dict], total: int | None = None, stream=None):
        self._events = iter(events)
        self.total = total
        self.stream = stream

    def next_event(self) -> dict | None:
        """The next event, or None when a replay is over."""
        return next(self._events, None)

    @property
    def click_through_rate(self) -> float | None:
        """Share of lists shown to a simulated shopper that were clicked (None for a replay)."""
        return None if self.stream is None else self.stream.click_through_rate


def open_source(scenario, user_id, shown: Callable[[], list], random_state: int = 0) -> EventSource:
    """The event source for one shopper of ``scenario``: their real held-out events, or a simulated shopper.

    A simulated shopper sees ``shown()`` (the list on screen) before each view, so
    they react to every re-ranking.
    """
    if scenario.source == "replay":
        from recapp.realtime import Replay

        replay = Replay(scenario.replay_events(user_id), history=scenario.train)
        return EventSource(replay, total=len(replay))
    from recapp.realtime import ShopperStream

    stream = ShopperStream(scenario.shop, recommender=lambda user, k: shown()[:k], click_bias=SIM_CLICK_BIAS,
                           random_state=random_state)
    return EventSource(stream.visits(int(user_id)), stream=stream)
