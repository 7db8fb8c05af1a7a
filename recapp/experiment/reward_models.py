"""Reward models q_hat(x, a) for the direct and doubly robust estimators of :mod:`recapp.experiment.ope`."""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recapp.experiment._checks import check_logged, check_values
from recapp.models.base import check_param

if TYPE_CHECKING:
    from recapp.experiment.ope import LoggedFeedback


class ItemPositionModel:
    """q_hat(a, position): each item-slot click rate shrunk towards its slot's rate (empirical Bayes).

    ``q = (clicks + m * slot_rate) / (shows + m)`` with prior strength ``m``
    rounds; an item never shown gets its slot's rate. It ignores the context,
    which is honest for tens of clicks. ``m`` must be a finite number > 0: at 0 an
    unshown pair is 0 / 0 (NaN), and below 0 a rate leaves [0, 1].
    """

    #: it reads only actions, slots and rewards, so bootstrap resamples skip copying the features
    uses_features = False

    def __init__(self, prior_strength: float = 200.0):
        self.prior_strength = check_param("prior_strength", prior_strength, low=0.0, low_inclusive=False)

    def fit(self, logged: LoggedFeedback) -> "ItemPositionModel":
        """Count clicks and shows per (item, slot); ``logged`` is checked as by :func:`~recapp.experiment.ope.evaluate`
        (a NaN reward made its slot's rates NaN; an action outside ``action_ids`` failed inside numpy)."""
        check_logged_rewards(logged)
        P, A = logged.n_positions, logged.n_actions
        key = logged.action * P + logged.position
        shows = np.bincount(key, minlength=A * P).reshape(A, P)
        clicks = np.bincount(key, weights=logged.reward, minlength=A * P).reshape(A, P)
        slot_rate = clicks.sum(0) / np.maximum(shows.sum(0), 1)
        self.table_ = (clicks + self.prior_strength * slot_rate) / (shows + self.prior_strength)
        return self

    def predict(self, logged: LoggedFeedback) -> np.ndarray:
        """q_hat for every action at each round's own slot, shape (rounds, actions); refused before :meth:`fit`
        and for logs with another number of actions or slots than the fitted ones."""
        _check_fitted(self, "table_")
        A, P = self.table_.shape
        _check_like_fit(logged, A, P)
        return self.table_[:, logged.position].T


def check_logged_rewards(logged: LoggedFeedback) -> None:
    """The checks of :func:`~recapp.experiment.ope.evaluate` on the logs a reward model is fitted on: indices in range
    and one per round (``check_logged``), every reward finite (``NaN > 0`` read a NaN as no click)."""
    check_logged(logged)
    check_values("logged.reward", logged.reward, ndim=1)


def _check_fitted(model, attr: str) -> None:
    if not hasattr(model, attr):
        raise ValueError(f"this {type(model).__name__} is not fitted yet; call fit(logged) before predict(logged)")


def _check_like_fit(logged: LoggedFeedback, n_actions: int, n_positions: int) -> None:
    """Refuse logs with another number of actions or slots than the fit saw: numpy would fail with a bare IndexError
    (more) or score the wrong shape (fewer)."""
    if logged.n_actions != n_actions or logged.n_positions != n_positions:
        raise ValueError(f"the logs have {logged.n_actions} action(s) and {logged.n_positions} slot(s), but the reward "
                         f"model was fitted on {n_actions} and {n_positions}; predict on logs of the same catalogue")


class LogisticRewardModel:
    """A contextual click model: L2-regularised logistic regression (scikit-learn).

    Linear predictor: item + slot + every user feature level + (segment x item),
    where the segment is one user feature (``segment``), + ``affinity`` weight
    times the user-item affinity when the logs have it. Predictions for all
    (round, item) pairs are assembled from the coefficients, never from a
    rounds x items design matrix. ``segment=None`` leaves the segment x item
    term out; a ``segment`` column the fitting logs lack is refused.
    """

    def __init__(self, C: float = 0.1, segment: str = "user_feature_0", max_iter: int = 500):
        self.C = check_param("C", C, low=0.0, low_inclusive=False)
        if segment is not None and not isinstance(segment, str):
            raise ValueError(f"segment={segment!r} is not accepted; pass the name of a user feature column, or None")
        self.segment = segment
        self.max_iter = check_param("max_iter", max_iter, low=1, integer=True)

    def _blocks(self, logged: LoggedFeedback):
        ctx = logged.context if logged.context is not None else pd.DataFrame(index=range(logged.n_rounds))
        levels = [(c, self.levels_[c]) for c in self.levels_]
        user = np.hstack([(ctx[c].astype(str).to_numpy()[:, None] == np.asarray(lv)[None, :]).astype(np.float64)
                          for c, lv in levels]) if levels else np.zeros((logged.n_rounds, 0))
        seg = (pd.Index(self.segment_levels_).get_indexer(ctx[self.segment].astype(str).to_numpy())
               if self.segment_levels_ is not None else np.zeros(logged.n_rounds, dtype=np.int64))
        return user, seg

    def _check_context(self, ctx) -> None:
        """Refuse a context without a fitted feature (a bare KeyError before); warn about values never seen at fit."""
        absent = [c for c in self.levels_ if ctx is None or c not in ctx.columns]
        if absent:
            raise ValueError(f"logged.context lacks the user feature column(s) {absent} the reward model was fitted on "
                             f"(fitted on {list(self.levels_)}); predict on logs with the same user features")
        unseen = {}
        for c, levels in self.levels_.items():
            v = ctx[c].astype(str).to_numpy()
            rows = np.flatnonzero(~np.isin(v, levels))
            if len(rows):
                unseen[c] = f"{c!r}: {len(rows)} round(s), the first {v[rows[0]]!r} at row {int(rows[0])}"
        if unseen:
            seg = f" (for the segment {self.segment!r}, no segment x item term either)" if self.segment in unseen else ""
            unseen = list(unseen.values())
            warnings.warn(f"logged.context holds user feature values never seen at fit, in {'; '.join(unseen)}; those "
                          f"rounds get no effect of that feature{seg}", stacklevel=3)

    def fit(self, logged: LoggedFeedback) -> "LogisticRewardModel":
        """Fit on the logged (round, chosen action) pairs; ``logged`` is checked as by :func:`~recapp.experiment.ope.evaluate`
        (every reward finite), and a context without the ``segment`` column is refused (set ``segment=None``)."""
        import scipy.sparse as sp
        from sklearn.linear_model import LogisticRegression

        check_logged_rewards(logged)
        ctx = logged.context
        if self.segment is not None and (ctx is None or self.segment not in ctx.columns):
            # The segment x item term was silently left out, a different model than the one asked for.
            present = "logged.context is None" if ctx is None else f"its columns: {list(ctx.columns)}"
            raise ValueError(f"logged.context lacks the segment column {self.segment!r} ({present}); "
                             "pass LogisticRewardModel(segment=<one of them>), or segment=None to fit without the "
                             "segment x item term")
        self.levels_ = {} if ctx is None else {c: sorted(ctx[c].astype(str).unique()) for c in ctx.columns}
        self.segment_levels_ = self.levels_.get(self.segment) if ctx is not None and self.segment in ctx.columns else None
        user, seg = self._blocks(logged)
        n, A, P = logged.n_rounds, logged.n_actions, logged.n_positions
        S = 1 if self.segment_levels_ is None else len(self.segment_levels_)
        rows = np.arange(n)
        item = sp.csr_matrix((np.ones(n), (rows, logged.action)), shape=(n, A))
        slot = sp.csr_matrix((np.ones(n), (rows, logged.position)), shape=(n, P))
        inter = sp.csr_matrix((np.ones(n), (rows, np.maximum(seg, 0) * A + logged.action)), shape=(n, S * A))
        aff = logged.affinity[rows, logged.action][:, None] if logged.affinity is not None else np.zeros((n, 1))
        X = sp.hstack([item, slot, sp.csr_matrix(user), inter, sp.csr_matrix(aff)]).tocsr()
        y = logged.reward > 0
        if y.all() or not y.any():
            raise ValueError("the logs need both clicks and non-clicks to fit a click model")
        m = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(X, y)
        w = m.coef_.ravel()
        self.intercept_ = float(m.intercept_[0])
        self.item_, w = w[:A], w[A:]
        self.slot_, w = w[:P], w[P:]
        self.user_, w = w[:user.shape[1]], w[user.shape[1]:]
        self.inter_, w = w[:S * A].reshape(S, A), w[S * A:]
        self.aff_ = float(w[0])
        return self

    def predict(self, logged: LoggedFeedback) -> np.ndarray:
        """Click probability for every action at each round's slot, shape (rounds, actions); refused before :meth:`fit`,
        for logs with another number of actions or slots, and for a context without a user feature the fit had.

        A feature value the fit never saw has no coefficient: its rounds get no
        effect of that feature (nor a segment x item term, for the segment), and
        a ``UserWarning`` counts them per feature and names the first value.
        """
        _check_fitted(self, "item_")
        _check_like_fit(logged, len(self.item_), len(self.slot_))
        self._check_context(logged.context)
        user, seg = self._blocks(logged)
        eta = (self.intercept_ + self.item_[None, :] + self.slot_[logged.position][:, None] + (user @ self.user_)[:, None]
               + np.where(seg[:, None] >= 0, self.inter_[np.maximum(seg, 0)], 0.0))
        if logged.affinity is not None:
            eta = eta + self.aff_ * logged.affinity
        return 1.0 / (1.0 + np.exp(-eta))


REWARD_MODELS = {"item_position": ItemPositionModel, "logistic": LogisticRewardModel}


def make_reward_model(model) -> object:
    """A reward model from a name in ``REWARD_MODELS`` or an object with ``fit(logged)`` / ``predict(logged)``.

    A class (``ItemPositionModel`` rather than ``ItemPositionModel()``) is refused: its unbound ``fit`` would fail
    later with a bare TypeError.
    """
    if isinstance(model, type):
        raise TypeError(f"reward_model={model.__name__} is a class; pass an instance, e.g. {model.__name__}()")
    if isinstance(model, str):
        if model not in REWARD_MODELS:
            raise ValueError(f"reward_model={model!r} is not accepted; accepted values: {list(REWARD_MODELS)} or a model object")
        return REWARD_MODELS[model]()
    if not (hasattr(model, "fit") and hasattr(model, "predict")):
        raise TypeError(f"a reward model needs fit(logged) and predict(logged); got {type(model).__name__}")
    return model
