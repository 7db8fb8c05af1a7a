"""Reward models q_hat(x, a) for the direct and doubly robust estimators of :mod:`recapp.experiment.ope`."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from recapp.experiment.ope import LoggedFeedback


class ItemPositionModel:
    """q_hat(a, position): each item-slot click rate shrunk towards its slot's rate (empirical Bayes).

    ``q = (clicks + m * slot_rate) / (shows + m)`` with prior strength ``m``
    rounds; an item never shown gets its slot's rate. It ignores the context,
    which is honest for tens of clicks.
    """

    #: it reads only actions, slots and rewards, so bootstrap resamples skip copying the features
    uses_features = False

    def __init__(self, prior_strength: float = 200.0):
        self.prior_strength = prior_strength

    def fit(self, logged: LoggedFeedback) -> "ItemPositionModel":
        """Count clicks and shows per (item, slot)."""
        P, A = logged.n_positions, logged.n_actions
        key = logged.action * P + logged.position
        shows = np.bincount(key, minlength=A * P).reshape(A, P)
        clicks = np.bincount(key, weights=logged.reward, minlength=A * P).reshape(A, P)
        slot_rate = clicks.sum(0) / np.maximum(shows.sum(0), 1)
        self.table_ = (clicks + self.prior_strength * slot_rate) / (shows + self.prior_strength)
        return self

    def predict(self, logged: LoggedFeedback) -> np.ndarray:
        """q_hat for every action at each round's own slot, shape (rounds, actions)."""
        return self.table_[:, logged.position].T


class LogisticRewardModel:
    """A contextual click model: L2-regularised logistic regression (scikit-learn).

    Linear predictor: item + slot + every user feature level + (segment x item),
    where the segment is one user feature (``segment``), + ``affinity`` weight
    times the user-item affinity when the logs have it. Predictions for all
    (round, item) pairs are assembled from the coefficients, never from a
    rounds x items design matrix.
    """

    def __init__(self, C: float = 0.1, segment: str = "user_feature_0", max_iter: int = 500):
        self.C = C
        self.segment = segment
        self.max_iter = max_iter

    def _blocks(self, logged: LoggedFeedback):
        ctx = logged.context if logged.context is not None else pd.DataFrame(index=range(logged.n_rounds))
        levels = [(c, self.levels_[c]) for c in self.levels_]
        user = np.hstack([(ctx[c].astype(str).to_numpy()[:, None] == np.asarray(lv)[None, :]).astype(np.float64)
                          for c, lv in levels]) if levels else np.zeros((logged.n_rounds, 0))
        seg = (pd.Index(self.segment_levels_).get_indexer(ctx[self.segment].astype(str).to_numpy())
               if self.segment_levels_ is not None else np.zeros(logged.n_rounds, dtype=np.int64))
        return user, seg

    def fit(self, logged: LoggedFeedback) -> "LogisticRewardModel":
        """Fit on the logged (round, chosen action) pairs."""
        import scipy.sparse as sp
        from sklearn.linear_model import LogisticRegression

        ctx = logged.context
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
        """Click probability for every action at each round's slot, shape (rounds, actions)."""
        user, seg = self._blocks(logged)
        eta = (self.intercept_ + self.item_[None, :] + self.slot_[logged.position][:, None] + (user @ self.user_)[:, None]
               + np.where(seg[:, None] >= 0, self.inter_[np.maximum(seg, 0)], 0.0))
        if logged.affinity is not None:
            eta = eta + self.aff_ * logged.affinity
        return 1.0 / (1.0 + np.exp(-eta))


REWARD_MODELS = {"item_position": ItemPositionModel, "logistic": LogisticRewardModel}


def make_reward_model(model) -> object:
    """A reward model from a name in ``REWARD_MODELS`` or an object with ``fit(logged)`` / ``predict(logged)``."""
    if isinstance(model, str):
        if model not in REWARD_MODELS:
            raise ValueError(f"reward_model={model!r} is not accepted; accepted values: {list(REWARD_MODELS)} or a model object")
        return REWARD_MODELS[model]()
    if not (hasattr(model, "fit") and hasattr(model, "predict")):
        raise TypeError(f"a reward model needs fit(logged) and predict(logged); got {type(model).__name__}")
    return model
