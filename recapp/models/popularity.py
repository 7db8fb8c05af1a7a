"""Popularity: the baseline every recommender must beat, optionally time-decayed ("trending")."""
from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse as sp

from recapp.interactions import Interactions
from recapp.models.base import Recommender, check_param
from recapp.models.live import LiveScorer


class DecayedCounts:
    """Per-item counts where an event weighs ``0.5 ** (age / half_life)`` (plain sums when ``half_life`` is None).

    The one definition of time-decayed popularity: the :class:`Popularity` model
    and the real-time engine's "popular now" list both count with it. Counts are
    kept relative to a reference time that moves forward with the events, so an
    event costs O(1) and the numbers stay finite.
    """

    def __init__(self, n_items: int, half_life: float | None = None):
        if half_life is not None:
            check_param("half_life", half_life, low=0, low_inclusive=False)
        self.half_life = half_life
        self.decayed = np.zeros(max(int(n_items), 1))
        self.alltime = np.zeros_like(self.decayed)       # undecayed: breaks ties among stale items
        self.t0 = 0.0
        self.now = -math.inf

    @classmethod
    def from_events(cls, items: np.ndarray, times: np.ndarray, weights: np.ndarray | None, n_items: int,
                    half_life: float | None = None) -> "DecayedCounts":
        """Counts of a whole log at once (vectorised), referenced to its latest event."""
        out = cls(n_items, half_life)
        items = np.asarray(items, dtype=np.int64)
        w = np.ones(len(items)) if weights is None else np.asarray(weights, dtype=np.float64)
        if len(items) == 0:
            return out
        t = np.asarray(times, dtype=np.float64)
        out.t0 = out.now = float(t.max())
        decay = np.ones(len(t)) if half_life is None else np.exp2((t - out.t0) / half_life)
        out.decayed[: n_items] = np.bincount(items, weights=w * decay, minlength=n_items)[: n_items]
        out.alltime[: n_items] = np.bincount(items, weights=w, minlength=n_items)[: n_items]
        return out

    @classmethod
    def from_counts(cls, counts: np.ndarray, now: float, half_life: float | None = None) -> "DecayedCounts":
        """Counts released elsewhere (e.g. with differential privacy) taken as counted at time ``now``."""
        counts = np.asarray(counts, dtype=np.float64)
        out = cls(len(counts), half_life)
        out.decayed[: len(counts)] = out.alltime[: len(counts)] = counts
        out.t0 = out.now = float(now)
        return out

    def __len__(self) -> int:
        return len(self.decayed)

    def grow(self, n_items: int) -> None:
        """Make room for items up to index ``n_items - 1`` (capacity doubles)."""
        if n_items > len(self.decayed):
            extra = max(n_items, 2 * len(self.decayed)) - len(self.decayed)
            self.decayed = np.concatenate([self.decayed, np.zeros(extra)])
            self.alltime = np.concatenate([self.alltime, np.zeros(extra)])

    def add(self, item: int, t: float, weight: float = 1.0) -> None:
        """Count one event of ``weight`` on ``item`` at time ``t`` (out-of-order times are fine)."""
        self.grow(item + 1)
        self.alltime[item] += weight
        if t > self.now:
            self.now = t
        if self.half_life is None:
            self.decayed[item] += weight
            return
        e = (t - self.t0) / self.half_life
        if e > 200:
            # Rebase the reference time so the weights stay finite.
            self.decayed *= 2.0 ** (-e)
            self.t0 = t
            e = 0.0
        self.decayed[item] += weight * 2.0 ** e

    def current(self, n_items: int, idx: np.ndarray | None = None) -> np.ndarray:
        """Decayed counts as of the latest event, for the first ``n_items`` items (or the items ``idx``)."""
        self.grow(n_items)
        raw = self.decayed[:n_items] if idx is None else self.decayed[idx]
        if self.half_life is None or not math.isfinite(self.now):
            return raw.copy()
        return raw * 2.0 ** ((self.t0 - self.now) / self.half_life)

    def rank_key(self, n_items: int) -> np.ndarray:
        """Ranking key: the decayed count, ties (e.g. all stale) broken by the all-time count."""
        self.grow(n_items)
        d, a = self.decayed[:n_items], self.alltime[:n_items]
        top_d, top_a = d.max(initial=0.0), a.max(initial=0.0)
        key = d / top_d if top_d > 0 else np.zeros(n_items)
        return key + 1e-6 * (a / top_a if top_a > 0 else 0.0)


class Popularity(Recommender):
    """Recommend the items with the most distinct users.

    With ``half_life`` (seconds) each event counts ``0.5 ** (age / half_life)``
    relative to the newest event, so recent activity dominates ("trending").
    ``weighted=True`` sums event weights (a purchase counts more than a view)
    instead of counting users (a summed weight that is not finite is then
    refused by fit and update, ValueError). Counting users (the default) scored higher on
    validation splits of ML-100K (``benchmarks/tune_baselines.py``).

    Served live, the counts follow every shopper's events with the same settings
    (:class:`DecayedCounts`); everyone gets the same list.

    With ``epsilon`` the counts are released with user-level differential
    privacy (:func:`recapp.privacy.private_item_counts`): each user counts for at
    most ``max_items_per_user`` items (their earliest), then ``mechanism``
    ("laplace": epsilon-DP; "gaussian": (epsilon, delta)-DP) adds integer noise.
    ``random_state=None`` draws it from OpenDP's secure sampler when ``opendp``
    is installed; an integer makes it reproducible and therefore not private
    (for experiments only). The guarantee covers what is served (every list, and the
    engine's "popular now" seeded from ``dp_counts_``), not the model file, which
    keeps the training log like every model. Each ``fit`` or ``update`` is one
    more release, a refit too; ``privacy_spent_`` adds up the (epsilon, delta) each was released with
    (basic composition), so a ``set_params(epsilon=...)`` between releases prices only the later ones. Live
    increments after the release (the engine's events) are exact and not DP.
    DP needs plain distinct-user counts (``half_life=None``, ``weighted=False``).
    A release whose noisy counts are all <= 0 warns (UserWarning naming epsilon
    and the noise scale): the list served is then the order of the noise.
    """

    def __init__(self, half_life: float | None = None, weighted: bool = False, epsilon: float | None = None,
                 delta: float | None = None, mechanism: str = "laplace", max_items_per_user: int = 50,
                 random_state: int | None = None):
        self.half_life = half_life
        self.weighted = weighted
        self.epsilon = epsilon
        self.delta = delta
        self.mechanism = mechanism
        self.max_items_per_user = max_items_per_user
        self.random_state = random_state

    def _validate_params(self) -> None:
        if self.half_life is not None:
            check_param("half_life", self.half_life, low=0, low_inclusive=False)
        check_param("weighted", self.weighted, choices=(True, False))
        if self.epsilon is not None:
            from recapp.privacy import check_dp_params

            check_dp_params(self.epsilon, self.delta, self.mechanism, self.max_items_per_user)
            if self.half_life is not None or self.weighted:
                raise ValueError(f"epsilon={self.epsilon!r} needs half_life=None and weighted=False: the privacy "
                                 f"guarantee is stated for counts of distinct users (got half_life={self.half_life!r}, "
                                 f"weighted={self.weighted!r})")
        if self.random_state is not None:
            check_param("random_state", self.random_state, low=0, integer=True)

    def _weight_rule(self):
        return {"setting": "weighted=True"} if self.weighted else None

    def _fit(self, inter: Interactions) -> None:
        # A refit releases counts of (mostly) the same users again: what earlier fits spent stays in privacy_spent_.
        self.prior_releases_ = getattr(self, "prior_releases_", 0) + getattr(self, "n_releases_", 0)
        self.n_releases_ = 0
        self._release(inter)
        self.counts_ = self._counts(inter).current(inter.n_items)

    def _release(self, inter: Interactions) -> None:
        """A fresh DP release of the training counts (nothing when ``epsilon`` is None)."""
        if self.epsilon is None:
            self.dp_counts_ = None
            return
        from recapp.privacy import private_item_counts

        f = inter.frame
        # A seeded release draws new noise each time: the same noise twice would let differences show exactly.
        seed = None if self.random_state is None else [int(self.random_state), self.n_releases_]
        out = private_item_counts(f["uidx"].to_numpy(), f["iidx"].to_numpy(), f["timestamp"].to_numpy(), inter.n_items,
                                  epsilon=self.epsilon, delta=self.delta, mechanism=self.mechanism,
                                  max_items_per_user=self.max_items_per_user, random_state=seed)
        self.dp_counts_ = out["counts"]
        self.dp_scale_ = out["scale"]
        self.clipped_share_ = out["clipped_share"]
        self.n_releases_ += 1
        # Each release's own budget, as [epsilon, delta, count]: a later epsilon must not re-price what was spent.
        spent = {(e, d): n for e, d, n in getattr(self, "dp_releases_", None) or []}
        key = (out["epsilon"], out["delta"] or 0.0)
        spent[key] = spent.get(key, 0) + 1
        self.dp_releases_ = [[e, d, n] for (e, d), n in spent.items()]
        if not (self.dp_counts_ > 0).any():
            # Judged on the released counts only (post-processing), so the warning costs no privacy.
            warnings.warn(f"{type(self).__name__}(epsilon={self.epsilon!r}): every one of the {len(self.dp_counts_)} "
                          f"noisy counts is <= 0 (noise scale {self.dp_scale_:.4g}, {self.mechanism}), so the list "
                          f"served is the order of the noise, not of popularity; a larger epsilon or a smaller "
                          f"max_items_per_user lowers the noise", UserWarning, stacklevel=4)

    @property
    def privacy_spent_(self) -> tuple[float, float] | None:
        """(epsilon, delta) spent by every release so far (earlier fits too), each at the epsilon and delta it was
        released with, under basic composition; None when nothing was released with DP."""
        releases = getattr(self, "dp_releases_", None)
        if not releases:
            return None
        return (math.fsum(n * e for e, _, n in releases), math.fsum(n * d for _, d, n in releases))

    @property
    def counts_distinct_users(self) -> bool:
        """Whether a count is the number of distinct users (no decay, no weights)."""
        return self.half_life is None and not self.weighted

    def _counts(self, inter: Interactions) -> DecayedCounts:
        f = inter.frame
        if getattr(self, "dp_counts_", None) is not None:
            return DecayedCounts.from_counts(self.dp_counts_, float(f["timestamp"].max()) if len(f) else 0.0)
        if self.counts_distinct_users:
            c = DecayedCounts(inter.n_items)
            c.decayed[: inter.n_items] = c.alltime[: inter.n_items] = inter.item_popularity()
            if len(f):
                c.now = c.t0 = float(f["timestamp"].max())
            return c
        w = f["weight"].to_numpy() if self.weighted else None
        c = DecayedCounts.from_events(f["iidx"].to_numpy(), f["timestamp"].to_numpy(), w, inter.n_items, self.half_life)
        self.reference_time_ = c.now if len(f) else 0.0
        return c

    def _can_score_new_users(self) -> bool:
        return True

    def _scores(self, user_rows: sp.csr_matrix, uidx: np.ndarray) -> np.ndarray:
        return np.tile(self.counts_, (len(uidx), 1))

    def score_history(self, items, weights=None) -> np.ndarray:
        """The counts: popularity does not depend on the history."""
        self._check_fitted()
        return np.asarray(self.counts_, dtype=np.float64).copy()

    def live_scorer(self) -> "PopularityScorer":
        """Counts that follow every event with this model's ``half_life`` and ``weighted`` settings."""
        self._check_fitted()
        return PopularityScorer(self)

    def _update(self, uidx: np.ndarray) -> None:
        self._release(self.interactions_)
        self.counts_ = self._counts(self.interactions_).current(self.interactions_.n_items)
        self.n_items_ = self.interactions_.n_items

    def _fallback_scores(self, n: int) -> np.ndarray:
        full = np.zeros(self.interactions_.n_items)
        full[: len(self.counts_)] = self.counts_
        return np.tile(full, (n, 1))

    def _state(self) -> dict:
        out = {"counts": self.counts_}
        if getattr(self, "dp_counts_", None) is not None:
            out["dp_counts"] = self.dp_counts_
        return out

    def _set_state(self, arrays: dict) -> None:
        counts = arrays["counts"]
        # Shorter counts would leave the last items out of every list (scored -inf), with no error.
        if counts.shape != (self.n_items_,):
            raise ValueError(f"counts has shape {counts.shape} but the model has {self.n_items_} items")
        self.counts_ = counts
        self.dp_counts_ = arrays.get("dp_counts")

    def _extra_config(self) -> dict:
        # A refit without DP still keeps what earlier releases spent.
        spent = {"dp_releases": self.dp_releases_} if getattr(self, "dp_releases_", None) else {}
        if getattr(self, "dp_counts_", None) is None:
            return spent
        return {"n_releases": self.n_releases_, "dp_scale": self.dp_scale_, "clipped_share": self.clipped_share_,
                "prior_releases": getattr(self, "prior_releases_", 0), **spent}

    def _set_extra_config(self, extra: dict) -> None:
        if self.dp_counts_ is not None and "n_releases" not in extra:
            # Without it privacy_spent_ would say None: no privacy spent by counts that were released with DP.
            raise ValueError("the state holds DP counts but extra has no n_releases")
        if "n_releases" in extra:
            self.n_releases_, self.dp_scale_ = int(extra["n_releases"]), float(extra["dp_scale"])
            self.clipped_share_ = float(extra["clipped_share"])
            self.prior_releases_ = int(extra.get("prior_releases", 0))  # files saved before refits were counted
        releases = extra.get("dp_releases")
        if releases is None and "n_releases" in extra and self.epsilon is not None:
            # Files saved before each release's budget was kept priced every release at the saved epsilon.
            releases = [[float(self.epsilon), float(self.delta or 0.0), self.n_releases_ + self.prior_releases_]]
        self.dp_releases_ = _checked_releases([] if releases is None else releases)


def _checked_releases(releases) -> list:
    """A saved ``dp_releases``: [epsilon > 0, delta >= 0, count >= 1] entries; anything else is a ValueError naming the entry."""
    if not isinstance(releases, list):
        # A bad file is a ValueError whatever is wrong in it (TRY004 would have a TypeError here).
        raise ValueError(f"dp_releases must be a list of [epsilon, delta, count], got {releases!r:.80}")  # noqa: TRY004
    for r in releases:
        ok = isinstance(r, list) and len(r) == 3 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r)
        if not (ok and math.isfinite(r[0]) and r[0] > 0 and math.isfinite(r[1]) and r[1] >= 0
                and isinstance(r[2], int) and r[2] >= 1):
            raise ValueError(f"dp_releases entry {r!r:.80} is not [epsilon > 0, delta >= 0, count >= 1]")
    return [[float(e), float(d), int(n)] for e, d, n in releases]


class PopularityScorer(LiveScorer):
    """The same list for everyone: the model's counts, moved on by every event (:class:`DecayedCounts`)."""

    personal = False

    def __init__(self, model: Popularity):
        super().__init__(model)
        self.counts = model._counts(model.interactions_)

    def observe(self, item, t, weight, first):
        if self.model.counts_distinct_users:
            if first:
                self.counts.add(item, t, 1.0)
        else:
            self.counts.add(item, t, weight if self.model.weighted else 1.0)

    def scores(self, state, history):
        return self.counts.current(self.n_items).astype(np.float32)

    def add_items(self, n_items: int) -> None:
        """New items are counted from their first event."""
        self.n_items = max(self.n_items, n_items)
