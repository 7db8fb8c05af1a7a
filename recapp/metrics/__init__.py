"""Evaluation metrics: ranking accuracy (:mod:`.ranking`), rating error (:mod:`.rating`) and
beyond-accuracy (:mod:`.beyond`).

Semantics follow Microsoft Recommenders'
``recommenders/evaluation/python_evaluation.py`` so that numbers measured here
can be set beside numbers published there; where recapp differs, the function's
docstring says how and why.

Conventions shared by the ranking metrics:

* ``rating_true`` lists the relevant (user, item) pairs, e.g. a test split.
  Relevance is binary: every pair is relevant, whatever its rating; a pair that
  occurs several times (repeat views) counts once.
* ``rating_pred`` holds (user, item, score) rows, e.g. ``model.recommend(...)``.
  Each user's rows are ranked by ``col_prediction`` descending; ties keep their
  row order (a stable sort, as in recommenders). Only the top ``k`` count.
* Users evaluated are those present in **both** frames, as recommenders'
  ``merge_ranking_true_pred`` does: a test user the model returned nothing for
  is not counted. Averages are over those users, each weighing the same.
* Discounts are ``1 / log2(rank + 1)`` with 1-based ranks.
* Every metric that reads a score, prediction or relevance column refuses NaN
  and non-numeric values with :class:`ScoreError` (a ValueError naming the
  column and rows) instead of ranking them last or returning NaN; every metric
  refuses missing user or item ids the same way (SchemaError), since a groupby
  would drop them unseen and a match would count NaN as a user or item.

Beyond-accuracy metrics take recommenders' argument order: the training
interactions first (``train_df``), the recommendations second (``reco_df``).
``catalog_coverage(reco_df, catalog)`` and ``distributional_coverage(reco_df)``
need no training frame and take the recommendations first.
"""
from __future__ import annotations

from recapp.metrics.beyond import (
    calibration_kl,
    catalog_coverage,
    distributional_coverage,
    intra_list_diversity,
    novelty,
    popularity_bias,
    serendipity,
)
from recapp.metrics.checks import ScoreError, check_id_kinds, check_ids, check_k, check_scores
from recapp.metrics.ranking import (
    DEFAULT_K,
    RANKING_METRICS,
    auc,
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    per_user_ranking_metrics,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    resolve_metric_names,
)
from recapp.metrics.rating import mae, rmse

__all__ = [
    "DEFAULT_K", "RANKING_METRICS", "ScoreError", "check_id_kinds", "check_ids", "check_k", "check_scores",
    "resolve_metric_names",
    "per_user_ranking_metrics", "ranking_metrics", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k",
    "mrr_at_k", "hit_rate_at_k", "auc", "rmse", "mae",
    "catalog_coverage", "distributional_coverage", "intra_list_diversity", "serendipity", "novelty",
    "popularity_bias", "calibration_kl",
]
