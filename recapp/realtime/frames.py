"""The frames the engine hands back, and their column names: a recommendation list and a shopper's history.

Kept apart from :mod:`.engine` so the façade holds only the flow of a call;
:func:`result_frame` is on the hot path of ``recommend`` and stays one plain
DataFrame build.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from recapp.event_weights import EVENT_CODES
from recapp.schema import EVENT_COL, ITEM_COL, RANK_COL, SCORE_COL, TIME_COL

EXPLANATION_COL = "explanation"
RANK_CHANGE_COL = "rank_change"
RESULT_COLUMNS = (ITEM_COL, SCORE_COL, RANK_COL, EXPLANATION_COL, RANK_CHANGE_COL)
EVENT_NAMES = tuple(EVENT_CODES)          # code -> name


def result_frame(ids, scores, expl, changes) -> pd.DataFrame:
    """The public result frame (:data:`RESULT_COLUMNS`) from the arrays the ranker computes."""
    return pd.DataFrame({
        ITEM_COL: ids,
        SCORE_COL: scores,
        RANK_COL: np.arange(1, len(ids) + 1, dtype=np.int64),
        # Object dtype: building a pandas 3 "str" (Arrow) column costs more than the rest of the frame.
        EXPLANATION_COL: pd.Series(expl, dtype=object),
        RANK_CHANGE_COL: changes.copy(),
    })


def history_frame(history, item_ids) -> pd.DataFrame:
    """``history`` (a :class:`~recapp.models.live.LiveHistory`, or None for no state) as item_id, event, timestamp.

    ``item_ids`` maps the history's internal item indices to external ids.
    """
    if history is None:
        return pd.DataFrame({ITEM_COL: [], EVENT_COL: [], TIME_COL: []})
    return pd.DataFrame({ITEM_COL: [item_ids[i] for i in history.items],
                         EVENT_COL: [EVENT_NAMES[c] for c in history.events],
                         TIME_COL: np.asarray(history.times, dtype=np.float64)})


__all__ = ["EXPLANATION_COL", "RANK_CHANGE_COL", "RESULT_COLUMNS", "EVENT_NAMES", "result_frame", "history_frame"]
