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

from recapp.metrics.checks import ScoreError, check_k
from recapp.schema import ITEM_COL, PREDICTION_COL, USER_COL, require_columns
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
    (:func:`recapp.split.random_split`, the protocol for rating prediction);
    any other ``filter_by`` raises ValueError naming the three accepted values.
    """
    from recapp import split

    if filter_by is not None and filter_by not in split.FILTER_BY:
        raise ValueError(f"filter_by={filter_by!r} is not supported; accepted: {[*split.FILTER_BY, None]}")
    if filter_by is None:
        return split.random_split(train, ratio, random_state=random_state)
    return split.stratified_split(train, ratio, filter_by=filter_by, random_state=random_state)


def evaluate(model, valid: pd.DataFrame, *, k: int = 10, metric: str = "ndcg") -> float:
    """Score a fitted model on ``valid`` with :mod:`recapp.metrics` (training items excluded from rankings).

    Ranking metrics (``ndcg``, ``recall``, ``precision`` at ``k``) rank every
    validation user's unseen items; ``rmse`` / ``mae`` compare ``model.predict``
    with ``valid``'s ratings (models that predict ratings, e.g. RatingMF).
    A ``valid`` that is not a DataFrame with user and item columns, or has no
    rows (every model would score the same 0), raises.
    """
    from recapp import metrics

    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is not accepted; accepted values: {list(METRICS)}")
    _check_valid(valid)
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


def _check_valid(valid) -> None:
    require_columns(valid, "valid", USER_COL, ITEM_COL)
    if len(valid) == 0:
        # The ranking metrics score an empty frame 0.0, so every candidate would tie.
        raise ValueError("valid has no rows: no candidate could be scored; accepted: a validation frame with events")


def _candidates(param_grid, base) -> list[dict]:
    """Every combination in ``param_grid``; a ValueError names a malformed grid or a parameter ``base`` lacks."""
    if isinstance(param_grid, dict):
        grids = [param_grid]
    elif isinstance(param_grid, (str, bytes)) or not hasattr(param_grid, "__iter__"):
        raise ValueError(f"param_grid must be a dict of lists (or a list of such dicts), got {param_grid!r:.80}")
    else:
        grids = list(param_grid)
    known = set(base.get_params())
    out = []
    for g in grids:
        if not isinstance(g, dict):
            raise ValueError("param_grid must be a dict of lists (or a list of such dicts)")
        keys = list(g)
        # Checked before any fit: an unknown name would otherwise fail in the constructor after the split.
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise ValueError(f"param_grid names {unknown}, which {type(base).__name__} has no parameter(s) of; "
                             f"parameters: {sorted(known)}")
        for k in keys:
            if isinstance(g[k], (str, bytes)) or not hasattr(g[k], "__iter__"):
                raise ValueError(f"param_grid[{k!r}] must be a list of values, got {g[k]!r}")
        values = [list(g[k]) for k in keys]
        empty = [k for k, v in zip(keys, values) if not v]
        if empty:
            raise ValueError(f"param_grid[{empty[0]!r}] is empty, so param_grid has no candidates; "
                             "accepted: a non-empty list of values per parameter")
        out.extend(dict(zip(keys, vals)) for vals in itertools.product(*values))
    return out


def _base_model(model):
    """``model`` as an instance: a class is constructed with its defaults; anything else must look like a Recommender."""
    base = model() if isinstance(model, type) else model
    if not all(callable(getattr(base, name, None)) for name in ("get_params", "fit")):
        raise TypeError(f"model must be a Recommender class or instance (e.g. EASE or EASE(l2=50.0)), "
                        f"got {type(model).__name__} {model!r:.80}")
    return base


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

    Refused before anything is fitted: a ``model`` that is no Recommender, a
    grid that is not a dict of non-empty lists (or a list of such dicts) or
    names a parameter the model lacks, ``k`` below 1 for a ranking metric, and
    a ``valid`` frame without user/item columns or rows.
    """
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is not accepted; accepted values: {list(METRICS)}")
    if metric not in LOWER_IS_BETTER:
        k = check_k(k)
    base = _base_model(model)
    base_params = base.get_params()
    cands = _candidates(param_grid, base)
    if not cands:
        raise ValueError("param_grid has no candidates")
    if valid is None:
        inner, valid = validation_split(train, ratio, filter_by=filter_by, random_state=random_state)
    else:
        _check_valid(valid)
        inner = train
    rows, reasons = [], []
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
    base = _base_model(model)
    best = type(base)(**{**base.get_params(), **res.best_params})
    best.fit(train, **_fit_kwargs(best, kwargs.get("fit_kwargs") or {}))
    return best, res
