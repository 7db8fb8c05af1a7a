"""From a shopper's scores to the list served: candidates, filters, re-ranking, explanations, rank changes.

Model candidates come first; "popular now" backfills when the model has too
little evidence (or the shopper has no history). One optional re-ranking step
then picks the list from the candidates: MMR diversity, calibration to the
shopper's category mix, or exposure-aware (popularity-tail) re-ranking. The
steps are the plain functions of :mod:`recapp.rerank`.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recapp import rerank
from recapp.models.base import check_param
from recapp.models.live import LiveHistory, LiveScorer
from recapp.realtime.catalogue import Catalogue
from recapp.realtime.options import ListOptions
from recapp.realtime.state import Shoppers, UserState
from recapp.realtime.trending import Trending

_EMPTY = LiveHistory()

#: Last lists are kept for at least this many shoppers, even when the engine's result cache is smaller or off.
MIN_LAST_LISTS = 1024


class LastLists:
    """Each recently served shopper's last list and its rank changes, from which the next list's are computed.

    ``rank_change`` is previous rank minus rank (<NA>: new in the list, or no previous
    list). A list served again unchanged with no event of the shopper's since repeats
    its rank changes, whether it came from the result cache or was computed afresh.
    At most ``size`` shoppers (an integer >= 1) are held, the least recently served
    dropped first: a dropped shopper's next list is <NA> throughout, like a first list.
    """

    def __init__(self, size: int):
        check_param("size", size, low=1, integer=True)
        self.size = int(size)
        self._last: OrderedDict = OrderedDict()     # user -> (ids, rank changes, or None once the shopper moved)

    def __len__(self) -> int:
        return len(self._last)

    def changes(self, user, ids: list) -> pd.arrays.IntegerArray:
        """Rank changes of ``ids`` (the list served now, best first) for ``user``, remembered for their next list."""
        last = self._last.pop(user, None)
        ids = tuple(ids)
        if last is not None and last[1] is not None and last[0] == ids:
            changes = last[1]
        else:
            changes = rerank.rank_changes(ids, None if last is None else {i: r for r, i in enumerate(last[0], start=1)})
        self._last[user] = (ids, changes)
        if len(self._last) > self.size:
            self._last.popitem(last=False)
        return changes

    def moved(self, user) -> None:
        """``user`` had an event: their next list is compared with the last one even when it is the same."""
        last = self._last.get(user)
        if last is not None and last[1] is not None:
            self._last[user] = (last[0], None)       # an existing key keeps its place: an event is not a serve

    def drop(self, user) -> None:
        """Forget ``user``'s last list."""
        self._last.pop(user, None)


class Ranker:
    """Builds one shopper's list from the scorer's vector and the trending counters.

    ``explain`` must be True or False (ValueError otherwise: ``bool("no")`` would switch explanations on).
    Rank changes are computed when a list is served (:class:`LastLists`, ``max_shoppers`` of them),
    so a list from the engine's cache carries the same ones as a list computed afresh.
    """

    def __init__(self, catalogue: Catalogue, trending: Trending, *, explain: bool = True, n_explain: int = 3,
                 max_shoppers: int = MIN_LAST_LISTS):
        check_param("explain", explain, choices=(True, False))
        self.catalogue = catalogue
        self.trending = trending
        self.explain = bool(explain)
        self.n_explain = int(n_explain)
        self.last_lists = LastLists(max_shoppers)
        self.index = None            # an approximate-search index over the scorer's item vectors, or None
        self.head_share = 0.2        # the short head for exposure-aware re-ranking (rerank.head_items)
        self._labels = None          # (table, n_items, column, p(g|i) rows by item index, category names)

    def rank(self, scorer: LiveScorer, shoppers: Shoppers, user, st: UserState | None, opts: ListOptions):
        """(item ids, scores, explanations) for ``user``, and whether popularity was used.

        Rank changes are not part of it: they depend on what was served before (:attr:`last_lists`).
        """
        n, k = len(self.catalogue), opts.k
        mask = self.catalogue.mask(opts.filters)
        banned = (st.seen if opts.exclude_viewed else st.consumed) if st is not None else set()
        reranked = opts.reranked
        n_cand = max(4 * k, 50) if reranked else k

        model_idx, model_scores = np.zeros(0, dtype=np.int64), np.zeros(0)
        personal = scorer.personal and st is not None and st.history.has_items(scorer.n_items)
        if personal:
            model_idx, model_scores = self._model_candidates(scorer, shoppers, user, st, n_cand, banned, mask)
        elif not scorer.personal:
            model_idx, model_scores = self._shared_candidates(scorer, n_cand, banned, mask)
        need = n_cand - len(model_idx)
        if need > 0:
            pop_idx, pop_scores = self.trending.candidates(n, need, set(banned) | set(model_idx.tolist()), mask)
        else:
            pop_idx, pop_scores = model_idx[:0], model_scores[:0]
        # Exposure-aware lists depend on everyone's counts, so anyone's event makes them stale.
        uses_pop = not personal or len(pop_idx) > 0 or opts.exposure > 0.0

        cand = np.concatenate([model_idx, pop_idx])
        if reranked and len(cand) > 1:
            # Relevance: model candidates above every popular backfill, in their order.
            rel = np.concatenate([len(cand) - np.arange(len(model_idx)), len(pop_idx) - np.arange(len(pop_idx))]).astype(float)
            rel[: len(model_idx)] += len(pop_idx)
            pos = np.arange(len(cand))
            if opts.calibration > 0.0:
                hist, w = self._history(st)
                names, rows = self._category_rows(opts.categories, np.concatenate([cand, hist]))
                p_user = rerank.category_distribution(rows[len(cand):], w) if len(hist) else np.zeros(len(names))
                chosen = rerank.calibrated(pos, rel, rows[: len(cand)], p_user, k, opts.calibration)
            elif opts.exposure > 0.0:
                self.trending.counts.grow(n)
                head = rerank.head_items(self.trending.counts.alltime[:n], self.head_share)
                hist, w = self._history(st)
                share = opts.exposure_target if opts.exposure_target is not None else \
                    float(w @ head[hist] / w.sum()) if len(hist) and w.sum() > 0 else 0.5
                chosen = rerank.exposure_aware(pos, rel, head[cand], k, opts.exposure, user_head_share=share)
            else:
                chosen = rerank.mmr(pos, rel, self._similarity(scorer, cand, opts.diversity_categories), k,
                                    opts.diversity)
        else:
            chosen = np.arange(min(k, len(cand)))
        recs = cand[chosen]
        scores = np.concatenate([model_scores, pop_scores])[chosen]
        from_model = (chosen < len(model_idx)) if personal else np.zeros(len(chosen), bool)

        expl = [rerank.POPULAR_NOW] * len(recs)
        if self.explain and from_model.any():
            for pos, text in zip(np.flatnonzero(from_model).tolist(), self._explanations(scorer, st, recs[from_model])):
                expl[pos] = text
        ids = [self.catalogue.ids[i] for i in recs.tolist()]
        return (ids, np.asarray(scores, dtype=np.float64), expl), uses_pop

    @staticmethod
    def _history(st: UserState | None) -> tuple[np.ndarray, np.ndarray]:
        """The shopper's distinct items and their (recency-decayed) binary weights."""
        if st is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        return st.history.weights(binary=True)

    def _category_rows(self, column: str, idx: np.ndarray) -> tuple[list, np.ndarray]:
        """Category names and p(g|i) rows of items ``idx`` from the items table's ``column`` ("A|B" labels)."""
        cat = self.catalogue
        if cat.table is None or column not in cat.table.columns:
            cols = [] if cat.table is None else list(cat.table.columns)
            raise ValueError(f"calibration needs an items table with a {column!r} column (categories=...); "
                             f"items columns: {cols}")
        c = self._labels
        if c is None or c[0] is not cat.table or c[1] != len(cat) or c[2] != column:
            # Built once per catalogue change, kept sparse: most items have one or two categories.
            labels = cat.table[column].reindex(cat.ids).to_numpy(dtype=object)
            rows, names = rerank.category_matrix(labels)
            c = self._labels = (cat.table, len(cat), column, sp.csr_matrix(rows), names)
        return c[4], c[3][idx].toarray()

    def _model_candidates(self, scorer, shoppers, user, st, n_cand, banned, mask):
        if self.index is not None and mask is None:
            q = scorer.query(st.state, st.history)
            # Ask for enough neighbours to survive the exclusions.
            got, d = self.index.search(q, n_cand + len(banned) + 10)
            keep = np.fromiter((g not in banned for g in got.tolist()), dtype=bool, count=len(got))
            got, d = got[keep], d[keep]
            if len(got) >= n_cand:
                shoppers.touch(user)
                return got[:n_cand], d[:n_cand].astype(np.float64)
        s = shoppers.vector(user, st, scorer).astype(np.float64)
        if scorer.sparse:
            s[s == 0] = -np.inf
        if banned:
            rerank.exclude(s, np.fromiter(banned, dtype=np.int64, count=len(banned)))
        if mask is not None:
            s[~mask[: len(s)]] = -np.inf
        top = rerank.top_k(s, n_cand)
        return top, s[top] * scorer.output_scale(st.history)

    def _shared_candidates(self, scorer, n_cand, banned, mask):
        s = scorer.scores(None, _EMPTY).astype(np.float64)
        if banned:
            rerank.exclude(s, np.fromiter(banned, dtype=np.int64, count=len(banned)))
        if mask is not None:
            s[~mask[: len(s)]] = -np.inf
        top = rerank.top_k(s, n_cand)
        return top, s[top]

    def _similarity(self, scorer, cand: np.ndarray, column: str = "category") -> np.ndarray:
        """MMR's similarity: the scorer's, or same label in the items table's ``column`` when an item is not the model's."""
        in_model = cand < scorer.n_items
        if in_model.all():
            got = scorer.similarity(cand)
            if got is not None:
                return got
        sim = np.zeros((len(cand), len(cand)))
        cats = self.catalogue.categories(cand, column)
        if cats is not None:
            sim = (cats[:, None] == cats[None, :]).astype(float)
        elif in_model.any():
            got = scorer.similarity(cand[in_model])
            if got is not None:
                sim[np.ix_(in_model, in_model)] = got
        np.fill_diagonal(sim, 1.0)
        return sim

    def _explanations(self, scorer, st: UserState, recs: np.ndarray) -> list[str]:
        hist = st.history.recent(scorer.n_items, 50)
        if len(hist) == 0:
            return [rerank.POPULAR_NOW] * len(recs)
        w = scorer.explain_weights(st.history, hist)
        contrib = scorer.contributions(st.state, st.history, hist, w, recs)
        if contrib is None:
            return ["recommended for you"] * len(recs)
        ids = self.catalogue.ids
        tops = rerank.top_contributors(contrib, [ids[h] for h in hist.tolist()], self.n_explain)
        return [rerank.explanation(t, names=self.catalogue.names, max_items=self.n_explain) if t else "recommended for you"
                for t in tops]

