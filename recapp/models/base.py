"""The Recommender interface shared by every model family.

A subclass stores hyperparameters in ``__init__`` (scikit-learn style), learns in
``_fit(inter)`` and scores in ``_scores(user_rows, uidx)``. The base class does
the rest: id mapping, vectorised top-k with seen items removed, the popularity
fallback for unknown users, incremental ``update`` and safetensors/JSON
persistence.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recapp.interactions import Interactions, as_interactions
from recapp.rerank import top_k_rows
from recapp.models.checks import check_param, check_weight_amounts, history_arrays
from recapp.schema import ITEM_COL, RANK_COL, SCORE_COL, USER_COL, SchemaError

#: Every public, listed Recommender class by name: recapp's model families, which :func:`load` reads and the
#: dashboard offers (private bases such as ``_Sequential`` stay out).
REGISTRY: dict[str, type["Recommender"]] = {}
#: Public classes declared ``listed=False`` (``class ALSWR(ALS, listed=False)``), by name: not one of recapp's
#: families, so not in :data:`REGISTRY`, but ``load(path, unlisted=True)`` reads them.
UNLISTED: dict[str, type["Recommender"]] = {}

FALLBACK_COL = "fallback"


class NotFittedError(RuntimeError):
    """A model was used before ``fit``."""


class Recommender:
    """Base class: ``fit`` / ``recommend`` / ``score`` / ``update`` / ``save``.

    Subclasses implement ``_fit(inter)`` and ``_scores(user_rows, uidx)`` and list
    their learned arrays in ``_state()`` / ``_set_state()`` for persistence.
    """

    #: whether ``_scores`` only needs the user's history row (item-to-item models):
    #: such models serve any user who has events, new ones included, with no refit.
    history_based: ClassVar[bool] = False
    #: Learned attributes as large as the model (EASE's items x items B) that ``_fit`` frees before refitting, so a refit
    #: never holds two: a refit that fails then leaves the model unfitted rather than restore them.
    released_on_refit: ClassVar[tuple] = ()

    def __init_subclass__(cls, listed: bool = True, **kwargs):
        """Register a public subclass by name: in :data:`REGISTRY`, or :data:`UNLISTED` with ``listed=False``."""
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            (REGISTRY if listed else UNLISTED)[cls.__name__] = cls

    # ---- hyperparameters ---------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self) -> dict:
        """The constructor arguments as stored on the instance."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> "Recommender":
        """Change hyperparameters; unknown names are an error."""
        valid = set(self._param_names())
        for k, v in params.items():
            if k not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {k!r}; parameters: {sorted(valid)}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _validate_params(self) -> None:
        """Subclasses check hyperparameter ranges here (called by ``fit``)."""

    # ---- fitting -------------------------------------------------------------
    def fit(self, data, **kwargs) -> "Recommender":
        """Learn from an event DataFrame or :class:`Interactions`; returns ``self``.

        Refused (ValueError): no events, a keyword argument the model's ``_fit``
        does not take, and summed weights the model cannot read (:meth:`_weight_rule`). A fit that fails leaves the model as it was before the call
        (unfitted, for a model that frees its old state first: ``released_on_refit``).
        """
        self._validate_params()
        self._check_fit_kwargs(kwargs)
        inter = as_interactions(data)
        if len(inter) == 0:
            raise SchemaError(f"{type(self).__name__} cannot fit on {inter!r}: it holds no events")
        released = [k for k in self.released_on_refit if k in self.__dict__]
        before = {k: v for k, v in self.__dict__.items() if k not in released}
        try:
            self.interactions_ = inter
            self.n_items_ = inter.n_items
            self.n_users_fit_ = inter.n_users
            self.item_popularity_ = inter.item_popularity()
            self._check_weights(inter.matrix)          # after interactions_: the message names ids through it
            self._fit(inter, **kwargs)
        except BaseException:
            # Else the new events would be scored with the previous fit's learned state.
            self.__dict__ = {k: v for k, v in before.items() if not k.endswith("_")} if released else before
            raise
        return self

    def _weight_rule(self) -> dict | None:
        """:func:`check_weight_amounts`'s keywords for the weights this model reads as amounts (None: it reads none).

        :meth:`fit` and :meth:`update` both apply it (:meth:`_check_weights`): an update cannot bring in what fit refuses.
        """
        return None

    def _check_weights(self, X: sp.spmatrix, rows: np.ndarray | None = None) -> None:
        """Refuse (ValueError) summed weights in ``X`` (only the users ``rows``) that break :meth:`_weight_rule`."""
        rule = self._weight_rule()
        if rule is None:
            return
        if rows is not None:
            # "No weight above 0 at all" judges a whole training set; the fitted one had some.
            rule = {**rule, "need_positive": False}
        check_weight_amounts(self, X, rows=rows, **rule)

    def _check_fit_kwargs(self, kwargs: dict) -> None:
        params = list(inspect.signature(self._fit).parameters.values())[1:]  # after the Interactions
        accepted = [p.name for p in params]
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown and not any(p.kind is p.VAR_KEYWORD for p in params):
            hint = "; a catalogue goes to fit_with_items(data, items)" if "items" in unknown else ""
            raise ValueError(f"{type(self).__name__}.fit got unknown keyword argument(s) {unknown}; "
                             f"it accepts {accepted or 'none besides the events'}{hint}")

    def fit_with_items(self, data, items: pd.DataFrame | None = None) -> "Recommender":
        """``fit(data)``, giving the item catalogue ``items`` to models that learn from item metadata.

        Callers that hold a catalogue (the dashboard, a hybrid's members) use this
        and never ask which models read it; a model that does overrides it.
        """
        return self.fit(data)

    def _fit(self, inter: Interactions) -> None:
        raise NotImplementedError

    def _scores(self, user_rows: sp.csr_matrix, uidx: np.ndarray) -> np.ndarray:
        """Dense scores (len(uidx), n_items_) for known users (internal indices)."""
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not hasattr(self, "interactions_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call fit(train) before recommend, score or update")

    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` has run."""
        return hasattr(self, "interactions_")

    # ---- scoring -------------------------------------------------------------
    def _dense_scores(self, uidx: np.ndarray) -> np.ndarray:
        """Scores over the current item space; items the model has never seen score -inf."""
        inter = self.interactions_
        rows = inter.matrix[uidx]
        s = np.asarray(self._scores(rows, uidx), dtype=np.float64)
        if s.shape[1] < inter.n_items:
            pad = np.full((s.shape[0], inter.n_items - s.shape[1]), -np.inf)
            s = np.hstack([s, pad])
        return s

    def _fallback_scores(self, n: int) -> np.ndarray:
        pop = self.item_popularity_
        full = np.zeros(self.interactions_.n_items)
        full[: len(pop)] = pop
        return np.tile(full, (n, 1))

    def _score_block(self, uidx: np.ndarray) -> np.ndarray:
        known = uidx >= 0
        if not self._can_score_new_users():
            known &= uidx < self.n_users_fit_
        elif (new := np.flatnonzero(uidx >= self.n_users_fit_)).size:
            # A user added by update with events on no fitted item has no history the model can read: scored from an
            # empty one, they would get an arbitrary list flagged as personal.
            known[new] &= self.interactions_.matrix[uidx[new]][:, : self.n_items_].getnnz(axis=1) > 0
        scores = np.empty((len(uidx), self.interactions_.n_items))
        if known.any():
            scores[known] = self._dense_scores(uidx[known])
        if (~known).any():
            scores[~known] = self._fallback_scores(int((~known).sum()))
        return scores, known

    def _can_score_new_users(self) -> bool:
        """Whether users added by ``update`` after fit can be scored (fold-in models say yes)."""
        return self.history_based

    def score_history(self, items, weights=None) -> np.ndarray:
        """Scores over the fitted items for one user whose history is ``items`` (internal indices).

        ``weights`` (default 1 each) are the summed event weights per item
        (:func:`history_arrays` says what is refused). Lets a
        caller such as the real-time engine score a history that is not in
        ``interactions_`` without ``update``. ``history_based`` models support it
        through ``_scores``; every other model overrides it (factor models fold
        the history in against their item factors, sequence models encode it).
        """
        self._check_fitted()
        if not self.history_based:
            raise NotImplementedError(f"{type(self).__name__} cannot score an arbitrary history: it is not history_based "
                                      "and does not override score_history")
        items, w = history_arrays(items, weights)
        n = self.interactions_.n_items
        ok = (items >= 0) & (items < n)
        row = sp.csr_matrix((w[ok], (np.zeros(int(ok.sum()), dtype=np.int64), items[ok])), shape=(1, n))
        row.sum_duplicates()
        return np.asarray(self._scores(row, np.array([-1])), dtype=np.float64).ravel()

    def live_scorer(self):
        """How the real-time engine serves this model per event (:mod:`recapp.models.live`).

        The default re-scores a shopper's whole history exactly through
        :meth:`score_history` after each event, so every model that can score a
        history is live; families override this with a fast path.
        """
        from recapp.models.live import LiveScorer

        self._check_fitted()
        return LiveScorer(self)

    def score(self, users, items=None) -> pd.DataFrame:
        """Dense scores: one row per user, one column per item (all items when ``items`` is None).

        Unknown users, and users added by ``update`` with no event on a fitted item, get the popularity fallback.
        """
        self._check_fitted()
        users = _id_array(users)
        scores, _ = self._score_block(self.interactions_.user_index(users))
        if items is None:
            cols = self.interactions_.item_ids
        else:
            cols = pd.Index(_id_array(items))
            idx = self.interactions_.item_index(cols)
            if (idx < 0).any():
                raise KeyError(f"unknown item id(s): {list(cols[idx < 0][:5])}")
            scores = scores[:, idx]
        return pd.DataFrame(scores, index=pd.Index(users, name=USER_COL), columns=cols)

    def recommend(self, users=None, k: int = 10, exclude_seen: bool = True, batch_size: int = 1024) -> pd.DataFrame:
        """Top-``k`` items per user as DataFrame[user_id, item_id, score, rank, fallback].

        ``users`` defaults to every known user. Unknown users (and users the model cannot score, such as new ones
        whose events are all on items added after fit) get the popularity fallback, flagged by ``fallback=True``.
        With ``exclude_seen`` a user's training (and updated) items never appear.
        """
        self._check_fitted()
        check_param("k", k, low=1, integer=True)
        check_param("batch_size", batch_size, low=1, integer=True)
        inter = self.interactions_
        users = inter.user_ids.to_numpy() if users is None else _id_array(users)
        uidx_all = inter.user_index(users)
        k_eff = min(k, inter.n_items)
        out_u, out_i, out_s, out_r, out_f = [], [], [], [], []
        for start in range(0, len(users), batch_size):
            uidx = uidx_all[start:start + batch_size]
            scores, known = self._score_block(uidx)
            if exclude_seen and (uidx >= 0).any():
                seen_rows = np.flatnonzero(uidx >= 0)
                sub = inter.matrix[uidx[seen_rows]]
                r, c = sub.nonzero()
                scores[seen_rows[r], c] = -np.inf
            top, top_scores = top_k_rows(scores, k_eff)
            valid = np.isfinite(top_scores)
            n = len(uidx)
            out_u.append(np.repeat(users[start:start + batch_size], k_eff).reshape(n, k_eff)[valid])
            out_i.append(inter.item_ids.to_numpy()[top[valid]])
            out_s.append(top_scores[valid])
            out_r.append(np.tile(np.arange(1, k_eff + 1), (n, 1))[valid])
            out_f.append(np.repeat(~known, k_eff).reshape(n, k_eff)[valid])
        if not out_u:
            return pd.DataFrame({USER_COL: [], ITEM_COL: [], SCORE_COL: [], RANK_COL: [], FALLBACK_COL: []})
        return pd.DataFrame({
            USER_COL: np.concatenate(out_u),
            ITEM_COL: np.concatenate(out_i),
            SCORE_COL: np.concatenate(out_s),
            RANK_COL: np.concatenate(out_r).astype(np.int64),
            FALLBACK_COL: np.concatenate(out_f),
        })

    def as_policy(self, **kwargs):
        """This model as a slate policy for the shopper simulator (a :class:`~recapp.experiment.RecommenderPolicy`)."""
        from recapp.experiment.policies import RecommenderPolicy

        return RecommenderPolicy(self, **kwargs)

    # ---- incremental updates ----------------------------------------------------
    def update(self, events: pd.DataFrame) -> "Recommender":
        """Fold new events in without a full refit; returns ``self``.

        The base version appends the events to the model's history (new users and
        items get indices), refreshes popularity, then calls ``_update(uidx)`` with
        the touched users so a subclass can refresh their learned state. Refused
        (ValueError) as ``fit`` refuses them (:meth:`_weight_rule`): summed weights of
        the touched users that a model reading weights cannot use. An update
        that fails puts back every attribute it replaced (the events are not kept);
        a subclass that changes arrays in place puts those back itself.
        """
        self._check_fitted()
        if events is None or len(events) == 0:
            return self
        if isinstance(events, dict):
            events = pd.DataFrame([events])
        before = dict(self.__dict__)
        try:
            self.interactions_ = self.interactions_.append(events)
            self.item_popularity_ = self.interactions_.item_popularity()
            touched = np.unique(self.interactions_.user_index(pd.unique(events[USER_COL].to_numpy())))
            self._check_weights(self.interactions_.matrix, rows=touched)
            self._update(touched)
        except BaseException:
            self.__dict__ = before  # else the events would stay in the history without the learned state they need
            raise
        return self

    def _update(self, uidx: np.ndarray) -> None:
        """Refresh learned state for users ``uidx`` after new events (default: nothing to do)."""

    # ---- persistence ---------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        """Learned arrays to save (subclasses extend)."""
        return {}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore learned arrays (subclasses extend)."""

    def _extra_config(self) -> dict:
        """JSON-serialisable learned state that is not an array."""
        return {}

    def _set_extra_config(self, extra: dict) -> None:
        """Restore what ``_extra_config`` saved."""

    def _saved_params(self) -> dict:
        """The constructor arguments as :meth:`save` writes them into ``config.json`` (a type may name some in JSON)."""
        return self.get_params()

    @classmethod
    def _params_for_load(cls, params: dict) -> dict:
        """The saved constructor arguments as ``load`` builds the model on this machine (as saved; torch models adapt ``device``)."""
        return params

    def save(self, path) -> Path:
        """Write ``config.json`` and ``state.safetensors`` into the folder ``path`` (no pickle).

        A parameter that JSON cannot hold is refused (ValueError) before any file is written.
        """
        from safetensors.numpy import save_file

        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        inter = self.interactions_
        arrays = {f"model.{k}": np.ascontiguousarray(v) for k, v in self._state().items()}
        inter_arrays, inter_config = inter.to_saved()
        arrays.update(inter_arrays)
        arrays["fit.item_popularity"] = np.asarray(self.item_popularity_, dtype=np.float64)
        sizes = {int(self.n_items_): "n_items", int(self.n_users_fit_): "n_users_fit"}
        config = {
            "class": type(self).__name__,
            "params": self._saved_params(),
            "n_items": int(self.n_items_),
            "n_users_fit": int(self.n_users_fit_),
            **inter_config,
            # Lets a reader tell which data the model was trained on without loading it.
            "data_fingerprint": inter.fingerprint(),
            "extra": self._extra_config(),
            # Sizes that follow the fitted items or users are stored by name, so load can tell a
            # state.safetensors of another fit (or an edited n_items) from this one.
            "array_shapes": {k: [sizes.get(d, d) for d in a.shape] for k, a in arrays.items() if k.startswith("model.")},
        }
        try:
            text = json.dumps(config, default=_json_default)
        except TypeError as e:
            # Before any file is written: a folder holding a new state beside an old config.json would load as one model.
            raise ValueError(f"cannot save {type(self).__name__}: a parameter is not JSON-serialisable ({e}); "
                             f"parameters: {self.get_params()!r:.200}") from None
        save_file(arrays, str(path / "state.safetensors"))
        (path / "config.json").write_text(text)
        return path


def _id_array(ids) -> np.ndarray:
    """``ids`` as a 1-d array; a list or tuple of mixed kinds stays objects (``["x", 1]`` must not become ``["x", "1"]``)."""
    if isinstance(ids, (list, tuple)) and len({type(v) for v in ids}) > 1:
        return np.fromiter(ids, dtype=object, count=len(ids))
    return np.atleast_1d(np.asarray(ids))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")
