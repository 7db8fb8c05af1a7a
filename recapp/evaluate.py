"""Fit, recommend and score models under one protocol; tidy DataFrames out.

The MovieLens protocol of the Microsoft Recommenders benchmark lives here so
that the benchmark script, the tests and the notebooks measure the same thing.
"""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass

import pandas as pd

from recapp import metrics
from recapp.models.base import check_param
from recapp.schema import ITEM_COL, USER_COL

RANKING_METRICS = {
    "ndcg@k": metrics.ndcg_at_k,
    "precision@k": metrics.precision_at_k,
    "recall@k": metrics.recall_at_k,
    "map@k": metrics.map_at_k,
}


@dataclass
class Protocol:
    """A train/test split with the settings that produced it."""

    name: str
    train: pd.DataFrame
    test: pd.DataFrame
    items: pd.DataFrame | None = None
    k: int = 10


def movielens_protocol(k: int = 10) -> Protocol:
    """ML-100K, stratified per item 75/25, seed 42: the Microsoft Recommenders benchmark protocol."""
    from recapp.data.movielens import load_movielens
    from recapp.split import stratified_split

    ml = load_movielens("100k")
    train, test = stratified_split(ml.interactions, ratio=0.75, filter_by="item", random_state=42)
    return Protocol("ML-100K stratified-by-item 75/25 seed 42", train, test, ml.items, k)


def fit_model(model, train: pd.DataFrame, items: pd.DataFrame | None = None):
    """Fit ``model`` on ``train`` (passing ``items=`` when its ``fit`` takes it); returns (model, seconds)."""
    kwargs = {}
    if items is not None and "items" in inspect.signature(model.fit).parameters:
        kwargs["items"] = items
    start = time.perf_counter()
    model.fit(train, **kwargs)
    return model, time.perf_counter() - start


def evaluate_recommendations(recs: pd.DataFrame, test: pd.DataFrame, train: pd.DataFrame, *, k: int = 10,
                             n_items: int | None = None) -> dict:
    """Ranking and beyond-accuracy metrics of a top-k list against a test set.

    ``n_items`` (the catalog size for ``coverage``) is None, meaning the distinct
    items of ``train`` and ``test``, or an integer >= 1. ``diversity`` (intra-list)
    is defined only for lists of two or more items, so with ``k=1`` the key is
    left out rather than filled with a NaN or a made-up figure.
    """
    if n_items is not None:
        # 0 would otherwise fall back to the data's count unseen (a falsy "or").
        check_param("n_items", n_items, low=1, integer=True)
    out = {name.replace("@k", f"@{k}"): float(fn(test, recs, k=k)) for name, fn in RANKING_METRICS.items()}
    if n_items is None:
        n_items = pd.concat([train[ITEM_COL], test[ITEM_COL]]).nunique()
    out["coverage"] = float(metrics.catalog_coverage(recs, n_items=int(n_items)))
    out["novelty"] = float(metrics.novelty(train, recs))
    if k > 1:
        out["diversity"] = float(metrics.intra_list_diversity(train, recs))
    return out


def evaluate_model(model, protocol: Protocol, *, name: str | None = None) -> dict:
    """Fit ``model`` under ``protocol``, recommend for every test user and score the list."""
    model, train_s = fit_model(model, protocol.train, protocol.items)
    users = protocol.test[USER_COL].unique()
    start = time.perf_counter()
    recs = model.recommend(users, k=protocol.k, exclude_seen=True)
    rec_s = time.perf_counter() - start
    row = {"model": name or type(model).__name__}
    start = time.perf_counter()
    row.update(evaluate_recommendations(recs, protocol.test, protocol.train, k=protocol.k))
    metrics_s = time.perf_counter() - start
    row["train_s"] = train_s
    row["recommend_s"] = rec_s
    row["metrics_s"] = metrics_s
    row["users_covered"] = float(recs[USER_COL].nunique() / len(users))
    return row


def compare(models: dict, protocol: Protocol, *, progress: bool = True) -> pd.DataFrame:
    """One tidy row per model: ranking metrics, coverage, novelty and seconds (``train_s``, ``recommend_s``, ``metrics_s``)."""
    from tqdm.auto import tqdm

    rows = []
    for name, model in tqdm(list(models.items()), desc="models", disable=not progress):
        rows.append(evaluate_model(model, protocol, name=name))
    return pd.DataFrame(rows)


def default_models(names=None) -> dict:
    """Every recommender in :mod:`recapp.models` built by its default constructor, by class name."""
    from recapp import models as m

    classes = {name: getattr(m, name) for name in m.__all__ if isinstance(getattr(m, name), type)
               and issubclass(getattr(m, name), m.Recommender) and getattr(m, name) is not m.Recommender}
    if names is not None:
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; available: {sorted(classes)}")
        classes = {n: classes[n] for n in names}
    return {name: cls() for name, cls in classes.items()}
