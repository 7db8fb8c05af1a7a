"""Learning to rank over retrievers' candidates: the features of :class:`~recapp.models.twostage.TwoStageRanker`.

One code path builds the features for every caller (the ranker's training
data, batch ``recommend``, ``score_history`` and the live scorer), so a
shopper's features never depend on how they were asked for:

* each retriever's **score** and **rank** (among the items outside the
  history) for every candidate; a candidate is an item in some retriever's top
  ``n_candidates``;
* the **item** side, frozen at fit (:class:`ItemSide`): popularity (share of
  all user-item pairs), a trend (share of time-decayed events), days since the
  item's last event and since its first (age), its mean event weight;
  category values and price from the catalogue when it has them;
* the **user** side: distinct items, mean weight, days since the last event;
* **user-item** matches: days from the user's last event to the item's first
  (items that appeared after the user left), the item's share of all events
  within ``window`` days of the user's last event, the gap in days between the
  item's mean event time and the history items', the share of the history in
  the item's categories (one feature per category column), the item's log
  price and its gap to the history's mean.

Shares rather than counts keep the item side comparable between the ranker's
training data and the larger data the retrievers are refitted on. The user's
last event is known in batch (the training data); a shopper served live, or a
history given without times, is taken as active at the item side's reference
time (the end of the data). A score a retriever cannot give is NaN, which
LightGBM treats as missing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recapp.interactions import Interactions
from recapp.schema import ITEM_COL, TIME_COL

DAY = 86_400.0
#: Catalogue columns read as categories (each value, or each "|"-separated value, is one category).
CATEGORY_COLUMNS = ("category", "categories", "genres", "brand")
#: Catalogue columns read as the item's price (the first present).
PRICE_COLUMNS = ("price",)
HOLDOUTS = ("time", "random")
ITEM_FEATURES = ("item_popularity", "item_trend", "item_days_since_last", "item_age_days", "item_mean_weight")
USER_FEATURES = ("user_items", "user_mean_weight", "user_days_since_last")


# ---- the ranker's holdouts ------------------------------------------------------------
def carve_holdout(inter: Interactions, how: str = "time", fraction: float = 0.2, min_events: int = 5,
                  random_state: int = 0, fold: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(holdout, remainder) boolean masks over ``inter.frame`` rows for one fold of the ranker's training data.

    Only users with ``min_events`` events or more give holdout events: ``n =
    max(1, floor(fraction * events))`` of them. ``how="time"``: fold 0 holds out
    each user's last ``n`` events by time, fold 1 the ``n`` before those, and so
    on; the remainder is the user's events *before* the holdout, so the ranker
    learns to predict what comes next. ``how="random"``: stratified by item as
    the benchmark protocol is (:func:`recapp.split.stratified_split`), with a
    share of ``fraction``: each item's events in a random order, ranked
    ``position / count``, fold ``k`` holding out the ranks in ``(1 - (k + 1) *
    fraction, 1 - k * fraction]`` (one permutation per ``random_state``, so
    folds are disjoint; an item's cut is floored where the protocol's split
    rounds); the remainder is everything else. ``min_events`` applies to the time holdout only.
    """
    if how == "random":
        # Each item's events in a random order, ranked (j + 1) / count; fold k holds out ranks in
        # (1 - (k + 1) * fraction, 1 - k * fraction].
        iidx = inter.frame["iidx"].to_numpy()
        by_item = np.lexsort((np.random.default_rng(random_state).random(len(iidx)), iidx))
        counts = np.bincount(iidx, minlength=inter.n_items)
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.empty(len(iidx))
        rank[by_item] = (np.arange(len(iidx)) - first[iidx[by_item]] + 1) / counts[iidx[by_item]]
        held = (rank > 1.0 - (fold + 1) * fraction + 1e-12) & (rank <= 1.0 - fold * fraction + 1e-12)
        return held, ~held
    order, indptr = inter.seq_order, inter.seq_indptr
    n = np.diff(indptr)
    size = np.repeat(n, n)
    pos = np.arange(len(order)) - np.repeat(indptr[:-1], n)          # position in the user's time order
    n_out = np.where(size >= min_events, np.maximum(1, np.floor(fraction * size)), 0).astype(np.int64)
    hi = size - fold * n_out
    held_mask, rest_mask = np.zeros(len(order), dtype=bool), np.zeros(len(order), dtype=bool)
    held_mask[order] = (n_out > 0) & (pos >= hi - n_out) & (pos < hi)
    rest_mask[order] = pos < np.where(n_out > 0, hi - n_out, size)
    return held_mask, rest_mask


# ---- the item side -------------------------------------------------------------------------
def _tokens(values: pd.Series) -> list[list[str]]:
    out = []
    for v in values.tolist():
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            out.append([])
        else:
            out.append([p.strip().lower() for p in re.split(r"[|,;/]", str(v)) if p.strip()])
    return out


@dataclass
class ItemSide:
    """Per-item features frozen at fit, with catalogue categories and prices aligned to the item index."""

    stats: np.ndarray                                  # (n_items, len(ITEM_FEATURES))
    mean_time: np.ndarray                              # (n_items,) NaN for items without events
    first_time: np.ndarray                             # (n_items,) NaN for items without events
    reference_time: float
    categories: dict = field(default_factory=dict)     # column -> (n_items x n_values) binary csr
    log_price: np.ndarray | None = None
    daily: dict = field(default_factory=dict)          # per-(item, day) event counts, see :meth:`near`

    def near(self, items: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Each item's share of all events within ``window`` days of the time ``t`` (NaN where ``t`` is NaN)."""
        d = self.daily
        if not d:
            return np.full(len(items), np.nan)
        n_days, w = int(d["n_days"][0]), float(d["window"][0])
        day = np.floor((np.asarray(t, dtype=np.float64) - d["day0"][0]) / DAY)
        ok = np.isfinite(day)
        lo = np.clip(np.where(ok, day - w, 0), 0, n_days).astype(np.int64)
        hi = np.clip(np.where(ok, day + w + 1, 0), 0, n_days).astype(np.int64)   # [lo, hi) days

        def upto(cum, keys, k):                      # events with key < k
            pos = np.searchsorted(keys, k, side="left")
            return np.where(pos > 0, cum[np.maximum(pos - 1, 0)], 0.0)

        items = np.asarray(items, dtype=np.int64)
        mine = upto(d["cum"], d["keys"], items * n_days + hi) - upto(d["cum"], d["keys"], items * n_days + lo)
        days = np.arange(n_days + 1)
        total = upto(d["total_cum"], days[:-1], hi) - upto(d["total_cum"], days[:-1], lo)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(ok, mine / np.maximum(total, 1.0), np.nan)

    @classmethod
    def from_interactions(cls, inter: Interactions, window_days: float, catalogue: "ItemSide | None" = None) -> "ItemSide":
        """Item statistics of ``inter`` (referenced to its latest event); categories and prices from ``catalogue``.

        ``window_days`` is the trend's half-life and the half-width of :meth:`near`'s window.
        """
        f = inter.frame
        n = inter.n_items
        iidx, t, w = f["iidx"].to_numpy(), f[TIME_COL].to_numpy(np.float64), f["weight"].to_numpy(np.float64)
        ref = float(t.max()) if len(t) else 0.0
        count = np.bincount(iidx, minlength=n).astype(np.float64)
        decay = np.exp2((t - ref) / (window_days * DAY))
        trend = np.bincount(iidx, weights=decay, minlength=n)
        last = np.full(n, -np.inf)
        np.maximum.at(last, iidx, t)
        first = np.full(n, np.inf)
        np.minimum.at(first, iidx, t)
        seen = count > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            stats = np.column_stack([
                inter.item_popularity() / max(inter.matrix.nnz, 1),
                trend / max(trend.sum(), 1e-12),
                np.where(seen, (ref - last) / DAY, np.nan),
                np.where(seen, (ref - first) / DAY, np.nan),
                np.where(seen, np.bincount(iidx, weights=w, minlength=n) / count, np.nan),
            ])
            mean_time = np.where(seen, np.bincount(iidx, weights=t, minlength=n) / count, np.nan)
        out = cls(stats, mean_time, np.where(seen, first, np.nan), ref)
        if len(t):
            day0 = np.floor(t.min() / DAY) * DAY
            day = np.floor((t - day0) / DAY).astype(np.int64)
            n_days = int(day.max()) + 1
            keys, counts = np.unique(iidx.astype(np.int64) * n_days + day, return_counts=True)
            out.daily = {"keys": keys, "cum": np.cumsum(counts).astype(np.float64), "day0": np.array([day0]),
                         "n_days": np.array([n_days]), "window": np.array([float(window_days)]),
                         "total_cum": np.cumsum(np.bincount(day, minlength=n_days)).astype(np.float64)}
        if catalogue is not None:
            out.categories, out.log_price = catalogue.categories, catalogue.log_price
        return out

    @classmethod
    def catalogue(cls, items: pd.DataFrame | None, item_ids: pd.Index) -> "ItemSide":
        """Only the catalogue part (categories, log price) of ``items`` aligned to ``item_ids``."""
        out = cls(np.zeros((len(item_ids), len(ITEM_FEATURES))), np.full(len(item_ids), np.nan), np.full(len(item_ids), np.nan), 0.0)
        if items is None:
            return out
        meta = items.drop_duplicates(ITEM_COL, keep="last").set_index(ITEM_COL).reindex(item_ids)
        for col in CATEGORY_COLUMNS:
            if col not in meta.columns:
                continue
            toks = _tokens(meta[col])
            vocab = {v: j for j, v in enumerate(sorted({x for row in toks for x in row}))}
            if not vocab:
                continue
            rows = np.repeat(np.arange(len(toks)), [len(set(r)) for r in toks])
            cols = np.array([vocab[x] for r in toks for x in sorted(set(r))], dtype=np.int64)
            out.categories[col] = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(toks), len(vocab)))
        price_col = next((c for c in PRICE_COLUMNS if c in meta.columns), None)
        if price_col is not None:
            price = pd.to_numeric(meta[price_col], errors="coerce").to_numpy(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                out.log_price = np.where(price > 0, np.log(price), np.nan)
        return out

    def feature_names(self) -> list[str]:
        """Names of the item, user and user-item features this side gives (retriever features come first)."""
        names = list(ITEM_FEATURES) + list(USER_FEATURES) + ["item_new_since_user_days", "item_share_near_user", "time_match_days"]
        names += [f"{c}_match" for c in self.categories]
        if self.log_price is not None:
            names += ["item_log_price", "price_gap"]
        return names

    # ---- persistence ---------------------------------------------------------------------
    def to_state(self, prefix: str) -> dict:
        out = {f"{prefix}stats": self.stats, f"{prefix}mean_time": self.mean_time, f"{prefix}first_time": self.first_time,
               f"{prefix}reference_time": np.array([self.reference_time])}
        for j, G in enumerate(self.categories.values()):
            out.update({f"{prefix}cat{j}.indptr": G.indptr, f"{prefix}cat{j}.indices": G.indices,
                        f"{prefix}cat{j}.shape": np.array(G.shape)})
        if self.log_price is not None:
            out[f"{prefix}log_price"] = self.log_price
        out.update({f"{prefix}daily.{k}": v for k, v in self.daily.items()})
        return out

    @classmethod
    def from_state(cls, arrays: dict, prefix: str, category_columns: list) -> "ItemSide":
        cats = {}
        for j, col in enumerate(category_columns):
            ind, ptr = arrays[f"{prefix}cat{j}.indices"], arrays[f"{prefix}cat{j}.indptr"]
            cats[col] = sp.csr_matrix((np.ones(len(ind)), ind, ptr), shape=tuple(arrays[f"{prefix}cat{j}.shape"]))
        return cls(arrays[f"{prefix}stats"], arrays[f"{prefix}mean_time"], arrays[f"{prefix}first_time"], float(arrays[f"{prefix}reference_time"][0]),
                   cats, arrays.get(f"{prefix}log_price"),
                   {k[len(prefix) + 6:]: v for k, v in arrays.items() if k.startswith(f"{prefix}daily.")})


# ---- candidates and their features --------------------------------------------------------
def retriever_names(classes: list[str]) -> list[str]:
    """Feature prefixes for the retrievers: class names, numbered when a class repeats."""
    out = []
    for c in classes:
        k = sum(1 for x in out if x == c or x.startswith(c + "_"))
        out.append(c if k == 0 else f"{c}_{k + 1}")
    return out


def feature_names(retrievers: list[str], side: ItemSide) -> list[str]:
    """Every feature column, in the order :func:`build` writes them."""
    return [f"{r}_{kind}" for r in retrievers for kind in ("score", "rank")] + side.feature_names()


def build(scores: list[np.ndarray], hist: sp.csr_matrix, last_time: np.ndarray, side: ItemSide,
          n_candidates: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates and their features for a block of users.

    ``scores``: one (n_users, n_j) array per retriever (-inf: cannot score);
    ``hist``: (n_users, n_items) summed event weights (history items are never
    candidates); ``last_time``: each user's latest event time (capped at the
    item side's reference time; NaN when unknown). Returns (row, item, X): the
    candidate pairs grouped by row with items ascending, and the float32
    feature matrix in the order of :func:`feature_names`.
    """
    B, n = hist.shape
    hr, hc = hist.nonzero()
    masked = []
    for s in scores:
        m = np.full((B, n), -np.inf)
        k = min(s.shape[1], n)
        m[:, :k] = s[:, :k]
        m[hr, hc] = -np.inf
        masked.append(m)
    # Candidates: the union of every retriever's top n_candidates outside the history.
    N = min(n_candidates, n)
    keys = []
    for m in masked:
        top = np.argpartition(-m, N - 1, axis=1)[:, :N] if N < n else np.tile(np.arange(n), (B, 1))
        ok = np.isfinite(np.take_along_axis(m, top, axis=1))
        keys.append((np.arange(B)[:, None] * n + top)[ok])
    keys = np.unique(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.int64)
    rows, items = keys // n, keys % n
    cols = []
    for m in masked:
        score = m[rows, items]
        cols.append(np.where(np.isfinite(score), score, np.nan))
        # Rank among the items outside the history (1 = the retriever's best), ties by item index.
        order = np.argsort(-m, axis=1, kind="stable")
        rank = np.empty((B, n), dtype=np.float64)
        np.put_along_axis(rank, order, np.broadcast_to(np.arange(1.0, n + 1.0), (B, n)), axis=1)
        cols.append(rank[rows, items])
    cols.extend(side.stats[items].T)
    binary = hist.copy().tocsr()
    binary.data[:] = 1.0
    count = np.asarray(binary.sum(axis=1)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_weight = np.asarray(hist.sum(axis=1)).ravel() / count
        last = np.minimum(np.asarray(last_time, dtype=np.float64), side.reference_time)[rows]
        cols += [count[rows], mean_weight[rows], (side.reference_time - last) / DAY, (side.first_time[items] - last) / DAY,
                 side.near(items, last)]
        cols.append((side.mean_time[items] - _history_mean(binary, side.mean_time)[rows]) / DAY)
        for G in side.categories.values():
            cols.append(_category_match(binary, count, G, rows, items))
        if side.log_price is not None:
            lp = side.log_price
            cols += [lp[items], np.abs(lp[items] - _history_mean(binary, lp)[rows])]
    X = np.column_stack(cols).astype(np.float32) if cols else np.zeros((len(rows), 0), dtype=np.float32)
    return rows, items, X


def _history_mean(binary: sp.csr_matrix, values: np.ndarray) -> np.ndarray:
    """Per row: the mean of ``values`` over the history items where it is known (NaN when none is)."""
    known = np.isfinite(values)
    total = binary @ np.where(known, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(total).ravel() / np.asarray(binary @ known.astype(np.float64)).ravel()


def _category_match(binary: sp.csr_matrix, count: np.ndarray, G: sp.csr_matrix, rows: np.ndarray,
                    items: np.ndarray) -> np.ndarray:
    """Mean, over the item's category values, of the share of the user's history items having that value."""
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = np.asarray((binary @ G).todense()) / count[:, None]          # (n_users, n_values)
    Gc = G[items].tocoo()
    vals = profile[rows[Gc.row], Gc.col]
    per_item = np.diff(G.indptr)[items]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(Gc.row, weights=vals, minlength=len(items)) / per_item


def last_times(inter: Interactions, uidx: np.ndarray) -> np.ndarray:
    """Each user's latest event time in ``inter`` (NaN for users without events)."""
    uidx = np.asarray(uidx, dtype=np.int64)
    ok = (uidx >= 0) & (uidx < inter.n_users)
    out = np.full(len(uidx), np.nan)
    start, end = inter.seq_indptr[uidx[ok]], inter.seq_indptr[uidx[ok] + 1]
    vals = np.full(int(ok.sum()), np.nan)
    vals[end > start] = inter.seq_times[end[end > start] - 1]
    out[ok] = vals
    return out
