"""Column names, event types and weights, and the one check of event rows.

Every other module takes these constants as keyword defaults, so a log whose
columns are named differently only needs renaming once, here or in
:func:`validate` through ``aliases``. One set of per-cell rules (missing ids,
timestamps, event names and aliases, numbers) serves three callers: :func:`validate`
for a whole log (raises, reports dropped rows), :func:`check_events` for a batch of
live rows and :func:`check_event` for one live event (both never raise).

The modules: :mod:`~recapp.schema.columns` (the names and aliases),
:mod:`~recapp.schema.errors` (:class:`SchemaError` and the checks that raise it),
:mod:`~recapp.schema.cells` (the per-cell rules), :mod:`~recapp.schema.batch`
(:func:`validate` and its report) and :mod:`~recapp.schema.live` (the row checks).
"""
from __future__ import annotations

from recapp.schema.batch import (
    ReportSummary,
    ValidationReport,
    column_renames,
    validate,
)
from recapp.schema.cells import (
    normalise_event,
    parse_timestamps,
    utc_seconds,
)
from recapp.schema.columns import (
    COLUMN_ALIASES,
    DEFAULT_EVENT_WEIGHTS,
    EVENT_ALIASES,
    EVENT_COL,
    EVENT_ID_COL,
    EVENT_TYPES,
    FUNNEL,
    ITEM_COL,
    OPTIONAL_COLUMNS,
    PREDICTION_COL,
    RANK_COL,
    RATING_COL,
    REQUIRED_COLUMNS,
    SCORE_COL,
    TIME_COL,
    USER_COL,
    VALUE_COL,
)
from recapp.schema.errors import (
    SchemaError,
    check_event_types,
    require_columns,
)
from recapp.schema.live import check_event, check_events, events_frame

__all__ = [
    "COLUMN_ALIASES", "DEFAULT_EVENT_WEIGHTS", "EVENT_ALIASES", "EVENT_COL", "EVENT_ID_COL", "EVENT_TYPES", "FUNNEL", "ITEM_COL",
    "OPTIONAL_COLUMNS", "PREDICTION_COL", "RANK_COL", "RATING_COL", "REQUIRED_COLUMNS", "SCORE_COL", "TIME_COL",
    "USER_COL", "VALUE_COL", "ReportSummary", "SchemaError", "ValidationReport", "check_event", "check_event_types",
    "check_events", "column_renames", "events_frame", "normalise_event", "parse_timestamps", "require_columns", "utc_seconds", "validate",
]
