"""recapp.spark's metrics and splits refuse what recapp.metrics and recapp.split refuse, with the same messages.

NaN, null or text scores, missing ids, missing or non-time timestamps, and the
groups ``min_rating`` drops: each case is run on both layers and compared. The
SparkSession is the run's one, tests/conftest.py's ``spark``.
"""
import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from recapp import metrics, split
from recapp.metrics import ScoreError
from recapp.schema import SchemaError


PRED_SCHEMA = "user_id long, item_id long, score double, rank long"


def _head(message: str) -> str:
    """A check's message up to where the offending row is quoted: pandas quotes row labels, Spark one row."""
    return re.split(r", (?:at rows|e\.g\. the row) ", message)[0]


TRUTH = pd.DataFrame({"user_id": [1, 1, 2, 3], "item_id": [10, 11, 20, 30]})
# Ties (user 1: items 12 and 10) are ordered by the rank column on Spark, by row order in pandas: the same here.
PRED = pd.DataFrame({"user_id": [1, 1, 1, 1, 2, 2, 3], "item_id": [11, 12, 10, 13, 21, 20, 31],
                     "score": [0.9, 0.8, 0.8, 0.1, 1.0, 0.5, 0.7], "rank": [1, 2, 3, 4, 1, 2, 1]})


def _pred_rows(pdf: pd.DataFrame) -> list:
    # Built from tuples: Arrow would turn a pandas NaN into a null, and the NaN case would not be tested.
    return [(int(u), int(i), None if s is None else float(s), int(r))
            for u, i, s, r in zip(pdf["user_id"], pdf["item_id"], pdf["score"].astype(object), pdf["rank"])]


# ---- metrics ----------------------------------------------------------------------------------------
def test_spark_metrics_equal_pandas_and_refuse_the_same_nan_score(spark):
    from recapp.spark import ranking_metrics

    t = spark.createDataFrame(TRUTH)
    got = ranking_metrics(t, spark.createDataFrame(_pred_rows(PRED), PRED_SCHEMA), 3)
    assert got == pytest.approx(metrics.ranking_metrics(TRUTH, PRED, 3), abs=1e-12)
    # One NaN score: Spark orders NaN above every number, so item 13 (no hit) would take rank 1 unseen.
    nan_pred = PRED.assign(score=PRED["score"].where(PRED["item_id"] != 13, np.nan))
    with pytest.raises(ScoreError) as expected:
        metrics.ranking_metrics(TRUTH, nan_pred, 3)
    with pytest.raises(ScoreError) as got:
        ranking_metrics(t, spark.createDataFrame(_pred_rows(nan_pred), PRED_SCHEMA), 3)
    assert _head(str(got.value)) == _head(str(expected.value)) == "column 'score' of rating_pred has 1 NaN score(s)"
    assert "user_id=1, item_id=13, score=nan" in str(got.value)


def test_spark_metrics_refuse_null_and_text_scores_and_missing_ids(spark):
    from recapp.spark import ndcg_at_k, per_user_ranking_metrics

    t = spark.createDataFrame(TRUTH)
    null_rows = [(u, i, None if i == 12 else s, r) for u, i, s, r in _pred_rows(PRED)]
    with pytest.raises(ScoreError, match=r"has 1 NaN score\(s\), e\.g\. the row user_id=1, item_id=12, score=None"):
        per_user_ranking_metrics(t, spark.createDataFrame(null_rows, PRED_SCHEMA), 3)
    # Text scores are read as numbers where they are numbers, as pandas.to_numeric reads them.
    text = PRED.assign(score=PRED["score"].astype(str))
    assert ndcg_at_k(t, spark.createDataFrame(text), 3) == pytest.approx(metrics.ndcg_at_k(TRUTH, text, 3), abs=1e-12)
    bad_text = text.assign(score=text["score"].where(text["item_id"] != 21, "n/a"))
    with pytest.raises(ScoreError) as expected:
        metrics.ndcg_at_k(TRUTH, bad_text, 3)
    with pytest.raises(ScoreError, match="score='n/a'") as got:
        ndcg_at_k(t, spark.createDataFrame(bad_text), 3)
    assert _head(str(got.value)) == _head(str(expected.value))
    # A missing id in either frame: a join would drop it unseen.
    no_user = [(None if i == 13 else u, i, s, r) for u, i, s, r in _pred_rows(PRED)]
    with pytest.raises(SchemaError, match=r"column 'user_id' of rating_pred has 1 missing id\(s\), e\.g\. the row "
                                          r"user_id=None, item_id=13"):
        ndcg_at_k(t, spark.createDataFrame(no_user, PRED_SCHEMA), 3)
    nan_item = spark.createDataFrame([(1, 10.0), (2, math.nan)], "user_id long, item_id double")
    with pytest.raises(SchemaError, match=r"column 'item_id' of rating_true has 1 missing id\(s\)"):
        ndcg_at_k(nan_item, spark.createDataFrame(PRED.astype({"item_id": float})), 3)


# ---- splits -----------------------------------------------------------------------------------------
EVENTS = pd.DataFrame({"user_id": [1, 1, 1, 2, 3, 3, 3, 4], "item_id": [1, 2, 3, 1, 1, 2, 3, 4],
                       "timestamp": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]})


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    cols = ["user_id", "item_id", "timestamp"]
    return df[cols].sort_values(cols, ignore_index=True)


def test_chrono_split_reports_what_min_rating_drops_as_pandas_does(spark):
    from recapp.spark import chrono_split

    sdf = spark.createDataFrame(EVENTS)
    with pytest.warns(UserWarning, match="min_rating=") as expected:
        exp = split.chrono_split(EVENTS, ratio=0.5, min_rating=2)
    with pytest.warns(UserWarning, match="min_rating=") as got:
        train, test = chrono_split(sdf, ratio=0.5, min_rating=2)

    def reports(record):
        return [str(w.message) for w in record if str(w.message).startswith("min_rating=")]

    assert reports(got) == reports(expected) == ["min_rating=2 dropped 2 user(s) with fewer rows, 2 of 8 rows"]
    for g, e in zip((train, test), exp):
        pd.testing.assert_frame_equal(_sorted(g.toPandas()), _sorted(e))
    with warnings.catch_warnings(record=True) as none:
        warnings.simplefilter("always")
        chrono_split(sdf, ratio=0.5, min_rating=1)      # nothing dropped, nothing reported
    assert reports(none) == []


def test_spark_splits_refuse_missing_ids_and_times_as_pandas_does(spark):
    from recapp.spark import chrono_split, temporal_split

    schema = "user_id long, item_id long, timestamp double"
    rows = list(EVENTS.itertuples(index=False, name=None))
    cases = {  # name: (Spark rows, pandas frame, the message both start with)
        "NaN time": ([(1, 2, math.nan) if j == 1 else r for j, r in enumerate(rows)],
                     EVENTS.assign(timestamp=EVENTS["timestamp"].where(EVENTS.index != 1)),
                     "column 'timestamp' has 1 missing time(s)"),
        "missing user": ([(None, 2, 2.0) if j == 1 else r for j, r in enumerate(rows)],
                         EVENTS.assign(user_id=EVENTS["user_id"].where(EVENTS.index != 1)),
                         "column 'user_id' has 1 missing id(s)"),
    }
    for name, (spark_rows, pdf, head) in cases.items():
        sdf = spark.createDataFrame(spark_rows, schema)
        calls = [(chrono_split, split.chrono_split)]
        if name == "NaN time":
            calls.append((temporal_split, split.temporal_split))   # a NaN time would fall in test unseen
        for spark_split, pandas_split in calls:
            with pytest.raises(SchemaError) as expected:
                pandas_split(pdf)
            with pytest.raises(SchemaError, match="e.g. the row user_id=") as got:
                spark_split(sdf)
            assert _head(str(got.value)) == _head(str(expected.value)) == head, (name, spark_split.__name__)
    text = spark.createDataFrame(EVENTS.astype({"timestamp": str}))
    with pytest.raises(SchemaError, match="column 'timestamp' holds string values, not times"):
        temporal_split(text, cutoff=3)
    with pytest.raises(ValueError, match="cutoff=nan is not a finite time"):
        temporal_split(spark.createDataFrame(EVENTS), cutoff=float("nan"))


def test_temporal_split_of_a_timestamp_column_equals_pandas(spark):
    from recapp.spark import temporal_split

    events = EVENTS.assign(timestamp=pd.to_datetime(EVENTS["timestamp"], unit="s", utc=True))
    sdf = spark.createDataFrame(events)
    for kwargs in (dict(quantile=0.5), dict(cutoff="1970-01-01 00:00:04")):
        got = [part.count() for part in temporal_split(sdf, **kwargs)]
        assert got == [len(part) for part in split.temporal_split(events, **kwargs)], kwargs
    with pytest.raises(ValueError, match="cutoff=4 is a number but column 'timestamp' holds datetimes"):
        temporal_split(sdf, cutoff=4)


def test_chrono_split_orders_a_date_column_and_refuses_text(spark):
    from pyspark.sql import functions as F

    from recapp.spark import chrono_split

    days = spark.createDataFrame(EVENTS).withColumn("timestamp", F.date_add(F.lit("2024-01-01").cast("date"),
                                                                             F.col("timestamp").cast("int")))
    assert days.schema["timestamp"].dataType.simpleString() == "date"
    train, _ = chrono_split(days, ratio=0.5)
    exp_train, _ = split.chrono_split(EVENTS, ratio=0.5)
    assert sorted(train.select("user_id", "item_id").collect()) == sorted(exp_train[["user_id", "item_id"]].itertuples(index=False, name=None))
    with pytest.raises(SchemaError, match="column 'timestamp' holds string values, not times: .* UTC seconds, timestamps or dates"):
        chrono_split(spark.createDataFrame(EVENTS.astype({"timestamp": str})), ratio=0.5)
