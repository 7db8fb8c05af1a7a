"""Hybrid: a weighted blend of any recommenders' normalised scores, with switching for cold users and items."""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recapp.interactions import Interactions, as_interactions
from recapp.models.base import Recommender, check_param, history_arrays
from recapp.models.content import TfidfContent, check_catalog
from recapp.models.hybrid_live import HybridScorer
from recapp.models.members import (
    member_config,
    member_state,
    members_as_specs,
    model_from_spec,
    restore_members,
    update_composite,
)
from recapp.schema import ITEM_COL, USER_COL

NORMALIZATIONS = ("minmax", "zscore")
COLD_MODELS = ("auto", "content", "popularity")

#: The default blend, chosen by :meth:`Hybrid.tune_weights` on a validation split of
#: MovieLens-100K's training data (see the class docstring).
DEFAULT_MEMBERS = (("ALS", {}), ("MultVAE", {}))
DEFAULT_WEIGHTS = (0.6, 0.4)


def normalize_scores(s: np.ndarray, how: str = "minmax") -> np.ndarray:
    """Row-wise normalised scores; -inf (items a member cannot score) becomes the row's minimum (0 for minmax)."""
    s = np.array(s, dtype=np.float64, copy=True)
    finite = np.isfinite(s)
    with np.errstate(invalid="ignore"):
        lo = np.where(finite, s, np.inf).min(axis=1, keepdims=True)
        hi = np.where(finite, s, -np.inf).max(axis=1, keepdims=True)
    lo = np.where(np.isfinite(lo), lo, 0.0)
    hi = np.where(np.isfinite(hi), hi, 0.0)
    s = np.where(finite, s, lo)
    if how == "zscore":
        n = np.maximum(finite.sum(axis=1, keepdims=True), 1)
        mean = np.where(finite, s, 0.0).sum(axis=1, keepdims=True) / n
        sd = np.sqrt((np.where(finite, s - mean, 0.0) ** 2).sum(axis=1, keepdims=True) / n)
        return (s - mean) / np.where(sd > 0, sd, 1.0)
    span = hi - lo
    return (s - lo) / np.where(span > 0, span, 1.0)


def blend_weights(name: str, value, n: int) -> np.ndarray:
    """``value`` as ``n`` float weights summing to 1; ``ValueError`` naming ``name`` unless they are ``n``
    finite, non-negative numbers with a positive sum."""
    try:
        w = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        w = None
    if w is None or w.shape != (n,) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"{name}={value!r} must be {n} non-negative numbers (one per model) with a positive sum")
    return w / w.sum()


def weight_grid(n_members: int, step: float = 0.1) -> list[tuple]:
    """Every weight vector with entries in {0, step, 2 step, ..., 1} that sums to 1."""
    k = int(round(1.0 / step))
    out = []
    for combo in itertools.product(range(k + 1), repeat=n_members - 1):
        last = k - sum(combo)
        if last >= 0:
            out.append(tuple(c / k for c in combo) + (last / k,))
    return out


class Hybrid(Recommender):
    """alpha * A + (1 - alpha) * B, for any number of members, on per-user normalised scores.

    ``models`` is a list of recommenders (cloned and fitted together by
    ``fit``); by default ALS and MultVAE with their own defaults. ``weights`` is a
    list (one per member, normalised to sum 1), ``None`` (the shipped tuned
    weights for the default members, equal weights otherwise), or ``"auto"``:
    ``fit`` then carves a validation split out of the training data
    (item-stratified, ``validation_ratio``), picks the weights on it with
    :meth:`tune_weights`, and refits the members on all the training data. The
    test split is never used.

    Switching: users with fewer than ``cold_user_threshold`` training items are
    served by the ``cold_model`` (``"content"`` needs ``fit(..., items=)``;
    ``"popularity"``; ``"auto"`` picks content when item text was given), and
    items with fewer than ``cold_item_threshold`` interactions take their
    content score instead of the collaborative blend (only when item text was
    given), so new products can still surface.

    Each member serves updated and new users as that member documents (ALS by
    closed-form fold-in, MultVAE and EASE from the updated history, the others
    by the popularity fallback); the blend follows.

    The default blend was chosen with :meth:`tune_weights` on validation
    splits carved from MovieLens-100K's training data only (item-stratified
    75/25, seeds 0 and 1, NDCG@10 averaged over the two; weight grid step 0.1),
    comparing member sets built from default constructors: ALS + LightGCN,
    EASE + ALS, ALS + MultVAE, EASE + ALS + LightGCN, ALS + LightGCN +
    MultVAE. Best: ALS + MultVAE at 0.6 / 0.4 (0.2840, against 0.2823 for ALS
    alone; EASE and LightGCN took weight 0 or lost when present). Min-max
    normalisation; no switching (MovieLens has no cold users, and the
    thresholds default to 0).
    """

    def __init__(self, models: list | None = None, weights=None, normalization: str = "minmax",
                 cold_user_threshold: int = 0, cold_item_threshold: int = 0, cold_model: str = "auto",
                 validation_ratio: float = 0.75, weight_step: float = 0.1, random_state: int | None = 0):
        self.models = models
        self.weights = weights
        self.normalization = normalization
        self.cold_user_threshold = cold_user_threshold
        self.cold_item_threshold = cold_item_threshold
        self.cold_model = cold_model
        self.validation_ratio = validation_ratio
        self.weight_step = weight_step
        self.random_state = random_state

    # ---- parameters ----------------------------------------------------------------
    def _member_specs(self) -> list:
        if self.models is None:
            return [{"class": c, "params": dict(p)} for c, p in DEFAULT_MEMBERS]
        return list(self.models)

    def _validate_params(self) -> None:
        if self.models is not None:
            if not isinstance(self.models, (list, tuple)) or len(self.models) == 0:
                raise ValueError(f"models={self.models!r} must be a non-empty list of recommenders")
            for m in self.models:
                model_from_spec(m)
        n = len(self._member_specs())
        if isinstance(self.weights, str):
            check_param("weights", self.weights, choices=("auto",))
        elif self.weights is not None:
            try:
                blend_weights("weights", self.weights, n)
            except ValueError as e:
                raise ValueError(f"{e}, None or 'auto'") from None
        check_param("normalization", self.normalization, choices=NORMALIZATIONS)
        check_param("cold_user_threshold", self.cold_user_threshold, low=0, integer=True)
        check_param("cold_item_threshold", self.cold_item_threshold, low=0, integer=True)
        check_param("cold_model", self.cold_model, choices=COLD_MODELS)
        check_param("validation_ratio", self.validation_ratio, low=0, high=1, low_inclusive=False)
        if self.validation_ratio >= 1:
            raise ValueError(f"validation_ratio={self.validation_ratio!r} is out of range; it must be < 1")
        check_param("weight_step", self.weight_step, low=0.01, high=1.0)
        if self.random_state is not None:
            check_param("random_state", self.random_state, low=0, integer=True)

    def _initial_weights(self) -> np.ndarray:
        n = len(self._member_specs())
        if self.weights is None:
            w = np.asarray(DEFAULT_WEIGHTS if self.models is None else np.ones(n), dtype=np.float64)
        elif isinstance(self.weights, str):
            w = np.ones(n)
        else:
            w = np.asarray(self.weights, dtype=np.float64)
        return w / w.sum()

    # ---- fitting ---------------------------------------------------------------------
    def fit_with_items(self, data, items: pd.DataFrame | None = None) -> "Hybrid":
        """``fit(data, items=items)``: the catalogue reaches the members that read it."""
        return self.fit(data, items=items)

    def fit(self, data, items: pd.DataFrame | None = None) -> "Hybrid":
        """Fit every member on ``data`` (choosing weights on a validation split when ``weights="auto"``).

        ``items`` without an ``item_id`` column or with a missing id, and ``cold_model="content"``
        with cold users but no ``items``, are refused before any member is fitted.
        """
        self._validate_params()
        if items is not None:
            check_catalog(items)
        elif self.cold_model == "content" and self.cold_user_threshold > 0:
            raise ValueError("cold_model='content' needs item text: call fit(train, items=items_df)")
        inter = as_interactions(data)
        if items is not None:
            inter = inter.with_catalog(items[ITEM_COL].to_numpy())
        if isinstance(self.weights, str):
            self.tuning_ = self.tune_weights(inter, items=items)
            weights = np.asarray(self.tuning_.iloc[0]["weights"], dtype=np.float64)
        else:
            weights = self._initial_weights()
        self.weights_ = weights / weights.sum()
        return super().fit(inter, items=items)

    def _fit(self, inter: Interactions, items: pd.DataFrame | None = None) -> None:
        self.members_ = [model_from_spec(m) for m in self._member_specs()]
        for m in self.members_:
            m.fit_with_items(inter, items)
        self.switch_model_ = None
        wants_content = (self.cold_user_threshold > 0 and self.cold_model in ("auto", "content")) or self.cold_item_threshold > 0
        if wants_content and items is not None:
            self.switch_model_ = next((m for m in self.members_ if isinstance(m, TfidfContent)), None) or TfidfContent().fit(inter, items=items)
        self._set_cold(inter)

    def _set_cold(self, inter: Interactions) -> None:
        # Training history sizes decide who is cold; they are frozen at fit.
        self.user_counts_ = np.diff(inter.matrix.indptr).astype(np.int64)
        self.item_counts_ = np.bincount(inter.matrix.indices, minlength=inter.n_items).astype(np.int64)

    @property
    def members(self) -> list:
        """The fitted member models."""
        self._check_fitted()
        return self.members_

    # ---- weight tuning ------------------------------------------------------------------
    def tune_weights(self, train, items: pd.DataFrame | None = None, valid: pd.DataFrame | None = None,
                     grid: list | None = None, k: int = 10) -> pd.DataFrame:
        """Validation NDCG@k of every weight vector in ``grid``; returns them best first (does not change ``self``).

        Members are fitted once on an inner training part and scored once; each
        weight vector only re-blends those scores. ``valid`` defaults to an
        item-stratified split of ``train`` (``validation_ratio``, ``random_state``),
        so the choice never sees a test split. ``grid`` defaults to
        :func:`weight_grid` with ``weight_step``. Refused: a ``grid`` entry that is not
        one non-negative weight per member with a positive sum, ``k`` below 1, and a
        validation split where no user of the inner training part has a known item;
        ``valid`` events of users or items the training part lacks are left out, with a warning.
        """
        from recapp.models.holdout_eval import ndcg_from_scores, sample_users
        from recapp.tune import validation_split

        self._validate_params()
        check_param("k", k, low=1, integer=True)
        n_members = len(self._member_specs())
        grid = weight_grid(n_members, self.weight_step) if grid is None else list(grid)
        if not grid:
            raise ValueError("grid is empty: give at least one weight vector (or None for weight_grid)")
        grid = [blend_weights(f"grid[{j}]", w, n_members) for j, w in enumerate(grid)]
        if items is not None:
            check_catalog(items)
        given = valid is not None
        frame = train.frame if isinstance(train, Interactions) else train
        if valid is None:
            inner_df, valid = validation_split(frame, self.validation_ratio, filter_by="item",
                                               random_state=0 if self.random_state is None else self.random_state)
        else:
            inner_df = frame
        weights = train.event_weights if isinstance(train, Interactions) else None
        inner = as_interactions(inner_df[[c for c in inner_df.columns if c not in ("uidx", "iidx", "weight", "event_code")]],
                                event_weights=weights)
        if items is not None:
            inner = inner.with_catalog(items[ITEM_COL].to_numpy())
        v = Interactions.from_frame(valid, user_ids=inner.user_ids, item_ids=inner.item_ids, event_weights=weights)
        f = v.frame
        unknown = (f["uidx"].to_numpy() >= inner.n_users) | (f["iidx"].to_numpy() >= inner.n_items)
        if unknown.all():
            raise ValueError(f"no validation event is of a user and an item of the training part ({len(f):,} "
                             f"validation events, {inner.n_users:,} users and {inner.n_items:,} items to train on): "
                             "every weight vector would score 0")
        if given and unknown.any():
            warnings.warn(f"tune_weights left out {int(unknown.sum()):,} of {len(f):,} valid event(s) of users or items "
                          f"not in train (first: {f[unknown].iloc[0][[USER_COL, ITEM_COL]].tolist()})", stacklevel=2)
        users = np.unique(f["uidx"].to_numpy())
        # Each member's scores are dense (users x items): a bounded, seeded sample of validation users keeps them small.
        users = sample_users(users[users < inner.n_users], random_state=0 if self.random_state is None else self.random_state)
        members = [model_from_spec(m) for m in self._member_specs()]
        normed = []
        for m in members:
            m.fit_with_items(inner, items)
            s, _ = m._score_block(users)
            normed.append(normalize_scores(s, self.normalization))
        train_rows = inner.matrix[users]
        valid_rows = v.matrix[users][:, : inner.n_items]
        rows = []
        for w in grid:
            blend = sum(wi * s for wi, s in zip(w, normed) if wi > 0)
            rows.append({"weights": tuple(float(x) for x in w), f"ndcg@{k}": ndcg_from_scores(blend, train_rows, valid_rows, k)})
        out = pd.DataFrame(rows).sort_values(f"ndcg@{k}", ascending=False, kind="stable").reset_index(drop=True)
        return out

    # ---- scoring ------------------------------------------------------------------------
    def _can_score_new_users(self) -> bool:
        return True

    def _blend(self, uidx: np.ndarray) -> np.ndarray:
        out = None
        for w, m in zip(self.weights_, self.members_):
            if w <= 0:
                continue
            s, _ = m._score_block(uidx)
            part = w * normalize_scores(s, self.normalization)
            out = part if out is None else out + part
        return out

    def _scores(self, user_rows: sp.csr_matrix, uidx: np.ndarray) -> np.ndarray:
        uidx = np.asarray(uidx)
        s = self._blend(uidx)
        content = None
        if self.switch_model_ is not None and (self.cold_item_threshold > 0 or self.cold_user_threshold > 0):
            cs, _ = self.switch_model_._score_block(uidx)
            content = normalize_scores(cs, self.normalization)
        if self.cold_item_threshold > 0 and content is not None:
            counts = np.zeros(s.shape[1], dtype=np.int64)
            counts[: len(self.item_counts_)] = self.item_counts_[: s.shape[1]]
            cold_items = counts < self.cold_item_threshold
            s[:, cold_items] = content[:, cold_items]
        if self.cold_user_threshold > 0:
            counts = np.where(uidx < len(self.user_counts_), self.user_counts_[np.minimum(uidx, len(self.user_counts_) - 1)], 0)
            cold = counts < self.cold_user_threshold
            if cold.any():
                if content is not None and self.cold_model in ("auto", "content"):
                    s[cold] = content[cold]
                else:
                    s[cold] = normalize_scores(self._fallback_scores(int(cold.sum())), self.normalization)
        return s

    # ---- scoring one history (the live path) -------------------------------------------------
    def blend_history(self, member_scores: list, content: np.ndarray | None, n_history: int) -> np.ndarray:
        """One shopper's blend from the members' score vectors (active members, in order) and switching.

        ``content`` is the switch model's score vector (or None); ``n_history`` the
        number of distinct items in the shopper's history, which decides whether
        they are cold. Used by :meth:`score_history` and the live scorer alike.
        """
        active = [w for w in self.weights_ if w > 0]
        n = max(len(s) for s in member_scores)
        out = np.zeros(n)
        for w, s in zip(active, member_scores):
            row = np.full(n, -np.inf)
            row[: len(s)] = s
            out += w * normalize_scores(row[None, :], self.normalization)[0]
        if content is not None:
            content = normalize_scores(np.asarray(content, dtype=np.float64)[None, :n], self.normalization)[0]
            if self.cold_item_threshold > 0:
                counts = np.zeros(n, dtype=np.int64)
                counts[: len(self.item_counts_)] = self.item_counts_[:n]
                cold_items = counts < self.cold_item_threshold
                out[cold_items] = content[cold_items]
        if self.cold_user_threshold > 0 and n_history < self.cold_user_threshold:
            if content is not None and self.cold_model in ("auto", "content"):
                out = content
            else:
                out = normalize_scores(self._fallback_scores(1)[:, :n], self.normalization)[0]
        return out

    def _uses_switch(self) -> bool:
        return self.switch_model_ is not None and (self.cold_item_threshold > 0 or self.cold_user_threshold > 0)

    def score_history(self, items, weights=None) -> np.ndarray:
        """The blend of every member's ``score_history`` for one history, with the same switching as ``recommend``."""
        self._check_fitted()
        items, weights = history_arrays(items, weights)
        parts = [m.score_history(items, weights) for w, m in zip(self.weights_, self.members_) if w > 0]
        content = self.switch_model_.score_history(items, weights) if self._uses_switch() else None
        return self.blend_history(parts, content, len(np.unique(items)))

    def live_scorer(self) -> "HybridScorer":
        """Each member's own live scorer, blended with this model's weights (:class:`HybridScorer`)."""
        self._check_fitted()
        return HybridScorer(self)

    # ---- updates --------------------------------------------------------------------------
    def update(self, events) -> "Hybrid":
        """Append ``events`` and pass them to every member (each folds them in its own way)."""
        return update_composite(self, self._all_models(), events)

    # ---- persistence ----------------------------------------------------------------------
    def _all_models(self) -> list:
        extra = [] if self.switch_model_ is None or self.switch_model_ in self.members_ else [self.switch_model_]
        return self.members_ + extra

    def _state(self) -> dict:
        return {"user_counts": self.user_counts_, "item_counts": self.item_counts_, "weights": self.weights_,
                **member_state(self._all_models(), "m")}

    def _set_state(self, arrays: dict) -> None:
        self.user_counts_ = arrays["user_counts"]
        self.item_counts_ = arrays["item_counts"]
        self.weights_ = arrays["weights"]
        self._pending = arrays

    def _extra_config(self) -> dict:
        specs, extras, sizes = member_config(self._all_models())
        return {
            "members": specs,
            "member_extra": extras,
            "member_sizes": sizes,
            "n_members": len(self.members_),
            "switch": None if self.switch_model_ is None else (self.members_.index(self.switch_model_) if self.switch_model_ in self.members_ else len(self.members_)),
        }

    def _set_extra_config(self, extra: dict) -> None:
        models = restore_members(extra["members"], extra["member_extra"], extra["member_sizes"], self._pending, "m",
                                 self.interactions_)
        self.members_ = models[: extra["n_members"]]
        self.switch_model_ = None if extra["switch"] is None else models[extra["switch"]]
        self._pending = None

    def save(self, path):
        """Write the blend and every member into one folder (members as JSON specs, arrays in safetensors)."""
        self._check_fitted()
        with members_as_specs(self, "models"):
            return super().save(path)
