"""Small hyperparameter searches on a validation split carved from the training data only.

The test split is never seen: :func:`validation_split` cuts the *training*
frame again (by default the same item-stratified 75/25 protocol the
benchmarks use), :func:`grid_search` fits every candidate on the inner train
part and scores it on the validation part, and the caller refits the winner
on the whole training frame.

    >>> from recapp.tune import grid_search
    >>> res = grid_search(ALS, {"factors": [32, 64], "regularization": [1.0, 10.0]}, train)
    >>> res.best_params, res.results.head()
"""
from __future__ import annotations

import inspect
import itertools
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from recapp.metrics.checks import ScoreError
from recapp.schema import ITEM_COL, PREDICTION_COL, USER_COL
from recapp.schema.cells import _plain

METRICS = ("ndcg", "recall", "precision", "rmse", "mae")
#: metrics where lower is better
LOWER_IS_BETTER = ("rmse", "mae")


def validation_split(train: pd.DataFrame, ratio: float = 0.75, *, filter_by: str | None = "item",
                     random_state: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(inner_train, valid)`` cut from a *training* frame; ``ratio`` is the share kept for ``inner_train``.

    ``ratio=0.75`` leaves a quarter of ``train`` for validation. (The torch
    models' early stopping uses :func:`recapp.models.holdout_eval.holdout_interactions`,
    whose ``fraction`` is the validation share and which cuts Interactions.)

    ``filter_by="item"`` or ``"user"`` stratifies like the benchmark protocol
    (:func:`recapp.split.stratified_split`); ``None`` cuts rows at random
    (:func:`recapp.split.random_split`, the protocol for rating prediction).
    """
    from recapp import split

    if filter_by is None:
        return split.random_split(train, ratio, random_state=random_state)
    return split.stratified_split(train, ratio, filter_by=filter_by, random_state=random_state)


def evaluate(model, valid: pd.DataFrame, *, k: int = 10, metric: str = "ndcg") -> float:
    """Score a fitted model on ``valid`` with :mod:`recapp.metrics` (training items excluded from rankings).

    Ranking metrics (``ndcg``, ``recall``, ``precision`` at ``k``) rank every
    validation user's unseen items; ``rmse`` / ``mae`` compare ``model.predict``
    with ``valid``'s ratings (models that predict ratings, e.g. RatingMF).
    """
    from recapp import metrics

    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is not accepted; accepted values: {list(METRICS)}")
    if metric in LOWER_IS_BETTER:
        if not hasattr(model, "predict"):
            raise ValueError(f"metric={metric!r} needs a model with predict(); {type(model).__name__} ranks only")
        pred = valid[[USER_COL, ITEM_COL]].copy()
        pred[PREDICTION_COL] = model.predict(valid)
        return float(getattr(metrics, metric)(valid, pred))
    recs = model.recommend(pd.unique(valid[USER_COL].to_numpy()), k=k, exclude_seen=True)
    return float(getattr(metrics, f"{metric}_at_k")(valid, recs, k=k))


@dataclass
class TuneResult:
    """A search's outcome: the best parameters, their validation score, and every candidate's row."""

    best_params: dict
    best_score: float
    results: pd.DataFrame
    metric: str

    def __repr__(self) -> str:
        return f"TuneResult(best_params={self.best_params}, best_{self.metric}={self.best_score:.4f}, candidates={len(self.results)})"


def _candidates(param_grid) -> list[dict]:
    if isinstance(param_grid, dict):
        grids = [param_grid]
    else:
        grids = list(param_grid)
    out = []
    for g in grids:
        if not isinstance(g, dict):
            raise ValueError("param_grid must be a dict of lists (or a list of such dicts)")
        keys = list(g)
        for k in keys:
            if isinstance(g[k], (str, bytes)) or not hasattr(g[k], "__iter__"):
                raise ValueError(f"param_grid[{k!r}] must be a list of values, got {g[k]!r}")
        out.extend(dict(zip(keys, vals)) for vals in itertools.product(*(list(g[k]) for k in keys)))
    return out


def _fit_kwargs(model, kwargs: dict) -> dict:
    # Only pass what this model's fit accepts (e.g. items= for content models).
    sig = inspect.signature(model.fit).parameters
    return {k: v for k, v in kwargs.items() if k in sig}


def grid_search(model, param_grid, train: pd.DataFrame, *, valid: pd.DataFrame | None = None,
                ratio: float = 0.75, filter_by: str | None = "item", k: int = 10, metric: str = "ndcg",
                random_state: int = 0, fit_kwargs: dict | None = None, verbose: bool = True,
                callback: Callable[[dict], None] | None = None) -> TuneResult:
    """Fit ``model`` with every combination in ``param_grid`` and score each on a validation split.

    ``model`` is a Recommender class or instance (an instance's other
    parameters are kept). ``valid`` defaults to :func:`validation_split` of
    ``train`` (``ratio``, ``filter_by``, ``random_state``), so only training data
    is used. ``fit_kwargs`` (e.g. ``items=``) are passed to models whose ``fit``
    takes them. Returns a :class:`TuneResult` whose ``results`` has one row per
    candidate (parameters, score, fit seconds), best first.

    A candidate whose scores or predictions are NaN (a diverged fit; the metric
    raises :class:`~recapp.metrics.checks.ScoreError`) or whose score is NaN
    scores NaN: it is listed last in ``results``, named in a warning and never
    chosen. If every candidate scores NaN, a ValueError lists them.
    """
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is not accepted; accepted values: {list(METRICS)}")
    base = model() if isinstance(model, type) else model
    base_params = base.get_params()
    if valid is None:
        inner, valid = validation_split(train, ratio, filter_by=filter_by, random_state=random_state)
    else:
        inner = train
    rows, reasons = [], []
    cands = _candidates(param_grid)
    if not cands:
        raise ValueError("param_grid has no candidates")
    for params in cands:
        m = type(base)(**{**base_params, **params})
        t0 = time.perf_counter()
        m.fit(inner, **_fit_kwargs(m, fit_kwargs or {}))
        fit_s = time.perf_counter() - t0
        try:
            score = evaluate(m, valid, k=k, metric=metric)
        except ScoreError as e:
            # The model's own output is unusable (e.g. NaN after divergence): that is this
            # candidate's result, not a mistake in the call, so the search goes on.
            score = float("nan")
            reasons.append(str(e))
        row = {**params, metric: score, "fit_s": fit_s}
        rows.append(row)
        if callback is not None:
            callback(row)
        if verbose:
            print(f"{type(base).__name__} {params}: {metric}={score:.4f} ({fit_s:.1f}s)", flush=True)
    results = pd.DataFrame(rows)
    results = results.sort_values(metric, ascending=metric in LOWER_IS_BETTER, kind="stable").reset_index(drop=True)
    scores = np.array([r[metric] for r in rows], dtype=np.float64)
    failed = [{k_: _plain(v) for k_, v in c.items()} for c, s_ in zip(cands, scores) if np.isnan(s_)]
    if len(failed) == len(cands):
        raise ValueError(f"every candidate scored NaN on {metric} (NaN predictions or scores, e.g. a diverged fit): "
                         f"{failed}; accepted: a grid with at least one candidate that scores a number"
                         + (f". First error: {reasons[0]}" if reasons else ""))
    if failed:
        warnings.warn(f"{len(failed)} of {len(cands)} candidate(s) scored NaN on {metric} and were not chosen: {failed}"
                      + (f". First error: {reasons[0]}" if reasons else ""), RuntimeWarning, stacklevel=2)
    # nanargmin/nanargmax take the first best, as the stable sort above does; NaN sorts last there.
    best_i = int(np.nanargmin(scores) if metric in LOWER_IS_BETTER else np.nanargmax(scores))
    best = {k_: _plain(v) for k_, v in cands[best_i].items()}
    return TuneResult(best_params=best, best_score=float(scores[best_i]), results=results, metric=metric)


def tune(model, param_grid, train: pd.DataFrame, **kwargs):
    """Grid-search on a validation split of ``train``, then refit the best candidate on all of ``train``.

    Returns ``(fitted_model, TuneResult)``. Keyword arguments go to :func:`grid_search`.
    """
    res = grid_search(model, param_grid, train, **kwargs)
    base = model() if isinstance(model, type) else model
    best = type(base)(**{**base.get_params(), **res.best_params})
    best.fit(train, **_fit_kwargs(best, kwargs.get("fit_kwargs") or {}))
    return best, res
