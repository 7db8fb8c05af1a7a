"""Ranking metrics on Spark DataFrames, with the definitions of :mod:`recapp.metrics`.

Same conventions as :func:`recapp.metrics.per_user_ranking_metrics`: every
(user, item) pair of ``rating_true`` is relevant once; each user's predictions
are ranked by score, descending, and only the top ``k`` count; users in both
frames are evaluated, each weighing the same; discounts are ``1 / log2(rank +
1)`` (the very same float64 values, passed to Spark as literals). One thing a
Spark DataFrame lacks is row order, which pandas uses to break ties between
equal scores: here ties are broken by the ``rank`` column when the frame has
one (recapp's ``recommend`` and :meth:`recapp.spark.SparkALS.recommend` both
write it, in row order), else by item id. On the same lists the values equal
recapp.metrics' to about 1e-15 (sums taken in another order).
"""
from __future__ import annotations

import numpy as np
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recapp.metrics import DEFAULT_K, RANKING_METRICS, ScoreError, check_k, resolve_metric_names
from recapp.schema import ITEM_COL, RANK_COL, SCORE_COL, USER_COL, SchemaError
from recapp.spark.checks import count_rows, missing_cell, quote_row
from recapp.spark.events import col
from recapp.spark.report import require_frame


def _check_id_kinds(a: DataFrame, a_name: str, b: DataFrame, b_name: str, *cols: str) -> None:
    for c in cols:
        ta, tb = a.schema[c].dataType, b.schema[c].dataType
        na, nb = isinstance(ta, T.NumericType), isinstance(tb, T.NumericType)
        if na != nb:
            kinds = {True: "numeric", False: "non-numeric"}
            raise SchemaError(
                f"column {c!r} is {kinds[na]} ({ta.simpleString()}) in {a_name} but {kinds[nb]} ({tb.simpleString()}) "
                f"in {b_name}; ids must have the same type in both frames"
            )


def _scores(sdf: DataFrame, name: str, column: str) -> F.Column:
    """``column`` as doubles (text read as numbers, null where it is none); a ScoreError for a type no score can have."""
    dtype = sdf.schema[column].dataType
    if isinstance(dtype, T.StringType):
        # try_cast: under ANSI (Spark 4's default) a plain cast of 'x' fails the whole job with a Java error.
        return col(column).try_cast("double")
    if isinstance(dtype, (T.NumericType, T.BooleanType)):
        return col(column).cast("double")
    raise ScoreError(f"column {column!r} of {name} holds Spark type {dtype.simpleString()}, not scores; accepted: numbers")


def _check_values(rating_true: DataFrame, rating_pred: DataFrame, col_user: str, col_item: str,
                  col_prediction: str) -> None:
    """:func:`recapp.metrics.check_ids` on both frames and ``check_scores`` on the predictions, in one Spark job.

    A missing id would be dropped by a join unseen; a NaN score would rank first
    (Spark orders NaN above every number), a null one last; integer or decimal ids that a float id column
    of the other frame cannot tell apart (past 2**53 for doubles) would be joined to several ids at once,
    counting hits twice. Messages are recapp.metrics',
    quoting one offending row (a Spark DataFrame has no row labels).
    """
    frames = {"rating_true": (rating_true, [col_user, col_item]),
              "rating_pred": (rating_pred, [col_user, col_item, col_prediction])}
    score = _scores(rating_pred, "rating_pred", col_prediction)
    raw = col(col_prediction)
    aggs, checks = [], []
    names = list(frames)
    for j, (name, (sdf, shown)) in enumerate(frames.items()):
        conds = {f"ids{j}_{n}": missing_cell(sdf.schema[c].dataType, col(c)) for n, c in enumerate((col_user, col_item))}
        checks += [(key, name, c, "id") for key, c in zip(conds, (col_user, col_item))]
        other = frames[names[1 - j]][0]
        for n, c in enumerate((col_user, col_item)):
            lossy = _float_merged(sdf.schema[c].dataType, other.schema[c].dataType, col(c))
            if lossy is not None:
                conds[f"lossy{j}_{n}"] = lossy
                checks.append((f"lossy{j}_{n}", name, c, other.schema[c].dataType.simpleString()))
        if name == "rating_pred":
            conds.update(text=raw.isNotNull() & score.isNull(), nan=raw.isNull() | F.isnan(score))
            checks += [("text", name, col_prediction, "text"), ("nan", name, col_prediction, "nan")]
        aggs.append(count_rows(sdf, conds, shown))
    row = aggs[0].crossJoin(aggs[1]).collect()[0]
    for key, name, c, kind in checks:
        n = int(row[key])
        if not n:
            continue
        where = f"e.g. the row {quote_row(row[key + '_row'])}"
        if kind == "id":
            raise SchemaError(f"column {c!r} of {name} has {n:,} missing id(s), {where}; accepted: ids present in every row")
        if kind not in ("text", "nan"):
            other = names[1 - names.index(name)]
            digits = "2**24" if kind == "float" else "2**53"
            raise SchemaError(f"column {c!r} of {name} has {n:,} id(s) that the {kind} ids of {other} cannot tell "
                              f"apart (a {kind} holds integers exactly only up to {digits}), {where}; accepted: ids "
                              f"of one exact type in both frames (cast {other}'s {c!r} to "
                              f"{frames[name][0].schema[c].dataType.simpleString()})")
        if kind == "text":
            raise ScoreError(f"column {c!r} of {name} has {n:,} non-numeric score(s), {where}; accepted: numbers")
        raise ScoreError(f"column {c!r} of {name} has {n:,} NaN score(s), {where}; accepted: numbers "
                         "(NaN from a model usually means its fit diverged)")


def _float_merged(dtype: T.DataType, other: T.DataType, c: F.Column) -> F.Column | None:
    """Where joining exact ids (integers, decimals) with float ids would merge distinct ones; None when it cannot.

    Spark joins such columns as floats, so ids past a float's exact integers (2**53 for a
    double: a DECIMAL(20,0) or long key) would match several ids of the other frame at once.
    An id is safe when it survives the trip to the float type and back unchanged.
    """
    if not isinstance(other, (T.FloatType, T.DoubleType)) or not isinstance(dtype, (T.IntegralType, T.DecimalType)):
        return None
    back = c.cast(other).try_cast(dtype)
    return c.isNotNull() & (back.isNull() | (back != c))


def _literal_array(values: np.ndarray) -> F.Column:
    return F.array(*[F.lit(float(v)) for v in values])


def per_user_ranking_metrics(
    rating_true: DataFrame,
    rating_pred: DataFrame,
    k: int = DEFAULT_K,
    *,
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
    col_prediction: str = SCORE_COL,
    col_rank: str | None = RANK_COL,
) -> DataFrame:
    """One row per evaluated user: ``n_relevant``, ``n_hits`` and every ranking metric at ``k`` (lazy).

    :func:`recapp.metrics.per_user_ranking_metrics` on Spark. Ties between equal
    scores are broken by ``col_rank`` when ``rating_pred`` has it, else by item id.
    A (user, item) pair listed several times in ``rating_pred`` is ranked once, at its highest score.
    One Spark job checks the inputs first, as recapp.metrics does: a missing (null or NaN)
    user or item id in either frame raises SchemaError, a NaN, null or non-numeric
    score :class:`~recapp.metrics.ScoreError`, each naming the column, the count and one such row.
    Integer or decimal ids (a DECIMAL(20,0) key) against float ids in the other frame are matched by value
    while a float holds them exactly; ids past that (2**53 for doubles) raise SchemaError, as a join in
    floats would merge them.
    """
    k = check_k(k)
    require_frame(rating_true, "rating_true", col_user, col_item)
    require_frame(rating_pred, "rating_pred", col_user, col_item, col_prediction)
    _check_id_kinds(rating_true, "rating_true", rating_pred, "rating_pred", col_user, col_item)
    _check_values(rating_true, rating_pred, col_user, col_item, col_prediction)
    u, i = col(col_user), col(col_item)
    truth = rating_true.select(u.alias("u"), i.alias("i")).distinct()
    tie = col(col_rank) if col_rank is not None and col_rank in rating_pred.columns else i
    pred = rating_pred.select(u.alias("u"), i.alias("i"), _scores(rating_pred, "rating_pred", col_prediction).alias("s"),
                              tie.alias("t"))
    # A (user, item) pair listed twice is one recommendation, ranked at its best score, as in recapp.
    best = Window.partitionBy("u", "i").orderBy(F.col("s").desc(), F.col("t").asc())
    pred = pred.withColumn("_dup", F.row_number().over(best)).filter(F.col("_dup") == 1).drop("_dup")
    users = truth.select("u").distinct().join(pred.select("u").distinct(), "u")
    n_rel = truth.join(users, "u").groupBy("u").agg(F.count(F.lit(1)).alias("n_relevant"))

    ranked = pred.join(users, "u").withColumn(
        "r", F.row_number().over(Window.partitionBy("u").orderBy(F.col("s").desc(), F.col("t").asc())))
    top = ranked.filter(F.col("r") <= k)
    hits = top.join(truth.withColumn("hit", F.lit(True)), ["u", "i"], "inner")
    hits = hits.withColumn("ordinal", F.row_number().over(Window.partitionBy("u").orderBy("r")))
    discount = _literal_array(1.0 / np.log2(np.arange(2, k + 2)))
    per_hit = hits.select(
        "u", "r", "ordinal",
        F.element_at(discount, F.col("r").cast("int")).alias("gain"),
        (F.col("ordinal").cast("double") / F.col("r").cast("double")).alias("prec"),
    )
    sums = per_hit.groupBy("u").agg(
        F.count(F.lit(1)).alias("n_hits"),
        F.sum("gain").alias("dcg"),
        F.sum("prec").alias("ap"),
        F.min("r").alias("first"),
    )
    ideal = _literal_array(np.r_[0.0, np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    table = n_rel.join(sums, "u", "left").fillna({"n_hits": 0, "dcg": 0.0, "ap": 0.0})
    n_rel_k = F.least(F.col("n_relevant"), F.lit(k))
    n_hits = F.col("n_hits").cast("double")
    return table.select(
        F.col("u").alias(col_user),
        F.col("n_relevant").cast("long").alias("n_relevant"),
        F.col("n_hits").cast("long").alias("n_hits"),
        (n_hits / F.lit(float(k))).alias("precision_at_k"),
        (n_hits / F.col("n_relevant").cast("double")).alias("recall_at_k"),
        (F.col("dcg") / F.element_at(ideal, (n_rel_k + 1).cast("int"))).alias("ndcg_at_k"),
        (F.col("ap") / n_rel_k.cast("double")).alias("map_at_k"),
        F.coalesce(F.lit(1.0) / F.col("first").cast("double"), F.lit(0.0)).alias("mrr_at_k"),
        (F.col("n_hits") > 0).cast("double").alias("hit_rate_at_k"),
    )


def ranking_metrics(
    rating_true: DataFrame,
    rating_pred: DataFrame,
    k: int = DEFAULT_K,
    metrics=RANKING_METRICS,
    *,
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
    col_prediction: str = SCORE_COL,
    col_rank: str | None = RANK_COL,
) -> dict:
    """Several ranking metrics in one Spark job, as ``{name: value}`` (:func:`recapp.metrics.ranking_metrics`).

    ``metrics`` names any of :data:`recapp.metrics.RANKING_METRICS` or their short
    forms; every value lies in [0, 1]; 0.0 when no user can be evaluated.
    """
    resolved = resolve_metric_names(metrics)
    table = per_user_ranking_metrics(rating_true, rating_pred, k, col_user=col_user, col_item=col_item,
                                     col_prediction=col_prediction, col_rank=col_rank)
    wanted = sorted(set(resolved.values()))
    row = table.agg(F.count(F.lit(1)).alias("__n__"), *[F.avg(c).alias(c) for c in wanted]).collect()[0]
    if row["__n__"] == 0:
        return {name: 0.0 for name in resolved}
    return {name: float(row[full]) for name, full in resolved.items()}


def _mean_of(name: str):
    def metric(rating_true, rating_pred, k=DEFAULT_K, *, col_user=USER_COL, col_item=ITEM_COL, col_prediction=SCORE_COL,
               col_rank=RANK_COL) -> float:
        return ranking_metrics(rating_true, rating_pred, k, (name,), col_user=col_user, col_item=col_item,
                               col_prediction=col_prediction, col_rank=col_rank)[name]
    metric.__name__ = name
    metric.__doc__ = f"recapp.metrics.{name} on Spark DataFrames (see :func:`ranking_metrics`); range [0, 1]."
    return metric


precision_at_k = _mean_of("precision_at_k")
recall_at_k = _mean_of("recall_at_k")
ndcg_at_k = _mean_of("ndcg_at_k")
map_at_k = _mean_of("map_at_k")
mrr_at_k = _mean_of("mrr_at_k")
hit_rate_at_k = _mean_of("hit_rate_at_k")

__all__ = ["per_user_ranking_metrics", "ranking_metrics", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k",
           "mrr_at_k", "hit_rate_at_k"]
