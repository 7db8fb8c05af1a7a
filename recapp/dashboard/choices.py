"""The Data selector's entries: the analyst's log, opened with the page's Date format field, and the demos.

Every entry is called ``choice(replay_share, time_format)``: the log's
(:class:`LogChoice`) reads its dates with the field's format, the demos'
(:class:`DemoChoice`) have none to read. ``in_background`` says whether the page
reads the entry on its background job (a large log) or at once. A format the field cannot hold
(no year, a directive strptime does not know) is refused before the log is read.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

from recapp.dashboard.scenarios import (EVENTS_ENV, ITEMS_ENV, TIME_FORMAT_ENV, DataError, Scenario, log_scenario,
                                        movielens_scenario, shop_scenario)
from recapp.schema import SchemaError
from recapp.schema.cells import check_time_format

#: A log whose files hold at least this many bytes is read on the page's background job (about half a
#: second of reading per MB): the page would otherwise freeze, silent, for the whole read.
BACKGROUND_BYTES = 1_000_000
#: What a message about the log's dates tells the analyst in the page.
FIELD_HINT = "type the log's date format, e.g. %d/%m/%Y, in the Date format field"


def check_format_field(text: str | None) -> None:
    """Raise :class:`DataError` unless ``text`` is empty or a strptime format with a year and known directives."""
    if not text:
        return
    try:
        check_time_format(text)
    except SchemaError as exc:
        raise DataError(f"date format {text!r}: {exc}; or leave the field empty to use ${TIME_FORMAT_ENV} "
                        "or else guess") from None


@dataclass(frozen=True)
class DemoChoice:
    """A Data selector entry that reads no date text: ``choice(replay_share, time_format)`` ignores the format."""

    factory: Callable
    reads_dates = False
    in_background = False

    def __call__(self, replay_share: float, time_format: str | None = None) -> Scenario:
        """``factory(replay_share)``."""
        return self.factory(replay_share)


def as_choice(entry) -> "LogChoice | DemoChoice":
    """A Data selector entry as a choice the page calls one way; a plain ``factory(replay_share)`` becomes a :class:`DemoChoice`."""
    return entry if isinstance(entry, (LogChoice, DemoChoice)) else DemoChoice(entry)


@dataclass(frozen=True)
class LogChoice:
    """The Data selector's entry for the analyst's log: ``choice(replay_share, time_format)`` opens it.

    ``time_format`` is the page's Date format field: empty means ``$RECAPP_TIME_FORMAT``, or else a guess.
    """

    events: str
    items: str | None = None
    reads_dates = True

    @property
    def in_background(self) -> bool:
        """Whether the log is large enough (:data:`BACKGROUND_BYTES`) to be read off the page's main thread."""
        size = 0
        for path in (self.events, self.items):
            try:
                size += Path(path).stat().st_size if path else 0
            except (OSError, ValueError):
                return False    # read at once: the reader names what is wrong with the path
        return size >= BACKGROUND_BYTES

    def __call__(self, replay_share: float, time_format: str | None = None) -> Scenario:
        """:func:`log_scenario` of this log, its messages about dates naming the page's field."""
        time_format = (time_format or "").strip() or None
        check_format_field(time_format)
        return log_scenario(self.events, self.items, replay_share, time_format, format_hint=FIELD_HINT)


def data_choices(events=None, items=None) -> dict:
    """Data selector entries, label -> ``choice(replay_share, time_format)``: the analyst's log (a :class:`LogChoice`) first when given.

    ``events``/``items`` default to ``$RECAPP_EVENTS`` / ``$RECAPP_ITEMS``.
    """
    events = events if events is not None else os.environ.get(EVENTS_ENV) or None
    items = items if items is not None else os.environ.get(ITEMS_ENV) or None
    choices = {}
    if events:
        choices[f"Your log: {Path(events).name}"] = LogChoice(events, items)
    choices["MovieLens-100K replay"] = DemoChoice(movielens_scenario)
    choices["Synthetic shop (simulated shoppers)"] = DemoChoice(lambda share: shop_scenario())
    return choices
