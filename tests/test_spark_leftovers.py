"""recapp.spark leftovers: decimal ids through validate, the splits and the metrics; a second spark_session call;
the splits' row check; the Spark metrics against recapp.metrics on awkward lists."""
import os
import warnings
from decimal import Decimal

import pandas as pd
import pytest

from recapp import metrics as M
from recapp.schema import SchemaError

BIG = 2**53 + 1   # the first integer a float64 cannot hold


@pytest.fixture(scope="module")
def decimal_events(spark):
    from pyspark.sql import types as T

    schema = T.StructType([T.StructField("user_id", T.DecimalType(20, 0)), T.StructField("item_id", T.DecimalType(20, 0)),
                           T.StructField("timestamp", T.DoubleType()), T.StructField("event", T.StringType())])
    rows = [(Decimal(BIG + u), Decimal(BIG + i), float(u * 10 + i), "view") for u in range(3) for i in range(4)]
    return spark.createDataFrame(rows, schema)


# ---- decimal ids ----------------------------------------------------------------------------------------
def test_decimal_ids_keep_every_digit_through_validate_and_the_splits(decimal_events):
    from recapp.spark import chrono_split, temporal_split, validate

    clean, report = validate(decimal_events)
    assert report.n_dropped == 0
    assert clean.schema["user_id"].dataType.simpleString() == "decimal(20,0)"
    train, test = chrono_split(clean, 0.5, order_col="timestamp")
    got = {(int(r.user_id), int(r.item_id)) for r in train.union(test).collect()}
    assert got == {(BIG + u, BIG + i) for u in range(3) for i in range(4)}
    train, test = temporal_split(clean, cutoff=15.0)
    assert sorted(int(r.item_id) for r in test.filter("user_id = 9007199254740995").collect()) == [BIG + i for i in range(4)]


def test_decimal_ids_against_float_ids_past_2_53_are_refused(spark, decimal_events):
    from recapp.spark import ranking_metrics

    truth = decimal_events.select("user_id", "item_id")
    # 2**53 + 1 and + 3 have no double of their own: a float join merges ids and counted hits twice (MAP 1.5).
    pred = spark.createDataFrame(pd.DataFrame({"user_id": [float(BIG)], "item_id": [float(BIG + 2)], "score": [1.0]}))
    with pytest.raises(SchemaError, match=r"column 'user_id' of rating_true has 8 id\(s\) that the double ids of "
                                          r"rating_pred cannot tell apart .*2\*\*53.*user_id=Decimal"):
        ranking_metrics(truth, pred, 2)


def test_decimal_ids_match_exact_and_small_float_ids_by_value(spark, decimal_events):
    from recapp.spark import ranking_metrics

    truth = decimal_events.select("user_id", "item_id")
    longs = pd.DataFrame({"user_id": [BIG, BIG + 1], "item_id": [BIG, BIG + 1], "score": [1.0, 1.0]})
    expected = M.ranking_metrics(
        pd.DataFrame({"user_id": [BIG + u for u in range(3) for _ in range(4)],
                      "item_id": [BIG + i for _ in range(3) for i in range(4)]}), longs, 2)
    got = ranking_metrics(truth, spark.createDataFrame(longs), 2)
    assert got == pytest.approx(expected, abs=1e-12)
    assert got["map_at_k"] == pytest.approx(0.5)
    small_truth = spark.createDataFrame(pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 11, 12]})).selectExpr(
        "CAST(user_id AS DECIMAL(20,0)) AS user_id", "CAST(item_id AS DECIMAL(20,0)) AS item_id")
    floats = spark.createDataFrame(pd.DataFrame({"user_id": [1.0, 2.0], "item_id": [11.0, 12.0], "score": [1.0, 1.0]}))
    assert ranking_metrics(small_truth, floats, 1)["precision_at_k"] == pytest.approx(1.0)


# ---- the splits' row check (shared refuse_counted) ------------------------------------------------------
def test_split_row_check_counts_and_quotes_one_row(spark):
    from recapp.spark import chrono_split, temporal_split

    df = spark.createDataFrame(pd.DataFrame({"{u}": [1.0, None, None, 2.0], "item_id": [1, 2, 3, 4],
                                             "timestamp": [1.0, 2.0, 3.0, None]}))
    with pytest.raises(SchemaError, match=r"column '\{u\}' has 2 missing id\(s\), e\.g\. the row \{u\}=None, "
                                          r"item_id=2, timestamp=2\.0; run recapp\.spark\.validate first"):
        chrono_split(df, 0.5, col_user="{u}", order_col="item_id")
    with pytest.raises(SchemaError, match=r"column 'timestamp' has 1 missing time\(s\), e\.g\. the row item_id=4, "
                                          r"timestamp=None; a time split cannot place them"):
        temporal_split(df.drop("{u}"), cutoff=2.0)


# ---- a second spark_session call --------------------------------------------------------------------------
def test_second_session_call_warns_about_settings_it_cannot_apply(spark):
    from recapp.spark import spark_session

    before = dict(os.environ)
    with pytest.warns(UserWarning, match=r"already running.*driver_memory='3g' \(running: '1g'\)"):
        again = spark_session(driver_memory="3g")
    assert again is spark
    assert dict(os.environ) == before
    assert spark.sparkContext.getConf().get("spark.driver.memory") == "1g"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert spark_session() is spark          # defaults only: nothing was asked for, nothing to warn about


# ---- Spark metrics against recapp.metrics on awkward lists ------------------------------------------------
def test_spark_metrics_equal_pandas_on_duplicates_short_lists_and_users_without_lists(spark):
    from recapp.spark import ranking_metrics

    truth = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [10, 11, 10, 12, 13]})
    # A duplicated (user, item), a user (3) with no list, lists shorter than k.
    pred = pd.DataFrame({"user_id": [1, 1, 1, 2], "item_id": [10, 10, 11, 99], "score": [0.9, 0.5, 0.8, 0.7],
                         "rank": [1, 2, 3, 1]})
    for k in (1, 2, 10):
        assert ranking_metrics(spark.createDataFrame(truth), spark.createDataFrame(pred), k) == pytest.approx(
            M.ranking_metrics(truth, pred, k), abs=1e-12)


def test_spark_als_recommends_for_decimal_user_ids_given_as_numbers(decimal_events):
    # Before, users=[9007199254740993] on DECIMAL(20,0) ids failed inside Spark with a bare PySparkTypeError
    # ("DecimalType(20,0) can not accept object ..."); only Decimal values worked.
    from recapp.spark import SparkALS

    from pyspark.sql import types as T

    # Each shopper has seen 2 of 5 items, so every one has something left to recommend.
    rows = [(Decimal(BIG + u), Decimal(BIG + (u + j) % 5), float(j), "view") for u in range(4) for j in range(2)]
    events = decimal_events.sparkSession.createDataFrame(rows, decimal_events.schema)
    assert isinstance(events.schema["user_id"].dataType, T.DecimalType)
    als = SparkALS(factors=2, iterations=2).fit(events)
    with pytest.warns(UserWarning, match=r"2 of the 5 requested user\(s\) cannot be training ids.*'x'"):
        got = als.recommend([BIG, Decimal(BIG + 1), 2.0 ** 60, "x", 1.5], k=1).toPandas()
    assert sorted(int(u) for u in got["user_id"]) == [BIG, BIG + 1]      # 2.0 ** 60 is a valid id no user has


# ---- the default scratch folder ----------------------------------------------------------------------------
def test_default_local_dir_is_removed_when_the_process_exits(spark, tmp_path):
    import subprocess
    import sys

    script = ("from recapp.spark import spark_session\n"
              "s = spark_session('recapp-scratch', driver_memory='512m', shuffle_partitions=2)\n"
              "d = s.sparkContext.getConf().get('spark.local.dir')\n"
              "import os; print(d, len(os.listdir(d)) > 0)\n")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    folder, had_files = out.stdout.split()[-2:]
    assert folder.startswith(str(tmp_path)) and had_files == "True"
    assert not os.path.exists(folder)
