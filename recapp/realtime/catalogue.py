"""The engine's item space: the model's items first (same indices), then items first seen live."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from recapp import rerank
from recapp.realtime.cache import UNCACHEABLE, freeze, plain
from recapp.schema import ITEM_COL
from recapp.schema.cells import _blank

log = logging.getLogger(__name__)


class Catalogue:
    """External item ids by internal index, the optional items table, and cached filter masks."""

    def __init__(self, item_ids):
        self.ids: list = list(item_ids)
        self.pos: dict = {v: i for i, v in enumerate(self.ids)}
        self.table: pd.DataFrame | None = None
        self.names: dict | None = None
        self._masks: dict = {}

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, item) -> int | None:
        """Internal index of ``item``, or None when it is not in the catalogue."""
        return self.pos.get(item)

    def add(self, item) -> int:
        """Give a new item the next index."""
        idx = len(self.ids)
        self.ids.append(item)
        self.pos[item] = idx
        self._masks.clear()
        return idx

    def add_table(self, items: pd.DataFrame) -> list:
        """Add or replace table rows (item_id plus attributes); returns the ids not yet in the catalogue.

        Rows without an id are dropped and a repeated id keeps its last row, each logged with its count.
        Ids that are new only by their type (``"10"`` beside the model's ``10``) are refused with a
        ValueError naming the count and the first one, before anything changes.
        """
        if not isinstance(items, pd.DataFrame) or ITEM_COL not in items.columns:
            cols = list(items.columns) if isinstance(items, pd.DataFrame) else type(items).__name__
            raise KeyError(f"items needs an {ITEM_COL!r} column; got {cols}")
        blank = _blank(items[ITEM_COL])
        if blank.any():
            log.warning("items table: %d row(s) without an %s dropped (positions %s)", int(blank.sum()), ITEM_COL,
                        np.flatnonzero(blank)[:5].tolist())
            items = items[~blank]
            ids = items[ITEM_COL]
            int_ids = bool(self.ids) and isinstance(self.ids[0], (int, np.integer))
            if int_ids and pd.api.types.is_float_dtype(ids) and (np.isfinite(ids) & (ids == np.floor(ids))).all():
                # The blanks made the column float; 14.0 would join the catalogue beside the ints 10..13
                # and turn every served list's item_id column to floats.
                items = items.assign(**{ITEM_COL: ids.astype(np.int64)})
        self._check_id_types(items[ITEM_COL])
        repeats = int(items[ITEM_COL].duplicated().sum())
        if repeats:
            log.warning("items table: %d row(s) repeat an %s; the last row of each item is kept", repeats, ITEM_COL)
        table = items.drop_duplicates(ITEM_COL, keep="last").set_index(ITEM_COL)
        if self.table is not None:
            table = pd.concat([self.table.drop(index=table.index, errors="ignore"), table])
        self.table = table
        self.names = table["title"].to_dict() if "title" in table.columns else None
        self._masks.clear()
        return [item for item in table.index if item not in self.pos]

    def _check_id_types(self, ids: pd.Series) -> None:
        """Refuse ids that match catalogue ids only as text: the table would add them as new, filterless items."""
        new = [plain(v) for v in pd.unique(ids) if v not in self.pos]
        if not new:
            return
        kinds = {type(v) for v in self.ids}
        odd = [v for v in new if type(v) not in kinds]
        if not odd:
            return
        by_text = {str(v): v for v in self.ids}
        clash = [v for v in odd if str(v) in by_text]
        if clash:
            known = by_text[str(clash[0])]
            raise ValueError(f"items table: {len(clash)} {ITEM_COL}(s) match catalogue ids only as text, e.g. "
                             f"{clash[0]!r} ({type(clash[0]).__name__}) vs {known!r} ({type(known).__name__}); "
                             f"give the {ITEM_COL} column the type of the model's ids")

    def mask(self, filters) -> np.ndarray | None:
        """Items that pass ``filters`` as a boolean mask (:func:`recapp.rerank.filter_mask`); cached unless callable."""
        if filters is None or (isinstance(filters, dict) and not filters):
            return None
        key = freeze(filters)
        hit = self._masks.get(key) if key is not UNCACHEABLE else None
        if hit is None or len(hit) != len(self.ids):
            hit = rerank.filter_mask(None if self.table is None else self.table.reset_index(), filters, self.ids)
            if key is not UNCACHEABLE:     # a callable's mask is computed on every call, never cached
                self._masks[key] = hit
        return hit

    def categories(self, idx: np.ndarray, column: str = "category") -> np.ndarray | None:
        """The ``column`` labels of items ``idx`` from the table, or None when the table has no such column."""
        if self.table is None or column not in self.table.columns:
            return None
        return self.table[column].reindex([self.ids[i] for i in idx.tolist()]).to_numpy(dtype=object)
