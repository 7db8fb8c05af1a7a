"""recapp on Spark: the same definitions on Spark DataFrames, for logs of hundreds of millions of events.

* :func:`spark_session` starts a local session with sane defaults (or joins a cluster's).
* :func:`read_events` / :func:`validate`: the event log with :mod:`recapp.schema`'s aliases,
  rules and drop reasons; dropped rows counted by reason.
* :func:`temporal_split` / :func:`chrono_split`: :mod:`recapp.split`'s semantics.
* :class:`SparkALS`: implicit ALS by Spark MLlib, distributed top-k, and ``to_recapp()`` to an
  :class:`ALSWR` that :class:`recapp.realtime.Engine` serves per event.
* :func:`ranking_metrics` and friends: :mod:`recapp.metrics`' NDCG, precision, recall, MAP, MRR
  and hit rate at k, equal to it on the same lists.
* :func:`live_recommendations`: Structured Streaming with one fold-in state per shopper.

Needs the ``spark`` extra (``pip install 'recapp[spark]'``, pyspark 4.3) and Java 17 or newer.
:class:`ALSWR`, :func:`load` (which reads a saved ALSWR, and any other saved model) and the
session checks need neither, so ``import recapp.spark`` always works; the rest imports pyspark
on first use.
"""
from __future__ import annotations

import importlib

from recapp.spark.model import ALSWR, WeightedFoldInScorer, load
from recapp.spark.session import (
    JAVA_MISSING,
    PYSPARK_MISSING,
    java_available,
    java_version,
    notebook_guard,
    pyspark_available,
    spark_session,
    spark_unavailable_reason,
)

_LAZY = {
    "validate": "recapp.spark.events", "read_events": "recapp.spark.events", "event_weights": "recapp.spark.events",
    "SparkValidationReport": "recapp.spark.events",
    "temporal_split": "recapp.spark.split", "chrono_split": "recapp.spark.split", "exact_quantile": "recapp.spark.split",
    "SparkALS": "recapp.spark.als",
    "ranking_metrics": "recapp.spark.metrics", "per_user_ranking_metrics": "recapp.spark.metrics",
    "precision_at_k": "recapp.spark.metrics", "recall_at_k": "recapp.spark.metrics", "ndcg_at_k": "recapp.spark.metrics",
    "map_at_k": "recapp.spark.metrics", "mrr_at_k": "recapp.spark.metrics", "hit_rate_at_k": "recapp.spark.metrics",
    "live_recommendations": "recapp.spark.streaming", "latest_lists": "recapp.spark.streaming",
    "write_event_files": "recapp.spark.streaming", "file_stream": "recapp.spark.streaming",
    "event_schema": "recapp.spark.streaming",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'recapp.spark' has no attribute {name!r}")
    if not pyspark_available():
        raise ImportError(f"recapp.spark.{name} needs pyspark: {PYSPARK_MISSING}")
    return getattr(importlib.import_module(module), name)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["ALSWR", "WeightedFoldInScorer", "load", "JAVA_MISSING", "PYSPARK_MISSING", "java_available", "java_version",
           "pyspark_available", "spark_session", "spark_unavailable_reason", "notebook_guard", *_LAZY]
